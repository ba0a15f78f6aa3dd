"""
Selection criteria: which simulated systems count as strong lenses.

A criterion looks at a system twice: `Selection.pre` before observation
(geometry and magnification) and `Selection.post` after (signal-to-noise).
"""

import numpy as np

from lenskit.core.config import Configurable

__all__ = ["Selection", "NoSelection", "MinMagnification", "Pearson2019", "as_selection"]


class Selection(Configurable):
    """Base class; both stages accept every system."""

    name = "none"

    def pre(self, state):
        """Boolean mask over systems, from ``state`` (dict of per-system arrays) before observing."""
        return np.ones(len(state["theta_E"]), dtype=bool)

    def post(self, state):
        """Boolean mask over systems after observing (``state`` then also holds ``arc_snr``)."""
        return np.ones(len(state["theta_E"]), dtype=bool)

    def to_config(self):
        return {"selection": self.name}

    def __repr__(self):
        return f"{type(self).__name__}({self.to_config()})"


class NoSelection(Selection):
    """Keep every system."""


class MinMagnification(Selection):
    """
    Keep systems whose total (extended-source) magnification is at least ``minimum``.

    Hezaveh et al. (2017) require a magnification of at least 2.
    """

    name = "min_magnification"

    def __init__(self, minimum=2.0):
        if not minimum >= 0:
            raise ValueError(f"minimum must be >= 0; got {minimum}")
        self.minimum = float(minimum)

    def pre(self, state):
        return state["magnification"] >= self.minimum

    def to_config(self):
        return {"selection": self.name, "minimum": self.minimum}


class Pearson2019(Selection):
    """
    The detection criteria of Pearson, Li & Dye (2019), after Collett (2015).

    (i) the source centre is multiply imaged; (ii) image and counter-image are
    resolved, ``theta_E**2 > R_e**2 + seeing**2 / 2``; (iii) the magnification
    is sufficient, ``mu_tot > min_magnification`` and ``mu_tot R_e > seeing``;
    (iv) the arc S/N (Lanusse et al. 2018, eq. 10) exceeds ``min_snr`` in at
    least one band.  ``seeing`` is the best PSF FWHM over the bands.
    """

    name = "pearson2019"

    def __init__(self, min_magnification=3.0, min_snr=20.0):
        self.min_magnification = float(min_magnification)
        self.min_snr = float(min_snr)

    def pre(self, state):
        seeing = state["seeing"]
        R_e = state["source_size"]
        mu = state["magnification"]
        return (state["multiply_imaged"]
                & (state["theta_E"] ** 2 > R_e**2 + seeing**2 / 2)
                & (mu > self.min_magnification) & (mu * R_e > seeing))

    def post(self, state):
        return state["arc_snr"] > self.min_snr

    def to_config(self):
        return {"selection": self.name, "min_magnification": self.min_magnification, "min_snr": self.min_snr}


def as_selection(value):
    """
    Turn ``None``, ``"hezaveh2017"``, ``"pearson2019"``, a number (minimum
    magnification) or a `Selection` into a `Selection`.
    """
    if value is None or value == "none":
        return NoSelection()
    if isinstance(value, Selection):
        return value
    if value == "hezaveh2017":
        return MinMagnification(2.0)
    if value == "pearson2019":
        return Pearson2019()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return MinMagnification(float(value))
    raise ValueError(f"selection must be None, 'hezaveh2017', 'pearson2019', a minimum magnification or a "
                     f"Selection; got {value!r}")
