"""
Maximum-likelihood lens modelling: the baseline the CNNs replace.

`fit` models one image with an SIE (plus external shear), an elliptical
Sérsic source and, optionally, an elliptical Sérsic lens light, all rendered
with lenskit's differentiable torch kernels (ray tracing on a supersampled
grid, pixel averaging, PSF convolution), and maximises the Gaussian
likelihood of the data with its noise map:

* the amplitudes of the source and the lens light enter linearly and are
  solved exactly (weighted least squares) at every step, so the optimiser only
  sees the non-linear parameters;
* non-linear parameters live in unbounded coordinates (logarithms for radii
  and the Sérsic index, bounded maps for ellipticities), optimised by Adam and
  then L-BFGS from several starts (a CNN estimate, or the image's own light
  centre), keeping the best; the source starts where the lens equation of the
  starting mass maps the bright arc pixels;
* uncertainties come from the Laplace approximation: the inverse Hessian of
  the negative log-likelihood (by autograd) at the optimum, mapped to the
  physical parameters with the Jacobian of the transform.

The result carries the best fit, 1-sigma errors, the model, the residual and
the reduced chi-square.
"""

import math
import time

import astropy.units as u
import numpy as np
import torch
from astropy.table import QTable

from lenskit.core.validation import as_float, as_real_array
from lenskit.lensing.convolution import fft_convolve
from lenskit.lensing.render import pixel_grid, render

__all__ = ["fit", "FitResult", "render_model", "fft_convolve", "ring_radius", "outlier_mask"]

MASS = ("theta_E", "e1", "e2", "x0", "y0")
SHEAR = ("gamma1", "gamma2")
SOURCE = ("src_R_e", "src_n", "src_e1", "src_e2", "src_x", "src_y")
LIGHT = ("light_R_e", "light_n", "light_e1", "light_e2")
UNITS = {"theta_E": "arcsec", "x0": "arcsec", "y0": "arcsec", "src_R_e": "arcsec", "src_x": "arcsec",
         "src_y": "arcsec", "light_R_e": "arcsec"}
ARCSEC = u.arcsec  # (fit() uses "u" for a local)
E_MAX = 0.8  # |e| bound of the ellipticity maps (q >= 0.11)


def _to_free(name, v, bounds=None):
    if bounds and name in bounds:  # a logistic map onto (lo, hi)
        lo, hi = bounds[name]
        f = min(max((v - lo) / (hi - lo), 1e-4), 1 - 1e-4)
        return math.log(f) - math.log(1 - f)
    if name in ("theta_E", "src_R_e", "light_R_e"):
        return math.log(max(v, 1e-3))
    if name in ("src_n", "light_n"):
        return math.log(min(max(v, 0.31), 7.9) - 0.3) - math.log(8.0 - min(max(v, 0.31), 7.9))
    if name in ("e1", "e2", "src_e1", "src_e2", "light_e1", "light_e2", "gamma1", "gamma2"):
        if abs(v) < 1e-3:  # |e| = 0 is a cusp of sqrt(e1^2 + e2^2): its gradient is 0/0
            v = 1e-3
        return math.atanh(max(min(v / E_MAX, 0.999), -0.999))
    return float(v)


def _to_phys(name, z, bounds=None):
    if bounds and name in bounds:
        lo, hi = bounds[name]
        return lo + (hi - lo) * torch.sigmoid(z)
    if name in ("theta_E", "src_R_e", "light_R_e"):
        return torch.exp(z)
    if name in ("src_n", "light_n"):
        return 0.3 + 7.7 * torch.sigmoid(z)
    if name in ("e1", "e2", "src_e1", "src_e2", "light_e1", "light_e2", "gamma1", "gamma2"):
        return E_MAX * torch.tanh(z)
    return z


