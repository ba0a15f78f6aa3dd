"""`ModelWeights`: network weights as plain arrays, with their recipe and metrics."""

import hashlib
import json
import math

import numpy as np

from lenskit.core import storage
from lenskit.core.exceptions import LenskitFileError
from lenskit.core.provenance import Provenance

__all__ = ["ModelWeights"]


class ModelWeights:
    """
    The trained state of a network, stored as named arrays (never pickled).

    Parameters
    ----------
    architecture : str
        Registry name of the network (for example ``"hezaveh"``).
    arrays : dict
        Parameter and buffer name -> `numpy.ndarray` (a ``state_dict`` as arrays).
    config : dict, optional
        Architecture arguments, simulation config and training budget.
    metrics : dict, optional
        Test metrics measured with these weights.
    provenance : `~lenskit.core.Provenance`, optional
    """

    def __init__(self, architecture, arrays, config=None, metrics=None, provenance=None):
        if not isinstance(architecture, str) or not architecture:
            raise TypeError(f"architecture must be a non-empty str; got {architecture!r}")
        if not isinstance(arrays, dict) or not arrays:
            raise ValueError("arrays must be a non-empty dict of name -> ndarray")
        clean = {}
        for name, arr in arrays.items():
            if not isinstance(name, str):
                raise TypeError(f"array names must be str; got {name!r}")
            a = np.asarray(arr)
            if a.dtype.kind not in "biuf":
                raise TypeError(f"arrays['{name}'] must be numeric; got dtype {a.dtype}")
            clean[name] = np.require(a, requirements="C")
        self.architecture = architecture
        self.arrays = clean
        self.config = _plain(dict(config or {}), "config")
        self.metrics = _plain(dict(metrics or {}), "metrics")
        if provenance is None:
            provenance = Provenance.current()
        elif isinstance(provenance, dict):
            provenance = Provenance.from_dict(provenance)
        self.provenance = provenance

    @property
    def checksum(self):
        """SHA-256 over the sorted names, dtypes, shapes and bytes of the arrays."""
        h = hashlib.sha256()
        for name in sorted(self.arrays):
            a = self.arrays[name]
            h.update(name.encode())
            h.update(a.dtype.str.encode())
            h.update(str(a.shape).encode())
            h.update(memoryview(a).cast("B"))
        return "sha256:" + h.hexdigest()

    @property
    def config_checksum(self):
        """
        SHA-256 over the architecture name, the configuration and the metrics.

        The configuration decides what a network's outputs mean (target
        standardisation, expected inputs, thresholds), so it is protected like
        the arrays: a file whose configuration was edited fails to load.
        """
        record = {"architecture": self.architecture, "config": self.config, "metrics": self.metrics}
        text = json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=True)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    @property
    def n_parameters(self):
        return int(sum(a.size for a in self.arrays.values()))

    @classmethod
    def from_module(cls, architecture, module, dtype=None, **kwargs):
        """Capture a `torch.nn.Module`'s ``state_dict`` (optionally cast floats, e.g. to float16)."""
        arrays = {}
        for k, v in module.state_dict().items():
            a = v.detach().cpu().numpy()
            if dtype is not None and a.dtype.kind == "f":
                a = a.astype(dtype)
            arrays[k] = a
        return cls(architecture, arrays, **kwargs)

    def to_state_dict(self, dtype=None):
        """Arrays as a torch ``state_dict`` (floats cast to ``dtype``, default float32)."""
        import torch  # heavy (torch): `import lenskit` stays light

        out = {}
        for k, a in self.arrays.items():
            t = torch.from_numpy(np.array(a))
            if t.is_floating_point():
                t = t.to(dtype or torch.float32)
            out[k] = t
        return out

    def check_network(self, network_on_meta):
        """
        Raise `~lenskit.core.LenskitFileError` unless a network built (on torch's
        ``meta`` device, so nothing is allocated) from this configuration has
        exactly these arrays' names and shapes.
        """

        want = {k: tuple(v.shape) for k, v in network_on_meta.state_dict().items()}
        have = {k: tuple(a.shape) for k, a in self.arrays.items()}
        if want != have:
            missing = sorted(set(want) - set(have))[:3]
            extra = sorted(set(have) - set(want))[:3]
            shapes = [f"{k}: {have[k]} vs {want[k]}" for k in sorted(set(want) & set(have)) if want[k] != have[k]][:3]
            raise LenskitFileError(
                f"model weights '{self.architecture}': the network its configuration describes "
                f"({sum(math.prod(s) for s in want.values()):,} values) does not match its arrays "
                f"({self.n_parameters:,} values); missing {missing}, unexpected {extra}, shapes {shapes}")

    def __eq__(self, other):
        if not isinstance(other, ModelWeights):
            return NotImplemented
        return (self.architecture == other.architecture and self.checksum == other.checksum
                and self.config == other.config and self.metrics == other.metrics)

    def __repr__(self):
        return f"<ModelWeights '{self.architecture}' {len(self.arrays)} arrays, {self.n_parameters} values>"

    def write(self, path, overwrite=False):
        storage.write(self, path, overwrite=overwrite)


def _plain(value, name):
    """``value`` as plain JSON types (numpy scalars and arrays converted), so that a checksum survives a file."""
    def default(x):
        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, np.ndarray):
            return x.tolist()
        if isinstance(x, (set, frozenset)):
            return sorted(x)
        raise TypeError(f"{name} must hold JSON-like values (numbers, strings, lists, dicts); got "
                        f"{type(x).__name__}")

    return json.loads(json.dumps(value, default=default, allow_nan=True))
