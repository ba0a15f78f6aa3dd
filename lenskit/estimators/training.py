"""
Training with on-the-fly simulation, checkpoints and resume.

Every step draws a new batch from the `~lenskit.Simulator` (new lenses,
sources and observational effects, as in Hezaveh et al. 2017), optionally in
background worker processes.  A checkpoint (network, optimiser, step, history)
is written atomically to ASDF every ``checkpoint_every`` steps, and ``fit``
started again with the same checkpoint path resumes from it, so an
interruption loses at most the steps since the last checkpoint.
"""

import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from lenskit.core.files import atomic_open, check_output_path
from lenskit.core.validation import check_int, check_number

__all__ = ["train", "SimulatedBatches", "evaluate", "init_ddp"]


class SimulatedBatches(IterableDataset):
    """Endless simulated batches; each worker process (and each data-parallel rank) gets its own seed."""

    def __init__(self, simulator, batch_size, targets, seed, rank=0):
        self.simulator = simulator
        self.batch_size = int(batch_size)
        self.targets = tuple(targets)
        self.seed = int(seed)
        self.rank = int(rank)

    def seed_key(self, worker=0):
        """The NumPy seed of loader worker ``worker`` on this rank (rank 0 keeps the single-process stream)."""
        return [self.seed, worker] if self.rank == 0 else [self.seed, worker, self.rank]

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = 0 if info is None else info.id
        if info is not None:
            torch.set_num_threads(1)
        self.simulator.rng = np.random.default_rng(self.seed_key(wid))
        for images, y, masks in self.simulator.stream(self.batch_size, device="cpu", targets=self.targets):
            yield images, y, masks if masks is not None else torch.zeros(0)


def _state_to_arrays(state):
    """Optimiser state_dict -> flat dict of arrays + JSON-like meta (no pickle)."""
    arrays, meta = {}, {"param_groups": state["param_groups"], "keys": {}}
    for pid, st in state["state"].items():
        for k, v in st.items():
            key = f"{pid}.{k}"
            arrays[key] = v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v)
            meta["keys"][key] = [int(pid), k, bool(torch.is_tensor(v))]
    return arrays, meta


def _arrays_to_state(arrays, meta):
    state = {}
    for key, (pid, k, is_t) in meta["keys"].items():
        a = np.asarray(arrays[key])
        state.setdefault(int(pid), {})[k] = torch.as_tensor(a) if is_t else a.item()
    groups = meta["param_groups"]
    for g in groups:
        g["params"] = [int(p) for p in g["params"]]
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    return {"state": state, "param_groups": groups}


def write_checkpoint(path, key, network, optimizer, extra):
    """Write a network's and optimiser's state (plain arrays, no pickle) plus ``extra`` to ASDF, atomically."""
    import asdf

    model = {k: v.detach().cpu().numpy() for k, v in network.state_dict().items()}
    opt_arrays, opt_meta = _state_to_arrays(optimizer.state_dict())
    tree = {key: {"model": model, "optimizer": opt_arrays, "optimizer_meta": opt_meta, **extra}}
    with atomic_open(path, "wb", overwrite=True, name="checkpoint") as f:
        asdf.AsdfFile(tree).write_to(f)


def save_checkpoint(path, estimator, optimizer, step, history, config):
    write_checkpoint(path, "lenskit_checkpoint", estimator.network, optimizer,
                     {"step": int(step), "history": history, "config": config,
                      "targets": estimator.spec.to_config()})


