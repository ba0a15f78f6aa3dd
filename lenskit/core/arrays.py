"""Conversion between the public array types (NumPy, Quantity, torch) and kernel tensors."""

import astropy.units as u
import numpy as np
import torch

from lenskit.core.validation import to_value

__all__ = ["prepare_call", "from_tensor", "as_tensor", "broadcast_shape", "atan_", "atanh_", "exp_", "log_",
           "at_least", "flat_nonzero"]


def broadcast_shape(*shapes):
    """
    The shape ``shapes`` broadcast to (a tuple), as `torch.broadcast_shapes` gives it.

    Without its costs on the simulator's hot paths: torch's first call imports
    SymPy (0.4 s on a 2-core machine, in the middle of a user's first
    ``sample``), and every call takes about 20 microseconds.  Raises
    ValueError when the shapes do not broadcast.
    """
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for s in shapes:
        for i, d in enumerate(s, ndim - len(s)):
            if d != 1:
                if out[i] != 1 and out[i] != d:
                    raise ValueError(f"shapes {[tuple(t) for t in shapes]} do not broadcast together")
                out[i] = d
    return tuple(out)


def _numpy_has_svml():
    """Whether NumPy's float32 / float64 transcendental loops are its AVX-512 (SVML) ones on this CPU."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__  # private: NumPy's CPU dispatch, NumPy >= 2
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__  # its NumPy 1 name
        except ImportError:
            return False
    return bool(__cpu_features__.get("AVX512_SKX"))


#: NumPy's transcendental ufuncs in place of torch's on the simulator's CPU tensors (see `atan_`).
NUMPY_UFUNCS = _numpy_has_svml()


def _ufunc_(t, ufunc, method):
    if NUMPY_UFUNCS and t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) and \
            t.is_contiguous() and not (t.requires_grad and torch.is_grad_enabled()):
        a = t.detach().numpy()
        with np.errstate(all="ignore"):  # torch's semantics: inf and NaN where they belong, no warnings
            ufunc(a, out=a)
        torch.autograd.graph.increment_version(t)  # an in-place change, as torch's own method records it
        return t
    return getattr(t, method)()


def atan_(t):
    """
    ``t.atan_()``, through NumPy's vectorised loop where that is faster.

    On CPUs with AVX-512, NumPy's float32 and float64 ``arctan``, ``arctanh``,
    ``exp`` and ``log`` (Intel's SVML) take 1.5-6 times less time than
    torch's (measured on an AMD EPYC with AVX-512, one thread: arctan 0.12
    against 0.73 ms for 295,000 float32 values, arctanh 0.16 against 0.40,
    exp 0.14 against 0.24, log 0.14 against 0.32).  The simulator's in-place
    kernels (SIE deflection, Sérsic profiles) call these four for new,
    contiguous CPU tensors without gradients; anything else (CUDA, autograd,
    views, other CPUs) takes torch's own method.  Both are accurate to a few
    units in the last place; their results may differ by as much.
    """
    return _ufunc_(t, np.arctan, "atan_")


def atanh_(t):
    """``t.atanh_()``, through NumPy's vectorised loop where that is faster (see `atan_`)."""
    return _ufunc_(t, np.arctanh, "atanh_")


def exp_(t):
    """``t.exp_()``, through NumPy's vectorised loop where that is faster (see `atan_`)."""
    return _ufunc_(t, np.exp, "exp_")


def log_(t):
    """``t.log_()``, through NumPy's vectorised loop where that is faster (see `atan_`)."""
    return _ufunc_(t, np.log, "log_")


def _plain_cpu(t):
    return t.device.type == "cpu" and t.is_contiguous() and not t.requires_grad


def at_least(t, threshold):
    """
    ``t >= threshold`` as a boolean tensor, through NumPy for a contiguous CPU tensor and threshold.

    Torch's comparison of a (N, ...) batch with a per-image threshold shaped
    (N, 1, ..., 1) takes about 0.74 ns per element on one thread; NumPy's
    0.2 ns (measured on 1.2 million float32 values, the development machine).
    The simulator's noise compares every pixel with its image's threshold.
    """
    if _plain_cpu(t) and torch.is_tensor(threshold) and _plain_cpu(threshold) and threshold.dtype == t.dtype:
        return torch.from_numpy(np.greater_equal(t.numpy(), threshold.numpy()))
    return t >= threshold


def flat_nonzero(mask):
    """
    The flat (row-major) indices of a boolean tensor's True elements, as a ``torch.long`` tensor.

    ``mask.reshape(-1).nonzero()[:, 0]``, through NumPy's ``flatnonzero`` for a
    contiguous CPU tensor: 0.17 against 2.5 ns per element for torch's
    ``nonzero`` (one thread, 1.2 million elements, few of them True).
    """
    if _plain_cpu(mask):
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return mask.reshape(-1).nonzero()[:, 0]


def as_tensor(value, name, unit=u.arcsec, like=None, dtype=None):
    """Convert a number, array, Quantity or tensor to a tensor (in ``unit``)."""
    if isinstance(value, torch.Tensor):
        t = value
    else:
        v = to_value(value, unit, name)
        arr = np.asarray(v)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be numeric; got {arr.dtype}")
        if dtype is None:
            dtype = like.dtype if like is not None else (torch.float32 if arr.dtype == np.float32 else torch.float64)
        t = torch.as_tensor(arr, dtype=dtype)
    if like is not None:
        t = t.to(device=like.device, dtype=like.dtype)
    return t


def prepare_call(model, x, y, params):
    """
    Validate and convert the arguments of a public `MassModel` method.

    Returns tensors for ``x``, ``y`` and each parameter, the input kind
    (``"torch"``, ``"quantity"`` or ``"numpy"``) and the reference tensor.
    """
    kind = "torch" if isinstance(x, torch.Tensor) else "quantity" if isinstance(x, u.Quantity) else "numpy"
    xt = as_tensor(x, "x")
    if not xt.is_floating_point():
        xt = xt.to(torch.float64)
    yt = as_tensor(y, "y", like=xt)
    try:
        broadcast_shape(xt.shape, yt.shape)
    except ValueError as exc:
        raise ValueError(f"x and y must broadcast together; got shapes {tuple(xt.shape)} and {tuple(yt.shape)}") from exc
    if not (torch.isfinite(xt).all() and torch.isfinite(yt).all()):
        raise ValueError("x and y must be finite")
    numeric = {}
    for name in params:
        unit = model.param_units.get(name, u.dimensionless_unscaled)
        v = params[name]
        numeric[name] = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else to_value(v, unit, name)
    model.check_params(numeric)
    pt = {name: as_tensor(params[name], name, model.param_units.get(name, u.dimensionless_unscaled), like=xt)
          for name in model.param_names}
    return xt, yt, pt, kind, xt


def from_tensor(out, kind, like, unit):
    """Convert kernel output back to the caller's array type."""
    if isinstance(out, tuple):
        return tuple(from_tensor(o, kind, like, unit) for o in out)
    if kind == "torch":
        return out
    arr = out.detach().cpu().numpy()
    if kind == "quantity":
        return arr * unit
    return arr
