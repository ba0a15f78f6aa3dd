"""
Where a fit starts: the image's light centre, the arcs' ring radius, scattered and gridded starts, and
each start's source placed where its own lens equation maps the bright arc pixels.
"""

import numpy as np
import torch
from scipy import ndimage

from lenskit.modelling.likelihood import light_centre_names

__all__ = ["ring_radius", "light_centre", "start_values", "place_source", "make_starts", "weighted_median"]

#: Where the source and lens light start when nothing better is known.
SOURCE_DEFAULTS = {"src_R_e": 0.2, "src_n": 1.0, "src_e1": 0.0, "src_e2": 0.0}
LIGHT_DEFAULTS = {"light_R_e": 0.8, "light_n": 4.0, "light_e1": 0.0, "light_e2": 0.0}
#: The scatter of the further starts about the first (parameters with a symmetric range; shear smaller).
SCATTER = {"src_e1": 0.2, "src_e2": 0.2}
MASS_SCATTER = 0.15
SHEAR_SCATTER = 0.03


def weighted_median(values, weights):
    """The value below which half the (non-negative) weight lies."""
    o = np.argsort(values)
    c = np.cumsum(weights[o])
    return float(values[o][np.searchsorted(c, 0.5 * c[-1])])


def _offsets(shape, pixel_scale):
    h, w = shape
    yy, xx = np.indices(shape)
    return (xx - (w - 1) / 2) * pixel_scale, (yy - (h - 1) / 2) * pixel_scale


def ring_radius(image, noise, pixel_scale, centre=(0.0, 0.0), mask=None, inner=0.3, outer=4.0, snr=5.0):
    """
    Flux-weighted median radius (arcsec) of the significant light of an arcs image about ``centre``.

    A model-free starting value for the Einstein radius: lensed arcs straddle
    the critical curve.  Pixels count where the image smoothed by a
    1.5-pixel Gaussian exceeds ``snr`` times its noise, between ``inner`` and
    ``outer`` arcsec.  Returns NaN when fewer than 10 pixels qualify.
    """
    img = np.asarray(image, float)
    sig = np.broadcast_to(np.asarray(noise, float), img.shape)
    m = np.zeros(img.shape, bool) if mask is None else np.asarray(mask, bool)
    m = m | ~np.isfinite(img) | ~np.isfinite(sig) | (sig <= 0)
    x, y = _offsets(img.shape, pixel_scale)
    r = np.hypot(x - centre[0], y - centre[1])
    s = 1.5
    sm = ndimage.gaussian_filter(np.where(m, 0.0, img), s)
    sm_noise = np.sqrt(ndimage.gaussian_filter(np.where(m, 0.0, sig ** 2), s)) / (2 * np.sqrt(np.pi) * s)
    sel = ~m & (r > inner) & (r < outer) & (sm > snr * np.maximum(sm_noise, 1e-30))
    if sel.sum() < 10:
        return float("nan")
    return weighted_median(r[sel], sm[sel])


def light_centre(image, mask, pixel_scale):
    """(x, y) arcsec of the peak of the image smoothed by a 2-pixel Gaussian."""
    sm = ndimage.gaussian_filter(np.where(mask, 0.0, image), 2.0)
    cy, cx = np.unravel_index(np.argmax(sm), sm.shape)
    h, w = image.shape
    return (cx - (w - 1) / 2) * pixel_scale, (cy - (h - 1) / 2) * pixel_scale


def start_values(mass_model, init, centre, lens_light):
    """
    The first start: the model's defaults, centred on the light, overridden by ``init``.

    Positions (``x0, y0``, the source's and the lens light's) start at ``centre``.
    """
    cx, cy = light_centre_names(mass_model)
    v = {n: float(mass_model.param_defaults.get(n, 0.0)) for n in mass_model.param_names}
    v.update(SOURCE_DEFAULTS)
    v.update(src_x=centre[0], src_y=centre[1])
    if lens_light:
        v.update(LIGHT_DEFAULTS)
    v[cx], v[cy] = centre
    if init is not None:
        for k, val in dict(init).items():
            if k in v:
                v[k] = float(getattr(val, "value", val))
    return v


