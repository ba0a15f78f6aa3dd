"""
Inception-v4 (Szegedy et al. 2017) as used by Hezaveh et al. (2017): the stem,
4 Inception-A, Reduction-A, 7 Inception-B, Reduction-B and 3 Inception-C
blocks, average pooling and the regression outputs; batch-normalised
convolutions, random initialisation.  The stem's valid convolutions take a
192 x 192 input down to 21 x 21 (35 x 35 for the original 299 x 299).
"""

import torch
import torch.nn as nn

from lenskit.estimators.networks.layers import InputStage

__all__ = ["InceptionV4"]


class _C(nn.Sequential):
    """Convolution, batch normalisation, ReLU."""

    def __init__(self, cin, cout, k, stride=1, padding=0):
        super().__init__(nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=False),
                         nn.BatchNorm2d(cout, eps=1e-3), nn.ReLU(inplace=True))


class _Stem(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.a = nn.Sequential(_C(cin, 32, 3, 2), _C(32, 32, 3), _C(32, 64, 3, padding=1))
        self.b_pool = nn.MaxPool2d(3, 2)
        self.b_conv = _C(64, 96, 3, 2)
        self.c1 = nn.Sequential(_C(160, 64, 1), _C(64, 96, 3))
        self.c2 = nn.Sequential(_C(160, 64, 1), _C(64, 64, (1, 7), padding=(0, 3)), _C(64, 64, (7, 1), padding=(3, 0)),
                                _C(64, 96, 3))
        self.d_conv = _C(192, 192, 3, 2)
        self.d_pool = nn.MaxPool2d(3, 2)

    def forward(self, x):
        x = self.a(x)
        x = torch.cat([self.b_pool(x), self.b_conv(x)], 1)
        x = torch.cat([self.c1(x), self.c2(x)], 1)
        return torch.cat([self.d_conv(x), self.d_pool(x)], 1)


class _A(nn.Module):
    def __init__(self):
        super().__init__()
        self.b0 = _C(384, 96, 1)
        self.b1 = nn.Sequential(_C(384, 64, 1), _C(64, 96, 3, padding=1))
        self.b2 = nn.Sequential(_C(384, 64, 1), _C(64, 96, 3, padding=1), _C(96, 96, 3, padding=1))
        self.b3 = nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), _C(384, 96, 1))

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1(x), self.b2(x), self.b3(x)], 1)


class _RedA(nn.Module):
    def __init__(self):
        super().__init__()
        self.b0 = _C(384, 384, 3, 2)
        self.b1 = nn.Sequential(_C(384, 192, 1), _C(192, 224, 3, padding=1), _C(224, 256, 3, 2))
        self.b2 = nn.MaxPool2d(3, 2)

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1(x), self.b2(x)], 1)


class _B(nn.Module):
    def __init__(self):
        super().__init__()
        self.b0 = _C(1024, 384, 1)
        self.b1 = nn.Sequential(_C(1024, 192, 1), _C(192, 224, (1, 7), padding=(0, 3)),
                                _C(224, 256, (7, 1), padding=(3, 0)))
        self.b2 = nn.Sequential(_C(1024, 192, 1), _C(192, 192, (7, 1), padding=(3, 0)),
                                _C(192, 224, (1, 7), padding=(0, 3)), _C(224, 224, (7, 1), padding=(3, 0)),
                                _C(224, 256, (1, 7), padding=(0, 3)))
        self.b3 = nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), _C(1024, 128, 1))

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1(x), self.b2(x), self.b3(x)], 1)


class _RedB(nn.Module):
    def __init__(self):
        super().__init__()
        self.b0 = nn.Sequential(_C(1024, 192, 1), _C(192, 192, 3, 2))
        self.b1 = nn.Sequential(_C(1024, 256, 1), _C(256, 256, (1, 7), padding=(0, 3)),
                                _C(256, 320, (7, 1), padding=(3, 0)), _C(320, 320, 3, 2))
        self.b2 = nn.MaxPool2d(3, 2)

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1(x), self.b2(x)], 1)


class _Cblock(nn.Module):
    def __init__(self):
        super().__init__()
        self.b0 = _C(1536, 256, 1)
        self.b1 = _C(1536, 384, 1)
        self.b1a = _C(384, 256, (1, 3), padding=(0, 1))
        self.b1b = _C(384, 256, (3, 1), padding=(1, 0))
        self.b2 = nn.Sequential(_C(1536, 384, 1), _C(384, 448, (3, 1), padding=(1, 0)),
                                _C(448, 512, (1, 3), padding=(0, 1)))
        self.b2a = _C(512, 256, (1, 3), padding=(0, 1))
        self.b2b = _C(512, 256, (3, 1), padding=(1, 0))
        self.b3 = nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), _C(1536, 256, 1))

    def forward(self, x):
        y1 = self.b1(x)
        y2 = self.b2(x)
        return torch.cat([self.b0(x), self.b1a(y1), self.b1b(y1), self.b2a(y2), self.b2b(y2), self.b3(x)], 1)


class InceptionV4(nn.Module):
    def __init__(self, in_shape=(1, 192, 192), n_outputs=5, dropout=0.0, input_stage=True):
        super().__init__()
        bands = in_shape[0]
        self.inp = InputStage() if input_stage else None
        self.features = nn.Sequential(_Stem(bands), *[_A() for _ in range(4)], _RedA(), *[_B() for _ in range(7)],
                                      _RedB(), *[_Cblock() for _ in range(3)])
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(1536, n_outputs))

    def forward(self, x, mask=None):
        if self.inp is not None:
            x = self.inp(x, mask)
        return self.head(self.features(x))
