"""
The faithful networks of Hezaveh et al. (2017) beside lenskit's own, on the same budget and test set.

Each architecture trains from scratch for the same wall-clock budget on the
same simulated HST stream (192 x 192, Hezaveh et al. recipe, the same seed,
learning rate and schedule), then is measured on one test set of held-out
galaxies (AEGIS and the COSMOS test split, the paper's test masks).  On a
CPU this shows what each design achieves per unit of compute; the shipped
``hst_wfc3`` estimator is ``lenskit_net`` trained much longer.

Usage::

    python benchmarks/compare_estimators.py --minutes 5 --threads 2

Prints JSON: per network, the images seen, the parameters, and the 68% errors.
"""

import argparse
import json
import os
import time
from pathlib import Path

import torch

import lenskit
from lenskit.estimators.metrics import summary
from lenskit.estimators.regression import CNNEstimator

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LENSKIT_SHARED", ROOT.parent / "shared")) / "data" / "sources"


def test_source():
    aegis = lenskit.get("source", "great3")(SHARED / "aegis_f606w_f814w" / "AEGIS_F814w_catalog.fits")
    cosmos = lenskit.get("source", "great3")(SHARED / "cosmos_f814w" / "real_galaxy_catalog_23.5.fits", split="test")
    return lenskit.get("source", "mixture")(sources=[aegis, cosmos], weights=[0.8, 0.2])


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--test-size", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--networks", default="lenskit_net,alexnet,overfeat,inception_v4,hezaveh")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    test = lenskit.Simulator(source=test_source(), instrument=lenskit.get("instrument", "hst_wfc3")(test=True),
                             seed=99).sample(args.test_size)
    out = {"threads": torch.get_num_threads(), "minutes_each": args.minutes, "test_size": len(test), "networks": {}}
    for name in args.networks.split(","):
        sim = lenskit.Simulator(source="sersic_clump", instrument="hst_wfc3", seed=2017)
        est = CNNEstimator(name, in_shape=(1, 192, 192))
        t0 = time.time()
        hist = est.fit(sim, steps=10**6, batch_size=args.batch_size, lr=1e-3, progress=False, workers=0,
                       time_limit=args.minutes * 60, checkpoint_every=10**6, warmup=50).training
        m = summary(est.predict(test, batch_size=32), test.params)
        out["networks"][name] = {"parameters": est.n_parameters, "steps": hist.get("completed_steps"),
                                 "images_seen": hist.get("completed_steps", 0) * args.batch_size,
                                 "train_seconds": round(time.time() - t0, 1),
                                 "err68": {t: round(v["err68"], 4) for t, v in m.items()}}
        print(json.dumps({name: out["networks"][name]}), flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
