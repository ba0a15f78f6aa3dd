"""
Light profiles shared by sources, lens light and deblenders (torch kernels).

Elliptical radii use the same intermediate-axis convention as the SIE:
``r_ell = sqrt(q x'**2 + y'**2 / q)`` in the frame rotated by ``phi``, so an
elliptical profile has the same total flux as the round one with the same
radius.
"""

import math

import numpy as np
import torch
from scipy.special import gamma as _gamma
from scipy.special import gammaincinv

__all__ = ["sersic_b", "sersic_total_flux", "elliptical_radius2", "sersic", "gaussian", "elliptical_sersic"]


def sersic_b(n):
    """
    The Sérsic ``b_n`` for which ``R_e`` encloses half the light.

    Exact (``gammaincinv(2n, 1/2)``) for NumPy input; for tensors (where it
    must stay differentiable in ``n``) the Ciotti & Bertin (1999) asymptotic
    series, accurate to 1e-4 relative for n >= 1 and 2e-3 at n = 0.5.
    """
    if isinstance(n, torch.Tensor):
        return 2 * n - 1.0 / 3 + 4 / (405 * n) + 46 / (25515 * n**2) + 131 / (1148175 * n**3)
    return gammaincinv(2 * np.asarray(n, dtype=float), 0.5)


def sersic_total_flux(R_e, n, I_e=1.0):
    """Total flux of a Sérsic profile with surface brightness ``I_e`` at ``R_e`` (NumPy)."""
    n = np.asarray(n, dtype=float)
    b = sersic_b(n)
    return I_e * np.asarray(R_e, float) ** 2 * 2 * np.pi * n * np.exp(b) * b ** (-2 * n) * _gamma(2 * n)


def elliptical_radius2(x, y, e1, e2, x0=0.0, y0=0.0):
    """Squared elliptical radius ``q x'**2 + y'**2 / q`` (torch)."""
    from lenskit.mass_models.sie import sie_frame

    q, _, _, xp, yp = sie_frame(x, y, e1, e2, x0, y0)
    return q * xp * xp + yp * yp / q


def sersic(r2, R_e, n, b=None):
    """
    Sérsic profile normalised to 1 at ``R_e``: ``exp(-b ((r/R_e)**(1/n) - 1))``.

    Parameters
    ----------
    r2 : `torch.Tensor`
        Squared (elliptical) radius.
    R_e, n : `torch.Tensor`
        Half-light radius and index, broadcast against ``r2``.
    """
    if b is None:
        b = sersic_b(n)
    # (r/R_e)**(1/n) = exp(log(r2 / R_e**2) / (2 n)); the clamp keeps the centre finite
    tiny = torch.finfo(r2.dtype).tiny
    s = torch.exp(torch.log(torch.clamp(r2, min=tiny) / (R_e * R_e)) / (2 * n))
    return torch.exp(-b * (s - 1))


def gaussian(r2, sigma):
    """Unit-flux circular Gaussian in ``r2`` with standard deviation ``sigma``."""
    return torch.exp(-0.5 * r2 / (sigma * sigma)) / (2 * math.pi * sigma * sigma)


def elliptical_sersic(x, y, e1, e2, x0, y0, R_e, n, b, I_e):
    """
    ``I_e`` times an elliptical Sérsic profile centred on (x0, y0) (torch, broadcasting).

    A pure tensor function, so that it can be compiled with `torch.compile`.
    """
    return I_e * sersic(elliptical_radius2(x, y, e1, e2, x0, y0), R_e, n, b)
