"""Survey-scale simulate, estimate and find: the work cut into shards and run on Dask (see `lenskit.scale`)."""

import copy
import glob
import os
from pathlib import Path

import numpy as np

from lenskit.core.resources import check_memory
from lenskit.core.validation import check_int, check_number
from lenskit.estimators.pretrained import load_estimator
from lenskit.io import read_images
from lenskit.io.asdf import write
from lenskit.scale.cluster import close_client, get_client, torch_threads
from lenskit.scale.shards import (
    INDEX_NAME,
    SHARD_KEY,
    ShardError,
    ShardIndex,
    concat_estimates,
    execute_tasks,
    file_sha256,
    prepare_run,
    shard_seeds,
)

__all__ = ["simulate", "estimate", "find", "resolve_estimator"]


# -- simulation ----------------------------------------------------------------------------------------------------
def simulate_shard(simulator, n, seed_entropy, spawn_key, path, meta, threads, keep_truth):
    with torch_threads(threads):
        sim = copy.copy(simulator)
        sim.rng = np.random.default_rng(np.random.SeedSequence(seed_entropy, spawn_key=tuple(spawn_key)))
        sim.seed = None
        ds = sim.sample(int(n), keep_truth=keep_truth)
    record = {"n": len(ds), "seed": {"entropy": seed_entropy, "spawn_key": list(spawn_key)},
              "checksum_images": ds.provenance.checksums.get("images")}
    write(ds, path, overwrite=True, extra={SHARD_KEY: {**meta, "record": record}})
    return {**record, "sha256": file_sha256(path)}


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
        record, todo = prepare_run(directory, "dataset", spec, names, overwrite)
        directory = Path(directory)
        sim_ref = simulator
        if client is not None and todo:
            [sim_ref] = client.scatter([simulator], broadcast=True)
        tasks = [(i, (sim_ref, sizes[i], seeds[i].entropy, seeds[i].spawn_key, str(directory / names[i]),
                      {"run_id": record["run_id"], "shard": i, "of": n_shards}, threads, keep_truth))
                 for i in todo]
        return execute_tasks(simulate_shard, tasks, directory, record, client, retries, progress, "simulate")
    finally:
        close_client(client, owned)


# -- estimation ---------------------------------------------------------------------------------------------------
_LOADED = {}


def resolve_estimator(spec):
    """An estimator from a shipped name, a weights path or an object; loaded once per worker process."""
    if not isinstance(spec, (str, os.PathLike)):
        return spec
    key = str(spec)
    if key not in _LOADED:
        _LOADED[key] = load_estimator(key)
    return _LOADED[key]


def estimate_shard(estimator, files, path, meta, batch_size, threads, lens_fraction, match_noise=False):
    est = resolve_estimator(estimator)
    with torch_threads(threads):
        parts, inputs = [], []
        for f in files:
            data = read_images(f, as_dataset=True)  # a FITS cube's header pixel scale is checked
            if match_noise:  # the finder's cutouts scaled to its training noise (DeepLensFinder.match_noise)
                data = est.match_noise(data)
            kw = {} if lens_fraction is None else {"lens_fraction": lens_fraction}
            e = est.predict(data, batch_size=batch_size, **kw)
            parts.append(e)
            inputs.append({"file": str(f), "n": len(e)})
    out = parts[0] if len(parts) == 1 else concat_estimates(parts, [[x] for x in inputs])
    out.table.meta["inputs"] = [{"file": x["file"], "n": x["n"]} for x in inputs]
    record = {"n": len(out), "inputs": inputs}
    write(out, path, overwrite=True, extra={SHARD_KEY: {**meta, "record": record}})
    return {**record, "sha256": file_sha256(path)}


def input_files(inputs):
    """Paths from a ShardIndex, a shard directory, a glob pattern, a path or a list of these."""
    if isinstance(inputs, ShardIndex):
        if not inputs.complete:
            raise ShardError(f"the input shards in {inputs.directory} are not all done", inputs.failed)
        return [str(f) for f in inputs.files]
    if isinstance(inputs, (str, os.PathLike)):
        p = Path(inputs)
        if p.is_dir():
            if (p / INDEX_NAME).exists():
                return input_files(ShardIndex.open(p))
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
        files.extend(input_files(x) if (Path(x).is_dir() or any(ch in str(x) for ch in "*?[")) else [str(x)])
    missing = [f for f in files if not Path(f).exists()]
    if missing:
        raise FileNotFoundError(f"input file(s) do not exist: {', '.join(missing[:5])}")
    if not files:
        raise ValueError("inputs holds no files")
    return files


