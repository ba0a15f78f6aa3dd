"""
External shear about the origin: torch kernels.

``psi = gamma1 (x**2 - y**2) / 2 + gamma2 x y``, so
``alpha = (gamma1 x + gamma2 y, gamma2 x - gamma1 y)`` and kappa = 0.
"""

import torch

__all__ = ["deflection", "convergence", "potential", "hessian"]


def deflection(x, y, gamma1, gamma2):
    """(alpha_x, alpha_y) in arcsec."""
    return gamma1 * x + gamma2 * y, gamma2 * x - gamma1 * y


def convergence(x, y, gamma1, gamma2):
    """Zero everywhere (shaped like the broadcast inputs)."""
    return torch.zeros_like(x + y + gamma1)


def potential(x, y, gamma1, gamma2):
    """psi in arcsec**2."""
    return 0.5 * gamma1 * (x * x - y * y) + gamma2 * x * y


def hessian(x, y, gamma1, gamma2):
    """(psi_xx, psi_xy, psi_yy), constant."""
    z = torch.zeros_like(x + y + gamma1)
    return z + gamma1, z + gamma2, z - gamma1
