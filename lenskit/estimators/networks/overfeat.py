"""
OverFeat, the "fast" model of Sermanet et al. (2014) as used by Hezaveh et al.
(2017): 11 x 11 stride-4 and 5 x 5 convolutions with 2 x 2 max-pooling, three
3 x 3 convolutions (512, 1024, 1024), pooling, fully connected layers of 3072
and 4096, and the regression outputs.  Adapted to 192 x 192 x bands inputs.
"""

import torch.nn as nn

from lenskit.estimators.networks.layers import InputStage

__all__ = ["OverFeat"]


class OverFeat(nn.Module):
    def __init__(self, in_shape=(1, 192, 192), n_outputs=5, dropout=0.0, input_stage=True):
        super().__init__()
        bands, h, w = in_shape
        self.inp = InputStage() if input_stage else None
        self.features = nn.Sequential(
            nn.Conv2d(bands, 96, 11, stride=4), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(96, 256, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(256, 512, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(512, 1024, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(1024, 1024, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        s = (h - 11) // 4 + 1
        s = s // 2
        s = (s - 5) + 1
        s = s // 2
        s = s // 2
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(1024 * s * s, 3072),
                                  nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(3072, 4096),
                                  nn.ReLU(inplace=True), nn.Linear(4096, n_outputs))

    def forward(self, x, mask=None):
        if self.inp is not None:
            x = self.inp(x, mask)
        return self.head(self.features(x))
