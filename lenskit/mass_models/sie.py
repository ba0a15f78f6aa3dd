"""
Singular isothermal ellipsoid (SIE).

Deflection in the Kormann et al. (1994) / Keeton (2001) closed form, with
lenskit's conventions (see :doc:`/conventions`): ``theta_E`` is the
intermediate-axis Einstein radius, ``e1, e2`` the spin-2 ellipticity
``(1-q)/(1+q) (cos 2phi, sin 2phi)`` and ``x0, y0`` the centre.

The closed forms are the public kernels of `lenskit.mass_models.func.sie`;
this class adds units, NumPy conversion and parameter checks.

The q -> 1 limit (the SIS, alpha = theta_E r_hat) is evaluated with a series
so there is no 0/0.  The centre itself is a branch point: the deflection
there is defined as 0 (as lenstronomy does), and the convergence and Hessian
are capped at the value they take at a radius of ``r_core`` (1e-8 arcsec by
default) so nothing is ever NaN or infinite and gradients stay finite.
"""

import astropy.units as u
import numpy as np
import torch

from lenskit.core.interfaces import MassModel
from lenskit.core.validation import as_float
from lenskit.lensing.geometry import elliptical_frame
from lenskit.mass_models.checks import check_elliptical
from lenskit.mass_models.func import sie as kernels

__all__ = ["SIE"]

class SIE(MassModel):
    """
    Singular isothermal ellipsoid.

    Parameters
    ----------
    r_core : float
        Radius (arcsec) inside which the convergence and Hessian are capped
        (the deflection is exact everywhere).  Default 1e-8 in float64; in
        float32 at least 1e-4 so that gradients stay finite.

    Notes
    -----
    Parameters of the methods: ``theta_E`` (arcsec, > 0), ``e1``, ``e2``
    (with ``e1**2 + e2**2 < 1``), ``x0``, ``y0`` (arcsec).

    References
    ----------
    Kormann, Schneider & Bartelmann 1994, A&A 284, 285;
    Keeton 2001, arXiv:astro-ph/0102341.
    """

    name = "sie"
    param_names = ("theta_E", "e1", "e2", "x0", "y0")
    param_units = {"theta_E": u.arcsec, "e1": u.dimensionless_unscaled, "e2": u.dimensionless_unscaled,
                   "x0": u.arcsec, "y0": u.arcsec}
    # what a fit searches: theta_E > 0 and |e1|, |e2| < 0.8 (q >= 0.11); centres unbounded
    param_ranges = {"theta_E": (0.0, None), "e1": (-0.8, 0.8), "e2": (-0.8, 0.8)}
    param_defaults = {"theta_E": 1.0, "e1": 0.0, "e2": 0.0, "x0": 0.0, "y0": 0.0}

    def __init__(self, r_core=1e-8):
        self.r_core = as_float(r_core, "r_core", u.arcsec)

    def check_params(self, params):
        super().check_params(params)
        check_elliptical("sie", params)

    def _deflection(self, x, y, theta_E, e1, e2, x0, y0):
        return kernels.deflection(x, y, theta_E, e1, e2, x0, y0)

    def _core(self, dtype):
        """Cap radius: ``r_core``, but at least 1e-4" in single precision so derivatives do not overflow."""
        return self.r_core if dtype == torch.float64 else max(self.r_core, 1e-4)

    def _convergence(self, x, y, theta_E, e1, e2, x0, y0):
        return kernels.convergence(x, y, theta_E, e1, e2, x0, y0, r_core=self._core(torch.result_type(x, theta_E)))

    def _potential(self, x, y, theta_E, e1, e2, x0, y0):
        return kernels.potential(x, y, theta_E, e1, e2, x0, y0)

    def _hessian(self, x, y, theta_E, e1, e2, x0, y0):
        return kernels.hessian(x, y, theta_E, e1, e2, x0, y0, r_core=self._core(torch.result_type(x, theta_E)))

    def critical_curve(self, theta_E, e1, e2, x0, y0, n=256):
        """
        Analytic tangential critical curve: the ellipse kappa = 1/2.

        Semi-axes ``theta_E / sqrt(q)`` along the major axis and
        ``theta_E sqrt(q)`` along the minor one (area pi theta_E**2).

        Parameters are floats or tensors shaped (N,); returns tensors
        shaped (N, n) (or (n,) for scalars) of x and y in arcsec.
        """
        params = [torch.as_tensor(p, dtype=torch.float64) for p in (theta_E, e1, e2, x0, y0)]
        theta_E, e1, e2, x0, y0 = [p[..., None] for p in params]
        t = torch.linspace(0, 2 * np.pi, n + 1, dtype=theta_E.dtype)[:-1]
        q, cp, sp, _, _ = elliptical_frame(torch.zeros(()), torch.zeros(()), e1, e2, x0, y0)
        xp = theta_E / torch.sqrt(q) * torch.cos(t)
        yp = theta_E * torch.sqrt(q) * torch.sin(t)
        return x0 + cp * xp - sp * yp, y0 + sp * xp + cp * yp

    def cut(self, theta_E, e1, e2, x0, y0, n=256):
        """
        The SIE's pseudo-caustic ("cut"): the source-plane image of the centre.

        Because the SIE deflection depends only on direction, the cut is
        ``beta = centre - alpha(direction)``.  Returns source-plane (x, y)
        tensors shaped like `critical_curve`.
        """
        params = [torch.as_tensor(p, dtype=torch.float64) for p in (theta_E, e1, e2, x0, y0)]
        theta_E, e1, e2, x0, y0 = [p[..., None] for p in params]
        t = torch.linspace(0, 2 * np.pi, n + 1, dtype=theta_E.dtype)[:-1]
        eps = 1e-6
        ax, ay = kernels.deflection(x0 + eps * torch.cos(t), y0 + eps * torch.sin(t), theta_E, e1, e2, x0, y0)
        return x0 - ax, y0 - ay

    # -- closed forms the lensing module asks for (lenskit.core.MassModel capabilities) --------------------------
    def analytic_critical_curves(self, n=256, theta_E=None, e1=None, e2=None, x0=None, y0=None):
        """The tangential critical curve (`critical_curve`): the SIE's only one."""
        return [self.critical_curve(theta_E, e1, e2, x0, y0, n=n)]

    def hessian_exponent(self, theta_E=None, e1=None, e2=None, x0=None, y0=None):
        """1 for every system: the SIE's Hessian falls as 1 / r along rays from the centre."""
        return np.ones(np.shape(theta_E))

    def multiple_image_regions(self, n=96, theta_E=None, e1=None, e2=None, x0=None, y0=None):
        """Tangential caustics and cuts of N SIEs at once (float64), each shaped (N, n, 2)."""
        p = [torch.as_tensor(np.asarray(v, dtype=float)) for v in (theta_E, e1, e2, x0, y0)]
        cx, cy = self.critical_curve(*p, n=n)
        ax, ay = kernels.deflection(cx, cy, *[v[:, None] for v in p])
        ux, uy = self.cut(*p, n=n)
        return torch.stack([cx - ax, cy - ay], dim=-1).numpy(), torch.stack([ux, uy], dim=-1).numpy()
