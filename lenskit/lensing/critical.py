"""
Critical curves, caustics and the multiple-image region.

A model that knows its critical curves in closed form says so through
`~lenskit.core.MassModel.analytic_critical_curves` (the SIE: the ellipse
``kappa = 1/2``); for any other model they are traced numerically as the zero
contour of ``det(I - H)`` on a grid (marching squares via contourpy, with
each vertex then polished by Newton steps along the gradient).  Caustics are
the critical curves mapped to the source plane.  For models whose centre is
singular (isothermal profiles) the boundary of the multiple-image region also
includes the *cut*, the source-plane image of an infinitesimal circle around
the centre.
"""

import astropy.units as u
import contourpy
import numpy as np
import torch

__all__ = ["critical_curves", "caustics", "multiple_image_region", "tangential_critical_rays",
           "self_similar_critical_radii"]


def _scalar_params(mass_model, params):
    numeric = {}
    for name in mass_model.param_names:
        if name not in params:
            raise ValueError(f"missing parameter {name!r}; expected {list(mass_model.param_names)}")
        v = params[name]
        v = v.to_value(mass_model.param_units[name]) if isinstance(v, u.Quantity) else v
        v = np.asarray(v, dtype=float)
        if v.size != 1:
            raise ValueError(f"critical curves are computed for one system at a time; {name} has shape {v.shape}")
        numeric[name] = float(v)
    mass_model.check_params(numeric)
    return numeric


def _extent(mass_model, p):
    scale = p.get("theta_E", 1.0)
    q = 1.0
    if "e1" in p:
        c = np.hypot(p["e1"], p["e2"])
        q = (1 - c) / (1 + c)
    return 1.5 * scale / np.sqrt(q) + 0.5 + abs(p.get("x0", 0)) + abs(p.get("y0", 0))


def _numeric_critical(mass_model, p, extent, n):
    c = np.linspace(-extent, extent, n)
    X, Y = np.meshgrid(c + p.get("x0", 0.0), c + p.get("y0", 0.0), indexing="xy")
    xt = torch.as_tensor(X, dtype=torch.float64)
    yt = torch.as_tensor(Y, dtype=torch.float64)
    pt = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in p.items()}
    hxx, hxy, hyy = mass_model.hessian_tensor(xt, yt, **pt)
    det = ((1 - hxx) * (1 - hyy) - hxy * hxy).numpy()
    gen = contourpy.contour_generator(X, Y, det, line_type=contourpy.LineType.Separate)
    curves = []
    for line in gen.lines(0.0):
        if len(line) < 8:
            continue
        curves.append(_polish(mass_model, pt, line))
    return curves


def _polish(mass_model, pt, pts, steps=3):
    """Newton steps along grad(det) to put contour vertices on det = 0."""
    x = torch.tensor(pts[:, 0], dtype=torch.float64)
    y = torch.tensor(pts[:, 1], dtype=torch.float64)
    for _ in range(steps):
        xg = x.clone().requires_grad_(True)
        yg = y.clone().requires_grad_(True)
        hxx, hxy, hyy = mass_model.hessian_tensor(xg, yg, **pt)
        det = (1 - hxx) * (1 - hyy) - hxy * hxy
        gx, gy = torch.autograd.grad(det.sum(), (xg, yg))
        g2 = gx * gx + gy * gy
        ok = g2 > 0
        step = torch.where(ok, det.detach() / torch.where(ok, g2, 1.0), 0.0)
        # never move further than a small fraction of the local scale
        step = torch.clamp(step, -1e3, 1e3)
        x = x - step * gx
        y = y - step * gy
    return np.stack([x.detach().numpy(), y.detach().numpy()], axis=1)


def critical_curves(mass_model, n=256, grid=400, extent=None, **params):
    """
    Critical curves of one lens system, as point arrays in arcsec.

    Parameters
    ----------
    mass_model : `~lenskit.core.MassModel`
    n : int
        Points per curve for analytic curves.
    grid, extent : int, float
        Numerical tracing: grid size and half-width (arcsec) around the
        centre (default: 1.5 theta_E / sqrt(q) plus margins).
    **params
        Scalar parameters of the system.

    Returns
    -------
    list of `~astropy.units.Quantity`
        Each an (M, 2) array of (x, y) in arcsec.
    """
    p = _scalar_params(mass_model, params)
    analytic = mass_model.analytic_critical_curves(n=n, **p)  # a closed form where the model has one
    if analytic is not None:
        return [np.stack([x.numpy(), y.numpy()], axis=1) * u.arcsec for x, y in analytic]
    extent = extent or _extent(mass_model, p)
    return [c * u.arcsec for c in _numeric_critical(mass_model, p, extent, grid)]


