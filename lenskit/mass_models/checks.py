"""Parameter checks shared by the elliptical mass profiles (NumPy values in their units)."""

import numpy as np

__all__ = ["check_elliptical"]


def check_elliptical(name, params):
    """
    ``theta_E > 0`` and ``e1**2 + e2**2 < 1`` (q in (0, 1]), or a `ValueError` naming ``name`` and the values.

    Parameters
    ----------
    name : str
        The mass model's registry name, for the message.
    params : dict
        Holds ``theta_E``, ``e1`` and ``e2``.
    """
    theta_E = np.asarray(params["theta_E"], dtype=float)
    if np.any(theta_E <= 0):
        raise ValueError(f"{name}: theta_E must be > 0 arcsec; got {theta_E[theta_E <= 0].ravel()[:5]}")
    c = np.hypot(np.asarray(params["e1"], float), np.asarray(params["e2"], float))
    if np.any(c >= 1):
        raise ValueError(f"{name}: sqrt(e1**2 + e2**2) must be < 1 (q in (0, 1]); got {c[c >= 1].ravel()[:5]}")
