"""
Singular isothermal ellipsoid: torch kernels (Kormann et al. 1994; Keeton 2001).

Pure functions of tensors in arcsec with lenskit's conventions (``theta_E``
the intermediate-axis Einstein radius, ``e1, e2`` the spin-2 ellipticity
``(1-q)/(1+q) (cos 2phi, sin 2phi)``, ``x0, y0`` the centre); parameters
broadcast against ``x`` and ``y``.  In the frame rotated by ``phi``, with
``b = theta_E sqrt(q)``, ``f = sqrt(1 - q**2)`` and
``psi = sqrt(q**2 x'**2 + y'**2)``::

    alpha'_x = (b / f) arctan(f x' / psi)
    alpha'_y = (b / f) artanh(f y' / psi)
    kappa    = theta_E / (2 sqrt(q x'**2 + y'**2 / q))
    potential = x' alpha'_x + y' alpha'_y
    Hessian'  = b / (psi r**2) [[y'**2, -x' y'], [-x' y', x'**2]]

The q -> 1 limit is a series (no 0/0); the deflection at the centre is 0 and
the convergence and Hessian are capped at radius ``r_core``, so nothing is
ever NaN or infinite.
"""

import math

import torch

from lenskit.core.arrays import atan_, atanh_, broadcast_shape
from lenskit.lensing.geometry import elliptical_frame

__all__ = ["deflection", "convergence", "potential", "hessian"]

_SERIES_F = 1e-2  # below this f = sqrt(1 - q^2) the q -> 1 series is used


def _over_f(fn, sign, f, t):
    """``fn(f t) / f`` (``fn`` arctan with ``sign`` -1, artanh with +1), continuous at f = 0 by its series."""
    small = f < _SERIES_F
    f_safe = torch.where(small, torch.ones_like(f), f)
    direct = fn(f_safe * t) / f_safe
    f2t2 = (f * t) ** 2
    series = t * (1 + sign * f2t2 / 3 + f2t2 * f2t2 / 5)
    return torch.where(small, series, direct)


def deflection(x, y, theta_E, e1, e2, x0, y0):
    """(alpha_x, alpha_y) in arcsec; 0 at the centre."""
    # written for the CPU's eager kernels: plain products and sums (a grid row times a parameter is small),
    # no comparisons or `where` over the grid (several times slower than arithmetic there)
    q, cp, sp, xp, yp = elliptical_frame(x, y, e1, e2, x0, y0)
    f = torch.sqrt(torch.clamp(1 - q * q, min=0))
    if not torch.compiler.is_compiling() and not bool((f < _SERIES_F).any()) and not (
            torch.is_grad_enabled() and any(torch.is_tensor(t) and t.requires_grad
                                            for t in (x, y, theta_E, e1, e2, x0, y0))) and \
            xp.shape == yp.shape == broadcast_shape(xp.shape, q.shape, torch.as_tensor(theta_E).shape):
        return _deflection_in_place(q, cp, sp, xp, yp, f, theta_E)
    psi2 = torch.addcmul(yp * yp, xp * xp, q * q)
    # psi2 < eps only within ~1e-10" of the centre, where x' and y' vanish: the ratios below are then 0,
    # and eps**-1.5 stays finite, so the gradient is 0, not NaN (the deflection at the centre is 0)
    inv_psi = torch.rsqrt(torch.clamp(psi2, min=math.sqrt(torch.finfo(psi2.dtype).tiny)))
    b = theta_E * torch.sqrt(q)
    if torch.compiler.is_compiling() or bool((f < _SERIES_F).any()):
        axp = b * _over_f(torch.atan, -1, f, xp * inv_psi)
        ayp = b * _over_f(torch.atanh, 1, f, yp * inv_psi)
    else:  # f folded into the one product with the grid, b / f into one multiplication per component
        s = inv_psi * f
        bf = b / f
        axp = torch.atan(xp * s) * bf
        ayp = torch.atanh(yp * s) * bf
    return cp * axp - sp * ayp, sp * axp + cp * ayp


def _deflection_in_place(q, cp, sp, xp, yp, f, theta_E):
    """`deflection`'s general branch on the new tensors ``xp``, ``yp`` (used up): simulations, no gradients."""
    psi2 = xp * q
    psi2.mul_(psi2).addcmul_(yp, yp)
    s = psi2.clamp_(min=math.sqrt(torch.finfo(psi2.dtype).tiny)).rsqrt_().mul_(f)  # f / psi
    bf = theta_E * torch.sqrt(q) / f
    axp = atan_(xp.mul_(s)).mul_(bf)  # NumPy's loops where they are faster (lenskit.core.arrays.atan_)
    ayp = atanh_(yp.mul_(s)).mul_(bf)
    ax = (axp * cp).addcmul_(ayp, -sp)
    return ax, ayp.mul_(cp).addcmul_(axp, sp)


def convergence(x, y, theta_E, e1, e2, x0, y0, r_core=1e-8):
    """kappa, capped inside ``r_core`` arcsec."""
    q, cp, sp, xp, yp = elliptical_frame(x, y, e1, e2, x0, y0)
    r2 = q * xp * xp + yp * yp / q
    r2 = torch.clamp(r2, min=r_core ** 2)
    return theta_E / (2 * torch.sqrt(r2))


def potential(x, y, theta_E, e1, e2, x0, y0):
    """psi in arcsec**2 (the SIE's potential is r . alpha)."""
    ax, ay = deflection(x, y, theta_E, e1, e2, x0, y0)
    return (x - x0) * ax + (y - y0) * ay


def hessian(x, y, theta_E, e1, e2, x0, y0, r_core=1e-8):
    """(psi_xx, psi_xy, psi_yy), capped inside ``r_core`` arcsec."""
    q, cp, sp, xp, yp = elliptical_frame(x, y, e1, e2, x0, y0)
    rc2 = r_core ** 2
    psi2 = torch.clamp(q * q * xp * xp + yp * yp, min=q * q * rc2)
    r2 = torch.clamp(xp * xp + yp * yp, min=rc2)
    pref = theta_E * torch.sqrt(q) / (torch.sqrt(psi2) * r2)
    hxx_p = pref * yp * yp
    hyy_p = pref * xp * xp
    hxy_p = -pref * xp * yp
    # rotate back: H = R^T H' R with R = [[c, s], [-s, c]]
    c2, s2, cs = cp * cp, sp * sp, cp * sp
    hxx = c2 * hxx_p - 2 * cs * hxy_p + s2 * hyy_p
    hyy = s2 * hxx_p + 2 * cs * hxy_p + c2 * hyy_p
    hxy = cs * (hxx_p - hyy_p) + (c2 - s2) * hxy_p
    return hxx, hxy, hyy
