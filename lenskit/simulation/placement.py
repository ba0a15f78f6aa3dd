"""Placing sources in (or near) the multiply-imaged region of the source plane."""

import numpy as np
from matplotlib.path import Path

from lenskit.lensing.critical import multiple_image_region

__all__ = ["SourcePlacer"]


class SourcePlacer:
    """
    Source positions inside the multiply-imaged region, grown by up to ``1 + caustic_margin``.

    The region comes from the mass model's closed forms when it has them
    (`~lenskit.core.MassModel.multiple_image_regions`, all systems at once),
    else from traced caustics; a model without caustics gets a disc of half
    its Einstein radius.
    """

    def __init__(self, mass_model, caustic_margin=0.1):
        self.mass_model = mass_model
        self.caustic_margin = float(caustic_margin)
        self.mass_names = list(mass_model.param_names)

    def regions(self, p):
        """Per system, the polygons bounding the multiply-imaged region."""
        n = len(next(iter(p.values())))
        closed = self.mass_model.multiple_image_regions(n=96, **{k: p[k] for k in self.mass_names})
        if closed is not None:  # the model has them in closed form, for all systems at once
            caustic, cut = closed
            return [[caustic[i], cut[i]] for i in range(n)]
        out = []
        for i in range(n):
            try:
                out.append(multiple_image_region(self.mass_model, n=96, **{k: float(v[i]) for k, v in p.items()}))
            except Exception:  # a model without caustics: fall back to a disc of radius theta_E
                out.append([])
        return out

    def place(self, p, extra, rng):
        """``(positions (n, 2) arcsec, whether each is inside the multiply-imaged region)``."""
        n = len(extra["theta_E"])
        regions = self.regions(p)
        beta = np.zeros((n, 2))
        inside = np.zeros(n, dtype=bool)
        margin = 1 + rng.uniform(0, self.caustic_margin, n)
        for i in range(n):
            c = np.array([extra["x0"][i], extra["y0"][i]])
            polys = [poly for poly in regions[i] if len(poly) >= 3 and np.all(np.isfinite(poly))]
            if not polys:
                r = extra["theta_E"][i] * np.sqrt(rng.uniform(0, 1)) * 0.5
                a = rng.uniform(0, 2 * np.pi)
                beta[i] = c + r * np.array([np.cos(a), np.sin(a)])
                continue
            grown = [c + (poly - c) * margin[i] for poly in polys]
            paths = [Path(g) for g in grown]
            allpts = np.concatenate(grown)
            lo, hi = allpts.min(0), allpts.max(0)
            for _ in range(20):
                cand = lo + (hi - lo) * rng.random((64, 2))
                ok = np.zeros(64, dtype=bool)
                for path in paths:
                    ok |= path.contains_points(cand)
                if ok.any():
                    beta[i] = cand[np.argmax(ok)]
                    break
            else:
                beta[i] = c
            inside[i] = any(Path(poly).contains_point(beta[i]) for poly in polys)
        return beta, inside
