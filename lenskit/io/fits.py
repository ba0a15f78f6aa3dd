"""
Real cutouts from FITS, prepared for lenskit's estimators, and estimates written to FITS.

`read_cutout` reads an image (any HDU; electrons per second or counts), an
optional noise map and PSF, and the WCS when there is one, into a `Cutout`.
A `Cutout` finds the lens-light centre, resamples onto an estimator's pixel
grid centred there (conserving flux), converts position angles east of north
to lenskit's ``phi`` through its WCS, and becomes a `~lenskit.LensDataset`.

Resampling method
-----------------
Both grids are axis-aligned, so the resampling is separable and exact for
flux: each output pixel receives, from each input pixel, the fraction of the
input pixel's area that it overlaps (``out = W_y @ image @ W_x.T`` with 1-D
overlap matrices whose columns sum to 1 wherever the output covers the
input).  Total flux is conserved to rounding; surface brightness is conserved
when the scales differ.  Variances propagate with the squared weights
(correlations that resampling introduces are not tracked).  Rotation is not
resampled: lenskit's angles are measured on the image's own axes, and
`Cutout.phi_from_position_angle` converts sky angles to them.

The FITS reader family (one pixel-scale policy, `lenskit.core.headers`):
`read_image` (one HDU and its header), `read_images` (cutouts or cubes for the
estimators, or a dataset), `read_cutout` (image, noise, PSF, WCS) and
`read_band_images` (one file per band on one grid).
"""

import json
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import QTable, Table

from lenskit.core.conventions import position_angle_to_phi
from lenskit.core.dataset import UNKNOWN_BAND, LensDataset
from lenskit.core.deblended import Deblended
from lenskit.core.estimate import Estimate
from lenskit.core.exceptions import LenskitDataWarning, LenskitFileError
from lenskit.core.files import atomic_path
from lenskit.core.headers import SCALE_KEYWORDS, celestial_wcs, header_band, header_pixel_scale
from lenskit.core.provenance import Provenance
from lenskit.core.validation import as_float, as_real_array, check_positive
from lenskit.core.validation import indefinite as _a
from lenskit.io.asdf import read

#: `Cutout.to_stamp`: more than this fraction of a network's field beyond the cutout is refused ...
MAX_FIELD_OUTSIDE = 0.5
#: ... and more than this is filled with the cutout's background and warned about
WARN_FIELD_OUTSIDE = 0.2
#: `Cutout.fill_large_masks` in `Cutout.to_stamp`: masked regions larger than this (arcsec**2) are filled with the
#: background -- the HST training recipe masks at most five discs of 0.2" radius (0.63 arcsec**2) to zeros
MASK_FILL_AREA = 0.63

__all__ = ["Cutout", "read_image", "read_images", "read_cutout", "read_band_images", "overlap_matrix", "write_estimate_fits", "read_estimate_fits"]

COUNT_UNITS = ("COUNTS", "ELECTRONS", "ELECTRON", "E-", "DN", "ADU")
RATE_UNITS = ("ELECTRONS/S", "ELECTRON/S", "E-/S", "E/S", "COUNTS/S", "CPS", "DN/S")


def overlap_matrix(n_in, scale_in, n_out, scale_out, shift=0.0):
    """
    Fraction of each input pixel falling in each output pixel, (n_out, n_in).

    Pixel centres sit at ``(i - (n - 1) / 2) * scale`` (arcsec); the output
    grid is displaced by ``shift`` arcsec (its centre lands on the input
    coordinate ``shift``).
    """
    e_in = (np.arange(n_in + 1) - n_in / 2) * scale_in
    e_out = (np.arange(n_out + 1) - n_out / 2) * scale_out + shift
    lo = np.maximum(e_out[:-1, None], e_in[None, :-1])
    hi = np.minimum(e_out[1:, None], e_in[None, 1:])
    return np.clip(hi - lo, 0, None) / scale_in


def _hdu_data(hdul, hdu, path, what):
    if hdu is None:
        found = next((h for h in hdul if h.data is not None and np.ndim(h.data) == 2), None)
        if found is None:
            raise LenskitFileError(f"{path} holds no 2-D image HDU for the {what}")
        return found
    try:
        found = hdul[hdu]
    except (KeyError, IndexError) as exc:
        names = [h.name for h in hdul]
        raise ValueError(f"{path} has no HDU {hdu!r} for the {what}; it has {names}") from exc
    if found.data is None or np.ndim(found.data) != 2:
        raise LenskitFileError(f"{path}[{hdu!r}] is not a 2-D image (the {what})")
    return found


