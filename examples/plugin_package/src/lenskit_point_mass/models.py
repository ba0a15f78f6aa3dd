"""A point-mass lens."""

import astropy.units as u
import numpy as np
import torch

from lenskit.core import MassModel


class PointMass(MassModel):
    """
    Point mass: ``alpha = theta_E**2 (x - x0) / r**2``, ``psi = theta_E**2 ln r``.

    The convergence is a delta function at the centre and zero elsewhere.
    The deflection at the exact centre is defined as 0; radii below
    ``r_core`` are treated as ``r_core`` so nothing is infinite.
    """

    name = "point_mass"
    param_names = ("theta_E", "x0", "y0")
    param_units = {"theta_E": u.arcsec, "x0": u.arcsec, "y0": u.arcsec}
    r_core = 1e-6

    def check_params(self, params):
        super().check_params(params)
        if np.any(np.asarray(params["theta_E"], float) <= 0):
            raise ValueError("point_mass: theta_E must be > 0 arcsec")

    def _deflection(self, x, y, theta_E, x0, y0):
        dx, dy = x - x0, y - y0
        r2 = torch.clamp(dx * dx + dy * dy, min=self.r_core**2)
        return theta_E**2 * dx / r2, theta_E**2 * dy / r2

    def _convergence(self, x, y, theta_E, x0, y0):
        return torch.zeros_like(x + y + theta_E)

    def _potential(self, x, y, theta_E, x0, y0):
        dx, dy = x - x0, y - y0
        r2 = torch.clamp(dx * dx + dy * dy, min=self.r_core**2)
        return 0.5 * theta_E**2 * torch.log(r2)