class FitResult:
    """
    The maximum-likelihood fit of one image.

    Attributes
    ----------
    params : `~astropy.table.QTable`
        One row: best-fit values and ``<name>_std`` Laplace errors (arcsec where angular).
    model, residual : ndarray
        (H, W) model image and data minus model.
    lens_light : ndarray or None
        The fitted lens-light component.
    chi2, reduced_chi2 : float
    seconds : float
        Wall time of the fit.
    starts : list of float
        Final chi-square of each start of the search (NaN for those not refined).
    """

    def __init__(self, params, model, residual, lens_light, chi2, dof, seconds, starts, covariance, names):
        self.params = params
        self.model = model
        self.residual = residual
        self.lens_light = lens_light
        self.chi2 = float(chi2)
        self.reduced_chi2 = float(chi2) / max(int(dof), 1)
        self.seconds = float(seconds)
        self.starts = list(starts)
        self.covariance = covariance
        self.names = list(names)

    def __getitem__(self, name):
        return self.params[name][0]

    def __repr__(self):
        p = self.params[0]
        return (f"<FitResult theta_E={p['theta_E']:.3f} e=({p['e1']:.3f}, {p['e2']:.3f}) "
                f"reduced chi2={self.reduced_chi2:.2f}, {self.seconds:.1f} s>")


def render_model(values, shape, pixel_scale, psf=None, supersample=2, shear=True, lens_light=True, dtype=None):
    """
    Unit-amplitude source and lens-light images for a dict of physical parameter tensors.

    Returns ``(source_image, lens_image or None)``, each (H, W), PSF-convolved.
    """
    from lenskit.lensing.light import elliptical_sersic, sersic_b
    from lenskit.mass_models.sie import SIE

    dtype = dtype or values["theta_E"].dtype
    x, y = pixel_grid(shape, pixel_scale, supersample, dtype=dtype)
    X, Y = x.reshape(1, -1), y.reshape(-1, 1)
    sie = SIE()

    def deflection(xx, yy, **mass):
        ax, ay = sie._deflection(xx, yy, **mass)
        if shear:
            g1, g2 = values["gamma1"], values["gamma2"]
            dx, dy = xx - values["x0"], yy - values["y0"]
            ax = ax + g1 * dx + g2 * dy
            ay = ay + g2 * dx - g1 * dy
        return ax, ay

    n_s, n_l = values["src_n"], values.get("light_n")

    def source(bx, by):
        return elliptical_sersic(bx, by, values["src_e1"], values["src_e2"], values["src_x"], values["src_y"],
                                 values["src_R_e"], n_s, sersic_b(n_s), 1.0)

    def light(xx, yy):
        return elliptical_sersic(xx, yy, values["light_e1"], values["light_e2"], values["x0"], values["y0"],
                                 values["light_R_e"], n_l, sersic_b(n_l), 1.0)

    src, lens, _ = render(deflection, {k: values[k] for k in MASS}, source, X, Y, pixel_scale, supersample=supersample,
                          light=light if lens_light else None)
    if psf is None:
        return src, lens
    out = fft_convolve(torch.stack([src] if lens is None else [src, lens]), psf)
    return out[0], (out[1] if lens_light else None)


def _start_values(init, light_centre, pixel_scale, shape):
    v = {"theta_E": 1.0, "e1": 0.0, "e2": 0.0, "x0": light_centre[0], "y0": light_centre[1], "gamma1": 0.0,
         "gamma2": 0.0, "src_R_e": 0.2, "src_n": 1.0, "src_e1": 0.0, "src_e2": 0.0, "src_x": light_centre[0],
         "src_y": light_centre[1], "light_R_e": 0.8, "light_n": 4.0, "light_e1": 0.0, "light_e2": 0.0}
    if init is not None:
        init = dict(init)
        for k, val in init.items():
            if k in v:
                v[k] = float(getattr(val, "value", val))
    return v


def _weighted_median(values, weights):
    """The value below which half the (non-negative) weight lies."""
    o = np.argsort(values)
    c = np.cumsum(weights[o])
    return float(values[o][np.searchsorted(c, 0.5 * c[-1])])


