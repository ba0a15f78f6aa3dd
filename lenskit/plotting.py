"""
Every figure lenskit draws: lens galleries with critical curves and caustics, predicted against true
parameters (Hezaveh et al. Fig. 1), ROC curves (Lanusse et al. Fig. 6) and the lens finder's gallery of
confident and doubtful cutouts (Lanusse et al. Fig. 8).
"""

import astropy.units as u
import numpy as np

from lenskit.core.statistics import robust_sigma
from lenskit.core.validation import as_float, check_choice, check_int
from lenskit.estimators.finder_metrics import auroc, check_scores, roc_curve
from lenskit.lensing import caustics, critical_curves
from lenskit.plugins import get

__all__ = ["show_image", "plot_curves", "plot_gallery", "plot_predicted_vs_true", "plot_roc", "plot_finder_gallery",
           "plot_lens_model", "add_scale_bar"]


def _extent(shape, pixel_scale):
    h, w = shape
    return [-(w / 2) * pixel_scale, (w / 2) * pixel_scale, -(h / 2) * pixel_scale, (h / 2) * pixel_scale]


def show_image(ax, image, pixel_scale, stretch="asinh", mask=None, **kwargs):
    """
    Draw one band (H, W) or three bands (3, H, W, shown as RGB = (last, middle, first)) in arcsec.

    ``stretch`` is ``"asinh"`` (default) or ``"linear"`` (between the 1st and 99.7th percentiles).  Returns
    the matplotlib image.
    """
    img = np.asarray(image, dtype=float)
    ps = as_float(pixel_scale, "pixel_scale", u.arcsec)
    if not ps > 0:
        raise ValueError(f"pixel_scale must be > 0 arcsec; got {ps}")
    check_choice("stretch", stretch, ("asinh", "linear"))
    if img.ndim not in (2, 3) or min(img.shape) < 1:
        raise ValueError(f"image must be (H, W) or (bands, H, W); got shape {img.shape}")
    if not np.isfinite(img).any():
        raise ValueError("image has no finite pixel to show")
    if img.ndim == 3 and img.shape[0] == 3:
        rgb = np.moveaxis(img[::-1], 0, -1)
        scale = np.percentile(rgb, 99.5) or 1.0
        rgb = np.arcsinh(np.clip(rgb, 0, None) / scale * 5) / np.arcsinh(5)
        return ax.imshow(np.clip(rgb, 0, 1), origin="lower", extent=_extent(img.shape[1:], ps), **kwargs)
    if img.ndim == 3:
        img = img[0]
    if mask is not None:
        img = np.ma.masked_array(img, mask=np.asarray(mask).reshape(img.shape))
    lo, hi = np.percentile(np.ma.compressed(np.ma.masked_invalid(img)), [1, 99.7])
    if stretch == "asinh":
        span = max(hi - lo, 1e-12)
        shown = np.arcsinh((img - lo) / span * 10) / np.arcsinh(10)
        kwargs.setdefault("vmin", 0)
        kwargs.setdefault("vmax", 1)
    else:
        shown = img
        kwargs.setdefault("vmin", lo)
        kwargs.setdefault("vmax", hi)
    kwargs.setdefault("cmap", "magma")
    return ax.imshow(shown, origin="lower", extent=_extent(img.shape, ps), **kwargs)


def plot_curves(ax, mass_model, critical_kwargs=None, caustic_kwargs=None, **params):
    """Overlay the critical curves (white) and caustics (cyan) of one system on ``ax``."""

    ck = {"color": "white", "lw": 0.8}
    ck.update(critical_kwargs or {})
    sk = {"color": "cyan", "lw": 0.8}
    sk.update(caustic_kwargs or {})
    for c in critical_curves(mass_model, **params):
        c = c.to_value(u.arcsec)
        ax.plot(np.r_[c[:, 0], c[:1, 0]], np.r_[c[:, 1], c[:1, 1]], **ck)
    for c in caustics(mass_model, **params):
        c = c.to_value(u.arcsec)
        ax.plot(np.r_[c[:, 0], c[:1, 0]], np.r_[c[:, 1], c[:1, 1]], **sk)


