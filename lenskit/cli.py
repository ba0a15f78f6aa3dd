"""
The ``lenskit`` command line.

``lenskit plugins | demo | simulate | train | estimate | model | deblend | find``, each with ``--help``.
"""

import argparse
import contextlib
import io
import json
import math
import os
import sys
import time
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import QTable

import lenskit
from lenskit import __version__
from lenskit.core.dataset import LensDataset
from lenskit.core.estimate import Estimate
from lenskit.core.exceptions import LenskitError
from lenskit.core.files import check_output_path
from lenskit.core.provenance import Provenance, array_checksum
from lenskit.estimators.inputs import check_expects
from lenskit.io import read_images
from lenskit.io.fits import read_band_images, read_cutout, write_estimate_fits
from lenskit.plugins import plugins

__all__ = ["main"]


def _int_at_least(low):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer; got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}; got {v}")
        return v

    parse.__name__ = f"integer >= {low}"
    return parse


def _positive_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0; got {text}")
    return v


def _fraction(text):
    v = _positive_float(text)
    if not v < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1; got {text}")
    return v


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's default in its help (unless the help states it already), examples kept as written."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or action.nargs == 0:
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


#: Examples shown at the end of each command's --help.
EXAMPLES = {
    "plugins": ["lenskit plugins", "lenskit plugins --json"],
    "demo": ["lenskit demo", "lenskit demo -n 50 -o demo-out"],
    "estimate": ["lenskit estimate lenses.asdf -o estimates.asdf",
                 "lenskit deblend a.fits b.fits -o arcs.asdf && lenskit estimate arcs.asdf -o estimates.asdf",
                 "lenskit estimate lsst.asdf --estimator lsst_gri --tta 8 -o estimates.fits",
                 "lenskit estimate shards/ --workers 2 -o estimates.asdf"],
    "model": ["lenskit model SDSSJ0029-0055.fits -o J0029.asdf",
              "lenskit model cutout.fits --noise NOISE --psf psf.fits --no-refine -o cnn_only.fits",
              "lenskit model arcs.fits --no-deblend --shear -o model.asdf --plot model.pdf"],
    "deblend": ["lenskit deblend SL2SJ0219_F475X.fits SL2SJ0219_F600LP.fits -o deblended.asdf",
                "lenskit deblend lenses.asdf --method sersic -o deblended.asdf"],
    "find": ["lenskit find cutouts.fits -o candidates.asdf --top 20",
             "lenskit find cutouts.fits --lens-fraction 1e-3 --tta 8 -o candidates.fits"],
    "train": ["lenskit train --instrument lsst --estimator pearson --minutes 60 --checkpoint ck.asdf -o lsst.asdf",
              "torchrun --nproc_per_node 2 -m lenskit train --ddp --steps 2000 -o hst.asdf"],
    "simulate": ["lenskit simulate -n 1000 -o train.asdf",
                 "lenskit simulate -n 2000 --preset lanusse2018 --seed 3 -o finder_cutouts.asdf",
                 "lenskit simulate -n 2000 --instrument lsst --lens-light subtracted --seed 1 -o lsst.asdf",
                 "lenskit simulate -n 100000 --workers 2 --shard-size 1000 --seed 1 -o shards/"],
}


def _epilog(command):
    return "examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES[command])


#: 68% errors of Hezaveh et al. (2017) Table 1, combined network (arcsec for theta_E, x0, y0).
HEZAVEH2017_TABLE1 = {"theta_E": 0.02, "e1": 0.04, "e2": 0.04, "x0": 0.04, "y0": 0.04}

#: What -q does, for every command.
QUIET_HELP = "quiet: no progress bars and nothing on standard output (errors still go to standard error)"

_POSITIVE = _int_at_least(1)
_NON_NEGATIVE = _int_at_least(0)
_ASDF = (".asdf",)
_TABLES = (".asdf", ".fits", ".fit")


def _output(args, suffixes, what):
    """Check ``-o`` before any work: its kind of file, its directory, and --overwrite."""

    out = Path(args.output)
    if out.suffix.lower() not in suffixes:
        kinds = " or ".join(suffixes)
        raise ValueError(f"-o/--output: lenskit {args.command} writes {what} as {kinds}; got {out.name!r}"
                         + (" (FITS output is not available for this command)" if out.suffix.lower() in
                            (".fits", ".fit", ".fz") else ""))
    return check_output_path(out, overwrite=args.overwrite, name="-o/--output")


def _cmd_plugins(args):
    found = plugins()
    rows = []
    for p in found:
        provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(p.provides.items())) or "-"
        rows.append((p.name, p.distribution or "-", p.version or "-", p.status, provides))
    problems = [p for p in found if p.status in ("failed", "conflict")]
    if args.json:
        print(json.dumps([{"plugin": p.name, "distribution": p.distribution, "version": p.version,
                           "status": p.status, "provides": p.provides, "error": p.error,
                           "conflicts": list(p.conflicts)} for p in found], indent=2))
        return 1 if problems else 0
    head = ("plugin", "distribution", "version", "status", "provides")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(4)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    print(fmt.format(*head))
    print(fmt.format(*("-" * w for w in widths), "-" * 8))
    for r in rows:
        print(fmt.format(*r))
    for p in found:
        if p.status == "failed":
            print(f"\nplugin '{p.name}' failed to load: {p.error}")
    for msg in dict.fromkeys(m for p in found for m in p.conflicts):
        print(f"\nconflict: {msg}")
    _print_shipped_weights(args.weights)
    return 1 if problems else 0


def _print_shipped_weights(details):
    """The estimators whose weights ship with lenskit (and, with ``details``, what each expects)."""
    from lenskit.estimators.pretrained import WEIGHTS_DIR, shipped  # heavy (torch): only for this command

    names = shipped()
    if not details:
        print(f"\nshipped weights (lenskit.load_estimator(NAME); --weights for what each expects): {', '.join(names)}")
        return

    print("\nshipped weights (lenskit.load_estimator(NAME)):")
    rows = [("name", "estimator", "instrument", "bands", "pixel scale", "stamp", "lens light", "conditions")]
    for name in names:
        w = lenskit.read(WEIGHTS_DIR / f"{name}.asdf")
        e = w.config.get("expects", {})
        shape = e.get("shape", [])
        rows.append((name, w.config.get("estimator", "?"), e.get("instrument", "-"), ",".join(e.get("bands", [])),
                     f"{e['pixel_scale']:g}\"" if "pixel_scale" in e else "-",
                     "x".join(map(str, shape[1:])) if shape else "-", str(e.get("lens_light", "-")),
                     ",".join((w.config.get("conditions") or {}).get("names", [])) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(wd) for v, wd in zip(r, widths)).rstrip())