def _open(path, data=True):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.stat().st_size == 0:
        raise LenskitFileError(f"{path} is empty")
    # every header (and, with ``data``, every data unit) is read here, so that a truncated or corrupt file fails
    # now, with its name, rather than as a reshape error (data cut short) or a missing image (a header cut short:
    # astropy warns and drops the unit) when a unit is first used.  Readers of one unit of a large file (a
    # survey mosaic beside its weight maps) pass ``data=False`` and check the one they read.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdul = fits.open(path, memmap=False)
        except OSError as exc:
            raise LenskitFileError(f"{path} could not be read as FITS: {type(exc).__name__}: {exc}") from exc
        try:
            hdul.readall()
            for h in hdul if data else ():
                h.data  # noqa: B018 (astropy reads the data when it is first asked for)
        except (OSError, ValueError, TypeError, IndexError) as exc:
            hdul.close()
            raise LenskitFileError(f"{path} is truncated or corrupt: a header or data unit could not be read "
                                   f"({type(exc).__name__}: {exc})") from exc
    seen = set()
    for w in caught:
        msg = str(w.message)
        if issubclass(w.category, fits.verify.VerifyWarning) and "Error validating header" in msg:
            hdul.close()
            raise LenskitFileError(f"{path} is truncated or corrupt: {' '.join(msg.split())}")
        if (w.category, msg) not in seen:  # the others as they came, once each (the reads above repeat some)
            seen.add((w.category, msg))
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return hdul

def _std_uncertainty():
    from astropy.nddata import StdDevUncertainty  # astropy.nddata: only for NDData input

    return StdDevUncertainty


def read_image(path, hdu=0):
    """
    One 2-D image HDU and its header: ``(data (float64), header)``.

    A missing file is a `FileNotFoundError`; an empty, unreadable or
    non-image HDU is a `~lenskit.LenskitFileError` naming the file.
    """
    with _open(path, data=False) as hl:  # the other units' data (a mosaic's weight maps) are not read
        if isinstance(hdu, int) and hdu >= len(hl):
            raise LenskitFileError(f"{path} has {len(hl)} HDU(s); HDU {hdu} was asked for")
        try:
            data, header = hl[hdu].data, hl[hdu].header
        except Exception as exc:
            raise LenskitFileError(f"{path} is truncated or corrupt: HDU {hdu!r} could not be read "
                                   f"({type(exc).__name__}: {exc})") from exc
        if data is None or np.ndim(data) < 2:
            raise LenskitFileError(f"{path} HDU {hdu} holds no 2-D image")
        return np.array(data, dtype=float), header