def caustics(mass_model, n=256, grid=400, extent=None, include_cut=True, **params):
    """
    Caustics: the critical curves mapped to the source plane.

    Parameters
    ----------
    include_cut : bool
        Also return the cut (pseudo-caustic) of a singular centre, which
        bounds the multiply-imaged region of isothermal lenses.

    Returns
    -------
    list of `~astropy.units.Quantity`
        Each an (M, 2) array of source-plane (x, y) in arcsec; the cut, when
        included, comes last.
    """
    p = _scalar_params(mass_model, params)
    pt = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in p.items()}
    out = []
    for crit in critical_curves(mass_model, n=n, grid=grid, extent=extent, **p):
        xy = torch.as_tensor(crit.to_value(u.arcsec))
        ax, ay = mass_model.deflection_tensor(xy[:, 0], xy[:, 1], **pt)
        out.append(np.stack([(xy[:, 0] - ax).numpy(), (xy[:, 1] - ay).numpy()], axis=1) * u.arcsec)
    if include_cut:
        cut = _cut(mass_model, pt, n)
        if cut is not None:
            out.append(cut * u.arcsec)
    return out


def _centre(pt):
    for a, b in (("x0", "y0"), ("0_x0", "0_y0")):
        if a in pt:
            return pt[a], pt[b]
    return torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.float64)


def _cut(mass_model, pt, n):
    """Source-plane image of a tiny circle around the centre, or None unless the deflection there is finite."""
    x0, y0 = _centre(pt)
    t = torch.linspace(0, 2 * np.pi, n + 1, dtype=torch.float64)[:-1]
    pts = []
    for eps in (1e-7, 1e-5):
        x = x0 + eps * torch.cos(t)
        y = y0 + eps * torch.sin(t)
        ax, ay = mass_model.deflection_tensor(x, y, **pt)
        pts.append(torch.stack([x - ax, y - ay], dim=1))
    # a singular (isothermal) centre has a finite deflection that does not vanish as eps -> 0; one that
    # vanishes or grows without bound there (a shallower or steeper power law) has no cut
    size = pts[0].sub(pts[0].mean(0)).norm(dim=1).max()
    if not torch.isfinite(size) or size < 1e-4 or (pts[0] - pts[1]).norm(dim=1).max() > 1e-3 * size:
        return None
    return pts[0].numpy()


def multiple_image_region(mass_model, n=256, **params):
    """
    Polygons bounding the source positions that are multiply imaged.

    Returns the caustics and the cut (see `caustics`) as plain (M, 2) arrays
    in arcsec; a source inside any of them has at least two images.
    """
    return [c.to_value(u.arcsec) for c in caustics(mass_model, n=n, include_cut=True, **params)]