def plot_gallery(dataset, n=8, ncols=4, mass_model=None, show_curves=True, figsize=None, title=None, estimate=None):
    """
    A grid of lenses from a `~lenskit.LensDataset`, with critical curves, caustics and (optionally) estimates.

    Every panel uses one asinh stretch (from the percentiles of the panels
    together, so faint arcs show and panels compare), a 1" scale bar, and the
    true Einstein radius and arc S/N in its title; one colour bar serves the
    grid and a legend names the curves.

    Parameters
    ----------
    dataset : `~lenskit.LensDataset`
    n, ncols : int
        Number of systems shown and columns.
    mass_model : `~lenskit.core.MassModel`, optional
        Model whose curves are drawn from each row's parameters (default: SIE
        when the table has SIE columns).
    show_curves : bool
    estimate : `~lenskit.Estimate`, optional
        Its SIE estimates are drawn too (critical curve dashed, estimated
        theta_E in the title).

    Returns
    -------
    `matplotlib.figure.Figure`
    """
    import matplotlib.pyplot as plt  # pyplot picks a backend when imported: only when a figure is drawn
    from matplotlib.lines import Line2D  # with pyplot

    if not hasattr(dataset, "params") or not hasattr(dataset, "images"):
        raise TypeError(f"dataset must be a LensDataset; got {type(dataset).__name__}")
    n = check_int("n", n, minimum=1)
    ncols = check_int("ncols", ncols, minimum=1)
    if estimate is not None and len(getattr(estimate, "table", estimate)) != len(dataset):
        raise ValueError(f"estimate must have one row per system of the dataset ({len(dataset)}); got "
                         f"{len(getattr(estimate, 'table', estimate))}")
    n = min(n, len(dataset))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize or (3 * ncols + 0.6, 3 * nrows + 0.5), squeeze=False)
    t = dataset.params
    sie_columns = ("theta_E", "e1", "e2", "x0", "y0")
    if mass_model is None and show_curves and all(c in t.colnames for c in sie_columns):
        mass_model = get("mass_model", "sie")()
    shown = dataset.images[:n]
    single = shown.shape[1] != 3
    if single:  # one stretch for the whole grid
        flat = shown[:, 0][np.isfinite(shown[:, 0])]
        lo, hi = np.percentile(flat, [1, 99.7])
    im = None
    et = None if estimate is None else (estimate.table if hasattr(estimate, "table") else estimate)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.set_visible(False)
            continue
        img = dataset.images[i]
        kw = {} if not single else {"vmin": 0, "vmax": 1}
        im = show_image(ax, img if img.shape[0] == 3 else _grid_stretch(img[0], lo, hi), dataset.pixel_scale,
                        stretch="linear" if single else "asinh",
                        mask=None if dataset.masks is None else dataset.masks[i, 0], **kw)
        xl, yl = ax.get_xlim(), ax.get_ylim()
        if show_curves and mass_model is not None:
            p = {k: t[k][i] for k in mass_model.param_names}
            plot_curves(ax, mass_model, **p)
        if et is not None and all(c in et.colnames for c in sie_columns):
            sie = get("mass_model", "sie")()
            plot_curves(ax, sie, critical_kwargs={"color": "lime", "ls": "--", "lw": 0.9}, caustic_kwargs={"lw": 0},
                        **{k: et[k][i] for k in sie_columns})
        ax.set_xlim(xl)
        ax.set_ylim(yl)
        add_scale_bar(ax, 1.0)
        label = f"θE={t['theta_E'][i].to_value(u.arcsec):.2f}\"" if "theta_E" in t.colnames else ""
        if et is not None and "theta_E" in et.colnames:
            label += f" (est. {float(getattr(et['theta_E'][i], 'value', et['theta_E'][i])):.2f}\")"
        if "arc_snr" in t.colnames:
            label += f"  S/N={t['arc_snr'][i]:.0f}"
        ax.set_title(label, fontsize=8)
    handles = []
    if show_curves and mass_model is not None:
        handles += [Line2D([], [], color="white", lw=1, label="true critical curve"),
                    Line2D([], [], color="cyan", lw=1, label="true caustic")]
    if et is not None:
        handles.append(Line2D([], [], color="lime", ls="--", lw=1, label="estimated critical curve"))
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06 if handles else 0, 0.93 if single else 1, 1))
    if handles:
        leg = fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=True)
        leg.get_frame().set_facecolor("0.3")
        for text in leg.get_texts():
            text.set_color("white")
    if single and im is not None:
        cax = fig.add_axes((0.945, 0.15, 0.015, 0.7))
        fig.colorbar(im, cax=cax, label="asinh(surface brightness), one stretch for all panels")
    return fig


