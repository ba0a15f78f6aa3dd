"""
Argument checks shared by every lenskit module.

Each check raises a `ValueError` or `TypeError` that names the argument, the
value received and what was expected, before any work starts.
"""

import numbers

import astropy.units as u
import numpy as np

__all__ = [
    "as_rng",
    "as_float",
    "to_value",
    "check_finite",
    "check_images",
    "as_real_array",
    "check_positive",
    "check_choice",
    "check_int",
    "check_number",
    "as_device",
    "row_indices",
    "indefinite",
]


def as_rng(seed):
    """
    Return a `numpy.random.Generator` from a seed, a generator or None.

    Parameters
    ----------
    seed : None, int, `numpy.random.SeedSequence` or `numpy.random.Generator`

    Returns
    -------
    `numpy.random.Generator`
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (numbers.Integral, np.random.SeedSequence)):
        if isinstance(seed, numbers.Integral) and seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {seed}")
        return np.random.default_rng(seed)
    raise TypeError(
        f"seed must be None, an int, a numpy SeedSequence or a numpy Generator; got {type(seed).__name__}"
    )


#: lenskit's unit for each kind of quantity: a Quantity whose expected unit is not named converts to these.
CANONICAL_UNITS = (u.arcsec, u.km / u.s, u.mag, u.s, u.electron / u.s, u.dimensionless_unscaled)


def as_float(value, name, unit=None, *, finite=True):
    """
    One plain number from a number or a scalar `~astropy.units.Quantity`.

    The one place where lenskit turns what a user passes for a unit-carrying
    argument into the number its kernels use: plain numbers are taken to be in
    ``unit`` already; Quantities are converted to ``unit`` (or, when ``unit``
    is None, to lenskit's unit of their kind in `CANONICAL_UNITS`: arcsec for
    angles, km/s, mag, s).

    Parameters
    ----------
    value : number or scalar Quantity
    name : str
        The argument's name, used in every error message.
    unit : `~astropy.units.Unit`, optional
    finite : bool
        Refuse NaN and infinity.

    Raises
    ------
    TypeError
        Not a number (a string, None, a bool, an array).
    `~astropy.units.UnitConversionError`
        A Quantity of the wrong kind (a ``ValueError``).
    ValueError
        NaN or infinite when ``finite``; an array Quantity.
    """
    if isinstance(value, u.Quantity):
        if not value.isscalar:
            raise ValueError(f"{name} must be a scalar; got a Quantity of shape {value.shape}")
        target = unit
        if target is None:
            target = next((c for c in CANONICAL_UNITS if value.unit.is_equivalent(c)), None)
            if target is None:
                raise u.UnitConversionError(f"{name} has unit {value.unit}, which lenskit does not use here")
        try:
            v = float(value.to_value(target))
        except u.UnitConversionError as exc:
            kind = "dimensionless" if target == u.dimensionless_unscaled else f"in units of {target}"
            raise u.UnitConversionError(f"{name} must be {kind} (convertible to {target}); got {value}") from exc
    elif isinstance(value, (bool, np.bool_)) or value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a number{f' (or a Quantity in {unit})' if unit not in (None, u.one) else ''}"
                        f"; got {value!r}")
    elif isinstance(value, numbers.Real) or (isinstance(value, np.ndarray) and value.ndim == 0
                                             and value.dtype.kind in "iuf"):
        v = float(value)
    else:
        raise TypeError(f"{name} must be a number{f' (or a Quantity in {unit})' if unit not in (None, u.one) else ''}"
                        f"; got {type(value).__name__} {value!r}")
    if finite and not np.isfinite(v):
        raise ValueError(f"{name} must be finite; got {v}")
    return v


def to_value(value, unit, name, equivalencies=None):
    """
    Return ``value`` as a float array in ``unit``.

    Plain numbers are taken to be in ``unit`` already; Quantities are
    converted, and a Quantity whose unit cannot be converted raises a
    `~astropy.units.UnitConversionError` naming the argument.
    """
    if isinstance(value, u.Quantity):
        try:
            return value.to_value(unit, equivalencies=equivalencies or [])
        except u.UnitConversionError as exc:
            raise u.UnitConversionError(
                f"{name} must be in units convertible to {str(unit) or 'dimensionless'}; got {value.unit}"
            ) from exc
    if unit is not None and unit != u.dimensionless_unscaled and hasattr(value, "unit"):
        raise TypeError(f"{name} has an unexpected unit attribute: {value!r}")
    return value


def check_finite(name, value):
    """Raise `ValueError` if ``value`` holds NaN or infinity."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "fc":
        return value
    # one pass without a temporary array: a sum is finite only if every term is, and float64 cannot overflow
    # adding float32 / float16 values (a float64 array's sum may, and is then checked element by element)
    if arr.size and arr.dtype.kind == "f" and arr.dtype.itemsize <= 4:
        with np.errstate(invalid="ignore"):  # inf - inf
            total = np.sum(arr, dtype=np.float64)
        if np.isfinite(total):
            return value
    elif np.all(np.isfinite(arr)):
        return value
    n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
    if n_bad:
        raise ValueError(f"{name} contains {n_bad} NaN or infinite value(s)")
    return value


