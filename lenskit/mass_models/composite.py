"""Composite lens: several mass components whose deflections add."""

import numpy as np
import torch

from lenskit.core.interfaces import MassModel
from lenskit.lensing.critical import self_similar_critical_radii, tangential_critical_rays
from lenskit.mass_models.shear import ExternalShear

__all__ = ["CompositeMassModel"]


class CompositeMassModel(MassModel):
    """
    A lens made of several `~lenskit.core.MassModel` components.

    Deflections, potentials, convergences and Hessians add.  Parameter names
    are those of the components; a name used by two components is prefixed
    with the component's index (``"0_x0"``, ``"1_x0"``).

    Parameters
    ----------
    components : sequence of MassModel
    """

    name = "composite"

    def __init__(self, components):
        components = list(components)
        if not components:
            raise ValueError("components must hold at least one MassModel")
        for i, c in enumerate(components):
            if not isinstance(c, MassModel):
                raise TypeError(f"components[{i}] must be a MassModel; got {type(c).__name__}")
        self.components = components
        counts = {}
        for c in components:
            for p in c.param_names:
                counts[p] = counts.get(p, 0) + 1
        self._maps = []
        names, units = [], {}
        for i, c in enumerate(components):
            m = {}
            for p in c.param_names:
                outer = p if counts[p] == 1 else f"{i}_{p}"
                m[outer] = p
                names.append(outer)
                units[outer] = c.param_units[p]
            self._maps.append(m)
        self.param_names = tuple(names)
        self.param_units = units
        self.param_ranges = {o: c.param_ranges[i] for c, m in zip(components, self._maps)
                             for o, i in m.items() if i in c.param_ranges}
        self.param_defaults = {o: c.param_defaults[i] for c, m in zip(components, self._maps)
                               for o, i in m.items() if i in c.param_defaults}

    def check_params(self, params):
        super().check_params(params)
        for c, m in zip(self.components, self._maps):
            c.check_params({inner: params[outer] for outer, inner in m.items()})

    def split(self, params):
        """Per-component parameter dicts."""
        return [{inner: params[outer] for outer, inner in m.items()} for m in self._maps]

    def _sum(self, method, x, y, params):
        total = None
        for c, p in zip(self.components, self.split(params)):
            out = getattr(c, method)(x, y, **p)
            if total is None:
                total = out
            elif isinstance(out, tuple):
                total = tuple(a + b for a, b in zip(total, out))
            else:
                total = total + out
        return total

    def _deflection(self, x, y, **params):
        return self._sum("_deflection", x, y, params)

    def _convergence(self, x, y, **params):
        return self._sum("_convergence", x, y, params)

    def _potential(self, x, y, **params):
        return self._sum("_potential", x, y, params)

    def _hessian(self, x, y, **params):
        return self._sum("_hessian", x, y, params)

    def multiple_image_regions(self, n=96, **params):
        """
        Tangential caustics and cuts of N systems at once, for one main lens plus external shear; else None.

        When one component has closed-form regions (an SIE or EPL) and the
        others are `~lenskit.mass_models.shear.ExternalShear`, the tangential
        critical curve of the whole lens is found along ``n`` rays from the
        main lens's centre and mapped to the source plane; the second curve is
        the main lens's own (its cut or radial caustic: the shear deflects the
        centre by nothing, so an isothermal lens's cut is unchanged).  For a
        self-similar main lens (`~lenskit.core.MassModel.hessian_exponent`:
        its Hessian ``H = s H_1`` with ``s = r**-t`` along a ray, ``H_1`` at
        unit distance) plus a constant shear ``Gamma``, the tangential
        eigenvalue ``1 - s kappa_1 - |s gamma_1 + Gamma|`` vanishes where
        ``s**2 (kappa_1**2 - |gamma_1|**2) - 2 s (kappa_1 + gamma_1 . Gamma) + 1 - |Gamma|**2 = 0``:
        the outermost crossing is the smallest positive root, in closed form
        (one Hessian per ray).  Otherwise the rays are searched
        (`lenskit.lensing.tangential_critical_rays`).  Other composites return
        None (the `~lenskit.Simulator` then traces each system's caustics).
        """
        parts = self.split(params)
        main = [i for i, c in enumerate(self.components) if not isinstance(c, ExternalShear)]
        if len(main) != 1:
            return None
        i = main[0]
        component, p = self.components[i], parts[i]
        own = component.multiple_image_regions(n=n, **p)
        if own is None:
            return None
        zero = np.zeros(np.shape(p["theta_E"]))
        centre = (np.asarray(p.get("x0", zero), float), np.asarray(p.get("y0", zero), float))
        t = component.hessian_exponent(**p)
        if t is None:
            crit = tangential_critical_rays(self, params, centre, p["theta_E"], n=n, radii=16, dtype=torch.float32)
            xt, yt = (torch.as_tensor(crit[..., j]) for j in (0, 1))
        else:
            xt, yt = self._critical_self_similar(component, p, parts, main[0], centre, np.asarray(t, float), n)
        pt = {k: torch.as_tensor(np.asarray(v, dtype=float))[:, None] for k, v in params.items()}
        ax, ay = self.deflection_tensor(xt, yt, **pt)
        return np.stack([(xt - ax).numpy(), (yt - ay).numpy()], -1), own[1]

    def _critical_self_similar(self, component, p, parts, main, centre, t, n):
        """The tangential critical curve of a self-similar lens plus constant shear, along n rays (float64)."""
        def col(v):
            return torch.as_tensor(np.asarray(v, dtype=float))[:, None]

        ang = torch.linspace(0, 2 * np.pi, n + 1, dtype=torch.float64)[:-1]
        ux, uy = torch.cos(ang), torch.sin(ang)
        x0, y0 = col(centre[0]), col(centre[1])
        hxx, hxy, hyy = component.hessian_tensor(x0 + ux, y0 + uy, **{k: col(v) for k, v in p.items()})
        g1s, g2s = torch.zeros_like(x0), torch.zeros_like(x0)
        for j, (c, q) in enumerate(zip(self.components, parts)):
            if j != main:  # external shears: constant Hessians [[g1, g2], [g2, -g1]]
                g1s, g2s = g1s + col(q["gamma1"]), g2s + col(q["gamma2"])
        r, _ = self_similar_critical_radii(hxx, hxy, hyy, col(t), g1s, g2s)
        return x0 + r * ux, y0 + r * uy

    def __repr__(self):
        return f"<CompositeMassModel {[c.name for c in self.components]}>"
