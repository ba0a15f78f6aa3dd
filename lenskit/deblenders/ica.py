"""
Lens-light removal by independent component analysis of two or more bands.

Hezaveh et al. (2017, Methods and Extended Data Fig. 2) separate the lensed
arcs from the lens galaxy in two HST filters with ICA: the lens and the
source have different colours, so each band is a different mixture of two
spatially independent images.  This deblender:

1. optionally matches the bands' PSFs to the broadest one;
2. masks discs (0.2" by default) on the lens centre and on bright cosmic rays
   (sharp features in one band only), and excludes them from the fit;
3. runs scikit-learn's FastICA on the unmasked pixels and applies the
   unmixing to every pixel;
4. fixes each component's sign so its light is positive (positive skewness)
   and identifies the arcs from the morphology, never from the component's
   index: the lens light is the component whose significant light is most
   concentrated about the lens centre, the arcs the one spread at larger radii;
5. removes the lens light that leaks into the arc component (a robust fit
   over the lens-dominated pixels) and the arcs left in the lens component
   (the multiple that makes it most point-symmetric about the lens centre),
   then refits both components' mixing coefficients by least squares;
6. returns the arcs in each band in the input's flux units (component times
   its mixing coefficient, background removed) and the lens light as
   everything else (``images - arcs``), so the two add up to the input.
"""

import warnings

import astropy.units as u
import numpy as np
from astropy.table import QTable
from photutils.psf_matching import TopHatWindow, make_kernel
from scipy import ndimage
from scipy.signal import fftconvolve
from sklearn.decomposition import FastICA
from tqdm.auto import tqdm

from lenskit.core.dataset import LensDataset
from lenskit.core.deblended import Deblended
from lenskit.core.interfaces import Deblender
from lenskit.core.provenance import Provenance, array_checksum
from lenskit.core.statistics import robust_sigma
from lenskit.core.validation import as_float
from lenskit.deblenders._common import as_cube, circular_mask

__all__ = ["ICADeblender", "match_psfs"]

FWHM = 2 * np.sqrt(2 * np.log(2))


def _psf_width(p, pixel_scale):
    """rms width in pixels of a PSF given as FWHM (arcsec) or a kernel image."""
    if np.isscalar(p):
        if pixel_scale is None:
            raise ValueError("PSF FWHMs in arcsec need pixel_scale")
        return float(p) / FWHM / pixel_scale
    k = np.asarray(p, float)
    if k.ndim != 2 or not np.all(np.isfinite(k)) or k.sum() <= 0:
        raise ValueError(f"a PSF image must be a finite 2-D array with positive sum; got shape {k.shape}")
    k = k / k.sum()
    yy, xx = np.indices(k.shape)
    cy, cx = (k * yy).sum(), (k * xx).sum()
    return float(np.sqrt(0.5 * (k * ((yy - cy) ** 2 + (xx - cx) ** 2)).sum()))


def match_psfs(cube, psfs, pixel_scale=None):
    """
    Convolve each band of ``cube`` (N, bands, H, W) to the broadest PSF.

    ``psfs`` holds one entry per band: a Gaussian FWHM in arcsec (matched
    exactly with a Gaussian of width ``sqrt(s_max^2 - s_b^2)``) or a PSF
    image on the cube's pixel grid (matched with photutils' matching kernel
    and a top-hat window).

    Returns the matched cube and the index of the broadest band.
    """
    nb = cube.shape[1]
    if len(psfs) != nb:
        raise ValueError(f"psfs must have one entry per band ({nb}); got {len(psfs)}")
    widths = [_psf_width(p, pixel_scale) for p in psfs]
    target = int(np.argmax(widths))
    out = cube.copy()
    for b, p in enumerate(psfs):
        if b == target:
            continue
        if np.isscalar(p) and np.isscalar(psfs[target]):
            s = np.sqrt(max(widths[target] ** 2 - widths[b] ** 2, 0.0))
            if s > 0:
                out[:, b] = ndimage.gaussian_filter(cube[:, b], sigma=(0, s, s), mode="nearest")
            continue

        src, tgt = [np.asarray(q, float) if not np.isscalar(q) else _gaussian_image(q, pixel_scale, 25)
                    for q in (p, psfs[target])]
        size = max(src.shape[0], tgt.shape[0]) | 1
        src, tgt = _pad_to(src, size), _pad_to(tgt, size)
        kern = make_kernel(src / src.sum(), tgt / tgt.sum(), window=TopHatWindow(0.35))
        for i in range(cube.shape[0]):
            out[i, b] = fftconvolve(cube[i, b], kern, mode="same")
    return out, target


