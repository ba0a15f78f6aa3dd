"""
Scale-out: simulation shards and survey-scale inference on Dask.

lenskit runs on one laptop by default and on a cluster without changes to the
user's code.  Work is cut into *shards*; each shard is one task on a
`dask.distributed.Client` and one ASDF file, written atomically (a temporary
file renamed into place), and listed in an ``index.json`` beside it::

    from lenskit.distributed import simulate, estimate
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

import contextlib
import copy
import glob
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from lenskit.core.exceptions import LenskitError, LenskitFileError
from lenskit.core.files import atomic_open
from lenskit.core.resources import check_memory
from lenskit.core.validation import check_int, check_number

__all__ = ["simulate", "estimate", "find", "ShardIndex", "ShardError", "get_client", "local_cluster", "shard_seeds"]

INDEX_NAME = "index.json"
SHARD_KEY = "lenskit_shard"
INDEX_VERSION = 1


class ShardError(LenskitError):
    """Shards that still failed after their retries; ``failures`` maps shard file -> error text."""

    def __init__(self, message, failures):
        super().__init__(message)
        self.failures = dict(failures)


# -- clients ---------------------------------------------------------------------------------------------------
def _require_dask():
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
    _require_dask()
    from dask.distributed import Client

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
    import dask
    from dask.distributed import LocalCluster

    n = int(workers) if workers else (os.cpu_count() or 1)
    opts = {"n_workers": n, "threads_per_worker": 1, "processes": True, "dashboard_address": None, **kwargs}
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(**opts)


def _close(client, owned):
    if owned and client is not None:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None:
            cluster.close()


def shard_seeds(seed, n_shards):
    """One independent `~numpy.random.SeedSequence` per shard, derived from ``seed`` (entropy, spawn keys)."""
    if seed is None or int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer (shards are reproducible only with one); got {seed!r}")
    return np.random.SeedSequence(int(seed)).spawn(int(n_shards))


@contextlib.contextmanager
def _torch_threads(n):
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_json_atomic(obj, path):
    with atomic_open(path, "w", overwrite=True) as f:
        json.dump(obj, f, indent=1, default=str)


def _run_id(spec):
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _shard_meta(path):
    """The shard record stored in a shard file, or None when the file is not a complete lenskit shard."""
    import asdf

    try:
        with asdf.open(path, lazy_load=True, memmap=False) as af:
            meta = af.tree.get(SHARD_KEY)
            return None if meta is None else json.loads(json.dumps(dict(meta), default=str))
    except Exception:
        return None


def _reads_back(path):
    """Whether a shard reads back with its block and image checksums intact."""
    from lenskit.io.asdf import read

    try:
        read(path)
    except (LenskitFileError, OSError, ValueError, TypeError):
        return False
    return True


# -- the index ---------------------------------------------------------------------------------------------------
class ShardIndex:
    """
    The shards of one run: their files, sizes, seeds, checksums and status.

    Open an existing run with ``ShardIndex.open(directory)``; iterate to read the
    shards one at a time (``LensDataset`` or ``Estimate``), or `concatenate`.
    """

    def __init__(self, directory, record):
        self.directory = Path(directory)
        self.record = record

    @classmethod
    def open(cls, directory):
        directory = Path(directory)
        path = directory / INDEX_NAME if directory.is_dir() else directory
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist (not a lenskit shard directory)")
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise LenskitFileError(f"{path} is not a readable shard index: {exc}") from exc
        if not isinstance(record, dict) or record.get("lenskit_shards") != INDEX_VERSION or "shards" not in record:
            raise LenskitFileError(f"{path} is not a lenskit shard index (version {INDEX_VERSION})")
        return cls(path.parent, record)

    @property
    def kind(self):
        """``"dataset"`` (simulated systems) or ``"estimate"``."""
        return self.record["kind"]

    @property
    def shards(self):
        return self.record["shards"]

    @property
    def complete(self):
        return all(s["status"] == "done" for s in self.shards)

    @property
    def failed(self):
        """Shard file -> error, for the shards that failed."""
        return {s["file"]: s.get("error", "") for s in self.shards if s["status"] == "failed"}

    @property
    def files(self):
        return [self.directory / s["file"] for s in self.shards]

    @property
    def n(self):
        """Rows (systems or estimates) in the completed shards."""
        return sum(int(s.get("n") or 0) for s in self.shards if s["status"] == "done")

    def __len__(self):
        return len(self.shards)

    def read(self, i, verify=True):
        """Shard ``i`` (checksum verified against the index)."""
        from lenskit.io.asdf import read

        s = self.shards[i]
        if s["status"] != "done":
            raise LenskitError(f"shard {s['file']} is {s['status']}" + (f": {s['error']}" if s.get("error") else ""))
        path = self.directory / s["file"]
        if verify and s.get("sha256") and _sha256(path) != s["sha256"]:
            raise LenskitFileError(f"{path} does not match the checksum in {self.directory / INDEX_NAME}")
        return read(path)

    def __iter__(self):
        for i in range(len(self)):
            yield self.read(i)

    def concatenate(self):
        """All shards as one `~lenskit.LensDataset` or `~lenskit.Estimate`, in shard order."""
        if not self.complete:
            raise ShardError(f"{len(self.failed)} shard(s) of {self.directory} are not done", self.failed)
        parts = list(self)
        if self.kind == "estimate":
            return _concat_estimates(parts, [s.get("inputs") for s in self.shards])
        return _concat_datasets(parts)

    def __repr__(self):
        done = sum(s["status"] == "done" for s in self.shards)
        return f"<ShardIndex {self.kind} {self.directory}: {done}/{len(self)} shards done, {self.n} rows>"


def _concat_datasets(parts):
    from astropy.table import vstack

    from lenskit.core.dataset import LensDataset
    from lenskit.core.provenance import array_checksum

    first = parts[0]
    cat = lambda name: None if getattr(first, name) is None else np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    truth = {k: np.concatenate([p.truth[k] for p in parts]) for k in (first.truth or {})}
    images = np.concatenate([p.images for p in parts])
    return LensDataset(images, vstack([p.params for p in parts]),
                       bands=first.bands, pixel_scale=first.pixel_scale, instrument=first.instrument,
                       noise=cat("noise"), masks=cat("masks"), truth=truth,
                       provenance=first.provenance.with_checksums(images=array_checksum(images)))


def _concat_estimates(parts, inputs):
    from astropy.table import vstack

    from lenskit.core.estimate import Estimate

    table = vstack([p.table for p in parts], metadata_conflicts="silent")
    table.meta = dict(parts[0].table.meta)
    rows = []
    start = 0
    for p, inp in zip(parts, inputs):
        for item in inp or []:
            rows.append({"file": item["file"], "n": item["n"], "first_row": start})
            start += item["n"]
    table.meta["inputs"] = rows
    cov = None
    if all(p.covariance is not None for p in parts):
        cov = np.concatenate([p.covariance for p in parts])
    return Estimate(table, covariance=cov, provenance=parts[0].provenance)


# -- the engine ----------------------------------------------------------------------------------------------------
def _prepare(directory, kind, spec, names, overwrite):
    """Create or reopen the run directory; returns (index record, indices of the shards still to do)."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    run_id = _run_id(spec)
    idx_path = directory / INDEX_NAME
    old = None
    if idx_path.exists():
        try:
            old = ShardIndex.open(directory).record
        except LenskitFileError:
            old = None
        if old is not None and old.get("run_id") != run_id:
            if not overwrite:
                raise FileExistsError(f"{directory} holds a different run (index {old.get('run_id')}, this run "
                                      f"{run_id}); pass overwrite=True (--overwrite) to replace it, or use another directory")
            for s in old["shards"]:
                with contextlib.suppress(FileNotFoundError):
                    (directory / s["file"]).unlink()
    elif any(directory.glob("shard-*.asdf")) and overwrite:
        for p in directory.glob("shard-*.asdf"):
            p.unlink()
    record = {"lenskit_shards": INDEX_VERSION, "kind": kind, "run_id": run_id, "spec": spec,
              "shards": [{"file": name, "status": "pending"} for name in names]}
    # a shard is kept only if its bytes are those the index recorded when it was written (or, without such a
    # record, if it reads back with every checksum intact): a corrupted shard is simulated again
    recorded = {}
    if old is not None and old.get("run_id") == run_id:
        recorded = {s["file"]: s.get("sha256") for s in old.get("shards", []) if s.get("status") == "done"}
    todo = []
    for i, name in enumerate(names):
        path = directory / name
        meta = _shard_meta(path) if path.exists() else None
        intact = False
        if meta is not None and meta.get("run_id") == run_id and meta.get("shard") == i:
            digest = _sha256(path)
            intact = digest == recorded[name] if recorded.get(name) else _reads_back(path)
        if intact:
            record["shards"][i].update(meta["record"], status="done", sha256=digest, resumed=True)
        else:
            todo.append(i)
    _write_json_atomic(record, idx_path)
    return record, todo