def load_checkpoint(path, estimator, optimizer):
    import asdf

    from lenskit.core.exceptions import LenskitFileError
    from lenskit.estimators.targets import TargetSpec

    try:
        with asdf.open(path, lazy_load=False, memmap=False) as af:
            ck = af.tree["lenskit_checkpoint"]
            model = {k: torch.as_tensor(np.array(v)) for k, v in ck["model"].items()}
            opt = _arrays_to_state({k: np.array(v) for k, v in ck["optimizer"].items()}, dict(ck["optimizer_meta"]))
            step, history = int(ck["step"]), list(ck["history"])
            spec = TargetSpec.from_config(dict(ck["targets"]))
    except Exception as exc:
        raise LenskitFileError(f"checkpoint {path} could not be read: {type(exc).__name__}: {exc}") from exc
    estimator.network.load_state_dict(model)
    estimator.spec = spec
    optimizer.load_state_dict(opt)
    return step, history


def init_ddp(backend=None):
    """
    Join the process group that ``torchrun`` describes in the environment, for `train` with ``ddp=True``.

    Parameters
    ----------
    backend : {"gloo", "nccl", "mpi"}, optional
        Default nccl where CUDA is available, gloo otherwise.  On CPUs each
        rank gets an equal share of the node's cores as torch threads.

    Returns
    -------
    (rank, world size, device)
    """
    import torch.distributed as dist

    need = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    if any(k not in os.environ for k in need):
        raise ValueError("--ddp needs the environment torchrun sets (RANK, WORLD_SIZE, ...): launch with "
                         "`torchrun --nproc_per_node N -m lenskit train --ddp ...`")
    cuda = torch.cuda.is_available()
    backend = backend or ("nccl" if cuda else "gloo")
    if backend not in ("gloo", "nccl", "mpi"):
        raise ValueError(f"--backend must be gloo, nccl or mpi; got {backend!r}")
    local = int(os.environ["LOCAL_RANK"])
    device = f"cuda:{local}" if cuda and backend == "nccl" else "cpu"
    if device != "cpu":
        torch.cuda.set_device(local)
    else:
        # share the cores between the ranks on this node
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // per_node))
    dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), device


@torch.no_grad()
def evaluate(estimator, dataset, batch_size=128):
    """Metrics of an estimator on a `~lenskit.LensDataset`: RMS, bias, 68% error and coverage per target."""
    from lenskit.estimators.metrics import summary

    est = estimator.predict(dataset, batch_size=batch_size)
    return summary(est, dataset.params)


