"""
Elliptical power-law mass profile (EPL).

The convergence ``kappa = (3 - slope) / 2 (theta_E / sqrt(q x'**2 + y'**2 / q))**(slope - 1)``
with lenskit's conventions (see :doc:`/conventions`): ``theta_E`` the
intermediate-axis Einstein radius, ``e1, e2`` the spin-2 ellipticity
``(1-q)/(1+q) (cos 2phi, sin 2phi)``, ``x0, y0`` the centre and ``slope`` the
logarithmic slope of the three-dimensional density (``rho ~ r**-slope``): 2
is the SIE, steeper profiles have larger slopes.  These are lenstronomy's
``EPL`` conventions (its ``gamma`` is ``slope``).  Deflections follow
Tessore & Metcalf (2015); the kernels are `lenskit.mass_models.func.epl`.

As with the SIE, the centre is a branch point: the deflection there is 0, and
the convergence and Hessian are capped at their values at radius ``r_core``.
"""

import astropy.units as u
import numpy as np
import torch

from lenskit.core.interfaces import MassModel
from lenskit.core.priors import Normal
from lenskit.core.validation import as_float
from lenskit.lensing.critical import self_similar_critical_radii
from lenskit.mass_models.checks import check_elliptical
from lenskit.mass_models.func import epl as kernels
from lenskit.mass_models.func import sie as sie_kernels

__all__ = ["EPL"]