def _source_start(v, img, sig, mask, pixel_scale, lens_light):
    """Start the source where the lens equation maps the bright arc pixels (flux-weighted median)."""
    from scipy import ndimage

    from lenskit.mass_models.sie import SIE

    h, w = img.shape
    yy, xx = np.indices((h, w))
    x = (xx - (w - 1) / 2) * pixel_scale
    y = (yy - (h - 1) / 2) * pixel_scale
    snr = ndimage.gaussian_filter(np.where(mask, 0.0, img / np.where(mask, 1.0, sig)), 1.0)
    bright = (snr > 5) & ~mask
    if lens_light:  # the lens core is not arc light
        bright &= np.hypot(x - v["x0"], y - v["y0"]) > 0.5 * v["theta_E"]
    if bright.sum() < 5:
        return
    t = {k: torch.tensor(v[k], dtype=torch.float64) for k in MASS}
    ax, ay = SIE()._deflection(torch.as_tensor(x[bright]), torch.as_tensor(y[bright]), **t)
    bx, by = x[bright] - ax.numpy(), y[bright] - ay.numpy()
    wts = np.clip(img[bright], 0, None)
    if wts.sum() <= 0:
        return
    v["src_x"], v["src_y"] = _weighted_median(bx, wts), _weighted_median(by, wts)
    spread = np.hypot(bx - v["src_x"], by - v["src_y"])
    v["src_R_e"] = float(np.clip(_weighted_median(spread, wts), 0.03, 1.0))


def ring_radius(image, noise, pixel_scale, centre=(0.0, 0.0), mask=None, inner=0.3, outer=4.0, snr=5.0):
    """
    Flux-weighted median radius (arcsec) of the significant light of an arcs image about ``centre``.

    A model-free starting value for the Einstein radius: lensed arcs straddle
    the critical curve.  Pixels count where the image smoothed by a
    1.5-pixel Gaussian exceeds ``snr`` times its noise, between ``inner`` and
    ``outer`` arcsec.  Returns NaN when fewer than 10 pixels qualify.
    """
    from scipy import ndimage

    img = np.asarray(image, float)
    sig = np.broadcast_to(np.asarray(noise, float), img.shape)
    m = np.zeros(img.shape, bool) if mask is None else np.asarray(mask, bool)
    m = m | ~np.isfinite(img) | ~np.isfinite(sig) | (sig <= 0)
    h, w = img.shape
    yy, xx = np.indices(img.shape)
    r = np.hypot((xx - (w - 1) / 2) * pixel_scale - centre[0], (yy - (h - 1) / 2) * pixel_scale - centre[1])
    s = 1.5
    sm = ndimage.gaussian_filter(np.where(m, 0.0, img), s)
    sm_noise = np.sqrt(ndimage.gaussian_filter(np.where(m, 0.0, sig ** 2), s)) / (2 * np.sqrt(np.pi) * s)
    sel = ~m & (r > inner) & (r < outer) & (sm > snr * np.maximum(sm_noise, 1e-30))
    if sel.sum() < 10:
        return float("nan")
    return _weighted_median(r[sel], sm[sel])


def outlier_mask(image, noise, threshold=5.0, objlim=3.0, iterations=3, grow=1):
    """
    Cosmic rays, hot pixels and other artefacts sharper than the PSF (True), in one exposure or band.

    The Laplacian edge detection of L.A.Cosmic (van Dokkum 2001): the image
    is block-replicated 2 x 2, convolved with a Laplacian kernel (negative
    values set to 0) and block-averaged back; in units of the noise and with
    its 5 x 5 median removed, pixels above ``threshold`` are candidates.  A
    candidate is kept when the Laplacian exceeds ``objlim`` times the image's
    fine structure (3 x 3 median minus the 7 x 7 median of that), which is
    large for PSF-limited stars and galaxy cores and small for artefacts,
    elongated cosmic-ray tracks included.  Repeated ``iterations`` times, each
    time on the image with the found pixels replaced by their 5 x 5 median;
    flagged pixels are grown by ``grow`` pixels.
    """
    from scipy import ndimage

    img = np.asarray(image, float)
    sig = np.broadcast_to(np.asarray(noise, float), img.shape)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D; got shape {img.shape}")
    if not threshold > 0 or not objlim > 0:
        raise ValueError(f"threshold and objlim must be > 0; got {threshold}, {objlim}")
    good = np.isfinite(img) & np.isfinite(sig) & (sig > 0)
    s = np.where(good, sig, np.inf)
    x = np.where(good, img, 0.0)
    lap = np.array([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])
    flag = np.zeros(img.shape, bool)
    for _ in range(int(iterations)):
        sub = np.kron(x, np.ones((2, 2)))
        L = np.clip(ndimage.convolve(sub, lap, mode="nearest"), 0, None)
        L = L.reshape(img.shape[0], 2, img.shape[1], 2).mean(axis=(1, 3))
        S = L / (2 * s)
        S = S - ndimage.median_filter(S, size=5)
        m3 = ndimage.median_filter(x, size=3)
        fine = np.maximum(m3 - ndimage.median_filter(m3, size=7), 0.01 * s.min() if np.isfinite(s.min()) else 1e-30)
        new = good & ~flag & (S > threshold) & (L / fine > objlim)
        if not new.any():
            break
        flag |= new
        x = np.where(flag, ndimage.median_filter(x, size=5), x)
    if grow and flag.any():
        flag = ndimage.binary_dilation(flag, iterations=int(grow))
    return flag


