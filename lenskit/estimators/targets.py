"""
Regression targets: ellipticity conventions, standardisation and the losses.

lenskit regresses the spin-2 ellipticity ``(e1, e2)`` (see
:doc:`/conventions`), which has no parity ambiguity.  Hezaveh et al. (2017)
regressed spin-1 components ``eps (cos phi, sin phi)``, for which phi and
phi + 180 deg give opposite vectors, and took the smaller of the losses
computed with ``(ex, ey)`` and ``(-ex, -ey)``; ``spin=1`` reproduces that.
"""

import math

import numpy as np
import torch

__all__ = ["TargetSpec", "gaussian_nll", "log_sigma", "UNITS"]

import astropy.units as u

UNITS = {"theta_E": u.arcsec, "x0": u.arcsec, "y0": u.arcsec, "e1": u.dimensionless_unscaled,
         "e2": u.dimensionless_unscaled, "gamma1": u.dimensionless_unscaled, "gamma2": u.dimensionless_unscaled,
         "p_lens": u.dimensionless_unscaled}


def log_sigma(raw, bound=6.0):
    """Smoothly bounded log standard deviation (``bound * tanh(raw / bound)``): never a dead gradient."""
    return bound * torch.tanh(raw / bound)


class TargetSpec:
    """
    Which quantities a network predicts, and how they are scaled.

    Parameters
    ----------
    names : sequence of str
        Target names in lenskit's conventions (``theta_E, e1, e2, x0, y0``).
    spin : {2, 1}
        Ellipticity representation inside the network.
    mean, std : sequence of float, optional
        Standardisation of the network-side targets (measured on simulated
        training data by `fit` when not given).
    """

    def __init__(self, names, spin=2, mean=None, std=None):
        self.names = tuple(names)
        if spin not in (1, 2):
            raise ValueError(f"spin must be 1 or 2; got {spin}")
        if spin == 1 and not {"e1", "e2"} <= set(self.names):
            raise ValueError("spin=1 needs both e1 and e2 among the targets")
        self.spin = spin
        k = len(self.names)
        self.mean = np.zeros(k) if mean is None else np.asarray(mean, float)
        self.std = np.ones(k) if std is None else np.asarray(std, float)
        if self.mean.shape != (k,) or self.std.shape != (k,) or np.any(self.std <= 0):
            raise ValueError("mean and std must have one entry per target, std > 0")

    @property
    def k(self):
        return len(self.names)

    def _idx(self):
        return self.names.index("e1"), self.names.index("e2")

    def to_network(self, y):
        """lenskit-convention targets (N, k) tensor -> network space (spin conversion, standardisation)."""
        y = y.clone()
        if self.spin == 1:
            i1, i2 = self._idx()
            e = torch.sqrt(y[:, i1] ** 2 + y[:, i2] ** 2)
            phi = 0.5 * torch.atan2(y[:, i2], y[:, i1])
            y[:, i1], y[:, i2] = e * torch.cos(phi), e * torch.sin(phi)
        m = torch.as_tensor(self.mean, dtype=y.dtype, device=y.device)
        s = torch.as_tensor(self.std, dtype=y.dtype, device=y.device)
        return (y - m) / s

    def from_network(self, mu, sigma=None):
        """Network-space means (and standard deviations) -> lenskit conventions."""
        m = torch.as_tensor(self.mean, dtype=mu.dtype, device=mu.device)
        s = torch.as_tensor(self.std, dtype=mu.dtype, device=mu.device)
        y = mu * s + m
        sd = None if sigma is None else sigma * s
        if self.spin == 1:
            i1, i2 = self._idx()
            ex, ey = y[:, i1].clone(), y[:, i2].clone()
            e = torch.sqrt(ex**2 + ey**2)
            phi = torch.atan2(ey, ex)
            y[:, i1], y[:, i2] = e * torch.cos(2 * phi), e * torch.sin(2 * phi)
            if sd is not None:
                # the modulus is unchanged and the angle doubles: radial errors carry over, tangential
                # errors double; report the isotropic mean of the two
                r = torch.sqrt(0.5 * (sd[:, i1] ** 2 + sd[:, i2] ** 2))
                sd[:, i1] = sd[:, i2] = r * math.sqrt(2.5)
        return y, sd

    def to_config(self):
        return {"names": list(self.names), "spin": self.spin, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_config(cls, c):
        return cls(c["names"], c.get("spin", 2), c.get("mean"), c.get("std"))


def gaussian_nll(out, y, k, spec=None, uncertainty=True):
    """
    Loss of network outputs ``out`` (N, k or 2k) against network-space targets ``y`` (N, k).

    The means are trained by the mean squared error.  With ``uncertainty``
    the outputs are (mean, log sigma) and the Gaussian negative
    log-likelihood of the detached residuals is added, which trains sigma to
    the size of the errors without touching the means (a plain
    likelihood lets an overconfident sigma blow up or stall the means).  With
    a spin-1 ``spec`` the loss is also computed with the ellipticity
    components negated (in physical units) and the smaller one is kept
    (Hezaveh et al. 2017).
    """
    mu = out[:, :k]

    def per_sample(target):
        mse = ((target - mu) ** 2).mean(1)
        if not uncertainty:
            return mse
        # the means learn from the squared error alone; the standard deviations learn the
        # Gaussian likelihood of the (detached) residuals, so a poorly calibrated sigma can
        # never stall or destabilise the means
        log_s = log_sigma(out[:, k:2 * k])
        resid = (target - mu).detach()
        nll = (0.5 * (resid * torch.exp(-log_s)) ** 2 + log_s).mean(1) + 0.5 * math.log(2 * math.pi)
        return mse + nll

    loss = per_sample(y)
    if spec is not None and spec.spin == 1:
        i1, i2 = spec._idx()
        alt = y.clone()
        m = torch.as_tensor(spec.mean, dtype=y.dtype, device=y.device)
        s = torch.as_tensor(spec.std, dtype=y.dtype, device=y.device)
        for i in (i1, i2):
            alt[:, i] = (-(y[:, i] * s[i] + m[i]) - m[i]) / s[i]
        loss = torch.minimum(loss, per_sample(alt))
    return loss.mean()
