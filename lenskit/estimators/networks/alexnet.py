"""
AlexNet (Krizhevsky, Sutskever & Hinton 2012) as used by Hezaveh et al.
(2017): five convolutions (11 x 11 stride 4, 5 x 5, 3 x 3 x 3) with local
response normalisation and overlapping max-pooling, two fully connected layers
of 4096 and the regression outputs; random initialisation, no ImageNet weights.
Adapted to 192 x 192 x bands inputs.
"""

import torch.nn as nn

from lenskit.estimators.networks.layers import InputStage

__all__ = ["AlexNet"]


class AlexNet(nn.Module):
    def __init__(self, in_shape=(1, 192, 192), n_outputs=5, dropout=0.0, input_stage=True):
        super().__init__()
        bands, h, w = in_shape
        self.inp = InputStage() if input_stage else None
        self.features = nn.Sequential(
            nn.Conv2d(bands, 96, 11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0), nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(inplace=True),
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0), nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        )
        s = (h + 4 - 11) // 4 + 1
        s = (s - 3) // 2 + 1
        s = (s - 3) // 2 + 1
        s = (s - 3) // 2 + 1
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(256 * s * s, 4096),
                                  nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(4096, 4096),
                                  nn.ReLU(inplace=True), nn.Linear(4096, n_outputs))

    def forward(self, x, mask=None):
        if self.inp is not None:
            x = self.inp(x, mask)
        return self.head(self.features(x))