def tangential_critical_rays(mass_model, params, centre, scale, n=96, radii=32, steps=30, dtype=torch.float64):
    """
    The tangential critical curves of N systems at once, found along rays from their centres.

    Along each of ``n`` directions from ``centre`` the tangential eigenvalue
    ``1 - kappa - |gamma|`` of the lens mapping is evaluated at ``radii``
    radii from 0.02 to 4 times ``scale`` (geometric); the outermost change
    of sign from negative to positive is then narrowed by ``steps`` steps of
    the Illinois method (regula falsi that halves the weight of an end point
    kept twice: superlinear, and never leaving the bracket); it stops early
    once no estimate moves by more than the dtype's precision.  For
    lenses whose tangential critical curve each ray crosses once (an elliptical
    profile with moderate external shear) this is the curve; a ray with no
    change of sign gets the radius ``scale``.

    Parameters
    ----------
    mass_model : `~lenskit.core.MassModel`
    params : dict
        Parameter arrays shaped (N,).
    centre : (ndarray, ndarray)
        The rays' origins (N,) in arcsec, usually the main lens's centre.
    scale : ndarray
        (N,) a radius of order the Einstein radius (arcsec).
    n, radii, steps : int
        Rays, radii per ray and the most Illinois steps.
    dtype : torch.dtype
        Of the search (float32: about 3 times faster, the radii to a few parts in 10**7).

    Returns
    -------
    ndarray (N, n, 2)
        Image-plane points of the curves, in arcsec.
    """
    def col(v):
        return torch.as_tensor(np.asarray(v, dtype=float)).to(dtype)[:, None, None]

    pt = {k: col(v) for k, v in params.items()}
    x0, y0, s = col(centre[0]), col(centre[1]), col(scale)
    ang = torch.linspace(0, 2 * np.pi, n + 1, dtype=torch.float64)[:-1].to(dtype)
    ux, uy = torch.cos(ang)[None, :, None], torch.sin(ang)[None, :, None]

    def eig(r):  # the tangential eigenvalue at radii r (N, n, k)
        hxx, hxy, hyy = mass_model.hessian_tensor(x0 + r * ux, y0 + r * uy, **pt)
        return 1 - 0.5 * (hxx + hyy) - torch.sqrt((0.5 * (hxx - hyy)) ** 2 + hxy * hxy)

    r = s * torch.as_tensor(np.geomspace(0.02, 4.0, radii), dtype=dtype)[None, None, :]
    r = r.expand(len(s), n, radii)
    lam = eig(r)
    up = (lam[..., :-1] < 0) & (lam[..., 1:] >= 0)  # (N, n, radii - 1)
    k = torch.arange(radii - 1).expand_as(up)
    last = torch.where(up, k, torch.full_like(k, -1)).amax(-1)  # the outermost crossing, -1 where none
    found = last >= 0
    kk = last.clamp(min=0)[..., None]
    lo, hi = torch.gather(r, -1, kk), torch.gather(r, -1, kk + 1)
    flo, fhi = torch.gather(lam, -1, kk), torch.gather(lam, -1, kk + 1)  # flo < 0 <= fhi where found
    side = torch.zeros_like(lo)  # which end the last step replaced: -1 lo, +1 hi
    eps = 4 * torch.finfo(dtype).eps
    last = None
    for _ in range(steps):
        denom = fhi - flo
        mid = torch.where(denom > 0, lo - flo * (hi - lo) / torch.where(denom > 0, denom, 1.0), 0.5 * (lo + hi))
        mid = torch.minimum(torch.maximum(mid, lo), hi)
        fm = eig(mid)
        neg = fm < 0
        # Illinois: an end point kept a second time in a row has its value halved
        fhi = torch.where(neg & (side < 0), 0.5 * fhi, fhi)
        flo = torch.where(~neg & (side > 0), 0.5 * flo, flo)
        lo, flo = torch.where(neg, mid, lo), torch.where(neg, fm, flo)
        hi, fhi = torch.where(neg, hi, mid), torch.where(neg, fhi, fm)
        side = torch.where(neg, -1.0, 1.0).to(dtype)
        if last is not None and bool(((mid - last).abs() <= eps * mid).all()):
            break  # every estimate has stopped moving
        last = mid
    best = torch.where(flo.abs() < fhi.abs(), lo, hi)
    rc = torch.where(found[..., None], best, s.expand(-1, n, 1))[..., 0]
    x = x0[..., 0] + rc * ux[..., 0]
    y = y0[..., 0] + rc * uy[..., 0]
    return torch.stack([x, y], -1).to(torch.float64).numpy()


def self_similar_critical_radii(hxx, hxy, hyy, t, gamma1=0.0, gamma2=0.0):
    """
    The tangential and radial critical radii along rays of a self-similar lens plus a constant external shear.

    Along a ray from the centre a power law's Hessian is ``s H_1`` with
    ``s = r**-t`` (``H_1 = (hxx, hxy, hyy)`` at unit distance); with the
    shear's constant Hessian the eigenvalues of the lens mapping are
    ``1 - s kappa_1 -+ |s gamma_1 + Gamma|``, which vanish where
    ``a s**2 - 2 b s + c = 0`` with ``a = kappa_1**2 - |gamma_1|**2``,
    ``b = kappa_1 + gamma_1 . Gamma``, ``c = 1 - |Gamma|**2``.  The smaller
    root is the tangential curve (outermost), the larger one, where ``a > 0``
    (profiles shallower than isothermal), the radial curve.

    Returns
    -------
    r_t, r_r : `torch.Tensor`
        Broadcast shapes of the inputs; ``r_r`` is 0 where there is no radial curve.
    """
    kappa, g1, g2 = 0.5 * (hxx + hyy), 0.5 * (hxx - hyy), hxy
    a = kappa * kappa - g1 * g1 - g2 * g2
    b = kappa + g1 * gamma1 + g2 * gamma2
    c = 1 - gamma1 * gamma1 - gamma2 * gamma2
    root = torch.sqrt(torch.clamp(b * b - a * c, min=0))
    r_t = torch.pow(c / (b + root), -1 / t)  # the smaller root, stable where a -> 0 (the SIE: kappa = |gamma|)
    radial = a > 0
    s_r = torch.where(radial, (b + root) / torch.where(radial, a, torch.ones_like(a)), torch.ones_like(a))
    return r_t, torch.where(radial, torch.pow(s_r, -1 / t), torch.zeros_like(s_r))
