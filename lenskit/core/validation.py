"""
Argument checks shared by every lenskit module.

Each check raises a `ValueError` or `TypeError` that names the argument, the
value received and what was expected, before any work starts.
"""

import numbers

import astropy.units as u
import numpy as np

__all__ = [
    "as_rng",
    "to_value",
    "check_finite",
    "check_images",
    "check_positive",
    "check_choice",
]


def as_rng(seed):
    """
    Return a `numpy.random.Generator` from a seed, a generator or None.

    Parameters
    ----------
    seed : None, int, `numpy.random.SeedSequence` or `numpy.random.Generator`

    Returns
    -------
    `numpy.random.Generator`
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (numbers.Integral, np.random.SeedSequence)):
        if isinstance(seed, numbers.Integral) and seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {seed}")
        return np.random.default_rng(seed)
    raise TypeError(
        f"seed must be None, an int, a numpy SeedSequence or a numpy Generator; got {type(seed).__name__}"
    )


def to_value(value, unit, name, equivalencies=None):
    """
    Return ``value`` as a float array in ``unit``.

    Plain numbers are taken to be in ``unit`` already; Quantities are
    converted, and a Quantity whose unit cannot be converted raises a
    `~astropy.units.UnitConversionError` naming the argument.
    """
    if isinstance(value, u.Quantity):
        try:
            return value.to_value(unit, equivalencies=equivalencies or [])
        except u.UnitConversionError as exc:
            raise u.UnitConversionError(
                f"{name} must be in units convertible to {unit}; got {value.unit}"
            ) from exc
    if unit is not None and unit != u.dimensionless_unscaled and hasattr(value, "unit"):
        raise TypeError(f"{name} has an unexpected unit attribute: {value!r}")
    return value


def check_finite(name, value):
    """Raise `ValueError` if ``value`` holds NaN or infinity."""
    arr = np.asarray(value)
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {n_bad} NaN or infinite value(s)")
    return value


def check_positive(name, value, allow_zero=False):
    """Raise `ValueError` unless every element of ``value`` is finite and > 0 (>= 0)."""
    arr = np.asarray(value, dtype=float)
    check_finite(name, arr)
    bad = arr < 0 if allow_zero else arr <= 0
    if np.any(bad):
        what = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {what}; got {arr[bad].ravel()[:5]}")
    return value


def check_choice(name, value, choices):
    """Raise `ValueError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(map(str, choices))}; got {value!r}")
    return value


def check_images(images, name="images", ndim=4, allow_nan=False):
    """
    Check an image stack shaped (N, bands, H, W) and return it as float32 numpy.

    A 2-D image is promoted to (1, 1, H, W) and a 3-D stack to (N, 1, H, W)
    when ``ndim`` is 4.
    """
    try:
        import torch

        if isinstance(images, torch.Tensor):
            images = images.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if isinstance(images, u.Quantity):
        images = images.value
    arr = np.asarray(images)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array; got dtype {arr.dtype}")
    if ndim == 4:
        if arr.ndim == 2:
            arr = arr[None, None]
        elif arr.ndim == 3:
            arr = arr[:, None]
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions (N, bands, H, W); got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not allow_nan:
        check_finite(name, arr)
    return arr


def network_inputs(images, masks, in_shape, what="estimator", expects=None):
    """
    Images (and masks) for a network expecting ``in_shape`` = (bands, H, W).

    Accepts arrays or a `~lenskit.LensDataset` (whose masks are used when
    ``masks`` is None).  Masks may be (N, H, W) or (N, bands, H, W); NaNs are
    allowed only under them and masked pixels are set to 0.

    Returns
    -------
    images : ndarray (float32), masks : ndarray of bool or None
    """
    from lenskit.core.dataset import LensDataset

    if isinstance(images, LensDataset):
        if masks is None:
            masks = images.masks
        images = images.images
    arr = check_images(images, "images", allow_nan=masks is not None)
    if tuple(arr.shape[1:]) != tuple(in_shape):
        raise ValueError(f"images must be shaped (N, {', '.join(map(str, in_shape))}) for this {what} "
                         f"(trained for {expects or {}}); got {arr.shape}. Resample real cutouts onto its grid "
                         f"first (lenskit.io.fits).")
    m = None
    if masks is not None:
        m = np.asarray(masks, bool)
        if m.ndim == 3:
            m = m[:, None]
        m = np.broadcast_to(m, arr.shape)
        bad = ~np.isfinite(arr) & ~m
        if bad.any():
            raise ValueError(f"images contain {int(bad.sum())} NaN or infinite pixel(s) outside the masks")
        arr = np.where(m, 0.0, arr).astype(np.float32)
    return arr, m
