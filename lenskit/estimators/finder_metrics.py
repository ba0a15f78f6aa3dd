"""
Metrics of lens finders (Lanusse et al. 2018; Metcalf et al. 2019).

* the ROC curve and the area under it (AUROC);
* the true-positive rate (completeness) at a given false-positive rate, and
  the detection threshold that gives that rate on a validation set;
* TPR0 and TPR10 of the strong-lens finding challenge: the completeness
  reached before the first false positive, and before the tenth;
* completeness at a fixed FPR for cuts in Einstein radius and arc S/N
  (Lanusse et al. Figs. 6-7);
* the class-prior correction of Lanusse et al. eq. 5 (Saerens et al. 2002).
"""

import numpy as np
from astropy.table import Table
from scipy.stats import rankdata

__all__ = ["roc_curve", "auroc", "threshold_at_fpr", "tpr_at_fpr", "tpr0", "tpr10", "prior_correction", "check_scores",
           "completeness_table", "finder_summary"]


def check_scores(scores, labels):
    """Scores as a finite float array and labels as booleans of the same length (ValueError otherwise)."""
    s = np.asarray(getattr(scores, "value", scores), dtype=float).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels must have the same length; got {s.shape[0]} and {y.shape[0]}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    if y.dtype != bool:
        if not np.all(np.isin(y, (0, 1))):
            raise ValueError("labels must be booleans or 0/1")
        y = y.astype(bool)
    if y.all() or not y.any():
        raise ValueError("labels must contain both lenses (True) and non-lenses (False)")
    return s, y


def roc_curve(scores, labels):
    """
    False- and true-positive rates for every threshold.

    Returns
    -------
    fpr, tpr, thresholds : ndarray
        A cutout is called a lens when its score is >= the threshold; the
        first point is (0, 0) at an infinite threshold.  Tied scores are
        handled as one threshold.
    """
    s, y = check_scores(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(y)[distinct]
    fp = np.cumsum(~y)[distinct]
    tpr = np.r_[0.0, tp / y.sum()]
    fpr = np.r_[0.0, fp / (~y).sum()]
    return fpr, tpr, np.r_[np.inf, s[distinct]]


def auroc(scores, labels):
    """Area under the ROC curve: the probability that a lens scores above a non-lens (ties count half)."""
    s, y = check_scores(scores, labels)

    r = rankdata(s)
    n1, n0 = y.sum(), (~y).sum()
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def threshold_at_fpr(scores, labels, fpr=0.01):
    """
    The lowest threshold whose false-positive rate does not exceed ``fpr``.

    Choose it on a validation set and apply it to new data (Lanusse et al. 2018, Section 5).
    """
    if not 0 <= fpr <= 1:
        raise ValueError(f"fpr must be within [0, 1]; got {fpr}")
    f, _, th = roc_curve(scores, labels)
    ok = np.nonzero(f <= fpr)[0]
    return float(th[ok[-1]])


def tpr_at_fpr(scores, labels, fpr=0.01):
    """Completeness at the threshold of `threshold_at_fpr`."""
    f, t, _ = roc_curve(scores, labels)
    return float(t[np.nonzero(f <= fpr)[0][-1]])


def _tpr_before(scores, labels, n_false):
    s, y = check_scores(scores, labels)
    neg = np.sort(s[~y])[::-1]
    if n_false >= len(neg):
        return 1.0
    # a lens counts when it scores strictly above the (n_false+1)-th highest non-lens
    return float(np.mean(s[y] > neg[n_false]))


def tpr0(scores, labels):
    """Completeness before the first false positive (Metcalf et al. 2019)."""
    return _tpr_before(scores, labels, 0)


def tpr10(scores, labels):
    """Completeness with fewer than ten false positives (Metcalf et al. 2019)."""
    return _tpr_before(scores, labels, 9)


def prior_correction(p, train_fraction, target_fraction):
    """
    Map probabilities from a training set's lens fraction to a survey's (Lanusse et al. 2018, eq. 5).

    ``p' = lambda p / (lambda p + mu (1 - p))`` with ``lambda = pi'/pi`` and
    ``mu = (1 - pi')/(1 - pi)``.  The map is monotonic, so rankings, the ROC
    and thresholds chosen by false-positive rate are unchanged.
    """
    for name, v in (("train_fraction", train_fraction), ("target_fraction", target_fraction)):
        if not 0 < v < 1:
            raise ValueError(f"{name} must be within (0, 1); got {v}")
    p = np.asarray(getattr(p, "value", p), dtype=float)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("p must be probabilities within [0, 1]")
    lam = target_fraction / train_fraction
    mu = (1 - target_fraction) / (1 - train_fraction)
    return lam * p / (lam * p + mu * (1 - p))


def completeness_table(scores, params, fpr=0.01, threshold=None, theta_E_cuts=(0.0, 1.0, 1.4, 2.0),
                       snr_cuts=(0.0, 10.0, 20.0, 40.0)):
    """
    Completeness at a fixed false-positive rate for cuts in theta_E and arc S/N.

    All non-lenses are kept; lenses are restricted to ``theta_E > cut`` and
    ``arc_snr > cut`` (Lanusse et al. 2018, Figs. 6-7).  The threshold is
    ``threshold`` when given (chosen on a validation set), otherwise the one
    giving ``fpr`` on these data.

    Returns
    -------
    `~astropy.table.Table`
        Columns theta_E_min, snr_min, n_lenses, completeness, auroc.
    """

    y = np.asarray(params["is_lens"], bool)
    theta = np.asarray(getattr(params["theta_E"], "value", params["theta_E"]), float)
    snr = np.asarray(params["arc_snr"], float)
    s = np.asarray(getattr(scores, "value", scores), float)
    if threshold is None:
        threshold = threshold_at_fpr(s, y, fpr)
    rows = []
    for tc in theta_E_cuts:
        for sc in snr_cuts:
            sel = (~y) | ((theta > tc) & (snr > sc))
            lenses = sel & y
            comp = float(np.mean(s[lenses] >= threshold)) if lenses.any() else np.nan
            auc = auroc(s[sel], y[sel]) if lenses.any() else np.nan
            rows.append((tc, sc, int(lenses.sum()), comp, auc))
    t = Table(rows=rows, names=("theta_E_min", "snr_min", "n_lenses", "completeness", "auroc"))
    t.meta["threshold"] = float(threshold)
    t.meta["fpr_realised"] = float(np.mean(s[~y] >= threshold))
    return t


def finder_summary(scores, labels, fpr=0.01):
    """AUROC, TPR at ``fpr``, TPR0 and TPR10 in one dict."""
    return {"auroc": auroc(scores, labels), f"tpr_at_fpr_{fpr:g}": tpr_at_fpr(scores, labels, fpr),
            "tpr0": tpr0(scores, labels), "tpr10": tpr10(scores, labels), "n_lenses": int(np.sum(labels)),
            "n_non_lenses": int(np.sum(~np.asarray(labels, bool)))}
