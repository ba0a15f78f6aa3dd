"""
Objects that remember how they were made: configurations that rebuild them exactly.

`Configurable` records the arguments its outermost ``__init__`` received;
`describe` turns such an object into a plain tree (numbers, strings, lists,
dicts, units, Quantities, arrays and nested descriptions) that ASDF and JSON
store, and `rebuild` makes an equal object from it.  The plugin interfaces
(`~lenskit.core.Source`, `~lenskit.core.Instrument`), the instruments'
effects, priors, selections and the line of sight derive from it, so a
simulator's configuration (`lenskit.Simulator.config`) is enough to rebuild
it and draw the same dataset bit for bit (`lenskit.Simulator.from_config`).

A description names its class as ``"module:QualName"``; `rebuild` imports
only lenskit's own modules and the modules the caller allows (the registered
plugins'), and checks the class derives from the expected base, so a file
cannot make lenskit import or call anything else.
"""

import functools
import importlib
import inspect
import numbers

import astropy.units as u
import numpy as np

__all__ = ["Configurable", "describe", "rebuild", "encode", "decode", "ConfigError"]


class ConfigError(ValueError):
    """A configuration that cannot be described or rebuilt; the message names the path in the tree."""


class Configurable:
    """
    Mixin: remembers the arguments of the outermost ``__init__`` call as ``config_args``.

    Subclasses need do nothing; `describe` and `rebuild` use the record.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_records_config", False):
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self, *args, **kw):
            outermost = "config_args" not in self.__dict__
            if outermost:
                bound = signature.bind(self, *args, **kw)
                params = dict(bound.arguments)
                params.pop(next(iter(signature.parameters)))  # self
                for name, p in signature.parameters.items():  # **kwargs are recorded as keywords
                    if p.kind is inspect.Parameter.VAR_KEYWORD and name in params:
                        params.update(params.pop(name))
                    elif p.kind is inspect.Parameter.VAR_POSITIONAL and params.get(name):
                        params = None  # positional varargs cannot be replayed by keyword: not describable
                        break
                self.__dict__["config_args"] = params
            init(self, *args, **kw)

        recording_init._records_config = True
        cls.__init__ = recording_init


def _class_path(obj):
    t = type(obj)
    return f"{t.__module__}:{t.__qualname__}"


def encode(value, path="config"):
    """A plain tree for ``value`` (see the module's description); raises `ConfigError` naming ``path``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, u.Quantity):
        v = value.value
        return {"quantity": float(v) if np.ndim(v) == 0 else np.asarray(v).tolist(), "unit": value.unit.to_string()}
    if isinstance(value, u.UnitBase):
        return {"unit": value.to_string()}
    if isinstance(value, (list, tuple)):
        return [encode(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{path}: only string keys can be recorded; got {list(value)[:5]}")
        return {"dict": {k: encode(v, f"{path}[{k!r}]") for k, v in value.items()}}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise ConfigError(f"{path}: an array of dtype {value.dtype} cannot be recorded")
        return {"array": np.array(value)}
    if type(value).__module__ == "torch" and type(value).__name__ == "dtype":
        return {"torch_dtype": str(value).replace("torch.", "")}
    if isinstance(value, Configurable):
        return describe(value, path)
    raise ConfigError(f"{path}: a {type(value).__name__} cannot be recorded in a configuration; pass objects "
                      f"lenskit can describe (numbers, strings, Quantities, arrays, lenskit components)")


def describe(obj, path="config"):
    """``{"class": "module:QualName", "args": {...}}`` for a `Configurable` object."""
    args = getattr(obj, "config_args", None)
    if args is None and type(obj).__init__ is object.__init__:  # no __init__ anywhere: made without arguments
        args = {}
    if args is None:  # not recorded, or made with *args
        raise ConfigError(f"{path}: {type(obj).__name__} does not record its arguments (derive it from "
                          f"lenskit.core.config.Configurable)")
    return {"class": _class_path(obj), "args": {k: encode(v, f"{path}.{k}") for k, v in args.items()}}


def _lenskit_only(module):
    return module == "lenskit" or module.startswith("lenskit.")


def decode(tree, path="config", allowed=_lenskit_only):
    """The value `encode` made ``tree`` from (descriptions rebuilt with `rebuild`)."""
    if tree is None or isinstance(tree, (bool, str, numbers.Number)):
        return tree
    if isinstance(tree, (list, tuple)):
        return tuple(decode(v, f"{path}[{i}]", allowed) for i, v in enumerate(tree))
    if isinstance(tree, np.ndarray):
        return tree
    if hasattr(tree, "keys"):
        keys = set(tree.keys())
        if keys == {"quantity", "unit"}:
            q = tree["quantity"]
            return (np.asarray(q, float) if isinstance(q, (list, tuple)) else float(q)) * u.Unit(tree["unit"])
        if keys == {"unit"}:
            return u.Unit(tree["unit"])
        if keys == {"dict"}:
            return {k: decode(v, f"{path}[{k!r}]", allowed) for k, v in tree["dict"].items()}
        if keys == {"array"}:
            return np.asarray(tree["array"])
        if keys == {"torch_dtype"}:
            import torch  # torch loads on first use: lenskit.core stays importable without it

            return getattr(torch, tree["torch_dtype"])
        if keys == {"class", "args"}:
            return rebuild(tree, object, path, allowed)
    raise ConfigError(f"{path}: not a recorded value: {tree!r}")


def rebuild(spec, base, path="config", allowed=_lenskit_only):
    """
    The object a `describe` tree describes, checked to be a ``base``.

    Parameters
    ----------
    spec : dict
        ``{"class": "module:QualName", "args": {...}}``.
    base : type
        The class the object must derive from.
    allowed : callable
        ``allowed(module_name) -> bool``: which modules may be imported
        (lenskit's own by default; pass the registry's check for plugins).
    """
    if not hasattr(spec, "keys") or set(spec.keys()) != {"class", "args"}:
        raise ConfigError(f"{path}: expected a description {{'class': 'module:Class', 'args': {{...}}}}; got {spec!r}")
    module, _, qualname = str(spec["class"]).partition(":")
    if not module or not qualname or not allowed(module):
        raise ConfigError(f"{path}: {spec['class']!r} is not a lenskit class or one of a registered plugin")
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{path}: {spec['class']!r} cannot be found ({exc})") from exc
    if not (isinstance(obj, type) and issubclass(obj, base) and issubclass(obj, Configurable)):
        raise ConfigError(f"{path}: {spec['class']!r} is not a {base.__name__}")
    args = {k: decode(v, f"{path}.{k}", allowed) for k, v in spec["args"].items()}
    return obj(**args)