#: ``lenskit simulate --preset`` names -> (lenskit.simulation.presets function, its arguments).
PRESETS = {
    "hezaveh2017": ("hezaveh2017", {}),
    "hezaveh2017-test": ("hezaveh2017", {"test": True}),
    "pearson2019-lsst": ("pearson2019", {"survey": "lsst"}),
    "pearson2019-euclid": ("pearson2019", {"survey": "euclid"}),
    "lanusse2018": ("lanusse2018", {"mode": "single_epoch"}),
    "lanusse2018-stack": ("lanusse2018", {"mode": "stack"}),
}
#: The simulate options a preset decides (their defaults are read from the parser).
_PRESET_DECIDES = ("instrument", "bands", "source", "mass_model", "shear", "selection", "test", "supersample")


def _preset_simulator(args):
    """The simulator of ``--preset``, refusing options the preset decides."""
    from lenskit.simulation import presets  # heavy (torch): only for this command

    defaults = vars(build_parser().parse_args(["simulate", "-n", "1", "-o", "x.asdf"]))
    fixed = [f"--{k.replace('_', '-')}" for k in _PRESET_DECIDES if getattr(args, k) != defaults[k]]
    if fixed:
        raise ValueError(f"--preset {args.preset} sets the instrument, source and selection itself; drop "
                         f"{', '.join(fixed)} (or simulate without --preset)")
    func, kwargs = PRESETS[args.preset]
    if args.lens_light != "default":
        if func != "pearson2019":
            raise ValueError(f"--lens-light applies to the pearson2019 presets only, not {args.preset}")
        kwargs = {**kwargs, "lens_light": {"on": True, "off": False, "subtracted": "subtracted",
                                           "residual": "residual"}[args.lens_light]}
    if func == "lanusse2018" and (args.workers is not None or args.scheduler is not None):
        raise ValueError("--preset lanusse2018 simulates in one process; drop --workers / --scheduler")
    return getattr(presets, func)(seed=args.seed, **kwargs)


def _cmd_simulate(args):
    out = Path(args.output)
    distributed = args.workers is not None or args.scheduler is not None
    if not distributed:
        _output(args, _ASDF, "a LensDataset")
    if args.preset is not None:
        return _simulate_with(_preset_simulator(args), args, out, distributed)
    inst_kwargs = {}
    if args.bands:
        inst_kwargs["bands"] = tuple(args.bands.split(","))
    if args.test:
        if args.instrument != "hst_wfc3":
            raise ValueError("--test applies to the hst_wfc3 instrument only")
        inst_kwargs["test"] = True
    instrument = lenskit.get("instrument", args.instrument)(**inst_kwargs)
    mass = ["sie", "external_shear"] if args.shear else [args.mass_model]
    lens_light = {"on": True, "off": False, "subtracted": "subtracted", "residual": "residual",
                  "default": None}[args.lens_light]
    sim = lenskit.Simulator(mass_model=mass, source=args.source, instrument=instrument, seed=args.seed,
                            selection=args.selection, lens_light=lens_light, supersample=args.supersample)
    return _simulate_with(sim, args, out, distributed)


def _simulate_with(sim, args, out, distributed):
    if distributed:
        from lenskit.scale import simulate  # heavy (torch): only for this command

        seed = 0 if args.seed is None else args.seed
        index = simulate(sim, args.n, out, shard_size=args.shard_size, seed=seed, scheduler=args.scheduler,
                         workers=args.workers, overwrite=args.overwrite, progress=not args.quiet)
        print(f"wrote {index.n} systems in {len(index)} shard(s) to {out}/ (seed {seed}; index {out / 'index.json'})")
        return 0
    ds = sim.sample(args.n, progress=not args.quiet)
    ds.write(out, overwrite=args.overwrite)
    if not args.quiet:
        print(f"wrote {len(ds)} systems to {out}")
    return 0


def _load_images(path, pixel_scale=None):
    """
    A LensDataset from ASDF; from FITS, one 2-D image as stored (a cutout), or a cube (N, bands, H, W): a dataset
    where its header (or ``pixel_scale``) gives the pixel scale, so that the estimator checks it, else the array.
    """

    return read_images(path, as_cube=False, as_dataset=True, pixel_scale=pixel_scale)


def _display_table(table, input_name):
    """Rows for the terminal: an input column first, then every column at 4 significant figures."""

    t = QTable(table, copy=True)
    t.add_column([input_name] * len(t), name="input", index=0)
    t.add_column(list(range(len(t))), name="row", index=1)
    for c in t.colnames[2:]:
        if getattr(t[c], "dtype", None) is not None and t[c].dtype.kind == "f":
            t[c].info.format = ".4g"
    return t.pformat(max_width=-1, max_lines=-1)


def _print_metrics(estimate, truth, label):
    from lenskit.estimators.metrics import error_table, summary  # heavy (torch): only for this command

    res = {label: summary(estimate, truth)}
    for metric, title in (("err68", "68% error interval (Hezaveh et al. Table 1)"), ("rms", "RMS (Pearson et al. Table 1)"),
                          ("bias", "bias"), ("coverage68", "fraction of truths inside the predicted 68% interval")):
        t = error_table(res, metric)
        print(f"\n{title}:")
        for c in t.colnames[1:]:
            t[c].info.format = ".4f"
        print("\n".join(t.pformat()))
    return res


def _shard_output(output):
    """``-o`` of a distributed run: (shard directory, combined file or None)."""
    out = Path(output)
    if out.suffix.lower() in (".asdf", ".fits", ".fit"):
        return out.with_name(out.name + ".shards"), out
    return out, None


