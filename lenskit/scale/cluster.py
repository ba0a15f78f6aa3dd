"""Dask clients for lenskit's scale-out: a local cluster of single-threaded workers, or any cluster you pass."""

import contextlib
import os
from pathlib import Path

import torch

from lenskit.core.exceptions import LenskitError
from lenskit.core.validation import check_int

__all__ = ["get_client", "local_cluster", "close_client", "torch_threads", "require_dask"]


def require_dask():
    try:
        import dask.distributed  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("lenskit.distributed needs Dask: pip install 'lenskit[distributed]'") from exc


def get_client(client=None, scheduler=None, workers=None, connect_timeout=30):
    """
    The Dask client to run on, and whether the caller owns (must close) it.

    Parameters
    ----------
    client : `dask.distributed.Client`, optional
        Used as it is (never closed here).
    scheduler : str, optional
        ``"serial"`` (no Dask: returns ``(None, False)``), ``"local"`` (a new
        `~dask.distributed.LocalCluster`), a scheduler address
        (``"tcp://host:8786"``) or the path of a scheduler JSON file.
    workers : int, optional
        Worker processes of a new LocalCluster (default: the CPU count), one
        thread each.
    connect_timeout : float
        Seconds to wait for a remote scheduler (a `~lenskit.core.LenskitError` after).

    Returns
    -------
    (client or None, owned)
    """
    if client is not None:
        if scheduler is not None:
            raise ValueError("pass either client or scheduler, not both")
        if not hasattr(client, "submit"):
            raise TypeError(f"client must be a dask.distributed.Client; got {type(client).__name__}")
        return client, False
    if scheduler == "serial":
        return None, False
    check_int("workers", workers, minimum=1, allow_none=True)
    if scheduler is not None and not isinstance(scheduler, str):
        raise TypeError(f"scheduler must be 'serial', 'local', an address or a scheduler file; got {scheduler!r}")
    if scheduler is not None and scheduler.endswith(".json") and not Path(scheduler).exists():
        raise FileNotFoundError(f"scheduler file {scheduler} does not exist")
    require_dask()
    from dask.distributed import Client  # optional dependency (the [distributed] extra)

    if scheduler is None or scheduler == "local":
        return Client(local_cluster(workers)), True
    try:
        if scheduler.endswith(".json"):
            return Client(scheduler_file=scheduler, timeout=connect_timeout), True
        return Client(scheduler, timeout=connect_timeout), True
    except (OSError, TimeoutError) as exc:
        raise LenskitError(f"scheduler: could not reach the Dask scheduler {scheduler!r} within {connect_timeout} s "
                           f"({type(exc).__name__}: {exc}); nothing was written") from exc


def local_cluster(workers=None, **kwargs):
    """
    A `~dask.distributed.LocalCluster` of single-threaded worker processes, tuned for lenskit.

    Dask's nannies set ``MALLOC_TRIM_THRESHOLD_=65536`` in their workers, which
    makes glibc return freed memory to the system at once; simulation and
    inference allocate and free large tensors all the time, and ran 2-3x
    slower per worker with it (half the time in the kernel), so the variable is
    left unset here (unless set in your environment).  On your own clusters,
    set ``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_: null`` in
    the Dask configuration for the same speed.

    Parameters
    ----------
    workers : int, optional
        Worker processes (default: the CPU count).
    **kwargs
        Passed to `~dask.distributed.LocalCluster`.
    """
    import dask  # optional dependency (the [distributed] extra)
    from dask.distributed import LocalCluster  # optional dependency (the [distributed] extra)

    n = int(workers) if workers else (os.cpu_count() or 1)
    opts = {"n_workers": n, "threads_per_worker": 1, "processes": True, "dashboard_address": None, **kwargs}
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(**opts)


def close_client(client, owned):
    if owned and client is not None:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None:
            cluster.close()


@contextlib.contextmanager
def torch_threads(n):
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)