def train(estimator, simulator, steps=1000, batch_size=64, lr=1e-3, min_lr=None, weight_decay=0.0,
          validation=None, checkpoint=None, checkpoint_every=200, progress=True, workers=0, seed=0,
          standardize_samples=None, log=None, channels_last=True, time_limit=None, warmup=200, ddp=None):
    """
    Train ``estimator`` on batches drawn from ``simulator``.

    Parameters
    ----------
    estimator : `~lenskit.estimators.regression.CNNEstimator`
    simulator : `~lenskit.Simulator`
    steps : int
        Total optimisation steps (including those done before a resume).
    batch_size : int
    lr, min_lr : float
        Adam learning rate, decayed by a cosine to ``min_lr`` (default lr / 30).
    validation : `~lenskit.LensDataset`, optional
        Held-out systems (simulate them with ``split="validation"``) evaluated at
        every checkpoint.
    checkpoint : path, optional
        Checkpoint file; when it exists training resumes from it.
    checkpoint_every : int
    workers : int
        Background simulation processes (0: simulate in this process).
    seed : int
        Seed of the training stream (worker w of a run resumed at step s uses
        ``[seed, s, w]``).
    warmup : int
        Steps of linear learning-rate warm-up.  Default 200.
    standardize_samples : int, optional
        Systems simulated to standardise the targets before a fresh start
        (their means and spreads under the simulator's prior and selection).
        Default ``min(2048, max(256, steps * batch_size))``.
    time_limit : float, optional
        Stop (after writing a checkpoint) once this many seconds have passed;
        the learning rate then follows whichever of step and time is further along.
    ddp : bool, optional
        Data-parallel training with `torch.nn.parallel.DistributedDataParallel`
        over the ranks of the initialised default process group (launch with
        ``torchrun``; see ``lenskit train --ddp``).  Default: whenever a process
        group is initialised.  ``batch_size`` is per rank; every rank simulates
        its own batches (seed ``[seed, worker, rank]``); rank 0 alone
        standardises the targets (broadcast to the others), evaluates the
        validation set, logs and writes checkpoints; all ranks stop together.

    Returns
    -------
    list of dict
        The history: step, training loss, time and validation metrics.
    """
    import torch.distributed as dist

    from lenskit.estimators.targets import TargetSpec, gaussian_nll

    # every argument is checked before anything is simulated, trained or written
    steps = check_int("steps", steps, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    lr = check_number("lr", lr, low=0, low_open=True)
    min_lr = check_number("min_lr", min_lr, low=0, allow_none=True)
    weight_decay = check_number("weight_decay", weight_decay, low=0)
    checkpoint_every = check_int("checkpoint_every", checkpoint_every, minimum=1)
    workers = check_int("workers", workers, minimum=0)
    seed = check_int("seed", seed, minimum=0)
    warmup = check_int("warmup", warmup, minimum=0)
    standardize_samples = check_int("standardize_samples", standardize_samples, minimum=1, allow_none=True)
    time_limit = check_number("time_limit", time_limit, low=0, low_open=True, allow_none=True)
    if checkpoint is not None:
        check_output_path(checkpoint, overwrite=True, name="checkpoint")
    if validation is not None and not hasattr(validation, "params"):
        raise TypeError(f"validation must be a LensDataset; got {type(validation).__name__}")

    net = estimator.network
    dev = estimator.device
    if ddp is None:
        ddp = dist.is_available() and dist.is_initialized()
    if ddp and not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("ddp=True needs an initialised torch.distributed process group (launch with torchrun "
                           "and call torch.distributed.init_process_group first, as `lenskit train --ddp` does)")
    rank, world = (dist.get_rank(), dist.get_world_size()) if ddp else (0, 1)
    main = rank == 0
    if tuple(simulator.instrument.shape) != estimator.in_shape[1:] or len(simulator.instrument.bands) != estimator.in_shape[0]:
        raise ValueError(f"the simulator makes ({len(simulator.instrument.bands)}, {simulator.instrument.shape[0]}, "
                         f"{simulator.instrument.shape[1]}) stamps; the estimator expects {estimator.in_shape}")
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    min_lr = lr / 30 if min_lr is None else min_lr
    step, history = 0, []
    if checkpoint is not None and Path(checkpoint).exists():
        step, history = load_checkpoint(checkpoint, estimator, opt)
    elif np.allclose(estimator.spec.mean, 0) and np.allclose(estimator.spec.std, 1):
        # standardise targets with the simulator's prior (on rank 0, broadcast to the others)
        stats = torch.zeros(2, estimator.spec.k, dtype=torch.float64)
        if main:
            if standardize_samples is None:  # enough for the prior's moments; no more than a short run sees
                standardize_samples = min(2048, max(256, int(steps) * int(batch_size)))
            rows = [y for _, y, _ in simulator.stream(min(standardize_samples, 512), targets=estimator.targets,
                                                      steps=max(1, standardize_samples // 512))]
            y = torch.cat(rows)
            spec0 = TargetSpec(estimator.targets, spin=estimator.spec.spin)
            z = spec0.to_network(y).numpy()
            stats = torch.as_tensor(np.stack([z.mean(0), np.maximum(z.std(0), 1e-3)]), dtype=torch.float64)
        if ddp:
            stats = stats.to(dev)
            dist.broadcast(stats, 0)
            stats = stats.cpu()
        estimator.spec = TargetSpec(estimator.targets, spin=estimator.spec.spin, mean=stats[0].numpy(),
                                    std=stats[1].numpy())
    if channels_last:
        net.to(memory_format=torch.channels_last)
    config = {"steps": int(steps), "batch_size": int(batch_size), "lr": lr, "min_lr": min_lr, "workers": int(workers),
              "seed": int(seed), "simulator": simulator.config}
    data = SimulatedBatches(simulator, batch_size, estimator.targets, seed=hash((seed, step)) % (2**31), rank=rank)
    model = net
    if ddp:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)
        keys = [None] * world
        dist.all_gather_object(keys, data.seed_key(0))
        config["ddp"] = {"world_size": world, "backend": dist.get_backend(), "batch_size_per_rank": int(batch_size),
                         "global_batch_size": int(batch_size) * world, "rank_seed_keys": keys}
    loader = DataLoader(data, batch_size=None, num_workers=int(workers), persistent_workers=False,
                        prefetch_factor=2 if workers else None)
    bar = None
    if progress and main:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=step, desc="training", unit="step")
    t0 = time.time()
    seen = 0
    running = None
    it = iter(loader)
    try:
        while step < steps:
            images, y, masks = next(it)
            images = images.to(dev)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            mask = masks.to(dev) if masks.numel() else None
            elapsed = time.time() - t0
            if ddp and time_limit is not None:  # rank 0's clock, so all ranks anneal and stop together
                clock = torch.tensor([elapsed], dtype=torch.float64, device=dev)
                dist.broadcast(clock, 0)
                elapsed = float(clock)
            progress_frac = step / max(steps, 1)
            if time_limit is not None:  # anneal by wall time too, so a time-limited run ends annealed
                progress_frac = max(progress_frac, elapsed / time_limit)
            cos = 0.5 * (1 + math.cos(math.pi * min(progress_frac, 1.0)))
            # linear warm-up: Adam's first full-size steps on wide layers throw the outputs far off
            warm = min(1.0, (step + 1) / max(warmup, 1))
            for g in opt.param_groups:
                g["lr"] = (min_lr + (lr - min_lr) * cos) * warm
            net.train()
            out = model(images, mask)
            loss = gaussian_nll(out, estimator.spec.to_network(y.to(dev)), estimator.spec.k, estimator.spec,
                                estimator.uncertainty)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            opt.step()
            step += 1
            seen += len(images)
            lv = float(loss.detach())
            running = lv if running is None else 0.98 * running + 0.02 * lv
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{running:.3f}")
            done = step >= steps or (time_limit is not None and elapsed > time_limit)
            if (step % checkpoint_every == 0 or done) and main:
                rec = {"step": step, "loss": running, "seconds": time.time() - t0, "images": seen * world}
                if validation is not None:
                    m = evaluate(estimator, validation)
                    rec["validation"] = m
                history.append(rec)
                if log is not None:
                    log(rec)
                if checkpoint is not None:
                    estimator.training = {**config, "completed_steps": step, "images_seen_since_start": seen * world}
                    save_checkpoint(checkpoint, estimator, opt, step, history, config)
            if done:
                break
    finally:
        if bar is not None:
            bar.close()
        del it
    net.to(memory_format=torch.contiguous_format)
    if ddp:
        # the ranks must hold the same weights: compare checksums of the parameters (batch-norm running
        # statistics are rank 0's, broadcast at every forward pass; the saved model is rank 0's)
        flat = torch.cat([t.detach().double().reshape(-1) for t in net.parameters()])
        weights = (torch.arange(len(flat), device=flat.device) % 7 + 1).double()
        sums = torch.stack([flat.sum(), (flat * weights).sum()])
        gathered = [torch.zeros_like(sums) for _ in range(world)]
        dist.all_gather(gathered, sums)
        config["ddp"]["weights_identical_on_all_ranks"] = bool(all(torch.equal(g, gathered[0]) for g in gathered))
        if not config["ddp"]["weights_identical_on_all_ranks"]:
            raise RuntimeError("data-parallel ranks ended with different weights")
    estimator.training = {**config, "completed_steps": step, "history": history[-5:]}
    return history
