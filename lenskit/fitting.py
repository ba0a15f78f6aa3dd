"""
The published home of `fit` and its helpers; they live in `lenskit.modelling`.

Kept so that ``from lenskit.fitting import fit`` and the other names of
earlier releases keep working.
"""

from lenskit.lensing.convolution import fft_convolve
from lenskit.modelling.fit import FitResult, fit
from lenskit.modelling.likelihood import render_model
from lenskit.modelling.outliers import outlier_mask
from lenskit.modelling.starts import ring_radius

__all__ = ["fit", "FitResult", "render_model", "fft_convolve", "ring_radius", "outlier_mask"]
