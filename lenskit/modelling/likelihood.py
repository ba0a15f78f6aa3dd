"""
The model image of a lens and its Gaussian likelihood, with the linear amplitudes solved exactly.

A model is any registered `~lenskit.core.MassModel` (an external shear is
added through `~lenskit.mass_models.composite.CompositeMassModel`), an
elliptical Sérsic source and, optionally, an elliptical Sérsic lens light,
rendered by the one renderer (`lenskit.lensing.render`) on a supersampled
grid and convolved with the PSF (`lenskit.lensing.convolution.fft_convolve`).
The amplitudes of the source and the lens light enter linearly: `ImageLikelihood`
solves them by weighted least squares at every evaluation, so an optimiser
only sees the non-linear parameters.
"""

import torch

from lenskit.core.interfaces import MassModel
from lenskit.lensing.convolution import fft_convolve
from lenskit.lensing.light import elliptical_sersic, sersic_b
from lenskit.lensing.render import pixel_grid, render
from lenskit.mass_models.composite import CompositeMassModel
from lenskit.plugins import get

__all__ = ["lens_mass_model", "light_centre_names", "render_model", "ImageLikelihood",
           "SOURCE", "LIGHT"]

#: The elliptical Sérsic source's parameters (unit amplitude).
SOURCE = ("src_R_e", "src_n", "src_e1", "src_e2", "src_x", "src_y")
#: The elliptical Sérsic lens light's shape parameters (its centre is the mass centre, see `light_centre_names`).
LIGHT = ("light_R_e", "light_n", "light_e1", "light_e2")


def lens_mass_model(mass_model="sie", shear=True):
    """
    The `~lenskit.core.MassModel` of a fit: a registered name or an instance, plus an external shear.

    Parameters
    ----------
    mass_model : str or MassModel
        ``lenskit.available("mass_model")`` lists the names.
    shear : bool
        Add ``external_shear`` (about the origin: its constant part is the
        source position's, so the fit is the same as a shear about the lens).
    """
    if isinstance(mass_model, str):
        model = get("mass_model", mass_model)()
    elif isinstance(mass_model, MassModel):
        model = mass_model
    else:
        raise TypeError(f"mass_model must be a registered name or a MassModel; got {type(mass_model).__name__}")
    if shear:
        model = CompositeMassModel([model, get("mass_model", "external_shear")()])
    return model


def light_centre_names(mass_model):
    """The parameters that centre the lens light: the mass centre ``x0, y0``, else ``light_x, light_y``."""
    names = set(mass_model.param_names)
    return ("x0", "y0") if {"x0", "y0"} <= names else ("light_x", "light_y")


def render_model(values, shape, pixel_scale, psf=None, supersample=2, shear=True, lens_light=True, dtype=None,
                 *, mass_model=None):
    """
    Unit-amplitude source and lens-light images for a dict of physical parameter tensors.

    Parameters
    ----------
    values : dict of `torch.Tensor`
        The mass model's parameters, `SOURCE` and (with ``lens_light``) `LIGHT`.
    shape : (int, int)
    pixel_scale : float
        Arcsec per pixel.
    psf : `torch.Tensor`, optional
        Normalised kernel.
    supersample : int
    shear : bool
        With the default ``mass_model``: SIE plus external shear.
    mass_model : MassModel, optional
        Default ``lens_mass_model("sie", shear)``.

    Returns
    -------
    ``(source_image, lens_image or None)``, each (H, W), PSF-convolved.
    """
    model = lens_mass_model("sie", shear) if mass_model is None else mass_model
    dtype = dtype or next(iter(values.values())).dtype
    x, y = pixel_grid(shape, pixel_scale, supersample, dtype=dtype)
    X, Y = x.reshape(1, -1), y.reshape(-1, 1)
    n_s = values["src_n"]

    def source(bx, by):
        return elliptical_sersic(bx, by, values["src_e1"], values["src_e2"], values["src_x"], values["src_y"],
                                 values["src_R_e"], n_s, sersic_b(n_s), 1.0)

    light = None
    if lens_light:
        cx, cy = light_centre_names(model)
        n_l = values["light_n"]

        def light(xx, yy):
            return elliptical_sersic(xx, yy, values["light_e1"], values["light_e2"], values[cx], values[cy],
                                     values["light_R_e"], n_l, sersic_b(n_l), 1.0)

    src, lens, _ = render(model.deflection_tensor, {k: values[k] for k in model.param_names}, source, X, Y,
                          pixel_scale, supersample=supersample, light=light)
    if psf is None:
        return src, lens
    out = fft_convolve(torch.stack([src] if lens is None else [src, lens]), psf)
    return out[0], (out[1] if lens_light else None)


class ImageLikelihood:
    """
    Gaussian likelihood of one image under a lens model, amplitudes solved exactly.

    Parameters
    ----------
    data, weights : `torch.Tensor`
        (H, W) image (0 where masked) and inverse noise (0 where masked).
    pixel_scale : float
    psf : `torch.Tensor` or None
    mass_model : MassModel
    lens_light : bool
    supersample : int
        Sub-pixels per side of the full-resolution evaluation.
    """

    def __init__(self, data, weights, pixel_scale, psf, mass_model, lens_light, supersample=2):
        self.data = data
        self.weights = weights
        self.pixel_scale = float(pixel_scale)
        self.psf = psf
        self.mass_model = mass_model
        self.lens_light = bool(lens_light)
        self.supersample = int(supersample)
        self.shape = tuple(data.shape)

    def solve(self, values, supersample=None):
        """``(model image, amplitudes, unit lens-light image or None)`` of physical parameter tensors."""
        ss = self.supersample if supersample is None else int(supersample)
        h, w = self.shape
        src, lens = render_model(values, self.shape, self.pixel_scale, self.psf, ss, lens_light=self.lens_light,
                                 dtype=self.data.dtype, mass_model=self.mass_model)
        comps = [src.reshape(-1)] + ([lens.reshape(-1)] if self.lens_light else [])
        A = torch.stack(comps, 1) * self.weights.reshape(-1, 1)
        b = (self.data * self.weights).reshape(-1)
        ata = A.T @ A + 1e-12 * torch.eye(A.shape[1], dtype=self.data.dtype)
        amp = torch.linalg.solve(ata, A.T @ b)
        amp = torch.clamp(amp, min=0.0)
        model = sum(a * c for a, c in zip(amp, comps)).reshape(h, w)
        return model, amp, lens

    def nll(self, values, supersample=None):
        """Negative log-likelihood (chi-square / 2) of physical parameter tensors."""
        model, _, _ = self.solve(values, supersample)
        return 0.5 * (((self.data - model) * self.weights) ** 2).sum()
