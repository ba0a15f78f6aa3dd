"""
The one training loop of lenskit's estimators: streams or fixed datasets, checkpoints, resume, DDP.

Every network lenskit trains (the regression CNNs and the lens finder) goes
through `TrainingLoop`:

* batches come from a `SimulatedBatches` stream (Hezaveh et al.: a new
  realisation every step, optionally simulated in background worker
  processes) or from `FixedBatches` (epochs over a fixed labelled set, as
  Lanusse et al. train their finder), each per data-parallel rank;
* the learning rate follows a schedule of the step and of the fraction of the
  run done (by steps or by wall time, whichever is further along);
* every ``record_every`` steps (and at the end) a record is added to the
  history, the caller's evaluation is run, and a `Checkpoint` is written
  atomically (network, optimiser, step, history: plain arrays, no pickle);
  a loop started again with the same checkpoint path resumes from it, so an
  interruption loses at most the steps since the last checkpoint;
* with ``ddp`` the network is wrapped in
  `~torch.nn.parallel.DistributedDataParallel`; rank 0 alone evaluates, logs
  and writes checkpoints, and all ranks stop together.

`train` (the regression estimators' ``fit``) and
`~lenskit.estimators.finder.DeepLensFinder.fit` are thin set-ups of this loop.
"""

import gc
import math
import os
import time
import warnings
from pathlib import Path

import asdf
import astropy.units as u
import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, IterableDataset
from tqdm.auto import tqdm

from lenskit.core.exceptions import LenskitFileError
from lenskit.core.files import atomic_open, check_output_path
from lenskit.core.provenance import array_checksum
from lenskit.core.validation import check_int, check_number
from lenskit.estimators.inputs import as_masks
from lenskit.estimators.metrics import summary
from lenskit.estimators.targets import TargetSpec, gaussian_nll
from lenskit.estimators.tta import DIHEDRAL, INVARIANT, POSITION_PAIRS, SPIN2_PAIRS, _matrix, _spin2_matrix

__all__ = ["train", "TrainingLoop", "Checkpoint", "SimulatedBatches", "FixedBatches", "ShiftPairs", "BankMix",
           "evaluate", "init_ddp", "write_checkpoint", "cosine_schedule", "step_schedule", "native_bfloat16",
           "transform_targets"]


# -- batches ------------------------------------------------------------------------------------------------------
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

    def batches(self, start_step, workers=0):
        """Iterator of ``(images, targets, masks)`` (masks empty when there are none)."""
        loader = DataLoader(self, batch_size=None, num_workers=int(workers), persistent_workers=False,
                            prefetch_factor=2 if workers else None)
        return iter(loader)


class FixedBatches:
    """
    Epochs over a fixed set of ``(inputs, labels, masks)`` tensors, in a new order every epoch.

    Epoch ``e`` is shuffled by ``default_rng([seed, e])`` and augmented with a
    torch generator seeded the same way, so a run resumed at any step sees the
    batches the uninterrupted run would have.  Data-parallel rank ``r`` of
    ``world`` takes every ``world``-th batch, all ranks the same number.  Batches of fewer than
    ``min_batch`` (batch normalisation needs two) are skipped.

    Parameters
    ----------
    x, y : `torch.Tensor`
    masks : `torch.Tensor` or None
    batch_size : int
    seed : int
    augment : callable, optional
        ``augment(batch, generator) -> batch`` (the masks, when present,
        are stacked onto the images as extra channels and split back after).
    """

    def __init__(self, x, y, masks, batch_size, seed=0, augment=None, rank=0, world=1, min_batch=2):
        self.x, self.y, self.masks = x, y, masks
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.augment = augment
        self.rank, self.world = int(rank), int(world)
        starts = [i for i in range(0, len(y), self.batch_size) if min(self.batch_size, len(y) - i) >= min_batch]
        # every rank takes the same number of batches (DDP steps together); a remainder of fewer than
        # ``world`` batches waits for the next epoch's order
        self.per_epoch = max(1, len(starts) // self.world)
        self._starts = starts

    def batches(self, start_step, workers=0):
        epoch = int(start_step) // self.per_epoch
        while True:
            order = torch.as_tensor(np.random.default_rng([self.seed, epoch]).permutation(len(self.y)))
            g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0]))
            mine = self._starts[self.rank::self.world][:self.per_epoch]
            for k, i in enumerate(mine):
                idx = order[i:i + self.batch_size]
                xb = self.x[idx]
                mb = None if self.masks is None else self.masks[idx]
                if self.augment is not None:  # drawn for every batch, so a resumed epoch replays the same ones
                    if mb is not None:  # augment the mask alongside (nearest)
                        both = self.augment(torch.cat([xb, mb.to(xb.dtype)], 1), g)
                        xb, mb = both[:, :xb.shape[1]], both[:, xb.shape[1]:] > 0.5
                    else:
                        xb = self.augment(xb, g)
                if epoch * self.per_epoch + k < start_step:
                    continue
                yield xb, self.y[idx], (mb if mb is not None else torch.zeros(0))
            epoch += 1


