"""Hundreds of real galaxies cut out of the Hubble eXtreme Deep Field image that scikit-image ships."""

import numpy as np
from astropy.stats import sigma_clipped_stats
from photutils.segmentation import SourceCatalog, detect_sources
from scipy.ndimage import gaussian_filter
from skimage.data import hubble_deep_field

from lenskit.core.validation import as_float, check_int
from lenskit.sources.stamps import StampSource

__all__ = ["HUDFSource", "XDF_PIXEL_SCALE"]

#: Nominal arcsec per pixel of ``skimage.data.hubble_deep_field()``: the XDF release image (2.3' x 2.0') in
#: 1000 x 872 pixels.  Only the galaxies' shapes matter once they are rescaled to the drawn size.
XDF_PIXEL_SCALE = 0.138


def xdf_field(channels="grey"):
    """
    The XDF colour image of ``skimage.data`` as float: (H, W) grey (mean of R, G, B) or (3, H, W).

    It is the HubbleSite release image (2012-37a): a colour composite with a display stretch, so its
    pixel values are not linear in flux.  Galaxies cut from it have real morphologies -- clumps, arms,
    bars, mergers -- with a compressed dynamic range, as the Galaxy Zoo JPEGs of Hezaveh et al. (2017).
    """
    rgb = np.asarray(hubble_deep_field(), dtype=float)
    if channels == "grey":
        return rgb.mean(axis=2)
    if channels == "rgb":
        return np.moveaxis(rgb, 2, 0)
    raise ValueError(f"channels must be 'grey' or 'rgb'; got {channels!r}")


class HUDFSource(StampSource):
    """
    Galaxies of the Hubble eXtreme Deep Field, cut out of the image scikit-image ships.

    The field is segmented with photutils (``field_sigma`` above its
    sigma-clipped background, after a one-pixel Gaussian smoothing); every
    segment of ``min_area`` to ``max_area`` pixels away from the field's
    edges is cut out in a square of ``stamp_factor`` times its extent and
    prepared like every real-galaxy stamp (background, neighbours removed by
    segmentation and deblending, noise-aware taper:
    `~lenskit.sources.stamps.prepare_stamp`).  Each galaxy is named by its
    position (``xdf-XXXX-YYYY``), so the train / validation / test split by
    identity is the same on every machine.  No download: the image comes with
    scikit-image.

    Parameters
    ----------
    min_area, max_area : int
        Segment sizes (pixels of 0.138") kept; the default 60 keeps galaxies
        resolved over a few resolution elements.  With the default
        ``min_snr=30`` about 400 galaxies remain (about 330 in the training
        split).
    field_sigma : float
        Detection threshold of the field's segmentation, in units of its
        background noise.  Default 3.
    stamp_factor : float
        Stamp side in units of the segment's larger extent.  Default 2.
    channels : {"grey", "rgb"}
        One band, the mean of the colour channels (default, as Hezaveh et
        al. did with Galaxy Zoo), or three.
    **kwargs
        Options of `~lenskit.sources.stamps.StampSource` (``size``,
        ``split`` ...).
    """

    name = "hudf"

    def __init__(self, min_area=60, max_area=20000, field_sigma=3.0, stamp_factor=2.0, channels="grey", **kwargs):
        kwargs.setdefault("min_snr", 30.0)
        super().__init__(**kwargs)
        self.min_area = check_int("min_area", min_area, minimum=5)
        self.max_area = check_int("max_area", max_area, minimum=self.min_area)
        self.field_sigma = as_float(field_sigma, "field_sigma")
        if not self.field_sigma > 0:
            raise ValueError(f"field_sigma must be > 0; got {field_sigma}")
        self.stamp_factor = as_float(stamp_factor, "stamp_factor")
        if not self.stamp_factor >= 1:
            raise ValueError(f"stamp_factor must be >= 1; got {stamp_factor}")
        if channels not in ("grey", "rgb"):
            raise ValueError(f"channels must be 'grey' or 'rgb'; got {channels!r}")
        self.channels = channels

    def segments(self):
        """The field's galaxies: a table of photutils' `~photutils.segmentation.SourceCatalog` rows kept."""
        grey = xdf_field("grey")
        _, sky, noise = sigma_clipped_stats(grey, sigma=3.0, maxiters=10)
        sm = gaussian_filter(grey - sky, 1.0)
        seg = detect_sources(sm, self.field_sigma * noise / np.sqrt(4 * np.pi), n_pixels=self.min_area)
        cat = SourceCatalog(grey - sky, seg)
        h, w = grey.shape
        keep = []
        for src in cat:
            area = int(src.area.value)
            if not self.min_area <= area <= self.max_area:
                continue
            bb = src.bbox
            if bb.ixmin <= 0 or bb.iymin <= 0 or bb.ixmax >= w or bb.iymax >= h:
                continue  # cut by the field's edge
            keep.append(src)
        return keep, noise

    def _read(self):
        field = xdf_field(self.channels)
        planes = field if field.ndim == 3 else field[None]
        h, w = planes.shape[1:]
        galaxies, noise = self.segments()
        for src in galaxies:
            bb = src.bbox
            extent = max(bb.ixmax - bb.ixmin, bb.iymax - bb.iymin)
            half = max(16, int(np.ceil(self.stamp_factor * extent / 2)))
            x, y = int(round(src.x_centroid)), int(round(src.y_centroid))
            x0, x1, y0, y1 = max(x - half, 0), min(x + half + 1, w), max(y - half, 0), min(y + half + 1, h)
            r = min(x - x0, x1 - 1 - x, y - y0, y1 - 1 - y)  # the largest square centred on the galaxy
            if r < 8:
                continue
            stamp = planes[:, y - r:y + r + 1, x - r:x + r + 1]
            yield (f"xdf-{x:04d}-{y:04d}", stamp if field.ndim == 3 else stamp[0], XDF_PIXEL_SCALE,
                   "skimage.data.hubble_deep_field", None)
