"""
Imperfect lens-light subtraction: the residuals a lens-light model leaves on real data.

A lens-light fit (`lenskit.deblenders.sersic`, or any other) is never exact: its
amplitude, its centre and its profile's concentration are each a little off,
and what is left in the arcs image is a faint monopole, dipole and ring about
the lens centre.  An estimator meant for arcs after lens-light removal should
train on such images, not only on perfect subtractions.
`Simulator(lens_light="residual")` subtracts `imperfect_model` of each
observed (PSF-convolved) lens light instead of the light itself:

``model = (1 + a) * L(x - dx, y - dy) + p * (G * L - L)``

with ``a`` (``residual_amplitude``), ``dx``, ``dy`` (``residual_shift``, in
pixels, per axis) and ``p`` (``residual_profile``) drawn per system from the
simulator's priors, and ``G * L`` the light convolved with a Gaussian of one
pixel rms: ``p > 0`` models a fit that is too extended (the core
under-subtracted, a ring of over-subtraction), ``p < 0`` one too concentrated.
"""

import numpy as np
import torch
import torch.nn.functional as F

from lenskit.core.priors import Normal
from lenskit.instruments.effects import _gaussian_kernels, separable_convolve

__all__ = ["imperfect_model", "RESIDUAL_PRIORS"]

#: Default priors of the imperfect model: amplitude (fraction of the light), shift (pixels, per axis) and profile
#: mismatch.  On the Hezaveh et al. recipe's lenses they leave an rms of 0.016 of the lens light's peak within the
#: central 1.6" at the median (0.030 at the 90th percentile).  lenskit's Sérsic deblender, told the PSF, leaves
#: 0.0035 at the median on the same lenses, 0.008 at the 75th percentile and 0.042 at the 90th (its failures);
#: these priors were matched to its median when the recipe's noise under the lens light was scaled to the
#: galaxy's core, several times today's (lenskit.instruments.effects.Observation.reference_peak), which made its
#: fits worse.  They are now a pessimistic middle: four times the fit's median, under its tail.
RESIDUAL_PRIORS = {"residual_amplitude": Normal(0.0, 0.03), "residual_shift": Normal(0.0, 0.4, -2.0, 2.0),
                   "residual_profile": Normal(0.0, 0.5, -1.5, 1.5)}


def _shift(images, dx, dy):
    """(n, b, h, w) images moved by (dx, dy) pixels (bilinear; zero outside)."""
    n, b, h, w = images.shape
    dt, dev = images.dtype, images.device
    ys = torch.arange(h, dtype=dt, device=dev)
    xs = torch.arange(w, dtype=dt, device=dev)
    # sample the input at (x - dx, y - dy), in grid_sample's [-1, 1] coordinates (pixel centres, align_corners)
    gx = (xs.reshape(1, 1, w) - torch.as_tensor(dx, dtype=dt, device=dev).reshape(n, 1, 1)) * (2 / max(w - 1, 1)) - 1
    gy = (ys.reshape(1, h, 1) - torch.as_tensor(dy, dtype=dt, device=dev).reshape(n, 1, 1)) * (2 / max(h - 1, 1)) - 1
    grid = torch.stack([gx.expand(n, h, w), gy.expand(n, h, w)], dim=-1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def _blur(images, sigma=1.0):
    """(n, b, h, w) images convolved with a pixel-integrated Gaussian of ``sigma`` pixels (zero padding)."""
    n, b, h, w = images.shape
    kern = _gaussian_kernels(np.array([float(sigma)]), images.dtype, images.device)
    index = torch.zeros(n * b, dtype=torch.long, device=images.device)  # one kernel for every plane
    return separable_convolve(images.reshape(n * b, h, w), kern, index).reshape(n, b, h, w)


def imperfect_model(light, rng, priors=None):
    """
    An imperfect model of each lens light: what a lens-light fit would subtract.

    Parameters
    ----------
    light : `torch.Tensor` (n, bands, H, W)
        The observed (PSF-convolved) lens light.
    rng : `numpy.random.Generator`
    priors : dict, optional
        ``residual_amplitude``, ``residual_shift`` (pixels) and ``residual_profile``
        priors; missing ones take `RESIDUAL_PRIORS`.

    Returns
    -------
    model : `torch.Tensor` like ``light``
    drawn : dict of arrays (n,)
        The draws, ``residual_amplitude``, ``residual_dx``, ``residual_dy``, ``residual_profile``.
    """
    pr = {**RESIDUAL_PRIORS, **{k: v for k, v in (priors or {}).items() if k in RESIDUAL_PRIORS}}
    n = light.shape[0]
    a = pr["residual_amplitude"].sample(rng, n)
    dx, dy = pr["residual_shift"].sample(rng, n), pr["residual_shift"].sample(rng, n)
    p = pr["residual_profile"].sample(rng, n)
    shape = (n, 1, 1, 1)
    t = lambda v: torch.as_tensor(v, dtype=light.dtype, device=light.device).reshape(shape)  # noqa: E731
    model = (1 + t(a)) * _shift(light, dx, dy) + t(p) * (_blur(light) - light)
    return model, {"residual_amplitude": a, "residual_dx": dx, "residual_dy": dy, "residual_profile": p}