def transform_targets(y, which, targets):
    """
    The targets ``y`` (n, k), named ``targets``, of images transformed by ``DIHEDRAL[which[i]]``: positions
    and spin-2 pairs change with the pixel grid's symmetry, the rest (`~lenskit.estimators.tta.INVARIANT`)
    stays.
    """
    out = y.clone()
    for j, t in enumerate(DIHEDRAL):
        rows = torch.as_tensor(np.flatnonzero(which == j))
        if not len(rows):
            continue
        # r' = M r for positions; a spin-2 pair measured on the transformed image maps back by S, so e' = S.T e
        for pairs, m in ((POSITION_PAIRS, _matrix(t)), (SPIN2_PAIRS, _spin2_matrix(t).T)):
            m = torch.as_tensor(m, dtype=y.dtype)
            for a, b in pairs:
                if a in targets:
                    idx = [targets.index(a), targets.index(b)]
                    out[rows[:, None], torch.as_tensor(idx)[None, :]] = y[rows][:, idx] @ m.T
    return out


def _symmetric_targets(targets, what):
    """Refuse targets whose change under rotations and mirrors of the stamp is not known."""
    paired = {name for pair in POSITION_PAIRS + SPIN2_PAIRS for name in pair}
    unknown = [t for t in targets if t not in INVARIANT and t not in paired]
    halves = [pair for pair in POSITION_PAIRS + SPIN2_PAIRS if (pair[0] in targets) != (pair[1] in targets)]
    if unknown or halves:
        raise ValueError(f"{what}: how the targets {unknown or halves} change under rotations and mirrors is not "
                         "known (positions and spin-2 quantities come in pairs)")


class ShiftPairs:
    """
    Batches paired with copies of themselves moved by a few pixels (and, optionally, rotated or mirrored), and the
    loss that asks both to agree.

    Each image of a batch gets a copy rolled by a random whole number of
    pixels, up to ``max_shift`` along each axis (the stamp's far edge, sky in
    a lens stamp, wraps round), with its centre targets (``x0``, ``y0``)
    moved by as many pixels times ``pixel_scale`` (``x`` runs along columns,
    ``y`` along rows).  The loss is the base loss on originals and copies
    together plus ``weight`` times the squared difference, in standardised
    network units, of the two estimates of every target that a move of the
    stamp leaves unchanged (the Einstein radius, the ellipticity ...).  A
    network trained only on lenses near the stamp's centre learns that
    they are there, and its Einstein radius moves when a real cutout is
    centred differently; this term teaches it not to.

    With ``symmetries``, each copy is then also transformed by one of the
    eight symmetries of the square pixel grid (`lenskit.estimators.tta.DIHEDRAL`,
    drawn at random: rotations by multiples of 90 degrees and mirrors), its
    centre and spin-2 targets (ellipticity, shear) transformed with it
    exactly, and the agreement term covers the targets that neither a move
    nor a rotation changes (`lenskit.estimators.tta.INVARIANT`: the Einstein
    radius ...).  A network trained with random orientations still answers
    differently on the eight transformed copies of one image (what
    ``predict(tta=8)`` averages away at eight times the cost); this term
    teaches a single pass to agree with itself.

    Parameters
    ----------
    targets : sequence of str
    pixel_scale : float
        Arcsec per pixel.
    max_shift : int
        Largest move in pixels along each axis (>= 1; >= 0 with ``symmetries``).
    weight : float
        Weight of the agreement term.
    seed : int
        The moves of a run that starts (or resumes) at step ``s`` are drawn with the seed ``[seed, s]``.
    symmetries : bool
        Also rotate or mirror every copy (square stamps only).
    """

    POSITIONS = {"x0": 1, "y0": 0}  # target -> image axis (0 rows, 1 columns) it moves along

    def __init__(self, targets, pixel_scale, max_shift=4, weight=1.0, seed=0, symmetries=False):
        self.targets = tuple(targets)
        self.pixel_scale = check_number("pixel_scale", pixel_scale, low=0, low_open=True)
        if not isinstance(symmetries, (bool, np.bool_)):
            raise TypeError(f"symmetries must be True or False; got {symmetries!r}")
        self.symmetries = bool(symmetries)
        self.max_shift = check_int("max_shift", max_shift, minimum=0 if self.symmetries else 1)
        self.weight = check_number("weight", weight, low=0)
        if self.symmetries:
            _symmetric_targets(self.targets, "ShiftPairs(symmetries=True)")
            self.invariant = [i for i, t in enumerate(self.targets) if t in INVARIANT]
            if not self.invariant:
                raise ValueError(f"ShiftPairs: none of the targets {self.targets} is unchanged by a move, rotation "
                                 "or mirror of the stamp")
        else:
            self.invariant = [i for i, t in enumerate(self.targets) if t not in self.POSITIONS]
            if not self.invariant:
                raise ValueError(f"ShiftPairs: none of the targets {self.targets} is unchanged by a move of the stamp")
        self.seed = check_int("seed", seed, minimum=0)
        self.rng = np.random.default_rng([self.seed, 0])

    def _transform_targets(self, y, which):
        """The targets ``y`` (n, k) of images transformed by ``DIHEDRAL[which[i]]``: positions and spin-2 pairs."""
        return transform_targets(y, which, self.targets)

    @staticmethod
    def _transform_image(im, t):
        transpose, fx, fy = t
        if transpose:
            im = im.transpose(-1, -2)
        if fx:
            im = im.flip(-1)
        if fy:
            im = im.flip(-2)
        return im

    def pair(self, images, y, masks, *conditions):
        """
        ``(images, targets, masks[, conditions])`` of n systems -> the same of 2n: the originals, then their
        moved (rotated, mirrored) copies (whose conditions are the originals').
        """
        n = images.shape[0]
        if self.symmetries and images.shape[-1] != images.shape[-2]:
            raise ValueError(f"ShiftPairs(symmetries=True) needs square stamps; got {tuple(images.shape[-2:])}")
        shifts = self.rng.integers(-self.max_shift, self.max_shift + 1, size=(n, 2))
        which = self.rng.integers(0, len(DIHEDRAL), size=n) if self.symmetries else np.zeros(n, int)

        def copy(a, i):
            dy, dx = shifts[i]
            return self._transform_image(torch.roll(a, (int(dy), int(dx)), dims=(-2, -1)), DIHEDRAL[which[i]])

        moved = torch.stack([copy(im, i) for i, im in enumerate(images)])
        y2 = y.clone()
        for name, axis in self.POSITIONS.items():
            if name in self.targets:
                i = self.targets.index(name)
                y2[:, i] += torch.as_tensor(shifts[:, axis] * self.pixel_scale, dtype=y.dtype)
        if self.symmetries:
            y2 = self._transform_targets(y2, which)
        if masks.numel():
            masks = torch.cat([masks, torch.stack([copy(m, i) for i, m in enumerate(masks)])])
        return (torch.cat([images, moved]), torch.cat([y, y2]), masks, *(torch.cat([c, c]) for c in conditions))

    def batches(self, batches, start_step=0):
        """Pair every batch of an iterator of ``(images, targets, masks[, conditions])`` (see `pair`)."""
        self.rng = np.random.default_rng([self.seed, int(start_step)])
        for batch in batches:
            yield self.pair(*batch)

    def loss(self, base):
        """The loss of paired batches: ``base(out, y)`` plus ``weight`` times the estimates' disagreement."""
        inv = self.invariant

        def loss(out, y):
            n = out.shape[0] // 2
            agree = ((out[:n, inv] - out[n:2 * n, inv]) ** 2).sum(1).mean()
            return base(out, y) + self.weight * agree

        return loss


