"""
Running at survey scale: shards on Dask
=======================================

LSST and Euclid will image a billion galaxies; training sets run to millions
of images.  `lenskit.distributed` cuts the work into *shards*: one task on a
Dask cluster and one ASDF file each, listed in an ``index.json``.  The same
code runs on a laptop (a `~dask.distributed.LocalCluster`, the default) and
on a cluster (pass any ``Client``, for example from dask-jobqueue).

Here two worker processes simulate labelled lens-finder cutouts in shards,
the shipped DeepLens finder scores them, and we check the two properties
that make this safe at scale: the output does not depend on the number of
workers, and a second run resumes instead of starting over.
"""

import json
import shutil
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from dask.distributed import Client

from lenskit.scale import ShardIndex, find, local_cluster, simulate
from lenskit.estimators.finder_metrics import finder_summary
from lenskit.simulation.finder import LensFinderSimulator

work = Path(tempfile.mkdtemp(prefix="lenskit-survey-"))

# %%
# A cluster of two single-threaded worker processes
# -------------------------------------------------
# On an HPC system, replace these two lines by a dask-jobqueue cluster, e.g.
# ``SLURMCluster(cores=8, memory="32GB").scale(jobs=20)``; nothing else changes.
cluster = local_cluster(2)  # a LocalCluster of single-threaded worker processes
client = Client(cluster)

# %%
# Simulation in shards
# --------------------
# Shard ``i`` draws its random numbers from ``SeedSequence(seed).spawn(n)[i]``,
# so the shards do not depend on which worker made them, or when.  Each shard
# is written to a temporary file and renamed into place: a file either is a
# complete shard or does not exist.
sim = LensFinderSimulator(mode="single_epoch")
t0 = time.perf_counter()
shards = simulate(sim, 1600, work / "cutouts", shard_size=200, seed=2018, client=client)
print(f"{shards} in {time.perf_counter() - t0:.1f} s")
print(json.dumps(shards.shards[0], indent=1)[:600])

# %%
# Running the same call again finds every shard done and returns at once;
# after an interruption it would redo only the missing shards.
t0 = time.perf_counter()
again = simulate(sim, 1600, work / "cutouts", shard_size=200, seed=2018, client=client)
print(f"second run: {time.perf_counter() - t0:.2f} s, resumed {sum(bool(s.get('resumed')) for s in again.shards)} "
      f"of {len(again)} shards")

# %%
# The same shards without Dask, in this process: bit for bit the same images
# (shard ``i`` of a seed is the same in a run of any length).
serial = simulate(sim, 400, work / "serial", shard_size=200, seed=2018, scheduler="serial")
print("identical to the cluster's first two shards:",
      all(np.array_equal(serial.read(i).images, shards.read(i).images) for i in range(2)))

# %%
# Scoring the shards with the lens finder
# ---------------------------------------
# `~lenskit.distributed.find` loads the shipped finder once per worker and
# writes one estimate file per input shard; ``concatenate`` joins them in
# input order.  ``lens_fraction`` would map the probabilities to a survey's
# lens fraction (Lanusse et al. eq. 5).
scores = find(shards, work / "scores", client=client)
est = scores.concatenate()
print(est, "from", len(est.table.meta["inputs"]), "input files")

truth = np.concatenate([ds.params["is_lens"] for ds in ShardIndex.open(work / "cutouts")]).astype(bool)
p = est.table["p_lens"].value
print(finder_summary(p, truth))

fig, ax = plt.subplots(figsize=(5, 3.2))
bins = np.linspace(0, 1, 26)
ax.hist(p[~truth], bins, alpha=0.6, label="no lens")
ax.hist(p[truth], bins, alpha=0.6, label="lens")
ax.axvline(est.table.meta["threshold"], color="k", ls="--", lw=1, label="1% FPR threshold")
ax.set(xlabel="p_lens", ylabel="cutouts", yscale="log")
ax.legend()
fig.tight_layout()

# %%
# On the command line the same runs are::
#
#     lenskit simulate -n 100000 --instrument lsst --workers 16 --shard-size 1000 --seed 1 -o train/
#     lenskit find "survey/*.fits" --scheduler tcp://scheduler:8786 --files-per-task 50 -o candidates.asdf
#
# and data-parallel training on every GPU (or CPU core group) of a node::
#
#     torchrun --nproc_per_node 4 -m lenskit train --ddp --instrument hst_wfc3 --steps 100000 -o hst.asdf
client.close()
cluster.close()
shutil.rmtree(work)  # the shards of this example (about 60 MB)