def _grid_stretch(img, lo, hi):
    """One asinh stretch for a whole gallery (0-1 between the grid's 1st and 99.7th percentiles)."""
    span = max(hi - lo, 1e-12)
    return np.clip(np.arcsinh((np.asarray(img, float) - lo) / span * 10) / np.arcsinh(10), 0, 1)


def _plain(col):
    return np.asarray(getattr(col, "value", col), dtype=float)


def plot_predicted_vs_true(estimate, truth, targets=None, bins=12, axes=None, label=None, color="C0"):
    """
    Predicted against true values with the 68% and 95% bands of the predictions (Fig. 1 of Hezaveh et al.).

    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt  # pyplot picks a backend when imported: only when a figure is drawn

    t = estimate.table if hasattr(estimate, "table") else estimate
    if len(t) != len(truth):
        raise ValueError(f"estimate and truth must have the same rows; got {len(t)} and {len(truth)}")
    bins = check_int("bins", bins, minimum=1)
    both = [c for c in t.colnames if not c.endswith("_std") and c in truth.colnames]
    targets = list(targets) if targets is not None else both
    missing = [c for c in targets if c not in both]
    if missing or not targets:
        raise ValueError(f"targets must be columns of both the estimate and the truth ({both}); got {targets}")
    if axes is None:
        fig, axes = plt.subplots(1, len(targets), figsize=(3.2 * len(targets), 3.3), squeeze=False)
        axes = axes[0]
    else:
        fig = axes[0].figure
    for ax, name in zip(axes, targets):
        true = _plain(truth[name])
        pred = _plain(t[name])
        edges = np.linspace(np.nanpercentile(true, 1), np.nanpercentile(true, 99), bins + 1)
        mid = 0.5 * (edges[1:] + edges[:-1])
        q = np.full((bins, 5), np.nan)
        for i in range(bins):
            sel = (true >= edges[i]) & (true < edges[i + 1])
            if sel.sum() >= 5:
                q[i] = np.percentile(pred[sel], [2.275, 15.865, 50, 84.135, 97.725])
        ax.fill_between(mid, q[:, 0], q[:, 4], color=color, alpha=0.2, lw=0, label="95% of predictions")
        ax.fill_between(mid, q[:, 1], q[:, 3], color=color, alpha=0.4, lw=0, label="68% of predictions")
        ax.plot(mid, q[:, 2], color=color, lw=1.5, label=label or "median")
        ax.plot(true, pred, ".", ms=1.5, color=color, alpha=0.3)
        lo, hi = edges[0], edges[-1]
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="predicted = true")
        unit = getattr(truth[name], "unit", None)
        suffix = f" [{unit}]" if unit not in (None, u.dimensionless_unscaled) else ""
        ax.set_xlabel(f"true {name}{suffix}")
        ax.set_ylabel(f"predicted {name}{suffix}")
        ax.text(0.97, 0.03, f"N = {int(np.isfinite(pred).sum())}", transform=ax.transAxes, ha="right", va="bottom",
                fontsize=8)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def plot_roc(scores, params, cuts=((0.0, 0.0), (1.4, 0.0), (1.4, 20.0)), fpr=0.01, ax=None):
    """ROC curves for cuts ``(theta_E_min, snr_min)`` of the lenses (Lanusse et al. Fig. 6), log FPR axis."""
    import matplotlib.pyplot as plt  # pyplot picks a backend when imported: only when a figure is drawn

    missing = [c for c in ("is_lens", "theta_E", "arc_snr") if c not in params.colnames]
    if missing:
        raise ValueError(f"params must hold is_lens, theta_E and arc_snr (a lens-finder dataset's table); "
                         f"missing {missing}")
    if len(np.ravel(getattr(scores, "value", scores))) != len(params):
        raise ValueError(f"scores must have one value per row of params ({len(params)}); got "
                         f"{len(np.ravel(getattr(scores, 'value', scores)))}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.5))
    y = np.asarray(params["is_lens"], bool)
    theta = np.asarray(getattr(params["theta_E"], "value", params["theta_E"]), float)
    snr = np.asarray(params["arc_snr"], float)
    s = np.asarray(getattr(scores, "value", scores), float)
    for tc, sc in cuts:
        sel = (~y) | ((theta > tc) & (snr > sc))
        f, t, _ = roc_curve(s[sel], y[sel])
        ax.plot(np.maximum(f, 1e-4), t, label=f"θE > {tc:g}\", S/N > {sc:g} (AUROC {auroc(s[sel], y[sel]):.3f})")
    ax.axvline(fpr, ls="--", c="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlim(1e-3, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate (completeness)")
    ax.legend(fontsize=7, loc="lower right")
    return ax


def plot_finder_gallery(images, scores, labels, n=5, fig=None, pixel_scale=None):
    """
    The most and least confident true and false positives (Lanusse et al. Fig. 8).

    Rows: lenses scored highest, lenses scored lowest, non-lenses scored
    highest, non-lenses scored lowest; ``n`` cutouts each (first band), all
    with one asinh stretch (so faint arcs show and cutouts compare) and its
    colour bar; with ``pixel_scale`` (arcsec) the axes are in arcsec with a
    1" scale bar.
    """
    import matplotlib.pyplot as plt  # pyplot picks a backend when imported: only when a figure is drawn

    s, y = check_scores(scores, labels)
    n = check_int("n", n, minimum=1)
    imgs = np.asarray(images)
    if imgs.ndim != 4 or len(imgs) != len(s):
        raise ValueError(f"images must be (N, bands, H, W) with one cutout per score ({len(s)}); got shape "
                         f"{imgs.shape}")
    groups = [("lenses, highest p", np.nonzero(y)[0][np.argsort(-s[y])][:n]),
              ("lenses, lowest p", np.nonzero(y)[0][np.argsort(s[y])][:n]),
              ("non-lenses, highest p", np.nonzero(~y)[0][np.argsort(-s[~y])][:n]),
              ("non-lenses, lowest p", np.nonzero(~y)[0][np.argsort(s[~y])][:n])]
    if fig is None:
        fig = plt.figure(figsize=(1.6 * n + 0.8, 1.8 * 4))
    axes = fig.subplots(4, n, squeeze=False)
    shown_idx = np.concatenate([idx for _, idx in groups]).astype(int)
    lo, hi = np.percentile(imgs[shown_idx, 0], [1, 99.7])
    pixel_scale = None if pixel_scale is None else float(getattr(pixel_scale, "value", pixel_scale))
    shown = None
    for r, (title, idx) in enumerate(groups):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(idx):
                ax.set_visible(False)
                continue
            shown = ax.imshow(_grid_stretch(imgs[idx[c], 0], lo, hi), origin="lower", cmap="gray", vmin=0, vmax=1,
                              extent=_extent(imgs.shape[-2:], pixel_scale) if pixel_scale else None)
            if pixel_scale:
                add_scale_bar(ax, 1.0)
            ax.set_title(f"p = {s[idx[c]]:.3f}", fontsize=7)
            if c == 0:
                ax.set_ylabel(title, fontsize=7)
    fig.subplots_adjust(right=0.88)
    fig.colorbar(shown, cax=fig.add_axes((0.9, 0.15, 0.02, 0.7)), label="asinh stretch, one for all cutouts")
    return fig


def add_scale_bar(ax, length=1.0, label=None, color="white"):
    """A horizontal bar of ``length`` arcsec in the lower left of an image drawn by `show_image`."""
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    left = x0 + 0.07 * (x1 - x0)
    bottom = y0 + 0.07 * (y1 - y0)
    ax.plot([left, left + length], [bottom, bottom], color=color, lw=2, solid_capstyle="butt")
    ax.text(left + length / 2, bottom + 0.03 * (y1 - y0), label or f'{length:g}"', color=color, ha="center",
            va="bottom", fontsize=8)


def plot_lens_model(result, fig=None):
    """
    What `~lenskit.modelling.model_lens` found for a real cutout: data, arcs, model and normalised residual.

    Panels (the fitted box, arcsec from its centre): the cutout; the arcs
    after lens-light removal with the fitted SIE's critical curve (white) and
    the CNN's (cyan, dashed); the maximum-likelihood model; the residual in
    units of the noise (masked pixels grey).  Each panel has a colour bar;
    images use one asinh stretch so faint arcs show.

    Returns the figure.
    """
    import matplotlib.pyplot as plt  # pyplot picks a backend when imported: only when a figure is drawn

    box = result.box
    cut = result.cutout
    ps = cut.pixel_scale
    data = cut.image[box]
    arcs = result.arcs[box]
    mask = result.mask[box]
    if fig is None:
        fig = plt.figure(figsize=(13, 3.6))
    axes = fig.subplots(1, 4)
    t = result.table[0]
    sie = get("mass_model", "sie")()

    def curves(ax, pre, style):
        vals = {k: float(getattr(t[f"{pre}{k}"], "value", t[f"{pre}{k}"])) for k in ("theta_E", "e1", "e2", "x0", "y0")}
        # the table's centre is relative to the lens-light centre; the panel's frame is the box's
        cy, cx = (result.box[0].start + result.box[0].stop - 1) / 2, (result.box[1].start + result.box[1].stop - 1) / 2
        lx, ly = result.centre
        vals["x0"] += (lx - cx) * ps
        vals["y0"] += (ly - cy) * ps
        plot_curves(ax, sie, critical_kwargs=style, caustic_kwargs={"lw": 0}, **vals)

    im = show_image(axes[0], data, ps)
    axes[0].set_title("cutout")
    fig.colorbar(im, ax=axes[0], fraction=0.046, pad=0.04, label="asinh stretch")
    im = show_image(axes[1], arcs, ps, mask=mask)
    axes[1].set_title("arcs (lens light removed)")
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04, label="asinh stretch")
    curves(axes[1], "cnn_", {"color": "cyan", "lw": 1.0, "ls": "--", "label": "CNN critical curve"})
    handles = []
    if result.fit is not None:
        curves(axes[1], "", {"color": "white", "lw": 1.0, "label": "fit critical curve"})
        im = show_image(axes[2], result.fit.model, ps, mask=mask)
        axes[2].set_title(f"model (reduced chi2 {result.fit.reduced_chi2:.2f})")
        fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.04, label="asinh stretch")
        noise = cut.noise[box] if cut.noise is not None else np.full(data.shape, _robust_noise(result.fit.residual, mask))
        chi = np.ma.masked_array(result.fit.residual / np.where(noise > 0, noise, np.inf), mask=mask)
        cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.6")
        im = axes[3].imshow(chi, origin="lower", cmap=cmap, vmin=-5, vmax=5, extent=_extent(chi.shape, ps))
        axes[3].set_title("residual / noise")
        fig.colorbar(im, ax=axes[3], fraction=0.046, pad=0.04, label="sigma")
    else:
        for ax in axes[2:]:
            ax.text(0.5, 0.5, "no maximum-likelihood fit\n(--no-refine)", ha="center", va="center",
                    transform=ax.transAxes)
    for ax in axes:
        ax.set_xlabel("x [arcsec]")
        if ax.images:
            add_scale_bar(ax, 1.0, color="black" if ax is axes[3] else "white")
    axes[0].set_ylabel("y [arcsec]")
    handles = [h for h in axes[1].get_lines() if not h.get_label().startswith("_")]
    if handles:
        axes[1].legend(handles=handles[:2], loc="upper right", fontsize=7, framealpha=0.5)
    fig.tight_layout()
    return fig


def _robust_noise(residual, mask):
    """The robust sigma of the unmasked pixels of a residual (for cutouts without a noise map)."""
    return float(robust_sigma(np.asarray(residual)[~np.asarray(mask, bool)]))
