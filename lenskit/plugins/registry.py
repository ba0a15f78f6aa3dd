"""
The plugin registry.

Built lazily at the first `get` / `available` call: lenskit's own
implementations first, then every plugin advertised under the entry-point
group ``lenskit.plugins``, in name order.

Environment variables
---------------------
``LENSKIT_STRICT_PLUGINS=1``
    Re-raise the error of a plugin that fails to load instead of warning.
``LENSKIT_DISABLE_PLUGINS=a,b``
    Do not load the plugins (entry-point names) ``a`` and ``b``.
"""

import dataclasses
import importlib
import importlib.metadata
import os
import threading
import traceback
import warnings

import pluggy

from lenskit.core.exceptions import LenskitPluginError, LenskitPluginWarning
from lenskit.core.interfaces import INTERFACES
from lenskit.core.provenance import set_plugin_versions
from lenskit.core.version import DISTRIBUTION, VERSION
from lenskit.plugins import builtin, hookspecs

__all__ = ["ENTRY_POINT_GROUP", "PluginInfo", "get", "available", "plugins", "plugin_versions", "plugin_module_allowed",
           "reset"]

ENTRY_POINT_GROUP = "lenskit.plugins"
BUILTIN_NAME = "lenskit"


@dataclasses.dataclass
class PluginInfo:
    """What one plugin is and provides."""

    name: str
    distribution: str | None
    version: str | None
    provides: dict = dataclasses.field(default_factory=dict)
    status: str = "loaded"  # "loaded", "failed", "disabled" or "conflict" (loaded, but a name it registers clashes)
    error: str | None = None
    traceback: str | None = None
    conflicts: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Entry:
    spec: object  # class or "module:Class"
    plugin: str
    resolved: type | None = None


class _Registry:
    def __init__(self):
        self._lock = threading.RLock()
        self._entries = None
        self._plugins = {}
        self._conflicts = {}

    # -- building ----------------------------------------------------------------
    def reset(self):
        with self._lock:
            self._entries = None
            self._plugins = {}
            self._conflicts = {}

    def _ensure(self):
        with self._lock:
            if self._entries is None:
                self._build()

    def _build(self):
        strict = os.environ.get("LENSKIT_STRICT_PLUGINS", "").strip().lower() in ("1", "true", "yes")
        disabled = {s.strip() for s in os.environ.get("LENSKIT_DISABLE_PLUGINS", "").split(",") if s.strip()}
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        entries = {kind: {} for kind in INTERFACES}
        plugins = {}
        claims = {kind: {} for kind in INTERFACES}  # kind -> name -> every plugin that registers it

        candidates = [(BUILTIN_NAME, DISTRIBUTION, VERSION, lambda: builtin)]
        eps = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
        seen = set()
        for ep in eps:
            if ep.name in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add(ep.name)
            dist = getattr(ep, "dist", None)
            candidates.append((ep.name, dist.name if dist else None, dist.version if dist else None, ep.load))

        for name, dist, version, loader in candidates:
            info = PluginInfo(name=name, distribution=dist, version=version)
            plugins[name] = info
            if name in disabled:
                info.status = "disabled"
                continue
            try:
                module = loader()
                pm.register(module, name=name)
                impls = [i for i in pm.hook.lenskit_register_implementations.get_hookimpls()
                         if i.plugin_name == name]
                provided = {}
                for impl in impls:
                    result = impl.function()
                    provided = _check_result(name, result)
            except Exception as exc:  # a broken plugin must not break lenskit
                if strict:
                    raise
                info.status = "failed"
                info.error = f"{type(exc).__name__}: {exc}"
                warnings.warn(
                    f"lenskit plugin '{name}' ({dist or 'unknown distribution'}) failed to load and is "
                    f"skipped: {info.error}. Set LENSKIT_STRICT_PLUGINS=1 to raise, or "
                    f"LENSKIT_DISABLE_PLUGINS={name} to silence.",
                    LenskitPluginWarning, stacklevel=4)
                info.traceback = traceback.format_exc()
                continue
            info.provides = {k: sorted(v) for k, v in provided.items() if v}
            for kind, names in provided.items():
                for impl_name, spec in names.items():
                    claims[kind].setdefault(impl_name, []).append(name)
                    entries[kind].setdefault(impl_name, _Entry(spec=spec, plugin=name))
        # a name registered by two plugins belongs to neither: that name fails (saying why), the rest work
        conflicts = {}
        for kind, names in claims.items():
            for impl_name, owners in names.items():
                if len(owners) > 1:
                    msg = (f"{kind} '{impl_name}' is registered by several plugins ({', '.join(map(repr, owners))}); "
                           f"disable all but one with LENSKIT_DISABLE_PLUGINS")
                    conflicts[(kind, impl_name)] = msg
                    del entries[kind][impl_name]
                    for owner in owners:
                        plugins[owner].conflicts.append(msg)
                        plugins[owner].status = "conflict"
        if conflicts:
            warnings.warn("lenskit plugins conflict: " + "; ".join(conflicts.values()), LenskitPluginWarning,
                          stacklevel=4)
        self._entries = entries
        self._plugins = plugins
        self._conflicts = conflicts

    # -- queries -------------------------------------------------------------------
    def get(self, kind, name):
        self._check_kind(kind)
        self._ensure()
        if not isinstance(name, str):
            raise TypeError(f"name must be a str; got {type(name).__name__}")
        table = self._entries[kind]
        if (kind, name) in self._conflicts:
            raise LenskitPluginError(self._conflicts[(kind, name)])
        if name not in table:
            failed = [p.name for p in self._plugins.values() if p.status == "failed"]
            hint = f" (plugins that failed to load: {failed})" if failed else ""
            raise LenskitPluginError(
                f"unknown {kind} '{name}'; available: {sorted(table) or 'none'}{hint}")
        entry = table[name]
        if entry.resolved is None:
            spec = entry.spec
            if isinstance(spec, str):
                mod_name, _, attr = spec.partition(":")
                try:
                    obj = getattr(importlib.import_module(mod_name), attr)
                except Exception as exc:
                    raise LenskitPluginError(
                        f"{kind} '{name}' from plugin '{entry.plugin}' could not be imported from "
                        f"'{spec}': {type(exc).__name__}: {exc}") from exc
            else:
                obj = spec
            iface = INTERFACES[kind]
            if not (isinstance(obj, type) and issubclass(obj, iface)):
                raise LenskitPluginError(
                    f"{kind} '{name}' from plugin '{entry.plugin}' is {obj!r}, which does not implement "
                    f"lenskit.core.{iface.__name__}")
            entry.resolved = obj
        return entry.resolved

    def available(self, kind=None):
        self._ensure()
        if kind is None:
            return {k: sorted(v) for k, v in self._entries.items()}
        self._check_kind(kind)
        return sorted(self._entries[kind])

    def packages(self):
        """Top-level packages that hold registered implementations (lenskit's and the loaded plugins')."""
        self._ensure()
        out = {"lenskit"}
        for table in self._entries.values():
            for entry in table.values():
                spec = entry.spec
                module = spec.partition(":")[0] if isinstance(spec, str) else getattr(spec, "__module__", "")
                if module:
                    out.add(module.split(".")[0])
        return out

    def plugins(self):
        with self._lock:
            if self._entries is None:
                self._build()
        return list(self._plugins.values())

    def plugin_versions(self):
        return {p.name: p.version for p in self.plugins() if p.status in ("loaded", "conflict")}

    @staticmethod
    def _check_kind(kind):
        if kind not in INTERFACES:
            raise ValueError(f"kind must be one of {sorted(INTERFACES)}; got {kind!r}")


