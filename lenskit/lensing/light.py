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

from lenskit.core.arrays import broadcast_shape, exp_, log_
from lenskit.lensing.geometry import frame_angles, offsets

__all__ = ["sersic_b", "sersic_total_flux", "elliptical_radius2", "sersic", "gaussian", "elliptical_sersic"]

#: Per dtype, the argument below which `exp_flush_` returns 0: exp of it is a normal number (float32's smallest is
#: exp(-87.34), float64's exp(-708.40)).
_EXP_FLOOR = {torch.float32: -87.0, torch.float64: -708.0}


def exp_flush_(t):
    """
    ``t.exp_()`` with results at or below ``exp(-87)`` (float32; ``exp(-708)`` for float64) set to 0.

    Flushes the underflow region (results smaller than about 1.7e-38, which
    float32 stores as denormals or zero) to zero, computed in place.  On CPUs
    torch's vectorised exp is 10-30 times slower for arguments in that region
    (1 ns against 11-30 ns per element), where a Sérsic or Gaussian profile
    puts most pixels of a stamp far from a compact source; the clamp and the
    threshold cost 0.2 ns.  Other dtypes: ``t.exp_()``.
    """
    floor = _EXP_FLOOR.get(t.dtype)
    if floor is None:
        return t.exp_()
    # the threshold a little above exp(floor): the clamped elements go to 0 however the device rounds exp(floor)
    return torch.nn.functional.threshold_(exp_(t.clamp_(min=floor)), math.exp(floor + 1e-3), 0.0)


def _series_b(n):
    """Ciotti & Bertin (1999) asymptotic series for b_n (1e-4 relative for n >= 1, 2e-3 at n = 0.5)."""
    return 2 * n - 1.0 / 3 + 4 / (405 * n) + 46 / (25515 * n**2) + 131 / (1148175 * n**3)


def _gamma_density(a, x):
    """d/dx of the regularised lower incomplete gamma function P(a, x)."""
    return torch.exp((a - 1) * torch.log(x) - x - torch.lgamma(a))


class _SersicB(torch.autograd.Function):
    """b_n solving P(2n, b) = 1/2 (Newton from the series), differentiable in n by the implicit function theorem."""

    @staticmethod
    def forward(ctx, n):
        a = 2 * n
        b = torch.clamp(_series_b(n), min=1e-3)
        for _ in range(6):  # quadratic convergence: the series is within 2e-3 for n >= 0.5
            step = (torch.special.gammainc(a, b) - 0.5) / _gamma_density(a, b)
            b = torch.clamp(b - step, min=0.1 * b)
        ctx.save_for_backward(n, b)
        return b

    @staticmethod
    def backward(ctx, grad):
        n, b = ctx.saved_tensors
        with torch.no_grad():  # db/dn as a constant: second derivatives (Laplace errors) see b linear in n
            a = 2 * n
            h = a * (1e-2 if a.dtype in (torch.float16, torch.bfloat16, torch.float32) else 1e-4)
            dp_da = (torch.special.gammainc(a + h, b) - torch.special.gammainc(a - h, b)) / (2 * h)
            slope = -2 * dp_da / _gamma_density(a, b)
        return grad * slope


def sersic_b(n):
    """
    The Sérsic ``b_n`` for which ``R_e`` encloses half the light: ``P(2n, b_n) = 1/2``.

    The same exact value for NumPy input (``gammaincinv(2n, 1/2)``) and for
    tensors, where it is found by Newton's method on any device and dtype and
    stays differentiable in ``n`` (the implicit function theorem gives the
    derivative), so that simulations and fits share one profile.
    """
    if isinstance(n, torch.Tensor):
        if not n.is_floating_point():
            n = n.to(torch.get_default_dtype())
        return _SersicB.apply(n)
    return gammaincinv(2 * np.asarray(n, dtype=float), 0.5)


def sersic_total_flux(R_e, n, I_e=1.0, b=None):
    """Total flux of a Sérsic profile with surface brightness ``I_e`` at ``R_e`` (NumPy); ``b``: its `sersic_b`,
    when the caller has it."""
    n = np.asarray(n, dtype=float)
    b = sersic_b(n) if b is None else np.asarray(b, dtype=float)
    return I_e * np.asarray(R_e, float) ** 2 * 2 * np.pi * n * np.exp(b) * b ** (-2 * n) * _gamma(2 * n)


