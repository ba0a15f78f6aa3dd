"""
Lens modelling by maximum likelihood, and the path from a real cutout to lens parameters.

=========================  ===========================================================
`lenskit.modelling.fit`    `fit` (any registered mass model) and `FitResult`
``likelihood``             model images (the one renderer) and the Gaussian likelihood
``transforms``             parameter ranges mapped to unbounded coordinates
``starts``                 light centre, ring radius, starting points, source placement
``search``                 multi-start Adam + L-BFGS and Laplace uncertainties
``outliers``               cosmic rays and hot pixels (L.A.Cosmic's Laplacian test), neighbours
``pipeline``               `model_lens`: deblend, CNN estimate, refine
=========================  ===========================================================
"""

from lenskit.modelling.fit import FitResult, fit
from lenskit.modelling.likelihood import render_model
from lenskit.modelling.outliers import neighbour_mask, outlier_mask
from lenskit.modelling.pipeline import LensModel, model_lens
from lenskit.modelling.starts import ring_radius

__all__ = ["fit", "FitResult", "render_model", "outlier_mask", "neighbour_mask", "ring_radius", "model_lens",
           "LensModel"]