def _check_result(plugin, result):
    if not isinstance(result, dict):
        raise TypeError(f"lenskit_register_implementations() of plugin '{plugin}' must return a dict; "
                        f"got {type(result).__name__}")
    out = {}
    for kind, names in result.items():
        if kind not in INTERFACES:
            raise ValueError(f"plugin '{plugin}' registers unknown kind {kind!r}; "
                             f"expected one of {sorted(INTERFACES)}")
        if not isinstance(names, dict):
            raise TypeError(f"plugin '{plugin}': {kind} entries must be a dict name -> class")
        for impl_name, spec in names.items():
            if not isinstance(impl_name, str) or not impl_name:
                raise TypeError(f"plugin '{plugin}': {kind} names must be non-empty strings; got {impl_name!r}")
            if isinstance(spec, str) and ":" not in spec:
                raise ValueError(f"plugin '{plugin}': {kind} '{impl_name}' must be a class or "
                                 f"'module:Class'; got {spec!r}")
        out[kind] = dict(names)
    return out


_REGISTRY = _Registry()


def get(kind: str, name: str) -> type:
    """
    Return the class registered as ``name`` for ``kind``.

    Parameters
    ----------
    kind : {'mass_model', 'source', 'instrument', 'estimator', 'deblender'}
    name : str

    Returns
    -------
    type
        A subclass of the kind's interface in `lenskit.core`.

    Raises
    ------
    lenskit.core.LenskitPluginError
        If the name is unknown (the message lists the available names), the
        implementation cannot be imported, or it does not implement the
        interface.
    """
    return _REGISTRY.get(kind, name)


def available(kind: str | None = None) -> list[str] | dict[str, list[str]]:
    """Sorted names registered for ``kind``, or a dict of all kinds when None."""
    return _REGISTRY.available(kind)


def plugin_module_allowed(module):
    """
    Whether a configuration may name a class in ``module``: lenskit's own and the registered plugins' packages.

    `lenskit.core.config.rebuild` imports nothing else, so a configuration
    read from a file cannot make lenskit import arbitrary code.
    """
    return isinstance(module, str) and module.split(".")[0] in _REGISTRY.packages()


def plugins() -> list[PluginInfo]:
    """`PluginInfo` of every plugin found, including failed and disabled ones."""
    return _REGISTRY.plugins()


def plugin_versions():
    """Name -> version of every loaded plugin."""
    return _REGISTRY.plugin_versions()


def reset():
    """Forget the registry so that the next query rebuilds it (for tests and notebooks)."""
    _REGISTRY.reset()


set_plugin_versions(plugin_versions)  # provenance records (in lenskit.core, below the plugins) ask the registry