def place_source(v, mass_model, img, sig, mask, pixel_scale, lens_light):
    """Start the source where the lens equation maps the bright arc pixels (flux-weighted median), in place."""
    x, y = _offsets(img.shape, pixel_scale)
    snr = ndimage.gaussian_filter(np.where(mask, 0.0, img / np.where(mask, 1.0, sig)), 1.0)
    bright = (snr > 5) & ~mask
    cx, cy = light_centre_names(mass_model)
    if lens_light:  # the lens core is not arc light
        bright &= np.hypot(x - v[cx], y - v[cy]) > 0.5 * v.get("theta_E", 0.0)
    if bright.sum() < 5:
        return
    t = {k: torch.tensor(v[k], dtype=torch.float64) for k in mass_model.param_names}
    ax, ay = mass_model.deflection_tensor(torch.as_tensor(x[bright]), torch.as_tensor(y[bright]), **t)
    bx, by = x[bright] - ax.numpy(), y[bright] - ay.numpy()
    wts = np.clip(img[bright], 0, None)
    if wts.sum() <= 0:
        return
    v["src_x"], v["src_y"] = weighted_median(bx, wts), weighted_median(by, wts)
    spread = np.hypot(bx - v["src_x"], by - v["src_y"])
    v["src_R_e"] = float(np.clip(weighted_median(spread, wts), 0.03, 1.0))


def make_starts(base, mass_model, ring, n_starts, shape, pixel_scale, rng, theta_E_bounds=None):
    """
    ``n_starts`` starting points.

    ``base`` first; the ring radius (when it differs from ``base``'s
    theta_E by over 5%); a third of ``n_starts`` on a logarithmic grid of
    Einstein radii across the image (in case both guesses are wrong: a CNN
    outside its training set, a ring radius biased by other objects); the rest
    scattered about the first two.  Ellipticity-like parameters (symmetric
    ranges) scatter about ``base``, shears by `SHEAR_SCATTER`.  Models without
    ``theta_E`` get the scattered starts only.
    """
    has_theta = "theta_E" in mass_model.param_names
    starts = [dict(base)]
    if has_theta and np.isfinite(ring) and abs(ring - base["theta_E"]) > 0.05 * base["theta_E"]:
        starts.append({**base, "theta_E": ring})
    n_grid = int(n_starts) // 3 if int(n_starts) > 2 and has_theta else 0
    h, w = shape
    half = 0.5 * min(h, w) * pixel_scale
    g_lo, g_hi = max(3 * pixel_scale, 0.15), 0.8 * half
    if theta_E_bounds:
        g_lo, g_hi = max(g_lo, theta_E_bounds[0] * 1.05), min(g_hi, theta_E_bounds[1] * 0.95)
    grid = list(np.geomspace(g_lo, max(g_hi, g_lo), n_grid)) if n_grid else []
    shears = [n for n in mass_model.param_names if n.startswith("gamma")]
    symmetric = [n for n in mass_model.param_names if n not in shears
                 and _symmetric(mass_model.param_ranges.get(n))]
    while len(starts) < int(n_starts):
        k = len(starts)
        st = dict(base)
        if grid:
            st["theta_E"] = float(grid.pop(0))
        elif has_theta:
            centre_theta = ring if (np.isfinite(ring) and k % 2) else base["theta_E"]
            st["theta_E"] = centre_theta * float(np.exp(rng.normal(0, 0.2)))
        for key in symmetric + ["src_e1", "src_e2"]:
            sd = SCATTER.get(key, MASS_SCATTER)
            st[key] = float(np.clip(base[key] + rng.normal(0, sd), -0.6, 0.6))
        if shears:
            for key, val in zip(shears, rng.normal(0, SHEAR_SCATTER, len(shears))):
                st[key] = float(val)
        starts.append(st)
    return starts


def _symmetric(rng):
    return rng is not None and rng[0] is not None and rng[1] is not None and rng[0] == -rng[1]
