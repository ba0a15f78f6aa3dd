"""
`Simulator`: from priors to observed strong-lens images.

For each system the simulator draws the mass parameters, places a source
inside (or near) the region of the source plane that is multiply imaged,
ray-traces it through the lens on the instrument's pixel grid (optionally
supersampled), adds the lens galaxy's light, keeps the systems the selection
accepts, and passes them through the instrument's observational effects.
Work is done in small chunks so each step's working set stays in cache.

The `Simulator` is a short orchestrator over parts that can be used and
tested alone: `~lenskit.simulation.drawing.SystemDrawer` (priors and draws),
`~lenskit.simulation.placement.SourcePlacer` (source positions),
`~lenskit.simulation.rendering.StampRenderer` (the one renderer on the
instrument's grid) and `lenskit.simulation.assembly` (tables and datasets).
"""

from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import astropy.units as u
import numpy as np
import torch
from tqdm.auto import tqdm

from lenskit.core.config import ConfigError, Configurable, decode, describe, rebuild
from lenskit.core.dataset import LensDataset
from lenskit.core.interfaces import Instrument, MassModel, Source
from lenskit.core.resources import check_memory
from lenskit.core.validation import (as_device, as_real_array, as_rng, check_choice, check_int, check_number,
                                     to_value)
from lenskit.instruments.camera import Camera
from lenskit.mass_models.composite import CompositeMassModel
from lenskit.plugins import get, plugin_module_allowed
from lenskit.simulation.assembly import Accepted, ImageSink, arc_snr, assemble, params_table
from lenskit.simulation.drawing import GENERIC_PRIORS, KNOWN_PRIORS, PRIOR_UNITS, SystemDrawer, build_priors
from lenskit.simulation.line_of_sight import LineOfSight
from lenskit.simulation.parallel import default_workers, pool, round_rng, tune_malloc
from lenskit.simulation.placement import SourcePlacer
from lenskit.simulation.residuals import imperfect_model
from lenskit.simulation.rendering import StampRenderer
from lenskit.simulation.selection import Selection, as_selection

__all__ = ["Simulator", "DEFAULT_TARGETS", "arc_snr", "GENERIC_PRIORS", "KNOWN_PRIORS", "PRIOR_UNITS"]

#: (Sub-)pixels per plane of a chunk when ``chunk_size`` is not given (32 HST stamps, 128 LSST g, r, i ones).
CHUNK_PIXELS = 2 ** 20
#: The largest default ``chunk_size``.
MAX_CHUNK = 128

#: A round that `Simulator.sample` starts beside others renders until it has accepted what the consumer wants less
#: this share of what those are expected to yield (a round that then falls short is rendered again, further).
EXPECTED_SHARE = 0.85

#: The five SIE parameters networks regress.
DEFAULT_TARGETS = ("theta_E", "e1", "e2", "x0", "y0")


def _resolve(kind, value, iface):
    if isinstance(value, str):
        return get(kind, value)()
    if isinstance(value, type) and issubclass(value, iface):
        return value()
    if isinstance(value, iface):
        return value
    raise TypeError(f"{kind} must be a registered name or a {iface.__name__}; got {value!r}")


class _Round(list):
    """A round's accepted chunks (`Simulator._round`), with ``rendered``: how many of its candidates were rendered,
    and ``complete``: whether that was all of them (no ``limit`` stopped it)."""

    rendered = 0
    complete = True