def elliptical_radius2(x, y, e1, e2, x0=0.0, y0=0.0):
    """Squared elliptical radius ``q x'**2 + y'**2 / q`` (torch)."""
    q, cp, sp = frame_angles(e1, e2)
    dx, dy = offsets(x, y, x0, y0)
    # the rotation scaled by sqrt(q) and 1/sqrt(q): the radius is then a plain sum of squares
    rq = torch.sqrt(q)
    xs = (cp * rq) * dx + (sp * rq) * dy
    ys = (cp / rq) * dy - (sp / rq) * dx
    return torch.addcmul(xs * xs, ys, ys)


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
    as_t = lambda v: torch.as_tensor(v, dtype=r2.dtype, device=r2.device)  # noqa: E731
    R_e, n = as_t(R_e), as_t(n)
    b = as_t(sersic_b(n) if b is None else b)
    # (r/R_e)**(1/n) = exp((log r2 - log R_e**2) / (2 n)); the clamp keeps the centre finite
    inv2n = 1 / (2 * n)
    tiny = torch.finfo(r2.dtype).tiny
    if (torch.is_grad_enabled() and any(t.requires_grad for t in (r2, R_e, n, b))) or \
            broadcast_shape(r2.shape, R_e.shape, n.shape, b.shape) != r2.shape:
        s = torch.exp(torch.log(torch.clamp(r2, min=tiny)) * inv2n - torch.log(R_e * R_e) * inv2n)
        return torch.exp(b - b * s)
    # the same in place on one new tensor (a simulation's grids: each new tensor costs more than its arithmetic)
    s = exp_(log_(torch.clamp(r2, min=tiny)).mul_(inv2n).sub_(torch.log(R_e * R_e) * inv2n))
    return exp_flush_(s.mul_(-b).add_(b))


def gaussian(r2, sigma):
    """Unit-flux circular Gaussian in ``r2`` with standard deviation ``sigma``."""
    return torch.exp(-0.5 * r2 / (sigma * sigma)) / (2 * math.pi * sigma * sigma)


def elliptical_sersic(x, y, e1, e2, x0, y0, R_e, n, b, I_e):
    """
    ``I_e`` times an elliptical Sérsic profile centred on (x0, y0) (torch, broadcasting).

    A pure tensor function, so that it can be compiled with `torch.compile`.
    """
    tensors = [torch.as_tensor(v) for v in (x, y, e1, e2, x0, y0, R_e, n, b, I_e)]
    if torch.compiler.is_compiling() or (torch.is_grad_enabled() and any(t.requires_grad for t in tensors)) or \
            broadcast_shape(*(t.shape for t in tensors)) != x.shape or not x.is_floating_point():
        return I_e * sersic(elliptical_radius2(x, y, e1, e2, x0, y0), R_e, n, b)
    return sersic_in_place(x - x0, y - y0, e1, e2, R_e, n, b, I_e)


def sersic_in_place(dx, dy, e1, e2, R_e, n, b, I_e):
    """
    `elliptical_sersic` of the offsets ``dx = x - x0``, ``dy = y - y0``, computed in place on them.

    For simulations (no gradients): ``dx`` and ``dy`` are new tensors of the
    result's shape, which this function uses up; the profile's parameters
    broadcast against them.  Five fewer grid-sized tensors than
    `elliptical_sersic`, and for Gaussians (every ``n`` 1/2) no powers.
    """
    as_t = lambda v: torch.as_tensor(v, dtype=dx.dtype, device=dx.device)  # noqa: E731
    e1, e2, R_e, n, I_e = (as_t(v) for v in (e1, e2, R_e, n, I_e))
    b = sersic_b(n) if b is None else as_t(b)
    q, cp, sp = frame_angles(e1, e2)
    rq = torch.sqrt(q)
    # the rotation scaled by sqrt(q) / R_e and 1 / (sqrt(q) R_e): the sum of squares is then (r / R_e)**2
    xs = dx * (cp * rq / R_e)
    xs.addcmul_(dy, sp * rq / R_e)
    ys = dy.mul_(cp / (rq * R_e)).sub_(dx.mul_(sp / (rq * R_e)))
    s = xs.mul_(xs).addcmul_(ys, ys)
    if not bool((n == 0.5).all()):  # (r / R_e)**(1 / n) = exp(log((r / R_e)**2) / (2 n)); 1/2: the square itself
        exp_(log_(s.clamp_(min=torch.finfo(s.dtype).tiny)).mul_(1 / (2 * n)))
    return exp_flush_(s.mul_(-b).add_(b)).mul_(I_e)
