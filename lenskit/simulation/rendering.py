"""The simulator's stamps: noise-free arcs and lens light on an instrument's pixel grid (the one renderer)."""

import astropy.units as u
import numpy as np
import torch

from lenskit.lensing.light import elliptical_sersic, sersic_b, sersic_total_flux
from lenskit.lensing.render import pixel_grid, render

__all__ = ["StampRenderer"]


class StampRenderer:
    """
    Renders systems on an instrument's (supersampled) grid with `lenskit.lensing.render.render`.

    Parameters
    ----------
    mass_model : `~lenskit.core.MassModel`
    instrument : `~lenskit.core.Instrument`
    supersample : int
    device : `torch.device`
    dtype : `torch.dtype`
    compile : bool
        Fuse the deflection, light and source kernels with `torch.compile`.
    centre : (str, str) or None
        The mass parameters that centre the lens light (None: the model has no centre).
    """

    def __init__(self, mass_model, instrument, supersample=1, device="cpu", dtype=torch.float32, compile=False,
                 centre=None):
        self.mass_model = mass_model
        self.instrument = instrument
        self.supersample = int(supersample)
        self.device = torch.device(device)
        self.dtype = dtype
        self.compile = bool(compile)
        self.centre = centre
        self.pixel_scale = instrument.pixel_scale.to_value(u.arcsec)
        self._grid = None
        self._deflect = mass_model.deflection_tensor
        self._light = elliptical_sersic
        self._source_kernels = {}
        if self.compile:
            self._deflect = torch.compile(self._deflect)
            self._light = torch.compile(elliptical_sersic)

    def grid(self):
        """The (supersampled) pixel centres as (1, 1, W) and (1, H, 1) tensors, made once."""
        if self._grid is None:
            x, y = pixel_grid(self.instrument.shape, self.pixel_scale, self.supersample, self.device, self.dtype)
            self._grid = (x.reshape(1, 1, -1), y.reshape(1, -1, 1))
        return self._grid

    def tensor(self, a):
        """An array as a tensor of the renderer's dtype and device."""
        return torch.as_tensor(np.asarray(a, dtype=float), dtype=self.dtype, device=self.device)

    def render(self, params, source_positions, sources, source_flux, light=None, lens_flux=None):
        """
        Noise-free arcs and lens light of given systems (see `lenskit.Simulator.render`).

        Returns ``(arcs (n, bands, H, W), lens light or None, magnification (n,))``.
        """
        X, Y = self.grid()
        beta = np.asarray(source_positions, dtype=float)
        n = beta.shape[0]
        shape = (n, 1, 1)
        t = self.tensor
        pt = {k: t(v).reshape(shape) for k, v in params.items()}
        pix = self.pixel_scale
        lens_sb = None
        if light is not None:
            if self.centre is None:
                raise ValueError("lens light needs a mass model with a centre (x0, y0)")
            lens_sb = self._lens_light(light, pt, shape)
        sb, lb, total = render(self._deflect, pt, lambda bx, by: self.source_brightness(sources, bx, by), X, Y, pix,
                               supersample=self.supersample, light=lens_sb,
                               source_offset=(t(beta[:, 0]).reshape(shape), t(beta[:, 1]).reshape(shape)))
        mu = total.double().cpu().numpy() / np.asarray(sources.flux)
        arcs = sb.unsqueeze(1) * (t(source_flux) * pix * pix).reshape(n, -1, 1, 1)
        lens = None
        if lb is not None:
            lf = t(lens_flux) * pix * pix
            if lb.dim() == 3:  # one component: (n, H, W) times (n, bands)
                lens = lb.unsqueeze(1) * lf.reshape(n, -1, 1, 1)
            else:  # bulge and disc: (n, 2, H, W) with fluxes (n, 2, bands)
                if lf.dim() != 3 or lf.shape[1] != 2:
                    raise ValueError("lens_flux must be (n, 2, bands) for a lens light with a disc; "
                                     f"got shape {tuple(lf.shape)}")
                lens = torch.einsum("nchw,ncb->nbhw", lb, lf)
        return arcs, lens, mu

    def _lens_light(self, light, pt, shape):
        """The lens light's surface-brightness callable: one Sérsic, or a Sérsic bulge and an exponential disc."""
        t = self.tensor
        x0, y0 = pt[self.centre[0]], pt[self.centre[1]]
        if "light_dx" in light:
            x0, y0 = x0 + t(light["light_dx"]).reshape(shape), y0 + t(light["light_dy"]).reshape(shape)

        def args(e1, e2, R_e, nn):
            b = sersic_b(nn)
            return (t(e1).reshape(shape), t(e2).reshape(shape), x0, y0, t(R_e).reshape(shape),
                    t(nn).reshape(shape), t(b).reshape(shape), t(1.0 / sersic_total_flux(R_e, nn, b=b)).reshape(shape))

        bulge = args(light["light_e1"], light["light_e2"], light["light_R_e"], light["light_n"])
        if "light_disc_R_e" not in light:
            return lambda x, y: self._light(x, y, *bulge)
        R_d = np.asarray(light["light_disc_R_e"], dtype=float)
        disc = args(light["light_disc_e1"], light["light_disc_e2"], R_d, np.ones_like(R_d))
        return lambda x, y: torch.stack([self._light(x, y, *bulge), self._light(x, y, *disc)], 1)

    def source_brightness(self, src, bx, by):
        """Surface brightness of a `~lenskit.core.SourceBatch` at source-plane positions (its fused kernel if any)."""
        kernel = getattr(src, "kernel", None)
        if kernel is None:
            return src.brightness(bx, by)
        key = type(src)
        if key not in self._source_kernels:
            self._source_kernels[key] = torch.compile(kernel) if self.compile else kernel
        shape = (-1,) + (1,) * (bx.dim() - 1)
        return self._source_kernels[key](bx, by, *src.kernel_args(shape, bx.dtype, bx.device))
