"""
What lenskit reads from FITS headers: the pixel scale (one policy) and the filter.

Every lenskit reader of FITS images (`lenskit.io.fits.read_cutout`,
``lenskit deblend`` on band images, the ``image_directory`` source) takes the
pixel scale the same way, in this order:

1. the value the caller passes (``pixel_scale=`` or ``--pixel-scale``);
2. the celestial WCS, the FITS standard's description of the pixel grid (the
   mean of its two axes' scales);
3. a pixel-scale keyword: ``PIXSCALE``, ``PIXSCAL``, ``PIXELSCL`` or
   ``PIXEL_SCALE`` (arcsec per pixel).

When the WCS and a keyword disagree by more than 1%, the WCS is used and a
`~lenskit.core.LenskitDataWarning` names both values: informal keywords are
often left stale when an image is resampled.
"""

import warnings

import numpy as np

from lenskit.core.exceptions import LenskitDataWarning

__all__ = ["SCALE_KEYWORDS", "celestial_wcs", "header_pixel_scale", "header_band"]

#: Header keywords read as arcsec per pixel when there is no celestial WCS.
SCALE_KEYWORDS = ("PIXSCALE", "PIXSCAL", "PIXELSCL", "PIXEL_SCALE")


def celestial_wcs(header):
    """The 2-D celestial `~astropy.wcs.WCS` of a header, or None."""
    from astropy.wcs import WCS  # astropy.wcs (80 ms): only where a WCS is

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = WCS(header).celestial
    except Exception:  # noqa: BLE001 - a header without a valid WCS has none
        return None
    return w if w.has_celestial and w.naxis == 2 else None


def header_pixel_scale(header, wcs=None, where="the header"):
    """
    Arcsec per pixel from a FITS header (WCS first, then `SCALE_KEYWORDS`), or None when neither says.

    Parameters
    ----------
    header : `astropy.io.fits.Header` or dict
    wcs : `~astropy.wcs.WCS`, optional
        The header's celestial WCS when the caller already has it.
    where : str
        The file, for the warning.
    """
    from astropy.wcs.utils import proj_plane_pixel_scales  # astropy.wcs (80 ms): only where a WCS is

    wcs = celestial_wcs(header) if wcs is None else wcs
    from_wcs = float(np.mean(proj_plane_pixel_scales(wcs)) * 3600) if wcs is not None else None
    key = next((k for k in SCALE_KEYWORDS if header.get(k)), None)
    from_key = float(header[key]) if key is not None else None
    if from_wcs is not None:
        if from_key is not None and abs(from_key - from_wcs) > 0.01 * from_wcs:
            warnings.warn(f"{where}: the WCS gives {from_wcs:.5g}\"/px but {key} = {from_key:g}; using the WCS "
                          f"(pass pixel_scale= to choose)", LenskitDataWarning, stacklevel=3)
        return from_wcs
    return from_key


def header_band(header):
    """The filter a header names (``FILTER``, else ``FILTER2`` / ``FILTER1`` other than CLEAR), or None."""
    if header is None:
        return None
    for key in ("FILTER", "FILTER2", "FILTER1"):
        value = str(header.get(key) or "").strip()
        if value and not value.upper().startswith("CLEAR"):
            return value
    return None
