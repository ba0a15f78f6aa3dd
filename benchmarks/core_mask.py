"""
The lens's core in the CNN's input after lens-light removal: what ``model_lens(cnn_core=R)`` changes.

`lenskit.modelling.model_lens` removes the lens light with a Sérsic fit (the ``sersic`` deblender) and
masks a disc of ``cnn_core`` arcsec about the lens centre in the CNN's input, where that fit leaves its
residuals (default 0.2", the radius of the training's masks).  This benchmark runs the documented path with
the CNN alone (``refine=False``) for several radii:

``simulated``
    HST WFC3 lenses with lens light (F600LP, 192 x 192 at 0.04", Gaussian PSF, CCD noise; held-out AEGIS
    and COSMOS galaxies and clumpy sources, as ``benchmarks/deblend.py``), theta_E 0.5-2".  ``--lens-light
    sersic``: one Sérsic lens light (n 2.5-5.5), which the deblender's own model fits; ``wide`` (default):
    the wide population of `lenskit.simulation.presets.robust_priors` (Sérsic indices 1-8, radii
    0.3-3", a disc of 0-80% of the light with its own shape and a twist, light centres off the mass), whose
    residuals a one-Sérsic fit leaves as real lens galaxies do.  The 68% theta_E error, the bias and the
    68% error of the lenses below 0.8".
``slacs``
    The eight SLACS lenses of `lenskit.datasets.slacs_lenses` (Bolton et al. 2008):
    the CNN's answer for each radius against the published Einstein radii (the core is masked only where
    ``model_lens`` removes the lens light itself: not SDSS J2303+1422, whose light was removed before).

Each lens is deblended once and the result reused for every radius (the deblender is deterministic, so
this is what separate ``model_lens`` calls give).

Usage::

    python benchmarks/core_mask.py --n 150 --threads 1 [--radii 0,0.15,0.2,0.25] [--lens-light wide]
    [--no-slacs]

Prints JSON with the CPU thread count.
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import lenskit
from lenskit.datasets import slacs_lenses
from lenskit.io.fits import Cutout
from lenskit.modelling import model_lens
from lenskit.modelling import pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deblend import instrument, source  # noqa: E402  (the simulation of benchmarks/deblend.py)
from devdata import shared_data  # noqa: E402  (the development-data folder, when beside the checkout)


class _OnceDeblender:
    """The ``sersic`` deblender, each image's separation computed once (keyed by its bytes) and reused."""

    def __init__(self):
        self.real = lenskit.get("deblender", "sersic")()
        self.cache = {}

    def __call__(self):
        return self

    def separate(self, ds, **kw):
        key = (np.asarray(ds.images).tobytes(), repr(sorted(kw)))
        if key not in self.cache:
            self.cache = {key: self.real.separate(ds, **kw)}  # one lens at a time: keep only the last
        return self.cache[key]


def _value(x):
    return float(getattr(x, "value", x))


def simulated(est, n, seed, population, radii):
    from scipy.ndimage import gaussian_filter

    from lenskit.simulation.presets import robust_priors

    priors = {"theta_E": (0.5, 2.0), "lens_mag": (18.5, 20.5), "source_mag": (21.0, 23.5),
              "light_R_e": (0.3, 1.2), "light_n": (2.5, 5.5)}
    if population == "wide":
        priors.update(robust_priors("hst", 0.04))
    sim = lenskit.Simulator(instrument=instrument(), source=source(), lens_light=True, seed=seed, priors=priors)
    ds = sim.sample(n)
    truth = np.asarray(ds.params["theta_E"])
    psf = np.zeros((25, 25))
    psf[12, 12] = 1.0
    psf = gaussian_filter(psf, 0.08 / 2.3548 / 0.04)  # F600LP's 0.08" Gaussian
    answers = {r: [] for r in radii}
    for i in range(n):
        cut = Cutout(ds.images[i, 1], 0.04, noise=ds.noise[i, 1], psf=psf)
        for r in radii:
            answers[r].append(_value(model_lens(cut, est, refine=False, cnn_core=r)["cnn_theta_E"]))
    out = {"n": n, "lens_light": population}
    small = truth < 0.8
    for r in radii:
        d = np.asarray(answers[r]) - truth
        out[f"cnn_core_{r:g}"] = {"theta_E_err68": float(np.percentile(np.abs(d), 68)),
                                  "theta_E_bias": float(d.mean()),
                                  "theta_E_err68_below_0.8": float(np.percentile(np.abs(d[small]), 68))
                                  if small.any() else None}
    return out


def slacs(est, radii):
    rows = []
    for lens in slacs_lenses(directory=shared_data()):
        row = {"lens": lens["name"], "published": lens["theta_E"]}
        for r in radii:
            res = model_lens(lens["cutout"], est, deblend=not lens["lens_subtracted"], refine=False,
                             psf=lens["psf"], cnn_core=r)
            row[f"cnn_core_{r:g}"] = _value(res["cnn_theta_E"])
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    out = {"lenses": rows}
    for r in radii:
        d = [abs(row[f"cnn_core_{r:g}"] - row["published"]) for row in rows]
        out[f"cnn_core_{r:g}"] = {"median_abs_d_theta_E": float(np.median(d)), "largest_abs_d_theta_E": float(max(d))}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--estimator", default="hst_wfc3", help="a shipped estimator's name or a weight file")
    ap.add_argument("--n", type=int, default=150, help="simulated lenses (default 150; 0: SLACS only)")
    ap.add_argument("--seed", type=int, default=78)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--radii", default="0,0.15,0.2,0.25", help="cnn_core radii in arcsec, comma-separated")
    ap.add_argument("--lens-light", choices=["wide", "sersic"], default="wide")
    ap.add_argument("--no-slacs", action="store_true", help="skip the real lenses (no development data needed)")
    args = ap.parse_args(argv)
    radii = [float(v) for v in args.radii.split(",") if v.strip()]
    if not radii or any(r < 0 for r in radii):
        ap.error(f"--radii must be non-negative numbers; got {args.radii!r}")
    if args.n < 0:
        ap.error(f"--n must be >= 0; got {args.n}")
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", lenskit.core.LenskitDataWarning)  # small cutouts are filled, as documented
    pipeline.get = lambda kind, name, _once=_OnceDeblender(), _get=pipeline.get: (
        _once if (kind, name) == ("deblender", "sersic") else _get(kind, name))
    est = lenskit.load_estimator(args.estimator)
    out = {"estimator": args.estimator, "threads": torch.get_num_threads(), "seed": args.seed, "radii": radii}
    t0 = time.time()
    if args.n:
        out["simulated"] = simulated(est, args.n, args.seed, args.lens_light, radii)
    if not args.no_slacs:
        out["slacs"] = slacs(est, radii)
    out["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
