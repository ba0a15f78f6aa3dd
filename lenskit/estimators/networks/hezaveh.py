"""
The network of Hezaveh, Perreault Levasseur & Marshall (2017, Methods).

Eight modules, each a convolution with a large kernel followed by a 1 x 1
convolution of the same depth; kernels 3, 5, 10, 10, 10, 10, 3 (the paper
lists seven sizes for eight modules: the eighth reuses 3), depths 32, 32, 32,
32, 64, 64, 128, 256, stride 2 in modules 3, 5 and 7; then fully connected
layers of 512 nodes and the outputs; ReLU everywhere but the last layer.  The
first layer is the paper's bias removal (4 x 4 flat filter, minimum excluding
masked pixels subtracted).  At 192 x 192 the first fully connected layer holds
75 M of the network's ~78 M parameters.
"""

import torch.nn as nn
import torch.nn.functional as F

from lenskit.estimators.networks.layers import InputStage

__all__ = ["HezavehNet"]

KERNELS = (3, 5, 10, 10, 10, 10, 3, 3)
DEPTHS = (32, 32, 32, 32, 64, 64, 128, 256)
STRIDES = (1, 1, 2, 1, 2, 1, 2, 1)


class _Module(nn.Module):
    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.k, self.stride = k, stride
        self.big = nn.Conv2d(cin, cout, k, stride=stride)
        self.point = nn.Conv2d(cout, cout, 1)

    def forward(self, x):
        k = self.k
        # 'same' padding (output = ceil(input / stride)); even kernels pad one more on the right/bottom
        h, w = x.shape[-2:]
        ph = max((-(-h // self.stride) - 1) * self.stride + k - h, 0)
        pw = max((-(-w // self.stride) - 1) * self.stride + k - w, 0)
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return F.relu(self.point(F.relu(self.big(x))))


class HezavehNet(nn.Module):
    def __init__(self, in_shape=(1, 192, 192), n_outputs=5, input_stage=True):
        super().__init__()
        bands, h, w = in_shape
        self.inp = InputStage() if input_stage else None
        mods, c = [], bands
        for k, d, s in zip(KERNELS, DEPTHS, STRIDES):
            mods.append(_Module(c, d, k, s))
            c = d
            h, w = -(-h // s), -(-w // s)
        self.features = nn.Sequential(*mods)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 512), nn.ReLU(inplace=True),
                                  nn.Linear(512, n_outputs))

    def forward(self, x, mask=None):
        if self.inp is not None:
            x = self.inp(x, mask)
        return self.head(self.features(x))
