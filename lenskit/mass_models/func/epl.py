"""
Elliptical power-law mass profile (EPL): torch kernels (Tessore & Metcalf 2015).

Pure functions of tensors in arcsec with lenskit's conventions, as
`lenskit.mass_models.func.sie`: ``theta_E`` the intermediate-axis Einstein
radius, ``e1, e2`` the spin-2 ellipticity ``(1-q)/(1+q) (cos 2phi, sin 2phi)``,
``x0, y0`` the centre, and ``slope`` the logarithmic slope gamma of the
three-dimensional density (``rho ~ r**-gamma``; 2 is isothermal, where every
kernel equals the SIE's).  With ``t = slope - 1``, in the frame rotated by
``phi``::

    kappa = (2 - t) / 2 (theta_E / sqrt(q x'**2 + y'**2 / q))**t

Writing ``b = theta_E sqrt(q)``, ``R = sqrt(q**2 x'**2 + y'**2)`` and
``phi_e`` the elliptical angle (``R cos phi_e = q x'``, ``R sin phi_e = y'``),
the deflection ``alpha' = alpha'_x + i alpha'_y`` is Tessore & Metcalf's
(2015, eq. 13)::

    alpha' = 2 b / (1 + q) (b / R)**(t - 1) e^{i phi_e} 2F1(1, t/2; 2 - t/2; -f e^{2 i phi_e}),   f = (1-q)/(1+q)

summed as their series (eq. 29: each term is the last times
``-f (2n - 2 + t) / (2n + 2 - t) e^{2 i phi_e}``), with as many terms as the
flattest system of the batch needs for the dtype's precision (the terms fall
at least as ``f**n``).  The profile is self-similar: the deflection is
homogeneous of degree ``1 - t`` in the offset from the centre, so the
potential is ``(x' alpha'_x + y' alpha'_y) / (2 - t)`` and the complex shear
``((1 - t) alpha' z - kappa z**2) / |z|**2`` (``z = x' + i y'``).  The
deflection at the centre is 0; the convergence and Hessian are capped at
radius ``r_core``.
"""

import math

import torch

from lenskit.lensing.geometry import elliptical_frame

__all__ = ["deflection", "convergence", "potential", "hessian", "n_terms"]

#: The most terms of the hypergeometric series a batch is given (f = 0.8, q = 0.11, needs about 160 in float64).
MAX_TERMS = 400


@torch.compiler.disable  # reads a value: compiled callers break their graph here, without a warning
def n_terms(f_max, dtype):
    """Terms of the series after the first for a batch whose largest ``f = (1-q)/(1+q)`` is ``f_max``."""
    f_max = float(f_max)
    if f_max <= 0:
        return 0
    tol = torch.finfo(dtype).eps / 4
    # the tail after n terms is below f**(n + 1) / (1 - f) of the first term's modulus (1)
    return min(MAX_TERMS, max(0, math.ceil(math.log(tol * (1 - f_max)) / math.log(f_max)) - 1))


def _series(xp, yp, q, theta_E, t):
    """The deflection ``(ax', ay')`` at the rotated offsets ``(x', y')`` (the ellipse's frame)."""
    tiny = torch.finfo(xp.dtype).tiny
    big_r2 = torch.clamp((q * xp) ** 2 + yp * yp, min=math.sqrt(tiny))
    inv_r = torch.rsqrt(big_r2)
    u = q * xp * inv_r  # e^{i phi_e}: the series' first term
    v = yp * inv_r
    c2 = u * u - v * v  # e^{2 i phi_e}
    s2 = 2 * u * v
    f = (1 - q) / (1 + q)
    terms = n_terms(torch.as_tensor(f).detach().max(), xp.dtype)
    b = theta_E * torch.sqrt(q)
    pref = 2 * b / (1 + q) * torch.pow(b * inv_r, t - 1)
    if torch.is_grad_enabled() and any(torch.is_tensor(v) and v.requires_grad for v in (xp, yp, q, theta_E, t)):
        su, sv = u, v
        for n in range(1, terms + 1):
            a = -f * (2 * n - 2 + t) / (2 * n + 2 - t)
            u, v = a * (u * c2 - v * s2), a * (u * s2 + v * c2)
            su, sv = su + u, sv + v
        return pref * su, pref * sv
    # no gradient wanted: the same sums in place on complex numbers (three passes over the grid per term),
    # and for a batch of systems (parameters shaped (N, 1, ...)) each system given only the terms it needs:
    # ordered by f, the systems still summing are a leading slice
    n_sys = c2.shape[0] if c2.dim() else 0
    per_system = (n_sys > 1 and torch.is_tensor(f) and f.dim() == c2.dim() and f.shape[0] == n_sys
                  and f[0].numel() == 1)
    complex_ok = c2.dtype in (torch.float32, torch.float64)
    z = torch.complex(u.expand_as(c2), v.expand_as(c2)) if complex_ok else torch.stack(
        torch.broadcast_tensors(u, v, c2)[:2])
    w = torch.complex(c2, s2) if complex_ok else torch.stack([c2, s2])
    order = None
    if per_system:
        fs = f.reshape(n_sys)
        order = torch.argsort(fs, descending=True)
        need = [n_terms(v_, c2.dtype) for v_ in fs[order].tolist()]
        z, w = (z[order], w[order]) if complex_ok else (z[:, order], w[:, order])
        f = f[order]
        t = t[order] if torch.is_tensor(t) and t.dim() == f.dim() and t.shape[0] == n_sys else t
    total = z.clone()
    if terms:
        # every term's factor at once: -f (2n - 2 + t) / (2n + 2 - t), n = 1 .. terms, along a last dimension
        n_ = torch.arange(1, terms + 1, dtype=c2.dtype, device=c2.device)
        ft, tt = torch.as_tensor(f, dtype=c2.dtype)[..., None], torch.as_tensor(t, dtype=c2.dtype)[..., None]
        coeff = -ft * (2 * n_ - 2 + tt) / (2 * n_ + 2 - tt)
    n = 1
    while n <= terms:
        # the systems still summing are the first k; their views are taken once for the terms they share
        k = sum(1 for m in need if m >= n) if per_system else n_sys
        last = need[k - 1] if per_system else terms
        ck = coeff[:k] if per_system and coeff.dim() > 1 and coeff.shape[0] == n_sys else coeff
        if complex_ok:
            zk, wk, tk = (a[:k] for a in (z, w, total)) if per_system else (z, w, total)
            for m in range(n, last + 1):
                zk.mul_(wk).mul_(ck[..., m - 1])
                tk.add_(zk)
        else:  # (real, imaginary) pairs in dimension 0, for dtypes without complex kernels
            (uk, vk), (c2k, s2k), (suk, svk) = ((a[0][:k], a[1][:k]) if per_system else (a[0], a[1])
                                                for a in (z, w, total))
            for m in range(n, last + 1):
                a = ck[..., m - 1]
                nu = (uk * c2k).addcmul_(vk, s2k, value=-1).mul_(a)
                vk.mul_(c2k).addcmul_(uk, s2k).mul_(a)
                uk.copy_(nu)
                suk.add_(uk)
                svk.add_(vk)
        n = last + 1
    if order is not None:
        back = torch.empty_like(order)
        back[order] = torch.arange(n_sys, device=order.device)
        total = total[back] if complex_ok else total[:, back]
    su, sv = (total.real, total.imag) if complex_ok else (total[0], total[1])
    return torch.mul(su, pref), torch.mul(sv, pref)


