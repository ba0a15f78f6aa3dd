"""
Assembling simulated systems: the accepted chunks of a run, their table of parameters and the `LensDataset`.
"""

import dataclasses
import functools
import hashlib
from concurrent.futures import Future

import astropy.units as u
import numpy as np
import torch
from astropy.table import QTable, vstack

from lenskit.core.dataset import Deferred, LazyArrays, LensDataset
from lenskit.core.provenance import Provenance

__all__ = ["Accepted", "ImageSink", "arc_snr", "params_table", "assemble"]

#: Units of the table's columns that are not mass parameters.
COLUMN_UNITS = {"theta_E": u.arcsec, "x0": u.arcsec, "y0": u.arcsec, "source_x": u.arcsec, "source_y": u.arcsec,
                "light_R_e": u.arcsec, "light_disc_R_e": u.arcsec, "light_dx": u.arcsec, "light_dy": u.arcsec,
                "psf_fwhm": u.arcsec, "phi": u.rad, "source_mag": u.mag,
                "lens_mag": u.mag, "sigma_v": u.km / u.s}


@dataclasses.dataclass
class Accepted:
    """
    What a simulation round kept, chunk by chunk (tensors on the simulator's device).

    Attributes
    ----------
    images, variance : list of `torch.Tensor`
        (k, bands, H, W) per chunk (``images`` empty when an `ImageSink` took them).
    masks : list of `torch.Tensor` or None
    arcs, lens_light : list of `torch.Tensor`
        Noise-free components (empty unless kept).
    rows : list of dict
        Per chunk, the parameters of its systems (arrays) and ``_src``, the sources' batch.
    """

    images: list = dataclasses.field(default_factory=list)
    variance: list = dataclasses.field(default_factory=list)
    masks: list = dataclasses.field(default_factory=list)
    arcs: list = dataclasses.field(default_factory=list)
    lens_light: list = dataclasses.field(default_factory=list)
    rows: list = dataclasses.field(default_factory=list)

    def __len__(self):
        return sum(len(t) for t in self.variance)  # (every chunk keeps its variance; an ImageSink takes images)


def arc_snr(arcs, variance):
    """
    Arc signal-to-noise of Lanusse et al. (2018, eq. 10), per image and band.

    ``S/N = F_tot / (sigma sqrt(N_pix))`` with ``F_tot`` the total flux of the
    noise-free lensed source, ``sigma`` the rms noise of the image and
    ``N_pix`` the number of pixels where the noise-free arc exceeds
    ``0.5 sigma``.

    Parameters
    ----------
    arcs, variance : `torch.Tensor`
        (N, bands, H, W).

    Returns
    -------
    ndarray
        (N, bands).
    """
    n, nb = arcs.shape[:2]
    sigma = torch.sqrt(variance.reshape(n, nb, -1).mean(2).double())
    a = arcs.reshape(n, nb, -1)  # compared and summed in place (a float64 copy of the arcs cost 6x the rest)
    npix = (a > (0.5 * sigma).to(a.dtype).unsqueeze(2)).sum(2).double()
    ftot = a.sum(2).double()  # summed pairwise in the arcs' dtype (float32: to about 1e-7), no float64 copy
    snr = torch.where(npix > 0, ftot / (sigma * torch.sqrt(torch.clamp(npix, min=1)) + 1e-300),
                      torch.zeros_like(ftot))
    return snr.cpu().numpy()


def params_table(rows, mass_model, plain):
    """One `~astropy.table.QTable` row per system from the rounds' parameter dicts (with the sources' own columns)."""
    keys = [k for k in rows[0] if k != "_src"]
    t = QTable()
    for k in keys:
        col = np.concatenate([r[k] for r in rows])
        unit = COLUMN_UNITS.get(plain.get(k, k)) or (u.arcsec if mass_model.param_units.get(k) == u.arcsec else None)
        t[k] = col * unit if unit is not None else col
    srct = [r["_src"].params for r in rows]
    st = vstack(srct) if srct and srct[0] is not None else None
    if st is not None:
        for c in st.colnames:
            t[c] = st[c]
    return t


def _cat(tensors):
    """
    The tensors concatenated into a new NumPy array.

    The array is a view of a new torch tensor, in memory that Linux maps in
    4 kB pages.  NumPy's own allocation asks for transparent huge pages
    (``madvise``), which fault in faster while the machine has free 2 MB
    blocks, but once its memory is fragmented every fault waits for the
    kernel to compact it: on the development machine ``sample(512)`` of HST
    stamps spent 0.11-0.67 s assembling its arrays that way, against
    0.12-0.25 s now (filling the rows in several threads did not help).  On
    one thread in unfragmented memory huge pages are faster after the first
    call (LSST ``sample(2048)`` about 10%); the 4 kB pages avoid the stalls.
    """
    ts = [t.cpu() for t in tensors]
    out = torch.empty((sum(len(t) for t in ts), *ts[0].shape[1:]), dtype=ts[0].dtype)
    torch.cat(ts, out=out)
    return out.numpy()


