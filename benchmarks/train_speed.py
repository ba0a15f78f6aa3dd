"""
Training throughput of the shipped estimators' network through the public ``fit``, in float32 and in bfloat16.

For each estimator (``lsst_gri``: LSST g, r, i 57 x 57; ``hst_wfc3``: HST 192 x 192), fine-tunes the shipped
weights for ``--steps`` steps of 64 lenses simulated on the fly in this process (``workers=0``), once in
float32 and once under bfloat16 autocast (``fit(..., bfloat16=True)``), alternating ``--repeats`` times,
and prints the training images per second (simulation included), the CPU thread count and whether the CPU
computes in bfloat16 natively (`lenskit.estimators.training.native_bfloat16`) as JSON.

Usage::

    python benchmarks/train_speed.py --threads 1 --steps 20 --repeats 2
"""

import argparse
import json
import time

import torch

import lenskit
from lenskit.estimators.training import native_bfloat16

SIMULATORS = {"lsst_gri": lambda: lenskit.Simulator(instrument=lenskit.get("instrument", "lsst")(bands=("g", "r", "i")),
                                                    source="sersic_clump", seed=1),
              "hst_wfc3": lambda: lenskit.Simulator(instrument="hst_wfc3", source="sersic_clump", seed=1)}


def rate(name, steps, bfloat16):
    est = lenskit.load_estimator(name)
    sim = SIMULATORS[name]()
    est.fit(sim, steps=2, batch_size=64, lr=1e-5, progress=False, warmup=1, standardize_samples=256,
            bfloat16=bfloat16)  # warm-up: first allocations, the standardisation draw, oneDNN's kernels
    t0 = time.perf_counter()
    est.fit(sim, steps=steps, batch_size=64, lr=1e-5, progress=False, warmup=1, standardize_samples=256,
            bfloat16=bfloat16)
    # the second call draws its standardisation sample again (256 systems): counted, as a user's run pays it
    return steps * 64 / (time.perf_counter() - t0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("estimators", nargs="*", default=list(SIMULATORS), help=f"from {list(SIMULATORS)}")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    unknown = sorted(set(args.estimators) - set(SIMULATORS))
    if unknown:
        ap.error(f"unknown estimator(s) {unknown}; choose from {list(SIMULATORS)}")
    if args.steps < 2 or args.repeats < 1:
        ap.error("--steps must be at least 2 and --repeats at least 1")
    torch.set_num_threads(args.threads)
    out = {"cpu_threads": torch.get_num_threads(), "native_bfloat16": native_bfloat16(), "batch_size": 64,
           "steps": args.steps, "images_per_second": {}}
    for name in args.estimators:
        runs = {"float32": [], "bfloat16": []}
        for _ in range(args.repeats):  # alternating, so that the machine's drift falls on both
            for label, bf in (("float32", False), ("bfloat16", True)):
                runs[label].append(rate(name, args.steps, bf))
        out["images_per_second"][name] = {k: [round(v, 1) for v in vals] for k, vals in runs.items()}
        out["images_per_second"][name]["bfloat16_over_float32"] = round(
            max(runs["bfloat16"]) / max(runs["float32"]), 2)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
