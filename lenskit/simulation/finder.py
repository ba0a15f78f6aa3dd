"""
Labelled cutouts for training and testing lens finders (Lanusse et al. 2018, Section 4).

Every cutout holds an elliptical lens galaxy (Sérsic light aligned with an
SIE mass whose Einstein radius follows from its velocity dispersion and
redshift) and unlensed line-of-sight galaxies; a fraction of the cutouts
also hold a lensed background source.  Lenses and non-lenses come from the
same population and the same instrument, so only the arcs tell them apart.
"""

import numpy as np
from astropy.table import vstack

from lenskit.core.dataset import LensDataset
from lenskit.core.priors import EinsteinRadius, Fixed, Uniform
from lenskit.core.provenance import Provenance, array_checksum
from lenskit.core.validation import as_rng
from lenskit.plugins import get
from lenskit.simulation.simulator import Simulator

__all__ = ["LensFinderSimulator"]


class LensFinderSimulator:
    """
    Simulate lenses and non-lenses for a lens finder.

    Parameters
    ----------
    instrument : str or `~lenskit.core.Instrument`, optional
        Default ``LSST.lanusse2018(mode=mode, bands=bands)``: 45 x 45 g-band
        cutouts at 0.18" (Lanusse et al. 2018, Table 1).
    mode : {"single_epoch", "stack"}
        Best-seeing single exposure, or the worst-seeing deep stack.
    bands : sequence of str
        ``("g",)`` as in the paper; ``("g", "r", "i")`` for colour.
    lens_fraction : float
        Fraction of cutouts holding a lensed source (0.5 in the paper).
    source : str or `~lenskit.core.Source`
        Background galaxies (default ``"sersic_clump"``; real galaxies such as
        ``"great3"`` work too).
    sigma_v, z_lens, z_source : prior
        Lens population: 150-350 km/s, 0.2-0.7 and 2 (Lanusse et al. 2018).
    axis_ratio : (float, float)
        q range of the lenses, 0.5-1.
    source_mag : prior
        Unlensed source magnitude in the reference band (r); the default
        23.5-27.5 gives arc S/N (eq. 10) from a few to a few hundred, median
        about 60 (with the default magnification cut), on the single-epoch g-band
        cutouts.
    min_magnification : float
        Lensed sources must be multiply imaged with at least this total
        magnification.  The default 5 keeps sources near the caustics, where
        they form arcs and rings, as Lanusse et al. (2018, Section 4.2) place
        theirs "so as to produce lensed arcs".  With 2 (the estimators'
        setting) most lensed sources are widely separated doubles of compact
        galaxies, which at 0.18" look like the line-of-sight galaxies.
    line_of_sight : `~lenskit.simulation.line_of_sight.LineOfSight` or bool
        Unlensed field galaxies in every cutout (default True).
    priors : dict, optional
        Further `~lenskit.Simulator` priors (``lens_mag``, ``source_mag`` ...).
    seed : int, optional
    split : {"train", "validation", "test"}, optional
        Real-galaxy split of the sources.

    Notes
    -----
    The lens light shares the mass's axis ratio and angle, as in the paper.
    Its magnitude is drawn from ``priors["lens_mag"]`` (default the survey
    prior, r = 18.5-21.5) independently of sigma_v: a simplification of the
    paper's matching to COSMOS ellipticals.
    """

    def __init__(self, instrument=None, *, mode="single_epoch", bands=("g",), lens_fraction=0.5, source="sersic_clump",
                 sigma_v=(150.0, 350.0), z_lens=(0.2, 0.7), z_source=2.0, axis_ratio=(0.5, 1.0), source_mag=(23.5, 27.5),
                 min_magnification=5.0, line_of_sight=True, priors=None, seed=None, split=None, **kwargs):
        if not 0 <= lens_fraction <= 1:
            raise ValueError(f"lens_fraction must be within [0, 1]; got {lens_fraction}")
        lo, hi = axis_ratio
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"axis_ratio must satisfy 0 < low <= high <= 1; got {axis_ratio}")
        if instrument is None:
            instrument = get("instrument", "lsst").lanusse2018(bands=bands, mode=mode)
        self.lens_fraction = float(lens_fraction)
        self.rng = as_rng(seed)
        self.seed = seed if isinstance(seed, (int, np.integer)) else None
        base = {"theta_E": EinsteinRadius(sigma_v, z_lens, z_source), "ellipticity": Uniform(1 - hi, 1 - lo),
                "source_mag": source_mag}
        base.update(priors or {})
        common = dict(mass_model="sie", instrument=instrument, lens_light=True, misalignment=False,
                      line_of_sight=line_of_sight, split=split, **kwargs)
        self.lenses = Simulator(source=source, priors=base, selection=float(min_magnification), seed=self.rng,
                                **common)
        # non-lenses: the same population with the source switched off (30 magnitudes fainter than anything)
        self.non_lenses = Simulator(source=self.lenses.source, priors={**base, "source_mag": Fixed(60.0)},
                                    selection=None, seed=self.rng, **common)
        self.instrument = self.lenses.instrument

    @property
    def config(self):
        return {"finder": {"lens_fraction": self.lens_fraction}, "lenses": self.lenses.config,
                "non_lenses_source_mag": 60.0}

    def _draw(self, n, keep_truth):
        n_lens = int(self.rng.binomial(n, self.lens_fraction))
        parts = []
        if n_lens:
            parts.append((self.lenses.sample(n_lens, keep_truth=keep_truth), True))
        if n - n_lens:
            parts.append((self.non_lenses.sample(n - n_lens, keep_truth=keep_truth), False))
        return parts

    def sample(self, n, keep_truth=False, progress=False):
        """
        ``n`` shuffled cutouts, about ``lens_fraction`` of them lenses.

        Returns
        -------
        `~lenskit.LensDataset`
            ``params`` has ``is_lens`` (bool), ``theta_E``, ``sigma_v``,
            ``z_lens``, ``arc_snr`` (0 for non-lenses; Lanusse et al. eq. 10)
            and the other simulated parameters.
        """
        if int(n) != n or n < 1:
            raise ValueError(f"n must be a positive integer; got {n}")
        parts = self._draw(int(n), keep_truth)
        tables = []
        for ds, is_lens in parts:
            t = ds.params.copy()
            t["is_lens"] = np.full(len(t), is_lens)
            if not is_lens:
                t["arc_snr"] = np.zeros(len(t))
            tables.append(t)
        keep_cols = [c for c in tables[0].colnames if all(c in t.colnames for t in tables)]
        params = vstack([t[keep_cols] for t in tables])
        images = np.concatenate([ds.images for ds, _ in parts])
        noise = np.concatenate([ds.noise for ds, _ in parts])
        order = self.rng.permutation(len(images))
        truth = {}
        if keep_truth:
            for key in ("arcs", "lens_light"):
                truth[key] = np.concatenate([ds.truth[key] for ds, _ in parts])[order]
        masks = None
        if all(ds.masks is not None for ds, _ in parts):
            masks = np.concatenate([ds.masks for ds, _ in parts])[order]
        images = images[order]
        prov = Provenance.current(seed=self.seed, config=self.config, checksums={"images": array_checksum(images)})
        return LensDataset(images, params[order], bands=self.instrument.bands,
                           pixel_scale=self.instrument.pixel_scale, instrument=self.instrument.name,
                           noise=noise[order], masks=masks, truth=truth, provenance=prov)

    def __repr__(self):
        return f"<LensFinderSimulator {self.instrument!r}, lens_fraction={self.lens_fraction}>"
