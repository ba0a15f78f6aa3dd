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

Memory: every tensor operation of a round allocates a new result of about a
megabyte.  With glibc's default settings such blocks are mapped from the
kernel and given back on every free, so each operation first pays a page
fault per 4 KB it writes: half of the simulator's time.  `tune_malloc` raises
glibc's thresholds so that freed blocks are reused instead (renders 2x faster);
it is applied when a simulator first runs, on Linux with glibc, unless the
``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` environment variables
already choose otherwise or ``LENSKIT_TUNE_MALLOC=0``.  A process then keeps up
to `TRIM_THRESHOLD` of freed memory per allocation arena for reuse.

The number of workers defaults to torch's thread count (``torch.get_num_threads()``,
which follows ``OMP_NUM_THREADS`` and ``torch.set_num_threads``): a program
that asked torch for one thread gets a serial simulator.
"""

import ctypes
import ctypes.util
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

__all__ = ["default_workers", "pool", "round_rng", "tune_malloc"]

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


#: Blocks below this size come from the heap and are reused after a free (glibc's largest allowed value).
MMAP_THRESHOLD = 32 * 2**20
#: Free memory a heap keeps before returning it to the system.
TRIM_THRESHOLD = 128 * 2**20
_TUNED = None


def tune_malloc() -> bool:
    """
    Let glibc reuse freed megabyte-sized blocks instead of mapping them anew (see the module notes); once.

    Returns whether the settings are in effect.
    """
    global _TUNED
    if _TUNED is None:
        _TUNED = False
        if (sys.platform.startswith("linux") and os.environ.get("LENSKIT_TUNE_MALLOC", "1") != "0"
                and "MALLOC_MMAP_THRESHOLD_" not in os.environ and "MALLOC_TRIM_THRESHOLD_" not in os.environ):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameter numbers
                _TUNED = bool(libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(
                    libc.mallopt(m_trim_threshold, TRIM_THRESHOLD))
            except (OSError, AttributeError):  # not glibc (musl, another libc): leave it alone
                _TUNED = False
    return _TUNED


def round_rng(base: int, index: int) -> np.random.Generator:
    """The generator of round ``index`` of a `Simulator.simulate` call whose base seed is ``base``."""
    return np.random.default_rng([int(base), int(index)])