def _run_distributed(args, estimator, lens_fraction=None, match_noise=False):
    """`lenskit estimate` / `lenskit find` with --scheduler or --workers: shards on Dask, then one file."""
    from lenskit.scale import estimate  # heavy (torch): only for this command

    shard_dir, combined = _shard_output(args.output)
    if combined is not None:
        _output(args, _TABLES, "estimates")
    index = estimate(estimator, args.input, shard_dir, scheduler=args.scheduler, workers=args.workers,
                     files_per_task=args.files_per_task, batch_size=args.batch_size, lens_fraction=lens_fraction,
                     match_noise=match_noise, overwrite=args.overwrite, progress=not args.quiet)
    result = index.concatenate()
    if combined is not None:
        if combined.suffix.lower() in (".fits", ".fit"):
            write_estimate_fits(result, combined, overwrite=args.overwrite)
        else:
            result.write(combined, overwrite=args.overwrite)
    where = f"{combined} (shards in {shard_dir})" if combined is not None else f"{shard_dir}"
    print(f"{len(result)} row(s) from {len(args.input)} input(s) in {len(index)} shard(s) with {estimator} -> {where}")
    return result


def _condition(text):
    """``NAME=VALUE`` of ``--condition`` -> (name, float)."""
    name, sep, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = None
    if not sep or not name.strip() or number is None or not np.isfinite(number):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with a finite number (e.g. psf_fwhm=0.7); got {text!r}")
    return name.strip(), number


def _cmd_estimate(args):
    if args.scheduler is not None or args.workers is not None:
        if args.tta != 1:
            raise ValueError("--tta applies to single-process runs; drop it with --scheduler / --workers")
        if args.condition:
            raise ValueError("--condition applies to single-process runs; drop it with --scheduler / --workers")
        if args.band is not None:
            raise ValueError("--band applies to one 2-D FITS cutout; drop it with --scheduler / --workers")
        _run_distributed(args, args.estimator)
        return 0
    if len(args.input) != 1:
        raise ValueError("several inputs need --scheduler or --workers (a Dask run); pass one input otherwise")
    args.input = args.input[0]
    out = _output(args, _TABLES, "estimates")
    if not Path(args.input).exists():
        raise FileNotFoundError(f"input: {args.input} does not exist")
    est = lenskit.load_estimator(args.estimator)
    extra = {}
    if args.tta != 1:
        if not est.supports_tta:
            raise ValueError(f"--tta: the estimator {args.estimator!r} has no test-time augmentation")
        extra["tta"] = args.tta
    if args.condition:
        names = [n for n, _ in args.condition]
        reads = tuple(getattr(est, "conditions", ()))
        unknown = [n for n in names if n not in reads]
        if unknown or len(set(names)) != len(names):
            raise ValueError(f"--condition: {args.estimator!r} reads {list(reads) or 'no conditions'}; got "
                             f"{names}")
        extra["conditions"] = dict(args.condition)
    data = _load_images(args.input, pixel_scale=args.pixel_scale)
    estimate = None
    one_cutout = not isinstance(data, LensDataset) and data.ndim == 2 and "pixel_scale" in est.expects
    if args.band is not None and not one_cutout:
        raise ValueError("--band applies to one 2-D FITS cutout; a dataset or a FITS cube names its bands itself")
    if one_cutout:
        cut = read_cutout(args.input, pixel_scale=args.pixel_scale)
        if args.no_lens_light and est.expects.get("lens_light") is False:
            # a lens-subtracted cutout takes the one documented path, `lenskit model --no-deblend --no-refine`'s
            # CNN step: artefacts masked, neighbours replaced, the stamp about the cutout's middle (its light
            # centre would be an arc's), resampled onto the estimator's grid
            from lenskit.modelling import model_lens  # heavy (the fit's modules): only for this input

            res = model_lens(cut, args.estimator, deblend=False, refine=False, tta=args.tta,
                             conditions=extra.get("conditions"), band=args.band)
            estimate = res.estimate
            print(f"estimated {args.input} ({cut.pixel_scale:.3f}\"/px) as `lenskit model --no-deblend "
                  f"--no-refine` does: artefacts masked, neighbours replaced, resampled onto "
                  f"{est.in_shape[1]}x{est.in_shape[2]} pixels of {est.expects['pixel_scale']}\" about the "
                  f"cutout's middle")
        else:
            # a real cutout, centred on the lens light and resampled onto the estimator's grid (flux conserved);
            # it records that its lens light is unknown (or absent, with --no-lens-light), which predict checks:
            # its band and lens light first, on the cutout as read, so that a refusal comes before the resampling
            lens_light = False if args.no_lens_light else "unknown"
            check_expects(cut.to_dataset(band=args.band, lens_light=lens_light),
                          {k: est.expects[k] for k in ("bands", "lens_light") if k in est.expects})
            data = cut.to_stamp(est.expects["pixel_scale"], est.in_shape[1:], what=args.estimator).to_dataset(
                band=args.band, lens_light=lens_light)
            print(f"resampled {args.input} ({cut.pixel_scale:.3f}\"/px) onto {est.in_shape[1]}x{est.in_shape[2]} "
                  f"pixels of {est.expects['pixel_scale']}\" centred on the lens light")
    if estimate is None:
        estimate = est.predict(data, batch_size=args.batch_size, progress=not args.quiet, **extra)
    if out.suffix.lower() in (".fits", ".fit"):
        write_estimate_fits(estimate, out, overwrite=args.overwrite)
    else:
        estimate.write(out, overwrite=args.overwrite)
    print(f"estimated {len(estimate)} system(s) with {args.estimator} -> {out}")
    print("\n".join(_display_table(estimate.table[: min(10, len(estimate))], Path(args.input).name)))
    if len(estimate) > 10:
        print(f"... {len(estimate) - 10} more row(s) in {out}")
    if isinstance(data, LensDataset) and all(t in data.params.colnames for t in est.targets):
        _print_metrics(estimate, data.params, args.estimator)
    return 0


def _image_or_hdu(value, image_path):
    """``--noise`` / ``--psf``: an existing file, else an HDU (name or index) of the image's own file."""
    if value is None:
        return None, None
    if Path(value).exists():
        return value, None
    if Path(value).suffix.lower() in (".fits", ".fit", ".fz", ".gz"):
        raise FileNotFoundError(f"{value} does not exist (a file, or an HDU name / index of {image_path})")
    return None, (int(value) if value.lstrip("-").isdigit() else value)


