"""
Real galaxies as lensing sources: shared stamp preparation and evaluation.

Every real-galaxy source plugin (``great3``, ``galaxy_zoo``, ``candels``,
``image_directory``) reads stamps in its own format and hands them to
`StampSource`, which prepares each one the same way:

1. the background is estimated from sigma-clipped border pixels and subtracted;
2. sources are detected with photutils segmentation (plus deblending) above
   ``detect_sigma`` times the noise; the segment at the centre is the galaxy
   and every other segment (a neighbour) is set to zero;
3. a noise-aware taper brings the stamp smoothly to zero: it stays 1 out to
   the radius where the galaxy's azimuthal profile is no longer detected at
   2 sigma (at most the segment's extent) and falls to 0 (cosine) over the
   next ``taper_width`` of that radius, or at the stamp edge, whichever comes
   first, so that little noise and never the stamp's edge is lensed;
4. flux, light centroid and half-light radius are measured.

Drawing a source then picks a stamp, a random rotation and flip, and a
target apparent size (half-light radius) and returns a batch that is
evaluated by bicubic interpolation (`torch.nn.functional.grid_sample`),
normalised to unit total flux.  The split into training, validation and test
galaxies is deterministic by galaxy identity (a hash), so a test set never
contains a galaxy seen in training.
"""

import copy
import hashlib
import warnings

import astropy.units as u
import numpy as np
import torch
import torch.nn.functional as F
from astropy.stats import sigma_clipped_stats
from astropy.table import QTable
from photutils.segmentation import SegmentationImage, deblend_sources, detect_sources
from scipy.ndimage import gaussian_filter

from lenskit.core.interfaces import Source, SourceBatch
from lenskit.core.priors import as_prior
from lenskit.core.validation import as_float

__all__ = ["Stamp", "prepare_stamp", "split_of", "StampSource", "StampBatch", "SPLITS"]

#: Split names and the default fractions of galaxies in each.
SPLITS = {"train": 0.8, "validation": 0.1, "test": 0.1}


class Stamp:
    """
    One prepared galaxy image.

    Attributes
    ----------
    ident : str
        Galaxy identity (catalogue ID, file name).
    image : ndarray
        (bands, H, W) float32, background-subtracted, neighbours removed, tapered.
    pixel_scale : float
        Arcsec per pixel of ``image``.
    flux : ndarray
        Total flux per band (in the stamp's units).
    centroid : tuple of float
        Light centroid (x, y) in pixels.
    r_half : float
        Half-light radius in arcsec (summed over bands), about the centroid.
    noise : float
        Background noise rms (first band) before tapering.
    snr : float
        Flux over noise times sqrt(segment area): a detection S/N.
    source : str
        The file the stamp came from (for error messages).
    """

    def __init__(self, ident, image, pixel_scale, flux, centroid, r_half, noise, snr, source=""):
        self.ident = str(ident)
        self.image = image
        self.pixel_scale = as_float(pixel_scale, "pixel_scale", u.arcsec)
        self.flux = np.asarray(flux, float)
        self.centroid = centroid
        self.r_half = as_float(r_half, "r_half", u.arcsec)
        self.noise = float(noise)
        self.snr = float(snr)
        self.source = source

    def __repr__(self):
        b, h, w = self.image.shape
        return (f"<Stamp {self.ident!r} {b}x{h}x{w} at {self.pixel_scale:g}\", r_half={self.r_half:.3f}\", "
                f"S/N={self.snr:.0f}>")


def split_of(ident, fractions=None, salt="lenskit-split-v1"):
    """
    The split ('train', 'validation' or 'test') a galaxy identity belongs to.

    Deterministic: a SHA-256 hash of the identity is mapped to [0, 1) and
    compared with the cumulative ``fractions``.
    """
    fr = dict(fractions or SPLITS)
    total = sum(fr.values())
    if total <= 0 or any(v < 0 for v in fr.values()):
        raise ValueError(f"split fractions must be >= 0 with a positive sum; got {fr}")
    h = hashlib.sha256(f"{salt}:{ident}".encode()).digest()
    x = int.from_bytes(h[:8], "big") / 2**64
    acc = 0.0
    for name, v in fr.items():
        acc += v / total
        if x < acc:
            return name
    return name


def _border(img, width):
    m = np.zeros(img.shape, bool)
    m[:width] = m[-width:] = True
    m[:, :width] = m[:, -width:] = True
    return m


