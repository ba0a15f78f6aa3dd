"""Composite lens: several mass components whose deflections add."""

from lenskit.core.interfaces import MassModel

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

    def __repr__(self):
        return f"<CompositeMassModel {[c.name for c in self.components]}>"
