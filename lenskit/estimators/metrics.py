"""
The papers' metrics for parameter estimation.

* the half-width of the central 68% interval of the errors per parameter, laid
  out like Table 1 of Hezaveh et al. (2017);
* RMS and bias of the errors, as in Table 1 of Pearson et al. (2019);
* coverage: the fraction of true values inside the predicted 68% interval
  (``|error| < std``), which should be near 0.683 for calibrated uncertainties.
"""

import astropy.units as u
import numpy as np
from astropy.table import QTable

__all__ = ["errors", "summary", "error_table"]


def _values(col):
    return np.asarray(getattr(col, "value", col), dtype=float)


def errors(estimate, truth, target):
    """Prediction minus truth for one target (plain array in the target's unit)."""
    t = estimate.table if hasattr(estimate, "table") else estimate
    if target not in truth.colnames:
        raise ValueError(f"the truth table has no column {target!r}")
    pred = t[target]
    true = truth[target]
    if hasattr(pred, "unit") and hasattr(true, "unit") and pred.unit is not None and true.unit is not None:
        true = true.to(pred.unit)
    return _values(pred) - _values(true)


def summary(estimate, truth):
    """
    Per-target metrics of an `~lenskit.Estimate` against a truth table.

    Returns
    -------
    dict
        target -> {"rms", "bias", "err68", "coverage68" (when stds exist), "n"}.
    """
    t = estimate.table if hasattr(estimate, "table") else estimate
    if len(t) != len(truth):
        raise ValueError(f"estimate has {len(t)} rows, the truth {len(truth)}")
    out = {}
    for name in [c for c in t.colnames if not c.endswith("_std")]:
        if name not in truth.colnames:
            continue
        e = errors(t, truth, name)
        e = e[np.isfinite(e)]
        p16, p84 = np.percentile(e, [15.865, 84.135])
        m = {"rms": float(np.sqrt(np.mean(e**2))), "bias": float(np.mean(e)), "err68": float((p84 - p16) / 2),
             "n": int(len(e))}
        if f"{name}_std" in t.colnames:
            sd = _values(t[f"{name}_std"])
            full = errors(t, truth, name)
            ok = np.isfinite(full) & np.isfinite(sd)
            m["coverage68"] = float(np.mean(np.abs(full[ok]) < sd[ok]))
        out[name] = m
    return out


def error_table(results, metric="err68"):
    """
    A table with one row per estimator and one column per target.

    Parameters
    ----------
    results : dict
        Estimator name -> `summary` output.
    metric : str
        ``"err68"`` (Hezaveh et al. Table 1), ``"rms"`` or ``"bias"`` (Pearson et al. Table 1),
        or ``"coverage68"``.
    """
    names = list(results)
    targets = []
    for r in results.values():
        targets += [k for k in r if k not in targets]
    t = QTable()
    t["estimator"] = names
    for k in targets:
        col = np.array([results[n].get(k, {}).get(metric, np.nan) for n in names])
        unit = u.arcsec if k in ("theta_E", "x0", "y0") and metric != "coverage68" else None
        t[k] = col * unit if unit is not None else col
    return t
