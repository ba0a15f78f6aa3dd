"""`Estimate`: what an estimator predicted, with uncertainties and provenance."""

import os

import astropy.units as u
import numpy as np
from astropy.table import QTable, Table

from lenskit.core import storage
from lenskit.core.provenance import Provenance
from lenskit.core.validation import indefinite, row_indices

__all__ = ["Estimate"]


class Estimate:
    """
    Predictions of an `~lenskit.core.Estimator`, one row per input image.

    Parameters
    ----------
    table : `~astropy.table.QTable` or dict
        Predicted columns (``theta_E``, ``e1``, ... or ``p_lens``) with units,
        and optional ``<name>_std`` columns holding 1-sigma uncertainties in
        the same unit.
    covariance : array-like, optional
        Covariance of the predicted targets, shaped (N, k, k) in the order of
        `targets`.
    provenance : `~lenskit.core.Provenance` or dict, optional
        Estimator name, weights and input checksums in ``config`` / ``checksums``.
    """

    def __init__(self, table, covariance=None, provenance=None):
        if isinstance(table, dict) or (isinstance(table, Table) and not isinstance(table, QTable)):
            table = QTable(table)
        if not isinstance(table, QTable):
            raise TypeError(f"table must be an astropy QTable or dict of columns; got {type(table).__name__}")
        if len(table.colnames) == 0:
            raise ValueError("table must have at least one predicted column")
        for name in table.colnames:
            col = np.asarray(getattr(table[name], "value", table[name]))
            if col.dtype.kind not in "biuf":
                continue
            if name.endswith("_std"):
                base = name[: -len("_std")]
                if base not in table.colnames:
                    raise ValueError(f"table column '{name}' has no matching '{base}' column")
                unit_a = getattr(table[name], "unit", None) or u.dimensionless_unscaled
                unit_b = getattr(table[base], "unit", None) or u.dimensionless_unscaled
                if not unit_a.is_equivalent(unit_b):
                    raise u.UnitConversionError(
                        f"table column '{name}' has unit {unit_a}, not that of '{base}' ({unit_b})")
                finite = col[np.isfinite(col)]
                if np.any(finite < 0):
                    raise ValueError(f"table column '{name}' holds negative uncertainties")
        self.table = table
        self.covariance = None
        if covariance is not None:
            cov = np.asarray(covariance, dtype=float)
            k = len(self.targets)
            if cov.shape != (len(table), k, k):
                raise ValueError(f"covariance must have shape (N, k, k) = ({len(table)}, {k}, {k}); got {cov.shape}")
            self.covariance = cov
        if provenance is None:
            provenance = Provenance.current()
        elif isinstance(provenance, dict):
            provenance = Provenance.from_dict(provenance)
        elif not isinstance(provenance, Provenance):
            raise TypeError(f"provenance must be a Provenance or dict; got {type(provenance).__name__}")
        self.provenance = provenance

    @property
    def targets(self):
        """Names of the predicted quantities (columns without ``_std``)."""
        return tuple(c for c in self.table.colnames if not c.endswith("_std"))

    def __len__(self):
        return len(self.table)

    def __getitem__(self, index):
        """
        A column by name, as an astropy table gives it (``estimate["theta_E"]``), or the estimate of some rows: an
        integer, a slice, or an integer or boolean array, as a `~lenskit.LensDataset` is sliced
        (``estimate[:10]``, ``estimate[estimate["candidate"]]``), with its covariance and provenance and the
        table's metadata (a finder's threshold).
        """
        if isinstance(index, str):
            if index not in self.table.colnames:
                raise KeyError(f"the estimate has no column {index!r}; it has {self.table.colnames}")
            return self.table[index]
        idx = row_indices(index, len(self), "an estimate", "row(s)")
        return Estimate(self.table[idx], covariance=None if self.covariance is None else self.covariance[idx],
                        provenance=self.provenance)

    def __eq__(self, other):
        if not isinstance(other, Estimate):
            return NotImplemented
        t1, t2 = self.table, other.table
        same = t1.colnames == t2.colnames and all(
            np.array_equal(np.asarray(getattr(t1[c], "value", t1[c])), np.asarray(getattr(t2[c], "value", t2[c])))
            and getattr(t1[c], "unit", None) == getattr(t2[c], "unit", None)
            for c in t1.colnames)
        if (self.covariance is None) != (other.covariance is None):
            return False
        if self.covariance is not None:
            same = same and np.array_equal(self.covariance, other.covariance)
        return bool(same)

    def __repr__(self):
        return f"<Estimate {len(self)} row(s), targets={list(self.targets)}>"

    def write(self, path: str | os.PathLike, overwrite: bool = False, format: str | None = None) -> None:
        """
        Write the estimate (atomically): ASDF natively, or a FITS or ECSV table.

        ``format`` is ``"asdf"``, ``"fits"`` or ``"ascii.ecsv"``; by default
        it follows the file's suffix (``.asdf``, ``.fits``, ``.ecsv``).  The
        tables keep the units and the provenance (as JSON in their metadata).
        """
        storage.write(self, path, overwrite=overwrite, format=format)

    @classmethod
    def read(cls, path: str | os.PathLike, format: str | None = None) -> "Estimate":
        """Read an estimate written by `write` (any of its formats)."""
        obj = storage.read(path, format=format)
        if not isinstance(obj, cls):
            raise TypeError(f"{path} holds {indefinite(type(obj).__name__)}, not an Estimate")
        return obj
