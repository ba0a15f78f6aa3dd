"""External shear."""

import astropy.units as u
import numpy as np

from lenskit.core.interfaces import MassModel
from lenskit.mass_models.func import shear as kernels

__all__ = ["ExternalShear"]


class ExternalShear(MassModel):
    """
    Constant external shear about the origin.

    ``psi = gamma1 (x**2 - y**2) / 2 + gamma2 x y``, so
    ``alpha = (gamma1 x + gamma2 y, gamma2 x - gamma1 y)`` and kappa = 0.
    The shear modulus is ``sqrt(gamma1**2 + gamma2**2)`` and its angle
    ``atan2(gamma2, gamma1) / 2`` counter-clockwise from +x (lenstronomy's
    ``SHEAR`` convention).
    """

    name = "external_shear"
    param_names = ("gamma1", "gamma2")
    param_units = {"gamma1": u.dimensionless_unscaled, "gamma2": u.dimensionless_unscaled}
    param_ranges = {"gamma1": (-0.8, 0.8), "gamma2": (-0.8, 0.8)}
    param_defaults = {"gamma1": 0.0, "gamma2": 0.0}

    def check_params(self, params):
        super().check_params(params)
        g = np.hypot(np.asarray(params["gamma1"], float), np.asarray(params["gamma2"], float))
        if np.any(g >= 1):
            raise ValueError(f"external_shear: shear modulus must be < 1; got {g[g >= 1].ravel()[:5]}")

    def _deflection(self, x, y, gamma1, gamma2):
        return kernels.deflection(x, y, gamma1, gamma2)

    def _convergence(self, x, y, gamma1, gamma2):
        return kernels.convergence(x, y, gamma1, gamma2)

    def _potential(self, x, y, gamma1, gamma2):
        return kernels.potential(x, y, gamma1, gamma2)

    def _hessian(self, x, y, gamma1, gamma2):
        return kernels.hessian(x, y, gamma1, gamma2)
