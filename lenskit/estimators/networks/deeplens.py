"""
CMU DeepLens (Lanusse et al. 2018, Section 3.1 and Fig. 3): a pre-activated
bottleneck residual network that classifies cutouts as lenses or not.

* input: a 7 x 7 convolution to 32 channels, batch normalisation and ELU;
* 15 bottleneck units in five stages of three; a unit is BN-ELU-conv 1x1,
  BN-ELU-conv 3x3, BN-ELU-conv 1x1 (pre-activation, He et al. 2016) added
  to its shortcut.  Stage widths (bottleneck -> output) are 16 -> 32,
  32 -> 64, 64 -> 128, 128 -> 256, 256 -> 512.  The first unit of stages
  2-5 downsamples by 2 with a strided 3 x 3 convolution and a strided 1 x 1
  projection shortcut; a projection also adapts the channels where they change;
* a last BN-ELU, global average pooling and one output.

`forward` returns the logit; the probability is its sigmoid (the paper's
sigmoid output), applied by the estimator so that training can use the
numerically stable ``BCEWithLogits`` loss.

The network's preprocessing (mean-image subtraction, division by the noise
sigma of each band, clipping at ``k`` sigma, masked pixels to 0 last) is part
of the module, with the mean image and sigmas as buffers saved with the
weights (Lanusse et al. 2018, Section 3.3).
"""

import torch
import torch.nn as nn

__all__ = ["DeepLensNet", "BottleneckUnit", "FinderPreprocess"]

STAGES = ((16, 32), (32, 64), (64, 128), (128, 256), (256, 512))


class FinderPreprocess(nn.Module):
    """
    ``clip((x - mean_image) / sigma, -k, k)``; masked pixels set to 0 afterwards.

    ``mean_image`` (bands, H, W) and ``sigma`` (bands,) start at 0 and 1 and
    are set from the training set by the estimator (`set_statistics`).
    """

    def __init__(self, in_shape, clip=250.0):
        super().__init__()
        bands, h, w = in_shape
        self.register_buffer("mean_image", torch.zeros(bands, h, w))
        self.register_buffer("sigma", torch.ones(bands))
        self.clip = float(clip)

    @torch.no_grad()
    def set_statistics(self, mean_image, sigma):
        self.mean_image.copy_(torch.as_tensor(mean_image, dtype=self.mean_image.dtype))
        self.sigma.copy_(torch.as_tensor(sigma, dtype=self.sigma.dtype).clamp(min=1e-12))

    def forward(self, x, mask=None):
        x = (x - self.mean_image) / self.sigma.reshape(1, -1, 1, 1)
        x = x.clamp(-self.clip, self.clip)
        if mask is not None:
            x = x.masked_fill(mask.to(torch.bool), 0.0)
        return x


class BottleneckUnit(nn.Module):
    """Pre-activated bottleneck residual unit (BN-ELU-conv x 3 plus shortcut)."""

    def __init__(self, cin, width, cout, stride=1):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, width, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(width), nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn3, self.conv3 = nn.BatchNorm2d(width), nn.Conv2d(width, cout, 1, bias=False)
        self.act = nn.ELU(inplace=False)
        self.project = None
        if stride != 1 or cin != cout:
            self.project = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x):
        pre = self.act(self.bn1(x))
        # the projection takes the pre-activated input (He et al. 2016, "full pre-activation")
        shortcut = x if self.project is None else self.project(pre)
        y = self.conv1(pre)
        y = self.conv2(self.act(self.bn2(y)))
        y = self.conv3(self.act(self.bn3(y)))
        return y + shortcut


class DeepLensNet(nn.Module):
    """
    CMU DeepLens ResNet.

    Parameters
    ----------
    in_shape : tuple
        (bands, H, W); 45 x 45 in the paper, one or more bands.
    n_outputs : int
        1 (the lens logit).
    units_per_stage : int
        3 in the paper (15 units in all).
    clip : float
        Preprocessing clip in noise sigmas (k = 250 in the paper).
    """

    def __init__(self, in_shape=(1, 45, 45), n_outputs=1, units_per_stage=3, clip=250.0):
        super().__init__()
        bands = int(in_shape[0])
        self.pre = FinderPreprocess(in_shape, clip=clip)
        self.stem = nn.Sequential(nn.Conv2d(bands, 32, 7, padding=3, bias=False), nn.BatchNorm2d(32), nn.ELU())
        units, cin = [], 32
        for s, (width, cout) in enumerate(STAGES):
            for j in range(int(units_per_stage)):
                stride = 2 if (s > 0 and j == 0) else 1
                units.append(BottleneckUnit(cin, width, cout, stride))
                cin = cout
        self.units = nn.Sequential(*units)
        self.post = nn.Sequential(nn.BatchNorm2d(cin), nn.ELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(cin, n_outputs)
        for m in self.modules():  # He et al. (2015) normal initialisation, as the paper
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def forward(self, x, mask=None):
        x = self.pre(x, mask)
        return self.head(self.post(self.units(self.stem(x))))