class EPL(MassModel):
    """
    Elliptical power-law mass profile (Tessore & Metcalf 2015).

    Parameters
    ----------
    r_core : float
        Radius (arcsec) inside which the convergence and Hessian are capped
        (the deflection is exact everywhere but at the centre).  Default 1e-8
        in float64; in float32 at least 1e-4.

    Notes
    -----
    Parameters of the methods: ``theta_E`` (arcsec, > 0), ``e1``, ``e2`` (with
    ``e1**2 + e2**2 < 1``), ``x0``, ``y0`` (arcsec) and ``slope`` (1 < slope < 3;
    2 is isothermal).  A `~lenskit.Simulator` with this model draws ``slope``
    from ``priors["slope"]``, by default N(2, 0.1) within 1.6-2.4 (`default_priors`).

    References
    ----------
    Tessore & Metcalf 2015, A&A 580, A79 (erratum A&A 584, C1).
    """

    name = "epl"
    param_names = ("theta_E", "e1", "e2", "x0", "y0", "slope")
    param_units = {"theta_E": u.arcsec, "e1": u.dimensionless_unscaled, "e2": u.dimensionless_unscaled,
                   "x0": u.arcsec, "y0": u.arcsec, "slope": u.dimensionless_unscaled}
    param_ranges = {"theta_E": (0.0, None), "e1": (-0.8, 0.8), "e2": (-0.8, 0.8), "slope": (1.2, 2.8)}
    param_defaults = {"theta_E": 1.0, "e1": 0.0, "e2": 0.0, "x0": 0.0, "y0": 0.0, "slope": 2.0}
    #: The simulator's prior for ``slope`` unless ``priors`` name one: about isothermal, as measured for
    #: massive early-type lenses (SLACS: 2.08 +- 0.16, Koopmans et al. 2009).
    default_priors = {"slope": Normal(2.0, 0.1, 1.6, 2.4)}

    def __init__(self, r_core=1e-8):
        self.r_core = as_float(r_core, "r_core", u.arcsec)

    def check_params(self, params):
        super().check_params(params)
        check_elliptical("epl", params)
        s = np.asarray(params["slope"], dtype=float)
        bad = (s <= 1) | (s >= 3)
        if np.any(bad):
            raise ValueError(f"epl: slope must lie in (1, 3) (2 is isothermal); got {s[bad].ravel()[:5]}")

    def _core(self, dtype):
        return self.r_core if dtype == torch.float64 else max(self.r_core, 1e-4)

    def _deflection(self, x, y, theta_E, e1, e2, x0, y0, slope):
        return kernels.deflection(x, y, theta_E, slope, e1, e2, x0, y0)

    def _convergence(self, x, y, theta_E, e1, e2, x0, y0, slope):
        return kernels.convergence(x, y, theta_E, slope, e1, e2, x0, y0,
                                   r_core=self._core(torch.result_type(x, theta_E)))

    def _potential(self, x, y, theta_E, e1, e2, x0, y0, slope):
        return kernels.potential(x, y, theta_E, slope, e1, e2, x0, y0)

    def _hessian(self, x, y, theta_E, e1, e2, x0, y0, slope):
        return kernels.hessian(x, y, theta_E, slope, e1, e2, x0, y0, r_core=self._core(torch.result_type(x, theta_E)))

    # -- closed forms (lenskit.core.MassModel capabilities) ---------------------------------------------------
    @staticmethod
    def _params(theta_E, e1, e2, x0, y0, slope):
        """float64 tensors shaped (N, 1) (or (1,) for scalars)."""
        return [torch.as_tensor(np.asarray(v, dtype=float))[..., None] for v in (theta_E, e1, e2, x0, y0, slope)]

    def critical_curves(self, theta_E, e1, e2, x0, y0, slope, n=256):
        """
        The tangential and radial critical curves, ``((x_t, y_t), (x_r, y_r))`` in arcsec.

        Along each direction from the centre the convergence and shear fall as
        ``r**-(slope - 1)``, so the curves are where ``(1 - kappa)**2 = |gamma|**2``
        along rays, in closed form (`lenskit.lensing.self_similar_critical_radii`).
        The radial curve exists for slopes below 2; at 2 and above it is the
        centre itself.  Parameters are floats or arrays shaped (N,); tensors are
        shaped (N, n) (or (n,) for scalars).
        """
        theta_E, e1, e2, x0, y0, slope = self._params(theta_E, e1, e2, x0, y0, slope)
        ang = torch.linspace(0, 2 * np.pi, n + 1, dtype=torch.float64)[:-1]
        ux, uy = torch.cos(ang), torch.sin(ang)
        h = kernels.hessian(x0 + ux, y0 + uy, theta_E, slope, e1, e2, x0, y0)  # at unit distance
        r_t, r_r = self_similar_critical_radii(*h, slope - 1)

        def place(r):
            return x0 + r * ux, y0 + r * uy

        return place(r_t), place(r_r)

    def analytic_critical_curves(self, n=256, theta_E=None, e1=None, e2=None, x0=None, y0=None, slope=None):
        """The tangential critical curve, and the radial one for slopes below 2."""
        tan, rad = self.critical_curves(theta_E, e1, e2, x0, y0, slope, n=n)
        return [tan] if float(slope) >= 2 else [tan, rad]

    def hessian_exponent(self, theta_E=None, e1=None, e2=None, x0=None, y0=None, slope=None):
        """``slope - 1``: the Hessian falls as ``r**-(slope - 1)`` along rays from the centre."""
        return np.asarray(slope, dtype=float) - 1

    def multiple_image_regions(self, n=96, theta_E=None, e1=None, e2=None, x0=None, y0=None, slope=None):
        """
        Tangential caustics and outer boundaries of N EPLs at once (float64), each shaped (N, n, 2).

        The second curve is the radial caustic for slopes below 2.  At 2 it is
        the SIE's cut; steeper profiles have no radial caustic (every source
        has a second, faint image near the centre, fainter the further the
        source lies), and the isothermal lens's cut of the same ``theta_E``
        and ellipticity stands for the region where that image is not
        negligible.
        """
        theta_E, e1, e2, x0, y0, slope = self._params(theta_E, e1, e2, x0, y0, slope)
        tan, rad = self.critical_curves(theta_E[:, 0], e1[:, 0], e2[:, 0], x0[:, 0], y0[:, 0], slope[:, 0], n=n)
        pars = (theta_E, e1, e2, x0, y0, slope)

        def source(x, y):
            ax, ay = self._deflection(x, y, *pars)
            return torch.stack([x - ax, y - ay], dim=-1)

        caustic = source(*tan)
        ang = torch.linspace(0, 2 * np.pi, n + 1, dtype=torch.float64)[:-1]
        eps = 1e-6
        ax, ay = sie_kernels.deflection(x0 + eps * torch.cos(ang), y0 + eps * torch.sin(ang), theta_E, e1, e2, x0, y0)
        cut = torch.stack([x0 - ax, y0 - ay], dim=-1).expand_as(caustic)
        radial = source(*rad)
        has_radial = (torch.hypot(rad[0] - x0, rad[1] - y0) > 0).all(-1)
        out = torch.where(has_radial[:, None, None], radial, cut)
        return caustic.numpy(), out.numpy()
