"""
The one renderer: lensed sources and lens light on a pixel grid (torch kernels).

`~lenskit.Simulator`, `lenskit.fit` and the forecasts of
``benchmarks/information_limit.py`` all draw their noise-free images here, so
a simulated lens, a fitted model and a Fisher forecast are the same function of
the same parameters.  The renderer is model-agnostic: it takes the lens's
deflection kernel, a source's surface brightness and (optionally) the lens
light's as callables, evaluates them on the (super-sampled) pixel grid, and
averages the sub-pixels.  Fluxes, the PSF and noise are the caller's.

Pixel centres sit at ``(i - (n - 1) / 2) * pixel_scale`` (arcsec), images are
indexed ``[y, x]``.
"""

import torch
import torch.nn.functional as F

__all__ = ["pixel_grid", "downsample", "render"]


def pixel_grid(shape, pixel_scale, supersample=1, device="cpu", dtype=torch.float32):
    """
    Pixel-centre coordinates in arcsec: ``x`` shaped (W*s,) and ``y`` shaped (H*s,).

    With ``supersample`` = s each pixel is split into s x s sub-pixels.
    Computed in float64 and then cast, so the grid is the same on every device.
    """
    s = int(supersample)
    if s < 1:
        raise ValueError(f"supersample must be a positive integer; got {supersample}")
    scale = float(pixel_scale) / s
    h, w = int(shape[0]) * s, int(shape[1]) * s
    y = (torch.arange(h, dtype=torch.float64) - (h - 1) / 2) * scale
    x = (torch.arange(w, dtype=torch.float64) - (w - 1) / 2) * scale
    return x.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype)


def downsample(images, supersample):
    """Average ``supersample`` x ``supersample`` sub-pixels of (..., H*s, W*s) images (identity for s = 1)."""
    s = int(supersample)
    if s == 1:
        return images
    lead = images.shape[:-2]
    flat = images.reshape(-1, 1, *images.shape[-2:])
    out = F.avg_pool2d(flat, s)
    return out.reshape(*lead, *out.shape[-2:])


def render(deflection, params, source, x, y, pixel_scale, *, supersample=1, source_offset=None, light=None):
    """
    Noise-free surface brightness of lensed sources and lens light, averaged over each pixel.

    Parameters
    ----------
    deflection : callable
        ``deflection(x, y, **params) -> (ax, ay)``: a mass model's kernel
        (``MassModel.deflection_tensor``, possibly compiled) or any function of the
        same form (arcsec).
    params : dict of `torch.Tensor`
        The mass parameters, broadcastable against the grid (shape (n, 1, 1)
        for n systems on an (H, W) grid).
    source : callable
        ``source(bx, by) -> surface brightness`` at source-plane positions
        (a `~lenskit.core.SourceBatch`'s ``brightness``, or a profile).
    x, y : `torch.Tensor`
        The grid (`pixel_grid`, super-sampled), shaped to broadcast as
        columns and rows (for example (1, 1, W*s) and (1, H*s, 1)).
    pixel_scale : float
        Arcsec per (output) pixel.
    supersample : int
        Sub-pixels per pixel side in ``x`` and ``y``.
    source_offset : (`torch.Tensor`, `torch.Tensor`), optional
        Added to the ray-traced positions' negatives: the source plane is
        ``(x - ax - bx0, y - ay - by0)``, for sources drawn about the origin.
    light : callable, optional
        ``light(x, y) -> surface brightness`` of the lens galaxy (image plane).

    Returns
    -------
    arcs : `torch.Tensor`
        Lensed-source surface brightness per pixel, the grid's leading shape
        with (H, W) last.
    lens_light : `torch.Tensor` or None
        The lens light on the same grid.
    total : `torch.Tensor`
        The lensed source's integrated brightness (sum over the sub-pixels
        times their area) per leading index, before averaging: divided by the
        source's own flux it is the magnification.
    """
    ax, ay = deflection(x, y, **params)
    if source_offset is not None:  # offsets taken from the grid's row and column first: one pass each
        bx, by = (x - source_offset[0]) - ax, (y - source_offset[1]) - ay
    else:
        bx, by = x - ax, y - ay
    sb = source(bx, by)
    sub_area = (float(pixel_scale) / int(supersample)) ** 2
    total = sb.reshape(*sb.shape[:-2], -1).sum(-1) * sub_area
    arcs = downsample(sb, supersample)
    lens = None if light is None else downsample(light(x, y), supersample)
    return arcs, lens, total
