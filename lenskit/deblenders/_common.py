"""Input handling shared by the deblenders."""

import numpy as np

from lenskit.core.dataset import LensDataset
from lenskit.core.validation import as_real_array

__all__ = ["as_cube", "circular_mask"]


def as_cube(images, masks=None, bands=None, name="images"):
    """
    Normalise deblender input to (N, bands, H, W) float64 plus (N, H, W) masks.

    Accepts a `~lenskit.LensDataset`, an array (N, bands, H, W), (bands, H, W)
    or, for one band, (H, W).  NaN or infinite pixels are allowed only under
    masks.  Returns ``(cube, masks, bands, pixel_scale)``.
    """

    pixel_scale = None
    if isinstance(images, LensDataset):
        if masks is None and images.masks is not None:
            masks = np.asarray(images.masks, bool).any(axis=1)
        bands = list(images.bands) if bands is None else bands
        pixel_scale = float(images.pixel_scale.value)
        images = images.images
    arr = as_real_array(images, name)
    if arr.ndim == 2:
        arr = arr[None, None]
    elif arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"{name} must be shaped (N, bands, H, W), (bands, H, W) or (H, W); got {np.shape(images)}")
    n, nb, h, w = arr.shape
    if n == 0 or h < 4 or w < 4:
        raise ValueError(f"{name} must hold at least one image of at least 4 x 4 pixels; got {arr.shape}")
    if masks is None:
        m = np.zeros((n, h, w), bool)
    else:
        m = np.asarray(masks, dtype=bool)
        if m.ndim == 2:
            m = m[None]
        if m.ndim == 4:  # per-band masks: a pixel masked in any band is excluded
            m = m.any(axis=1)
        if m.shape != (n, h, w):
            raise ValueError(f"masks must be shaped (N, H, W) = {(n, h, w)} to match {name}; got {np.shape(masks)}")
        m = m.copy()
    bad = ~np.isfinite(arr)
    if bad.any():
        outside = bad & ~m[:, None]
        if outside.any():
            raise ValueError(f"{name} contain {int(outside.sum())} NaN or infinite pixel(s) outside the masks; "
                             f"mask them (masks=...) or repair them")
        arr = np.where(bad, 0.0, arr)
    if m.reshape(n, -1).all(axis=1).any():
        raise ValueError("masks cover every pixel of an image: nothing left to fit")
    if bands is None:
        bands = [f"band{i}" for i in range(nb)]
    bands = [str(b) for b in bands]
    if len(bands) != nb:
        raise ValueError(f"bands must name the {nb} band(s) of {name}; got {bands}")
    return arr, m, bands, pixel_scale


def circular_mask(shape, centres, radius_pix):
    """Boolean (H, W) mask of discs of ``radius_pix`` about each (y, x) centre."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    out = np.zeros((h, w), bool)
    for cy, cx in centres:
        out |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius_pix ** 2
    return out
