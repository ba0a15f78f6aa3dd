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

    def closed_regions(self, p):
        """The mass model's closed-form ``(caustic, cut)`` for all systems, each (n, 96, 2), or None."""
        return self.mass_model.multiple_image_regions(n=96, **{k: p[k] for k in self.mass_names})

    def regions(self, p, closed=...):
        """Per system, the polygons bounding the multiply-imaged region (``closed``: `closed_regions` if known)."""
        n = len(next(iter(p.values())))
        closed = self.closed_regions(p) if closed is ... else closed
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
        closed = self.closed_regions(p)
        if closed is not None and n and all(np.all(np.isfinite(poly)) for poly in closed):
            return self._place_all(np.stack(closed, 1), extra, rng)
        return self._place_each(self.regions(p, closed), extra, rng)

    def _place_all(self, polys, extra, rng, tries=4):
        """
        Every system at once (closed-form regions): ``polys`` (n, k, V, 2), candidates in each system's box.

        Rounds of ``tries`` candidates per system; a system keeps its first candidate inside the grown
        region; the few without one after 20 rounds sit at the lens centre (as `_place_each`).
        """
        n = polys.shape[0]
        c = np.stack([extra["x0"], extra["y0"]], 1)  # (n, 2)
        margin = 1 + rng.uniform(0, self.caustic_margin, n)
        grown = c[:, None, None, :] + (polys - c[:, None, None, :]) * margin[:, None, None, None]
        lo = grown.reshape(n, -1, 2).min(1)
        hi = grown.reshape(n, -1, 2).max(1)
        beta = c.copy()
        todo = np.arange(n)
        for _ in range(20):
            if not len(todo):
                break
            cand = lo[todo, None] + (hi - lo)[todo, None] * rng.random((len(todo), tries, 2))
            ok = _inside_any(grown[todo], cand)  # (m, tries)
            hit = ok.any(1)
            beta[todo[hit]] = cand[hit, np.argmax(ok[hit], 1)]
            todo = todo[~hit]
        inside = _inside_any(polys, beta[:, None, :])[:, 0]
        return beta, inside

    def _place_each(self, regions, extra, rng):
        """One system at a time (regions traced numerically, or none)."""
        n = len(extra["theta_E"])
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


def _inside_any(polys, pts):
    """
    Whether points lie inside any of the polygons (even-odd rule), all systems at once.

    ``polys`` (n, k, V, 2) closed polygons (the last vertex joins the first), ``pts`` (n, m, 2); returns (n, m).
    """
    x = pts[:, None, :, None, 0]  # (n, 1, m, 1)
    y = pts[:, None, :, None, 1]
    x1 = polys[:, :, None, :, 0]  # (n, k, 1, V)
    y1 = polys[:, :, None, :, 1]
    x2 = np.roll(x1, -1, axis=-1)
    y2 = np.roll(y1, -1, axis=-1)
    straddle = (y1 > y) != (y2 > y)
    dy = np.where(straddle, y2 - y1, 1.0)
    cross = straddle & (x < x1 + (y - y1) * (x2 - x1) / dy)
    return (np.count_nonzero(cross, axis=-1) % 2 == 1).any(1)
