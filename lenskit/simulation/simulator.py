"""
`Simulator`: from priors to observed strong-lens images.

For each system the simulator draws the mass parameters, places a source
inside (or near) the region of the source plane that is multiply imaged,
ray-traces it through the lens on the instrument's pixel grid (optionally
supersampled), adds the lens galaxy's light, keeps the systems the selection
accepts, and passes them through the instrument's observational effects.
Work is done in small chunks so each step's working set stays in cache.
"""


import astropy.units as u
import numpy as np
import torch
from astropy.table import QTable
from matplotlib.path import Path

from lenskit.core.dataset import LensDataset
from lenskit.core.interfaces import Instrument, MassModel, Source
from lenskit.core.priors import Normal, Uniform, as_prior
from lenskit.core.provenance import Provenance, array_checksum
from lenskit.core.resources import check_memory
from lenskit.core.validation import as_float, as_rng, check_int, check_number
from lenskit.lensing.critical import multiple_image_region
from lenskit.lensing.light import elliptical_sersic, sersic_b, sersic_total_flux
from lenskit.lensing.render import pixel_grid, render
from lenskit.simulation.selection import as_selection

__all__ = ["Simulator", "DEFAULT_TARGETS"]

#: The five SIE parameters networks regress.
DEFAULT_TARGETS = ("theta_E", "e1", "e2", "x0", "y0")

#: Priors that do not depend on the instrument.
GENERIC_PRIORS = {
    "gamma": Uniform(0.0, 0.1),              # external shear modulus
    "light_q_ratio": Normal(1.02, 0.12, 0.5, 2.0),  # q_mass / q_light (Pearson et al. 2019)
    "light_dphi": Normal(0.0, 10.0),         # degrees, light minus mass angle (Pearson et al. 2019)
    "colour_scatter": 0.1,                   # mag rms about the instrument's typical colours
}
KNOWN_PRIORS = {"theta_E", "ellipticity", "x0", "y0", "gamma", "lens_mag", "source_mag", "light_R_e",
                "light_n", "light_q_ratio", "light_dphi", "colour_scatter"}
#: The unit of each known prior (Quantities are converted to it; plain numbers are taken to be in it).
PRIOR_UNITS = {"theta_E": u.arcsec, "x0": u.arcsec, "y0": u.arcsec, "light_R_e": u.arcsec, "lens_mag": u.mag,
               "source_mag": u.mag, "light_dphi": u.deg, "colour_scatter": u.mag, "ellipticity": u.one,
               "gamma": u.one, "light_n": u.one, "light_q_ratio": u.one}


def _resolve(kind, value, iface):
    from lenskit.plugins import get

    if isinstance(value, str):
        return get(kind, value)()
    if isinstance(value, type) and issubclass(value, iface):
        return value()
    if isinstance(value, iface):
        return value
    raise TypeError(f"{kind} must be a registered name or a {iface.__name__}; got {value!r}")


