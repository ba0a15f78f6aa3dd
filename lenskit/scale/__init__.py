"""
Scale-out (``lenskit.scale``, published also as ``lenskit.distributed``): simulation shards and survey-scale inference on Dask.

lenskit runs on one laptop by default and on a cluster without changes to the
user's code.  Work is cut into *shards*; each shard is one task on a
`dask.distributed.Client` and one ASDF file, written atomically (a temporary
file renamed into place), and listed in an ``index.json`` beside it::

    from lenskit.scale import simulate, estimate
    shards = simulate(lenskit.Simulator(instrument="lsst"), 100_000, "train/", shard_size=1000, seed=1)
    found = estimate("deeplens_lsst_g", shards, "scores/")      # one estimate file per input shard
    table = found.concatenate()                                   # one Estimate, rows in input order

* The client is a `~dask.distributed.LocalCluster` (one single-threaded worker
  process per core, see `local_cluster`) unless you pass ``client=`` (any cluster: dask-jobqueue on
  an HPC system, Kubernetes, ...) or ``scheduler=`` (an address such as
  ``"tcp://10.0.0.5:8786"``, or a scheduler JSON file).  ``scheduler="serial"``
  runs the very same shard function in this process, without Dask.
* Shard ``i`` draws its random numbers from ``SeedSequence(seed).spawn(n)[i]``
  and each task runs with a fixed number of torch threads, so the output does
  not depend on the number of workers or on the order in which shards finish:
  it is bit for bit that of the serial run.
* A failing shard is retried (``retries``); if it still fails it is recorded in
  the index with its error and a `ShardError` naming every failed shard is
  raised once the others are done: nothing is dropped silently.
* Running the same call again resumes: shards whose files exist and belong to
  this run (same configuration, size and seed) are kept, the rest are done.
"""

from lenskit.scale.cluster import get_client, local_cluster
from lenskit.scale.shards import ShardError, ShardIndex, shard_seeds
from lenskit.scale.survey import estimate, find, simulate

__all__ = ["simulate", "estimate", "find", "ShardIndex", "ShardError", "get_client", "local_cluster", "shard_seeds"]
