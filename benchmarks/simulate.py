"""
Simulation throughput through the public API, against the peers users would pick instead; JSON out.

Every lenskit line times a public call (``Simulator.sample`` or
``Simulator.stream``), as users run it.  Images per second, median of
``--repeats`` after a warm-up:

* ``hst_basic``: ``Simulator(source="sersic", instrument=HSTWFC3(effects=[GaussianPSF, PoissonNoise,
  GaussianNoise])).sample(n)``: HST WFC3 192x192 at 0.04", SIE + Sérsic source, Gaussian PSF (rms up to
  0.1"), Poisson noise (counts factor 100-1000) and Gaussian noise (1-10% of the peak), the
  magnification >= 2 selection of Hezaveh et al. (2017);
* ``hst_basic_stream``: the same through ``stream(batch_size=64)`` (what training consumes);
* ``hst_basic_loaded``: ``hst_basic`` while another process keeps one core busy
  (``while True: pass``), and ``loaded_over_quiet`` its ratio to the quiet figure;
* ``hst_wfc3``: the shipped recipe, ``Simulator(source="sersic_clump", instrument="hst_wfc3")``
  (clumpy sources, cosmic rays, normalisation, masks);
* ``lsst_gri``: LSST 57x57 g, r, i with lens light and CCD noise, no selection;
* ``hst_basic_compiled``: ``hst_basic`` with ``Simulator(compile=True)`` (after its compilation);
* ``hst_epl_shear``: ``hst_basic`` with ``mass_model=["epl", "external_shear"]`` (power-law slopes
  N(2, 0.1) within 1.6-2.4, shear 0-0.1), beside ``lenstronomy_2proc_epl_shear``: lenstronomy doing the
  same with ``["EPL", "SHEAR"]``;
* peers, when installed (``pip install lenskit-astro[peers]``), doing the work of ``hst_basic``
  in the same run: ``lenstronomy_2proc`` (lenstronomy's ``ImageModel`` per image, SIE +
  ``SERSIC_ELLIPSE``, its Gaussian PSF, NumPy Poisson and Gaussian noise, in two single-thread
  processes), ``caustics_2threads`` (caustics' ``LensSource`` batched with ``torch.vmap``,
  a pixelised Gaussian PSF per image, ``torch.poisson`` and Gaussian noise, two torch threads) and
  ``numpy_peer_1core`` (the same physics written per image in NumPy and SciPy);
* on a CUDA device, when present: ``hst_basic_cuda`` and ``lsst_gri_cuda``.

``ratios`` divides lenskit's figures by the peers'; ``spread`` gives each line's slowest and fastest
repeat (images per second), for the run-to-run noise of the machine.

Usage: ``python benchmarks/simulate.py [--n 512] [--repeats 3] [--threads 2] [--no-compile] [--no-peers]``
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

import lenskit
from lenskit.instruments.effects import GaussianNoise, GaussianPSF, PoissonNoise
from lenskit.instruments.hst import HSTWFC3
from lenskit.instruments.lsst import LSST

NPIX, PIX = 192, 0.04


class Rate(float):
    """Images per second over the repeats' median time, with ``low`` and ``high``: the slowest and fastest repeat."""

    def __new__(cls, n, times):
        self = super().__new__(cls, n / statistics.median(times))
        self.low, self.high = n / max(times), n / min(times)
        return self


def rate(fn, n, repeats):
    """Images per second of ``fn(n)``: median of ``repeats`` after a warm-up (a `Rate`)."""
    fn(min(n, 64))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(n)
        times.append(time.perf_counter() - t0)
    return Rate(n, times)


def basic_hst():
    return HSTWFC3(effects=[GaussianPSF(sigma=(0.0, 0.1)), PoissonNoise(), GaussianNoise()])


def sample_rate(sim, n, repeats):
    return rate(lambda k: sim.sample(k), n, repeats)