def _central_galaxy(sm, labels, min_pixels, label):
    """
    The galaxy at the stamp's centre (1), its neighbours (2) and the background (0) of a segmentation.

    The segment at the centre (or the nearest one) is the galaxy.  Where it touches a neighbour, photutils'
    deblending (multi-thresholding and watershed) splits it; a deblended part whose light centroid lies
    beyond half the segment's equivalent radius from the central part's is a neighbour, the others --
    clumps and arms that deblending also splits off -- stay with the galaxy.
    """
    h, w = labels.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    central = labels[int(round(cy)), int(round(cx))]
    if central == 0:
        # nearest segment to the centre
        yy, xx = np.nonzero(labels)
        d = np.hypot(yy - cy, xx - cx)
        central = labels[yy[np.argmin(d)], xx[np.argmin(d)]]
        if np.min(d) > 0.25 * min(h, w):
            raise ValueError(f"{label}: no galaxy near the stamp centre")
    parent = labels == central
    out = np.where(labels > 0, 2, 0).astype(np.int8)
    out[parent] = 1
    if parent.sum() < 2 * min_pixels:
        return out
    seg = SegmentationImage(np.where(parent, 1, 0).astype(np.int32))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parts = deblend_sources(sm, seg, n_pixels=min_pixels, progress_bar=False).data
    except Exception as exc:  # noqa: BLE001 -- deblending refines the segmentation; without it, keep the segment
        warnings.warn(f"{label}: deblending failed ({type(exc).__name__}: {exc}); neighbours touching the galaxy "
                      f"are kept", stacklevel=3)
        return out
    ids = np.unique(parts[parent])
    if len(ids) < 2:
        return out
    yy, xx = np.mgrid[:h, :w]
    weight = np.clip(sm, 0, None)
    cents = {}
    for k in ids:
        m = parts == k
        wk = weight[m].sum()
        cents[k] = ((weight[m] * xx[m]).sum() / wk, (weight[m] * yy[m]).sum() / wk) if wk > 0 else (xx[m].mean(),
                                                                                                    yy[m].mean())
    ck = parts[int(round(cy)), int(round(cx))]
    if ck == 0:
        ck = min(ids, key=lambda k: np.hypot(cents[k][0] - cx, cents[k][1] - cy))
    reach = 0.5 * np.sqrt(parent.sum() / np.pi)
    for k in ids:
        if np.hypot(cents[k][0] - cents[ck][0], cents[k][1] - cents[ck][1]) > reach:
            out[parts == k] = 2
    return out