def _cmd_model(args):
    from lenskit.modelling import model_lens  # heavy (torch): only for this command
    from lenskit.modelling.pipeline import CNN_CORE  # heavy (torch), as above

    out = _output(args, _TABLES, "the lens model")
    plot = None if args.no_plot else Path(args.plot) if args.plot else out.with_suffix(".png")
    if plot is not None:
        check_output_path(plot, overwrite=args.overwrite, name="--plot")
    if not Path(args.input).exists():
        raise FileNotFoundError(f"input: {args.input} does not exist")
    noise, noise_hdu = _image_or_hdu(args.noise, args.input)
    psf, psf_hdu = _image_or_hdu(args.psf, args.input)
    cut = read_cutout(args.input, noise=noise, noise_hdu=noise_hdu, psf=psf, psf_hdu=psf_hdu,
                      pixel_scale=args.pixel_scale)
    est = lenskit.load_estimator(args.estimator)
    if not args.quiet:
        steps = ["lens light removed by a Sérsic fit" if not args.no_deblend else "lens light already removed",
                 f"CNN {args.estimator}", "maximum-likelihood refinement" if not args.no_refine else "no refinement"]
        print(f"modelling {args.input} ({cut.shape[1]}x{cut.shape[0]} px of {cut.pixel_scale:.4g}\"): "
              + ", then ".join(steps))
    cnn_core = CNN_CORE if args.cnn_core is None else args.cnn_core
    res = model_lens(cut, est, deblend=not args.no_deblend, refine=not args.no_refine, tta=args.tta,
                     fit_kwargs={"shear": args.shear, "laplace": True}, conditions=dict(args.condition) or None,
                     mask_neighbours=not args.keep_neighbours, cnn_core=cnn_core, band=args.band)
    prov = Provenance.current(config={"command": "lenskit model", "estimator": args.estimator,
                                      "deblend": not args.no_deblend, "refine": not args.no_refine,
                                      "mask_neighbours": not args.keep_neighbours,
                                      "cnn_core": cnn_core if not args.no_deblend else 0.0,
                                      "shear": args.shear, "tta": args.tta, "input": Path(args.input).name,
                                      **({"conditions": dict(args.condition)} if args.condition else {})},
                              checksums={"input": array_checksum(np.asarray(cut.image, np.float32))})
    estimate = Estimate(res.table, provenance=prov)
    if out.suffix.lower() in (".fits", ".fit"):
        write_estimate_fits(estimate, out, overwrite=args.overwrite)
    else:
        estimate.write(out, overwrite=args.overwrite)
    print("\n".join(_display_table(res.table, Path(args.input).name)))
    wrote = [str(out)]
    if plot is not None:
        import matplotlib  # optional output: a figure file

        matplotlib.use("Agg")
        from lenskit.plotting import plot_lens_model  # heavy (torch): only for this command

        fig = plot_lens_model(res)
        fig.suptitle(f"{Path(args.input).name}: lenskit model", fontsize=10)
        fig.savefig(plot, dpi=130)
        wrote.append(str(plot))
    print(f"wrote {' and '.join(wrote)}")
    return 0


def _parse_arch(items):
    """``["stretch=asinh", "first_stride=1"]`` -> ``{"stretch": "asinh", "first_stride": 1}`` (JSON values)."""

    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--arch expects KEY=VALUE (e.g. stretch=asinh); got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _cmd_train(args):
    out = _output(args, _ASDF, "weights")
    if args.checkpoint is not None:
        check_output_path(args.checkpoint, overwrite=True, name="--checkpoint")
    rank, world, device = 0, 1, "cpu"
    if args.ddp:
        from lenskit.estimators.training import init_ddp  # heavy (torch): only for this command

        rank, world, device = init_ddp(args.backend)
    elif args.backend:
        raise ValueError("--backend applies with --ddp only")
    try:
        inst_kwargs = {}
        if args.bands:
            inst_kwargs["bands"] = tuple(args.bands.split(","))
        instrument = lenskit.get("instrument", args.instrument)(**inst_kwargs)
        shape = (len(instrument.bands),) + tuple(instrument.shape)
        arch_kwargs = _parse_arch(args.arch)
        sim = lenskit.Simulator(source=args.source, instrument=instrument, seed=args.seed)
        try:
            est = lenskit.get("estimator", args.estimator)(
                in_shape=shape, device=device, arch_kwargs=arch_kwargs,
                expects={"instrument": instrument.name, "bands": list(instrument.bands),
                         "pixel_scale": instrument.pixel_scale.value, "shape": list(shape)})
        except TypeError as err:
            given = ", ".join(f"{k}={v!r}" for k, v in arch_kwargs.items())
            raise ValueError(f"--arch: {args.estimator} was not built with {given or 'its defaults'}: an option it "
                             f"does not take, or a value of the wrong type ({err})") from None
        val = None
        if rank == 0:
            val = lenskit.Simulator(source=args.source, instrument=instrument, seed=args.seed + 1,
                                    split="validation").sample(args.validation_size)
        est.fit(sim, steps=args.steps, batch_size=args.batch_size, lr=args.lr, validation=val,
                checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every, workers=args.workers,
                progress=not args.quiet, time_limit=args.minutes * 60 if args.minutes else None, ddp=args.ddp,
                seed=args.seed, **({"bfloat16": True} if args.bfloat16 else {}))
        if rank == 0:
            est.save(out, overwrite=True)
            extra = f" ({world} data-parallel ranks, global batch {args.batch_size * world})" if args.ddp else ""
            print(f"wrote {out}{extra}")
            _print_metrics(est.predict(val), val.params, args.estimator)
        if args.ddp:  # the ranks leave together: a rank that exits while rank 0 still writes can abort gloo
            import torch.distributed as dist  # heavy (torch): only for --ddp

            dist.barrier()
    finally:
        if args.ddp:
            import torch.distributed as dist  # heavy (torch): only for --ddp

            dist.destroy_process_group()
    return 0


