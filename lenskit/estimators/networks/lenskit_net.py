"""
lenskit's own parameter-efficient regression network.

Not from a paper: a compact residual CNN designed to be trained on a CPU and
shipped small.  Stride-2 stages reduce a 192 x 192 stamp to 6 x 6 (a 57 x 57
one to 4 x 4); coordinate channels let it read positions; the final feature
map is flattened (not pooled) so the lens centre stays recoverable, or, with
``head="pooled"``, averaged and maximised over positions, so that what the
head reads does not depend on where in the stamp the lens lies.
"""

import torch
import torch.nn as nn

from lenskit.estimators.networks.layers import CoordinateChannels, InputStage

__all__ = ["LenskitNet"]


class _Res(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                  nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(x + self.body(x))


def _down(cin, cout, k=3):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=2, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class LenskitNet(nn.Module):
    """
    Parameters
    ----------
    in_shape : tuple
        (bands, H, W) of the input.
    n_outputs : int
        Number of outputs (targets times two with uncertainties).
    width : int
        Channels of the first stage (doubling every other stage).
    stretch : {"linear", "asinh"}
        Input normalisation (see `~lenskit.estimators.networks.layers.InputStage`):
        division by the maximum, or by the noise with an arcsinh stretch
        (better where lens light outshines the arcs).
    first_stride : {2, 1}
        Stride of the first 5 x 5 convolution; 1 keeps full resolution in the
        first stage, which pays on small stamps with few pixels per arc.
    head : {"flatten", "pooled"}
        How the last feature map reaches the dense layers: flattened, with a
        weight per position ("flatten", the shipped networks), or its mean and
        maximum over positions ("pooled": the head sees the same numbers
        wherever the lens lies in the stamp, up to the stride's sampling and
        the coordinate channels, through which the centre is still read).
    n_conditions : int
        Per-image numbers the dense layers read beside the image's features
        (standardised by the estimator: for example the PSF's FWHM, which a
        real analysis knows and a network would otherwise have to guess from
        the image).  ``forward`` then takes them as ``conditions`` (N,
        n_conditions).  Default 0.
    """

    def __init__(self, in_shape=(1, 192, 192), n_outputs=10, width=16, hidden=256, dropout=0.0, stretch="linear",
                 first_stride=2, head="flatten", n_conditions=0):
        super().__init__()
        bands, h, w = in_shape
        if first_stride not in (1, 2):
            raise ValueError(f"first_stride must be 1 or 2; got {first_stride!r}")
        if head not in ("flatten", "pooled"):
            raise ValueError(f"head must be 'flatten' or 'pooled'; got {head!r}")
        if int(n_conditions) != n_conditions or n_conditions < 0:
            raise ValueError(f"n_conditions must be an integer >= 0; got {n_conditions!r}")
        self.n_conditions = int(n_conditions)
        self.inp = InputStage(stretch=stretch)
        self.coords = CoordinateChannels()
        chans = [width, 2 * width, 3 * width, 4 * width, 6 * width, 8 * width]
        if first_stride == 1:
            layers = [nn.Conv2d(bands + 2, chans[0], 5, padding=2, bias=False), nn.BatchNorm2d(chans[0]),
                      nn.ReLU(inplace=True)]
            size = h
        else:
            layers = [_down(bands + 2, chans[0], 5)]
            size = (h + 1) // 2
        c = chans[0]
        i = 1
        while size > 7 and i < len(chans):
            layers.append(_down(c, chans[i]))
            c = chans[i]
            size = (size + 1) // 2
            if size <= 32:  # residual refinement only once the maps are small (cheap on a CPU)
                layers.append(_Res(c))
            i += 1
        self.features = nn.Sequential(*layers)
        self.pooled = head == "pooled"
        n_in = 2 * c if self.pooled else c * size * size
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(n_in + self.n_conditions, hidden),
                                  nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, n_outputs))

    def forward(self, x, mask=None, conditions=None):
        f = self.features(self.coords(self.inp(x, mask)))
        if self.pooled:
            f = torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1)
        if not self.n_conditions:
            if conditions is not None and conditions.numel():
                raise ValueError("this network reads no conditions (n_conditions=0); got some")
            return self.head(f)
        if conditions is None or tuple(conditions.shape) != (x.shape[0], self.n_conditions):
            raise ValueError(f"conditions must be shaped ({x.shape[0]}, {self.n_conditions}); got "
                             f"{None if conditions is None else tuple(conditions.shape)}")
        z = torch.cat([self.head[0](f), conditions.to(f.dtype)], 1)  # the flattened features, then the numbers
        return self.head[1:](z)