def _kappa(xp, yp, q, theta_E, t, r_core):
    r2 = torch.clamp(q * xp * xp + yp * yp / q, min=max(r_core**2, torch.finfo(xp.dtype).tiny))
    return (2 - t) / 2 * torch.pow(theta_E * torch.rsqrt(r2), t)


def deflection(x, y, theta_E, slope, e1, e2, x0, y0):
    """(alpha_x, alpha_y) in arcsec; 0 at the centre."""
    q, cp, sp, xp, yp = elliptical_frame(x, y, e1, e2, x0, y0)
    axp, ayp = _series(xp, yp, q, theta_E, slope - 1)
    return cp * axp - sp * ayp, sp * axp + cp * ayp


def convergence(x, y, theta_E, slope, e1, e2, x0, y0, r_core=1e-8):
    """kappa, capped inside ``r_core`` arcsec."""
    q, _, _, xp, yp = elliptical_frame(x, y, e1, e2, x0, y0)
    return _kappa(xp, yp, q, theta_E, slope - 1, r_core)


def potential(x, y, theta_E, slope, e1, e2, x0, y0):
    """psi in arcsec**2: the offset dotted with the deflection, over ``2 - t`` (psi is homogeneous of degree 2 - t)."""
    q, _, _, xp, yp = elliptical_frame(x, y, e1, e2, x0, y0)
    t = slope - 1
    axp, ayp = _series(xp, yp, q, theta_E, t)
    return (xp * axp + yp * ayp) / (2 - t)


def hessian(x, y, theta_E, slope, e1, e2, x0, y0, r_core=1e-8):
    """(psi_xx, psi_xy, psi_yy); within ``r_core`` arcsec of the centre, their values at that radius."""
    q, cp, sp, xp, yp = elliptical_frame(x, y, e1, e2, x0, y0)
    t = slope - 1
    r2 = xp * xp + yp * yp
    # inside r_core: the point at r_core in the same direction (along +x' at the centre itself)
    out = torch.clamp(r2, min=torch.finfo(r2.dtype).tiny).rsqrt().mul(r_core).clamp(min=1.0)
    xp = torch.where(r2 > 0, xp * out, torch.full_like(xp, max(r_core, 1e-30)))
    yp = yp * out
    r2 = xp * xp + yp * yp
    axp, ayp = _series(xp, yp, q, theta_E, t)
    kappa = _kappa(xp, yp, q, theta_E, t, 0.0)
    # the complex shear ((1 - t) alpha z - kappa z**2) / |z|**2 in the rotated frame
    g1 = ((1 - t) * (axp * xp - ayp * yp) - kappa * (xp * xp - yp * yp)) / r2
    g2 = ((1 - t) * (axp * yp + ayp * xp) - kappa * 2 * xp * yp) / r2
    hxx_p, hyy_p, hxy_p = kappa + g1, kappa - g1, g2
    c2, s2, cs = cp * cp, sp * sp, cp * sp
    hxx = c2 * hxx_p - 2 * cs * hxy_p + s2 * hyy_p
    hyy = s2 * hxx_p + 2 * cs * hxy_p + c2 * hyy_p
    hxy = cs * (hxx_p - hyy_p) + (c2 - s2) * hxy_p
    return hxx, hxy, hyy