def check_positive(name, value, allow_zero=False):
    """Raise `ValueError` unless every element of ``value`` is finite and > 0 (>= 0)."""
    arr = np.asarray(value, dtype=float)
    check_finite(name, arr)
    bad = arr < 0 if allow_zero else arr <= 0
    if np.any(bad):
        what = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {what}; got {arr[bad].ravel()[:5]}")
    return value


def check_choice(name, value, choices):
    """Raise `ValueError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(map(str, choices))}; got {value!r}")
    return value


def as_real_array(value, name, dtype=np.float64):
    """
    ``value`` as a real array of ``dtype``; complex, object, string or boolean input is a `TypeError`
    naming ``name`` (numpy would drop an imaginary part with only a warning).
    """
    if isinstance(value, u.Quantity):
        value = value.value
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real numeric array; got dtype {arr.dtype}")
    return arr.astype(dtype, copy=False)


def check_images(images, name="images", ndim=4, allow_nan=False):
    """
    Check an image stack shaped (N, bands, H, W) and return it as float32 numpy.

    A 2-D image is promoted to (1, 1, H, W) and a 3-D stack to (N, 1, H, W)
    when ``ndim`` is 4.
    """
    try:
        import torch  # heavy (torch): `import lenskit` stays light

        if isinstance(images, torch.Tensor):
            images = images.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if isinstance(images, u.Quantity):
        images = images.value
    arr = np.asarray(images)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array; got dtype {arr.dtype}")
    if ndim == 4:
        if arr.ndim == 2:
            arr = arr[None, None]
        elif arr.ndim == 3:
            arr = arr[:, None]
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions (N, bands, H, W); got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not allow_nan:
        check_finite(name, arr)
    return arr


def check_int(name, value, minimum=None, maximum=None, allow_none=False):
    """
    Return ``value`` as an int, or raise naming ``name``.

    Refuses bools, floats with a fractional part, NaN, strings and values
    outside [``minimum``, ``maximum``] (`TypeError` for the wrong type,
    `ValueError` for a wrong value).
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, numbers.Real)):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        if not np.isfinite(value) or int(value) != value:
            raise ValueError(f"{name} must be an integer; got {value!r}")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name} must be <= {maximum}; got {v}")
    return v


def check_number(name, value, low=None, high=None, low_open=False, high_open=False, allow_none=False):
    """
    Return ``value`` as a finite float inside the given bounds, or raise naming ``name``.

    ``low_open`` / ``high_open`` exclude the bounds themselves.
    """
    if value is None and allow_none:
        return None
    v = as_float(value, name)
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}; got {v}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}; got {v}")
    return v


def as_device(device, name="device"):
    """
    ``device`` as a `torch.device` this machine has: a `ValueError` naming ``name`` for a string torch does not
    parse, or for a CUDA or MPS device that is not there (before any work, not at the first tensor moved).
    """
    import torch  # heavy: only where a device is asked for

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a torch device such as 'cpu', 'cuda' or 'cuda:1'; got {device!r}") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name} {device!r}: this machine's torch ({torch.__version__}) sees no CUDA device; "
                             f"use 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{name} {device!r}: there are {torch.cuda.device_count()} CUDA device(s) "
                             f"(0 to {torch.cuda.device_count() - 1})")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"{name} {device!r}: MPS is not available on this machine; use 'cpu'")
    return dev


def row_indices(index, n, what="a dataset", unit="system(s)"):
    """
    The rows ``index`` selects of ``n`` (an integer, a slice, or an integer or boolean array) as an integer
    array: an `IndexError` or `TypeError` naming the index for one out of range, of another kind, or selecting
    none (so that an empty selection fails here, not at the first use of its arrays).
    """
    if isinstance(index, (bool, np.bool_)):
        raise TypeError(f"index must be an integer, a slice or an integer or boolean array; got {index!r}")
    if isinstance(index, (int, np.integer)):
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for {what} of {n} {unit}")
        return np.array([int(index) % n])
    try:
        idx = np.arange(n)[index]
    except (IndexError, TypeError, ValueError) as exc:
        raise type(exc)(f"index: {exc} ({what} of {n} {unit} takes an integer, a slice or an integer or "
                        f"boolean array)") from exc
    if idx.ndim != 1:
        raise IndexError(f"index must select rows along one axis; got {index!r}")
    if not len(idx):
        raise IndexError(f"index {index!r} selects none of the {n} {unit} of {what}")
    return idx


def indefinite(noun):
    """``noun`` with its indefinite article, for messages: ``"an Estimate"``, ``"a LensDataset"``."""
    noun = str(noun)
    return f"{'an' if noun[:1].lower() in 'aeiou' and noun[:1] else 'a'} {noun}"
