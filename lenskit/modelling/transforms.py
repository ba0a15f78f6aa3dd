"""
Parameter transforms of a fit: physical parameters <-> unbounded coordinates.

The optimiser of `lenskit.fit` works in unbounded coordinates ``z``; each
parameter's range (a `~lenskit.core.MassModel`'s ``param_ranges``, the
source's and lens light's below, or the caller's bounds) decides the map:

=====================  ===============================  ==========================
range                  physical value                   example
=====================  ===============================  ==========================
``(0, None)``          ``exp(z)``                       theta_E, radii
``(lo, None)``         ``lo + exp(z)``
``(-a, a)``            ``a tanh(z)``                    ellipticities, shear
``(lo, hi)``           ``lo + (hi - lo) sigmoid(z)``    Sérsic index, bounded theta_E
unbounded              ``z``                            positions
=====================  ===============================  ==========================
"""

import math

import torch

__all__ = ["ParameterTransform", "SOURCE_RANGES", "LIGHT_RANGES", "AT_BOUND_TOL", "AT_BOUND_ABS"]

#: `ParameterTransform.at_bounds`: a closed range's parameter within this fraction of its width from an end is at it
AT_BOUND_TOL = 0.01
#: `ParameterTransform.at_bounds`: an open range's parameter (radii) within this of its lower end has collapsed
AT_BOUND_ABS = 1e-4

#: Ranges of the elliptical Sérsic source's parameters in a fit.
SOURCE_RANGES = {"src_R_e": (0.0, None), "src_n": (0.3, 8.0), "src_e1": (-0.8, 0.8), "src_e2": (-0.8, 0.8)}
#: Ranges of the elliptical Sérsic lens light's parameters in a fit.
LIGHT_RANGES = {"light_R_e": (0.0, None), "light_n": (0.3, 8.0), "light_e1": (-0.8, 0.8), "light_e2": (-0.8, 0.8)}


def _kind(rng):
    if rng is None:
        return "free", None
    lo, hi = rng
    if hi is None:
        return ("log", lo) if lo is not None else ("free", None)
    if lo is None:
        raise ValueError(f"a range with an upper end only is not supported; got {rng}")
    if lo == -hi:
        return "tanh", hi
    return "logistic", (lo, hi)


class ParameterTransform:
    """
    Maps named physical parameters to unbounded coordinates and back.

    Parameters
    ----------
    names : sequence of str
        The fitted parameters, in the order of the coordinate vector.
    ranges : dict
        ``name -> (low, high)`` (``None`` for an open end); names not given
        are unbounded.
    """

    def __init__(self, names, ranges):
        self.names = list(names)
        self.kinds = {n: _kind(ranges.get(n)) for n in self.names}

    def to_free(self, name, value):
        """The unbounded coordinate of one physical value (a float)."""
        kind, arg = self.kinds[name]
        v = float(value)
        if kind == "log":
            return math.log(max(v - arg, 1e-3))
        if kind == "tanh":
            if abs(v) < 1e-3:  # |e| = 0 is a cusp of sqrt(e1^2 + e2^2): its gradient is 0/0
                v = 1e-3
            return math.atanh(max(min(v / arg, 0.999), -0.999))
        if kind == "logistic":
            lo, hi = arg
            f = min(max((v - lo) / (hi - lo), 1e-4), 1 - 1e-4)
            return math.log(f) - math.log(1 - f)
        return v

    def to_physical(self, name, z):
        """The physical value (a tensor) of one coordinate."""
        kind, arg = self.kinds[name]
        if kind == "log":
            return torch.exp(z) + arg if arg else torch.exp(z)
        if kind == "tanh":
            return arg * torch.tanh(z)
        if kind == "logistic":
            lo, hi = arg
            return lo + (hi - lo) * torch.sigmoid(z)
        return z

    def free(self, values, dtype=torch.float64):
        """The coordinate vector of a dict of physical values."""
        return torch.tensor([self.to_free(n, values[n]) for n in self.names], dtype=dtype)

    def physical(self, z):
        """Dict name -> physical tensor of a coordinate vector."""
        return {n: self.to_physical(n, z[i]) for i, n in enumerate(self.names)}

    def at_bounds(self, z, tol=AT_BOUND_TOL):
        """
        The parameters whose value at ``z`` lies at an end of its range: a list of ``(name, value, bound)``.

        A closed range's parameter is at an end within ``tol`` of the range's width (for ``(-a, a)``, of ``a``);
        an open range's (``(lo, None)``: radii) when it is within `AT_BOUND_ABS` of ``lo`` (it collapsed).  There the
        optimum lies outside the range (or on its edge), the transform's derivative vanishes, and neither the value
        nor its Laplace error is a measurement.
        """
        out = []
        for i, n in enumerate(self.names):
            kind, arg = self.kinds[n]
            zi = float(z[i])
            v = float(self.to_physical(n, torch.as_tensor(zi, dtype=torch.float64)))
            if kind == "logistic":
                lo, hi = arg
                f = (v - lo) / (hi - lo)
                if f < tol or f > 1 - tol:
                    out.append((n, v, lo if f < tol else hi))
            elif kind == "tanh" and abs(v) > arg * (1 - tol):
                out.append((n, v, math.copysign(arg, v)))
            elif kind == "log" and v - (arg or 0.0) < AT_BOUND_ABS:
                out.append((n, v, arg or 0.0))
        return out

    def jacobian(self, z):
        """d(physical) / d(z) at ``z`` (a square tensor), for mapping covariances."""
        return torch.autograd.functional.jacobian(
            lambda q: torch.stack([self.to_physical(n, q[i]) for i, n in enumerate(self.names)]), z)
