"""
Observational effects, each a small class usable alone.

An effect is called as ``effect(obs, rng)`` on an `Observation` and returns
it, modified.  Images are `torch.Tensor` stacks shaped (N, bands, H, W);
every effect also keeps the per-pixel ``variance`` up to date and applies the
same linear operations (PSF, rescaling) to the noise-free ``truth``
components, so arc S/N and deblending can be measured against them.  Random
draws come from the `numpy.random.Generator` passed in (torch draws from a
`torch.Generator` seeded by it), so a seed reproduces an observation.

The ranges of Hezaveh, Perreault Levasseur & Marshall (2017, Methods) are the
defaults where the paper gives them.
"""

import dataclasses
import json
import math
from importlib.resources import files

import astropy.units as u
import numpy as np
import torch
import torch.nn.functional as F
from astropy.io import fits
from scipy.ndimage import zoom

from lenskit.core.arrays import at_least, flat_nonzero
from lenskit.core.config import Configurable
from lenskit.core.priors import Fixed, as_prior
from lenskit.core.validation import as_float
from lenskit.lensing.convolution import fft_convolve

__all__ = [
    "Observation", "Effect", "GaussianPSF", "MoffatPSF", "ImagePSF", "PoissonNoise", "GaussianNoise",
    "CosmicRays", "Normalize", "CircularMasks", "CCDNoise", "torch_generator", "poisson_counts",
    "POISSON_NORMAL_MIN", "poisson_gaussian_noise", "POISSON_GAUSSIAN_MIN_RMS",
    "NOISE_CORRELATIONS", "noise_correlation", "moffat_kernels", "moffat_radius",
    "MOFFAT_TAIL",
]


@dataclasses.dataclass
class Observation:
    """
    The state an instrument's effects work on.

    Attributes
    ----------
    images : `torch.Tensor`
        (N, bands, H, W).
    pixel_scale : float
        Arcsec per pixel.
    bands : tuple of str
    variance : `torch.Tensor`
        Per-pixel noise variance, like ``images``.
    masks : `torch.Tensor` of bool or None
        True where masked.
    truth : dict
        Noise-free components (``"arcs"``, ``"lens_light"``) in the units of ``images``.
    meta : dict
        Per-system values the effects drew (``psf_fwhm``, ``noise_rms`` ...), arrays of length N.
    sum_of : tuple of str
        Names of ``truth`` components whose sum is exactly ``images`` (the
        simulator's noise-free arcs plus lens light).  Linear effects then
        transform the components alone and add them, instead of transforming
        the images as well; the promise ends as soon as anything else
        replaces or changes ``images`` in place (`images_are_sum`).
    """

    images: torch.Tensor
    pixel_scale: float
    bands: tuple = ("band",)
    variance: torch.Tensor = None
    masks: torch.Tensor = None
    truth: dict = dataclasses.field(default_factory=dict)
    meta: dict = dataclasses.field(default_factory=dict)
    sum_of: tuple = ()
    _sum_of_images: tuple = dataclasses.field(default=None, init=False, repr=False, compare=False)
    _reference: torch.Tensor = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.images, torch.Tensor) or self.images.dim() != 4:
            raise ValueError(f"images must be a torch.Tensor shaped (N, bands, H, W); got "
                             f"{getattr(self.images, 'shape', type(self.images))}")
        if self.variance is None:
            self.variance = torch.zeros_like(self.images)
        for k, v in self.truth.items():
            if v.shape != self.images.shape:
                raise ValueError(f"truth['{k}'] must be shaped like images {tuple(self.images.shape)}")
        self.sum_of = tuple(self.sum_of)
        missing = [k for k in self.sum_of if k not in self.truth]
        if missing:
            raise ValueError(f"sum_of names truth components {missing} that truth does not have ({list(self.truth)})")
        if self.sum_of:
            self._mark_sum()

    def _mark_sum(self):
        try:  # the images tensor itself and its in-place version counter
            self._sum_of_images = (self.images, self.images._version)
        except RuntimeError:  # an inference-mode tensor has no version counter: no promise can be checked
            self._sum_of_images, self.sum_of = None, ()

    def images_are_sum(self):
        """True while ``images`` is still the very tensor, unmodified, that equals the sum of `sum_of`."""
        mark = self._sum_of_images
        return bool(self.sum_of) and mark is not None and mark[0] is self.images and \
            self.images._version == mark[1] and all(k in self.truth for k in self.sum_of)

    @property
    def n(self):
        return self.images.shape[0]

    def reference_peak(self):
        """
        Each image's peak, shaped (N,), to which Hezaveh et al.'s peak-relative effects scale their noise.

        `PoissonNoise`, `GaussianNoise`, `CosmicRays` and `Normalize` follow Hezaveh et al. (2017), whose
        images are lens-subtracted: photons and noise in proportion to the peak of the arcs.  Without the lens
        galaxy's light in ``truth`` that is the images' own peak, taken when asked.  With it (``truth
        ["lens_light"]``: ``Simulator(lens_light=True, "subtracted", "residual")``), it is the peak of the image
        without that light, taken once, when the first such effect asks (in Hezaveh et al.'s order the
        `PoissonNoise`, before any noise), and kept
        (`Normalize` scales it with the images): the same exposure as the lens would have without its galaxy,
        whose light adds its own photons and shot noise, instead of noise scaled to the galaxy's core.  It is
        at least `LENS_LIGHT_PEAK_FLOOR` times the whole image's peak (arcs that vanish under their galaxy's
        light do not get unbounded counts).
        """
        if self._reference is not None:
            return self._reference
        lens = self.truth.get("lens_light")
        if lens is None:
            return _peak(self.images)
        self._reference = torch.maximum(_peak(self.images - lens), _peak(self.images) * LENS_LIGHT_PEAK_FLOOR)
        return self._reference


def torch_generator(rng, device="cpu"):
    """A `torch.Generator` on ``device`` seeded from a NumPy generator."""
    g = torch.Generator(device=device)
    g.manual_seed(int(rng.integers(0, 2**63 - 1)))
    return g


class Effect(Configurable):
    """Base class: ``effect(obs, rng) -> obs``."""

    name = "effect"

    def __call__(self, obs, rng):
        raise NotImplementedError

    def then(self, after):
        """
        ``step(obs, rng)`` that applies this effect and ``after`` as one step, or None.

        An instrument applies a pair so fused in place of the two (with the
        same distribution, faster); effects that cannot fuse return None.
        """
        return None

    def to_config(self):
        return {"effect": self.name}

    def __repr__(self):
        return f"{type(self).__name__}({self.to_config()})"


def _prior_config(p):
    return p.to_config() if hasattr(p, "to_config") else p


# ------------------------------------------------------------------------------- PSFs
def _gaussian_kernels(sigma_pix, dtype, device):
    """Pixel-integrated 1-D Gaussian kernels, shape (M, K); sigma 0 gives a delta."""
    sigma_pix = torch.as_tensor(sigma_pix, dtype=torch.float64)
    half = int(math.ceil(4 * float(sigma_pix.max()))) if len(sigma_pix) else 0
    half = max(half, 1)
    i = torch.arange(-half, half + 1, dtype=torch.float64)
    s = torch.clamp(sigma_pix, min=1e-6)[:, None] * math.sqrt(2)
    k = 0.5 * (torch.erf((i + 0.5) / s) - torch.erf((i - 0.5) / s))
    k = k / k.sum(1, keepdim=True)
    return k.to(dtype=dtype, device=device)


#: Rows per block of the banded products in `separable_convolve`.
BAND_BLOCK = 32


def _band_toeplitz(kernels, block):
    """(M, block, block + K - 1) matrices B with B[m, r, j] = k[m, r - j + K - 1] (zero outside the band)."""
    m, k = kernels.shape
    r = torch.arange(block, device=kernels.device).reshape(block, 1)
    j = torch.arange(block + k - 1, device=kernels.device).reshape(1, -1)
    d = r - j + (k - 1)
    valid = (d >= 0) & (d < k)
    idx = d.clamp(0, k - 1).reshape(1, -1).expand(m, -1)
    return torch.gather(kernels, 1, idx).reshape(m, block, block + k - 1) * valid.to(kernels.dtype)


