"""
Simulation throughput on the CPU, printed as JSON.

Measures images per second (median of repeats, after a warm-up) for:

* ``hst_basic``: HST WFC3 192x192, SIE + Sérsic source + Gaussian PSF + Poisson and Gaussian noise;
* ``hst_hezaveh2017``: the full HST recipe (clumpy sources, cosmic rays, normalisation, masks);
* ``lsst_gri``: LSST 57x57 g, r, i with lens light and physical CCD noise (no selection);
* ``hst_basic_2proc``: ``hst_basic`` in two processes of one thread each (``torch.poisson``
  runs on one thread, so this is how a training data loader uses two cores);
* ``hst_basic_compiled``: ``hst_basic`` with ``Simulator(compile=True)``;
* ``numpy_peer``: the same physics as ``hst_basic`` written per image in NumPy/SciPy on one
  core, the yardstick the issue asks to beat by about eight times.

Usage: ``python benchmarks/simulate.py [--n 512] [--repeats 3] [--threads 2]``
"""

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import torch

import lenskit
from lenskit.instruments.effects import GaussianNoise, GaussianPSF, PoissonNoise
from lenskit.instruments.hst import HSTWFC3
from lenskit.instruments.lsst import LSST


def rate(fn, n, repeats):
    fn(min(n, 64))  # warm-up (kernels, banks, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(n)
        times.append(time.perf_counter() - t0)
    return n / statistics.median(times)


def simulator_rate(sim, n, repeats, chunk=None):
    def run(k):
        sim.simulate(k, keep_truth=False)

    return rate(run, n, repeats)


_WORKER = {}


def _init_worker(compile_):
    torch.set_num_threads(1)
    sim = lenskit.Simulator(source="sersic", instrument=basic_hst(), seed=os.getpid(), compile=compile_)
    sim.simulate(32, keep_truth=False)
    _WORKER["sim"] = sim


def _work(k):
    sim = _WORKER["sim"]
    sim.simulate(k, keep_truth=False)
    return k


def basic_hst():
    return HSTWFC3(effects=[GaussianPSF(sigma=(0.0, 0.1)), PoissonNoise(), GaussianNoise()])


def two_process_rate(n, repeats, compile_=False):
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(2, initializer=_init_worker, initargs=(compile_,)) as pool:
        pool.map(_work, [16, 16])
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            pool.map(_work, [n // 2, n - n // 2])
            times.append(time.perf_counter() - t0)
    return n / statistics.median(times)


def numpy_peer(n, rng):
    """Per-image NumPy/SciPy simulator with the same physics as hst_basic (one core)."""
    from scipy.ndimage import gaussian_filter
    from scipy.special import gammaincinv

    c = (np.arange(192) - 95.5) * 0.04
    X, Y = np.meshgrid(c, c)
    for _ in range(n):
        th, q, phi = rng.uniform(0.5, 2), rng.uniform(0.3, 0.95), rng.uniform(0, np.pi)
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    results = {}
    sim = lenskit.Simulator(source="sersic", instrument=basic_hst(), seed=1)
    results["hst_basic"] = simulator_rate(sim, args.n, args.repeats)
    results["hst_basic_2proc"] = two_process_rate(args.n, args.repeats)
    if not args.no_compile:
        sim = lenskit.Simulator(source="sersic", instrument=basic_hst(), seed=1, compile=True)
        results["hst_basic_compiled"] = simulator_rate(sim, args.n, args.repeats)
        results["hst_basic_compiled_2proc"] = two_process_rate(args.n, args.repeats, compile_=True)
    sim = lenskit.Simulator(source="sersic_clump", instrument="hst_wfc3", seed=1)
    results["hst_hezaveh2017"] = simulator_rate(sim, args.n, args.repeats)
    sim = lenskit.Simulator(source="sersic_clump", instrument=LSST(), seed=1, selection=None)
    results["lsst_gri"] = simulator_rate(sim, args.n, args.repeats)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    peer_n = max(args.n // 8, 16)
    results["numpy_peer_1core"] = rate(lambda k: numpy_peer(k, rng), peer_n, args.repeats)
    out = {
        "benchmark": "simulate",
        "unit": "images per second (median)",
        "cpu_threads": args.threads,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "lenskit": lenskit.__version__,
        "n_per_repeat": args.n,
        "repeats": args.repeats,
        "results": {k: round(v, 1) for k, v in results.items()},
        "speedup_vs_numpy_peer": {k: round(v / results["numpy_peer_1core"], 2) for k, v in results.items()
                                  if k.startswith("hst_basic")},
    }
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