def _cmd_deblend(args):
    out = _output(args, _ASDF, "a Deblended result")
    missing = [p for p in args.inputs if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"inputs: {', '.join(missing)} do(es) not exist")
    deblender = lenskit.get("deblender", args.method)()
    if len(args.inputs) == 1 and Path(args.inputs[0]).suffix == ".asdf":
        data = lenskit.read(args.inputs[0])
        result = deblender.separate(data, progress=not args.quiet)
    else:
        cube, bands, scale = read_band_images(args.inputs, pixel_scale=args.pixel_scale)
        masks = ~np.isfinite(cube).all(axis=1)
        result = deblender.separate(cube, masks=masks if masks.any() else None, bands=bands, pixel_scale=scale,
                                    progress=not args.quiet)
    result.write(out, overwrite=args.overwrite)
    print(f"deblended {len(result)} image(s) with {args.method} -> {out}")
    if len(result.params.colnames):
        print("\n".join(result.params[: min(10, len(result.params))].pformat(max_width=-1)))
    return 0


def _cmd_find(args):
    if args.scheduler is not None or args.workers is not None:
        if args.fast or args.tta != 1 or args.pixel_scale is not None or args.band is not None:
            raise ValueError("--fast, --tta, --pixel-scale and --band apply to single-process runs; drop them with "
                             "--scheduler / --workers")
        est = _run_distributed(args, args.finder, lens_fraction=args.lens_fraction,
                               match_noise=bool(args.noise_match))
        p = est.table["p_lens"].value
        rows = est.table.meta["inputs"]
        starts = np.array([r["first_row"] for r in rows])
        print(f"{int(est.table['candidate'].sum())} candidate(s) above p = {est.table.meta['threshold']:.4f}")
        print(f"{'p_lens':>9}  {'row':>6}  file")
        for i in np.argsort(-p)[: args.top]:
            k = int(np.searchsorted(starts, i, side="right") - 1)
            print(f"{p[i]:>9.4f}  {i - starts[k]:>6d}  {rows[k]['file']}")
        return 0
    if len(args.input) != 1:
        raise ValueError("several inputs need --scheduler or --workers (a Dask run); pass one input otherwise")
    args.input = args.input[0]

    out = _output(args, _TABLES, "candidates")
    finder = lenskit.load_estimator(args.finder)
    if "p_lens" not in getattr(finder, "targets", ()):
        raise ValueError(f"--finder: {args.finder!r} is not a lens finder (its targets are "
                         f"{list(getattr(finder, 'targets', []))}, not p_lens); use a DeepLens weights file")
    data = _load_images(args.input)  # a LensDataset, one 2-D FITS image, or a cube (a dataset if its scale is known)
    if not isinstance(data, LensDataset) and data.ndim == 2 and "pixel_scale" in finder.expects:
        # one real cutout, as `lenskit estimate` takes it: resampled onto the finder's grid (flux conserved),
        # refused if it covers under half of the finder's field
        cut = read_cutout(args.input, pixel_scale=args.pixel_scale)
        if "bands" in finder.expects:  # a band the finder was not trained on: refused before the resampling
            check_expects(cut.to_dataset(band=args.band), {"bands": finder.expects["bands"]}, what="finder")
        data = cut.to_stamp(finder.expects["pixel_scale"], finder.in_shape[1:], what=args.finder).to_dataset(
            band=args.band)
        print(f"resampled {args.input} ({cut.pixel_scale:.3f}\"/px) onto {finder.in_shape[1]}x{finder.in_shape[2]} "
              f"pixels of {finder.expects['pixel_scale']}\" centred on its central galaxy's light")
        match = args.noise_match is not False
    elif args.band is not None:
        raise ValueError("--band applies to one 2-D FITS cutout; a dataset or a FITS cube names its bands itself")
    else:
        if args.pixel_scale is not None:
            raise ValueError("--pixel-scale applies to one 2-D cutout; a FITS cube must be on the finder's grid")
        match = bool(args.noise_match)
    if match:
        data = finder.match_noise(data)
        f = np.asarray(data.params["noise_scale"]) if isinstance(data, LensDataset) else None
        if f is not None and len(f) == 1:
            print(f"scaled by {f[0]:.4g} so that its background noise is the finder's training noise "
                  f"({float(finder.network.pre.sigma[0]):.4g} per pixel; --no-noise-match leaves it)")
        else:
            print("scaled each cutout so that its background noise is the finder's training noise")
    fast = {"bfloat16": True, "compile": True} if args.fast else {}
    est = finder.predict(data, batch_size=args.batch_size, lens_fraction=args.lens_fraction, progress=not args.quiet,
                         tta=args.tta, **fast)
    if out.suffix.lower() in (".fits", ".fit"):
        write_estimate_fits(est, out, overwrite=args.overwrite)
    else:
        est.write(out, overwrite=args.overwrite)
    p = est.table["p_lens"].value
    order = np.argsort(-p)[: args.top]
    print(f"scored {len(p)} cutout(s) with {args.finder}; {int(est.table['candidate'].sum())} candidate(s) above "
          f"p = {est.table.meta['threshold']:.4f} (false-positive rate {est.table.meta['threshold_fpr']} on "
          f"validation) -> {out}")
    print(f"{'index':>7} {'p_lens':>9}")
    for i in order:
        print(f"{i:>7d} {p[i]:>9.4f}")
    if hasattr(data, "params") and "is_lens" in data.params.colnames:
        from lenskit.estimators.finder_metrics import finder_summary  # heavy (torch): only for this command

        print(json.dumps(finder_summary(p, np.asarray(data.params["is_lens"], bool)), indent=1))
    return 0


