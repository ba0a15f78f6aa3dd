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

__all__ = ["errors", "summary", "error_table", "plot_predicted_vs_true"]


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


def plot_predicted_vs_true(estimate, truth, targets=None, bins=12, axes=None, label=None, color="C0"):
    """
    Predicted against true values with the 68% and 95% bands of the predictions (Fig. 1 of Hezaveh et al.).

    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    t = estimate.table if hasattr(estimate, "table") else estimate
    targets = targets or [c for c in t.colnames if not c.endswith("_std") and c in truth.colnames]
    if axes is None:
        fig, axes = plt.subplots(1, len(targets), figsize=(3.2 * len(targets), 3.3), squeeze=False)
        axes = axes[0]
    else:
        fig = axes[0].figure
    for ax, name in zip(axes, targets):
        true = _values(truth[name])
        pred = _values(t[name])
        edges = np.linspace(np.nanpercentile(true, 1), np.nanpercentile(true, 99), bins + 1)
        mid = 0.5 * (edges[1:] + edges[:-1])
        q = np.full((bins, 5), np.nan)
        for i in range(bins):
            sel = (true >= edges[i]) & (true < edges[i + 1])
            if sel.sum() >= 5:
                q[i] = np.percentile(pred[sel], [2.275, 15.865, 50, 84.135, 97.725])
        ax.fill_between(mid, q[:, 0], q[:, 4], color=color, alpha=0.2, lw=0)
        ax.fill_between(mid, q[:, 1], q[:, 3], color=color, alpha=0.4, lw=0)
        ax.plot(mid, q[:, 2], color=color, lw=1.5, label=label)
        ax.plot(true, pred, ".", ms=1.5, color=color, alpha=0.3)
        lo, hi = edges[0], edges[-1]
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        unit = getattr(truth[name], "unit", None)
        ax.set_xlabel(f"true {name}" + (f" [{unit}]" if unit not in (None, u.dimensionless_unscaled) else ""))
        ax.set_ylabel(f"predicted {name}")
    fig.tight_layout()
    return fig
