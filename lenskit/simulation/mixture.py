"""
Training batches drawn from several simulators at once.

A network trained only on a wide, "robust" population (`lenskit.simulation.presets.robust`) can lose
accuracy on the narrower population it used to know; training on a mixture of both keeps it.  Every batch
holds a fixed share of each simulator's systems, in a random order, so batch normalisation sees the
mixture in every step.
"""

import numpy as np
import torch

from lenskit.core.validation import as_rng, check_int
from lenskit.simulation.simulator import DEFAULT_TARGETS

__all__ = ["SimulatorMixture"]


class SimulatorMixture:
    """
    Batches made of fixed shares of several simulators' systems.

    It can stand in for a `~lenskit.Simulator` wherever batches are streamed
    (`~lenskit.estimators.CNNEstimator.fit`, `lenskit.estimators.training.train`).

    Parameters
    ----------
    simulators : sequence of `~lenskit.Simulator`
        Two or more, with the same stamp shape, bands and pixel scale, whose images all hold the lens
        galaxy's light (``lens_light=True``) or none does (``False``, ``"subtracted"``, ``"residual"``: arcs
        without lens light, with or without its shot noise and a fit's residuals, may be mixed).
    weights : sequence of float, optional
        Their shares of every batch (normalised; default equal).  The counts are the differences of the
        rounded cumulative shares (`shares`), so they always add up to the batch size; a simulator whose
        share rounds to zero in a small batch is left out of it.
    seed : int or `numpy.random.Generator`, optional
        Seeds the components' generators (and the order within a batch).  Each `stream` reseeds the
        component simulators' ``rng`` from it, as the training loop reseeds a simulator.

    Examples
    --------
    >>> from lenskit import Simulator
    >>> from lenskit.simulation import presets
    >>> from lenskit.simulation.mixture import SimulatorMixture
    >>> mix = SimulatorMixture([presets.robust("lsst"), Simulator(instrument="lsst")], [0.5, 0.5], seed=1)
    """

    def __init__(self, simulators, weights=None, seed=None):
        sims = list(simulators) if not hasattr(simulators, "stream") else None
        if sims is None or len(sims) < 2:
            raise ValueError("simulators must be a sequence of two or more Simulators; got "
                             f"{type(simulators).__name__}")
        for i, s in enumerate(sims):
            if not (hasattr(s, "stream") and hasattr(s, "instrument")):
                raise TypeError(f"simulators[{i}] must be a lenskit Simulator; got {type(s).__name__}")
        first = sims[0].instrument
        for i, s in enumerate(sims[1:], 1):
            inst = s.instrument
            if (tuple(inst.shape) != tuple(first.shape) or tuple(inst.bands) != tuple(first.bands)
                    or not np.isclose(float(inst.pixel_scale.value), float(first.pixel_scale.value))):
                raise ValueError(f"simulators[{i}] makes {tuple(inst.bands)} stamps of {tuple(inst.shape)} at "
                                 f"{inst.pixel_scale}; simulators[0] makes {tuple(first.bands)} of "
                                 f"{tuple(first.shape)} at {first.pixel_scale}: a mixture needs the same")
            if (s.lens_light is True) != (sims[0].lens_light is True):
                raise ValueError(f"simulators[{i}] has lens_light={s.lens_light!r}, simulators[0] "
                                 f"{sims[0].lens_light!r}: a mixture's images must all hold the lens light or "
                                 f"none")
        if weights is None:
            weights = np.ones(len(sims))
        w = np.asarray(weights, dtype=float)
        if w.shape != (len(sims),) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"weights must be {len(sims)} finite non-negative numbers, not all zero; got {weights!r}")
        self.simulators = sims
        self.weights = w / w.sum()
        self.rng = as_rng(seed)

    @property
    def instrument(self):
        """The first simulator's instrument (all have the same stamps)."""
        return self.simulators[0].instrument

    @property
    def lens_light(self):
        """The first simulator's ``lens_light`` (the others' images hold the lens light too, or none does)."""
        return self.simulators[0].lens_light

    @property
    def config(self):
        """The components' configurations and shares (stored in provenance)."""
        return {"mixture": [{"weight": float(w), "simulator": s.config}
                            for w, s in zip(self.weights, self.simulators)]}

    def shares(self, batch_size):
        """How many systems of a batch of ``batch_size`` come from each simulator."""
        batch_size = check_int("batch_size", batch_size, minimum=1)
        edges = np.rint(np.concatenate([[0.0], np.cumsum(self.weights)]) * batch_size).astype(int)
        return np.diff(edges)

    def stream(self, batch_size, device=None, targets=DEFAULT_TARGETS, steps=None):
        """
        Yield ``(images, targets, masks)`` batches forever (or for ``steps``), like `lenskit.Simulator.stream`.
        """
        counts = self.shares(batch_size)
        steps = check_int("steps", steps, minimum=1, allow_none=True)
        seeds = self.rng.integers(0, 2**63 - 1, size=len(self.simulators))
        order_rng = np.random.default_rng(self.rng.integers(0, 2**63 - 1))
        streams = []
        for sim, n, s in zip(self.simulators, counts, seeds):
            if n > 0:
                sim.rng = np.random.default_rng(int(s))
                streams.append(sim.stream(int(n), device=device, targets=targets))
        step = 0
        try:
            while steps is None or step < steps:
                parts = [next(it) for it in streams]
                images = torch.cat([p[0] for p in parts])
                y = torch.cat([p[1] for p in parts])
                masks = None if any(p[2] is None for p in parts) else torch.cat([p[2] for p in parts])
                perm = torch.as_tensor(order_rng.permutation(len(images)), device=images.device)
                yield images[perm], y[perm], None if masks is None else masks[perm]
                step += 1
        finally:
            for it in streams:
                it.close()