def fit(image, noise, pixel_scale, psf=None, mask=None, init=None, shear=True, lens_light=True, n_starts=12,
        search_steps=60, n_refine=2, adam_steps=150, lbfgs_steps=60, supersample=2, seed=0, laplace=True,
        theta_E_range=None):
    """
    Maximum-likelihood SIE (+ shear) fit with a Sérsic source and Sérsic lens light.

    The search runs in two stages: ``n_starts`` starts are each optimised for
    ``search_steps`` Adam steps without supersampling (cheap); the
    ``n_refine`` best are then optimised at full resolution (Adam, then L-BFGS)
    and the best of those is kept.  Starts: ``init`` (e.g. a CNN estimate),
    the radius of the arcs' light (`ring_radius`) with ``init``'s ellipticity,
    a third of ``n_starts`` on a logarithmic grid of Einstein radii across the
    image, and draws scattered about the first two; every start places the
    source where its own lens equation maps the bright arc pixels.

    Parameters
    ----------
    image, noise : array-like
        (H, W) data and its 1-sigma noise (same units).
    pixel_scale : float
        Arcsec per pixel.
    psf : array-like, optional
        PSF kernel (odd size, normalised here) on the image's pixel grid.
    mask : array-like of bool, optional
        True where pixels are excluded.
    init : dict or table row, optional
        Starting values (a CNN `~lenskit.Estimate` row works: ``theta_E, e1,
        e2, x0, y0``).  Further starts scatter about it.
    shear, lens_light : bool
        Model an external shear and the lens light.
    n_starts : int
        Starts of the search stage (the first is ``init`` itself).
    search_steps : int
        Adam steps per start in the search stage.
    n_refine : int
        Best starts refined at full resolution.
    adam_steps, lbfgs_steps : int
        Optimiser budget per refined start.
    supersample : int
        Sub-pixels per side for ray tracing (refinement stage).
    laplace : bool
        Compute the inverse-Hessian uncertainties.
    theta_E_range : (float, float), optional
        Bounds (arcsec) on the Einstein radius, e.g. the masked core and the
        fitted region: a prior that keeps the fit from explaining the arcs
        with an unlensed, elongated source.  Default: unbounded (> 0).

    Returns
    -------
    `FitResult`
    """
    t0 = time.perf_counter()
    bounds = None
    if theta_E_range is not None:
        lo, hi = (as_float(v, "theta_E_range", ARCSEC) for v in theta_E_range)
        if not 0 <= lo < hi:
            raise ValueError(f"theta_E_range must be (low, high) with 0 <= low < high arcsec; got {theta_E_range}")
        bounds = {"theta_E": (lo, hi)}
    img = as_real_array(image, "image")
    sig = as_real_array(noise, "noise")
    if img.ndim != 2 or min(img.shape) < 8:
        raise ValueError(f"image must be a 2-D array of at least 8 x 8 pixels; got shape {img.shape}")
    if sig.shape != img.shape:
        raise ValueError(f"noise must be shaped like image {img.shape}; got {sig.shape}")
    pixel_scale = as_float(pixel_scale, "pixel_scale", ARCSEC)
    if not pixel_scale > 0:
        raise ValueError(f"pixel_scale must be > 0 arcsec; got {pixel_scale}")
    m = np.zeros(img.shape, bool) if mask is None else np.asarray(mask, bool)
    if m.shape != img.shape:
        raise ValueError(f"mask must be shaped like image {img.shape}; got {m.shape}")
    m = m | ~np.isfinite(img) | ~np.isfinite(sig) | (sig <= 0)
    if m.all():
        raise ValueError("every pixel is masked or has a non-finite value or noise")
    for name, v, low in (("n_starts", n_starts, 1), ("n_refine", n_refine, 1), ("search_steps", search_steps, 0),
                         ("adam_steps", adam_steps, 0), ("lbfgs_steps", lbfgs_steps, 0), ("supersample", supersample, 1)):
        if int(v) != v or v < low:
            raise ValueError(f"{name} must be an integer >= {low}; got {v!r}")
    kern = None
    if psf is not None:
        k = np.asarray(psf, dtype=np.float64)
        if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0 or not np.all(np.isfinite(k)) or k.sum() <= 0:
            raise ValueError(f"psf must be a finite, square, odd-sized 2-D kernel; got shape {k.shape}")
        kern = torch.as_tensor(k / k.sum())
    dt = torch.float64
    data = torch.as_tensor(np.where(m, 0.0, img), dtype=dt)
    wts = torch.as_tensor(np.where(m, 0.0, 1.0 / np.where(m, 1.0, sig)), dtype=dt)
    h, w = img.shape
    # light centre (arcsec) for default starts
    from scipy import ndimage

    sm = ndimage.gaussian_filter(np.where(m, 0.0, img), 2.0)
    cy, cx = np.unravel_index(np.argmax(sm), sm.shape)
    centre = ((cx - (w - 1) / 2) * pixel_scale, (cy - (h - 1) / 2) * pixel_scale)
    names = list(MASS) + (list(SHEAR) if shear else []) + list(SOURCE) + (list(LIGHT) if lens_light else [])
    base = _start_values(init, centre, pixel_scale, img.shape)
    user_source = init is not None and "src_x" in dict(init)
    ring = ring_radius(img, sig, pixel_scale, (base["x0"], base["y0"]), m,
                       inner=0.3 if not lens_light else 0.5 * base["theta_E"])
    rng = np.random.default_rng(seed)

    def values_of(z):
        return {n: _to_phys(n, z[i], bounds) for i, n in enumerate(names)}

    def solve(vals, ss=supersample):
        src, lens = render_model(vals, (h, w), pixel_scale, kern, ss, shear, lens_light, dt)
        comps = [src.reshape(-1)] + ([lens.reshape(-1)] if lens_light else [])
        A = torch.stack(comps, 1) * wts.reshape(-1, 1)
        b = (data * wts).reshape(-1)
        ata = A.T @ A + 1e-12 * torch.eye(A.shape[1], dtype=dt)
        amp = torch.linalg.solve(ata, A.T @ b)
        amp = torch.clamp(amp, min=0.0)
        model = sum(a * c for a, c in zip(amp, comps)).reshape(h, w)
        return model, amp, lens

    def nll(z, ss=supersample):
        model, _, _ = solve(values_of(z), ss)
        return 0.5 * (((data - model) * wts) ** 2).sum()

    # -- starting points ----------------------------------------------------------------------------------
    starts = [dict(base)]
    if np.isfinite(ring) and abs(ring - base["theta_E"]) > 0.05 * base["theta_E"]:
        starts.append({**base, "theta_E": ring})
    # a third of the starts on a logarithmic grid of Einstein radii across the image, in case both guesses
    # are wrong (a CNN outside its training set, a ring radius biased by other objects)
    n_grid = int(n_starts) // 3 if int(n_starts) > 2 else 0
    half = 0.5 * min(h, w) * pixel_scale
    g_lo, g_hi = max(3 * pixel_scale, 0.15), 0.8 * half
    if bounds:
        g_lo, g_hi = max(g_lo, bounds["theta_E"][0] * 1.05), min(g_hi, bounds["theta_E"][1] * 0.95)
    grid = list(np.geomspace(g_lo, max(g_hi, g_lo), n_grid)) if n_grid else []
    while len(starts) < int(n_starts):
        k = len(starts)
        st = dict(base)
        if grid:
            st["theta_E"] = float(grid.pop(0))
        else:
            centre_theta = ring if (np.isfinite(ring) and k % 2) else base["theta_E"]
            st["theta_E"] = centre_theta * float(np.exp(rng.normal(0, 0.2)))
        for key, sd in (("e1", 0.15), ("e2", 0.15), ("src_e1", 0.2), ("src_e2", 0.2)):
            st[key] = float(np.clip(base[key] + rng.normal(0, sd), -0.6, 0.6))
        if shear:
            st["gamma1"], st["gamma2"] = (float(v) for v in rng.normal(0, 0.03, 2))
        starts.append(st)
    for st in starts:
        if not user_source:
            _source_start(st, img, sig, m, pixel_scale, lens_light)

    def adam(z, steps, ss, lr=0.05):
        """Adam from z; returns the last point with a finite likelihood (an overflowing step is not kept)."""
        z = z.clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        good = z.detach().clone()
        for _ in range(int(steps)):
            opt.zero_grad()
            loss = nll(z, ss)
            if not torch.isfinite(loss):
                return good
            good = z.detach().clone()
            loss.backward()
            if not torch.isfinite(z.grad).all():
                return good
            opt.step()
        return z.detach()

    # -- search: every start, cheaply ------------------------------------------------------------------------
    scored = []
    for st in starts:
        z = torch.tensor([_to_free(n, st[n], bounds) for n in names], dtype=dt)
        if search_steps:
            z = adam(z, search_steps, 1)
        with torch.no_grad():
            val = float(nll(z, 1))
        scored.append((val if np.isfinite(val) else np.inf, z))
    order = sorted(range(len(scored)), key=lambda i: scored[i][0])
    # -- refinement of the best few at full resolution --------------------------------------------------------
    finals = [float("nan")] * len(scored)
    best = None
    for i in order[: int(n_refine)]:
        if not np.isfinite(scored[i][0]):
            continue
        z = adam(scored[i][1], adam_steps, supersample, lr=0.02).requires_grad_(True)
        if lbfgs_steps:
            lb = torch.optim.LBFGS([z], lr=1.0, max_iter=int(lbfgs_steps), line_search_fn="strong_wolfe")

            def closure():
                lb.zero_grad()
                loss = nll(z)
                loss.backward()
                return loss

            before = z.detach().clone()
            try:
                lb.step(closure)
            except RuntimeError:  # a failed line search keeps the Adam result
                pass
            with torch.no_grad():
                if not torch.isfinite(nll(z)):  # L-BFGS stepped into an overflow: keep the Adam result
                    z.copy_(before)
        with torch.no_grad():
            val = float(nll(z))
        finals[i] = 2 * val
        if np.isfinite(val) and (best is None or val < best[0]):
            best = (val, z.detach().clone())
    if best is None:
        raise RuntimeError("every start of the fit diverged (non-finite likelihood)")
    z = best[1]
    vals = values_of(z)
    with torch.no_grad():
        model, amp, lens = solve(vals)
    cov = None
    stds = {n: np.nan for n in names}
    if laplace:
        H = torch.autograd.functional.hessian(nll, z)
        J = torch.autograd.functional.jacobian(lambda q: torch.stack([_to_phys(n, q[i], bounds) for i, n in enumerate(names)]),
                                               z)
        try:
            cov_free = torch.linalg.inv(H)
            cov = (J @ cov_free @ J.T).numpy()
            d = np.diag(cov)
            stds = {n: float(np.sqrt(d[i])) if d[i] > 0 else np.nan for i, n in enumerate(names)}
        except RuntimeError:
            cov = None
    import astropy.units as u

    row = QTable()
    for n in names:
        unit = u.arcsec if UNITS.get(n) == "arcsec" else u.dimensionless_unscaled
        row[n] = [float(vals[n])] * unit
        row[f"{n}_std"] = [stds[n]] * unit
    row["source_amplitude"] = [float(amp[0])]
    if lens_light:
        row["light_amplitude"] = [float(amp[1])]
    chi2 = 2 * best[0]
    dof = int((~m).sum()) - len(names) - len(amp)
    model_np = model.numpy()
    lens_np = None if not lens_light else (amp[1] * lens).detach().numpy()
    return FitResult(row, model_np, np.where(m, 0.0, img - model_np), lens_np, chi2, dof,
                     time.perf_counter() - t0, finals, cov, names)