def _convolve_rows(stack, band, half, block):
    """Each (H, W) plane of ``stack`` (M, H, W) convolved along H: blocks of rows times the band (zero padding)."""
    m, h, w = stack.shape
    nb = -(-h // block)
    padded = F.pad(stack, (0, 0, half, half + nb * block - h))
    windows = padded.unfold(1, block + 2 * half, block).transpose(2, 3)  # (M, blocks, block + 2 half, W)
    return torch.matmul(band.unsqueeze(1), windows).reshape(m, nb * block, w)[:, :h]


#: Stamps up to this many pixels on a side are convolved with whole (H, H) Toeplitz matrices when the
#: planes share a few kernels: one large product per kernel beats the blocks of `BAND_BLOCK` rows there.
DENSE_MAX = 128


def _toeplitz(kernel, n):
    """(n, n) matrix T with (T x)[r] = sum_j k[r - j + K // 2] x[j]: the 1-D convolution with zero padding."""
    k = kernel.shape[0]
    i = torch.arange(n, device=kernel.device)
    d = i.reshape(-1, 1) - i.reshape(1, -1) + k // 2
    return kernel[d.clamp(0, k - 1)] * ((d >= 0) & (d < k)).to(kernel.dtype)


def separable_convolve(stack, kernels, index=None):
    """
    Convolve each (H, W) plane of ``stack`` (M, H, W) with its separable kernel; zero padding.

    Parameters
    ----------
    stack : `torch.Tensor` (M, H, W)
    kernels : `torch.Tensor` (M, K), or (U, K) with ``index``
        Odd-length 1-D kernels, applied along both axes.
    index : `torch.Tensor` (M,), optional
        Plane m is convolved with ``kernels[index[m]]``: planes that share a
        few kernels (a survey's fixed PSF per band) say so, and stamps of up
        to `DENSE_MAX` pixels are then convolved with one whole Toeplitz
        matrix per kernel and axis, in large matrix products (3-4x faster
        than the blocks below for 57 x 57 LSST stamps).

    Otherwise each 1-D pass multiplies blocks of `BAND_BLOCK` rows (with the
    kernel's half-width on either side) by one banded Toeplitz matrix per
    plane: BLAS products, several times faster on the CPU than a grouped
    convolution and about 2x faster than products with whole (H, H)
    Toeplitz matrices, whose entries are nearly all zero.
    """
    m, h, w = stack.shape
    k = kernels.shape[1]
    if k % 2 != 1:
        raise ValueError(f"kernels must have an odd length; got {k}")
    if index is not None:
        index = torch.as_tensor(index, device=stack.device)
        if index.shape != (m,):
            raise ValueError(f"index must have one entry per plane, shape ({m},); got {tuple(index.shape)}")
        if max(h, w) > DENSE_MAX:
            kernels = kernels[index]
        else:
            return _dense_convolve(stack, kernels, index)
    band = _band_toeplitz(kernels, BAND_BLOCK)
    out = _convolve_rows(stack, band, k // 2, BAND_BLOCK)
    # made contiguous here, once: a transposed result would make every later reshape of the images a copy
    return _convolve_rows(out.transpose(1, 2), band, k // 2, BAND_BLOCK).transpose(1, 2).contiguous()


def _dense_convolve(stack, kernels, index):
    """`separable_convolve` of planes sharing the kernels ``kernels[index]``: whole Toeplitz matrices per kernel."""
    h, w = stack.shape[1:]
    if len(kernels) == 1:
        return torch.matmul(_toeplitz(kernels[0], h), stack @ _toeplitz(kernels[0], w).T)
    out = torch.empty_like(stack)
    for j, kernel in enumerate(kernels):
        idx = torch.nonzero(index == j).reshape(-1)
        if len(idx):
            part = stack.index_select(0, idx) @ _toeplitz(kernel, w).T
            out.index_copy_(0, idx, torch.matmul(_toeplitz(kernel, h), part))
    return out


def _apply_linear(obs, fn):
    """
    Apply a linear map to the images and every truth component (in one batched call).

    ``fn`` maps a stack of k x N images (k = 1, 2, ...) to the same shape.
    A truth component that is the very tensor of the images (no lens light:
    the ideal image is the arcs) is transformed once and shared.  When the
    images are the sum of components (`Observation.images_are_sum`), only the
    components are transformed, one by one, and the images are their sum.
    """
    if obs.images_are_sum():
        out = {k: fn(v) for k, v in obs.truth.items()}
        total = None
        for k in obs.sum_of:
            total = out[k].clone() if total is None else total.add_(out[k])
        obs.truth.update(out)
        obs.images = total
        obs._mark_sum()
        return obs
    names = [k for k, v in obs.truth.items() if v is not obs.images]
    aliases = [k for k, v in obs.truth.items() if v is obs.images]
    parts = [obs.images] + [obs.truth[k] for k in names]
    out = fn(torch.cat(parts, 0)) if len(parts) > 1 else fn(obs.images)
    n = obs.n
    obs.images = out[:n]
    for i, k in enumerate(names):
        obs.truth[k] = out[n * (i + 1): n * (i + 2)]
    for k in aliases:
        obs.truth[k] = obs.images
    return obs


class GaussianPSF(Effect):
    """
    Gaussian point-spread function.

    Parameters
    ----------
    sigma : prior, optional
        rms width in arcsec, drawn per image (Hezaveh et al. 2017: up to 0.1").
    fwhm : float or dict, optional
        Fixed FWHM in arcsec, or band -> FWHM (survey instruments).

    Give exactly one of ``sigma`` and ``fwhm``.  The kernel is integrated over
    pixels, so a zero width leaves the image unchanged; flux leaving the stamp
    is lost (zero padding), as on a detector.  The FWHM is recorded per image
    as ``psf_fwhm`` (its mean over the bands, as `MoffatPSF` records it).
    """

    name = "gaussian_psf"

    def __init__(self, sigma=None, fwhm=None):
        if (sigma is None) == (fwhm is None):
            raise ValueError("give exactly one of sigma (a prior, arcsec) and fwhm (arcsec or band -> arcsec)")
        self.sigma = None if sigma is None else as_prior(sigma, "sigma", u.arcsec)
        if isinstance(fwhm, dict):
            fwhm = {b: as_float(v, f"fwhm['{b}']", u.arcsec) for b, v in fwhm.items()}
            for b, v in fwhm.items():
                if not v > 0:
                    raise ValueError(f"fwhm['{b}'] must be > 0 arcsec; got {v}")
        elif fwhm is not None:
            fwhm = as_float(fwhm, "fwhm", u.arcsec)
            if not fwhm > 0:
                raise ValueError(f"fwhm must be > 0 arcsec; got {fwhm}")
        self.fwhm = fwhm

    def sigmas(self, obs, rng):
        """rms width in arcsec, shape (N, bands)."""
        n, nb = obs.images.shape[:2]
        if self.sigma is not None:
            s = np.clip(self.sigma.sample(rng, n), 0, None)
            return np.repeat(s[:, None], nb, axis=1)
        f = self.fwhm
        if isinstance(f, dict):
            missing = [b for b in obs.bands if b not in f]
            if missing:
                raise ValueError(f"fwhm has no value for band(s) {missing}")
            vals = [f[b] for b in obs.bands]
        else:
            vals = [f] * nb
        return np.tile(np.asarray(vals, float) / (2 * math.sqrt(2 * math.log(2))), (n, 1))

    def __call__(self, obs, rng):
        sig = self.sigmas(obs, rng)
        n, nb, h, w = obs.images.shape
        widths, index = np.unique(sig.reshape(-1), return_inverse=True)
        if len(widths) * 16 <= len(index):  # a fixed PSF per band: the planes share a few kernels
            kern = _gaussian_kernels(widths / obs.pixel_scale, obs.images.dtype, obs.images.device)
            index = torch.as_tensor(index.reshape(-1), device=obs.images.device)
        else:
            kern = _gaussian_kernels(sig.reshape(-1) / obs.pixel_scale, obs.images.dtype, obs.images.device)
            index = None

        def fn(stack):  # k x N images
            parts = stack.shape[0] // n
            flat = stack.reshape(parts * n * nb, h, w)
            if index is None:
                return separable_convolve(flat, kern.repeat(parts, 1)).reshape(stack.shape)
            return separable_convolve(flat, kern, index.repeat(parts)).reshape(stack.shape)

        _apply_linear(obs, fn)
        obs.meta["psf_fwhm"] = sig.mean(1) * 2 * math.sqrt(2 * math.log(2))  # over the bands, as MoffatPSF
        return obs

    def to_config(self):
        return {"effect": self.name, "sigma": _prior_config(self.sigma), "fwhm": self.fwhm}


#: The fraction of a Moffat PSF's flux that `MoffatPSF` may leave outside its kernel (when the stamp allows).
MOFFAT_TAIL = 1e-3


def _moffat_alpha(fwhm, beta):
    return fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))


def moffat_radius(fwhm_pix, beta, tail=MOFFAT_TAIL, ellipticity=0.0):
    """
    The radius in pixels outside which a Moffat profile holds the fraction ``tail`` of its flux.

    From the enclosed flux of (1 + r^2 / alpha^2)^-beta within r,
    1 - (1 + r^2 / alpha^2)^(1 - beta); along the major axis for an elliptical profile.  The wings of
    beta near 1 hold much of the flux far out (beta 1.5: 3% beyond 20 FWHM), so the radius can be large
    (infinite for beta -> 1).

    Parameters
    ----------
    fwhm_pix, beta : float or array
    tail : float
        Fraction of the flux left outside, in (0, 1).
    ellipticity : float or array
        (1 - q) / (1 + q) of the isophotes (the FWHM being the geometric mean of the axes).

    Returns
    -------
    float or array
    """
    if not 0 < tail < 1:
        raise ValueError(f"tail must be a fraction in (0, 1); got {tail}")
    fwhm, beta = np.asarray(fwhm_pix, dtype=float), np.asarray(beta, dtype=float)
    if np.any(~(beta > 1)):
        raise ValueError(f"beta must be > 1 (a Moffat profile of finite flux); got {beta}")
    c = np.clip(np.abs(np.asarray(ellipticity, dtype=float)), 0, 0.95)
    q = (1 - c) / (1 + c)
    with np.errstate(over="ignore"):
        x = np.power(tail, 1 / (1 - beta)) - 1
    return _moffat_alpha(fwhm, beta) * np.sqrt(x) / np.sqrt(q)


def moffat_kernels(fwhm_pix, beta, e1=None, e2=None, half=None, oversample=3, normalize="sum", max_half=256):
    """
    Pixel-integrated Moffat kernels: I(r) proportional to (1 + (r / alpha)^2)^-beta.

    Parameters
    ----------
    fwhm_pix, beta : array (M,)
        FWHM in pixels and the wing index (large beta tends to a Gaussian; 2.5-4.7 for ground-based seeing).
    e1, e2 : array (M,), optional
        Ellipticity components (1 - q) / (1 + q) of the kernel's isophotes, at the FWHM kept as the
        geometric mean of the axes.
    half : int, optional
        Half-width of the (2 half + 1)-pixel square kernels.  Default: the radius outside which the widest
        holds ``MOFFAT_TAIL`` of its flux (`moffat_radius`), at most ``max_half``.
    oversample : int
        Odd number of sub-pixels per pixel side over which each pixel is integrated.  Within two FWHM
        of the centre (where the profile curves); further out each pixel takes its centre's value (there
        the two differ by far less than the pixel-to-pixel change).
    normalize : {"sum", "flux"}
        ``"sum"``: each kernel sums to one.  ``"flux"``: the profile's total flux (pi alpha^2 / (beta - 1))
        is one, so a kernel sums to the fraction of the flux that falls within it, and what falls outside
        is lost (as light leaving a detector's stamp).
    max_half : int
        The largest default half-width (`MoffatPSF` passes half its stamp).

    Returns
    -------
    `torch.Tensor` (M, 2 half + 1, 2 half + 1), float64
    """
    if normalize not in ("sum", "flux"):
        raise ValueError(f"normalize must be 'sum' or 'flux'; got {normalize!r}")
    fwhm = torch.as_tensor(np.asarray(fwhm_pix, dtype=float), dtype=torch.float64).reshape(-1)
    beta = torch.as_tensor(np.asarray(beta, dtype=float), dtype=torch.float64).reshape(-1)
    m = fwhm.shape[0]
    if oversample % 2 != 1:
        raise ValueError(f"oversample must be odd (sub-pixels centred on the pixel); got {oversample}")
    if half is None:
        ell = 0.0 if e1 is None else np.hypot(np.asarray(e1, dtype=float), np.asarray(e2, dtype=float))
        r = float(np.max(moffat_radius(fwhm.numpy(), beta.numpy(), MOFFAT_TAIL, ell))) if m else 1.0
        half = int(max(1, math.ceil(min(r, max_half))))
    b = beta.reshape(-1, 1, 1)
    alpha = fwhm.reshape(-1, 1, 1) / (2 * torch.sqrt(2 ** (1 / b) - 1))
    if e1 is not None:
        e1 = torch.as_tensor(np.asarray(e1, dtype=float), dtype=torch.float64).reshape(-1, 1, 1)
        e2 = torch.as_tensor(np.asarray(e2, dtype=float), dtype=torch.float64).reshape(-1, 1, 1)
        c = torch.sqrt(e1 * e1 + e2 * e2).clamp(max=0.95)
        q = (1 - c) / (1 + c)
        phi = 0.5 * torch.atan2(e2, e1)

    def profile(g):  # pixel offsets (L,) -> (M, L, L) profile values
        x, y = g.reshape(1, 1, -1), g.reshape(1, -1, 1)
        if e1 is None:
            r2 = x * x + y * y
        else:
            xr = x * torch.cos(phi) + y * torch.sin(phi)
            yr = -x * torch.sin(phi) + y * torch.cos(phi)
            r2 = xr * xr * q + yr * yr / q
        return (1 + r2 / (alpha * alpha)) ** (-b)

    s = int(oversample)
    k = profile(torch.arange(-half, half + 1, dtype=torch.float64))  # pixel centres
    if s > 1:  # pixel integration where the profile curves
        core = min(half, int(math.ceil(2 * float(fwhm.max()))) + 1) if m else half
        g = (torch.arange((2 * core + 1) * s, dtype=torch.float64) - ((2 * core + 1) * s - 1) / 2) / s
        kc = F.avg_pool2d(profile(g).unsqueeze(1), s).squeeze(1)
        k[:, half - core:half + core + 1, half - core:half + core + 1] = kc
    if normalize == "sum":
        return k / k.sum((-2, -1), keepdim=True)
    return k / (math.pi * alpha * alpha / (b - 1))


def _lowest(prior):
    """The smallest value a prior can draw where it states one (a fixed value, a lower bound), else +inf."""
    if isinstance(prior, Fixed):
        return prior.value
    low = getattr(prior, "low", None)
    return math.inf if low is None or low == -math.inf else low


class MoffatPSF(Effect):
    """
    Moffat point-spread functions drawn per image: ground-based seeing with its wings.

    Parameters
    ----------
    fwhm : prior
        FWHM in arcsec, drawn per image (for example ``(0.55, 0.95)`` for LSST).
    beta : prior
        The wing index, drawn per image; default 2.5-4.7 (Trujillo et al. 2001's range for
        atmospheric turbulence).  Large values approach a Gaussian.
    ellipticity : prior
        (1 - q) / (1 + q) of the PSF's isophotes, drawn per image in a random direction; default 0 (round).
    band_scatter : float
        Relative rms of each band's FWHM about the image's (seeing differs between exposures).  Default 0.

    Each kernel is integrated over pixels and reaches as far as it holds all but
    ``MOFFAT_TAIL`` (0.1%) of its flux, or half across the stamp; flux leaving
    the stamp is lost (zero padding), as on a detector.  Wide wings (beta near
    1.5, as a space PSF's) therefore spread a visible part of the light over
    the whole stamp, and cost a larger convolution.  The FWHM drawn is recorded per image as
    ``psf_fwhm`` (its mean over the bands).
    """

    name = "moffat_psf"

    def __init__(self, fwhm=(0.6, 0.9), beta=(2.5, 4.7), ellipticity=0.0, band_scatter=0.0):
        self.fwhm = as_prior(fwhm, "fwhm", u.arcsec)
        self.beta = as_prior(beta, "beta")
        self.ellipticity = as_prior(ellipticity, "ellipticity")
        self.band_scatter = as_float(band_scatter, "band_scatter")
        if not self.band_scatter >= 0:
            raise ValueError(f"band_scatter must be >= 0; got {band_scatter}")
        # a fixed value, or a prior's lower bound, is checked now, before anything is simulated (drawn values when
        # drawn: an untruncated normal may still draw one out of range)
        if not _lowest(self.fwhm) > 0:
            raise ValueError(f"fwhm must be > 0 arcsec; got {self.fwhm!r}")
        if not _lowest(self.beta) > 1:
            raise ValueError(f"beta must be > 1 (a Moffat profile of finite flux); got {self.beta!r}")

    def draw(self, n, nb, rng):
        """FWHM (n, bands) in arcsec, beta (n,) and ellipticity components (n,) of n images."""
        fwhm = self.fwhm.sample(rng, n)
        if np.any(~(fwhm > 0)):
            raise ValueError("fwhm must be > 0 arcsec")
        beta = self.beta.sample(rng, n)
        if np.any(~(beta > 1)):
            raise ValueError("beta must be > 1 (a Moffat profile of finite flux)")
        ell = np.abs(self.ellipticity.sample(rng, n))
        ang = rng.uniform(0, np.pi, n)
        fb = fwhm[:, None] * np.clip(1 + self.band_scatter * rng.normal(size=(n, nb)), 0.5, 1.5)
        return fb, beta, ell * np.cos(2 * ang), ell * np.sin(2 * ang)

    def __call__(self, obs, rng):
        n, nb, h, w = obs.images.shape
        fb, beta, e1, e2 = self.draw(n, nb, rng)
        pix = obs.pixel_scale
        rep = lambda a: np.repeat(a, nb)  # noqa: E731
        # the kernel reaches as far as the widest keeps all but MOFFAT_TAIL of its flux, or across half the
        # stamp: what a point near the centre spreads beyond is lost, as off a detector
        kern = moffat_kernels(fb.reshape(-1) / pix, rep(beta), rep(e1), rep(e2), normalize="flux",
                              max_half=max(h, w) // 2)
        kern = kern.reshape(n, nb, *kern.shape[-2:])

        def fn(stack):  # k x N images
            return fft_convolve(stack, kern.to(stack.dtype).repeat(stack.shape[0] // n, 1, 1, 1), fast_size=True)

        _apply_linear(obs, fn)
        obs.meta["psf_fwhm"] = fb.mean(1)
        obs.meta["psf_beta"] = beta
        return obs

    def to_config(self):
        return {"effect": self.name, "fwhm": _prior_config(self.fwhm), "beta": _prior_config(self.beta),
                "ellipticity": _prior_config(self.ellipticity), "band_scatter": self.band_scatter}


class ImagePSF(Effect):
    """
    Convolution with a supplied PSF image (for example an HST PSF).

    Parameters
    ----------
    kernel : array-like or dict
        2-D PSF image, or band -> image.  Normalised to unit sum.
    pixel_scale : float, optional
        Pixel scale of the kernel in arcsec; when it differs from the
        instrument's, the kernel is resampled (flux-conserving spline zoom).
    """

    name = "image_psf"

    def __init__(self, kernel, pixel_scale=None):
        kernels = kernel if isinstance(kernel, dict) else {None: kernel}
        self.kernels = {}
        for b, k in kernels.items():
            k = np.asarray(k, dtype=float)
            if k.ndim != 2 or min(k.shape) < 1:
                raise ValueError(f"PSF kernel for band {b} must be a 2-D array; got shape {k.shape}")
            if not np.all(np.isfinite(k)) or k.sum() <= 0:
                raise ValueError(f"PSF kernel for band {b} must be finite with a positive sum")
            self.kernels[b] = k / k.sum()
        self.pixel_scale = None if pixel_scale is None else as_float(pixel_scale, "pixel_scale", u.arcsec)
        if self.pixel_scale is not None and not self.pixel_scale > 0:
            raise ValueError(f"pixel_scale must be > 0 arcsec; got {self.pixel_scale}")
        self._cache = {}

    def _kernel(self, band, pixel_scale):
        k = self.kernels.get(band, self.kernels.get(None))
        if k is None:
            raise ValueError(f"no PSF kernel for band {band!r}; have {sorted(map(str, self.kernels))}")
        key = (band, pixel_scale)
        if key not in self._cache:
            if self.pixel_scale is not None and abs(self.pixel_scale - pixel_scale) > 1e-9 * pixel_scale:
                k = zoom(k, self.pixel_scale / pixel_scale, order=3)
                k = np.clip(k, 0, None)
            if k.shape[0] % 2 == 0:  # odd size, centred
                k = np.pad(k, ((0, 1), (0, 0)))
            if k.shape[1] % 2 == 0:
                k = np.pad(k, ((0, 0), (0, 1)))
            self._cache[key] = k / k.sum()
        return self._cache[key]

    def __call__(self, obs, rng):
        n, nb, h, w = obs.images.shape
        ks = [self._kernel(b, obs.pixel_scale) for b in obs.bands]
        kh = max(k.shape[0] for k in ks)  # every kernel is odd-sized and centred: pad them to one shape
        kw = max(k.shape[1] for k in ks)
        kern = torch.zeros((nb, kh, kw), dtype=torch.float64)
        for i, k in enumerate(ks):
            dy, dx = (kh - k.shape[0]) // 2, (kw - k.shape[1]) // 2
            kern[i, dy:dy + k.shape[0], dx:dx + k.shape[1]] = torch.as_tensor(k)
        kern = kern.to(obs.images.device)
        return _apply_linear(obs, lambda stack: fft_convolve(stack.to(torch.float64), kern).to(stack.dtype))

    def to_config(self):
        return {"effect": self.name, "pixel_scale": self.pixel_scale,
                "kernel_shapes": {str(b): list(k.shape) for b, k in self.kernels.items()}}


# ------------------------------------------------------------------------------ noise
#: Expected counts at or above which `poisson_counts` draws from the Cornish-Fisher expansion.
POISSON_NORMAL_MIN = 50.0


def poisson_counts(mean, generator=None, exact=False):
    """
    Poisson draws with the given expected counts (a tensor, >= 0).

    Below `POISSON_NORMAL_MIN` (50) counts the draw is exact (`torch.poisson`),
    and so is every draw of a call where fewer than a quarter of the means
    reach it (splitting the batch would cost more than it saves).  Otherwise
    -- sky-dominated survey images, where every pixel is there -- the means of
    50 or more are drawn from the Cornish-Fisher expansion of the Poisson
    quantile function to second order at a standard normal draw ``z``,
    rounded to an integer::

        k = floor(m + sqrt(m - 1/12) z + (z**2 - 1) / 6 + (z - z**3) / (72 sqrt(m)) + 1/2)

    (the 1/12 takes out the variance that rounding adds).  Its total-variation
    distance to the Poisson distribution of mean ``m`` is 4.6e-5 at m = 50,
    1.6e-5 at 100 and 5e-7 at 1,000 (it falls as m**-1.5; the plain normal
    approximation's is 1.8e-2, 1.3e-2 and 4e-3); its mean is ``m`` and its
    variance ``m`` to a relative 2e-6 or better.  On the CPU `torch.poisson`
    costs 50-70 ns per pixel whatever the mean (it draws one value at a
    time); the expansion, one vectorised normal draw and a polynomial
    computed in place, about 15 ns.

    Parameters
    ----------
    mean : torch.Tensor
        Expected counts (negative values are treated as 0).
    generator : torch.Generator, optional
    exact : bool
        `torch.poisson` everywhere.
    """
    mean = torch.clamp(mean, min=0)
    if exact:
        return torch.poisson(mean, generator=generator)
    large = mean >= POISSON_NORMAL_MIN
    n_large = int(large.sum())
    if n_large < mean.numel() // 4:  # mostly small means: splitting the batch would cost more than it saves
        return torch.poisson(mean, generator=generator)
    if n_large == mean.numel():
        return _cornish_fisher(mean, generator).to(mean.dtype)
    # torch.poisson returns 0 for a zero mean at once: no gather of the (usually many) small means
    out = torch.poisson(torch.where(large, 0.0, mean), generator=generator)
    idx = large.nonzero(as_tuple=True)
    out[idx] = _cornish_fisher(mean[idx], generator).to(mean.dtype)
    return out


def _counts_dtype(m, largest=None):
    """float32 where it represents the counts to well under one (means below 2**22), else float64.

    ``largest``: the largest mean when the caller knows it (saves a pass over ``m``)."""
    if m.dtype == torch.float64 or m.numel() == 0:
        return m.dtype
    return m.dtype if float(m.max() if largest is None else largest) < 2.0**22 else torch.float64


def _cornish_fisher(m, generator):
    # in place: each new tensor of a big batch costs more than the arithmetic
    dt = _counts_dtype(m)
    m = m.to(dt)
    z = torch.randn(m.shape, generator=generator, dtype=dt, device=m.device)
    z2 = z * z
    k = torch.rsqrt(m).mul_(1 / 72).mul_(z).mul_(1 - z2)  # z (1 - z**2) / (72 sqrt(m))
    k.add_(z2.sub_(1).div_(6))
    k.addcmul_(torch.sqrt(m - 1 / 12), z).add_(m).add_(0.5)
    return k.floor_().clamp_(min=0)


def _cornish_fisher_sum(m, s2, generator, largest=None):
    """
    Continuous draws of a Poisson count of mean ``m`` plus normal read noise of variance ``s2``, from one normal.

    The Cornish-Fisher expansion of the sum's quantile function (cumulants
    m + s2, m, m) to the order of `poisson_counts`'::

        x = m + sigma z + g1 sigma (z**2 - 1) / 6 + sigma z (g2 (z**2 - 3) / 24 - g1**2 (2 z**2 - 5) / 36)

    with sigma**2 = m + s2, g1 = m / sigma**3, g2 = m / sigma**4.  For read
    noise of 1 e- or more and means of 50 or more, the total-variation
    distance of the rounded draw to the exact Poisson-plus-normal rounded is
    under 2e-5 (at m = 50; 2e-7 at 1,000): closer than a Cornish-Fisher
    Poisson count plus a second normal draw, at the cost of one normal.
    """
    dt = _counts_dtype(m, largest)
    m = m.to(dt)
    var = m + s2
    sigma = torch.sqrt(var)
    z = torch.randn(m.shape, generator=generator, dtype=dt, device=m.device)
    g = var.reciprocal_().mul_(m)  # m / sigma**2 = g1 sigma
    z2 = z * z
    t = (z2 * (-2 / 36)).add_(5 / 36).mul_(g)  # -g1 sigma (2 z**2 - 5) / 36
    t.add_(z2, alpha=1 / 24).sub_(3 / 24).mul_(g).div_(sigma)  # ... times g1, plus the g2 term
    x = z2.sub_(1).mul_(g).div_(6)
    return x.addcmul_(z, t).addcmul_(sigma, z).add_(m)


def _peak(x):
    return x.reshape(x.shape[0], -1).amax(1).clamp(min=torch.finfo(x.dtype).tiny)


#: `Observation.reference_peak` of an image holding its lens galaxy's light is at least this fraction of the
#: image's own peak.
LENS_LIGHT_PEAK_FLOOR = 1e-3


class PoissonNoise(Effect):
    """
    Photon noise on normalised images (Hezaveh et al. 2017).

    Each image is scaled to a peak of 1 (`Observation.reference_peak`: with
    the lens galaxy's light in the image, the peak of the image without it,
    whose light then adds its own photons), multiplied by a counts factor drawn
    from ``counts_factor`` (default 100-1000), replaced by a Poisson draw with
    that mean, and scaled back.  Pixels of 50 counts or more are drawn from
    the Cornish-Fisher expansion of `poisson_counts` (total-variation
    distance to the Poisson distribution under 5e-5); ``exact=True`` draws
    every pixel with `torch.poisson`.  A `GaussianNoise` right after it is
    applied together with it (`then`: `poisson_gaussian_noise`, the same
    distribution, drawn faster) unless ``exact`` is True.
    """

    name = "poisson_noise"

    def __init__(self, counts_factor=(100.0, 1000.0), exact=False):
        self.counts_factor = as_prior(counts_factor, "counts_factor")
        self.exact = bool(exact)

    def __call__(self, obs, rng):
        f, g = self._draw(rng, obs.n, obs.images.device)
        mean, peak, ft = self._mean(obs.images, f, obs.reference_peak())
        counts = poisson_counts(mean, g, exact=self.exact)
        obs.images = counts.div_(ft).mul_(peak)
        obs.variance = mean.mul_((peak / ft) ** 2).add_(obs.variance)
        obs.meta["counts_factor"] = f
        return obs

    def then(self, after):
        """`poisson_gaussian_noise` when ``after`` is a `GaussianNoise` (neither a subclass), unless exact."""
        if type(self) is PoissonNoise and type(after) is GaussianNoise and not self.exact:
            return lambda obs, rng: poisson_gaussian_noise(obs, rng, self, after)
        return None

    def _draw(self, rng, n, device):
        """The per-image counts factors and the generator, in the order the effect has always drawn them."""
        f = self.counts_factor.sample(rng, n)
        if np.any(f <= 0):
            raise ValueError("counts_factor must be > 0")
        return f, torch_generator(rng, device)

    @staticmethod
    def _mean(images, f, peak=None):
        """
        Expected counts (each image's ``peak``, default its own, scaled to its counts factor), the peaks and the
        factors.
        """
        n = images.shape[0]
        peak = (_peak(images) if peak is None else peak).reshape(n, 1, 1, 1)
        ft = torch.as_tensor(f, dtype=images.dtype, device=images.device).reshape(n, 1, 1, 1)
        return torch.clamp(images, min=0).div_(peak).mul_(ft), peak, ft  # in place on the new tensor

    def to_config(self):
        return {"effect": self.name, "counts_factor": _prior_config(self.counts_factor), "exact": self.exact}


# ---------------------------------------------------------------------------- correlated noise
#: Measured noise correlation functions shipped with lenskit: name -> file (`noise_correlation` loads them).
NOISE_CORRELATIONS = {
    "cosmos_acs_f814w": "cosmos_acs_f814w_ncf.fits",
}


def noise_correlation(name="cosmos_acs_f814w"):
    """
    A measured blank-sky noise correlation function shipped with lenskit.

    ``"cosmos_acs_f814w"``: HST ACS F814W images of the COSMOS field (the
    30 mas unrotated drizzle), measured by the GalSim developers (GalSim's
    ``share/acs_I_unrot_sci_20_cf.fits``, BSD-3 licence, reproduced in
    ``lenskit/instruments/data/LICENSE-galsim.txt``).  Drizzling correlates
    neighbouring pixels: 0.48 between direct neighbours, 0.23 diagonally.
    Its Fourier transform is the noise power spectrum of a real blank field,
    with which `GaussianNoise` colours the noise as Hezaveh et al. (2017)
    did.  The lags are in the images' own pixels: the correlation of a
    drizzled image is set by the drizzle kernel on its output grid.

    Parameters
    ----------
    name : str
        One of `NOISE_CORRELATIONS`.

    Returns
    -------
    numpy.ndarray
        (81, 81), centred on pixel (40, 40), normalised to 1 at zero lag.
    """
    if not isinstance(name, str) or name not in NOISE_CORRELATIONS:
        raise ValueError(f"noise correlation must be one of {sorted(NOISE_CORRELATIONS)}; got {name!r}")
    with files("lenskit.instruments").joinpath("data", NOISE_CORRELATIONS[name]).open("rb") as f:
        with fits.open(f) as hdul:
            c = np.asarray(hdul["NCF"].data, dtype=float)
    cy, cx = c.shape[0] // 2, c.shape[1] // 2
    return c / c[cy, cx]


class GaussianNoise(Effect):
    """
    Additive Gaussian noise with an rms relative to each image's peak.

    Parameters
    ----------
    rms : prior
        rms as a fraction of the image peak (Hezaveh et al. 2017: 1-10%;
        `Observation.reference_peak`: with the lens galaxy's light in the
        image, the noise-free peak of the image without it).
    correlation : str or array-like, optional
        A 2-D noise correlation function (centred), or the name of a measured
        one shipped with lenskit (`noise_correlation`, for example
        ``"cosmos_acs_f814w"``).  Its Fourier transform is the noise power
        spectrum used to colour the noise.  Default: white noise only.
    coloured_fraction : float
        Probability that an image gets coloured rather than white noise (when
        a correlation function is given).  Default 0.5.
    """

    name = "gaussian_noise"

    def __init__(self, rms=(0.01, 0.1), correlation=None, coloured_fraction=0.5):
        self.rms = as_prior(rms, "rms")
        self.correlation = None
        self.correlation_name = correlation if isinstance(correlation, str) else None
        if isinstance(correlation, str):
            self.correlation = noise_correlation(correlation)
        elif correlation is not None:
            c = np.asarray(correlation, dtype=float)
            if c.ndim != 2 or not np.all(np.isfinite(c)):
                raise ValueError(f"correlation must be a finite 2-D array or one of {sorted(NOISE_CORRELATIONS)}")
            if c.shape[0] % 2 == 0 or c.shape[1] % 2 == 0 or c[c.shape[0] // 2, c.shape[1] // 2] <= 0:
                raise ValueError(f"correlation must be centred on its middle pixel (odd sides) with a positive "
                                 f"zero lag; got shape {c.shape}")
            self.correlation = c
        if not 0 <= coloured_fraction <= 1:
            raise ValueError(f"coloured_fraction must lie in [0, 1]; got {coloured_fraction}")
        self.coloured_fraction = float(coloured_fraction)
        self._amp = {}

    def amplitude(self, shape):
        """sqrt of the power spectrum on an (H, W) grid, normalised to unit noise variance."""
        if shape not in self._amp:
            h, w = shape
            c = self.correlation
            full = np.zeros((h, w))
            ch, cw = c.shape
            hy, hx = min(ch // 2, (h - 1) // 2), min(cw // 2, (w - 1) // 2)  # lags that fit the grid once
            cy, cx = ch // 2, cw // 2
            sub = c[cy - hy: cy + hy + 1, cx - hx: cx + hx + 1]
            full[:sub.shape[0], :sub.shape[1]] = sub
            full = np.roll(full, (-hy, -hx), axis=(0, 1))
            ps = np.clip(np.fft.fft2(full).real, 0, None)
            amp = np.sqrt(ps / ps.mean())
            self._amp[shape] = amp
        return self._amp[shape]

    def white_split(self, shape):
        """
        The colouring split into white noise and the rest: ``(c, rest)`` with ``amplitude(shape)**2 = c + rest**2``.

        ``c`` is the smallest power of the spectrum (its fraction of the
        noise variance that is white), ``rest`` the amplitude of what remains
        (the half-plane, as `torch.fft.rfft2` lays it out).  White noise of
        variance ``c s**2`` plus white noise coloured by ``rest`` and scaled
        by ``s`` is coloured noise of rms ``s``, exactly.
        """
        key = ("split", shape)
        if key not in self._amp:
            p = self.amplitude(shape) ** 2
            c = float(p.min())
            self._amp[key] = (c, np.sqrt(np.clip(p - c, 0, None))[:, : shape[1] // 2 + 1])
        return self._amp[key]

    def __call__(self, obs, rng):
        frac, g, coloured = self._draw(rng, obs.n, obs.images.device)
        obs.images, sigma = self._add(obs.images, frac, coloured, g, obs.reference_peak())
        obs.variance = obs.variance + (sigma**2).reshape(-1, 1, 1, 1)
        obs.meta["noise_rms"] = frac
        obs.meta["noise_coloured"] = coloured
        return obs

    def _draw(self, rng, n, device):
        """The per-image choices, in the order the effect has always drawn them: rms, generator, colouring."""
        frac = self.rms.sample(rng, n)
        if np.any(frac < 0):
            raise ValueError("rms must be >= 0")
        g = torch_generator(rng, device)
        coloured = np.zeros(n, dtype=bool)
        if self.correlation is not None:
            coloured = rng.random(n) < self.coloured_fraction
        return frac, g, coloured

    def _add(self, images, frac, coloured, g, peak=None):
        """``images`` plus the noise (rms ``frac`` times ``peak``, default each image's); returns it and the rms."""
        n, nb, h, w = images.shape
        dt, dev = images.dtype, images.device
        sigma = torch.as_tensor(frac, dtype=dt, device=dev) * (_peak(images) if peak is None else peak)
        noise = torch.randn(images.shape, generator=g, dtype=dt, device=dev)
        if coloured.any():
            # the power spectrum is real and even (that of the symmetrised correlation function), so
            # the half-plane transforms colour the noise exactly
            ft = torch.float64 if dt == torch.float64 else torch.float32
            amp = torch.as_tensor(self.amplitude((h, w))[:, : w // 2 + 1], dtype=ft, device=dev)
            idx = torch.as_tensor(np.nonzero(coloured)[0], device=dev)
            col = torch.fft.irfft2(torch.fft.rfft2(noise[idx].to(ft)) * amp, s=(h, w))
            noise[idx] = col.to(dt)
        return noise.mul_(sigma.reshape(n, 1, 1, 1)).add_(images), sigma  # in place on the new noise

    def to_config(self):
        return {"effect": self.name, "rms": _prior_config(self.rms),
                "coloured": self.correlation is not None, "coloured_fraction": self.coloured_fraction,
                "correlation": self.correlation_name}


#: Gaussian noise rms (counts) from which `poisson_gaussian_noise` draws a pixel's photons and noise together.
POISSON_GAUSSIAN_MIN_RMS = 3.0


def _peak_candidates(top):
    """
    Expected counts from which a pixel may hold an image's noisy peak (``top``: each image's largest mean M).

    The brightest pixel draws at least ``a = M - 6 sqrt(M)`` except with
    probability below exp(-18) = 1.5e-8 (the Poisson lower tail, P(X <= m - t)
    <= exp(-t**2 / 2m)).  A pixel of mean ``T`` with ``T + 8 sqrt(T) + 22 <= a``
    reaches ``a`` with probability below exp(-32) = 1.3e-14 (Bernstein,
    P(X >= T + t) <= exp(-t**2 / (2 (T + t / 3)))), so the noisy peak lies among
    the pixels of mean ``T`` or more except with probability below 3e-8 per
    image of up to a million pixels.  0 where no such ``T`` exists.
    """
    a = top - 6 * torch.sqrt(top)
    u = torch.sqrt(torch.clamp(a - 6, min=0)) - 4  # sqrt(T): (sqrt(T) + 4)**2 = a - 6
    return torch.where(a > 22, u * u, torch.zeros_like(u))


def poisson_gaussian_noise(obs, rng, poisson, gaussian):
    """
    `PoissonNoise` followed by `GaussianNoise`, with the photons and the noise of a pixel drawn together.

    The result has the distribution of the two effects applied one after the
    other (what a ``Camera`` did before; ``poisson`` with
    ``exact=True`` still does), with the same NumPy draws in the same order:
    counts factors, rms and colouring.  The Gaussian rms is a fraction of each
    image's *noisy* peak, so the pixels that may hold it (``_peak_candidates``:
    all but those that reach it with probability below 3e-8 per image) get
    exact Poisson counts first.  Where the white part of the Gaussian noise
    has an rms of `POISSON_GAUSSIAN_MIN_RMS` (3) counts or more, every other
    pixel's sum of a Poisson count of mean ``m`` and that white noise of
    variance ``w**2`` is then drawn from one normal through the Cornish-Fisher
    expansion of its quantile function (``_cornish_fisher_sum``): its
    total-variation distance to the exact sum is below 5e-5 for every ``m``
    (largest near m = 1; 1e-5 at w = 5, 1e-6 at w = 10), where a Poisson draw
    costs 12-50 ns a pixel on the CPU and this about 6.  White noise is all
    white; coloured noise of rms ``s`` is split exactly into white noise of
    variance ``c s**2`` (``c`` the smallest power of its spectrum,
    `GaussianNoise.white_split`: 0.016 for ``"cosmos_acs_f814w"``) and the
    remainder, coloured and added afterwards, so that its images fuse from
    ``s = 3 / sqrt(c)`` (24 counts there).  Images whose white part is
    under 3 counts rms get both effects as before.

    Parameters
    ----------
    obs : Observation
    rng : numpy.random.Generator
    poisson : PoissonNoise
    gaussian : GaussianNoise

    Returns
    -------
    Observation
    """
    n, nb, h, w = obs.images.shape
    dt, dev = obs.images.dtype, obs.images.device
    f, gp = poisson._draw(rng, n, dev)
    frac, gg, coloured = gaussian._draw(rng, n, dev)
    own = obs.truth.get("lens_light") is None  # the rms follows the noisy image's peak (else the reference's)
    ref = obs.reference_peak()
    mean, peak, ft = poisson._mean(obs.images, f, ref)
    mean = mean.contiguous()  # (a new tensor, contiguous unless the images were strided): flat indices below
    # the pixels that may hold the noisy peak, which sets the rms: exact counts, first (no zero means)
    largest = mean.reshape(n, -1).amax(1)
    thr = _peak_candidates(largest).clamp_(min=torch.finfo(dt).tiny).reshape(n, 1, 1, 1)
    cand = at_least(mean, thr)
    flat = flat_nonzero(cand)  # (mean and the counts y below are new, contiguous tensors: flat indices serve both)
    ci = torch.div(flat, nb * h * w, rounding_mode="floor")  # the image of each candidate
    xc = torch.poisson(mean.view(-1)[flat], generator=gp)
    top = torch.zeros(n, dtype=dt, device=dev).scatter_reduce_(0, ci, xc, reduce="amax")
    # the Gaussian rms in counts: of the noisy peak, or, with the lens light in the images, of the reference
    # peak without it (its counts factor, noise-free)
    s = torch.as_tensor(frac, dtype=dt, device=dev) * (top if own else ft.reshape(n))
    # the share of the noise variance drawn white with the photons: all of it, or the coloured spectrum's floor
    c_white, rest = gaussian.white_split((h, w)) if coloured.any() else (1.0, None)
    wf = torch.where(torch.as_tensor(coloured, device=dev), c_white, 1.0).to(dt)
    sw = s * wf.sqrt()  # rms of the white part, counts
    fuse = (sw >= POISSON_GAUSSIAN_MIN_RMS).cpu().numpy()
    # consecutive images of one kind at a time: views, not gathered copies of the images
    runs = np.split(np.arange(n), np.nonzero(np.diff(fuse))[0] + 1)
    y = torch.empty_like(mean) if len(runs) > 1 else None
    top_mean = float(largest.max())
    for r in runs:
        a, b = int(r[0]), int(r[-1]) + 1
        if fuse[a]:
            part = _cornish_fisher_sum(mean[a:b], (sw[a:b] ** 2).reshape(-1, 1, 1, 1), gg, top_mean).to(dt)
        else:
            part = poisson_counts(torch.where(cand[a:b], 0.0, mean[a:b]), gp)
        if y is None:  # one kind throughout: no copy
            y = part
        else:
            y[a:b] = part
    fuse_t = torch.as_tensor(fuse, device=dev)
    yc = xc.addcmul_(torch.randn(xc.shape, generator=gg, dtype=dt, device=dev), (sw * fuse_t)[ci])
    y.view(-1)[flat] = yc  # the candidates' exact counts, plus the white noise where it is drawn here
    images = y.div_(ft).mul_(peak)
    sigma = (s / ft.reshape(n) * peak.reshape(n)).masked_fill_(~fuse_t, 0)
    both = np.nonzero(fuse & coloured)[0]
    if len(both):  # the coloured remainder of the fused coloured images
        ftype = torch.float64 if dt == torch.float64 else torch.float32
        idx = torch.as_tensor(both, device=dev)
        white = torch.randn((len(both), nb, h, w), generator=gg, dtype=ftype, device=dev)
        col = torch.fft.irfft2(torch.fft.rfft2(white) * torch.as_tensor(rest, dtype=ftype, device=dev), s=(h, w))
        images.index_add_(0, idx, col.mul_(sigma[idx].reshape(-1, 1, 1, 1).to(ftype)).to(dt))
    for r in runs:  # faint noise: the Gaussian effect itself, on the Poisson images
        a, b = int(r[0]), int(r[-1]) + 1
        if not fuse[a]:
            images[a:b], sigma[a:b] = gaussian._add(images[a:b], frac[a:b], coloured[a:b], gg,
                                                    None if own else ref[a:b])
    obs.images = images
    obs.variance = mean.mul_((peak / ft) ** 2).add_(obs.variance).add_((sigma**2).reshape(n, 1, 1, 1))
    obs.meta["counts_factor"] = f
    obs.meta["noise_rms"] = frac
    obs.meta["noise_coloured"] = coloured
    return obs


class CCDNoise(Effect):
    """
    Physical noise of a CCD exposure, for images in electrons per second.

    Adds the sky and dark current, draws Poisson electrons over the total
    exposure, adds Gaussian read noise for each read, quantises to ADU with the
    gain, then subtracts the expected sky and dark level and returns
    electrons per second (sky-subtracted), as a reduced image would be.

    Parameters
    ----------
    exposure_time : float
        Total exposure in seconds.
    n_exposures : int
        Number of reads (read noise is added in quadrature for each).
    sky_brightness : dict
        Band -> sky surface brightness in AB mag per arcsec**2.
    zero_points : dict
        Band -> AB magnitude of a source giving 1 electron per second.
    read_noise : float
        Electrons rms per read.
    dark_current : float
        Electrons per pixel per second.
    gain : float
        Electrons per ADU.
    exact : bool
        Draw every pixel's electrons with `torch.poisson`.  By default pixels
        of 50 electrons or more (every sky-dominated survey pixel) are drawn
        from the Cornish-Fisher expansion of `poisson_counts`, whose
        total-variation distance to the Poisson distribution is under 5e-5,
        several times faster on the CPU; when every pixel is (and the read
        noise is 1 e- or more), electrons and read noise are drawn together
        from the expansion of their sum (`_cornish_fisher_sum`: one normal
        draw instead of two, and closer to the exact distribution).
    """

    name = "ccd_noise"

    def __init__(self, exposure_time, n_exposures, sky_brightness, zero_points, read_noise, dark_current, gain,
                 exact=False):
        for nm, v in (("exposure_time", exposure_time), ("gain", gain)):
            if not v > 0:
                raise ValueError(f"{nm} must be > 0; got {v}")
        for nm, v in (("read_noise", read_noise), ("dark_current", dark_current)):
            if not v >= 0:
                raise ValueError(f"{nm} must be >= 0; got {v}")
        if int(n_exposures) != n_exposures or n_exposures < 1:
            raise ValueError(f"n_exposures must be a positive integer; got {n_exposures}")
        self.exposure_time = float(exposure_time)
        self.n_exposures = int(n_exposures)
        self.exact = bool(exact)
        self.sky_brightness = dict(sky_brightness)
        self.zero_points = dict(zero_points)
        self.read_noise = float(read_noise)
        self.dark_current = float(dark_current)
        self.gain = float(gain)

    def sky_rate(self, band, pixel_scale):
        """Sky electrons per second per pixel."""
        return 10 ** (-0.4 * (self.sky_brightness[band] - self.zero_points[band])) * pixel_scale**2

    def __call__(self, obs, rng):
        n, nb, h, w = obs.images.shape
        missing = [b for b in obs.bands if b not in self.sky_brightness or b not in self.zero_points]
        if missing:
            raise ValueError(f"no sky brightness or zero point for band(s) {missing}")
        dt, dev = obs.images.dtype, obs.images.device
        g = torch_generator(rng, dev)
        t = self.exposure_time
        bg = torch.as_tensor([self.sky_rate(b, obs.pixel_scale) + self.dark_current for b in obs.bands],
                             dtype=dt, device=dev).reshape(1, nb, 1, 1)
        # in place on the new tensors: at survey sizes each new tensor costs more than its arithmetic
        mean_e = (obs.images + bg).clamp_(min=0).mul_(t)
        rn = self.read_noise * math.sqrt(self.n_exposures)
        lo = hi = 0.0
        if not self.exact and rn >= 1.0 and mean_e.numel():
            lo, hi = (float(v) for v in torch.aminmax(mean_e))  # one pass for the test and the dtype
        if lo >= POISSON_NORMAL_MIN:
            # sky-dominated with read noise: photon count and read noise in one draw (`_cornish_fisher_sum`)
            e = _cornish_fisher_sum(mean_e, rn**2, g, largest=hi).to(dt)
        else:
            e = poisson_counts(mean_e, g, exact=self.exact)
            e = e.add_(torch.randn(e.shape, generator=g, dtype=dt, device=dev).mul_(rn))
        obs.images = e.div_(self.gain).round_().mul_(self.gain).div_(t).sub_(bg)  # ADU back to electrons/s
        obs.variance = mean_e.add_(rn**2 + self.gain**2 / 12).div_(t**2).add_(obs.variance)
        return obs

    def to_config(self):
        return {"effect": self.name, "exposure_time": self.exposure_time, "n_exposures": self.n_exposures,
                "sky_brightness": self.sky_brightness, "zero_points": self.zero_points,
                "read_noise": self.read_noise, "dark_current": self.dark_current, "gain": self.gain,
                "exact": self.exact}


# ---------------------------------------------------------------------------- artefacts
#: Cosmic-ray banks shared by the `CosmicRays` effects of one configuration in this process (its JSON -> maps).
_SHARED_BANKS = {}


class CosmicRays(Effect):
    """
    Cosmic rays and hot pixels (Hezaveh et al. 2017).

    Each cosmic ray starts at a random pixel and grows by friends-of-friends:
    pixels adjacent to the track are added one at a time, preferring the
    track's direction, until the drawn length (number of pixels) is reached.
    As in the paper, artefact maps come from a bank (per stamp shape) and are
    picked at random, with random flips, for each image.  Map ``k`` of the
    bank is drawn from its own seed ``[bank_seed, H, W, k]`` the first time it
    is picked and kept, so an observation depends only on the generator passed
    in, never on what was simulated before (shards simulated by different
    processes, in any order, are reproducible).

    Parameters
    ----------
    n_rays : tuple of int
        Inclusive range of the number of cosmic rays per map.  Default (0, 6).
    length : tuple of int
        Inclusive range of pixels per cosmic ray.  Default (2, 30).
    amplitude : prior
        Cosmic-ray pixel value as a fraction of the image peak.  Default (0.05, 0.5).
    hot_pixels : tuple of int
        Inclusive range of hot pixels per map (the paper: up to 100).  Default (0, 100).
    hot_amplitude : prior
        Hot-pixel value as a fraction of the peak.  Default (0.02, 0.3).
    bank_size : int
        Number of maps in the bank per shape.  Default 512.
    bank_seed : int
        Seed of the bank's maps.  Default 0.
    """

    name = "cosmic_rays"
    _steps = ((0, 1), (1, 0), (0, -1), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1))
    _step_array = np.array(_steps, float)
    _step_norms = np.linalg.norm(_step_array, axis=1)

    def __init__(self, n_rays=(0, 6), length=(2, 30), amplitude=(0.05, 0.5), hot_pixels=(0, 100),
                 hot_amplitude=(0.02, 0.3), bank_size=512, bank_seed=0):
        for nm, v in (("n_rays", n_rays), ("length", length), ("hot_pixels", hot_pixels)):
            if len(v) != 2 or not 0 <= v[0] <= v[1]:
                raise ValueError(f"{nm} must be an inclusive (low, high) range of integers >= 0; got {v}")
        if length[0] < 1:
            raise ValueError(f"length must be at least 1 pixel; got {length}")
        self.n_rays = tuple(map(int, n_rays))
        self.length = tuple(map(int, length))
        self.amplitude = as_prior(amplitude, "amplitude")
        self.hot_pixels = tuple(map(int, hot_pixels))
        self.hot_amplitude = as_prior(hot_amplitude, "hot_amplitude")
        if int(bank_size) < 1:
            raise ValueError(f"bank_size must be >= 1; got {bank_size}")
        self.bank_size = int(bank_size)
        if int(bank_seed) != bank_seed or bank_seed < 0:
            raise ValueError(f"bank_seed must be a non-negative integer; got {bank_seed!r}")
        self.bank_seed = int(bank_seed)
        self._bank = {}

    def ray(self, shape, length, rng):
        """Pixels (y, x) of one cosmic ray of ``length`` pixels grown by friends-of-friends."""
        h, w = shape
        y, x = int(rng.integers(h)), int(rng.integers(w))
        angle = rng.uniform(0, 2 * np.pi)
        d = np.array([np.sin(angle), np.cos(angle)])
        along = self._step_array @ d / self._step_norms  # each step's alignment with the track (fixed per ray)
        steps = self._steps
        pix = [(y, x)]
        seen = {(y, x)}
        head = (y, x)
        tries = 0
        while len(pix) < length and tries < 20 * length:
            tries += 1
            # friends of the head (or, now and then, of any member: the track widens)
            base = head if rng.random() < 0.85 else pix[int(rng.integers(len(pix)))]
            score = (along + rng.normal(0, 0.35, 8)).tolist()
            # the steps by decreasing score (a stable sort, as argsort of the negated scores for 8 values)
            for k in sorted(range(8), key=score.__getitem__, reverse=True):
                ny, nx = base[0] + steps[k][0], base[1] + steps[k][1]
                if 0 <= ny < h and 0 <= nx < w and (ny, nx) not in seen:
                    seen.add((ny, nx))
                    pix.append((ny, nx))
                    if base == head:
                        head = (ny, nx)
                    break
            else:
                head = pix[int(rng.integers(len(pix)))]
        return np.array(pix, dtype=np.int64).reshape(-1, 2)

    def draw_map(self, shape, rng):
        """
        One artefact map in sparse form.

        Returns
        -------
        ys, xs : ndarray of int
        values : ndarray
            Pixel values as fractions of the image peak.
        lengths : ndarray of int
            Pixel count of each cosmic ray.
        """
        h, w = shape
        ys, xs, vals, lengths = [], [], [], []
        for _ in range(int(rng.integers(self.n_rays[0], self.n_rays[1] + 1))):
            L = int(rng.integers(self.length[0], self.length[1] + 1))
            p = self.ray(shape, L, rng)
            amp = self.amplitude.sample(rng, 1)[0]
            ys.append(p[:, 0])
            xs.append(p[:, 1])
            vals.append(amp * rng.uniform(0.5, 1.0, len(p)))
            lengths.append(len(p))
        nh = int(rng.integers(self.hot_pixels[0], self.hot_pixels[1] + 1))
        if nh:
            ys.append(rng.integers(0, h, nh))
            xs.append(rng.integers(0, w, nh))
            vals.append(self.hot_amplitude.sample(rng, nh))
        cat = (lambda a, dt: np.concatenate(a).astype(dt) if a else np.zeros(0, dt))
        return cat(ys, np.int64), cat(xs, np.int64), cat(vals, float), np.array(lengths, dtype=np.int64)

    def bank_map(self, shape, k):
        """
        Map ``k`` of the bank for ``shape`` (drawn from seed ``[bank_seed, H, W, k]`` on first use).

        A map depends only on the effect's configuration, the shape and ``k``, so every `CosmicRays` of the same
        configuration in the process shares one bank (`_SHARED_BANKS`): a second simulator does not draw it again.
        """
        key = (int(shape[0]), int(shape[1]), int(k))
        if key not in self._bank:
            if not self._bank:  # first use: join the bank of this configuration
                config = json.dumps({**self.to_config(), "bank_size": None}, sort_keys=True)
                if type(self) is CosmicRays:  # a subclass may draw its maps otherwise: its own bank
                    self._bank = _SHARED_BANKS.setdefault(config, self._bank)
            if key not in self._bank:
                self._bank[key] = self.draw_map(shape, np.random.default_rng([self.bank_seed, *key]))
        return self._bank[key]

    def __call__(self, obs, rng):
        n, nb, h, w = obs.images.shape
        pick = rng.integers(0, self.bank_size, (n, nb))
        flips = rng.integers(0, 2, (n, nb, 2))
        peak = obs.reference_peak().cpu().numpy()
        maps = [self.bank_map((h, w), k) for k in pick.reshape(-1)]  # plane i * nb + b
        sizes = np.array([len(m[0]) for m in maps])
        plane = np.repeat(np.arange(n * nb), sizes)
        ys = np.concatenate([m[0] for m in maps])
        xs = np.concatenate([m[1] for m in maps])
        ys = np.where(np.repeat(flips[:, :, 0].reshape(-1), sizes) == 1, h - 1 - ys, ys)
        xs = np.where(np.repeat(flips[:, :, 1].reshape(-1), sizes) == 1, w - 1 - xs, xs)
        vals = np.concatenate([m[2] for m in maps]) * peak[plane // nb]
        n_rays = np.array([len(m[3]) for m in maps], dtype=int).reshape(n, nb).sum(1)
        idx = torch.as_tensor((plane * h + ys) * w + xs, device=obs.images.device)
        val = torch.as_tensor(vals, dtype=obs.images.dtype, device=obs.images.device)
        img = obs.images.reshape(-1).clone()
        img.index_add_(0, idx, val)
        obs.images = img.reshape(n, nb, h, w)
        obs.meta["n_cosmic_rays"] = n_rays
        return obs

    def to_config(self):
        return {"effect": self.name, "n_rays": list(self.n_rays), "length": list(self.length),
                "amplitude": _prior_config(self.amplitude), "hot_pixels": list(self.hot_pixels),
                "hot_amplitude": _prior_config(self.hot_amplitude), "bank_size": self.bank_size,
                "bank_seed": self.bank_seed}


class Normalize(Effect):
    """
    Normalise each image to a peak near 1 and add a zero-level bias (Hezaveh et al. 2017).

    The peak is `Observation.reference_peak`: with the lens galaxy's light in
    the image, that of the image without it (the lens-subtracted image Hezaveh
    et al. normalised), so the galaxy's core may exceed 1.

    The peak becomes ``1 + N(0, peak_rms)`` and a constant ``N(0, bias_rms)``
    is added.  Truth components and variance are scaled alike.
    """

    name = "normalize"

    def __init__(self, peak_rms=0.05, bias_rms=0.05):
        if peak_rms < 0 or bias_rms < 0:
            raise ValueError("peak_rms and bias_rms must be >= 0")
        self.peak_rms = float(peak_rms)
        self.bias_rms = float(bias_rms)

    def __call__(self, obs, rng):
        n = obs.n
        dt, dev = obs.images.dtype, obs.images.device
        target = 1 + rng.normal(0, self.peak_rms, n)
        bias = rng.normal(0, self.bias_rms, n)
        s = torch.as_tensor(target, dtype=dt, device=dev) / obs.reference_peak()
        if obs._reference is not None:  # the lens light's images: their reference scales with them
            obs._reference = obs._reference * s
        s4 = s.reshape(n, 1, 1, 1)
        obs.images = obs.images * s4 + torch.as_tensor(bias, dtype=dt, device=dev).reshape(n, 1, 1, 1)
        obs.variance = obs.variance * s4**2
        for k in obs.truth:
            obs.truth[k] = obs.truth[k] * s4
        obs.meta["bias"] = bias
        return obs

    def to_config(self):
        return {"effect": self.name, "peak_rms": self.peak_rms, "bias_rms": self.bias_rms}


class CircularMasks(Effect):
    """
    Circular masks (bad pixels, bright stars, cosmic-ray hits) set to zero.

    Up to ``max_masks`` circles of ``radius`` are placed per image, half at
    uniformly random positions and half on pixels drawn in proportion to the
    arc flux (so that masks do fall on arcs); masks are dropped, last first,
    until at most ``max_flux_fraction`` of the arc flux is covered (Hezaveh et
    al. 2017: 25% in training, under 2% for test sets).

    Parameters
    ----------
    radius : float
        Mask radius in arcsec.  Default 0.2.
    n_masks : tuple of int
        Inclusive range of masks per image.  Default (0, 5).
    max_flux_fraction : float
        Largest fraction of the ``component`` flux the masks may cover.
    component : str
        Truth component whose flux is limited.  Default ``"arcs"`` (the image when absent).
    """

    name = "circular_masks"

    def __init__(self, radius=0.2, n_masks=(0, 5), max_flux_fraction=0.25, component="arcs"):
        radius = as_float(radius, "radius", u.arcsec)
        if not radius > 0:
            raise ValueError(f"radius must be > 0 arcsec; got {radius}")
        if len(n_masks) != 2 or not 0 <= n_masks[0] <= n_masks[1]:
            raise ValueError(f"n_masks must be an inclusive (low, high) range; got {n_masks}")
        if not 0 <= max_flux_fraction <= 1:
            raise ValueError(f"max_flux_fraction must lie in [0, 1]; got {max_flux_fraction}")
        self.radius = float(radius)
        self.n_masks = tuple(map(int, n_masks))
        self.max_flux_fraction = float(max_flux_fraction)
        self.component = component

    def __call__(self, obs, rng):
        n, nb, h, w = obs.images.shape
        dev = obs.images.device
        comp = obs.truth.get(self.component, obs.images)
        # (N, H*W) in the images' dtype: one pass (two for several bands); the flux fractions in float64
        ref = torch.clamp(comp[:, 0] if comp.shape[1] == 1 else comp.sum(1), min=0).reshape(n, -1)
        total = ref.sum(1).to(torch.float64).clamp(min=1e-300)  # torch sums float32 pairwise: to 1e-7
        r_pix = self.radius / obs.pixel_scale
        kmax = self.n_masks[1]
        count = rng.integers(self.n_masks[0], kmax + 1, n)
        frac = np.zeros(n)
        if kmax > 0:
            cy = rng.uniform(-0.5, h - 0.5, (n, kmax))
            cx = rng.uniform(-0.5, w - 0.5, (n, kmax))
            # half of the masks sit on pixels drawn in proportion to the arc flux (inverse CDF)
            on_arc = (rng.random((n, kmax)) < 0.5) & (total.cpu().numpy() > 1e-300)[:, None]
            cdf = torch.cumsum(ref, dim=1)  # where the on-arc masks fall: the images' precision is plenty
            draws = torch.as_tensor(rng.random((n, kmax)), dtype=cdf.dtype, device=dev) * cdf[:, -1:]
            pix = torch.clamp(torch.searchsorted(cdf, draws), max=h * w - 1).cpu().numpy()
            cy = np.where(on_arc, pix // w, cy)
            cx = np.where(on_arc, pix % w, cx)
            # each circle touches only a window of (2R + 1)^2 pixels about its centre: the union, its flux and
            # the final masks are kept on those pixels (flat indices; pixels outside a circle or the stamp
            # point at a spare last column), not on whole grids
            half = int(math.ceil(r_pix)) + 1
            off = torch.arange(-half, half + 1, device=dev)
            cyt = torch.as_tensor(cy, dtype=torch.float64, device=dev).reshape(n, kmax, 1, 1)
            cxt = torch.as_tensor(cx, dtype=torch.float64, device=dev).reshape(n, kmax, 1, 1)
            py = torch.round(cyt).long() + off.reshape(1, 1, -1, 1)
            px = torch.round(cxt).long() + off.reshape(1, 1, 1, -1)
            inside = ((py - cyt) ** 2 + (px - cxt) ** 2 <= r_pix**2) & (py >= 0) & (py < h) & (px >= 0) & (px < w)
            inside = inside & torch.as_tensor(np.arange(kmax)[None, :] < count[:, None], device=dev).reshape(
                n, kmax, 1, 1)
            spare = h * w
            flat = torch.where(inside, py * w + px, spare).reshape(n, kmax, -1)
            # each pixel's share of the flux, gathered where the circles are (the spare column: none)
            share = torch.where(flat < spare, ref.gather(1, flat.reshape(n, -1).clamp(max=spare - 1)).reshape(
                flat.shape).to(torch.float64) / total.reshape(n, 1, 1), 0.0)
            union = torch.zeros((n, spare + 1), dtype=torch.bool, device=dev)
            cov = torch.zeros(n, dtype=torch.float64, device=dev)
            frac_t = torch.zeros(n, dtype=torch.float64, device=dev)
            kept = torch.zeros(n, dtype=torch.long, device=dev)
            open_ = torch.ones(n, dtype=torch.bool, device=dev)
            for k in range(kmax):
                idx = flat[:, k]
                new = (idx < spare) & ~union.gather(1, idx)  # pixels of this circle not masked yet
                cov = cov + (share[:, k] * new).sum(1)
                union.scatter_(1, idx, True)
                # masks are kept while the union stays within the limit; the first one over it ends the list
                open_ = open_ & (cov <= self.max_flux_fraction + 1e-12)
                kept = torch.where(open_, k + 1, kept)
                frac_t = torch.where(open_, cov, frac_t)
            # the kept circles' pixels, as flat indices into the (N, H*W) planes: a few hundred per image
            use = (torch.arange(kmax, device=dev).reshape(1, kmax, 1) < kept.reshape(n, 1, 1)) & (flat < spare)
            image = torch.arange(n, device=dev).reshape(n, 1, 1).expand_as(flat)[use]
            pixel = flat[use]
            final = torch.zeros(n * spare, dtype=torch.bool, device=dev)
            final[image * spare + pixel] = True
            final = final.reshape(n, h, w)
            frac = frac_t.cpu().numpy()
            # zeros written at those pixels of a copy of the images, in every band (masked_fill over whole
            # planes took 1.3 ns per pixel; the copy 0.2)
            images = obs.images.clone(memory_format=torch.contiguous_format)
            band = torch.arange(nb, device=dev).reshape(-1, 1)
            images.view(-1)[((image * nb + band) * spare + pixel).reshape(-1)] = 0.0
            obs.images = images
        else:
            final = torch.zeros((n, h, w), dtype=torch.bool, device=dev)
        m4 = final.unsqueeze(1)  # a new tensor: the masks themselves when one band, no copy
        m4 = m4 if nb == 1 else m4.expand(n, nb, h, w).clone()
        obs.masks = m4 if obs.masks is None else (obs.masks | m4)
        obs.meta["masked_flux_fraction"] = frac
        return obs

    def to_config(self):
        return {"effect": self.name, "radius": self.radius, "n_masks": list(self.n_masks),
                "max_flux_fraction": self.max_flux_fraction, "component": self.component}
