"""
How the number of real training galaxies moves the HST network's errors on galaxies it never saw.

Issue #25 asks whether lenskit's few real source galaxies limit its networks
("the HST training loss falls while held-out error stalls").  This benchmark
fine-tunes the shipped ``hst_wfc3`` network, which never saw an XDF galaxy,
on lenses whose sources are drawn from only ``N`` galaxies of the ``hudf``
source's *train* split (nested subsets: the first ``N`` of one seeded
permutation), each run on the same number of images, and measures the 68%
theta_E error on

* ``held_out``: lenses of the XDF *test* galaxies (never trained on);
* ``seen``: lenses of the ``N`` training galaxies themselves (new lenses,
  orientations and sizes: what memorising the galaxies is worth);
* ``standard``: the shipped network's own test set (AEGIS and the COSMOS test
  split, needs ``../shared``), to see what fine-tuning on XDF galaxies costs
  there.

The gap between ``seen`` and ``held_out`` is what the network learnt about
the particular galaxies rather than about lensing; if ``held_out`` falls as
``N`` grows, more galaxies are worth having.  ``N = all`` uses the whole
train split.  The shipped network before fine-tuning is the ``baseline``
row.  JSON out, one record per count on stderr as it finishes.

Usage (the figures of docs/benchmarks.rst: two processes, one thread each, about 25 minutes per count)::

    python benchmarks/galaxy_count.py --counts 10,160 --images 80000 --threads 1
    python benchmarks/galaxy_count.py --counts 40,all --images 80000 --threads 1
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import lenskit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from devdata import shared_data  # noqa: E402  (the development-data loader beside this script)


def theta_errors(est, ds):
    d = np.asarray(est.predict(ds, batch_size=64).table["theta_E"]) - np.asarray(ds.params["theta_E"])
    return {"n": int(len(d)), "theta_E_err68": float(np.percentile(np.abs(d), 68)),
            "theta_E_bias": float(np.mean(d)), "theta_E_rms": float(np.sqrt(np.mean(d**2)))}


def hst(test=False):
    return lenskit.get("instrument", "hst_wfc3")(test=test)


def standard_test_set(n, seed=99):
    """The shipped network's own test set (benchmarks/train_estimators.py), or None without ../shared."""
    if shared_data() is None:
        return None
    from train_estimators import test_source  # the recipe's test galaxies, beside this script

    return lenskit.Simulator(source=test_source(), instrument=hst(test=True), seed=seed).sample(n)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--counts", default="10,40,160,all",
                    help="numbers of training galaxies, comma-separated ('all': the whole train split)")
    ap.add_argument("--images", type=int, default=80000, help="training images per count (default 80000)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--n-test", type=int, default=1000, help="lenses per test set (default 1000)")
    ap.add_argument("--init", default="hst_wfc3", help="shipped name or weight file to fine-tune (default hst_wfc3)")
    ap.add_argument("--seed", type=int, default=2025, help="seed of the permutation the subsets are taken from")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    counts = []
    for c in args.counts.split(","):
        c = c.strip()
        if c != "all" and (not c.isdigit() or int(c) < 1):
            ap.error(f"--counts: each count must be a positive integer or 'all'; got {c!r}")
        counts.append(c)
    if args.images < args.batch_size:
        ap.error(f"--images must be at least one batch ({args.batch_size}); got {args.images}")
    torch.set_num_threads(args.threads)

    xdf = lenskit.get("source", "hudf")()
    train_ids = [s.ident for s in xdf.with_split("train").galaxies()]
    order = list(np.random.default_rng(args.seed).permutation(train_ids))
    for c in counts:
        if c != "all" and int(c) > len(order):
            ap.error(f"--counts: {c} is more than the {len(order)} galaxies of the train split")
    base = lenskit.load_estimator(args.init)
    held_out = lenskit.Simulator(source=xdf.with_split("test"), instrument=hst(test=True), seed=99).sample(args.n_test)
    val = lenskit.Simulator(source=xdf.with_split("validation"), instrument=hst(test=True), seed=7).sample(256)
    standard = standard_test_set(args.n_test)
    out = {"benchmark": "galaxy_count", "init": args.init, "images_per_count": args.images, "lr": args.lr,
           "cpu_threads": torch.get_num_threads(), "train_galaxies_available": len(order),
           "held_out_galaxies": len(xdf.with_split("test").galaxies()), "n_test": args.n_test,
           "baseline": {"held_out": theta_errors(base, held_out)}, "runs": []}
    if standard is not None:
        out["baseline"]["standard"] = theta_errors(base, standard)
    print(json.dumps(out["baseline"]), file=sys.stderr, flush=True)
    for c in counts:
        ids = order if c == "all" else order[:int(c)]
        subset = xdf.with_galaxies(ids).with_split("train")
        seen = lenskit.Simulator(source=subset, instrument=hst(test=True), seed=98).sample(args.n_test)
        est = lenskit.load_estimator(args.init)
        sim = lenskit.Simulator(source=subset, instrument=hst(), seed=2017)
        t0 = time.time()
        est.fit(sim, steps=args.images // args.batch_size, batch_size=args.batch_size, lr=args.lr, validation=val,
                workers=0, progress=False)
        row = {"galaxies": len(ids), "images": args.images // args.batch_size * args.batch_size,
               "train_seconds": round(time.time() - t0, 1), "baseline_seen": theta_errors(base, seen),
               "held_out": theta_errors(est, held_out), "seen": theta_errors(est, seen)}
        if standard is not None:
            row["standard"] = theta_errors(est, standard)
        out["runs"].append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
