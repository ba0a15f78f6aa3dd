"""
Scale-out throughput: 1 and 2 Dask workers (and 1 and 2 DDP ranks), and the scaling efficiency.

Measures, on a Dask `~dask.distributed.LocalCluster` of single-threaded worker
processes started before the clock runs (so start-up is not counted):

* ``simulate``: HST WFC3 lenses (192 x 192) written as ASDF shards;
* ``estimate``: the shipped HST estimator over those shards;
* ``find``: the shipped DeepLens finder over FITS cubes of LSST g-band cutouts;

(clusters from `lenskit.distributed.local_cluster`, which leaves Dask's
``MALLOC_TRIM_THRESHOLD_`` unset: with it, workers ran 2-3x slower)

and, with ``--ddp``, training images per second of ``lenskit train --ddp``
(torchrun, gloo) with 1 and 2 ranks.  The scaling efficiency is
``rate(2 workers) / (2 * rate(1 worker))``; the serial in-process run is the
baseline of the overhead.  Every run's output is checked to be bit-for-bit
that of the serial run.

Usage::

    python benchmarks/scale.py --n 256 --shard-size 32 --ddp

Prints JSON with the CPU count and threads.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _warm():
    from lenskit.scale.survey import resolve_estimator

    resolve_estimator("hst_wfc3")
    resolve_estimator("deeplens_lsst_g")


def ddp_rate(ranks, steps, batch, workdir):
    """Training images per second of `lenskit train --ddp` with ``ranks`` processes (after the first 2 steps)."""
    out = Path(workdir) / f"ddp{ranks}"
    out.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "--master_addr",
           "127.0.0.1", "--master_port", str(_free_port()), "-m", "lenskit", "train", "--ddp", "--backend", "gloo",
           "--instrument", "hst_wfc3", "--steps", str(steps), "--batch-size", str(batch), "--validation-size", "8",
           "--checkpoint-every", str(steps), "-o", str(out / "w.asdf"), "-q"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if run.returncode:
        raise RuntimeError(run.stderr[-2000:])
    import lenskit

    est = lenskit.load_estimator(out / "w.asdf")
    hist = est.training["history"]
    seconds = hist[-1]["seconds"]
    return {"ranks": ranks, "images_per_second": steps * batch * ranks / seconds, "train_seconds": seconds,
            "wall_seconds_with_startup": time.perf_counter() - t0, "global_batch": batch * ranks,
            "weights_identical_on_all_ranks": est.training["ddp"]["weights_identical_on_all_ranks"]}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256, help="lenses simulated and estimated per run")
    ap.add_argument("--shard-size", type=int, default=32)
    ap.add_argument("--n-find", type=int, default=4096, help="cutouts scored by the finder")
    ap.add_argument("--ddp", action="store_true", help="also time DDP training with 1 and 2 ranks")
    ap.add_argument("--ddp-steps", type=int, default=40)
    args = ap.parse_args(argv)

    import torch
    from astropy.io import fits
    from dask.distributed import Client

    import lenskit
    from lenskit.distributed import estimate, find, local_cluster, simulate
    from lenskit.simulation.finder import LensFinderSimulator

    tmp = Path(tempfile.mkdtemp(prefix="lenskit-scale-"))
    sim = lenskit.Simulator(instrument="hst_wfc3", source="sersic_clump")
    cut = LensFinderSimulator(seed=1).sample(args.n_find, keep_truth=False).images[:, 0]
    per = args.n_find // 16
    for i in range(16):
        fits.writeto(tmp / f"cutouts{i:02d}.fits", cut[i * per:(i + 1) * per])
    cubes = sorted(tmp.glob("cutouts*.fits"))
    results = {"cpu_count": os.cpu_count(), "torch_threads_per_task": 1, "n": args.n, "shard_size": args.shard_size,
               "n_find": per * 16, "runs": {}}
    reference = {}

    def run(label, kind, **where):
        t0 = time.perf_counter()
        if kind == "simulate":
            idx = simulate(sim, args.n, tmp / f"sim-{label}", shard_size=args.shard_size, seed=7, **where)
            n = args.n
            key = np.concatenate([s.images for s in idx])
        elif kind == "estimate":
            idx = estimate("hst_wfc3", tmp / "sim-serial", tmp / f"est-{label}", **where)
            n = args.n
            key = np.concatenate([e.table["theta_E"].value for e in idx])
        else:
            idx = find(cubes, tmp / f"find-{label}", **where)
            n = per * 16
            key = np.concatenate([e.table["p_lens"].value for e in idx])
        seconds = time.perf_counter() - t0
        same = None
        if label == "serial":
            reference[kind] = key
        else:
            same = bool(np.array_equal(key, reference[kind]))
        return {"per_second": n / seconds, "seconds": seconds, "identical_to_serial": same}

    for kind in ("simulate", "estimate", "find"):
        res = {"serial": run("serial", kind, scheduler="serial")}
        for w in (1, 2):
            with local_cluster(w) as cl, Client(cl) as client:
                # workers up, torch and lenskit imported and the estimators loaded before the clock
                client.run(_warm)
                res[f"workers_{w}"] = run(f"w{w}", kind, client=client)
        res["scaling_efficiency"] = res["workers_2"]["per_second"] / (2 * res["workers_1"]["per_second"])
        results["runs"][kind] = res
        print(json.dumps({kind: res}), flush=True)
    if args.ddp:
        r1 = ddp_rate(1, args.ddp_steps, 8, tmp)
        r2 = ddp_rate(2, args.ddp_steps, 8, tmp)
        results["runs"]["train_ddp"] = {"ranks_1": r1, "ranks_2": r2,
                                        "scaling_efficiency": r2["images_per_second"] / (2 * r1["images_per_second"])}
    results["torch_version"] = torch.__version__
    print(json.dumps(results, indent=1))
    for p in sorted(tmp.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    tmp.rmdir()
    return results


if __name__ == "__main__":
    main()