def prepare_stamp(image, pixel_scale, ident="", source="", noise=None, detect_sigma=2.0, taper_width=0.25,
                  nan_policy="raise", min_pixels=5):
    """
    Prepare a galaxy stamp for lensing (see the module description).

    Parameters
    ----------
    image : array-like
        (H, W) or (bands, H, W); the galaxy near the centre.
    pixel_scale : float
        Arcsec per pixel.
    ident, source : str
        Identity and originating file (used in error messages).
    noise : float, optional
        Background noise rms; measured from the stamp's border when None.
    detect_sigma : float
        Detection threshold in units of the noise.
    taper_width : float
        Width of the cosine taper as a fraction of the galaxy's radius.
    nan_policy : {'raise', 'zero'}
        NaN pixels raise a `ValueError` naming the file, or are set to zero.
    min_pixels : int
        Smallest segment accepted as a galaxy.

    Returns
    -------
    `Stamp`

    Raises
    ------
    ValueError
        NaN pixels (with ``nan_policy='raise'``), a wrong shape, or no galaxy
        detected at the centre; the message names ``source``.
    """

    where = f" in {source}" if source else ""
    label = f"stamp {ident!r}{where}"
    img = np.asarray(image, dtype=float)
    if img.ndim == 2:
        img = img[None]
    if img.ndim != 3 or min(img.shape[1:]) < 8:
        raise ValueError(f"{label}: expected an image shaped (H, W) or (bands, H, W) with H, W >= 8; "
                         f"got {np.shape(image)}")
    if not np.all(np.isfinite(img)):
        bad = int((~np.isfinite(img)).sum())
        if nan_policy == "raise":
            raise ValueError(f"{label} has {bad} NaN or infinite pixel(s); pass nan_policy='zero' to zero them")
        if nan_policy != "zero":
            raise ValueError(f"nan_policy must be 'raise' or 'zero'; got {nan_policy!r}")
        img = np.where(np.isfinite(img), img, 0.0)
    if not pixel_scale > 0:
        raise ValueError(f"{label}: pixel_scale must be > 0 arcsec; got {pixel_scale}")
    nb, h, w = img.shape
    bw = max(2, min(h, w) // 10)
    border = _border(img[0], bw)
    sky, noises = [], []
    for b in range(nb):
        _, med, std = sigma_clipped_stats(img[b][border], sigma=3.0, maxiters=5)
        sky.append(med)
        noises.append(std)
    img = img - np.asarray(sky)[:, None, None]
    det = img.sum(0)
    sigma = float(noise) if noise is not None else float(np.sqrt(np.sum(np.square(noises))))
    if not np.isfinite(sigma) or sigma <= 0:
        sigma = max(float(np.std(det)), 1e-12)
    # smooth lightly before detection

    sm = gaussian_filter(det, 1.0)
    # a unit-width Gaussian smoothing divides white-noise rms by sqrt(4 pi)
    thresh = detect_sigma * sigma / np.sqrt(4 * np.pi)
    seg = detect_sources(sm, thresh, n_pixels=min_pixels)
    if seg is None:
        raise ValueError(f"{label}: no galaxy detected above {detect_sigma} sigma")
    labels = _central_galaxy(sm, seg.data, min_pixels, label)
    neighbours = labels == 2
    img[:, neighbours] = 0.0
    gal = labels == 1
    yy, xx = np.mgrid[:h, :w]
    # taper: 1 out to the segment's extent, cosine to 0 over taper_width of it
    wsum = np.clip(det * gal, 0, None)
    if wsum.sum() <= 0:
        raise ValueError(f"{label}: the central galaxy has no positive flux")
    x0 = float((wsum * xx).sum() / wsum.sum())
    y0 = float((wsum * yy).sum() / wsum.sum())
    r = np.hypot(xx - x0, yy - y0)
    r_seg = float(r[gal].max()) + 1.0
    # noise-aware radius: where the azimuthal profile is no longer detected at 2 sigma
    ri = r.astype(int).ravel()
    nbin = int(min(r_seg, r.max())) + 1
    sums = np.bincount(ri, weights=det.ravel(), minlength=nbin)[:nbin]
    counts = np.bincount(ri, minlength=nbin)[:nbin].astype(float)
    signif = sums / (sigma * np.sqrt(np.maximum(counts, 1)))
    below = np.nonzero(signif[1:] < 2.0)[0]
    r_prof = float(below[0] + 1) if len(below) else r_seg
    r_gal = max(min(r_seg, r_prof + 1.0), 2.0)
    r_end = min(r_gal * (1 + taper_width), min(x0, y0, w - 1 - x0, h - 1 - y0))
    r_start = min(r_gal, 0.8 * r_end)
    t = np.clip((r - r_start) / max(r_end - r_start, 1e-6), 0, 1)
    taper = 0.5 * (1 + np.cos(np.pi * t))
    img = img * taper[None]
    tot = img.sum(0)
    flux = img.sum(axis=(1, 2))
    if tot.sum() <= 0:
        raise ValueError(f"{label}: the prepared galaxy has no positive flux")
    pos = np.clip(tot, 0, None)
    x0 = float((pos * xx).sum() / pos.sum())
    y0 = float((pos * yy).sum() / pos.sum())
    r = np.hypot(xx - x0, yy - y0).ravel()
    order = np.argsort(r)
    cum = np.cumsum(tot.ravel()[order])
    r_half = float(r[order][np.searchsorted(cum, 0.5 * cum[-1])]) * pixel_scale
    r_half = max(r_half, 0.5 * pixel_scale)
    snr = float(tot[gal].sum() / (sigma * np.sqrt(gal.sum())))
    return Stamp(ident, img.astype(np.float32), pixel_scale, flux, (x0, y0), r_half, sigma, snr, source)


class StampBatch(SourceBatch):
    """
    N real-galaxy sources: stamps with per-source rotation, flip and scale, unit total flux.

    ``brightness`` interpolates the stamps bicubically; ``band`` selects the
    plane of multi-band stamps (all planes share the geometry).
    """

    def __init__(self, stamps, scale, angle, flip, size, band_weights=None):
        self.stamps = list(stamps)
        self.scale = np.asarray(scale, float)      # apparent arcsec per native arcsec
        self.angle = np.asarray(angle, float)
        self.flip = np.asarray(flip, bool)
        self.size = np.asarray(size, float)
        self.flux = np.ones(len(self.stamps))
        self.galaxy_id = np.array([s.ident for s in self.stamps], dtype=object)
        self.band = 0
        self._cache = {}

    @property
    def params(self):  # made when asked for (once per dataset), not for every chunk
        return QTable({"source_id": np.array([s.ident for s in self.stamps], dtype=str),
                       "source_size": self.size * u.arcsec, "source_angle": self.angle * u.rad})

    def take(self, index):
        idx = np.arange(len(self.stamps))[index]
        return StampBatch([self.stamps[i] for i in idx], self.scale[idx], self.angle[idx], self.flip[idx],
                          self.size[idx])

    def _stack(self, device, dtype):
        key = (str(device), dtype)
        if key not in self._cache:
            n = len(self.stamps)
            nb = self.stamps[0].image.shape[0]
            s = max(max(st.image.shape[1:]) for st in self.stamps) if n else 1
            stack = np.zeros((n, nb, s, s), np.float32)
            cen = np.zeros((n, 2))
            for i, st in enumerate(self.stamps):
                _, hh, ww = st.image.shape
                oy, ox = (s - hh) // 2, (s - ww) // 2
                # unit total flux (summed over bands), in flux per native pixel
                stack[i, :, oy:oy + hh, ox:ox + ww] = st.image / max(float(st.image.sum()), 1e-30)
                cen[i] = (st.centroid[0] + ox, st.centroid[1] + oy)
            self._cache[key] = (torch.as_tensor(stack, device=device, dtype=dtype), cen, s)
        return self._cache[key]

    def brightness(self, bx, by, band=None):
        n = len(self.stamps)
        stack, cen, s = self._stack(bx.device, bx.dtype)
        nb = stack.shape[1]
        b = self.band if band is None else band
        shp = bx.shape
        x = bx.reshape(n, -1)
        y = by.reshape(n, -1)
        t = lambda a: torch.as_tensor(a, dtype=bx.dtype, device=bx.device).reshape(n, 1)  # noqa: E731
        c, si = t(np.cos(self.angle)), t(np.sin(self.angle))
        k = t(self.scale)
        ps = t([st.pixel_scale for st in self.stamps])
        # apparent -> native arcsec (undo scale, rotation, flip), then to pixels of the padded stamp
        u_ = (c * x + si * y) / k
        v_ = (-si * x + c * y) / k
        u_ = torch.where(t(self.flip) > 0, -u_, u_)
        px = u_ / ps + t(cen[:, 0])
        py = v_ / ps + t(cen[:, 1])
        grid = torch.stack([2 * px / (s - 1) - 1, 2 * py / (s - 1) - 1], dim=-1).reshape(n, 1, -1, 2)
        plane = stack[:, b:b + 1] if nb > 1 else stack
        val = F.grid_sample(plane, grid, mode="bicubic", padding_mode="zeros", align_corners=True)
        # flux per native pixel -> flux per apparent arcsec^2; bicubic overshoot below zero is clipped
        val = torch.clamp(val.reshape(n, -1), min=0) / (ps * k) ** 2
        return val.reshape(shp)


class StampSource(Source):
    """
    Base class of real-galaxy sources: a list of prepared `Stamp` objects.

    Parameters
    ----------
    size : prior
        Apparent half-light radius (arcsec) of the drawn sources.  Default
        (0.05, 0.8), the range of Hezaveh et al. (2017).  None keeps each
        galaxy's own size.
    rotate, flip : bool
        Random rotation and mirror flip of each drawn source.  Default True.
    split : {'train', 'validation', 'test'} or None
        Use only the galaxies of this split (by identity).  Default None (all).
    split_fractions : dict, optional
        Fractions of galaxies per split; default 0.8 / 0.1 / 0.1.
    min_snr : float
        Drop stamps whose detection S/N is below this.  Default 10.
    max_galaxies : int, optional
        Read at most this many galaxies (in the order of the files).
    detect_sigma, taper_width, nan_policy
        Passed to `prepare_stamp`.
    """

    name = None

    def __init__(self, size=(0.05, 0.8), rotate=True, flip=True, split=None, split_fractions=None, min_snr=10.0,
                 detect_sigma=2.0, taper_width=0.25, nan_policy="raise", max_galaxies=None):
        self.size = None if size is None else as_prior(size, "size")
        self.rotate = bool(rotate)
        self.flip = bool(flip)
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)} or None; got {split!r}")
        self.split = split
        self.split_fractions = dict(split_fractions or SPLITS)
        self.min_snr = float(min_snr)
        self.prep = dict(detect_sigma=detect_sigma, taper_width=taper_width, nan_policy=nan_policy)
        if max_galaxies is not None and int(max_galaxies) < 1:
            raise ValueError(f"max_galaxies must be a positive integer; got {max_galaxies}")
        self.max_galaxies = None if max_galaxies is None else int(max_galaxies)
        self.idents = None  # with_galaxies: only these galaxies
        self._prepared = {}  # shared with the copies of with_split / with_galaxies, so the stamps are prepared once

    # subclasses implement this: yield (ident, image, pixel_scale, source_file, noise or None)
    def _read(self):
        raise NotImplementedError

    @property
    def stamps(self):
        """All prepared stamps (read on first use), before the split."""
        if "stamps" not in self._prepared:
            stamps, skipped = [], []
            for i, (ident, image, scale, src, noise) in enumerate(self._read()):
                if self.max_galaxies is not None and i >= self.max_galaxies:
                    break
                try:
                    st = prepare_stamp(image, scale, ident=ident, source=src, noise=noise, **self.prep)
                except ValueError as exc:
                    if "NaN" in str(exc):
                        raise
                    skipped.append(str(exc))
                    continue
                if st.snr < self.min_snr:
                    skipped.append(f"stamp {ident!r} in {src}: S/N {st.snr:.1f} < min_snr {self.min_snr}")
                    continue
                stamps.append(st)
            if not stamps:
                raise ValueError(f"{self.name}: no usable galaxy stamps" +
                                 (f"; skipped: {skipped[:3]}" if skipped else ""))
            if skipped:
                warnings.warn(f"{self.name}: skipped {len(skipped)} stamp(s), e.g. {skipped[0]}", stacklevel=2)
            self._prepared["stamps"] = stamps
        return self._prepared["stamps"]

    def galaxies(self, split=None):
        """Stamps of one split (default: this source's split)."""
        split = self.split if split is None else split
        keep = self.stamps if self.idents is None else [s for s in self.stamps if s.ident in self.idents]
        if split is None:
            return list(keep)
        return [s for s in keep if split_of(s.ident, self.split_fractions) == split]

    def with_split(self, split):
        """A copy of this source restricted to ``split`` (sharing the prepared stamps)."""

        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)} or None; got {split!r}")
        other = copy.copy(self)
        other.split = split
        return other

    def with_galaxies(self, idents):
        """
        A copy of this source that draws only the galaxies named in ``idents`` (sharing the prepared stamps).

        The split still applies on top (``with_galaxies(ids).with_split("test")`` keeps the named galaxies that
        are test galaxies).  Used to measure how the number of training galaxies moves a network's errors on
        galaxies it never saw (``benchmarks/galaxy_count.py``).

        Parameters
        ----------
        idents : iterable of str
            Galaxy identities (`Stamp.ident`), as `galaxies` lists them.

        Raises
        ------
        TypeError
            If ``idents`` is a single string rather than an iterable of them.
        ValueError
            If ``idents`` is empty or names a galaxy this source does not have.
        """
        if isinstance(idents, str):
            raise TypeError(f"idents must be an iterable of galaxy identities, not one string; got {idents!r}")
        wanted = [str(i) for i in idents]
        if not wanted:
            raise ValueError("idents must name at least one galaxy")
        known = {s.ident for s in self.stamps}
        unknown = [i for i in wanted if i not in known]
        if unknown:
            raise ValueError(f"idents: {len(unknown)} galaxies this {self.name!r} source does not have, e.g. "
                             f"{unknown[:3]}; see galaxies() for its identities")
        other = copy.copy(self)
        other.idents = frozenset(wanted)
        return other

    def sample(self, n, rng):
        if int(n) != n or n < 0:
            raise ValueError(f"n must be a non-negative integer; got {n}")
        pool = self.galaxies()
        if not pool:
            raise ValueError(f"{self.name}: the {self.split!r} split holds no galaxies; use more galaxies or "
                             f"other split_fractions")
        pick = rng.integers(0, len(pool), n)
        stamps = [pool[i] for i in pick]
        native = np.array([s.r_half for s in stamps])
        size = native.copy() if self.size is None else self.size.sample(rng, n)
        if np.any(size <= 0):
            raise ValueError("size prior produced a non-positive size")
        angle = rng.uniform(0, 2 * np.pi, n) if self.rotate else np.zeros(n)
        flip = rng.random(n) < 0.5 if self.flip else np.zeros(n, bool)
        return StampBatch(stamps, size / native, angle, flip, size)
