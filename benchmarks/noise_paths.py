"""
Whether the one-step Poisson + Gaussian noise changes what the HST network measures.

A camera applies Hezaveh et al.'s Poisson noise and Gaussian noise as one step
(`lenskit.instruments.effects.poisson_gaussian_noise`); ``PoissonNoise(exact=True)`` keeps the two
effects, with exact Poisson draws everywhere.  For each seed this renders the same lenses of the
``hezaveh2017`` test recipe with either noise (the same NumPy draws: only the noise differs) and prints
the HST network's 68% theta_E error for both and their paired difference (mean and its standard error
over the seeds) as JSON.

Usage::

    python benchmarks/noise_paths.py --n 600 --seeds 11 12 13 14 --threads 2
"""

import argparse
import json

import numpy as np
import torch

from lenskit.estimators.pretrained import load_estimator
from lenskit.instruments.effects import PoissonNoise
from lenskit.simulation import presets


def err68(est, exact, n, seed):
    sim = presets.hezaveh2017(test=True, seed=seed)
    for effect in sim.instrument.effects:
        if isinstance(effect, PoissonNoise):
            effect.exact = exact
    ds = sim.sample(n)
    d = est.predict(ds, batch_size=128).table["theta_E"].value - ds.params["theta_E"].value
    return float(np.percentile(np.abs(d), 68))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--estimator", default="hst_wfc3", help="a shipped HST estimator's name or a weight file")
    ap.add_argument("--n", type=int, default=600, help="lenses per seed")
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13, 14])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.n < 10:
        ap.error(f"--n must be at least 10; got {args.n}")
    if len(args.seeds) < 2:
        ap.error("--seeds needs at least two seeds (the paired difference's error)")
    torch.set_num_threads(args.threads)
    est = load_estimator(args.estimator)
    if est.expects.get("instrument") != "hst_wfc3":
        ap.error(f"{args.estimator} is not an HST estimator (expects {est.expects})")
    rows = [{"seed": s, "one_step": err68(est, False, args.n, s),
             "two_steps_exact": err68(est, True, args.n, s)} for s in args.seeds]
    diff = np.array([r["one_step"] - r["two_steps_exact"] for r in rows])
    out = {"estimator": args.estimator, "n": args.n, "cpu_threads": torch.get_num_threads(),
           "theta_E_err68": rows,
           "mean_one_step": float(np.mean([r["one_step"] for r in rows])),
           "mean_two_steps_exact": float(np.mean([r["two_steps_exact"] for r in rows])),
           "paired_difference": float(diff.mean()),
           "paired_difference_se": float(diff.std(ddof=1) / np.sqrt(len(diff)))}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