class Simulator:
    """
    Simulate strong-lens observations.

    Parameters
    ----------
    mass_model : str, MassModel or list
        Registered name (``"sie"``), instance, or a list of them composed
        into one lens (``["sie", "external_shear"]``).
    source : str or Source
        Background source population.  Default ``"sersic_clump"``.
    instrument : str or Instrument
        Default ``"hst_wfc3"``.
    priors : dict, optional
        Overrides of the instrument's default priors.  Keys: ``theta_E``,
        ``ellipticity`` (1 - q, with a uniform angle), ``x0``, ``y0``,
        ``gamma`` (external shear modulus), ``lens_mag`` and ``source_mag``
        (reference band), ``light_R_e``, ``light_n``, ``light_q_ratio``
        (q_mass / q_light), ``light_dphi`` (degrees), ``colour_scatter`` (mag),
        and any other parameter of the mass model.  Values: a number, a
        ``(low, high)`` tuple or a `~lenskit.core.priors.Prior`.
    selection : str, float or Selection
        ``"hezaveh2017"`` (magnification >= 2), ``"pearson2019"`` (Pearson et
        al. 2019 criteria, including arc S/N > 20), a minimum magnification,
        None (keep all), or ``"default"``: the instrument's choice (Hezaveh et
        al. for HST, Pearson et al. for LSST and Euclid).
    seed : int or `numpy.random.Generator`, optional
    lens_light : bool or ``"subtracted"``, optional
        Add the lens galaxy's light; default is the instrument's choice
        (off for the HST recipe of Hezaveh et al., on for LSST and Euclid).
        ``"subtracted"``: observe the lens light, then subtract its true,
        PSF-convolved profile, so that its shot noise stays in the image and
        the noise map -- a perfect lens-light removal, as Pearson et al.
        (2019) made their images without lens light.
    misalignment : bool
        Scatter the light's axis ratio and angle about the mass's (Pearson
        et al. 2019: sigma_e = 0.12, sigma_phi = 10 deg).  Default True.
    caustic_margin : float
        Sources are placed inside the multiply-imaged region grown by a
        factor drawn up to ``1 + caustic_margin``.  Default 0.1.
    supersample : int
        Sub-pixels per pixel side for ray tracing.  Default 1.
    chunk_size : int
        Systems rendered together.  Default 8.
    device : str or `torch.device`
        Where to render.  Default ``"cpu"``.
    dtype : `torch.dtype`
        ``torch.float32`` (default) or ``torch.float64``.
    split : {'train', 'validation', 'test'}, optional
        Draw real galaxies only from this split (by galaxy identity), so that
        validation and test sets hold galaxies never used in training.
    compile : bool
        Fuse the ray-tracing and light-profile kernels with `torch.compile`
        (about 4x faster rendering on a CPU; the first batch pays a one-off
        compilation of 20-40 s and a C++ compiler must be available).
        Results agree with the eager kernels to float32 rounding.
    line_of_sight : `~lenskit.simulation.line_of_sight.LineOfSight` or bool, optional
        Add unlensed galaxies scattered over each stamp (True: the default
        `LineOfSight`).  Their number per system is recorded as ``n_line_of_sight``.
    max_tries : int
        Consecutive rounds of candidates without a single accepted system
        before giving up (a selection that rejects everything).
    """

    def __init__(self, mass_model="sie", source="sersic_clump", instrument="hst_wfc3", *, priors=None,
                 selection="default", seed=None, lens_light=None, misalignment=True, caustic_margin=0.1,
                 supersample=1, chunk_size=8, device="cpu", dtype=torch.float32, max_tries=50, compile=False,
                 split=None, line_of_sight=None):
        if isinstance(mass_model, (list, tuple)):
            from lenskit.mass_models.composite import CompositeMassModel

            comps = [_resolve("mass_model", m, MassModel) for m in mass_model]
            mass_model = comps[0] if len(comps) == 1 else CompositeMassModel(comps)
        self.mass_model = _resolve("mass_model", mass_model, MassModel)
        self.source = _resolve("source", source, Source)
        if split is not None:
            self.source = self.source.with_split(split)
        self.split = split
        self.instrument = _resolve("instrument", instrument, Instrument)
        if isinstance(selection, str) and selection == "default":
            selection = getattr(self.instrument, "default_selection", "hezaveh2017")
        self.selection = as_selection(selection)
        self.rng = as_rng(seed)
        self.seed = seed if isinstance(seed, (int, np.integer)) else None
        if lens_light is None:
            lens_light = self.instrument.default_lens_light
        elif isinstance(lens_light, str):
            if lens_light != "subtracted":
                raise ValueError(f"lens_light must be True, False, None or 'subtracted'; got {lens_light!r}")
        elif not isinstance(lens_light, (bool, np.bool_)):
            raise ValueError(f"lens_light must be True, False, None or 'subtracted'; got {lens_light!r}")
        self.lens_light = lens_light if isinstance(lens_light, str) else bool(lens_light)
        self.misalignment = bool(misalignment)
        self.caustic_margin = check_number("caustic_margin", caustic_margin, low=0)
        self.supersample = check_int("supersample", supersample, minimum=1)
        self.chunk_size = check_int("chunk_size", chunk_size, minimum=1)
        self.device = torch.device(device)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64; got {dtype}")
        self.dtype = dtype
        self.max_tries = check_int("max_tries", max_tries, minimum=1)
        self.priors = self._build_priors(priors or {})
        if line_of_sight is True:
            from lenskit.simulation.line_of_sight import LineOfSight

            line_of_sight = LineOfSight()
        elif line_of_sight is False:
            line_of_sight = None
        if line_of_sight is not None and not hasattr(line_of_sight, "render"):
            raise TypeError(f"line_of_sight must be a LineOfSight, True or None; got {line_of_sight!r}")
        self.line_of_sight = line_of_sight
        self._mass_names = list(self.mass_model.param_names)
        self._plain = {n: n.split("_", 1)[1] if n[:1].isdigit() and "_" in n else n for n in self._mass_names}
        for outer, plain in self._plain.items():
            if plain not in ("theta_E", "e1", "e2", "x0", "y0", "gamma1", "gamma2") and outer not in self.priors \
                    and plain not in self.priors:
                raise ValueError(f"mass model parameter {outer!r} has no default prior; pass priors={{{outer!r}: ...}}")
        self._grid = None
        self.compile = bool(compile)
        self._deflect = self.mass_model.deflection_tensor
        self._light = elliptical_sersic
        self._source_kernels = {}
        if self.compile:
            self._deflect = torch.compile(self._deflect)
            self._light = torch.compile(elliptical_sersic)

    # -- configuration --------------------------------------------------------------
    def _build_priors(self, user):
        if not isinstance(user, dict):
            raise TypeError(f"priors must be a dict; got {type(user).__name__}")
        priors = dict(GENERIC_PRIORS)
        priors.update(getattr(self.instrument, "default_priors", {}) or {})
        mass_params = set(self.mass_model.param_names)
        for key, value in user.items():
            if key not in KNOWN_PRIORS and key not in mass_params:
                raise ValueError(f"unknown prior {key!r}; expected one of {sorted(KNOWN_PRIORS | mass_params)}")
            priors[key] = value
        out = {}
        for key, value in priors.items():
            unit = PRIOR_UNITS.get(key) or self.mass_model.param_units.get(key)
            out[key] = (as_float(value, f"priors[{key!r}]", unit) if key == "colour_scatter"
                        else as_prior(value, f"priors[{key!r}]", unit))
        for key in ("theta_E", "x0", "y0", "ellipticity", "lens_mag", "source_mag", "light_R_e", "light_n"):
            if key not in out:
                raise ValueError(f"instrument {self.instrument.name!r} has no default prior for {key!r}; "
                                 f"pass priors={{{key!r}: ...}}")
        return out

    @property
    def config(self):
        """JSON-like description of this simulator (stored in provenance)."""
        return {
            "mass_model": getattr(self.mass_model, "name", type(self.mass_model).__name__),
            "mass_components": [c.name for c in getattr(self.mass_model, "components", [self.mass_model])],
            "source": self.source.name, "split": self.split,
            "instrument": self.instrument.to_config() if hasattr(self.instrument, "to_config") else self.instrument.name,
            "priors": {k: (v.to_config() if hasattr(v, "to_config") else v) for k, v in self.priors.items()},
            "selection": self.selection.to_config(),
            "lens_light": self.lens_light, "misalignment": self.misalignment,
            "line_of_sight": None if self.line_of_sight is None else self.line_of_sight.to_config(),
            "caustic_margin": self.caustic_margin, "supersample": self.supersample, "chunk_size": self.chunk_size,
            "compile": self.compile,
            "dtype": str(self.dtype).replace("torch.", ""),
        }

    # -- drawing parameters -----------------------------------------------------------
    def _draw_lens(self, n, rng):
        p = {}
        pr = self.priors
        aux = {}
        if hasattr(pr["theta_E"], "sample_aux"):  # e.g. EinsteinRadius: also sigma_v and redshifts
            theta_E, aux = pr["theta_E"].sample_aux(rng, n)
        else:
            theta_E = pr["theta_E"].sample(rng, n)
        eps = np.clip(pr["ellipticity"].sample(rng, n), 0.0, 0.98)
        q = 1 - eps
        phi = rng.uniform(0, np.pi, n)
        c = (1 - q) / (1 + q)
        gam = pr["gamma"].sample(rng, n)
        gphi = rng.uniform(0, np.pi, n)
        x0, y0 = pr["x0"].sample(rng, n), pr["y0"].sample(rng, n)
        generic = {"theta_E": theta_E, "e1": c * np.cos(2 * phi), "e2": c * np.sin(2 * phi), "x0": x0, "y0": y0,
                   "gamma1": gam * np.cos(2 * gphi), "gamma2": gam * np.sin(2 * gphi)}
        for outer, plain in self._plain.items():
            if outer in pr:
                p[outer] = pr[outer].sample(rng, n)
            elif plain in pr and plain not in generic:
                p[outer] = pr[plain].sample(rng, n)
            else:
                p[outer] = generic[plain]
        self.mass_model.check_params(p)
        extra = {"q": q, "phi": phi, "theta_E": theta_E, "x0": x0, "y0": y0, "aux": aux}
        return p, extra

    def _draw_light(self, n, rng, q_mass, phi_mass):
        pr = self.priors
        if self.misalignment:
            q_l = np.clip(q_mass / pr["light_q_ratio"].sample(rng, n), 0.05, 1.0)
            phi_l = phi_mass + np.deg2rad(pr["light_dphi"].sample(rng, n))
        else:
            q_l, phi_l = q_mass, phi_mass
        c = (1 - q_l) / (1 + q_l)
        return {"light_e1": c * np.cos(2 * phi_l), "light_e2": c * np.sin(2 * phi_l),
                "light_R_e": pr["light_R_e"].sample(rng, n), "light_n": pr["light_n"].sample(rng, n),
                "lens_mag": pr["lens_mag"].sample(rng, n)}

    def _band_fluxes(self, mag, kind, rng):
        inst = self.instrument
        n = len(mag)
        offs = inst.colour_offsets(kind)[None, :] + rng.normal(0, self.priors["colour_scatter"], (n, len(inst.bands)))
        if inst.reference_band in inst.bands:  # the drawn magnitude is the reference band's own
            offs[:, inst.bands.index(inst.reference_band)] = 0.0
        mags = mag[:, None] + offs
        return np.stack([inst.flux(mags[:, i], b) for i, b in enumerate(inst.bands)], axis=1), mags

    # -- source placement ----------------------------------------------------------------
    def _regions(self, p):
        """Per system, the polygons bounding the multiply-imaged region."""
        n = len(next(iter(p.values())))
        closed = self.mass_model.multiple_image_regions(n=96, **{k: p[k] for k in self._mass_names})
        if closed is not None:  # the model has them in closed form, for all systems at once
            caustic, cut = closed
            return [[caustic[i], cut[i]] for i in range(n)]
        out = []
        for i in range(n):
            try:
                out.append(multiple_image_region(self.mass_model, n=96, **{k: float(v[i]) for k, v in p.items()}))
            except Exception:  # a model without caustics: fall back to a disc of radius theta_E
                out.append([])
        return out

    def _place(self, p, extra, rng):
        n = len(extra["theta_E"])
        regions = self._regions(p)
        beta = np.zeros((n, 2))
        inside = np.zeros(n, dtype=bool)
        margin = 1 + rng.uniform(0, self.caustic_margin, n)
        for i in range(n):
            c = np.array([extra["x0"][i], extra["y0"][i]])
            polys = [poly for poly in regions[i] if len(poly) >= 3 and np.all(np.isfinite(poly))]
            if not polys:
                r = extra["theta_E"][i] * np.sqrt(rng.uniform(0, 1)) * 0.5
                a = rng.uniform(0, 2 * np.pi)
                beta[i] = c + r * np.array([np.cos(a), np.sin(a)])
                continue
            grown = [c + (poly - c) * margin[i] for poly in polys]
            paths = [Path(g) for g in grown]
            allpts = np.concatenate(grown)
            lo, hi = allpts.min(0), allpts.max(0)
            for _ in range(20):
                cand = lo + (hi - lo) * rng.random((64, 2))
                ok = np.zeros(64, dtype=bool)
                for path in paths:
                    ok |= path.contains_points(cand)
                if ok.any():
                    beta[i] = cand[np.argmax(ok)]
                    break
            else:
                beta[i] = c
            inside[i] = any(Path(poly).contains_point(beta[i]) for poly in polys)
        return beta, inside

    # -- rendering ---------------------------------------------------------------------
    def _pixel_grid(self):
        if self._grid is None:
            x, y = pixel_grid(self.instrument.shape, self.instrument.pixel_scale.to_value(u.arcsec), self.supersample,
                              self.device, self.dtype)
            self._grid = (x.reshape(1, 1, -1), y.reshape(1, -1, 1))
        return self._grid

    def _t(self, a):
        return torch.as_tensor(np.asarray(a, dtype=float), dtype=self.dtype, device=self.device)

    def render(self, params, source_positions, sources, source_flux, light=None, lens_flux=None):
        """
        Noise-free arcs and lens light of given systems on this simulator's grid (before the instrument's effects).

        The simulator's own renderer (`lenskit.lensing.render.render`), public for forward modelling and
        forecasts: the same function of the parameters that `sample` draws its images from.

        Parameters
        ----------
        params : dict
            Mass-model parameters, arrays shaped (n,) in their units (arcsec for angles).
        source_positions : array (n, 2)
            Unlensed source centres (x, y) in arcsec.
        sources : `~lenskit.core.SourceBatch`
            n sources (for example ``SersicBatch``), drawn about the origin.
        source_flux : array (n, bands)
            Total source flux per band (the instrument's units).
        light : dict, optional
            Lens-light parameters ``light_R_e``, ``light_n``, ``light_e1``, ``light_e2``, arrays (n,);
            the light is centred on the mass.
        lens_flux : array (n, bands), optional
            Total lens-light flux per band.

        Returns
        -------
        arcs : `torch.Tensor` (n, bands, H, W)
        lens_light : `torch.Tensor` (n, bands, H, W) or None
        magnification : ndarray (n,)
        """
        X, Y = self._pixel_grid()
        beta = np.asarray(source_positions, dtype=float)
        n = beta.shape[0]
        shape = (n, 1, 1)
        pt = {k: self._t(v).reshape(shape) for k, v in params.items()}
        pix = self.instrument.pixel_scale.to_value(u.arcsec)
        lens_sb = None
        if light is not None:
            R_e, nn = light["light_R_e"], light["light_n"]
            args = (self._t(light["light_e1"]).reshape(shape), self._t(light["light_e2"]).reshape(shape),
                    pt[self._centre_keys[0]], pt[self._centre_keys[1]], self._t(R_e).reshape(shape),
                    self._t(nn).reshape(shape), self._t(sersic_b(nn)).reshape(shape),
                    self._t(1.0 / sersic_total_flux(R_e, nn)).reshape(shape))

            def lens_sb(x, y):
                return self._light(x, y, *args)

        sb, lb, total = render(self._deflect, pt, lambda bx, by: self._source_brightness(sources, bx, by), X, Y, pix,
                               supersample=self.supersample, light=lens_sb,
                               source_offset=(self._t(beta[:, 0]).reshape(shape), self._t(beta[:, 1]).reshape(shape)))
        mu = total.double().cpu().numpy() / np.asarray(sources.flux)
        arcs = sb.unsqueeze(1) * (self._t(source_flux) * pix * pix).reshape(n, -1, 1, 1)
        lens = None if lb is None else lb.unsqueeze(1) * (self._t(lens_flux) * pix * pix).reshape(n, -1, 1, 1)
        return arcs, lens, mu

    def _source_brightness(self, src, bx, by):
        kernel = getattr(src, "kernel", None)
        if kernel is None:
            return src.brightness(bx, by)
        key = type(src)
        if key not in self._source_kernels:
            self._source_kernels[key] = torch.compile(kernel) if self.compile else kernel
        shape = (-1,) + (1,) * (bx.dim() - 1)
        return self._source_kernels[key](bx, by, *src.kernel_args(shape, bx.dtype, bx.device))

    @property
    def _centre_keys(self):
        xs = [k for k, v in self._plain.items() if v == "x0"]
        ys = [k for k, v in self._plain.items() if v == "y0"]
        if not xs:
            raise ValueError("lens light needs a mass model with a centre (x0, y0)")
        return xs[0], ys[0]

    # -- the loop ------------------------------------------------------------------------
    def _seeing(self):
        f = getattr(self.instrument, "psf_fwhm", None)
        if isinstance(f, dict):
            return min(f[b] for b in self.instrument.bands)
        return float(f) if f else 0.1

    def _candidates(self, m, rng):
        """Draw, place and render m candidates; return the dict of arrays and tensors."""
        p, extra = self._draw_lens(m, rng)
        beta, inside = self._place(p, extra, rng)
        src = self.source.sample(m, rng)
        src_mag = self.priors["source_mag"].sample(rng, m)
        src_flux, src_mags = self._band_fluxes(src_mag, "source", rng)
        light = lens_flux = lens_mags = None
        if self.lens_light:
            light = self._draw_light(m, rng, extra["q"], extra["phi"])
            lens_flux, lens_mags = self._band_fluxes(light["lens_mag"], "lens", rng)
        return dict(p=p, extra=extra, beta=beta, inside=inside, src=src, src_mag=src_mag, src_flux=src_flux,
                    light=light, lens_flux=lens_flux)

    def _simulate(self, n, rng, keep_truth=True):
        """Simulate ``n`` accepted systems; returns tensors and per-system arrays."""
        if int(n) != n or n < 0:
            raise ValueError(f"n must be a non-negative integer; got {n}")
        n = int(n)
        out_img, out_var, out_mask, out_arcs, out_lens, rows = [], [], [], [], [], []
        got, empty_rounds = 0, 0
        while got < n:
            if empty_rounds >= self.max_tries:
                raise RuntimeError(f"the selection {self.selection!r} accepted none of the last {self.max_tries} "
                                   f"rounds of candidates ({got} of {n} accepted in all); loosen the priors or "
                                   f"the selection")
            before = got
            m = max(4 * self.chunk_size, 16)
            cand = self._candidates(m, rng)
            for start in range(0, m, self.chunk_size):
                if got >= n:
                    break
                sl = slice(start, min(start + self.chunk_size, m))
                idx = np.arange(sl.start, sl.stop)
                p = {k: v[idx] for k, v in cand["p"].items()}
                light = None if cand["light"] is None else {k: v[idx] for k, v in cand["light"].items()}
                src = cand["src"].take(idx)
                arcs, lens, mu = self.render(p, cand["beta"][idx], src, cand["src_flux"][idx], light,
                                              None if light is None else cand["lens_flux"][idx])
                state = {"theta_E": cand["extra"]["theta_E"][idx], "magnification": mu,
                         "multiply_imaged": cand["inside"][idx], "source_size": np.asarray(src.size),
                         "seeing": self._seeing()}
                keep = np.nonzero(self.selection.pre(state))[0][: n - got]
                if len(keep) == 0:
                    continue
                kt = torch.as_tensor(keep, device=self.device)
                arcs_k = arcs[kt]
                ideal = arcs_k if lens is None else arcs_k + lens[kt]
                n_los = None
                if self.line_of_sight is not None:
                    los, n_los = self.line_of_sight.render(len(keep), rng, self)
                    ideal = ideal + los
                truth = {"arcs": arcs_k}
                if lens is not None:
                    truth["lens_light"] = lens[kt]
                obs = self.instrument.observe(ideal, rng, **truth)
                if self.lens_light == "subtracted":  # perfect removal: the light goes, its shot noise stays
                    sub = obs.truth["lens_light"] if obs.masks is None else obs.truth["lens_light"] * ~obs.masks
                    obs.images = obs.images - sub  # masked pixels stay zero
                snr = arc_snr(obs.truth["arcs"], obs.variance)
                state_k = {k: (v[keep] if isinstance(v, np.ndarray) else v) for k, v in state.items()}
                state_k["arc_snr"] = snr.max(1)
                post = np.nonzero(self.selection.post(state_k))[0]
                if len(post) == 0:
                    continue
                pt = torch.as_tensor(post, device=self.device)
                out_img.append(obs.images[pt])
                out_var.append(obs.variance[pt])
                out_mask.append(None if obs.masks is None else obs.masks[pt])
                if keep_truth:
                    out_arcs.append(obs.truth["arcs"][pt])
                    if "lens_light" in obs.truth:
                        out_lens.append(obs.truth["lens_light"][pt])
                sel = idx[keep[post]]
                row = {k: v[sel] for k, v in cand["p"].items()}
                row.update({k: v[sel] for k, v in cand["extra"]["aux"].items()})
                row.update(q=cand["extra"]["q"][sel], phi=cand["extra"]["phi"][sel],
                           source_x=cand["beta"][sel, 0], source_y=cand["beta"][sel, 1],
                           source_mag=cand["src_mag"][sel], magnification=mu[keep[post]],
                           multiply_imaged=cand["inside"][sel], arc_snr=snr[post].max(1))
                for b_i, b in enumerate(self.instrument.bands):
                    if len(self.instrument.bands) > 1:
                        row[f"arc_snr_{b}"] = snr[post, b_i]
                if cand["light"] is not None:
                    row.update({k: v[sel] for k, v in cand["light"].items()})
                for k, v in obs.meta.items():
                    row[k] = np.asarray(v)[post]
                if n_los is not None:
                    row["n_line_of_sight"] = n_los[post]
                row["_src"] = cand["src"].take(sel)
                rows.append(row)
                got += len(post)
            empty_rounds = empty_rounds + 1 if got == before else 0
        return out_img, out_var, out_mask, out_arcs, out_lens, rows

    # -- public --------------------------------------------------------------------------
    def sample(self, n, keep_truth=True, progress=False):
        """
        Simulate ``n`` accepted lens systems.

        Parameters
        ----------
        n : int
        keep_truth : bool
            Store the noise-free arcs (and lens light) in ``dataset.truth``.
        progress : bool
            Show a tqdm progress bar.

        Returns
        -------
        `~lenskit.LensDataset`
            Images (N, bands, H, W), noise maps, masks and a QTable of true
            parameters with units (one row per system).
        """
        n = check_int("n", n, minimum=1)
        check_memory(2 * n * self.bytes_per_system(keep_truth), "n", n,
                     "simulate in batches with Simulator.stream(batch_size), or to disk in shards with "
                     "lenskit.distributed.simulate (lenskit simulate --workers N --shard-size M)")
        block = max(self.chunk_size * 8, 64)
        parts = []
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc="simulating", unit="lens")
        done = 0
        while done < n:
            k = min(block, n - done)
            parts.append(self._simulate(k, self.rng, keep_truth))
            done += k
            if bar is not None:
                bar.update(k)
        if bar is not None:
            bar.close()
        cat = lambda lists: torch.cat([t for part in lists for t in part]).cpu().numpy()  # noqa: E731
        images = cat([pt[0] for pt in parts]).astype(np.float32, copy=False)
        noise = np.sqrt(cat([pt[1] for pt in parts])).astype(np.float32, copy=False)
        masks = None
        if all(m is not None for pt in parts for m in pt[2]):
            masks = cat([pt[2] for pt in parts]).astype(bool)
        truth = {}
        if keep_truth:
            truth["arcs"] = cat([pt[3] for pt in parts]).astype(np.float32, copy=False)
            if self.lens_light:
                truth["lens_light"] = cat([pt[4] for pt in parts]).astype(np.float32, copy=False)
        rows = [r for pt in parts for r in pt[5]]
        params = self._table(rows)
        prov = Provenance.current(seed=self.seed, config=self.config,
                                  checksums={"images": array_checksum(images)})
        return LensDataset(images, params, bands=self.instrument.bands, pixel_scale=self.instrument.pixel_scale,
                           instrument=self.instrument.name, noise=noise, masks=masks, truth=truth, provenance=prov)

    def bytes_per_system(self, keep_truth=True):
        """
        Bytes one simulated system takes in a `~lenskit.LensDataset`: images, noise, masks and (with
        ``keep_truth``) the noise-free arcs and lens light.  `sample` refuses an ``n`` whose dataset would
        not fit in the memory available (`lenskit.core.resources.check_memory`).
        """
        pixels = len(self.instrument.bands) * int(np.prod(self.instrument.shape))
        planes = 2 + (1 + bool(self.lens_light) if keep_truth else 0)
        return pixels * (4 * planes + 1) + 2048  # + its row of parameters

    def _table(self, rows):
        keys = [k for k in rows[0] if k != "_src"]
        t = QTable()
        units = {"theta_E": u.arcsec, "x0": u.arcsec, "y0": u.arcsec, "source_x": u.arcsec, "source_y": u.arcsec,
                 "light_R_e": u.arcsec, "psf_fwhm": u.arcsec, "phi": u.rad, "source_mag": u.mag,
                 "lens_mag": u.mag, "sigma_v": u.km / u.s}
        for k in keys:
            col = np.concatenate([r[k] for r in rows])
            plain = self._plain.get(k, k)
            unit = units.get(plain) or (u.arcsec if self.mass_model.param_units.get(k) == u.arcsec else None)
            t[k] = col * unit if unit is not None else col
        srct = [r["_src"].params for r in rows]
        from astropy.table import vstack

        st = vstack(srct) if srct and srct[0] is not None else None
        if st is not None:
            for c in st.colnames:
                t[c] = st[c]
        return t

    def stream(self, batch_size, device=None, targets=DEFAULT_TARGETS, steps=None):
        """
        Yield fresh training batches forever (or for ``steps`` batches).

        Every batch is a new realisation: new lenses, sources and
        observational effects, as in Hezaveh et al. (2017).

        Yields
        ------
        images : `torch.Tensor`
            (batch_size, bands, H, W) on ``device``.
        targets : `torch.Tensor`
            (batch_size, len(targets)) true values (arcsec for angles).
        masks : `torch.Tensor` or None
            Boolean masks like ``images`` (True = masked).
        """
        batch_size = check_int("batch_size", batch_size, minimum=1)
        steps = check_int("steps", steps, minimum=1, allow_none=True)
        check_memory(2 * batch_size * self.bytes_per_system(False), "batch_size", batch_size,
                     "use smaller batches")
        device = torch.device(device) if device is not None else self.device
        unknown = [t for t in targets if t not in self._plain.values() and t not in self._mass_names]
        if unknown:
            raise ValueError(f"unknown target(s) {unknown}; the mass model has {self._mass_names}")
        step = 0
        while steps is None or step < steps:
            img, var, masks, _, _, rows = self._simulate(int(batch_size), self.rng, keep_truth=False)
            images = torch.cat(img).to(device)
            m = None if any(x is None for x in masks) else torch.cat(masks).to(device)
            cols = []
            for t in targets:
                key = t if t in rows[0] else next(k for k, v in self._plain.items() if v == t)
                cols.append(np.concatenate([r[key] for r in rows]))
            y = torch.as_tensor(np.stack(cols, axis=1), dtype=torch.float32, device=device)
            yield images, y, m
            step += 1

    def __repr__(self):
        return (f"<Simulator {self.config['mass_components']} + {self.source.name} -> {self.instrument.name}, "
                f"selection={self.selection.name}>")


def arc_snr(arcs, variance):
    """
    Arc signal-to-noise of Lanusse et al. (2018, eq. 10), per image and band.

    ``S/N = F_tot / (sigma sqrt(N_pix))`` with ``F_tot`` the total flux of the
    noise-free lensed source, ``sigma`` the rms noise of the image and
    ``N_pix`` the number of pixels where the noise-free arc exceeds
    ``0.5 sigma``.

    Parameters
    ----------
    arcs, variance : `torch.Tensor`
        (N, bands, H, W).

    Returns
    -------
    ndarray
        (N, bands).
    """
    n, nb = arcs.shape[:2]
    sigma = torch.sqrt(variance.reshape(n, nb, -1).mean(2).double())
    a = arcs.reshape(n, nb, -1).double()
    npix = (a > 0.5 * sigma.unsqueeze(2)).sum(2).double()
    ftot = a.sum(2)
    snr = torch.where(npix > 0, ftot / (sigma * torch.sqrt(torch.clamp(npix, min=1)) + 1e-300),
                      torch.zeros_like(ftot))
    return snr.cpu().numpy()