def _gaussian_image(fwhm, pixel_scale, size):
    s = float(fwhm) / FWHM / pixel_scale
    yy, xx = np.indices((size, size)) - size // 2
    g = np.exp(-0.5 * (xx ** 2 + yy ** 2) / s ** 2)
    return g / g.sum()


def _pad_to(k, size):
    h, w = k.shape
    if h > size or w > size:
        return k[(h - size) // 2:(h - size) // 2 + size, (w - size) // 2:(w - size) // 2 + size]
    return np.pad(k, (((size - h) // 2, size - h - (size - h) // 2), ((size - w) // 2, size - w - (size - w) // 2)))


def _skew(v):
    v = v - v.mean()
    s = v.std()
    return 0.0 if s == 0 else float(np.mean(v ** 3) / s ** 3)


class ICADeblender(Deblender):
    """
    Separate arcs from lens light with FastICA over two or more bands.

    Parameters
    ----------
    n_components : int
        Independent components (2: lens light and arcs; more bands are
        reduced to this many by the whitening).
    mask_radius : float
        Radius in arcsec of the discs masked on the lens centre and on
        cosmic rays (0.2" as Hezaveh et al. 2017).
    mask_centre : bool
        Exclude the lens centre from the fit (its bright core dominates the
        statistics otherwise).
    mask_cosmic_rays : bool
        Find and exclude bright cosmic rays: pixels sharper than the PSF by
        more than ``cr_threshold`` noise sigmas in one band only.
    cr_threshold : float
    signal_threshold : float or None
        Fit the unmixing on the pixels whose smoothed total light exceeds
        the border's noise by this many sigmas (grown by 2 pixels); None
        fits every unmasked pixel.  Default 1.
    psf_match : bool
        Convolve the bands to the broadest PSF first (needs ``psfs``).
    random_state : int
        Seed of FastICA (the result is deterministic for a given seed).
    max_iter, tol : FastICA settings.
    """

    name = "ica"

    def __init__(self, n_components=2, mask_radius=0.2, mask_centre=True, mask_cosmic_rays=True, cr_threshold=8.0,
                 psf_match=False, random_state=0, max_iter=2000, tol=1e-5, signal_threshold=1.0):
        if int(n_components) != n_components or n_components < 2:
            raise ValueError(f"n_components must be an integer >= 2; got {n_components}")
        if not mask_radius > 0:
            raise ValueError(f"mask_radius must be > 0 arcsec; got {mask_radius}")
        self.n_components = int(n_components)
        self.mask_radius = as_float(mask_radius, "mask_radius", u.arcsec)
        self.mask_centre = bool(mask_centre)
        self.mask_cosmic_rays = bool(mask_cosmic_rays)
        self.cr_threshold = float(cr_threshold)
        self.psf_match = bool(psf_match)
        self.signal_threshold = None if signal_threshold is None else float(signal_threshold)
        self.random_state = int(random_state)
        self.max_iter = int(max_iter)
        self.tol = float(tol)

    def config(self):
        return {"deblender": self.name, "n_components": self.n_components, "mask_radius": self.mask_radius,
                "mask_centre": self.mask_centre, "mask_cosmic_rays": self.mask_cosmic_rays,
                "cr_threshold": self.cr_threshold, "psf_match": self.psf_match,
                "signal_threshold": self.signal_threshold, "random_state": self.random_state}

    def separate(self, images, masks=None, bands=None, pixel_scale=None, psfs=None, noise=None, progress=False):
        """
        Separate arcs and lens light.

        Parameters
        ----------
        images : array-like or `~lenskit.LensDataset`
            (N, bands, H, W) or (bands, H, W), two or more co-registered bands
            in any flux unit (each band keeps its own).
        masks : array-like of bool, optional
            (N, H, W) pixels to exclude from the fit (True = excluded), for
            example known defects; NaNs are allowed there.
        bands : sequence of str, optional
            Band names (default from the dataset, or ``band0``...).
        pixel_scale : float, optional
            Arcsec per pixel; needed for the masks' radius when ``images`` is
            a plain array.
        psfs : sequence, optional
            Per band, a Gaussian FWHM in arcsec or a PSF image, for ``psf_match``.
        noise : array-like, optional
            1-sigma noise maps shaped like ``images`` (default the dataset's);
            used to find cosmic rays (without them a global robust sigma is used).

        Returns
        -------
        `~lenskit.core.Deblended`
            ``arcs`` and ``lens_light`` per band (adding up to the input; the
            arcs are 0 under the fit masks, which ``masks`` returns);
            ``params`` has the component index holding the arcs, both
            components' light-weighted radii and the mixing coefficients;
            ``diagnostics["components"]`` the unmixed images (N, k, H, W).
        """

        if noise is None and isinstance(images, LensDataset):
            noise = images.noise
        cube, m, bands, ps = as_cube(images, masks, bands)
        pixel_scale = ps if pixel_scale is None else as_float(pixel_scale, "pixel_scale", u.arcsec)
        n, nb, h, w = cube.shape
        if noise is not None:
            if np.size(noise) != cube.size:
                raise ValueError(f"noise must be shaped like images {cube.shape}; got {np.shape(noise)}")
            noise = np.where(np.asarray(noise, float).reshape(cube.shape) > 0,
                             np.asarray(noise, float).reshape(cube.shape), np.inf)
        if nb < 2:
            raise ValueError(f"ICA needs two or more bands; images have {nb}. Use the 'sersic' deblender for "
                             f"one band")
        if self.n_components > nb:
            raise ValueError(f"n_components ({self.n_components}) cannot exceed the number of bands ({nb})")
        if (self.mask_centre or self.mask_cosmic_rays) and pixel_scale is None:
            raise ValueError("pixel_scale (arcsec per pixel) is needed to size the 0.2\" masks of plain arrays; "
                             "pass pixel_scale= or a LensDataset")
        if self.psf_match:
            if psfs is None:
                raise ValueError("psf_match=True needs psfs (one FWHM or PSF image per band)")
            cube, _ = match_psfs(cube, psfs, pixel_scale)
        arcs = np.zeros_like(cube)
        comps = np.zeros((n, self.n_components, h, w), np.float32)
        fit_masks = np.zeros((n, h, w), bool)
        rows = []
        it = range(n)
        if progress:
            it = tqdm(it, desc="ICA", unit="image")
        for i in it:
            a, s, mask, row = self._one(cube[i], m[i], pixel_scale, None if noise is None else noise[i])
            arcs[i], comps[i], fit_masks[i] = a, s, mask
            rows.append(row)
        lens = cube - arcs

        params = QTable(rows=[tuple(r.values()) for r in rows], names=list(rows[0]))
        prov = Provenance.current(config=self.config(), checksums={"input": array_checksum(cube.astype(np.float32))})
        return Deblended(arcs, lens, bands, self.name, params=params, masks=fit_masks,
                         diagnostics={"components": comps, "pixel_scale": pixel_scale}, provenance=prov)

    # -- one image -------------------------------------------------------------------
    def _centre(self, img, mask):
        tot = np.nan_to_num(img.sum(0))
        sm = ndimage.gaussian_filter(np.where(mask, 0, tot), 2.0)
        h, w = tot.shape
        win = np.zeros_like(sm, bool)
        win[h // 4: h - h // 4, w // 4: w - w // 4] = True
        sm = np.where(win, sm, -np.inf)
        return np.unravel_index(np.argmax(sm), sm.shape)

    def _cosmic_rays(self, img, mask, noise):
        """Centres of sharp, single-band features (cosmic rays and hot pixels)."""
        nb = img.shape[0]
        sig = []
        for b in range(nb):
            sharp = img[b] - ndimage.median_filter(img[b], size=5)
            if noise is not None:  # per-pixel noise: Poisson noise on the lens core is not a cosmic ray
                sig.append(sharp / noise[b])
            else:
                sd = robust_sigma(sharp[~mask])
                sig.append(sharp / sd if sd > 0 else np.zeros_like(sharp))
        sig = np.array(sig)
        found = []
        for b in range(nb):
            hot = (sig[b] > self.cr_threshold) & ~mask
            # real structure (arcs, the lens) appears in the other bands too; a cosmic ray does not
            others = np.delete(sig, b, axis=0)
            hot &= ndimage.maximum_filter(others.max(0), size=3) < 3.0
            lab, k = ndimage.label(hot)
            if k:
                found += [tuple(c) for c in ndimage.center_of_mass(hot, lab, range(1, k + 1))]
        return found

    def _one(self, img, user_mask, pixel_scale, noise=None):
        nb, h, w = img.shape
        mask = user_mask.copy()
        cy, cx = self._centre(img, mask)
        rpix = None if pixel_scale is None else self.mask_radius / pixel_scale
        n_cr = 0
        if self.mask_cosmic_rays:
            crs = self._cosmic_rays(img, mask, noise)
            n_cr = len(crs)
            if crs:
                mask |= circular_mask((h, w), crs, rpix)
        if self.mask_centre:
            mask |= circular_mask((h, w), [(cy, cx)], rpix)
        if mask.all():
            raise ValueError("the masks cover every pixel; nothing is left for ICA")
        X = img.reshape(nb, -1).T
        fit_px = ~mask
        if self.signal_threshold is not None:
            # fit where there is light: pure-noise pixels carry no information on the mixing and
            # dominate large stamps
            tot = ndimage.gaussian_filter(np.where(mask, 0.0, img.sum(0)), 1.0)
            yy0, xx0 = np.indices((h, w))
            border = (np.minimum(np.minimum(yy0, h - 1 - yy0), np.minimum(xx0, w - 1 - xx0)) < max(3, h // 10))
            ref = tot[border & ~mask]
            lit = tot > np.median(ref) + self.signal_threshold * robust_sigma(ref)
            lit = ndimage.binary_dilation(lit, iterations=2) & ~mask
            if lit.sum() >= 50:
                fit_px = lit
        ica = FastICA(n_components=self.n_components, whiten="unit-variance", random_state=self.random_state,
                      max_iter=self.max_iter, tol=self.tol)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ica.fit(X[fit_px.ravel()])
        converged = not any("did not converge" in str(c.message) for c in caught)
        S = ica.transform(X)  # (pixels, k)
        A = ica.mixing_.copy()  # (bands, k): X - mean = S A^T
        yy, xx = np.indices((h, w))
        r = np.hypot(yy - cy, xx - cx)
        outer = (r > 0.8 * min(h, w) / 2) & ~mask
        if outer.sum() < 10:
            outer = ~mask
        radius = []
        for c in range(self.n_components):
            s = S[:, c].reshape(h, w)
            if _skew(s[~mask]) < 0:  # light is positively skewed: fix the sign
                S[:, c] *= -1
                A[:, c] *= -1
                s = S[:, c].reshape(h, w)
            s = s - np.median(s[outer])
            S[:, c] = s.ravel()
            sig = robust_sigma(s[outer])
            sm = ndimage.gaussian_filter(s, 1.0)
            signif = (sm > 3 * sig / 2) & ~mask  # smoothing by sigma 1 px lowers the noise about 2x
            wts = np.where(signif, sm, 0.0)
            radius.append(float((wts * r).sum() / wts.sum()) if wts.sum() > 0 else np.inf)
        # the lens light is the most centrally concentrated component (in arcsec if known)
        lens_c = int(np.argmin(radius))
        arc_candidates = [c for c in range(self.n_components) if c != lens_c]
        arc_c = arc_candidates[int(np.argmin([radius[c] for c in arc_candidates]))]
        # ICA leaves a little lens light in the arc component (the two images are not exactly
        # independent); a small leak times the bright lens is a large flux error.  Remove it with a
        # robust fit over the lens-dominated pixels (arcs there are outliers).
        L = S[:, lens_c]
        sig_l = robust_sigma(L.reshape(h, w)[outer])
        bright = (L > 10 * sig_l) & ~mask.ravel()
        leak = 0.0
        if bright.sum() >= 20:
            leak = float(np.median(S[bright, arc_c] / L[bright]))
            S[:, arc_c] = S[:, arc_c] - leak * L
        # ... and the lens component keeps a little of the arcs (with either sign).  The lens light is
        # point-symmetric about its centre and arcs generally are not, so find the multiple of the arc
        # component that makes the lens component most symmetric over the arc pixels.
        sa = S[:, arc_c]
        yr, xr = 2 * cy - yy, 2 * cx - xx
        inside = (yr >= 0) & (yr < h) & (xr >= 0) & (xr < w)
        arc_pix = (sa.reshape(h, w) > 5 * robust_sigma(sa.reshape(h, w)[outer])) & inside & ~mask
        back_leak = 0.0
        if arc_pix.sum() >= 5:
            Lm, Sm = L.reshape(h, w), sa.reshape(h, w)
            d_l = Lm[arc_pix] - Lm[yr[arc_pix], xr[arc_pix]]
            d_s = Sm[arc_pix] - Sm[yr[arc_pix], xr[arc_pix]]
            if (d_s ** 2).sum() > 0:
                eps = float(-(d_l * d_s).sum() / (d_s ** 2).sum())
                # accept only a clear improvement: an asymmetric lens (or a poor centre) must not be
                # "fixed" by adding arcs to it
                # (the components have unit variance, so a genuine leak is a small multiple)
                if abs(eps) < 0.5 and ((d_l + eps * d_s) ** 2).sum() < 0.5 * (d_l ** 2).sum():
                    back_leak = eps
                    S[:, lens_c] = L + back_leak * sa
        use = ~mask.ravel()
        design = np.c_[S[use][:, [lens_c, arc_c]], np.ones(use.sum())]
        coef, *_ = np.linalg.lstsq(design, X[use], rcond=None)  # (3, bands)
        A[:, lens_c], A[:, arc_c] = coef[0], coef[1]
        s_arc = np.where(mask, 0.0, S[:, arc_c].reshape(h, w))  # masked pixels carry no arc estimate
        arcs = s_arc[None] * A[:, arc_c].reshape(nb, 1, 1)
        scale = pixel_scale or 1.0
        row = {"arc_component": arc_c, "lens_component": lens_c,
               "arc_radius": radius[arc_c] * scale, "lens_radius": radius[lens_c] * scale,
               "centre_x": float(cx), "centre_y": float(cy), "n_cosmic_rays": n_cr,
               "masked_fraction": float(mask.mean()), "lens_leak": leak, "arc_leak": back_leak,
               "converged": converged}
        for b in range(nb):
            row[f"mix_arc_{b}"] = float(A[b, arc_c])
            row[f"mix_lens_{b}"] = float(A[b, lens_c])
        comps = S.T.reshape(self.n_components, h, w).astype(np.float32)
        return arcs, comps, mask, row
