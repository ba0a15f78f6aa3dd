"""
Shards: one task, one ASDF file each, listed in an ``index.json`` with sizes, seeds, checksums and status.

`prepare_run` decides which shards of a run exist and are intact (resume),
`execute_tasks` runs the rest on a client (or serially) with retries and
records every outcome, and `ShardIndex` reads a finished run back.
"""

import contextlib
import hashlib
import json
from pathlib import Path

import asdf
import numpy as np
from astropy.table import vstack
from tqdm.auto import tqdm

from lenskit.core.dataset import LensDataset
from lenskit.core.estimate import Estimate
from lenskit.core.exceptions import LenskitError, LenskitFileError
from lenskit.core.files import atomic_open
from lenskit.core.provenance import array_checksum
from lenskit.io.asdf import read

__all__ = ["ShardIndex", "ShardError", "shard_seeds", "prepare_run", "execute_tasks", "file_sha256",
           "concat_estimates", "INDEX_NAME", "SHARD_KEY"]

INDEX_NAME = "index.json"
SHARD_KEY = "lenskit_shard"
INDEX_VERSION = 1


class ShardError(LenskitError):
    """Shards that still failed after their retries; ``failures`` maps shard file -> error text."""

    def __init__(self, message, failures):
        super().__init__(message)
        self.failures = dict(failures)


def shard_seeds(seed, n_shards):
    """One independent `~numpy.random.SeedSequence` per shard, derived from ``seed`` (entropy, spawn keys)."""
    if seed is None or int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer (shards are reproducible only with one); got {seed!r}")
    return np.random.SeedSequence(int(seed)).spawn(int(n_shards))


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(obj, path):
    with atomic_open(path, "w", overwrite=True) as f:
        json.dump(obj, f, indent=1, default=str)


def run_key(spec):
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def shard_meta(path):
    """The shard record stored in a shard file, or None when the file is not a complete lenskit shard."""
    try:
        with asdf.open(path, lazy_load=True, memmap=False) as af:
            meta = af.tree.get(SHARD_KEY)
            return None if meta is None else json.loads(json.dumps(dict(meta), default=str))
    except Exception:
        return None


def reads_back(path):
    """Whether a shard reads back with its block and image checksums intact."""
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
        s = self.shards[i]
        if s["status"] != "done":
            raise LenskitError(f"shard {s['file']} is {s['status']}" + (f": {s['error']}" if s.get("error") else ""))
        path = self.directory / s["file"]
        if verify and s.get("sha256") and file_sha256(path) != s["sha256"]:
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
            return concat_estimates(parts, [s.get("inputs") for s in self.shards])
        return concat_datasets(parts)

    def __repr__(self):
        done = sum(s["status"] == "done" for s in self.shards)
        return f"<ShardIndex {self.kind} {self.directory}: {done}/{len(self)} shards done, {self.n} rows>"


def concat_datasets(parts):
    first = parts[0]
    cat = lambda name: None if getattr(first, name) is None else np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    truth = {k: np.concatenate([p.truth[k] for p in parts]) for k in (first.truth or {})}
    images = np.concatenate([p.images for p in parts])
    return LensDataset(images, vstack([p.params for p in parts]),
                       bands=first.bands, pixel_scale=first.pixel_scale, instrument=first.instrument,
                       noise=cat("noise"), masks=cat("masks"), truth=truth,
                       provenance=first.provenance.with_checksums(images=array_checksum(images)))


def concat_estimates(parts, inputs):
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
def prepare_run(directory, kind, spec, names, overwrite):
    """Create or reopen the run directory; returns (index record, indices of the shards still to do)."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    run_id = run_key(spec)
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
        meta = shard_meta(path) if path.exists() else None
        intact = False
        if meta is not None and meta.get("run_id") == run_id and meta.get("shard") == i:
            digest = file_sha256(path)
            intact = digest == recorded[name] if recorded.get(name) else reads_back(path)
        if intact:
            record["shards"][i].update(meta["record"], status="done", sha256=digest, resumed=True)
        else:
            todo.append(i)
    write_json_atomic(record, idx_path)
    return record, todo


def execute_tasks(fn, tasks, directory, record, client, retries, progress, desc):
    """Run ``fn(*args)`` for each (i, args) in ``tasks``; update and write the index as shards finish."""
    directory = Path(directory)
    idx_path = directory / INDEX_NAME
    bar = None
    if progress:
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
        write_json_atomic(record, idx_path)

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
            from dask.distributed import as_completed  # optional dependency (the [distributed] extra)

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
        write_json_atomic(record, idx_path)
    index = ShardIndex(directory, record)
    if index.failed:
        lines = "; ".join(f"{k}: {v}" for k, v in list(index.failed.items())[:5])
        raise ShardError(f"{len(index.failed)} of {len(index)} shard(s) failed after {retries} retries "
                         f"(recorded in {idx_path}; run again to retry them): {lines}", index.failed)
    return index