def _execute(fn, tasks, directory, record, client, retries, progress, desc):
    """Run ``fn(*args)`` for each (i, args) in ``tasks``; update and write the index as shards finish."""
    directory = Path(directory)
    idx_path = directory / INDEX_NAME
    bar = None
    if progress:
        from tqdm.auto import tqdm

        done0 = sum(s["status"] == "done" for s in record["shards"])
        bar = tqdm(total=len(record["shards"]), initial=done0, desc=desc, unit="shard")

    def finish(i, result=None, error=None, attempts=1):
        s = record["shards"][i]
        if error is None:
            s.update(result, status="done", attempts=attempts)
            s.pop("error", None)
            if bar is not None:
                bar.update(1)
        else:
            s.update(status="failed", error=error, attempts=attempts)
        _write_json_atomic(record, idx_path)

    try:
        if client is None:
            for i, args in tasks:
                for attempt in range(1, retries + 2):
                    try:
                        res = fn(*args)
                    except Exception as exc:  # noqa: BLE001 - recorded and re-raised as ShardError below
                        err = f"{type(exc).__name__}: {exc}"
                        if attempt == retries + 1:
                            finish(i, error=err, attempts=attempt)
                        continue
                    finish(i, res, attempts=attempt)
                    break
        else:
            from dask.distributed import as_completed

            futures = {}
            for i, args in tasks:
                fut = client.submit(fn, *args, retries=int(retries), pure=False,
                                    key=f"lenskit-{desc}-{record['run_id']}-{i:05d}")
                futures[fut] = i
            for fut in as_completed(list(futures)):
                i = futures[fut]
                if fut.status == "finished":
                    finish(i, fut.result(), attempts=None)
                else:
                    exc = fut.exception()
                    finish(i, error=f"{type(exc).__name__}: {exc}", attempts=int(retries) + 1)
                fut.release()
    finally:
        if bar is not None:
            bar.close()
        _write_json_atomic(record, idx_path)
    index = ShardIndex(directory, record)
    if index.failed:
        lines = "; ".join(f"{k}: {v}" for k, v in list(index.failed.items())[:5])
        raise ShardError(f"{len(index.failed)} of {len(index)} shard(s) failed after {retries} retries "
                         f"(recorded in {idx_path}; run again to retry them): {lines}", index.failed)
    return index


