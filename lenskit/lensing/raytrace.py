"""Ray tracing and magnification for any `~lenskit.core.MassModel`."""

import astropy.units as u
import torch

from lenskit.core.arrays import from_tensor, prepare_call

__all__ = ["ray_trace", "magnification", "jacobian_determinant"]


def ray_trace(mass_model, x, y, **params):
    """
    Map image-plane positions to the source plane: ``beta = theta - alpha(theta)``.

    Parameters
    ----------
    mass_model : `~lenskit.core.MassModel`
    x, y : array-like, `torch.Tensor` or `~astropy.units.Quantity`
        Image-plane positions (arcsec when plain numbers).
    **params
        The model's parameters (broadcast against ``x`` and ``y``).

    Returns
    -------
    beta_x, beta_y
        Same type as ``x``.
    """
    xt, yt, pt, kind, like = prepare_call(mass_model, x, y, params)
    ax, ay = mass_model.deflection_tensor(xt, yt, **pt)
    return from_tensor((xt - ax, yt - ay), kind, like, u.arcsec)


def jacobian_determinant(mass_model, x, y, **params):
    """``det(I - H)`` where ``H`` is the Hessian of the lensing potential."""
    xt, yt, pt, kind, like = prepare_call(mass_model, x, y, params)
    return from_tensor(_det(mass_model, xt, yt, pt), kind, like, u.dimensionless_unscaled)


def _det(mass_model, xt, yt, pt):
    hxx, hxy, hyy = mass_model.hessian_tensor(xt, yt, **pt)
    return (1 - hxx) * (1 - hyy) - hxy * hxy


def magnification(mass_model, x, y, **params):
    """
    Signed point-source magnification ``1 / det(I - H)``.

    On a critical curve, where the determinant vanishes, the value is capped at
    ``1 / tiny`` of the dtype rather than infinite.
    """
    xt, yt, pt, kind, like = prepare_call(mass_model, x, y, params)
    det = _det(mass_model, xt, yt, pt)
    tiny = torch.finfo(det.dtype).tiny ** 0.5
    det = torch.where(det.abs() < tiny, torch.where(det < 0, -tiny, tiny), det)
    return from_tensor(1 / det, kind, like, u.dimensionless_unscaled)
