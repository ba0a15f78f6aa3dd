"""
Prior distributions for simulation parameters.

A prior can be given as a number (fixed), a ``(low, high)`` tuple (uniform),
or a `Prior` instance (`Uniform`, `Normal`, `LogUniform`, `Fixed`).
"""

import numbers

import numpy as np

__all__ = ["Prior", "Fixed", "Uniform", "LogUniform", "Normal", "as_prior"]


class Prior:
    """A one-dimensional distribution sampled with a `numpy.random.Generator`."""

    def sample(self, rng, n):
        raise NotImplementedError

    def to_config(self):
        raise NotImplementedError


class Fixed(Prior):
    def __init__(self, value):
        self.value = float(value)
        if not np.isfinite(self.value):
            raise ValueError(f"Fixed value must be finite; got {value}")

    def sample(self, rng, n):
        return np.full(n, self.value)

    def to_config(self):
        return {"fixed": self.value}

    def __repr__(self):
        return f"Fixed({self.value})"


class Uniform(Prior):
    def __init__(self, low, high):
        self.low, self.high = float(low), float(high)
        if not (np.isfinite(self.low) and np.isfinite(self.high) and self.low <= self.high):
            raise ValueError(f"Uniform needs finite low <= high; got ({low}, {high})")

    def sample(self, rng, n):
        return rng.uniform(self.low, self.high, n)

    def to_config(self):
        return {"uniform": [self.low, self.high]}

    def __repr__(self):
        return f"Uniform({self.low}, {self.high})"


class LogUniform(Prior):
    def __init__(self, low, high):
        self.low, self.high = float(low), float(high)
        if not (0 < self.low <= self.high):
            raise ValueError(f"LogUniform needs 0 < low <= high; got ({low}, {high})")

    def sample(self, rng, n):
        return np.exp(rng.uniform(np.log(self.low), np.log(self.high), n))

    def to_config(self):
        return {"loguniform": [self.low, self.high]}

    def __repr__(self):
        return f"LogUniform({self.low}, {self.high})"


class Normal(Prior):
    """Normal distribution, optionally truncated to [low, high] (by resampling)."""

    def __init__(self, mean, sigma, low=-np.inf, high=np.inf):
        self.mean, self.sigma = float(mean), float(sigma)
        self.low, self.high = float(low), float(high)
        if not (self.sigma >= 0 and self.low < self.high):
            raise ValueError(f"Normal needs sigma >= 0 and low < high; got sigma={sigma}, [{low}, {high}]")

    def sample(self, rng, n):
        out = rng.normal(self.mean, self.sigma, n)
        bad = (out < self.low) | (out > self.high)
        for _ in range(100):
            if not bad.any():
                break
            out[bad] = rng.normal(self.mean, self.sigma, int(bad.sum()))
            bad = (out < self.low) | (out > self.high)
        return np.clip(out, self.low, self.high)

    def to_config(self):
        return {"normal": [self.mean, self.sigma, self.low, self.high]}

    def __repr__(self):
        return f"Normal({self.mean}, {self.sigma}, low={self.low}, high={self.high})"


def as_prior(value, name="prior"):
    """Turn a number, a (low, high) tuple or a `Prior` into a `Prior`."""
    if isinstance(value, Prior):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return Fixed(value)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return Uniform(*value)
    if isinstance(value, dict) and len(value) == 1:
        (kind, args), = value.items()
        table = {"fixed": Fixed, "uniform": Uniform, "loguniform": LogUniform, "normal": Normal}
        if kind in table:
            return table[kind](*np.atleast_1d(args))
    raise TypeError(f"{name} must be a number, a (low, high) tuple, a Prior or a one-key dict; got {value!r}")
