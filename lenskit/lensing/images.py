"""Point-source images: solve the lens equation by triangle mapping and Newton polishing."""

import astropy.units as u
import numpy as np
import torch

from lenskit.lensing.critical import _extent, _scalar_params

__all__ = ["image_positions"]


def image_positions(mass_model, beta_x, beta_y, grid=400, extent=None, tol=1e-10, **params):
    """
    All images of a point source.

    The image plane is covered by a grid of triangles mapped to the source
    plane; every triangle that contains the source gives a candidate image,
    refined by Newton iterations on ``theta - alpha(theta) = beta`` and
    de-duplicated.

    Parameters
    ----------
    mass_model : `~lenskit.core.MassModel`
    beta_x, beta_y : float or `~astropy.units.Quantity`
        Source position (arcsec).
    grid, extent : int, float
        Triangle grid size and half-width around the lens centre.
    tol : float
        Convergence tolerance (arcsec) of the source-plane residual.
    **params
        Scalar model parameters.

    Returns
    -------
    `~astropy.units.Quantity`
        (K, 2) image positions in arcsec.
    magnifications : ndarray
        Signed point-source magnification of each image.
    """
    p = _scalar_params(mass_model, params)
    bx = float(beta_x.to_value(u.arcsec) if isinstance(beta_x, u.Quantity) else beta_x)
    by = float(beta_y.to_value(u.arcsec) if isinstance(beta_y, u.Quantity) else beta_y)
    extent = extent or _extent(mass_model, p) * 1.5 + np.hypot(bx, by)
    pt = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in p.items()}
    cx, cy = p.get("x0", 0.0), p.get("y0", 0.0)
    # offset the grid by a fraction of a cell so no vertex sits on a singular centre
    h = 2 * extent / grid
    c = np.linspace(-extent, extent, grid + 1) + 0.3183 * h
    X, Y = np.meshgrid(c + cx, c + cy, indexing="xy")
    xt, yt = torch.as_tensor(X), torch.as_tensor(Y)
    ax, ay = mass_model.deflection_tensor(xt, yt, **pt)
    SX, SY = (xt - ax).numpy() - bx, (yt - ay).numpy() - by
    cands = []
    for tri in (((0, 0), (0, 1), (1, 0)), ((1, 1), (1, 0), (0, 1))):
        (a0, a1), (b0, b1), (c0, c1) = tri
        n = grid
        A = (SX[a0:a0 + n, a1:a1 + n], SY[a0:a0 + n, a1:a1 + n])
        B = (SX[b0:b0 + n, b1:b1 + n], SY[b0:b0 + n, b1:b1 + n])
        C = (SX[c0:c0 + n, c1:c1 + n], SY[c0:c0 + n, c1:c1 + n])
        d1 = A[0] * B[1] - A[1] * B[0]
        d2 = B[0] * C[1] - B[1] * C[0]
        d3 = C[0] * A[1] - C[1] * A[0]
        inside = ((d1 >= 0) & (d2 >= 0) & (d3 >= 0)) | ((d1 <= 0) & (d2 <= 0) & (d3 <= 0))
        iy, ix = np.nonzero(inside)
        gx = (X[iy + a0, ix + a1] + X[iy + b0, ix + b1] + X[iy + c0, ix + c1]) / 3
        gy = (Y[iy + a0, ix + a1] + Y[iy + b0, ix + b1] + Y[iy + c0, ix + c1]) / 3
        cands.append(np.stack([gx, gy], axis=1))
    cands = np.concatenate(cands) if cands else np.zeros((0, 2))
    if len(cands) == 0:
        return np.zeros((0, 2)) * u.arcsec, np.zeros(0)
    x = torch.as_tensor(cands[:, 0])
    y = torch.as_tensor(cands[:, 1])
    for _ in range(50):
        ax, ay = mass_model.deflection_tensor(x, y, **pt)
        fx, fy = x - ax - bx, y - ay - by
        hxx, hxy, hyy = mass_model.hessian_tensor(x, y, **pt)
        a11, a12, a22 = 1 - hxx, -hxy, 1 - hyy
        det = a11 * a22 - a12 * a12
        det = torch.where(det.abs() < 1e-12, torch.full_like(det, 1e-12), det)
        dx = (a22 * fx - a12 * fy) / det
        dy = (-a12 * fx + a11 * fy) / det
        step = torch.sqrt(dx * dx + dy * dy)
        lim = torch.clamp(step, min=h) / h  # damp steps longer than a cell
        x, y = x - dx / lim, y - dy / lim
        if float(torch.sqrt(fx * fx + fy * fy).max()) < tol:
            break
    ax, ay = mass_model.deflection_tensor(x, y, **pt)
    res = torch.sqrt((x - ax - bx) ** 2 + (y - ay - by) ** 2).numpy()
    pts = np.stack([x.numpy(), y.numpy()], axis=1)[res < max(tol * 1e3, 1e-6)]
    # de-duplicate
    images = []
    for q in pts:
        if all(np.hypot(*(q - r)) > h for r in images):
            images.append(q)
    images = np.array(images).reshape(-1, 2)
    if len(images):
        hxx, hxy, hyy = mass_model.hessian_tensor(torch.as_tensor(images[:, 0]), torch.as_tensor(images[:, 1]), **pt)
        mu = (1 / ((1 - hxx) * (1 - hyy) - hxy * hxy)).numpy()
    else:
        mu = np.zeros(0)
    return images * u.arcsec, mu