class BankMix:
    """
    Simulated batches with some of their systems replaced by systems drawn from a fixed bank.

    What cannot be simulated at the rate training consumes -- arcs that went through a real lens-light fit,
    as `lenskit.modelling.model_lens` removes it (a few seconds a lens: ``benchmarks/deblended_bank.py``) --
    can still be learnt from alongside the stream: in every batch the last ``round(fraction * n)`` systems
    are replaced by systems drawn at random from the bank, each rotated or mirrored by one of the eight
    symmetries of the square pixel grid (`lenskit.estimators.tta.DIHEDRAL`, its centre and spin-2 targets
    transformed exactly), so that a bank of a few thousand lenses is seen in eight orientations.

    Parameters
    ----------
    images : array-like (N, bands, H, W)
        The network's inputs, as `~lenskit.estimators.cnn.CNNEstimator.predict` gives them to it (masked
        pixels 0).
    targets : array-like (N, k)
        The true values of ``names``, in table units (arcsec for lengths).
    names : sequence of str
        The targets' names, in the order of the estimator's ``targets``.
    masks : array-like of bool (N, bands, H, W) or (N, H, W), optional
        True where masked.
    fraction : float
        Fraction of every batch drawn from the bank (0 < fraction < 1).
    seed : int
        The draws of a run that starts (or resumes) at step ``s`` are seeded with ``[seed, s]``.
    """

    def __init__(self, images, targets, names, masks=None, fraction=0.25, seed=0):
        self.names = tuple(names)
        _symmetric_targets(self.names, "BankMix")
        x = np.asarray(images, dtype=np.float32)
        if x.ndim != 4 or x.shape[0] < 1 or x.shape[-1] != x.shape[-2]:
            raise ValueError(f"bank images must be shaped (N, bands, H, W) with square stamps and N >= 1; got "
                             f"{x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("bank images must be finite (masked pixels are 0 in a network's inputs)")
        y = np.asarray(targets, dtype=np.float64)
        if y.shape != (x.shape[0], len(self.names)) or not np.all(np.isfinite(y)):
            raise ValueError(f"bank targets must be finite and shaped ({x.shape[0]}, {len(self.names)}) for "
                             f"{list(self.names)}; got {y.shape}")
        m = None if masks is None else as_masks(masks, x.shape, "bank masks")
        self.fraction = check_number("fraction", fraction, low=0, high=1, low_open=True, high_open=True)
        self.seed = check_int("seed", seed, minimum=0)
        self.images = torch.from_numpy(x)
        self.targets = torch.from_numpy(y)
        self.masks = None if m is None or not m.any() else torch.from_numpy(np.array(m))  # (a writable copy)
        self.rng = np.random.default_rng([self.seed, 0])

    def __len__(self):
        return len(self.targets)

    def mix(self, images, y, masks, *conditions):
        """``(images, targets, masks)`` of a simulated batch with its last systems drawn from the bank."""
        if conditions:
            raise ValueError("BankMix: the bank has no conditions (an estimator that reads them cannot use it)")
        n = images.shape[0]
        k = int(round(self.fraction * n))
        if k == 0:
            return images, y, masks
        if tuple(images.shape[1:]) != tuple(self.images.shape[1:]):
            raise ValueError(f"the bank's stamps are {tuple(self.images.shape[1:])}; the batches' "
                             f"{tuple(images.shape[1:])}")
        pick = self.rng.integers(0, len(self), size=k)
        which = self.rng.integers(0, len(DIHEDRAL), size=k)
        turn = ShiftPairs._transform_image
        bx = torch.stack([turn(self.images[i], DIHEDRAL[w]) for i, w in zip(pick, which)])
        by = transform_targets(self.targets[torch.as_tensor(pick)].to(y.dtype), which, self.names)
        images = torch.cat([images[:n - k], bx.to(images.dtype)])
        y = torch.cat([y[:n - k], by])
        if masks.numel() or self.masks is not None:
            sim_m = masks if masks.numel() else torch.zeros(images.shape, dtype=torch.bool)
            bank_m = (torch.stack([turn(self.masks[i], DIHEDRAL[w]) for i, w in zip(pick, which)])
                      if self.masks is not None else torch.zeros(bx.shape, dtype=torch.bool))
            masks = torch.cat([sim_m[:n - k].to(torch.bool), bank_m])
        return images, y, masks

    def batches(self, batches, start_step=0):
        """Mix every batch of an iterator of ``(images, targets, masks)`` (see `mix`)."""
        self.rng = np.random.default_rng([self.seed, int(start_step)])
        for batch in batches:
            yield self.mix(*batch)


# -- schedules ----------------------------------------------------------------------------------------------------
def cosine_schedule(lr, min_lr, warmup=0):
    """Cosine decay from ``lr`` to ``min_lr`` over the run, after a linear warm-up of ``warmup`` steps."""
    def at(step, frac):
        cos = 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        # linear warm-up: Adam's first full-size steps on wide layers throw the outputs far off
        warm = min(1.0, (step + 1) / max(warmup, 1))
        return (min_lr + (lr - min_lr) * cos) * warm
    return at


def step_schedule(lr, drops, total):
    """``lr`` divided by 10 at each fraction ``d / total`` of the run in ``drops`` (Lanusse et al.: epochs 40, 80)."""
    def at(step, frac):
        return lr * 0.1 ** sum(frac * total >= d for d in drops)
    return at


# -- checkpoints ------------------------------------------------------------------------------------------------
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
    model = {k: v.detach().cpu().numpy() for k, v in network.state_dict().items()}
    opt_arrays, opt_meta = _state_to_arrays(optimizer.state_dict())
    tree = {key: {"model": model, "optimizer": opt_arrays, "optimizer_meta": opt_meta, **extra}}
    with atomic_open(path, "wb", overwrite=True, name="checkpoint") as f:
        asdf.AsdfFile(tree).write_to(f)


class Checkpoint:
    """
    One checkpoint file: network and optimiser state, the step reached, the history and the caller's ``extra``.

    Reads the finder checkpoints of lenskit 0.x too (``lenskit_finder_checkpoint``,
    positioned by epoch).
    """

    KEY = "lenskit_checkpoint"

    def __init__(self, path):
        self.path = Path(path)

    def exists(self):
        return self.path.exists()

    def save(self, network, optimizer, step, history, extra=None):
        write_checkpoint(self.path, self.KEY, network, optimizer,
                         {"step": int(step), "history": list(history), **(extra or {})})

    def load(self, network, optimizer, steps_per_epoch=None):
        """Restore ``network`` and ``optimizer``; returns ``(step, history, extra)``."""
        try:
            with asdf.open(self.path, lazy_load=False, memmap=False) as af:
                key = self.KEY if self.KEY in af.tree else "lenskit_finder_checkpoint"
                ck = af.tree[key]
                model = {k: torch.as_tensor(np.array(v)) for k, v in ck["model"].items()}
                opt = _arrays_to_state({k: np.array(v) for k, v in ck["optimizer"].items()},
                                       dict(ck["optimizer_meta"]))
                if "step" in ck:
                    step = int(ck["step"])
                else:  # an epoch-positioned finder checkpoint
                    step = int(ck["epoch"]) * int(steps_per_epoch or 1)
                history = [dict(h) for h in ck["history"]]
                extra = {k: v for k, v in ck.items()
                         if k not in ("model", "optimizer", "optimizer_meta", "step", "epoch", "history")}
                extra = _plain(extra)
        except Exception as exc:
            raise LenskitFileError(f"checkpoint {self.path} could not be read: {type(exc).__name__}: {exc}") from exc
        network.load_state_dict(model)
        optimizer.load_state_dict(opt)
        return step, history, extra


def _plain(tree):
    """ASDF tree nodes -> plain dicts and lists."""
    if isinstance(tree, dict) or hasattr(tree, "items"):
        return {k: _plain(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_plain(v) for v in tree]
    return tree


# -- data parallelism -----------------------------------------------------------------------------------------------
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


def ddp_context(ddp):
    """``(ddp, rank, world)`` for a ``ddp`` argument (None: whether a process group is initialised)."""
    ready = dist.is_available() and dist.is_initialized()
    if ddp is None:
        ddp = ready
    if ddp and not ready:
        raise RuntimeError("ddp=True needs an initialised torch.distributed process group (launch with torchrun "
                           "and call torch.distributed.init_process_group first, as `lenskit train --ddp` does)")
    return (True, dist.get_rank(), dist.get_world_size()) if ddp else (False, 0, 1)


# -- the loop ---------------------------------------------------------------------------------------------------------
class TrainingLoop:
    """
    Optimise a network on a stream of batches: schedule, records, checkpoints, resume, data parallelism.

    Parameters
    ----------
    network : `torch.nn.Module`
        Called as ``network(images, masks)``.
    optimizer : `torch.optim.Optimizer`
    loss : callable
        ``loss(outputs, targets) -> scalar tensor`` (targets already on the device).
    steps : int
        Total optimisation steps of the run (including those before a resume).
    schedule : callable
        ``schedule(step, fraction) -> learning rate``; the fraction is the
        larger of ``step / steps`` and elapsed / ``time_limit``.
    record_every : int
        Steps between records, evaluations and checkpoints.
    device : `torch.device`
    checkpoint : `Checkpoint`, optional
    time_limit : float, optional
        Stop (after a record and a checkpoint) once this many seconds have passed.
    clip_grad : float, optional
        Clip the gradient norm.
    channels_last : bool
        Train in the channels-last memory format (10-50% faster for the larger networks on CPUs).
    autocast : torch.dtype, optional
        Mixed precision (e.g. ``torch.bfloat16``); weights and the loss stay float32.
    evaluate : callable, optional
        ``evaluate(step) -> dict`` merged into each record (rank 0 only).
    extra : callable, optional
        ``extra(step, history) -> dict`` stored in each checkpoint beside the state.
    ddp : bool, optional
        Data parallelism over the initialised process group (default: whenever one is initialised).
    progress : bool
    log : callable, optional
        Called with each record.
    unit : str
        The progress bar's unit name.
    """

    def __init__(self, network, optimizer, loss, *, steps, schedule, record_every, device, checkpoint=None,
                 time_limit=None, clip_grad=None, channels_last=True, autocast=None, evaluate=None, extra=None,
                 ddp=None, progress=True, log=None):
        self.network = network
        self.optimizer = optimizer
        self.loss = loss
        self.steps = int(steps)
        self.schedule = schedule
        self.record_every = int(record_every)
        self.device = torch.device(device)
        self.checkpoint = checkpoint
        self.time_limit = time_limit
        self.clip_grad = clip_grad
        self.channels_last = bool(channels_last)
        self.autocast = autocast
        if autocast == torch.bfloat16 and self.device.type == "cpu" and not native_bfloat16():
            warnings.warn("bfloat16 training on a CPU without native bfloat16 (AVX-512 BF16 or AMX): oneDNN "
                          "emulates it and a step is several times slower than in float32", stacklevel=3)
        self.evaluate = evaluate
        self.extra = extra
        self.ddp, self.rank, self.world = ddp_context(ddp)
        self.progress = progress
        self.log = log
        self.step = 0
        self.history = []
        self.resumed_extra = {}
        self.images_seen = 0

    @property
    def main(self):
        """Whether this process is rank 0 (the one that evaluates, logs and writes)."""
        return self.rank == 0

    def resume(self, steps_per_epoch=None):
        """Restore from the checkpoint when it exists; returns whether it did."""
        if self.checkpoint is None or not self.checkpoint.exists():
            return False
        self.step, self.history, self.resumed_extra = self.checkpoint.load(self.network, self.optimizer,
                                                                            steps_per_epoch)
        return True

    def _elapsed(self, t0):
        elapsed = time.time() - t0
        if self.ddp and self.time_limit is not None:  # rank 0's clock, so all ranks anneal and stop together
            clock = torch.tensor([elapsed], dtype=torch.float64, device=self.device)
            dist.broadcast(clock, 0)
            elapsed = float(clock)
        return elapsed

    def run(self, batches):
        """
        Train from the current step to ``steps`` (or the time limit) on ``batches``.

        ``batches`` is an iterator of ``(images, targets, masks)`` tensors
        (``masks`` empty when there are none), or of ``(images, targets, masks,
        conditions)`` for a network that reads per-image conditions
        (``network(images, masks, conditions)``).  Returns the history.
        """
        net = self.network
        if self.channels_last:
            net.to(memory_format=torch.channels_last)
        model = net
        if self.ddp:
            model = DistributedDataParallel(net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        bar = tqdm(total=self.steps, initial=self.step, desc="training", unit="step") \
            if self.progress and self.main else None
        t0 = time.time()
        losses = []
        try:
            while self.step < self.steps:
                images, y, masks, *cond = next(batches)
                images = images.to(self.device)
                cond = cond[0].to(self.device) if cond else None
                if self.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                mask = masks.to(self.device) if masks.numel() else None
                elapsed = self._elapsed(t0)
                frac = self.step / max(self.steps, 1)
                if self.time_limit is not None:  # anneal by wall time too, so a time-limited run ends annealed
                    frac = max(frac, elapsed / self.time_limit)
                lr = self.schedule(self.step, frac)
                for g in self.optimizer.param_groups:
                    g["lr"] = lr
                net.train()
                with torch.autocast(self.device.type, dtype=self.autocast or torch.bfloat16,
                                    enabled=self.autocast is not None):
                    out = model(images, mask) if cond is None else model(images, mask, cond)
                loss = self.loss(out.float(), y.to(self.device))
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.clip_grad:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), self.clip_grad)
                self.optimizer.step()
                self.step += 1
                self.images_seen += len(images) * self.world
                losses.append(float(loss.detach()))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
                done = self.step >= self.steps or (self.time_limit is not None and elapsed > self.time_limit)
                if (self.step % self.record_every == 0 or done) and self.main:
                    rec = {"step": self.step, "loss": float(np.mean(losses)), "lr": lr,
                           "seconds": time.time() - t0, "images": self.images_seen}
                    losses = []
                    if self.evaluate is not None:
                        rec.update(self.evaluate(self.step))
                    self.history.append(rec)
                    if self.log is not None:
                        self.log(rec)
                    if self.checkpoint is not None:
                        extra = self.extra(self.step, self.history) if self.extra is not None else {}
                        self.checkpoint.save(net, self.optimizer, self.step, self.history, extra)
                if done:
                    break
        finally:
            if bar is not None:
                bar.close()
            net.to(memory_format=torch.contiguous_format)
            if self.ddp:  # free the DDP wrapper (its reducer holds the backend's work) while the process group
                del model  # lives: left to the interpreter's exit, its teardown can abort a rank (SIGABRT in gloo)
                gc.collect()
        if self.ddp:
            self._check_ranks_agree()
        return self.history

    def _check_ranks_agree(self):
        # the ranks must hold the same weights: compare checksums of the parameters (batch-norm running
        # statistics are rank 0's, broadcast at every forward pass; the saved model is rank 0's)
        flat = torch.cat([t.detach().double().reshape(-1) for t in self.network.parameters()])
        weights = (torch.arange(len(flat), device=flat.device) % 7 + 1).double()
        sums = torch.stack([flat.sum(), (flat * weights).sum()])
        gathered = [torch.zeros_like(sums) for _ in range(self.world)]
        dist.all_gather(gathered, sums)
        self.ranks_agree = bool(all(torch.equal(g, gathered[0]) for g in gathered))
        if not self.ranks_agree:
            raise RuntimeError("data-parallel ranks ended with different weights")


# -- the regression estimators' set-up -----------------------------------------------------------------------------
@torch.no_grad()
def evaluate(estimator, dataset, batch_size=128):
    """Metrics of an estimator on a `~lenskit.LensDataset`: RMS, bias, 68% error and coverage per target."""
    est = estimator.predict(dataset, batch_size=batch_size)
    return summary(est, dataset.params)


def native_bfloat16():
    """
    Whether this machine's CPU computes in bfloat16 natively (AVX-512 BF16 or AMX).

    Without it oneDNN emulates bfloat16 and a training step under bfloat16
    autocast is several times slower than in float32 (a DeepLens step ten
    times, measured on an AVX2 machine): ``fit(..., bfloat16=True)`` pays
    only where this is True (or on a GPU).
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def train(estimator, simulator, steps=1000, batch_size=64, lr=1e-3, min_lr=None, weight_decay=0.0,
          validation=None, checkpoint=None, checkpoint_every=200, progress=True, workers=0, seed=0,
          standardize_samples=None, log=None, channels_last=True, time_limit=None, warmup=200, ddp=None,
          shift_pairs=None, shift_weight=1.0, bfloat16=False, symmetry_pairs=False, bank=None):
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
    shift_pairs : int, optional
        Pair every simulated system with a copy of its image moved by up to this many pixels along each axis
        (`ShiftPairs`) and add ``shift_weight`` times the disagreement of the two estimates of the targets a
        move leaves unchanged to the loss: an estimate that does not depend on where the stamp was cut.
        Each step then has ``batch_size`` systems and ``2 * batch_size`` images.
    shift_weight : float
        Weight of that agreement term (default 1: in standardised units, as the squared errors).
    symmetry_pairs : bool
        Rotate or mirror every copy as well (`ShiftPairs` ``symmetries``: one of the eight symmetries of the
        square pixel grid, its targets transformed exactly; square stamps), so that the agreement covers the
        targets no move or rotation changes (the Einstein radius): a single pass that agrees with
        ``predict(tta=8)``.  Without ``shift_pairs`` the copies are rotated or mirrored only.
    bfloat16 : bool
        Mixed precision: the network's forward pass under bfloat16 autocast
        (`TrainingLoop` ``autocast``); its weights, optimiser and loss stay
        float32.  On CPUs with AVX-512 BF16 or AMX the network's part of a
        ``lenskit_net`` step takes 0.55-0.65 of its float32 time, and a
        step with its lenses simulated in the same thread 0.73 (on the
        development machine, one thread, 64 lenses a step: LSST g, r, i
        203 -> 278 and HST 83 -> 113 images per second through ``fit``,
        ``benchmarks/train_speed.py``); elsewhere it is slower
        (`native_bfloat16` says which; `TrainingLoop` warns).  Recorded in
        the weights' training record.

    Returns
    -------
    list of dict
        The history: step, training loss, time and validation metrics.
    """
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
    pairs = None
    if not isinstance(symmetry_pairs, (bool, np.bool_)):
        raise TypeError(f"symmetry_pairs must be True or False; got {symmetry_pairs!r}")
    if symmetry_pairs and estimator.in_shape[-1] != estimator.in_shape[-2]:
        raise ValueError(f"symmetry_pairs rotates the stamps and needs square ones; the estimator expects "
                         f"{tuple(estimator.in_shape)}")
    if shift_pairs is not None or symmetry_pairs:
        pairs = ShiftPairs(estimator.targets, u.Quantity(simulator.instrument.pixel_scale, u.arcsec).to_value(u.arcsec),
                           max_shift=0 if shift_pairs is None else shift_pairs, weight=shift_weight, seed=seed,
                           symmetries=bool(symmetry_pairs))
    if bank is not None:
        if not isinstance(bank, BankMix):
            raise TypeError(f"bank must be a BankMix; got {type(bank).__name__}")
        if bank.names != tuple(estimator.targets):
            raise ValueError(f"bank: its targets {list(bank.names)} are not the estimator's {list(estimator.targets)}")
        if tuple(bank.images.shape[1:]) != tuple(estimator.in_shape):
            raise ValueError(f"bank: its stamps are {tuple(bank.images.shape[1:])}; the estimator expects "
                             f"{tuple(estimator.in_shape)}")
        if getattr(estimator, "conditions", ()):
            raise ValueError(f"bank: the estimator reads {list(estimator.conditions)} beside the image, which the "
                             "bank does not hold")
    if checkpoint is not None:
        check_output_path(checkpoint, overwrite=True, name="checkpoint")
    if validation is not None and not hasattr(validation, "params"):
        raise TypeError(f"validation must be a LensDataset; got {type(validation).__name__}")
    if tuple(simulator.instrument.shape) != estimator.in_shape[1:] or len(simulator.instrument.bands) != estimator.in_shape[0]:
        raise ValueError(f"the simulator makes ({len(simulator.instrument.bands)}, {simulator.instrument.shape[0]}, "
                         f"{simulator.instrument.shape[1]}) stamps; the estimator expects {estimator.in_shape}")
    ddp, rank, world = ddp_context(ddp)
    opt = torch.optim.Adam(estimator.network.parameters(), lr=lr, weight_decay=weight_decay)
    min_lr = lr / 30 if min_lr is None else min_lr
    config = {"steps": int(steps), "batch_size": int(batch_size), "lr": lr, "min_lr": min_lr, "workers": int(workers),
              "seed": int(seed), "simulator": simulator.config}
    if bfloat16:
        config["bfloat16"] = True
    if pairs is not None:
        config["shift_pairs"] = {"max_shift": pairs.max_shift, "weight": pairs.weight}
        if pairs.symmetries:
            config["shift_pairs"]["symmetries"] = True
    if bank is not None:
        config["bank"] = {"systems": len(bank), "fraction": bank.fraction, "seed": bank.seed,
                          "checksum": array_checksum(bank.images.numpy())}

    def loss(out, y):
        spec = estimator.spec
        return gaussian_nll(out, spec.to_network(y), spec.k, spec, estimator.uncertainty)

    def checkpoint_extra(step, history):
        estimator.training = {**config, "completed_steps": step, "images_seen_since_start": loop.images_seen}
        extra = {"config": config, "targets": estimator.spec.to_config()}
        if getattr(estimator, "conditions", ()):
            extra["conditions"] = {"mean": np.asarray(estimator.condition_mean, float),
                                   "std": np.asarray(estimator.condition_std, float),
                                   "range": np.asarray(estimator.condition_range, float)}
        return extra

    loop = TrainingLoop(estimator.network, opt, loss if pairs is None else pairs.loss(loss), steps=steps,
                        schedule=cosine_schedule(lr, min_lr, warmup), record_every=checkpoint_every, device=estimator.device,
                        checkpoint=None if checkpoint is None else Checkpoint(checkpoint), time_limit=time_limit,
                        clip_grad=10.0, channels_last=channels_last, ddp=ddp, progress=progress, log=log,
                        autocast=torch.bfloat16 if bfloat16 else None,
                        evaluate=None if validation is None else (lambda step: {"validation": evaluate(estimator,
                                                                                                       validation)}),
                        extra=checkpoint_extra)
    conditions = tuple(getattr(estimator, "conditions", ()))
    n_std = standardize_samples or min(2048, max(256, steps * batch_size))
    if loop.resume():
        estimator.spec = TargetSpec.from_config(dict(loop.resumed_extra["targets"]))
        if conditions:
            c = loop.resumed_extra["conditions"]
            estimator.condition_mean, estimator.condition_std = np.asarray(c["mean"]), np.asarray(c["std"])
            estimator.condition_range = np.asarray(c["range"])
    else:
        _standardize(estimator, simulator, n_std, ddp,
                     targets=np.allclose(estimator.spec.mean, 0) and np.allclose(estimator.spec.std, 1),
                     conditions=bool(conditions) and estimator.condition_mean is None)
    data = SimulatedBatches(simulator, batch_size, estimator.targets + conditions,
                            seed=hash((seed, loop.step)) % (2**31), rank=rank)
    if ddp:
        keys = [None] * world
        dist.all_gather_object(keys, data.seed_key(0))
        config["ddp"] = {"world_size": world, "backend": dist.get_backend(), "batch_size_per_rank": int(batch_size),
                         "global_batch_size": int(batch_size) * world, "rank_seed_keys": keys}
    batches = data.batches(loop.step, workers)
    if conditions:  # the simulator's columns after the targets are the network's conditions
        batches = _split_conditions(batches, estimator)
    if bank is not None:
        batches = bank.batches(batches, start_step=loop.step)
    if pairs is not None:
        batches = pairs.batches(batches, start_step=loop.step)
    estimator._fitting = True  # its validation passes are not a user's predictions from untrained weights
    try:
        history = loop.run(batches)
    finally:
        estimator._fitting = False
        del batches
    if ddp:
        config["ddp"]["weights_identical_on_all_ranks"] = loop.ranks_agree
    estimator.training = {**config, "completed_steps": loop.step, "history": history[-5:]}
    return history


def _split_conditions(batches, estimator):
    """``(images, targets + conditions, masks)`` batches -> ``(images, targets, masks, standardised conditions)``."""
    k = estimator.spec.k
    for images, y, masks in batches:
        yield images, y[:, :k], masks, estimator.standardize_conditions(y[:, k:]).cpu()


def _standardize(estimator, simulator, n, ddp, targets=True, conditions=False):
    """
    Standardise the targets and/or the conditions with the simulator's prior and selection, from one draw of
    ``n`` systems (rank 0 draws, the others receive).  The conditions also keep the range training saw.
    """
    if not (targets or conditions):
        return
    k, c = estimator.spec.k, len(estimator.conditions) if conditions else 0
    names = (estimator.targets if targets else ()) + (estimator.conditions if conditions else ())
    stats = torch.zeros(4, len(names), dtype=torch.float64)  # mean, spread, min, max per column
    if not ddp or dist.get_rank() == 0:
        y = torch.cat([y for _, y, _ in simulator.stream(min(n, 512), targets=names, steps=max(1, n // 512))]).double()
        if targets:
            spec0 = TargetSpec(estimator.targets, spin=estimator.spec.spin)
            y[:, :k] = spec0.to_network(y[:, :k])
        floor = torch.tensor([1e-3] * (k if targets else 0) + [1e-6] * c, dtype=torch.float64)  # no zero spread
        stats = torch.stack([y.mean(0), torch.maximum(y.std(0, correction=0), floor), y.amin(0), y.amax(0)])
    if ddp:
        stats = stats.to(estimator.device)
        dist.broadcast(stats, 0)
        stats = stats.cpu()
    if targets:
        estimator.spec = TargetSpec(estimator.targets, spin=estimator.spec.spin, mean=stats[0, :k].numpy(),
                                    std=stats[1, :k].numpy())
    if conditions:
        estimator.condition_mean, estimator.condition_std = stats[0, -c:].numpy(), stats[1, -c:].numpy()
        estimator.condition_range = stats[2:, -c:].T.numpy()  # (c, 2): the values training saw