def read_images(path, as_cube=True, as_dataset=False, pixel_scale=None):
    """
    Images from a `~lenskit.LensDataset` ``.asdf`` file, the arcs of a `~lenskit.core.Deblended` one, or a FITS
    image / cube.

    Parameters
    ----------
    path : path
    as_cube : bool
        Return FITS data as (N, bands, H, W): a 2-D image is one single-band
        cutout, a 3-D cube N single-band cutouts.  Otherwise as stored.
    as_dataset : bool
        Return FITS data whose pixel scale is known (from the header's WCS or
        ``PIXSCALE``-like keyword, or ``pixel_scale``) as a `~lenskit.LensDataset`
        (as a cube), so that an estimator checks it against the pixel scale
        and band it was trained on (the header's ``FILTER`` names the band of
        single-band data; otherwise the bands are unknown, and match any).
        Without a known pixel scale the array, as without it.  With
        ``as_cube=False`` a 2-D image stays as stored (one cutout, for
        `read_cutout`) and only cubes become datasets.
    pixel_scale : float or `~astropy.units.Quantity`, optional
        Arcsec per pixel of FITS data, in place of the header's.

    Returns
    -------
    `~lenskit.LensDataset` or `numpy.ndarray` (float32)
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix == ".asdf":
        obj = read(path)
        if isinstance(obj, Deblended):  # the arcs of `lenskit deblend`, for estimators that expect no lens light
            return obj.to_dataset()
        if not isinstance(obj, LensDataset):
            raise TypeError(f"{path} holds {_a(type(obj).__name__)}, not a LensDataset or a Deblended")
        return obj
    if not (path.suffix.lower() in (".fits", ".fit", ".fz") or path.name.lower().endswith(".fits.gz")):
        raise ValueError(f"{path}: expected a .asdf dataset or a .fits image / cube")
    with _open(path) as hl:
        try:
            hdu = next((h for h in hl if h.data is not None and np.ndim(h.data) >= 2), None)
            if hdu is None:
                raise LenskitFileError(f"{path} holds no image")
            if np.asarray(hdu.data).dtype.kind not in "iuf":
                raise LenskitFileError(f"{path} holds {np.asarray(hdu.data).dtype} pixels; expected real numbers")
            data = np.asarray(hdu.data, dtype=np.float32)
            header = hdu.header.copy()
        except LenskitFileError:
            raise
        except Exception as exc:
            raise LenskitFileError(f"{path} could not be read as FITS: {type(exc).__name__}: {exc}") from exc
    if not as_cube and (not as_dataset or data.ndim == 2):  # as stored (with as_dataset: one 2-D image)
        return data
    if data.ndim == 2:
        data = data[None, None]
    elif data.ndim == 3:
        data = data[:, None]
    elif data.ndim != 4:
        raise LenskitFileError(f"{path} holds a {data.ndim}-D image; expected (H, W), (N, H, W) or (N, B, H, W)")
    if not as_dataset:
        return data
    if pixel_scale is not None:
        scale = as_float(pixel_scale, "pixel_scale", u.arcsec)
        check_positive("pixel_scale", scale)
    else:
        scale = header_pixel_scale(header, where=str(path))
    if scale is None:  # nothing to check the data against: the array, as stored
        return data
    band = header_band(header) if data.shape[1] == 1 else None
    return LensDataset(data, QTable({"source_file": [path.name] * len(data)}), bands=[band or UNKNOWN_BAND] *
                       data.shape[1], pixel_scale=scale, provenance=Provenance.current(config={"source": str(path)}))


class Cutout:
    """
    A real image of a lens with its noise map, PSF and WCS.

    Attributes
    ----------
    image : ndarray
        (H, W) in electrons per second.
    noise : ndarray or None
        (H, W) 1-sigma noise in the same unit (non-finite or huge values mark masked pixels).
    psf : ndarray or None
        Normalised PSF kernel.
    pixel_scale : float
        Arcsec per pixel.
    wcs : `astropy.wcs.WCS` or None
    header : `astropy.io.fits.Header`
    path : str
    """

    def __init__(self, image, pixel_scale, noise=None, psf=None, wcs=None, header=None, path=None, mask=None):
        img = as_real_array(image, "image")
        if img.ndim != 2 or min(img.shape) < 4:
            raise ValueError(f"image must be a 2-D array of at least 4 x 4 pixels; got shape {img.shape}")
        pixel_scale = as_float(pixel_scale, "pixel_scale", u.arcsec)
        if not pixel_scale > 0:
            raise ValueError(f"pixel_scale must be a positive number of arcsec; got {pixel_scale}")
        self.mask = np.zeros(img.shape, bool) if mask is None else np.asarray(mask, bool).copy()
        if self.mask.shape != img.shape:
            raise ValueError(f"mask must be shaped like the image {img.shape}; got {self.mask.shape}")
        self.mask |= ~np.isfinite(img)
        if noise is not None:
            noise = as_real_array(noise, "noise")
            if noise.shape != img.shape:
                raise ValueError(f"noise must be shaped like the image {img.shape}; got {noise.shape}")
            bad = ~np.isfinite(noise) | (noise <= 0) | (noise >= 1e6 * np.nanmedian(np.where(noise > 0, noise, np.nan)))
            self.mask |= bad
        if self.mask.all():
            raise ValueError("every pixel of the cutout is masked or not finite")
        if psf is not None:
            psf = as_real_array(psf, "psf")
            if psf.ndim != 2 or not np.all(np.isfinite(psf)) or psf.sum() <= 0:
                raise ValueError(f"psf must be a finite 2-D kernel with positive sum; got shape {psf.shape}")
            psf = psf / psf.sum()
        self.image = np.where(self.mask, 0.0, img)
        self.noise = noise
        self.psf = psf
        self.pixel_scale = float(pixel_scale)
        self.wcs = wcs
        self.header = header
        self.path = None if path is None else str(path)
        #: the fraction of this grid beyond the cutout it was resampled from (`resample`); 0 for an original
        self.outside_fraction = 0.0
        #: the fraction of its pixels that `fill_large_masks` filled; 0 otherwise
        self.filled_fraction = 0.0

    @classmethod
    def from_nddata(cls, data, pixel_scale=None, psf=None):
        """
        A `Cutout` from an `~astropy.nddata.NDData` (or `~astropy.nddata.CCDData`): what photutils users hold.

        The image is ``data.data`` (in its ``unit``; rates are expected), the
        noise its uncertainty converted to a standard deviation, the mask its
        ``mask``, the WCS its celestial WCS, and the pixel scale, unless given,
        comes from that WCS or the ``PIXSCALE``-like keywords of its ``meta``
        (lenskit's one policy, `lenskit.core.headers`).  ``psf`` defaults to
        ``data.psf`` where the object has one.
        """
        if not hasattr(data, "data") or not hasattr(data, "uncertainty"):
            raise TypeError(f"data must be an astropy NDData or CCDData; got {type(data).__name__}")
        image = np.asarray(data.data, dtype=float)
        noise = None
        if data.uncertainty is not None:
            unc = data.uncertainty
            noise = np.broadcast_to(np.asarray(unc.represent_as(_std_uncertainty()).array, float), image.shape)
        wcs = None if data.wcs is None else getattr(data.wcs, "celestial", data.wcs)
        header = dict(getattr(data, "meta", {}) or {})
        if pixel_scale is None:
            pixel_scale = header_pixel_scale(header, wcs=wcs, where="the NDData's meta")
        if pixel_scale is None:
            raise ValueError("pixel_scale: the NDData has no celestial WCS or PIXSCALE-like keyword; pass "
                             "pixel_scale= (arcsec per pixel)")
        mask = None if data.mask is None else np.broadcast_to(np.asarray(data.mask, bool), image.shape)
        if psf is None:
            psf = getattr(data, "psf", None)
        return cls(image, pixel_scale, noise=noise, psf=psf, wcs=wcs, mask=mask)

    @property
    def shape(self):
        return self.image.shape

    def light_centre(self, box=None, smooth=1.5):
        """
        (x, y) pixel of the lens-light centre (0-based).

        The peak of the smoothed image within the central ``box`` pixels
        (default half the cutout), refined to sub-pixel precision by a
        quadratic fitted to the 5 x 5 pixels about it.
        """
        from scipy import ndimage  # heavy (scipy): `import lenskit` stays light

        h, w = self.shape
        box = int(box or max(h, w) // 2)
        sm = ndimage.gaussian_filter(np.where(self.mask, 0.0, self.image), smooth)
        win = np.full(sm.shape, -np.inf)
        y0, x0 = (h - box) // 2, (w - box) // 2
        win[y0:y0 + box, x0:x0 + box] = sm[y0:y0 + box, x0:x0 + box]
        py, px = np.unravel_index(np.argmax(win), win.shape)
        from photutils.centroids import centroid_quadratic  # heavy: `import lenskit` stays light

        y0, x0 = max(py - 4, 0), max(px - 4, 0)
        sub = sm[y0:py + 5, x0:px + 5]
        try:  # a quadratic fitted to the 5 x 5 pixels about the peak: sub-pixel and unbiased by the window
            x, y = centroid_quadratic(sub, fit_boxsize=5)
            x, y = x + x0, y + y0
        except Exception:
            x, y = np.nan, np.nan
        if not (np.isfinite(x) and np.isfinite(y) and abs(x - px) < 1.5 and abs(y - py) < 1.5):
            return float(px), float(py)
        return float(x), float(y)

    def _grid(self, pixel_scale, shape, centre):
        """Checked arguments of `resample` and `coverage`: scale, (rows, cols), centre and the overlap matrices."""
        pixel_scale = as_float(pixel_scale, "pixel_scale", u.arcsec)
        if not pixel_scale > 0:
            raise ValueError(f"pixel_scale must be > 0 arcsec; got {pixel_scale}")
        hn, wn = (int(s) for s in shape)
        if hn < 4 or wn < 4:
            raise ValueError(f"shape must be at least 4 x 4; got {shape}")
        cx, cy = self.light_centre() if centre is None else (float(centre[0]), float(centre[1]))
        h, w = self.shape
        s_in = self.pixel_scale
        wx = overlap_matrix(w, s_in, wn, pixel_scale, shift=(cx - (w - 1) / 2) * s_in)
        wy = overlap_matrix(h, s_in, hn, pixel_scale, shift=(cy - (h - 1) / 2) * s_in)
        return pixel_scale, wx, wy

    def coverage(self, pixel_scale, shape, centre=None):
        """
        The fraction of a grid of ``shape`` pixels of ``pixel_scale`` arcsec centred on ``centre`` (x, y in input
        pixels; default `light_centre`) that lies on this cutout: each new pixel counts when at least half of it
        does.  1 when the cutout covers the grid (what `resample` with ``outside="noise"`` fills is the rest).
        """
        _, wx, wy = self._grid(pixel_scale, shape, centre)
        return float(np.mean(np.outer(wy.sum(1), wx.sum(1)) >= 0.5))

    def resample(self, pixel_scale, shape, centre=None, outside="mask"):
        """
        Flux-conserving resampling onto a grid of ``shape`` pixels of ``pixel_scale`` arcsec.

        The new grid is centred on ``centre`` (x, y in input pixels; default
        `light_centre`).

        Parameters
        ----------
        pixel_scale : float or Quantity
        shape : (int, int)
        centre : (float, float), optional
        outside : {"mask", "noise"}
            Pixels of the new grid that lie mostly beyond the cutout: 0 and
            masked (default), or filled with the cutout's background -- the
            median of its unmasked pixels plus Gaussian noise of their median
            noise (the noise map's, else the pixels' own robust scatter), from
            a fixed seed -- and not masked.  A network that never saw a blank
            border reads one badly (an HST network whose 7.68" field loses a
            sixth of its width to a zero border: 68% theta_E error 0.54"
            instead of 0.11"; with the border filled, 0.13"), so
            `~lenskit.modelling.model_lens` and ``lenskit estimate`` fill it.

        Returns
        -------
        `Cutout`
            With ``outside_fraction``: the fraction of the new grid beyond the cutout (1 - `coverage`).
        """
        if outside not in ("mask", "noise"):
            raise ValueError(f"outside must be 'mask' or 'noise'; got {outside!r}")
        pixel_scale, wx, wy = self._grid(pixel_scale, shape, centre)
        s_in = self.pixel_scale
        img = wy @ self.image @ wx.T
        cover = wy @ (~self.mask).astype(float) @ wx.T
        full = np.outer(wy.sum(1), wx.sum(1))
        beyond = full < 0.5
        mask = cover < 0.5 * np.maximum(full, 1e-12)
        mask |= full < 1e-6
        noise = None
        if self.noise is not None:
            var = np.where(self.mask, 0.0, self.noise ** 2)
            noise = np.sqrt((wy ** 2) @ var @ (wx ** 2).T)
            noise = np.where(mask, np.inf, np.maximum(noise, 1e-30))
        psf = self.psf
        if psf is not None and not np.isclose(pixel_scale, s_in, rtol=1e-3):
            from scipy import ndimage  # heavy (scipy): `import lenskit` stays light

            k = ndimage.zoom(psf, s_in / pixel_scale, order=1)
            psf = k / k.sum() if k.sum() > 0 else None
        out = Cutout(np.where(mask, 0.0, img), pixel_scale, noise=noise, psf=psf, wcs=None, header=self.header,
                     path=self.path, mask=mask)
        if outside == "noise" and beyond.any():
            if not (~out.mask & ~beyond).any():
                raise ValueError("no unmasked pixel of the cutout lies on the new grid: nothing to fill it from")
            out = out._filled(beyond, seed=0)
        out.outside_fraction = float(np.mean(beyond))
        return out

    def _filled(self, region, seed):
        """
        A copy with the pixels of ``region`` replaced by the background -- the median of the other unmasked
        pixels plus Gaussian noise of their median noise (the noise map's, else `robust_sigma` of the pixels),
        drawn from ``seed`` -- and no longer masked: `resample` (``outside="noise"``) and `fill_large_masks`.
        """
        if not region.any():
            out = Cutout(self.image, self.pixel_scale, noise=self.noise, psf=self.psf, wcs=self.wcs,
                         header=self.header, path=self.path, mask=self.mask)
            out.outside_fraction = self.outside_fraction
            return out
        from lenskit.core.statistics import robust_sigma  # astropy.stats (7 ms): `import lenskit` stays light

        use = ~self.mask & ~region
        level = float(np.median(self.image[use]))
        if self.noise is not None and np.isfinite(self.noise[use]).any():
            sigma = float(np.median(self.noise[use]))
        else:
            sigma = robust_sigma(self.image[use])
        fill = level + sigma * np.random.default_rng(seed).standard_normal(self.shape)
        out = Cutout(np.where(region, fill, self.image), self.pixel_scale,
                     noise=None if self.noise is None else np.where(region, max(sigma, 1e-30), self.noise),
                     psf=self.psf, wcs=self.wcs, header=self.header, path=self.path, mask=self.mask & ~region)
        out.outside_fraction = self.outside_fraction
        return out

    def check_field(self, pixel_scale, shape, centre=None, what="the estimator"):
        """
        How much of a network's field (``shape`` pixels of ``pixel_scale`` arcsec about ``centre``) lies beyond
        the cutout: the fraction, 1 - `coverage`.

        More than `MAX_FIELD_OUTSIDE` (half) is refused, naming the sizes; more than `WARN_FIELD_OUTSIDE` is
        warned about (`~lenskit.core.LenskitDataWarning`): `to_stamp` fills it with the cutout's background
        noise, and on simulated HST lenses whose 7.68" field lost 31% of its area so, the 68% theta_E error of
        ``hst_wfc3`` grew from 0.11" to 0.13" (56%: 0.19").  ``what`` names the network in the messages.
        """
        ps = as_float(pixel_scale, "pixel_scale", u.arcsec)
        outside = 1.0 - self.coverage(ps, shape, centre)
        field = f"{shape[1] * ps:.3g}\" x {shape[0] * ps:.3g}\""
        have = f"{self.shape[1] * self.pixel_scale:.3g}\" x {self.shape[0] * self.pixel_scale:.3g}\""
        where = f"{self.path}: " if self.path else ""
        if outside > MAX_FIELD_OUTSIDE:
            raise ValueError(f"{where}the cutout ({have}) covers only {100 * (1 - outside):.0f}% of {what}'s "
                             f"{field} field about the lens centre; a network reads a field that is mostly blank "
                             f"or filled badly: give a cutout at least {field} around the lens")
        if outside > WARN_FIELD_OUTSIDE:
            warnings.warn(f"{where}{100 * outside:.0f}% of {what}'s {field} field lies beyond the cutout ({have}) "
                          f"and is filled with the cutout's background noise: the estimate is less accurate than "
                          f"on a cutout that covers the field", LenskitDataWarning, stacklevel=3)
        return outside

    def to_stamp(self, pixel_scale, shape, centre=None, what="the estimator", check=True):
        """
        The cutout on a network's grid: `check_field` (refused beyond half the field, warned beyond a fifth),
        then `resample` with ``outside="noise"``, then `fill_large_masks` (masked regions larger than the
        training's masks filled with the background).  ``check=False`` skips `check_field`, for a caller that
        made it already, before its own work (`~lenskit.modelling.model_lens`, before the deblending).
        """
        if check:
            self.check_field(pixel_scale, shape, centre, what)
        return self.resample(pixel_scale, shape, centre=centre, outside="noise").fill_large_masks()

    def fill_large_masks(self, area=MASK_FILL_AREA):
        """
        A copy whose masked regions (8-connected) larger than ``area`` arcsec**2 are filled with the background:
        the median of the unmasked pixels plus Gaussian noise of their median noise (else their robust scatter),
        from a fixed seed, and no longer masked.

        A network reads masked pixels as zeros, as its training's masks were; a masked region far larger than
        those (a chip gap, a bad column, a satellite trail) it reads badly: on 200 simulated HST lenses with a
        1" wide strip masked across the 7.68" field, the 68% theta_E error of ``hst_wfc3`` was 0.35-0.38" with
        the strip zeros, 0.11-0.13" with it filled (0.10" without a strip).  Smaller regions (cosmic rays) stay
        masked.  ``outside_fraction`` is kept; ``filled_fraction`` is the fraction of pixels filled here.
        """
        from scipy import ndimage  # heavy (scipy): `import lenskit` stays light

        area = as_float(area, "area", u.arcsec ** 2)
        if not area >= 0:
            raise ValueError(f"area must be >= 0 arcsec**2; got {area}")
        labels, n = ndimage.label(self.mask, structure=np.ones((3, 3)))
        sizes = np.bincount(labels.ravel(), minlength=n + 1) * self.pixel_scale ** 2
        big = (sizes > area)[labels] & self.mask
        out = self._filled(big, seed=1)
        out.filled_fraction = float(big.mean())
        return out

    def phi_from_position_angle(self, pa_deg):
        """lenskit ``phi`` (radians, from the image's +x axis) of a position angle east of north."""

        if self.wcs is None:
            raise ValueError(f"{self.path or 'this cutout'} has no WCS: its orientation is unknown, so a position "
                             f"angle east of north cannot be converted")
        return position_angle_to_phi(pa_deg, self.wcs)

    @property
    def band(self):
        """The filter named by the header (``FILTER``, or ``FILTER1`` / ``FILTER2`` other than CLEAR), else None."""
        return header_band(self.header)

    def to_dataset(self, band=None, instrument=None, lens_light="unknown"):
        """
        A one-image `~lenskit.LensDataset` (masks and noise included) for estimators and deblenders.

        ``band`` defaults to the header's filter (`band`), or ``"unknown"``
        when the header names none: estimators then check the pixel scale
        alone (`lenskit.estimators.inputs.check_expects`).  ``lens_light``
        records whether the image holds the lens galaxy's light: True, False,
        ``"deblended"``, or ``"unknown"`` (default: a real image says nothing),
        which an estimator trained without lens light refuses, naming
        `~lenskit.modelling.pipeline.model_lens`.
        """
        band = band or self.band or UNKNOWN_BAND
        noise = None if self.noise is None else np.where(self.mask, 1e30, self.noise)[None, None].astype(np.float32)
        prov = Provenance.current(config={"lens_light": lens_light})
        return LensDataset(self.image[None, None].astype(np.float32), QTable({"source_file": [self.path or ""]}),
                           bands=[band], pixel_scale=self.pixel_scale, instrument=instrument, noise=noise,
                           masks=self.mask[None, None], provenance=prov)

    def __repr__(self):
        return (f"<Cutout {self.shape[0]}x{self.shape[1]} at {self.pixel_scale:g}\"/px"
                f"{' +noise' if self.noise is not None else ''}{' +psf' if self.psf is not None else ''}"
                f"{' +wcs' if self.wcs is not None else ''}>")


def read_cutout(path, hdu=None, noise=None, noise_hdu=None, psf=None, psf_hdu=None, pixel_scale=None,
                exposure_time=None, unit=None):
    """
    Read a real cutout from FITS.

    Parameters
    ----------
    path : path
        The image file.
    hdu : int or str, optional
        HDU of the image (default: the first 2-D image).
    noise, psf : path, optional
        Separate files holding the noise map and the PSF.
    noise_hdu, psf_hdu : int or str, optional
        Their HDUs: in the ``noise`` / ``psf`` file when one is given (default
        its first image), otherwise in ``path``.
    pixel_scale : float, optional
        Arcsec per pixel; default from the header by lenskit's one policy
        (`lenskit.core.headers`: the celestial WCS, else ``PIXSCALE`` and
        similar keywords).
    exposure_time : float, optional
        Seconds, to convert counts to counts per second (default ``EXPTIME``).
    unit : {"rate", "counts"}, optional
        Default from ``BUNIT`` (rates unless it names counts or electrons).

    Returns
    -------
    `Cutout`
    """
    with _open(path) as hdul:
        h = _hdu_data(hdul, hdu, path, "image")
        image = np.array(h.data, dtype=np.float64)
        header = hdul[0].header.copy()
        header.update(h.header)
        nmap = None
        if noise_hdu is not None and noise is None:
            nmap = np.array(_hdu_data(hdul, noise_hdu, path, "noise map").data, float)
        kern = None
        if psf_hdu is not None and psf is None:
            kern = np.array(_hdu_data(hdul, psf_hdu, path, "PSF").data, float)
    wcs = celestial_wcs(header)
    if pixel_scale is not None:
        pixel_scale = as_float(pixel_scale, "pixel_scale", u.arcsec)
        if not pixel_scale > 0:
            raise ValueError(f"pixel_scale must be a positive number of arcsec; got {pixel_scale}")
    if pixel_scale is None:  # the one policy: WCS, then a keyword (lenskit.core.headers)
        pixel_scale = header_pixel_scale(header, wcs, where=str(path))
        if pixel_scale is None:
            raise ValueError(f"{path} has no celestial WCS and no pixel-scale keyword ({', '.join(SCALE_KEYWORDS)}): "
                             f"pass pixel_scale= (arcsec per pixel; --pixel-scale on the command line)")
    if noise is not None:
        with _open(noise) as hn:
            nmap = np.array(_hdu_data(hn, noise_hdu, noise, "noise map").data, float)
    if psf is not None:
        with _open(psf) as hp:
            kern = np.array(_hdu_data(hp, psf_hdu, psf, "PSF").data, float)
    bunit = str(header.get("BUNIT", "")).strip().upper()
    if unit is None:
        unit = "counts" if bunit in COUNT_UNITS else "rate"
    if unit not in ("rate", "counts"):
        raise ValueError(f"unit must be 'rate' or 'counts'; got {unit!r}")
    if unit == "counts":
        t = exposure_time if exposure_time is not None else header.get("EXPTIME")
        if not t or float(t) <= 0:
            raise ValueError(f"{path} is in counts ({bunit or 'unit given'}) but has no EXPTIME: pass exposure_time=")
        image = image / float(t)
        if nmap is not None:
            nmap = nmap / float(t)
    return Cutout(image, pixel_scale, noise=nmap, psf=kern, wcs=wcs, header=header, path=path)


def read_band_images(paths, pixel_scale=None):
    """
    Co-registered single-band FITS images as one multi-band stack, for the deblenders.

    Each file's first 2-D image is one band, named by its header's filter
    (`lenskit.core.headers.header_band`, else the file name); non-finite
    pixels are kept (the deblenders mask them).  The pixel scale follows
    lenskit's one policy (`lenskit.core.headers`) on the first file that has
    one, unless ``pixel_scale`` is given.

    Returns
    -------
    cube : ndarray (1, bands, H, W), float64
    bands : list of str
    pixel_scale : float or None
        Arcsec per pixel.
    """
    if pixel_scale is not None:
        pixel_scale = as_float(pixel_scale, "pixel_scale", u.arcsec)
        if not pixel_scale > 0:
            raise ValueError(f"pixel_scale must be a positive number of arcsec; got {pixel_scale}")
    cubes, bands, scales = [], [], []
    for path in map(Path, paths):
        with _open(path) as hdul:
            hdu = _hdu_data(hdul, None, path, "band image")
            cubes.append(as_real_array(hdu.data, f"the image in {path}"))
            header = hdul[0].header.copy()
            header.update(hdu.header)
        bands.append(header_band(header) or path.stem)
        scale = header_pixel_scale(header, where=str(path))
        if scale is not None:
            scales.append(scale)
    shapes = {c.shape for c in cubes}
    if len(shapes) > 1:
        raise ValueError(f"the band images must share one shape (co-registered); got {sorted(shapes)}")
    return np.stack(cubes)[None], bands, pixel_scale if pixel_scale is not None else (scales[0] if scales else None)


def write_estimate_fits(estimate, path, overwrite=False):
    """
    Write an `~lenskit.Estimate` as a FITS binary table (units in TUNITn, provenance as JSON in the header).

    Written to a temporary file and renamed, so a failure leaves no partial file.
    """

    path = Path(path)
    t = Table(estimate.table)
    for key in list(t.meta):
        if not isinstance(t.meta[key], (str, int, float, bool)) or t.meta[key] is None:
            del t.meta[key]
    t.meta["LKPROV"] = json.dumps(estimate.provenance.to_dict(), default=str)[:60000]
    with atomic_path(path, overwrite=overwrite) as tmp:
        t.write(tmp, format="fits")


def read_estimate_fits(path):
    """Read a table written by `write_estimate_fits` back into an `~lenskit.Estimate`."""

    with _open(path):
        pass
    t = QTable.read(path, format="fits")
    prov = t.meta.pop("LKPROV", None)
    provenance = Provenance.from_dict(json.loads(prov)) if prov else None
    return Estimate(t, provenance=provenance)
