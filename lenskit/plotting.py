"""The figures people expect: lens galleries with critical curves and caustics."""

import astropy.units as u
import numpy as np

__all__ = ["show_image", "plot_curves", "plot_gallery"]


def _extent(shape, pixel_scale):
    h, w = shape
    return [-(w / 2) * pixel_scale, (w / 2) * pixel_scale, -(h / 2) * pixel_scale, (h / 2) * pixel_scale]


def show_image(ax, image, pixel_scale, stretch="asinh", mask=None, **kwargs):
    """
    Draw one band (H, W) or three bands (3, H, W, shown as RGB = (last, middle, first)) in arcsec.

    Returns the matplotlib image.
    """
    img = np.asarray(image, dtype=float)
    ps = pixel_scale.to_value(u.arcsec) if isinstance(pixel_scale, u.Quantity) else float(pixel_scale)
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
    from lenskit.lensing import caustics, critical_curves

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


def plot_gallery(dataset, n=8, ncols=4, mass_model=None, show_curves=True, figsize=None, title=None):
    """
    A grid of lenses from a `~lenskit.LensDataset`, with critical curves and caustics.

    Parameters
    ----------
    dataset : `~lenskit.LensDataset`
    n, ncols : int
        Number of systems shown and columns.
    mass_model : `~lenskit.core.MassModel`, optional
        Model whose curves are drawn from each row's parameters (default: SIE
        when the table has SIE columns).
    show_curves : bool

    Returns
    -------
    `matplotlib.figure.Figure`
    """
    import matplotlib.pyplot as plt

    n = min(n, len(dataset))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize or (3 * ncols, 3 * nrows), squeeze=False)
    t = dataset.params
    if mass_model is None and show_curves and all(c in t.colnames for c in ("theta_E", "e1", "e2", "x0", "y0")):
        from lenskit.plugins import get

        mass_model = get("mass_model", "sie")()
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.set_visible(False)
            continue
        img = dataset.images[i]
        show_image(ax, img if img.shape[0] == 3 else img[0], dataset.pixel_scale,
                   mask=None if dataset.masks is None else dataset.masks[i, 0])
        if show_curves and mass_model is not None:
            p = {k: t[k][i] for k in mass_model.param_names}
            xl, yl = ax.get_xlim(), ax.get_ylim()
            plot_curves(ax, mass_model, **p)
            ax.set_xlim(xl)
            ax.set_ylim(yl)
        label = f"θE={t['theta_E'][i].to_value(u.arcsec):.2f}\"" if "theta_E" in t.colnames else ""
        if "arc_snr" in t.colnames:
            label += f"  S/N={t['arc_snr'][i]:.0f}"
        ax.set_title(label, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
