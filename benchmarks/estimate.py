"""
Estimation throughput on the CPU (batched inference), printed as JSON.

Systems per second for each network (untrained weights: the speed does not
depend on them) at its native input, the ensemble of the four Hezaveh et al.
networks, and the shipped estimators, with batches of 64.

Usage: ``python benchmarks/estimate.py [--threads 2] [--n 256]``
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
from lenskit.estimators.pretrained import shipped


def rate(est, shape, n, repeats=3, batch=64):
    x = np.random.default_rng(0).random((n,) + tuple(shape)).astype(np.float32)
    est.predict(x[:batch], batch_size=batch)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        est.predict(x, batch_size=batch)
        times.append(time.perf_counter() - t0)
    return n / statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--skip-large", action="store_true", help="skip the 40-80 M parameter networks")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    res = {}
    nets = ["lenskit_net", "pearson"] + ([] if args.skip_large else ["hezaveh", "alexnet", "overfeat", "inception_v4"])
    built = {}
    for name in nets:
        est = lenskit.get("estimator", name)()
        built[name] = est
        n = args.n if est.n_parameters < 5e6 else max(64, args.n // 4)
        res[name] = {"systems_per_second": round(rate(est, est.in_shape, n), 1), "parameters": est.n_parameters,
                     "input": list(est.in_shape)}
    if not args.skip_large:
        ens = lenskit.get("estimator", "ensemble")([built[k] for k in ("hezaveh", "alexnet", "overfeat", "inception_v4")])
        res["ensemble_of_4"] = {"systems_per_second": round(rate(ens, ens.in_shape, 64), 1)}
    for name in shipped():
        est = lenskit.load_estimator(name)
        res[f"shipped:{name}"] = {"systems_per_second": round(rate(est, est.in_shape, args.n), 1),
                                  "input": list(est.in_shape)}
    print(json.dumps({"benchmark": "estimate", "unit": "systems per second (median of 3, batch 64)",
                      "cpu_threads": args.threads, "machine": platform.machine(), "torch": torch.__version__,
                      "results": res}, indent=2))


if __name__ == "__main__":
    main()