def _cmd_demo(args):
    import matplotlib  # optional output: only with --plot

    matplotlib.use("Agg")

    from lenskit.plotting import plot_gallery  # heavy (torch): only for this command

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"lenskit {lenskit.__version__} demo: simulating {args.n} HST WFC3 lenses (Hezaveh et al. 2017 recipe)")
    # a test set: the paper's test-time masks (under 2% of the arc flux)
    sim = lenskit.Simulator(mass_model="sie", source="sersic_clump",
                            instrument=lenskit.get("instrument", "hst_wfc3")(test=True), seed=args.seed)
    ds = sim.sample(args.n, progress=not args.quiet)
    t_sim = time.perf_counter() - t0
    path = out / "hst_lenses.asdf"
    ds.write(path, overwrite=True)
    back = lenskit.read(path)
    assert back == ds, "ASDF round trip changed the data"
    t = ds.params
    print(f"\nsimulated {len(ds)} systems in {t_sim:.1f} s ({len(ds) / t_sim:.0f} per second)")
    print(f"{'quantity':<22}{'min':>9}{'median':>9}{'max':>9}")
    for name, col in (("theta_E [arcsec]", t["theta_E"].to_value(u.arcsec)), ("q", t["q"]),
                      ("magnification", t["magnification"]), ("arc S/N (eq. 10)", t["arc_snr"]),
                      ("masked arc flux", t["masked_flux_fraction"])):
        col = np.asarray(col, float)
        print(f"{name:<22}{col.min():>9.3f}{np.median(col):>9.3f}{col.max():>9.3f}")
    from lenskit.estimators.pretrained import shipped  # heavy (torch): only for this command

    if "hst_wfc3" in shipped():
        from lenskit.plotting import plot_predicted_vs_true  # heavy (torch): only for this command

        est = lenskit.load_estimator("hst_wfc3")
        t0 = time.perf_counter()
        estimate = est.predict(ds, batch_size=64)
        t_est = time.perf_counter() - t0
        estimate.write(out / "estimates.asdf", overwrite=True)
        print(f"\nestimated {len(ds)} systems with the shipped HST estimator in {t_est:.2f} s "
              f"({len(ds) / t_est:.0f} per second)")
        res = _print_metrics(estimate, t, "hst_wfc3")
        print(f"\nbeside the paper (68% errors; Hezaveh et al. 2017, Table 1, their combined network on 10,000 test "
              f"lenses of their own simulator; here {len(ds)} test lenses of lenskit's reproduction of their recipe, "
              f"seed {args.seed}):")
        print(f"{'parameter':<12}{'lenskit':>10}{'paper':>8}{'ratio':>8}")
        for name, paper in HEZAVEH2017_TABLE1.items():
            mine = float(res["hst_wfc3"][name]["err68"])
            print(f"{name:<12}{mine:>10.3f}{paper:>8.2f}{mine / paper:>8.1f}")
        print("(the README's 'How well it works' and the Benchmarks page give the same comparison on 2,000 lenses; "
              "`predict(tta=8)` narrows it)")
        fig = plot_predicted_vs_true(estimate, t)
        fig.savefig(out / "predicted_vs_true.png", dpi=90)
        print(f"\nwrote {out / 'estimates.asdf'} and {out / 'predicted_vs_true.png'}")
    else:
        estimate = None
    fig = plot_gallery(ds, n=min(8, len(ds)), estimate=estimate,
                       title="lenskit demo: simulated HST WFC3 lenses" + (" and the CNN's estimates" if estimate else ""))
    fig.savefig(out / "hst_gallery.png", dpi=90)
    print(f"wrote {path} (read back bit for bit) and {out / 'hst_gallery.png'}")
    return 0


def _dask_arguments(p):
    p.add_argument("--scheduler", default=None,
                   help="run on Dask: a scheduler address (tcp://host:8786), a scheduler .json file, 'local' "
                        "(a LocalCluster) or 'serial'; -o is then a directory of shards, or a .asdf/.fits file "
                        "(shards beside it in <output>.shards/)")
    p.add_argument("--workers", type=_POSITIVE, default=None, help="run on a Dask LocalCluster of N worker processes")
    p.add_argument("--files-per-task", type=_POSITIVE, default=1, help="input files per Dask task (default 1)")


