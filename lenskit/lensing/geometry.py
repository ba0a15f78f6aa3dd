"""Geometry shared by mass and light profiles: the elliptical frame (torch kernels)."""

import torch

__all__ = ["elliptical_frame"]


def elliptical_frame(x, y, e1, e2, x0, y0):
    """
    Axis ratio, rotation and rotated coordinates of an elliptical profile (torch).

    The one elliptical frame of lenskit's mass and light profiles: ``q = (1 - |e|) / (1 + |e|)``,
    ``phi`` counter-clockwise from +x with ``(e1, e2) = |e| (cos 2 phi, sin 2 phi)``, and
    ``(xp, yp)`` the coordinates about ``(x0, y0)`` rotated by ``phi``.

    Returns
    -------
    q, cos_phi, sin_phi, xp, yp : `torch.Tensor`
    """
    c = torch.sqrt(e1 * e1 + e2 * e2)
    q = (1 - c) / (1 + c)
    # cos(phi), sin(phi) from e without atan2: cos 2phi = e1/c, sin 2phi = e2/c
    c_safe = torch.where(c > 0, c, torch.ones_like(c))
    cos2 = torch.where(c > 0, e1 / c_safe, torch.ones_like(c))
    sin2 = torch.where(c > 0, e2 / c_safe, torch.zeros_like(c))
    cos_phi = torch.sqrt(torch.clamp((1 + cos2) / 2, min=0))
    sin_phi = torch.sqrt(torch.clamp((1 - cos2) / 2, min=0)) * torch.where(sin2 < 0, -1.0, 1.0).to(c.dtype)
    dx = x - x0
    dy = y - y0
    xp = cos_phi * dx + sin_phi * dy
    yp = -sin_phi * dx + cos_phi * dy
    return q, cos_phi, sin_phi, xp, yp
