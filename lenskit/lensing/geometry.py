"""Geometry shared by mass and light profiles: the elliptical frame (torch kernels)."""

import torch

__all__ = ["elliptical_frame", "frame_angles", "offsets"]


def frame_angles(e1, e2):
    """
    ``q, cos_phi, sin_phi`` of an ellipticity ``(e1, e2) = |e| (cos 2 phi, sin 2 phi)`` (torch).

    ``q = (1 - |e|) / (1 + |e|)``; the angle comes from ``e`` without atan2.
    """
    c = torch.sqrt(e1 * e1 + e2 * e2)
    q = (1 - c) / (1 + c)
    c_safe = torch.where(c > 0, c, torch.ones_like(c))
    cos2 = torch.where(c > 0, e1 / c_safe, torch.ones_like(c))
    sin2 = torch.where(c > 0, e2 / c_safe, torch.zeros_like(c))
    cos_phi = torch.sqrt(torch.clamp((1 + cos2) / 2, min=0))
    sin_phi = torch.sqrt(torch.clamp((1 - cos2) / 2, min=0)) * torch.where(sin2 < 0, -1.0, 1.0).to(c.dtype)
    return q, cos_phi, sin_phi


def offsets(x, y, x0, y0):
    """``(x - x0, y - y0)``, without a pass over the grid when a centre is the number 0."""
    dx = x if isinstance(x0, (int, float)) and x0 == 0 else x - x0
    dy = y if isinstance(y0, (int, float)) and y0 == 0 else y - y0
    return dx, dy


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
    q, cos_phi, sin_phi = frame_angles(e1, e2)
    dx, dy = offsets(x, y, x0, y0)
    # plain products and sums: on a grid the products are a row and a column, and their sum one pass
    # (addcmul of a row and a column broadcasts several times slower on the CPU)
    xp = cos_phi * dx + sin_phi * dy
    yp = cos_phi * dy - sin_phi * dx
    return q, cos_phi, sin_phi, xp, yp