def build_parser():
    parser = argparse.ArgumentParser(prog="lenskit", description="Simulate, deblend, model and find strong lenses.",
                                     formatter_class=_HelpFormatter,
                                     epilog="examples:\n  lenskit demo\n  lenskit simulate -n 1000 -o train.asdf\n"
                                            "  lenskit estimate train.asdf -o estimates.asdf\n\n"
                                            "Each command has --help.")
    parser.add_argument("--version", action="version", version=f"lenskit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("plugins", formatter_class=_HelpFormatter, epilog=_epilog("plugins"), help="list plugins, what they provide, and what failed to load")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--weights", action="store_true", help="also show what each shipped estimator expects")
    p.set_defaults(func=_cmd_plugins)

    p = sub.add_parser("demo", formatter_class=_HelpFormatter, epilog=_epilog("demo"), help="simulate a small HST test set, estimate it with the shipped estimator, "
                                    "write ASDF and figures")
    p.add_argument("-n", type=_POSITIVE, default=200, help="number of lenses (default 200)")
    p.add_argument("-o", "--output", default="lenskit-demo", help="output folder (default ./lenskit-demo)")
    p.add_argument("--seed", type=_NON_NEGATIVE, default=2017, help="seed of the test set")
    p.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("estimate", formatter_class=_HelpFormatter, epilog=_epilog("estimate"),
                       help="estimate lens parameters of a dataset (.asdf), deblended arcs "
                       "(.asdf from lenskit deblend) or an image (.fits)")
    p.add_argument("input", nargs="+", help="a LensDataset .asdf, a Deblended .asdf (its arcs) or a FITS image / "
                                            "cube (several, a shard directory "
                                            "or a glob pattern with --scheduler / --workers)")
    _dask_arguments(p)
    p.add_argument("-o", "--output", required=True, help="output estimates: .asdf, or .fits for a FITS table")
    p.add_argument("--estimator", default="hst_wfc3", help="shipped estimator name or weights .asdf")
    p.add_argument("--pixel-scale", type=_positive_float, default=None,
                   help="arcsec per pixel of a FITS cutout or cube without WCS or PIXSCALE (a cube must be on the "
                        "estimator's grid: it is checked, not resampled)")
    p.add_argument("--band", default=None,
                   help="the filter of a single 2-D FITS cutout, as the estimator names it (default: the header's "
                        "FILTER), for an image from another instrument through a like filter; the estimator refuses "
                        "bands it was not trained on")
    p.add_argument("--batch-size", type=_POSITIVE, default=64, help="images per network pass")
    p.add_argument("--no-lens-light", action="store_true",
                   help="the FITS image holds no lens light (already removed): it is estimated as `lenskit model "
                        "--no-deblend --no-refine` does; otherwise an estimator trained without lens light refuses "
                        "a FITS image: use `lenskit model` for one with lens light")
    p.add_argument("--tta", type=int, choices=(1, 2, 4, 8), default=1,
                   help="average over this many symmetries of the pixel grid (test-time augmentation: more accurate, "
                        "that many times slower)")
    p.add_argument("--condition", action="append", type=_condition, default=[], metavar="NAME=VALUE",
                   help="a number an estimator with conditions reads beside every image, in its table unit (e.g. "
                        "psf_fwhm=0.7 for a 0.7\" seeing); repeat for several; default: the dataset's column")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=_cmd_estimate)

    p = sub.add_parser("model", formatter_class=_HelpFormatter, epilog=_epilog("model"),
                       help="model a real lens cutout: remove the lens light, estimate with a CNN, refine by maximum "
                            "likelihood (lenskit.modelling.model_lens)")
    p.add_argument("input", help="the cutout: a FITS image of one lens (one band), with its lens light unless "
                                 "--no-deblend")
    p.add_argument("-o", "--output", required=True, help="the model's table: .asdf (an Estimate) or .fits")
    p.add_argument("--noise", default=None, metavar="HDU|FILE",
                   help="noise map (1 sigma): a FITS file, or an HDU name / index of the input (default: the "
                        "background's robust sigma everywhere)")
    p.add_argument("--psf", default=None, metavar="HDU|FILE", help="PSF on the cutout's pixel grid: a FITS file or an "
                                                                  "HDU of the input (default: none)")
    p.add_argument("--pixel-scale", type=_positive_float, default=None,
                   help="arcsec per pixel of a cutout without WCS or PIXSCALE")
    p.add_argument("--estimator", default="hst_wfc3", help="shipped estimator name or weights .asdf")
    p.add_argument("--band", default=None,
                   help="the filter of the cutout, as the estimator names it (default: the header's FILTER), for "
                        "an image taken through a like filter; the estimator refuses bands it was not trained on")
    p.add_argument("--no-deblend", action="store_true", help="the input's lens light is already removed")
    p.add_argument("--no-refine", action="store_true", help="the CNN alone (milliseconds instead of minutes)")
    p.add_argument("--shear", action="store_true", help="fit an external shear with the SIE")
    p.add_argument("--keep-neighbours", action="store_true",
                   help="leave sources beyond where the lens's images can lie in the CNN's stamp (default: replaced "
                        "by noise, model_lens(mask_neighbours=True))")
    p.add_argument("--cnn-core", type=float, default=None, metavar="ARCSEC",
                   help="radius of the lens's core masked in the CNN's input after the lens light is removed, where "
                        "the deblender leaves its residuals (default 0.2, model_lens(cnn_core=...); 0 keeps it)")
    p.add_argument("--tta", type=int, choices=(1, 2, 4, 8), default=1,
                   help="average the CNN step over this many symmetries of the pixel grid")
    p.add_argument("--condition", action="append", type=_condition, default=[], metavar="NAME=VALUE",
                   help="a number an estimator with conditions reads beside the image (e.g. psf_fwhm=0.1)")
    p.add_argument("--plot", default=None, help="the figure (data, arcs, model, residual); default: the output's "
                                                "name with .png")
    p.add_argument("--no-plot", action="store_true", help="no figure")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=_cmd_model)

    p = sub.add_parser("deblend", formatter_class=_HelpFormatter, epilog=_epilog("deblend"), help="remove the lens light: ICA of two or more bands, or a Sérsic fit")
    p.add_argument("inputs", nargs="+", help="a LensDataset .asdf, or one co-registered FITS image per band")
    p.add_argument("-o", "--output", required=True, help="output Deblended .asdf")
    p.add_argument("--method", default="ica", help="deblender: ica (default) or sersic")
    p.add_argument("--pixel-scale", type=_positive_float, default=None, help="arcsec per pixel (default from the WCS)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=_cmd_deblend)

    p = sub.add_parser("find", formatter_class=_HelpFormatter, epilog=_epilog("find"), help="score survey cutouts with the DeepLens lens finder")
    p.add_argument("input", nargs="+", help="cutouts: a FITS cube (N, H, W) or (N, bands, H, W) on the finder's "
                                            "grid, one 2-D FITS cutout (resampled onto it), or a LensDataset .asdf "
                                            "(several, a shard directory or a glob with --scheduler / --workers)")
    _dask_arguments(p)
    p.add_argument("-o", "--output", required=True, help="output candidates .asdf (p_lens per cutout)")
    p.add_argument("--finder", default="deeplens_lsst_g", help="shipped finder name or weights .asdf")
    p.add_argument("--pixel-scale", type=_positive_float, default=None,
                   help="arcsec per pixel of a single 2-D FITS cutout, which is resampled onto the finder's grid "
                        "(default from its WCS or PIXSCALE)")
    p.add_argument("--band", default=None,
                   help="the filter of a single 2-D FITS cutout, as the finder names it (default: the header's "
                        "FILTER), for an image from another instrument through a like filter; the finder refuses "
                        "bands it was not trained on")
    p.add_argument("--noise-match", action=argparse.BooleanOptionalAction, default=None,
                   help="scale each cutout so that its background noise is the finder's training noise "
                        "(DeepLensFinder.match_noise): the network reads images in units of that noise, and a "
                        "cutout in other units or of another depth gets a wrong score without it; default: on for "
                        "one 2-D FITS cutout, off for a cube or dataset (in the finder's own units)")
    p.add_argument("--lens-fraction", type=_fraction, default=None,
                   help="expected lens fraction of the data: maps p_lens with Lanusse et al. eq. 5")
    p.add_argument("--batch-size", type=_POSITIVE, default=128,
                   help="cutouts per network pass (128 was the fastest on a 2-core CPU)")
    p.add_argument("--top", type=_NON_NEGATIVE, default=10, help="print this many highest-scoring cutouts (default 10)")
    p.add_argument("--fast", action="store_true",
                   help="bfloat16 and a compiled graph: several times faster on CPUs with AVX-512 BF16 "
                        "(benchmarks/find.py) after a compile of tens of seconds; for large single-process runs")
    p.add_argument("--tta", type=int, choices=(1, 2, 4, 8), default=1,
                   help="average the scores over this many rotations and mirrors of each cutout (test-time "
                        "augmentation, with its own validation threshold: a little more complete, that many times "
                        "slower)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=_cmd_find)

    p = sub.add_parser("train", formatter_class=_HelpFormatter, epilog=_epilog("train"), help="train an estimator on lenses simulated on the fly")
    p.add_argument("--estimator", default="lenskit_net", help="architecture (see `lenskit plugins`)")
    p.add_argument("--instrument", default="hst_wfc3", help="instrument name (see `lenskit plugins`)")
    p.add_argument("--bands", help="comma-separated bands")
    p.add_argument("--source", default="sersic_clump", help="training source name")
    p.add_argument("--arch", action="append", metavar="KEY=VALUE",
                   help="architecture option, repeatable, e.g. --arch stretch=asinh --arch first_stride=1")
    p.add_argument("--steps", type=_POSITIVE, default=1000, help="optimisation steps (default 1000)")
    p.add_argument("--minutes", type=_positive_float, default=None, help="stop (annealed) after this wall time")
    p.add_argument("--batch-size", type=_POSITIVE, default=64, help="images per step (default 64)")
    p.add_argument("--lr", type=_positive_float, default=2e-3, help="peak learning rate (default 2e-3)")
    p.add_argument("--workers", type=_NON_NEGATIVE, default=0,
                   help="background simulation processes (default 0: simulate in the training process)")
    p.add_argument("--validation-size", type=_POSITIVE, default=256, help="held-out systems (default 256)")
    p.add_argument("--checkpoint", default=None, help="checkpoint file (resumes when it exists)")
    p.add_argument("--checkpoint-every", type=_POSITIVE, default=200, help="steps between checkpoints (default 200)")
    p.add_argument("--seed", type=_NON_NEGATIVE, default=0, help="seed of the training stream")
    p.add_argument("--bfloat16", action="store_true",
                   help="mixed precision (bfloat16 autocast; weights and loss float32): faster on CPUs with "
                        "AVX-512 BF16 or AMX and on GPUs, slower on other CPUs")
    p.add_argument("--ddp", action="store_true",
                   help="data-parallel training over the ranks of `torchrun --nproc_per_node N -m lenskit train "
                        "--ddp ...` (--batch-size is per rank)")
    p.add_argument("--backend", default=None, help="torch.distributed backend with --ddp (default nccl on GPUs, "
                                                   "gloo on CPUs)")
    p.add_argument("-o", "--output", required=True, help="weights .asdf")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("simulate", formatter_class=_HelpFormatter, epilog=_epilog("simulate"), help="simulate lenses to an ASDF file")
    p.add_argument("-n", type=_POSITIVE, required=True, help="number of accepted systems")
    p.add_argument("-o", "--output", required=True, help="output .asdf file")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="a paper's recipe (lenskit.simulation.presets): Hezaveh et al. 2017 HST training or test "
                        "sets, Pearson et al. 2019 LSST g,r,i or Euclid VIS, Lanusse et al. 2018 labelled lens-finder "
                        "cutouts (45 x 45 LSST g, single epoch or stack); sets instrument, source and selection")
    p.add_argument("--instrument", default="hst_wfc3", help="instrument name (see `lenskit plugins`)")
    p.add_argument("--bands", help="comma-separated bands, e.g. g,r,i")
    p.add_argument("--source", default="sersic_clump", help="source name (default sersic_clump)")
    p.add_argument("--mass-model", default="sie", help="mass model name (default sie)")
    p.add_argument("--shear", action="store_true", help="add external shear to the SIE")
    p.add_argument("--selection", default="default",
                   help="hezaveh2017, pearson2019, none, or the instrument's default")
    p.add_argument("--lens-light", choices=("on", "off", "subtracted", "residual", "default"), default="default",
                   help="the lens galaxy's light: on, off, subtracted (its true profile removed, its shot noise "
                        "kept), residual (an imperfect model removed, as a fit leaves it) or the instrument's default")
    p.add_argument("--supersample", type=_POSITIVE, default=1, help="sub-pixels per pixel side (default 1)")
    p.add_argument("--test", action="store_true", help="HST test-set masks (< 2%% of the arc flux)")
    p.add_argument("--seed", type=_NON_NEGATIVE, default=None, help="random seed (reproducible output)")
    p.add_argument("--workers", type=_POSITIVE, default=None,
                   help="simulate shards in parallel on a Dask LocalCluster of N workers; -o is then a directory")
    p.add_argument("--scheduler", default=None,
                   help="simulate shards on this Dask scheduler (address, scheduler .json, 'local' or 'serial')")
    p.add_argument("--shard-size", type=_POSITIVE, default=1000, help="systems per shard (default 1000)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=_cmd_simulate)
    return parser


def main(argv=None):
    """Run the command line; returns the exit status (0 done, 1 failed, 2 usage or input error)."""

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("lenskit: error: a command is required (lenskit --help lists them)", file=sys.stderr)
        return 2
    if getattr(args, "selection", None) == "none":
        args.selection = None
    debug = os.environ.get("LENSKIT_DEBUG", "").strip().lower() in ("1", "true", "yes")
    try:
        with contextlib.redirect_stdout(io.StringIO()) if getattr(args, "quiet", False) else contextlib.nullcontext():
            return args.func(args)
    except KeyboardInterrupt:
        print(f"lenskit {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (lenskit ... | head): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (ValueError, TypeError, LookupError, OSError) as exc:  # bad input, missing or unreadable files
        if debug:
            raise
        print(f"lenskit {args.command}: error: {_describe(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a command line answers with a message, never a traceback
        if debug:
            raise

        code = 2 if isinstance(exc, LenskitError) else 1
        hint = "" if code == 2 else " (set LENSKIT_DEBUG=1 for the traceback)"
        print(f"lenskit {args.command}: error: {_describe(exc)}{hint}", file=sys.stderr)
        return code


def _describe(exc):
    text = str(exc) or type(exc).__name__
    if isinstance(exc, (LenskitError, ValueError, TypeError, FileNotFoundError, FileExistsError)):
        return text
    return f"{type(exc).__name__}: {text}"


if __name__ == "__main__":
    sys.exit(main())