# -- simulation ----------------------------------------------------------------------------------------------------
def _simulate_shard(simulator, n, seed_entropy, spawn_key, path, meta, threads, keep_truth):
    from lenskit.io.asdf import write

    with _torch_threads(threads):
        sim = copy.copy(simulator)
        sim.rng = np.random.default_rng(np.random.SeedSequence(seed_entropy, spawn_key=tuple(spawn_key)))
        sim.seed = None
        ds = sim.sample(int(n), keep_truth=keep_truth)
    record = {"n": len(ds), "seed": {"entropy": seed_entropy, "spawn_key": list(spawn_key)},
              "checksum_images": ds.provenance.checksums.get("images")}
    write(ds, path, overwrite=True, extra={SHARD_KEY: {**meta, "record": record}})
    return {**record, "sha256": _sha256(path)}


def simulate(simulator, n, directory, *, shard_size=1000, seed=0, client=None, scheduler=None, workers=None,
             retries=2, keep_truth=True, threads=1, overwrite=False, progress=False):
    """
    Simulate ``n`` systems as shards written in parallel.

    Parameters
    ----------
    simulator : `~lenskit.Simulator`
        Sent once to every worker (its own ``seed`` is not used: shards draw
        from ``seed``).
    n : int
        Systems in all; shards hold ``shard_size`` (the last one the rest).
    directory : path
        Created if needed; receives ``shard-00000.asdf``, ... and ``index.json``.
    shard_size : int
    seed : int
        Shard ``i`` uses ``SeedSequence(seed).spawn(n_shards)[i]``.
    client, scheduler, workers
        Where to run (see `get_client`); by default a LocalCluster with one
        worker per core, closed afterwards.
    retries : int
        Extra attempts for a failing shard.
    keep_truth : bool
        Store the noise-free arcs and lens light in the shards.
    threads : int
        Torch threads per task (fixed, so results do not depend on the machine).
    overwrite : bool
        Replace a different run found in ``directory`` (otherwise an error);
        the same run is resumed either way.
    progress : bool

    Returns
    -------
    `ShardIndex`

    Raises
    ------
    ShardError
        After all other shards are written, if some shard failed every attempt.
    """
    if not hasattr(simulator, "sample") or not hasattr(simulator, "config"):
        raise TypeError(f"simulator must be a lenskit Simulator; got {type(simulator).__name__}")
    n, shard_size = check_int("n", n, minimum=1), check_int("shard_size", shard_size, minimum=1)
    threads, retries = check_int("threads", threads, minimum=1), check_int("retries", retries, minimum=0)
    check_int("workers", workers, minimum=1, allow_none=True)
    if hasattr(simulator, "bytes_per_system"):  # each task holds one shard in memory
        check_memory(2 * shard_size * simulator.bytes_per_system(keep_truth), "shard_size", shard_size,
                     "use smaller shards")
    n_shards = -(-n // shard_size)
    seeds = shard_seeds(seed, n_shards)
    sizes = [min(shard_size, n - i * shard_size) for i in range(n_shards)]
    names = [f"shard-{i:05d}.asdf" for i in range(n_shards)]
    spec = {"what": "simulate", "n": n, "shard_size": shard_size, "seed": int(seed), "keep_truth": bool(keep_truth),
            "threads": int(threads), "simulator": simulator.config}
    client, owned = get_client(client, scheduler, workers)  # an unreachable scheduler fails before any write
    try:
        record, todo = _prepare(directory, "dataset", spec, names, overwrite)
        directory = Path(directory)
        sim_ref = simulator
        if client is not None and todo:
            [sim_ref] = client.scatter([simulator], broadcast=True)
        tasks = [(i, (sim_ref, sizes[i], seeds[i].entropy, seeds[i].spawn_key, str(directory / names[i]),
                      {"run_id": record["run_id"], "shard": i, "of": n_shards}, threads, keep_truth))
                 for i in todo]
        return _execute(_simulate_shard, tasks, directory, record, client, retries, progress, "simulate")
    finally:
        _close(client, owned)


# -- estimation ---------------------------------------------------------------------------------------------------
_ESTIMATORS = {}


def _estimator(spec):
    """An estimator from a shipped name, a weights path or an object; loaded once per worker process."""
    if not isinstance(spec, (str, os.PathLike)):
        return spec
    key = str(spec)
    if key not in _ESTIMATORS:
        from lenskit.estimators.pretrained import load_estimator

        _ESTIMATORS[key] = load_estimator(key)
    return _ESTIMATORS[key]


def _estimate_shard(estimator, files, path, meta, batch_size, threads, lens_fraction):
    from lenskit.io import read_images
    from lenskit.io.asdf import write

    est = _estimator(estimator)
    with _torch_threads(threads):
        parts, inputs = [], []
        for f in files:
            data = read_images(f)
            kw = {} if lens_fraction is None else {"lens_fraction": lens_fraction}
            e = est.predict(data, batch_size=batch_size, **kw)
            parts.append(e)
            inputs.append({"file": str(f), "n": len(e)})
    out = parts[0] if len(parts) == 1 else _concat_estimates(parts, [[x] for x in inputs])
    out.table.meta["inputs"] = [{"file": x["file"], "n": x["n"]} for x in inputs]
    record = {"n": len(out), "inputs": inputs}
    write(out, path, overwrite=True, extra={SHARD_KEY: {**meta, "record": record}})
    return {**record, "sha256": _sha256(path)}


def _input_files(inputs):
    """Paths from a ShardIndex, a shard directory, a glob pattern, a path or a list of these."""
    if isinstance(inputs, ShardIndex):
        if not inputs.complete:
            raise ShardError(f"the input shards in {inputs.directory} are not all done", inputs.failed)
        return [str(f) for f in inputs.files]
    if isinstance(inputs, (str, os.PathLike)):
        p = Path(inputs)
        if p.is_dir():
            if (p / INDEX_NAME).exists():
                return _input_files(ShardIndex.open(p))
            files = sorted(str(f) for f in p.iterdir() if f.suffix in (".asdf", ".fits", ".fit"))
            if not files:
                raise FileNotFoundError(f"{p} holds no .asdf or .fits files")
            return files
        if any(ch in str(inputs) for ch in "*?["):
            files = sorted(glob.glob(str(inputs)))
            if not files:
                raise FileNotFoundError(f"no file matches {inputs}")
            return files
        inputs = [inputs]
    files = []
    for x in inputs:
        files.extend(_input_files(x) if (Path(x).is_dir() or any(ch in str(x) for ch in "*?[")) else [str(x)])
    missing = [f for f in files if not Path(f).exists()]
    if missing:
        raise FileNotFoundError(f"input file(s) do not exist: {', '.join(missing[:5])}")
    if not files:
        raise ValueError("inputs holds no files")
    return files


def estimate(estimator, inputs, directory, *, client=None, scheduler=None, workers=None, files_per_task=1,
             batch_size=256, lens_fraction=None, retries=2, threads=1, overwrite=False, progress=False):
    """
    Run an estimator or the lens finder over many datasets, shards or FITS cubes.

    Parameters
    ----------
    estimator : str, path or estimator
        A shipped name (``"hst_wfc3"``, ``"deeplens_lsst_g"``, ...) or a weights
        file: loaded once per worker process; or an estimator object (sent
        to the workers).
    inputs : `ShardIndex`, directory, glob pattern, path or list of them
        `~lenskit.LensDataset` files (``.asdf``, e.g. the shards of `simulate`)
        or FITS images / cubes (N, H, W) or (N, bands, H, W) in the
        estimator's units and grid.
    directory : path
        Receives one estimate file per task and ``index.json``.
    files_per_task : int
        Input files per task (use more for many small cutout files).
    batch_size : int
    lens_fraction : float, optional
        For the lens finder: the survey's lens fraction (Lanusse et al. eq. 5).
    client, scheduler, workers, retries, threads, overwrite, progress
        As for `simulate`.

    Returns
    -------
    `ShardIndex`
        ``.concatenate()`` gives one `~lenskit.Estimate` with rows in input
        order and ``table.meta["inputs"]`` mapping rows to files.
    """
    files = _input_files(inputs)
    files_per_task = check_int("files_per_task", files_per_task, minimum=1)
    batch_size, threads = check_int("batch_size", batch_size, minimum=1), check_int("threads", threads, minimum=1)
    retries = check_int("retries", retries, minimum=0)
    check_int("workers", workers, minimum=1, allow_none=True)
    lens_fraction = check_number("lens_fraction", lens_fraction, low=0, high=1, low_open=True, high_open=True,
                                 allow_none=True)
    if isinstance(estimator, (str, os.PathLike)):
        est_obj = _estimator(estimator)  # fail here, before any work, on an unknown name or a bad file
        est_desc = {"name": str(estimator), "estimator": getattr(est_obj, "name", None)}
    else:
        if not hasattr(estimator, "predict"):
            raise TypeError(f"estimator must be a name, a weights path or an estimator; got {type(estimator).__name__}")
        est_obj, est_desc = estimator, {"object": repr(estimator)}
    if lens_fraction is not None and "p_lens" not in getattr(est_obj, "targets", ()):
        raise ValueError("lens_fraction applies to the lens finder only (an estimator whose target is p_lens)")
    groups = [files[i:i + int(files_per_task)] for i in range(0, len(files), int(files_per_task))]
    names = [f"shard-{i:05d}.asdf" for i in range(len(groups))]
    spec = {"what": "estimate", "estimator": est_desc, "files": files, "files_per_task": int(files_per_task),
            "batch_size": int(batch_size), "lens_fraction": lens_fraction, "threads": int(threads),
            "sizes": [os.path.getsize(f) for f in files]}
    client, owned = get_client(client, scheduler, workers)  # an unreachable scheduler fails before any write
    try:
        record, todo = _prepare(directory, "estimate", spec, names, overwrite)
        directory = Path(directory)
        ref = estimator
        if client is not None and todo and not isinstance(estimator, (str, os.PathLike)):
            [ref] = client.scatter([estimator], broadcast=True)
        tasks = [(i, (ref, groups[i], str(directory / names[i]), {"run_id": record["run_id"], "shard": i,
                                                                   "of": len(groups)},
                      int(batch_size), int(threads), lens_fraction)) for i in todo]
        return _execute(_estimate_shard, tasks, directory, record, client, retries, progress, "estimate")
    finally:
        _close(client, owned)


def find(inputs, directory, finder="deeplens_lsst_g", **kwargs):
    """`estimate` with the lens finder (``p_lens`` and ``candidate`` per cutout); same options."""
    return estimate(finder, inputs, directory, **kwargs)
