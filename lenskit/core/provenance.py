"""Provenance records: where a dataset, estimate or set of weights came from."""

import datetime
import hashlib
import platform

import numpy as np

from lenskit.core.version import VERSION

__all__ = ["Provenance", "array_checksum", "set_plugin_versions"]

# the plugin registry sits above lenskit.core: it hands provenance its query when it is imported (with lenskit)
_PLUGIN_VERSIONS = [dict]


def set_plugin_versions(query):
    """Set the function that `Provenance.current` asks for the loaded plugins' versions (the registry's)."""
    if not callable(query):
        raise TypeError(f"query must be callable; got {type(query).__name__}")
    _PLUGIN_VERSIONS[0] = query


def array_checksum(array):
    """
    SHA-256 of an array's dtype, shape and bytes, as ``"sha256:<hex>"``.

    Two arrays share a checksum only if they are equal bit for bit and have
    the same dtype and shape.
    """
    arr = np.require(array, requirements="C")
    h = hashlib.sha256()
    h.update(str(arr.dtype.str).encode())
    h.update(str(arr.shape).encode())
    h.update(memoryview(arr).cast("B"))
    return "sha256:" + h.hexdigest()


class Provenance:
    """
    What produced a lenskit product.

    Parameters
    ----------
    lenskit_version : str
    plugins : dict
        Plugin (distribution) name -> version of every plugin loaded.
    seed : int or None
        Seed of the random generator that produced the product.
    config : dict
        Configuration (simulation or training settings), JSON-like values.
    checksums : dict
        Name -> ``"sha256:..."`` of the inputs and outputs.
    created : str
        ISO-8601 UTC creation time.
    platform : str
        Python implementation and machine.
    """

    _fields = ("lenskit_version", "plugins", "seed", "config", "checksums", "created", "platform")

    def __init__(self, lenskit_version, plugins=None, seed=None, config=None, checksums=None,
                 created=None, platform=None):
        if not isinstance(lenskit_version, str):
            raise TypeError(f"lenskit_version must be a str; got {type(lenskit_version).__name__}")
        if seed is not None and not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int or None; got {type(seed).__name__}")
        for name, value in (("plugins", plugins), ("config", config), ("checksums", checksums)):
            if value is not None and not isinstance(value, dict):
                raise TypeError(f"{name} must be a dict; got {type(value).__name__}")
        self.lenskit_version = lenskit_version
        self.plugins = dict(plugins or {})
        self.seed = None if seed is None else int(seed)
        self.config = dict(config or {})
        self.checksums = dict(checksums or {})
        self.created = created or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.platform = platform or _platform_string()

    @classmethod
    def current(cls, seed=None, config=None, checksums=None):
        """A record for something produced now, by this lenskit and its plugins."""
        return cls(
            lenskit_version=VERSION,
            plugins=_PLUGIN_VERSIONS[0](),
            seed=seed,
            config=config,
            checksums=checksums,
        )

    def with_checksums(self, **checksums):
        """A copy with these entries of ``checksums`` replaced (for example ``images=`` after slicing)."""
        d = self.to_dict()
        d["checksums"] = {**self.checksums, **checksums}
        return Provenance.from_dict(d)

    def to_dict(self):
        """Plain-dict form (used by the ASDF converter)."""
        return {f: getattr(self, f) for f in self._fields}

    @classmethod
    def from_dict(cls, d):
        return cls(**{k: d[k] for k in cls._fields if k in d})

    def __eq__(self, other):
        return isinstance(other, Provenance) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return (f"<Provenance lenskit {self.lenskit_version}, seed={self.seed}, "
                f"{len(self.plugins)} plugin(s), created {self.created}>")


def _platform_string():
    return f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}"
