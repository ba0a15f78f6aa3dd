"""A source population drawn from several source populations with weights."""

import copy

import astropy.units as u
import numpy as np
import torch
from astropy.table import QTable

from lenskit.core.interfaces import Source, SourceBatch
from lenskit.plugins import get

__all__ = ["MixtureSource", "MixtureBatch"]


class MixtureBatch(SourceBatch):
    """Sources drawn from several populations; ``component`` says which one each came from."""

    def __init__(self, batches, component, names):
        self.batches = list(batches)
        self.component = np.asarray(component, dtype=int)
        self.names = list(names)
        self._index = [np.nonzero(self.component == k)[0] for k in range(len(self.batches))]
        n = len(self.component)
        self.flux = np.empty(n)
        self.size = np.empty(n)
        self.galaxy_id = np.full(n, "", dtype=object)
        for k, (b, idx) in enumerate(zip(self.batches, self._index)):
            self.flux[idx] = b.flux
            self.size[idx] = b.size
            if getattr(b, "galaxy_id", None) is not None:
                self.galaxy_id[idx] = np.asarray(b.galaxy_id).astype(str)

    @property
    def params(self):  # made when asked for (once per dataset), not for every chunk
        return QTable({"source_component": np.array([self.names[k] for k in self.component]),
                       "source_size": self.size * u.arcsec})

    def take(self, index):
        index = np.arange(len(self.component))[index]
        comp = self.component[index]
        batches = []
        for k, b in enumerate(self.batches):
            # position of each selected row inside its component's batch
            pos = np.searchsorted(self._index[k], index[comp == k])
            batches.append(b.take(pos))
        return MixtureBatch(batches, comp, self.names)

    def brightness(self, bx, by):
        out = torch.zeros_like(bx)
        for b, idx in zip(self.batches, self._index):
            if len(idx) == 0:
                continue
            it = torch.as_tensor(idx, device=bx.device)
            out[it] = b.brightness(bx[it], by[it])
        return out


class MixtureSource(Source):
    """
    Draw each source from one of several populations.

    Parameters
    ----------
    sources : sequence of str or `~lenskit.core.Source`
        Registered source names or instances.  Default: ``sersic_clump`` and
        ``sersic``.  Hezaveh et al. (2017) used three equal sets (Galaxy Zoo,
        GREAT3 and clumpy galaxies).
    weights : sequence of float, optional
        Relative probabilities (normalised); equal by default.
    """

    name = "mixture"

    def __init__(self, sources=("sersic_clump", "sersic"), weights=None):
        resolved = []
        for i, s in enumerate(sources):
            if isinstance(s, str):
                s = get("source", s)()
            if not isinstance(s, Source):
                raise TypeError(f"sources[{i}] must be a source name or Source; got {type(s).__name__}")
            resolved.append(s)
        if not resolved:
            raise ValueError("sources must name at least one source")
        self.sources = resolved
        w = np.ones(len(resolved)) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (len(resolved),) or np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"weights must be {len(resolved)} non-negative numbers with a positive sum; got {weights}")
        self.weights = w / w.sum()

    def with_split(self, split):
        other = copy.copy(self)
        other.sources = [s.with_split(split) for s in self.sources]
        return other

    def sample(self, n, rng):
        comp = rng.choice(len(self.sources), size=n, p=self.weights)
        batches = [s.sample(int(np.sum(comp == k)), rng) for k, s in enumerate(self.sources)]
        return MixtureBatch(batches, comp, [s.name for s in self.sources])