def stream_rate(sim, n, repeats, batch=64):
    def run(k):
        b = min(batch, k)
        for _ in sim.stream(b, steps=k // b):
            pass

    return rate(run, n, repeats)


def loaded_rate(sim, n, repeats):
    """``sample`` while another process keeps one core busy."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        return sample_rate(sim, n, repeats)
    finally:
        hog.kill()
        hog.wait()


# ------------------------------------------------------------------------------------------- peers
def lenstronomy_images(k, seed, epl=False):
    """``k`` hst_basic images with lenstronomy, one per ImageModel (the PSF width differs per image).

    ``epl``: an EPL (slope N(2, 0.1) within 1.6-2.4) and external shear (0-0.1) instead of the SIE."""
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel
    from lenstronomy.Util.param_util import phi_q2_ellipticity

    rng = np.random.default_rng(seed)
    lens, source = LensModel(["EPL", "SHEAR"] if epl else ["SIE"]), LightModel(["SERSIC_ELLIPSE"])
    corner = -(NPIX - 1) / 2 * PIX
    for _ in range(k):
        data = ImageData(image_data=np.zeros((NPIX, NPIX)), transform_pix2angle=np.eye(2) * PIX,
                         ra_at_xy_0=corner, dec_at_xy_0=corner)
        sigma = rng.uniform(0, 0.1)
        psf = PSF(psf_type="GAUSSIAN", fwhm=max(sigma, 1e-3) * 2.3548, truncation=4, pixel_size=PIX)
        model = ImageModel(data, psf, lens_model_class=lens, source_model_class=source,
                           kwargs_numerics={"supersampling_factor": 1})
        e1, e2 = phi_q2_ellipticity(rng.uniform(0, np.pi), 1 - rng.uniform(0, 0.9))
        kl = [dict(theta_E=rng.uniform(0.1, 3), e1=e1, e2=e2, center_x=rng.uniform(-0.25, 0.25),
                   center_y=rng.uniform(-0.25, 0.25))]
        if epl:
            g, a = rng.uniform(0, 0.1), rng.uniform(0, np.pi)
            kl[0]["gamma"] = float(np.clip(rng.normal(2.0, 0.1), 1.6, 2.4))
            kl.append(dict(gamma1=g * np.cos(2 * a), gamma2=g * np.sin(2 * a)))
        s1, s2 = phi_q2_ellipticity(rng.uniform(0, np.pi), 1 - rng.uniform(0, 0.5))
        ks = [dict(amp=1.0, R_sersic=rng.uniform(0.05, 0.8), n_sersic=rng.uniform(0.5, 4), e1=s1, e2=s2,
                   center_x=rng.uniform(-0.3, 0.3), center_y=rng.uniform(-0.3, 0.3))]
        img = model.image(kl, ks)
        img = np.clip(img, 0, None) / img.max()
        f = rng.uniform(100, 1000)
        img = rng.poisson(img * f) / f
        img = img + rng.normal(0, rng.uniform(0.01, 0.1), img.shape)
    return k


def _one_thread():
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def lenstronomy_rate(n, repeats, epl=False):
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(2, initializer=_one_thread) as pool:
        pool.starmap(lenstronomy_images, [(4, 0, epl), (4, 1, epl)])  # imports and first calls
        times = []
        for r in range(repeats):
            t0 = time.perf_counter()
            pool.starmap(lenstronomy_images, [(n // 2, 2 * r + 2, epl), (n - n // 2, 2 * r + 3, epl)])
            times.append(time.perf_counter() - t0)
    return Rate(n, times)


def caustics_rate(n, repeats, batch=64):
    import caustics

    torch.manual_seed(0)
    cosmo = caustics.FlatLambdaCDM(name="cosmo")
    lens = caustics.SIE(cosmology=cosmo, name="lens", z_l=0.5, z_s=1.0)
    src = caustics.Sersic(name="src")
    psf_size = 21  # 4 sigma either side of the widest PSF (0.1" = 2.5 pixels)
    sim = caustics.LensSource(lens=lens, source=src, pixelscale=PIX, pixels_x=NPIX, psf_shape=(psf_size, psf_size),
                              psf=None, name="sim")
    batched = torch.vmap(sim)
    i = torch.arange(psf_size, dtype=torch.float32) - psf_size // 2

    def uniform(lo, hi, b):
        return torch.rand(b) * (hi - lo) + lo

    def run(k):
        for start in range(0, k, batch):
            b = min(batch, k - start)
            s = (uniform(0, 0.1, b) / PIX).clamp(min=1e-3)[:, None, None]
            psf = torch.exp(-0.5 * (i[None, :, None] ** 2 + i[None, None, :] ** 2) / s**2)
            params = [psf / psf.sum((1, 2), keepdim=True),
                      uniform(-0.25, 0.25, b), uniform(-0.25, 0.25, b), 1 - uniform(0, 0.9, b), uniform(0, np.pi, b),
                      uniform(0.1, 3, b),
                      uniform(-0.3, 0.3, b), uniform(-0.3, 0.3, b), 1 - uniform(0, 0.5, b), uniform(0, np.pi, b),
                      uniform(0.5, 4, b), uniform(0.05, 0.8, b), torch.ones(b)]
            with torch.no_grad():
                img = batched(params)
                img = img.clamp(min=0) / img.amax((1, 2), keepdim=True)
                f = uniform(100, 1000, b)[:, None, None]
                img = torch.poisson(img * f) / f
                img = img + torch.randn_like(img) * uniform(0.01, 0.1, b)[:, None, None]

    return rate(run, n, repeats)


def numpy_peer(n, rng):
    """Per-image NumPy/SciPy simulator with the physics of hst_basic (one core)."""
    from scipy.ndimage import gaussian_filter
    from scipy.special import gammaincinv

    c = (np.arange(NPIX) - (NPIX - 1) / 2) * PIX
    X, Y = np.meshgrid(c, c)
    for _ in range(n):
        th, q, phi = rng.uniform(0.1, 3), 1 - rng.uniform(0, 0.9), rng.uniform(0, np.pi)
        x0, y0 = rng.uniform(-0.25, 0.25, 2)
        dx, dy = X - x0, Y - y0
        xp = np.cos(phi) * dx + np.sin(phi) * dy
        yp = -np.sin(phi) * dx + np.cos(phi) * dy
        f = np.sqrt(1 - q * q)
        psi = np.sqrt(q * q * xp * xp + yp * yp) + 1e-12
        b = th * np.sqrt(q)
        axp = b / f * np.arctan(f * xp / psi)
        ayp = b / f * np.arctanh(f * yp / psi)
        ax = np.cos(phi) * axp - np.sin(phi) * ayp
        ay = np.sin(phi) * axp + np.cos(phi) * ayp
        bx, by = X - ax - rng.uniform(-0.3, 0.3), Y - ay - rng.uniform(-0.3, 0.3)
        nn, re = rng.uniform(0.5, 4), rng.uniform(0.05, 0.8)
        bn = gammaincinv(2 * nn, 0.5)
        img = np.exp(-bn * ((np.sqrt(bx * bx + by * by) / re) ** (1 / nn) - 1))
        img = gaussian_filter(img, rng.uniform(0, 2.5))
        img = img / img.max()
        fac = rng.uniform(100, 1000)
        img = rng.poisson(img * fac) / fac
        img = img + rng.normal(0, rng.uniform(0.01, 0.1), img.shape)


def installed(name):
    try:
        __import__(name)
    except Exception:  # noqa: BLE001 - a peer that cannot import is reported as absent
        return False
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--no-compile", action="store_true", help="skip Simulator(compile=True)")
    ap.add_argument("--no-peers", action="store_true", help="skip lenstronomy and caustics")
    ap.add_argument("--no-load", action="store_true", help="skip the run beside a competing process")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    n, reps = args.n, args.repeats

    res, notes = {}, {}
    sim = lenskit.Simulator(source="sersic", instrument=basic_hst(), seed=1)
    res["hst_basic"] = sample_rate(sim, n, reps)
    res["hst_basic_stream"] = stream_rate(sim, n, reps)
    if not args.no_load:
        res["hst_basic_loaded"] = loaded_rate(sim, n, reps)
    res["hst_wfc3"] = sample_rate(lenskit.Simulator(source="sersic_clump", instrument="hst_wfc3", seed=1), n, reps)
    res["lsst_gri"] = sample_rate(lenskit.Simulator(source="sersic_clump", instrument=LSST(), seed=1, selection=None),
                                  max(n, 1024), reps)
    if not args.no_compile:
        res["hst_basic_compiled"] = sample_rate(lenskit.Simulator(source="sersic", instrument=basic_hst(), seed=1,
                                                                  compile=True), n, reps)
    res["hst_epl_shear"] = sample_rate(lenskit.Simulator(mass_model=["epl", "external_shear"], source="sersic",
                                                         instrument=basic_hst(), seed=1), n, reps)
    if torch.cuda.is_available():
        res["hst_basic_cuda"] = sample_rate(lenskit.Simulator(source="sersic", instrument=basic_hst(), seed=1,
                                                              device="cuda", chunk_size=256), 4 * n, reps)
        res["lsst_gri_cuda"] = sample_rate(lenskit.Simulator(source="sersic_clump", instrument=LSST(), seed=1,
                                                             selection=None, device="cuda", chunk_size=1024),
                                           8 * n, reps)
    if not args.no_peers:
        if installed("lenstronomy"):
            res["lenstronomy_2proc"] = lenstronomy_rate(max(n // 4, 16), reps)
            res["lenstronomy_2proc_epl_shear"] = lenstronomy_rate(max(n // 4, 16), reps, epl=True)
        else:
            notes["lenstronomy"] = "not installed (pip install lenskit-astro[peers])"
        if installed("caustics"):
            threads = torch.get_num_threads()
            torch.set_num_threads(2)
            res["caustics_2threads"] = caustics_rate(n, reps)
            torch.set_num_threads(threads)
        else:
            notes["caustics"] = "not installed (pip install lenskit-astro[peers])"
    rng = np.random.default_rng(0)
    res["numpy_peer_1core"] = rate(lambda k: numpy_peer(k, rng), max(n // 8, 16), reps)

    ratios = {}
    for peer in ("lenstronomy_2proc", "caustics_2threads", "numpy_peer_1core"):
        if peer in res:
            ratios[f"hst_basic_over_{peer}"] = res["hst_basic"] / res[peer]
    if "lenstronomy_2proc_epl_shear" in res:
        ratios["hst_epl_shear_over_lenstronomy_2proc_epl_shear"] = res["hst_epl_shear"] / res[
            "lenstronomy_2proc_epl_shear"]
    ratios["hst_wfc3_over_hst_basic"] = res["hst_wfc3"] / res["hst_basic"]
    if "hst_basic_loaded" in res:
        ratios["loaded_over_quiet"] = res["hst_basic_loaded"] / res["hst_basic"]
    out = {
        "benchmark": "simulate",
        "unit": "images per second (median)",
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "lenskit": lenskit.__version__,
        "peers": {name: getattr(sys.modules.get(name), "__version__", None) for name in ("lenstronomy", "caustics")
                  if name in sys.modules},
        "n_per_repeat": n,
        "repeats": reps,
        "results": {k: round(v, 1) for k, v in res.items()},
        # the slowest and fastest repeat: this machine's rate moves by 10-30% between calls
        "spread": {k: [round(v.low, 1), round(v.high, 1)] for k, v in res.items() if isinstance(v, Rate)},
        "ratios": {k: round(v, 2) for k, v in ratios.items()},
        "notes": notes,
    }
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
