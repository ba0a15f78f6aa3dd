"""
Lens-finder throughput: cutouts per second on the CPU, and what the faster modes cost.

Scores LSST-like g-band cutouts (45 x 45) with the shipped DeepLens finder in
batches, in float32 (eager), with ``torch.compile``, and in bfloat16 (eager
and compiled; about 2x on CPUs with AVX-512 BF16), then through
``DeepLensFinder.predict`` (eager, ``bfloat16=True``, ``compile=True`` with
the weights frozen into the graph), and reports the AUROC of each on the same
simulated cutouts so a speed-up that costs accuracy shows.

Usage::

    python benchmarks/find.py --n 4096 --threads 2

Prints JSON with the thread count.
"""

import argparse
import json
import time

import numpy as np
import torch

import lenskit
from lenskit.estimators.finder_metrics import auroc
from lenskit.simulation.finder import LensFinderSimulator


def rate(fn, x, repeats):
    # every mode starts from an empty compile cache: modes that share the network's code would otherwise pile
    # up graphs until torch.compile's per-function cache limit, and later modes would run slower code
    torch._dynamo.reset()
    fn(x[:256])  # warm up (and compile)
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(x)
        best = max(best, len(x) / (time.perf_counter() - t0))
    return best, out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    finder = lenskit.load_estimator("deeplens_lsst_g")
    ds = LensFinderSimulator(seed=123).sample(args.n)
    y = np.asarray(ds.params["is_lens"], bool)
    x = torch.as_tensor(ds.images)
    net = finder.network.eval()
    out = {"threads": torch.get_num_threads(), "n": len(ds), "batch_size": args.batch_size,
           "parameters": finder.n_parameters}

    def run(module, bf16):
        def fn(batch):
            res = []
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                for i in range(0, len(batch), args.batch_size):
                    res.append(module(batch[i:i + args.batch_size]).float().reshape(-1))
            return torch.cat(res).numpy()
        return fn

    modes = {"float32": (net, False), "bfloat16": (net, True)}
    if not args.no_compile:
        compiled = torch.compile(net)
        modes.update({"float32_compiled": (compiled, False), "bfloat16_compiled": (compiled, True)})
    for name, (module, bf16) in modes.items():
        r, z = rate(run(module, bf16), x, args.repeats)
        out[name] = {"cutouts_per_second": round(r, 1), "auroc": round(auroc(z, y), 5)}
    t0 = time.perf_counter()
    finder.predict(ds, batch_size=args.batch_size)
    out["predict_api_cutouts_per_second"] = round(len(ds) / (time.perf_counter() - t0), 1)
    # what a user gets from predict(): eager, bfloat16, and compiled with the weights frozen in
    variants = {"predict_bfloat16": {"bfloat16": True}}
    if not args.no_compile:
        variants.update(predict_compiled={"compile": True},
                        predict_bfloat16_compiled={"bfloat16": True, "compile": True})
    for name, kw in variants.items():
        finder.clear_compiled()  # a fresh frozen graph per variant
        r, z = rate(lambda b: finder.predict(b, batch_size=args.batch_size, **kw).table["p_lens"].value,
                    ds.images, args.repeats)
        out[name] = {"cutouts_per_second": round(r, 1), "auroc": round(auroc(z, y), 5)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
