"""Robust statistics shared by the deblenders, the lens finder's preprocessing and real-data noise estimates."""

import numpy as np
from astropy.stats import mad_std

__all__ = ["robust_sigma"]


def robust_sigma(values, axis=None):
    """
    The Gaussian-equivalent standard deviation from the median absolute deviation.

    ``1.4826 * median(|v - median(v)|)`` (`astropy.stats.mad_std`), ignoring
    NaN and infinite values.  With ``axis=None`` a float (0.0 when no value is
    finite); otherwise an array reduced along ``axis``.
    """

    v = np.asarray(values, dtype=float)
    if axis is None:
        v = v[np.isfinite(v)]
        return float(mad_std(v)) if v.size else 0.0
    return mad_std(np.where(np.isfinite(v), v, np.nan), axis=axis, ignore_nan=True)