class ImageSink:
    """
    The images of a run's accepted chunks, copied into one new float32 array as they arrive, and hashed.

    `~lenskit.Simulator.sample` hands each chunk to the sink while the worker
    threads render the next rounds, instead of concatenating every chunk
    and hashing the result once the rounds are done (on one core, 0.08-0.12 s
    for 512 HST stamps, while the other core had nothing to do); a chunk's
    images are freed once copied.  The checksum is
    `~lenskit.core.provenance.array_checksum`'s, computed in order over
    the chunks (SHA-256 is a stream: the same digest).

    Parameters
    ----------
    n : int
        The number of images the run yields.
    shape : tuple of int
        ``(bands, H, W)``.
    """

    def __init__(self, n, shape):
        self.array = _new_array((int(n), *map(int, shape)), torch.float32)
        self.filled = 0
        self._hash = hashlib.sha256()
        self._hash.update(str(self.array.dtype.str).encode())
        self._hash.update(str(self.array.shape).encode())

    def __call__(self, images):
        """Copy the next chunk's images (k, bands, H, W), any dtype or device, after those before it."""
        k = len(images)
        if self.filled + k > len(self.array):
            raise ValueError(f"the sink holds {len(self.array)} images; got {self.filled + k}")
        dst = self.array[self.filled:self.filled + k]
        dst[...] = images.detach().to(device="cpu", dtype=torch.float32).numpy()
        self._hash.update(memoryview(dst).cast("B"))  # a run of whole images: contiguous
        self.filled += k

    def checksum(self):
        """``"sha256:<hex>"`` of the whole array, once every image is in."""
        if self.filled != len(self.array):
            raise RuntimeError(f"the sink holds {self.filled} of its {len(self.array)} images")
        return "sha256:" + self._hash.hexdigest()


def _new_array(shape, dtype):
    """A new NumPy array in torch-allocated memory (4 kB pages: see `_cat`)."""
    return torch.empty(shape, dtype=dtype).numpy()


def _noise_map(variance):
    """The noise map (float32) from the chunks' variances."""
    noise = _cat32(variance)
    return np.sqrt(noise, out=noise)  # in place: a new array of this size costs its page faults more than the roots


def _cat32(tensors):
    """`_cat` as float32."""
    return _cat(tensors).astype(np.float32, copy=False)


def assemble(parts, sink, instrument, table, seed=None, config=None, keep_truth=True, lens_light=False):
    """
    One `~lenskit.LensDataset` from the `Accepted` parts of a run, in order, and the `ImageSink` that took
    their images as they came (its array and checksum are the dataset's images and their SHA-256).

    Noise maps are the square root of the variance, made when first read
    (`~lenskit.core.dataset.Deferred`); masks are kept when every
    chunk has them; noise-free arcs (and lens light) when ``keep_truth``, as a
    `~lenskit.core.dataset.LazyArrays` that concatenates them when first read
    (on the CPU; chunks on another device are copied off it now).  The
    provenance records ``seed``, ``config`` and the images' checksum.
    ``table`` may be a `~concurrent.futures.Future` of the table, made meanwhile.
    """
    checksum = sink.checksum()
    images = sink.array
    variance = [t for p in parts for t in p.variance]
    if all(t.device.type == "cpu" for t in variance):  # made when first read: most uses never read it
        noise = Deferred(functools.partial(_noise_map, variance))
    else:  # off the device now, not holding its memory until read
        noise = _noise_map(variance)
    masks = None
    if all(m is not None for p in parts for m in p.masks):
        masks = _cat(m for p in parts for m in p.masks).astype(bool, copy=False)
    truth = {}
    if keep_truth:
        kept = {"arcs": [t for p in parts for t in p.arcs]}
        if lens_light:
            kept["lens_light"] = [t for p in parts for t in p.lens_light]
        if all(t.device.type == "cpu" for ts in kept.values() for t in ts):
            # concatenated when first read (LazyArrays): most datasets never read their truth
            truth = LazyArrays({k: functools.partial(_cat32, ts) for k, ts in kept.items()})
        else:  # off the device now, not holding its memory until read
            truth = {k: _cat32(ts) for k, ts in kept.items()}
    if isinstance(table, Future):  # made in a worker meanwhile
        table = table.result()
    provenance = Provenance.current(seed=seed, config=config, checksums={"images": checksum})
    return LensDataset(images, table, bands=instrument.bands, pixel_scale=instrument.pixel_scale,
                       instrument=instrument.name, noise=noise, masks=masks, truth=truth, provenance=provenance)
