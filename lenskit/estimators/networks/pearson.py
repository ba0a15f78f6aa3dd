"""
The CNN of Pearson, Li & Dye (2019, Fig. 5): six convolutions with batch
normalisation, four 2 x 2 max-pools, a 512-node fully connected layer and the
outputs; ReLU throughout; stride 1 with zero padding; 57 x 57 stamps of 1 or 3 bands.

The paper gives the kernel sizes only in its Fig. 5, which the text version
lacks; the layer sizes here are the unique choice (kernels in {1, 3, 5, 7},
depths in {32, 64, 128, 256}) that reproduces its stated parameter counts
exactly: 2,395,267 trainable parameters for one band and 2,398,403 for three
(with three outputs).  The first layer is 7 x 7 x 32, then 3 x 3 x 64,
5 x 5 x 64, 3 x 3 x 128, 7 x 7 x 128, 7 x 7 x 128; the last map is 3 x 3 x 128
(1152 nodes), as the paper states.
"""

import torch.nn as nn

from lenskit.estimators.networks.layers import InputStage

__all__ = ["PearsonNet"]


def _conv(cin, cout, k):
    return [nn.Conv2d(cin, cout, k, padding=k // 2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class PearsonNet(nn.Module):
    def __init__(self, in_shape=(1, 57, 57), n_outputs=3, input_stage=True):
        super().__init__()
        bands, h, w = in_shape
        self.inp = InputStage() if input_stage else None
        self.features = nn.Sequential(
            *_conv(bands, 32, 7), nn.MaxPool2d(2),
            *_conv(32, 64, 3), nn.MaxPool2d(2),
            *_conv(64, 64, 5), *_conv(64, 128, 3), nn.MaxPool2d(2),
            *_conv(128, 128, 7), *_conv(128, 128, 7), nn.MaxPool2d(2),
        )
        size = h
        for _ in range(4):
            size //= 2
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(128 * size * size, 512), nn.ReLU(inplace=True),
                                  nn.Linear(512, n_outputs))

    def forward(self, x, mask=None):
        if self.inp is not None:
            x = self.inp(x, mask)
        return self.head(self.features(x))