def estimate(estimator, inputs, directory, *, client=None, scheduler=None, workers=None, files_per_task=1,
             batch_size=256, lens_fraction=None, match_noise=False, retries=2, threads=1, overwrite=False,
             progress=False):
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
    match_noise : bool
        For the lens finder: scale every cutout so that its background noise
        is the finder's training noise
        (`~lenskit.estimators.finder.DeepLensFinder.match_noise`), for
        cutouts in other units or of another depth than its training's.
    client, scheduler, workers, retries, threads, overwrite, progress
        As for `simulate`.

    Returns
    -------
    `ShardIndex`
        ``.concatenate()`` gives one `~lenskit.Estimate` with rows in input
        order and ``table.meta["inputs"]`` mapping rows to files.
    """
    files = input_files(inputs)
    files_per_task = check_int("files_per_task", files_per_task, minimum=1)
    batch_size, threads = check_int("batch_size", batch_size, minimum=1), check_int("threads", threads, minimum=1)
    retries = check_int("retries", retries, minimum=0)
    check_int("workers", workers, minimum=1, allow_none=True)
    lens_fraction = check_number("lens_fraction", lens_fraction, low=0, high=1, low_open=True, high_open=True,
                                 allow_none=True)
    if isinstance(estimator, (str, os.PathLike)):
        est_obj = resolve_estimator(estimator)  # fail here, before any work, on an unknown name or a bad file
        est_desc = {"name": str(estimator), "estimator": getattr(est_obj, "name", None)}
    else:
        if not hasattr(estimator, "predict"):
            raise TypeError(f"estimator must be a name, a weights path or an estimator; got {type(estimator).__name__}")
        est_obj, est_desc = estimator, {"object": repr(estimator)}
    if lens_fraction is not None and "p_lens" not in getattr(est_obj, "targets", ()):
        raise ValueError("lens_fraction applies to the lens finder only (an estimator whose target is p_lens)")
    if not isinstance(match_noise, bool):
        raise TypeError(f"match_noise must be True or False; got {match_noise!r}")
    if match_noise and not hasattr(est_obj, "match_noise"):
        raise ValueError("match_noise applies to the lens finder only (an estimator with match_noise)")
    groups = [files[i:i + int(files_per_task)] for i in range(0, len(files), int(files_per_task))]
    names = [f"shard-{i:05d}.asdf" for i in range(len(groups))]
    spec = {"what": "estimate", "estimator": est_desc, "files": files, "files_per_task": int(files_per_task),
            "batch_size": int(batch_size), "lens_fraction": lens_fraction, "threads": int(threads),
            "sizes": [os.path.getsize(f) for f in files]}
    if match_noise:  # recorded only when asked for: the runs before it had none, and resume as they were
        spec["match_noise"] = True
    client, owned = get_client(client, scheduler, workers)  # an unreachable scheduler fails before any write
    try:
        record, todo = prepare_run(directory, "estimate", spec, names, overwrite)
        directory = Path(directory)
        ref = estimator
        if client is not None and todo and not isinstance(estimator, (str, os.PathLike)):
            [ref] = client.scatter([estimator], broadcast=True)
        tasks = [(i, (ref, groups[i], str(directory / names[i]), {"run_id": record["run_id"], "shard": i,
                                                                   "of": len(groups)},
                      int(batch_size), int(threads), lens_fraction, match_noise)) for i in todo]
        return execute_tasks(estimate_shard, tasks, directory, record, client, retries, progress, "estimate")
    finally:
        close_client(client, owned)


def find(inputs, directory, finder="deeplens_lsst_g", **kwargs):
    """`estimate` with the lens finder (``p_lens`` and ``candidate`` per cutout); same options."""
    return estimate(finder, inputs, directory, **kwargs)
