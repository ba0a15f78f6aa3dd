"""
How an HST estimator's Einstein radius depends on the size of the lensed source, on its own test recipe.

Simulates the ``hezaveh2017`` test recipe (lens-subtracted HST WFC3 stamps, clumpy sources of 0.05-0.8", the
paper's test masks), estimates every lens with the estimator alone and prints as JSON, in bins of the source's
apparent size (``source_size``, the clumps' flux-weighted radius), of the true Einstein radius and of the arc S/N:
the number of lenses, the mean and median of theta_E(estimate) - theta_E(true) and the 68% absolute error; and
the same for the SLACS lenses' regime (theta_E 0.9-1.7") with sources under 0.2" (``slacs_like_compact``: thin
arcs and rings, as the SLACS lenses') and larger (``slacs_like_extended``).

Usage::

    python benchmarks/source_size.py --estimator hst_wfc3 --n 2000 --seed 2025 --threads 2
"""

import argparse
import json

import numpy as np
import torch

from lenskit.estimators.pretrained import load_estimator
from lenskit.simulation import presets

BINS = {"source_size": (0.0, 0.15, 0.3, 0.5, 2.0), "theta_E": (0.0, 1.1, 1.4, 1.7, 5.0),
        "arc_snr": (0.0, 30.0, 100.0, 300.0, np.inf)}


def binned(d, x, edges):
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (x >= lo) & (x < hi)
        if m.any():
            rows.append({"range": [float(lo), float(hi)], "n": int(m.sum()), "mean": float(np.mean(d[m])),
                         "median": float(np.median(d[m])), "err68": float(np.percentile(np.abs(d[m]), 68))})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--estimator", default="hst_wfc3", help="shipped HST estimator's name or weight file")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=2025)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.n < 100:
        ap.error(f"--n must be at least 100; got {args.n}")
    torch.set_num_threads(args.threads)
    est = load_estimator(args.estimator)
    if est.expects.get("instrument") != "hst_wfc3":
        ap.error(f"{args.estimator} is not an HST WFC3 estimator (expects {est.expects})")
    ds = presets.hezaveh2017(seed=args.seed, test=True).sample(args.n)
    truth = np.asarray(ds.params["theta_E"])
    d = est.predict(ds).table["theta_E"].value - truth
    out = {"estimator": args.estimator, "n": args.n, "seed": args.seed, "cpu_threads": torch.get_num_threads(),
           "all": {"mean": float(np.mean(d)), "median": float(np.median(d)),
                   "err68": float(np.percentile(np.abs(d), 68))},
           "by": {key: binned(d, np.asarray(ds.params[key]), edges) for key, edges in BINS.items()}}
    # the SLACS lenses' regime: Einstein radii of 0.9-1.7" and compact sources (thin arcs and rings)
    size = np.asarray(ds.params["source_size"])
    for name, m in (("slacs_like_compact", (truth >= 0.9) & (truth <= 1.7) & (size < 0.2)),
                    ("slacs_like_extended", (truth >= 0.9) & (truth <= 1.7) & (size >= 0.2))):
        out[name] = {"n": int(m.sum()), "mean": float(np.mean(d[m])), "median": float(np.median(d[m])),
                     "err68": float(np.percentile(np.abs(d[m]), 68))}
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
