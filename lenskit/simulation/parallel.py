"""
How the simulator uses a machine's cores: rounds of systems in parallel threads, one torch thread each.

A round of candidate systems is a few milliseconds of small tensor
operations.  Splitting every operation over the cores (torch's intra-op
threads) makes each one wait for all cores at its end; when another process
holds a core, every operation waits for a thread the kernel has descheduled,
and the simulator slows down 20-50x.  Here, instead, each worker thread runs
whole rounds on its own single torch thread (torch's thread count is per
thread, so the caller's own setting is untouched): nothing waits for another
core, and a busy core only takes its share.  Rounds are seeded by their index
(`round_rng`), so the result does not depend on how many threads ran them or
in which order they finished.

The number of workers defaults to torch's thread count (``torch.get_num_threads()``,
which follows ``OMP_NUM_THREADS`` and ``torch.set_num_threads``): a program
that asked torch for one thread gets a serial simulator.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

__all__ = ["default_workers", "pool", "round_rng"]

_POOLS: dict[int, ThreadPoolExecutor] = {}
_LOCK = threading.Lock()


def default_workers() -> int:
    """Worker threads a simulator uses by default: torch's thread count, at most the usable cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(torch.get_num_threads(), cores))


def _single_thread():
    torch.set_num_threads(1)  # this worker's own torch thread count (OpenMP's is per thread)


def pool(workers: int) -> ThreadPoolExecutor:
    """A shared pool of ``workers`` threads, each running torch on one thread (made once per size)."""
    with _LOCK:
        ex = _POOLS.get(workers)
        if ex is None:
            ex = ThreadPoolExecutor(workers, thread_name_prefix="lenskit-sim", initializer=_single_thread)
            _POOLS[workers] = ex
        return ex


def _forget_pools():  # a forked child has none of the parent's threads
    _POOLS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


def round_rng(base: int, index: int) -> np.random.Generator:
    """The generator of round ``index`` of a `Simulator.simulate` call whose base seed is ``base``."""
    return np.random.default_rng([int(base), int(index)])