def _split_chunk(c, k):
    """A chunk of accepted systems cut into its first ``k`` and the rest."""
    head, tail = {}, {}
    for name, v in c.items():
        if name == "row":
            idx = np.arange(len(c["images"]))
            head["row"] = {key: (x.take(idx[:k]) if key == "_src" else x[:k]) for key, x in v.items()}
            tail["row"] = {key: (x.take(idx[k:]) if key == "_src" else x[k:]) for key, x in v.items()}
        else:
            head[name], tail[name] = (None, None) if v is None else (v[:k], v[k:])
    return head, tail


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
    lens_light : bool, ``"subtracted"`` or ``"residual"``, optional
        Add the lens galaxy's light; default is the instrument's choice
        (off for the HST recipe of Hezaveh et al., on for LSST and Euclid).
        ``"subtracted"``: observe the lens light, then subtract its true,
        PSF-convolved profile, so that its shot noise stays in the image and
        the noise map -- a perfect lens-light removal, as Pearson et al.
        (2019) made their images without lens light.  ``"residual"``: the
        same with an imperfect model subtracted (`imperfect_model`: a few per
        cent off in amplitude, a fraction of a pixel off in position, too
        concentrated or too extended), leaving the residuals a lens-light
        fit leaves on real data.
    misalignment : bool
        Scatter the light's axis ratio and angle about the mass's (Pearson
        et al. 2019: sigma_e = 0.12, sigma_phi = 10 deg).  Default True.
    caustic_margin : float
        Sources are placed inside the multiply-imaged region grown by a
        factor drawn up to ``1 + caustic_margin``.  Default 0.1.
    supersample : int
        Sub-pixels per pixel side for ray tracing.  Default 1.
    chunk_size : int, optional
        Systems rendered together.  Default: a power of two that puts about
        `CHUNK_PIXELS` (sub-)pixels in a chunk's plane (32 HST WFC3 stamps,
        128 LSST g, r, i stamps; at most `MAX_CHUNK`): a chunk's tensors stay in
        the CPU's last-level cache, and the per-chunk Python work (a few
        milliseconds) is spread over enough systems.
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
    workers : int, optional
        Threads that simulate rounds of systems in parallel on the CPU, each
        running torch on one thread (`lenskit.simulation.parallel`: this keeps
        its speed when other programs share the machine).  Default: torch's
        thread count at the time of the call.  The systems drawn do not
        depend on it.
    """

    def __init__(self, mass_model: str | MassModel | Sequence[str | MassModel] = "sie",
                 source: str | Source = "sersic_clump", instrument: str | Instrument = "hst_wfc3", *,
                 priors: Mapping[str, Any] | None = None, selection: str | float | Selection | None = "default",
                 seed: int | np.random.Generator | None = None, lens_light: bool | str | None = None,
                 misalignment: bool = True, caustic_margin: float = 0.1, supersample: int = 1, chunk_size: int | None = None,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, max_tries: int = 50,
                 compile: bool = False, split: str | None = None, line_of_sight: LineOfSight | bool | None = None,
                 workers: int | None = None):
        if isinstance(mass_model, (list, tuple)):
            comps = [_resolve("mass_model", m, MassModel) for m in mass_model]
            mass_model = comps[0] if len(comps) == 1 else CompositeMassModel(comps)
        self.mass_model = _resolve("mass_model", mass_model, MassModel)
        self.source = _resolve("source", source, Source)
        if split is not None:  # checked here too: sources without galaxies to split would take any name
            self.source = self.source.with_split(check_choice("split", split, ("train", "validation", "test")))
        self.split = split
        self.instrument = _resolve("instrument", instrument, Instrument)
        if isinstance(selection, str) and selection == "default":
            selection = getattr(self.instrument, "default_selection", "hezaveh2017")
        self.selection = as_selection(selection)
        self.rng = as_rng(seed)
        self.seed = int(seed) if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) else None
        if lens_light is None:
            lens_light = self.instrument.default_lens_light
        elif isinstance(lens_light, str):
            if lens_light not in ("subtracted", "residual"):
                raise ValueError(f"lens_light must be True, False, None, 'subtracted' or 'residual'; got "
                                 f"{lens_light!r}")
        elif not isinstance(lens_light, (bool, np.bool_)):
            raise ValueError(f"lens_light must be True, False, None, 'subtracted' or 'residual'; got {lens_light!r}")
        self.lens_light = lens_light if isinstance(lens_light, str) else bool(lens_light)
        self.misalignment = bool(misalignment)
        self.caustic_margin = check_number("caustic_margin", caustic_margin, low=0)
        self.supersample = check_int("supersample", supersample, minimum=1)
        self.chunk_size = check_int("chunk_size", chunk_size, minimum=1, allow_none=True)
        self.device = as_device(device)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64; got {dtype}")
        self.dtype = dtype
        self.max_tries = check_int("max_tries", max_tries, minimum=1)
        self.priors = build_priors(priors or {}, self.instrument, self.mass_model)
        if self.chunk_size is None:  # about CHUNK_PIXELS (sub-)pixels per plane of a chunk: cache-sized work
            pixels = len(self.instrument.bands) * int(np.prod(self.instrument.shape)) * self.supersample ** 2
            self.chunk_size = int(min(MAX_CHUNK, 2 ** max(0, round(np.log2(CHUNK_PIXELS / pixels)))))
        if line_of_sight is True:
            line_of_sight = LineOfSight()
        elif line_of_sight is False:
            line_of_sight = None
        if line_of_sight is not None and not hasattr(line_of_sight, "render"):
            raise TypeError(f"line_of_sight must be a LineOfSight, True or None; got {line_of_sight!r}")
        self.line_of_sight = line_of_sight
        self.compile = bool(compile)
        self._warm = False
        self.workers = check_int("workers", workers, minimum=1, allow_none=True)
        # the parts
        self.drawer = SystemDrawer(self.mass_model, self.instrument, self.priors, self.misalignment)
        self.placer = SourcePlacer(self.mass_model, self.caustic_margin)
        xs = [k for k, v in self.drawer.plain.items() if v == "x0"]
        ys = [k for k, v in self.drawer.plain.items() if v == "y0"]
        self.renderer = StampRenderer(self.mass_model, self.instrument, self.supersample, self.device, self.dtype,
                                      self.compile, (xs[0], ys[0]) if xs and ys else None)

    # -- configuration --------------------------------------------------------------
    @property
    def config(self):
        """
        JSON-like description of this simulator (stored in provenance).

        Its ``"build"`` entry describes every component exactly (their
        classes and arguments, `lenskit.core.config`), so that `from_config`
        rebuilds the simulator; the other entries are for people to read.
        """
        try:
            build = {"mass_model": describe(self.mass_model, "mass_model"),
                     "source": describe(self.source, "source"),
                     "instrument": describe(self.instrument, "instrument"),
                     "selection": describe(self.selection, "selection"),
                     "priors": {k: (v if not isinstance(v, Configurable) else describe(v, f"priors[{k!r}]"))
                                for k, v in self.priors.items()},
                     "line_of_sight": None if self.line_of_sight is None else describe(self.line_of_sight,
                                                                                        "line_of_sight")}
        except ConfigError as exc:  # a component lenskit cannot describe: the config is descriptive only
            build = {"unavailable": str(exc)}
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
            "seed": self.seed,
            "build": build,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, seed: int | None = None, device: str | torch.device = "cpu",
                    **overrides: Any) -> "Simulator":
        """
        The simulator a `config` describes: ``Simulator.from_config(dataset.provenance.config)``.

        With the same seed, its first `sample` of ``len(dataset)`` systems is
        the dataset bit for bit (on the same platform), when the dataset was
        the first sample of its simulator.

        Parameters
        ----------
        config : dict
            A `config` (from a dataset's provenance or a weight file's training record).
        seed : int, optional
            Default: the config's own seed.
        device : str or `torch.device`
        **overrides
            Any `Simulator` argument, replacing the config's (for example a
            ``source`` whose data the config cannot carry).

        Raises
        ------
        ValueError
            When the config does not describe its components (it was made by
            an older lenskit, or holds something lenskit cannot record), naming
            what to pass instead.
        """
        if not hasattr(config, "keys"):
            raise TypeError(f"config must be a dict (a Simulator.config); got {type(config).__name__}")
        build = config.get("build")
        if build is None or "unavailable" in build:
            why = "it has no 'build' entry (made by an older lenskit)" if build is None else build["unavailable"]
            raise ValueError(f"config cannot rebuild a Simulator: {why}; pass the components as overrides")
        kw = {
            "mass_model": lambda: rebuild(build["mass_model"], MassModel, "mass_model", plugin_module_allowed),
            "source": lambda: rebuild(build["source"], Source, "source", plugin_module_allowed),
            "instrument": lambda: rebuild(build["instrument"], Instrument, "instrument", plugin_module_allowed),
            "selection": lambda: rebuild(build["selection"], Selection, "selection", plugin_module_allowed),
            "priors": lambda: {k: decode(v, f"priors[{k!r}]", plugin_module_allowed) for k, v in build["priors"].items()},
            "line_of_sight": lambda: (None if build["line_of_sight"] is None else
                                      rebuild(build["line_of_sight"], LineOfSight, "line_of_sight",
                                              plugin_module_allowed)),
        }
        args = {k: (overrides[k] if k in overrides else make()) for k, make in kw.items()}
        for k in ("lens_light", "misalignment", "caustic_margin", "supersample", "chunk_size", "compile", "split"):
            args[k] = overrides.get(k, config[k])
        args["dtype"] = overrides.get("dtype", getattr(torch, config["dtype"]))
        args["seed"] = seed if seed is not None else config.get("seed")
        unknown = set(overrides) - set(args) - {"max_tries"}
        if unknown:
            raise TypeError(f"unknown Simulator argument(s) {sorted(unknown)}")
        if "max_tries" in overrides:
            args["max_tries"] = overrides["max_tries"]
        return cls(args.pop("mass_model"), args.pop("source"), args.pop("instrument"), device=device, **args)

    # -- rendering ---------------------------------------------------------------------
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
            the light is centred on the mass, or offset from it by ``light_dx``, ``light_dy`` (arcsec).
            A second, exponential component (a disc) with ``light_disc_R_e``, ``light_disc_e1`` and
            ``light_disc_e2``.
        lens_flux : array (n, bands), optional
            Total lens-light flux per band; (n, 2, bands) with a disc: the bulge's and the disc's.

        Returns
        -------
        arcs : `torch.Tensor` (n, bands, H, W)
        lens_light : `torch.Tensor` (n, bands, H, W) or None
        magnification : ndarray (n,)
        """
        params, source_positions, source_flux, light, lens_flux = self._check_render(
            params, source_positions, sources, source_flux, light, lens_flux)
        return self.renderer.render(params, source_positions, sources, source_flux, light, lens_flux)

    def _check_render(self, params, source_positions, sources, source_flux, light, lens_flux):
        """`render`'s arguments checked before any work: plain float arrays in the renderer's units, one row per
        system, finite, the mass parameters in their model's domain."""
        def values(v, unit, name):
            arr = np.atleast_1d(as_real_array(to_value(v, unit, name) if unit is not None else v, name))
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} must be finite; got {arr.ravel()[~np.isfinite(arr.ravel())][:3]}")
            return arr

        def rows(arr, name, n, what="one value per system"):
            if arr.shape[:1] != (n,):
                raise ValueError(f"{name} must hold {what} ({n}, as source_positions has rows); got shape "
                                 f"{arr.shape}")
            return arr

        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a dict of the mass parameters; got {type(params).__name__}")
        pos = values(source_positions, u.arcsec, "source_positions")
        if pos.ndim != 2 or pos.shape[1] != 2:
            raise ValueError(f"source_positions must be an (n, 2) array of (x, y) in arcsec; got shape {pos.shape}")
        n = len(pos)
        units = self.mass_model.param_units
        plain = {k: rows(values(v, units.get(k), f"params[{k!r}]"), f"params[{k!r}]", n) for k, v in params.items()}
        self.mass_model.check_params(plain)  # names and domain (theta_E > 0, |e| < 1 ...), naming the model
        if len(sources) != n:
            raise ValueError(f"sources must hold one source per system ({n}); got {len(sources)}")
        flux = values(source_flux, None, "source_flux")
        rows(flux, "source_flux", n, "one flux (or one per band) per system")
        if np.any(flux < 0):
            raise ValueError("source_flux must be >= 0")
        if light is not None:
            if not isinstance(light, Mapping):
                raise TypeError(f"light must be a dict of lens-light parameters; got {type(light).__name__}")
            # radii and offsets in arcsec, the rest (indices, ellipticities) dimensionless: Quantities converted
            light = {k: rows(values(v, u.arcsec if k.endswith(("_R_e", "_dx", "_dy")) else u.dimensionless_unscaled,
                                    f"light[{k!r}]"), f"light[{k!r}]", n) for k, v in light.items()}
            if lens_flux is None:
                raise ValueError("lens_flux is needed with light: the lens light's total flux per band")
        if lens_flux is not None:
            if light is None:
                raise ValueError("lens_flux needs light: the lens light's parameters")
            lens_flux = values(lens_flux, None, "lens_flux")
            rows(lens_flux, "lens_flux", n, "the lens light's flux per band per system")
        return plain, pos, flux, light, lens_flux

    # -- the loop ------------------------------------------------------------------------
    def _seeing(self):
        f = getattr(self.instrument, "psf_fwhm", None)
        if isinstance(f, dict):
            return min(f[b] for b in self.instrument.bands)
        return float(f) if f else 0.1

    def _candidates(self, m, rng):
        """Draw, place and render m candidates; return the dict of arrays and tensors."""
        p, extra = self.drawer.lens(m, rng)
        beta, inside = self.placer.place(p, extra, rng)
        src = self.source.sample(m, rng)
        src_mag = self.priors["source_mag"].sample(rng, m)
        src_flux, src_mags = self.drawer.band_fluxes(src_mag, "source", rng)
        light = lens_flux = None
        if self.lens_light:
            light = self.drawer.light(m, rng, extra["q"], extra["phi"])
            lens_flux = self.drawer.lens_fluxes(light, rng)
        return dict(p=p, extra=extra, beta=beta, inside=inside, src=src, src_mag=src_mag, src_flux=src_flux,
                    light=light, lens_flux=lens_flux)

    def _round_size(self) -> int:
        """Candidates per round: four chunks (at least 16)."""
        return max(4 * self.chunk_size, 16)

    def _round(self, rng: np.random.Generator, keep_truth: bool, limit: int | None = None) -> list[dict]:
        """
        One round: draw, place and render a batch of candidates chunk by chunk, observe and select them.

        Returns, per chunk with accepted systems, a dict of its tensors (``images``, ``variance``, ``masks``,
        ``arcs``, ``lens_light``) and ``row``, the parameters of its systems.  With ``limit``, the chunks stop
        once that many systems are accepted: the chunks returned are those of the whole round (every chunk's
        random numbers follow those of the chunks before it), so a caller that takes at most ``limit`` systems
        from the round gets the same ones.  The list returned is a ``_Round``, which says how many candidates
        were rendered and whether the limit stopped the round before its end.
        """
        out = _Round()
        accepted = 0
        m = self._round_size()
        cand = self._candidates(m, rng)
        for start in range(0, m, self.chunk_size):
            sl = slice(start, min(start + self.chunk_size, m))
            out.rendered = sl.stop
            idx = np.arange(sl.start, sl.stop)
            p = {k: v[idx] for k, v in cand["p"].items()}
            light = None if cand["light"] is None else {k: v[idx] for k, v in cand["light"].items()}
            src = cand["src"].take(idx)
            # the drawn candidates need none of the public render's checks
            arcs, lens, mu = self.renderer.render(p, cand["beta"][idx], src, cand["src_flux"][idx], light,
                                                  None if light is None else cand["lens_flux"][idx])
            state = {"theta_E": cand["extra"]["theta_E"][idx], "magnification": mu,
                     "multiply_imaged": cand["inside"][idx], "source_size": np.asarray(src.size),
                     "seeing": self._seeing()}
            keep = np.nonzero(self.selection.pre(state))[0]
            if len(keep) == 0:
                continue
            whole = len(keep) == len(idx)  # every candidate kept: no copies
            kt = None if whole else torch.as_tensor(keep, device=self.device)
            arcs_k = arcs if whole else arcs[kt]
            ideal = arcs_k if lens is None else arcs_k + (lens if whole else lens[kt])
            n_los = None
            if self.line_of_sight is not None:
                los, n_los = self.line_of_sight.render(len(keep), rng, self)
                ideal = ideal + los
            truth = {"arcs": arcs_k}
            if lens is not None:
                truth["lens_light"] = lens if whole else lens[kt]
            if lens is not None and n_los is None and type(self.instrument).observe is Camera.observe:
                # ideal is exactly arcs + lens light: linear effects need not convolve it as well
                obs = self.instrument.observe(ideal, rng, sum_of=("arcs", "lens_light"), **truth)
            else:
                obs = self.instrument.observe(ideal, rng, **truth)
            if self.lens_light in ("subtracted", "residual"):  # the light removed, its shot noise stays
                sub = obs.truth["lens_light"]
                if self.lens_light == "residual":  # ... by an imperfect model, as a fit leaves residuals
                    sub, drawn = imperfect_model(sub, rng, self.priors)
                    obs.meta.update(drawn)
                sub = sub if obs.masks is None else sub * ~obs.masks
                obs.images = obs.images - sub  # masked pixels stay zero
            snr = arc_snr(obs.truth["arcs"], obs.variance)
            state_k = {k: (v[keep] if isinstance(v, np.ndarray) else v) for k, v in state.items()}
            state_k["arc_snr"] = snr.max(1)
            post = np.nonzero(self.selection.post(state_k))[0]
            if len(post) == 0:
                continue
            every = len(post) == len(keep)
            pt = None if every else torch.as_tensor(post, device=self.device)

            def pick(t):
                return t if every or t is None else t[pt]

            chunk = {"images": pick(obs.images), "variance": pick(obs.variance), "masks": pick(obs.masks),
                     "arcs": pick(obs.truth["arcs"]) if keep_truth else None,
                     "lens_light": pick(obs.truth["lens_light"]) if keep_truth and "lens_light" in obs.truth
                     else None}
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
            chunk["row"] = row
            out.append(chunk)
            accepted += len(sel)
            if limit is not None and accepted >= limit:
                out.complete = sl.stop == m
                break
        return out

    def _rounds(self, base: int, keep_truth: bool, workers: int, need, truncate: bool = False,
                state: dict | None = None, ahead=None) -> Iterator[list[dict]]:
        """
        Rounds 0, 1, 2 ... seeded from ``base``, in order, computed ``workers`` at a time (`lenskit.simulation.parallel`).

        ``need()`` is the number of systems the consumer still wants.  ``truncate``: a consumer that takes
        once and stops (`sample`, `simulate`) needs no round's chunks beyond ``need()`` accepted systems,
        which `_round` then does not render (the systems taken are the same), and no round is started that
        it will most likely not use; a round started beside others stops at what the consumer wants less
        `EXPECTED_SHARE` of what those are expected to yield, and is rendered again, further, when the
        consumer turns out to need more of it (the systems do not depend on the number of workers).  Otherwise (a `stream`) a batch that needs new rounds starts one on
        every worker, even when one round holds the whole batch, as far as ``ahead()`` (the systems the
        consumer will take in all; default unbounded) is likely to use them; their systems serve the next
        batches.  While ``need()`` is 0 no round is started and those in flight are yielded
        (``state["inflight"]``: how many), so that a consumer can let them finish before it works
        (`_Flow.take`: the workers are idle between a stream's batches).
        """
        state = {} if state is None else state
        state["inflight"] = 0
        index = 0

        def limit():
            return need() if truncate else None

        if workers == 1 or self.device.type != "cpu":  # serial (a GPU runs each operation in parallel itself)
            while True:
                yield self._round(round_rng(base, index), keep_truth, limit())
                index += 1
        if self.compile and not self._warm:  # compile the kernels once, in this thread, before workers use them
            self._warm = True
            yield self._round(round_rng(base, index), keep_truth, limit())
            index += 1
        ex = pool(workers)
        inflight = deque()  # (round index, its limit, future)
        got = rendered = 0
        m = self._round_size()
        try:
            while True:
                # accepted systems a whole round yields (before any is done: half of its candidates)
                per_round = got / rendered * m if rendered else m / 2

                def expected():  # ... and what the rounds in flight are likely to yield, their limits considered
                    return sum(per_round if lim is None else min(lim, per_round) for _, lim, _ in inflight)

                wanted = upto = need()
                if not truncate and not inflight:  # a stream's batch that needs rounds: one for every worker,
                    upto = max(wanted, float("inf") if ahead is None else ahead())  # as far as it will use them
                while wanted > 0 and len(inflight) < workers and (not inflight or expected() < upto):
                    lim = None
                    if truncate:  # a round started beside others renders about what they will likely not yield
                        lim = max(1, wanted - int(EXPECTED_SHARE * expected()))
                    inflight.append((index, lim, ex.submit(self._round, round_rng(base, index), keep_truth, lim)))
                    index += 1
                i, _, future = inflight.popleft()
                chunks = future.result()
                state["inflight"] = len(inflight)
                if not chunks.complete and sum(len(c["images"]) for c in chunks) < need():
                    # the rounds before this one yielded less than expected: the consumer needs more of this
                    # round than its limit rendered; the same round again, further (the same systems first)
                    chunks = self._round(round_rng(base, i), keep_truth, need())
                got += sum(len(c["images"]) for c in chunks)
                rendered += chunks.rendered
                yield chunks
        finally:
            for _, _, f in inflight:
                f.cancel()

    class _Flow:
        """Accepted systems of rounds ``0, 1, 2 ...`` of one base seed, taken ``n`` at a time (leftovers kept)."""

        def __init__(self, sim, base, keep_truth, workers, once=False):
            self.sim = sim
            self.want = 0
            self.once = once
            self.state = {"inflight": 0}
            self.total = None  # the systems the consumer will take in all from now on, when it says (stream(steps=))
            # once: one take, then closed (sample, simulate): no round renders chunks that take cannot use
            self.rounds = sim._rounds(base, keep_truth, workers, lambda: self.want, truncate=once, state=self.state,
                                      ahead=self._ahead)
            self.left = deque()  # accepted chunks not yet taken

        def _ahead(self):
            """Systems the consumer will still take beyond those taken or waiting (inf when it has not said)."""
            if self.total is None:
                return float("inf")
            return max(0, self.total - sum(len(c["images"]) for c in self.left))

        def take(self, n, progress=None, sink=None):
            """``n`` accepted systems; ``sink``: an `ImageSink` that takes their images (``acc.images`` stays empty)."""
            acc = Accepted()
            got, empty_rounds = 0, 0
            try:
                while got < n:
                    if not self.left:
                        self.want = n - got
                        chunks = next(self.rounds)
                        if not chunks:
                            empty_rounds += 1
                            if empty_rounds >= self.sim.max_tries:
                                raise RuntimeError(
                                    f"the selection {self.sim.selection!r} accepted none of the last "
                                    f"{self.sim.max_tries} rounds of candidates ({got} of {n} accepted in all); "
                                    f"loosen the priors or the selection")
                            continue
                        empty_rounds = 0
                        self.left.extend(chunks)
                    c = self.left.popleft()
                    k = min(len(c["images"]), n - got)
                    if k < len(c["images"]):
                        c, rest = _split_chunk(c, k)
                        self.left.appendleft(rest)
                    if sink is not None:  # copied and hashed now, while the workers render the next rounds
                        sink(c["images"])
                    for name in ("images", "variance", "masks", "arcs", "lens_light"):
                        if name == "images" and sink is not None:
                            continue
                        if name in ("images", "variance", "masks") or c[name] is not None:
                            getattr(acc, name).append(c[name])
                    acc.rows.append(c["row"])
                    got += k
                    if self.total is not None:
                        self.total -= k
                    if progress is not None:
                        progress(k)
                self.want = 0
                if not self.once:  # the rounds still in flight finish now: no worker runs while the consumer works
                    while self.state["inflight"]:
                        self.left.extend(next(self.rounds))
            finally:
                self.want = 0
            return acc

        def close(self):
            self.rounds.close()

    def _flow(self, rng, keep_truth, workers=None, once=False):
        """A new flow of rounds whose base seed is one number from ``rng``; ``once``: for a single take."""
        tune_malloc()
        return self._Flow(self, int(rng.integers(0, 2**63 - 1)), keep_truth, workers or self.workers or default_workers(),
                          once)

    def simulate(self, n: int, rng: np.random.Generator | None = None, keep_truth: bool = True,
                 workers: int | None = None) -> Accepted:
        """
        Simulate ``n`` accepted systems without assembling a dataset: the raw tensors, chunk by chunk.

        `sample` and `stream` are built on it; use it where the tensors are
        wanted on the simulator's device (training on a GPU, benchmarks).

        Parameters
        ----------
        n : int
        rng : `numpy.random.Generator`, optional
            Default: the simulator's own.  The call takes one number from it;
            the systems depend on that number only (not on ``workers``).
        keep_truth : bool
            Keep the noise-free arcs and lens light.
        workers : int, optional
            Threads that render rounds of systems in parallel, each with one
            torch thread.  Default: the simulator's ``workers``.

        Returns
        -------
        `~lenskit.simulation.assembly.Accepted`
        """
        n = check_int("n", n, minimum=0)
        workers = check_int("workers", workers, minimum=1, allow_none=True)
        flow = self._flow(self.rng if rng is None else rng, keep_truth, workers, once=True)
        try:
            return flow.take(n) if n else Accepted()
        finally:
            flow.close()

    # -- public --------------------------------------------------------------------------
    def sample(self, n: int, keep_truth: bool = True, progress: bool = False) -> LensDataset:
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
                     "lenskit.scale.simulate (lenskit simulate --workers N --shard-size M)")
        bar = tqdm(total=n, desc="simulating", unit="lens") if progress else None
        sink = ImageSink(n, (len(self.instrument.bands), *self.instrument.shape))
        try:
            flow = self._flow(self.rng, keep_truth, once=True)
            try:
                parts = [flow.take(n, None if bar is None else bar.update, sink=sink)]
            finally:
                flow.close()
        finally:
            if bar is not None:
                bar.close()
        rows = [r for part in parts for r in part.rows]
        workers = (self.workers or default_workers()) if self.device.type == "cpu" else 1
        if workers > 1:  # the table (Python, astropy) in an idle worker while this thread assembles the rest
            table = pool(workers).submit(params_table, rows, self.mass_model, self.drawer.plain)
        else:
            table = params_table(rows, self.mass_model, self.drawer.plain)
        return assemble(parts, sink, self.instrument, table, seed=self.seed, config=self.config,
                        keep_truth=keep_truth, lens_light=bool(self.lens_light))

    def bytes_per_system(self, keep_truth=True):
        """
        Bytes one simulated system takes in a `~lenskit.LensDataset`: images, noise, masks and (with
        ``keep_truth``) the noise-free arcs and lens light.  `sample` refuses an ``n`` whose dataset would
        not fit in the memory available (`lenskit.core.resources.check_memory`).
        """
        pixels = len(self.instrument.bands) * int(np.prod(self.instrument.shape))
        planes = 2 + (1 + bool(self.lens_light) if keep_truth else 0)
        return pixels * (4 * planes + 1) + 2048  # + its row of parameters

    def stream(self, batch_size: int, device: str | torch.device | None = None, targets: Sequence[str] = DEFAULT_TARGETS,
               steps: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """
        Yield fresh training batches forever (or for ``steps`` batches).

        Every batch is a new realisation: new lenses, sources and
        observational effects, as in Hezaveh et al. (2017).

        Yields
        ------
        images : `torch.Tensor`
            (batch_size, bands, H, W) on ``device``.
        targets : `torch.Tensor`
            (batch_size, len(targets)) true values (arcsec for angles).  Targets are
            mass-model parameters or other columns of the systems' table (``psf_fwhm``,
            ``arc_snr`` ...; a column that the simulator does not make is refused at the
            first batch).
        masks : `torch.Tensor` or None
            Boolean masks like ``images`` (True = masked).
        """
        batch_size = check_int("batch_size", batch_size, minimum=1)
        steps = check_int("steps", steps, minimum=1, allow_none=True)
        check_memory(2 * batch_size * self.bytes_per_system(False), "batch_size", batch_size,
                     "use smaller batches")
        device = as_device(device) if device is not None else self.device
        targets = list(targets)
        if not targets or not all(isinstance(t, str) for t in targets):
            raise ValueError(f"targets must be a non-empty sequence of column names; got {targets!r}")
        # the other columns of the systems' table (what the effects drew ...) are known at the first batch
        unknown = [t for t in targets if t not in self.drawer.plain.values() and t not in self.mass_model.param_names]
        flow = self._flow(self.rng, False)
        if steps is not None:
            flow.total = steps * batch_size
        step = 0
        try:
            while steps is None or step < steps:
                acc = flow.take(int(batch_size))
                img, masks, rows = acc.images, acc.masks, acc.rows
                missing = [t for t in unknown if t not in rows[0]]
                if missing:
                    have = sorted(set(self.mass_model.param_names) | {k for k in rows[0] if not k.startswith("_")})
                    raise ValueError(f"unknown target(s) {missing}; the mass model has "
                                     f"{list(self.mass_model.param_names)} and this simulator's table {have}")
                images = torch.cat(img).to(device)
                m = None if any(x is None for x in masks) else torch.cat(masks).to(device)
                cols = []
                for t in targets:
                    key = t if t in rows[0] else next(k for k, v in self.drawer.plain.items() if v == t)
                    cols.append(np.concatenate([r[key] for r in rows]))
                y = torch.as_tensor(np.stack(cols, axis=1), dtype=torch.float32, device=device)
                yield images, y, m
                step += 1
        finally:
            flow.close()

    def __repr__(self):
        components = [c.name for c in getattr(self.mass_model, "components", [self.mass_model])]
        return (f"<Simulator {components} + {self.source.name} -> {self.instrument.name}, "
                f"selection={self.selection.name}>")
