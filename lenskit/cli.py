"""
The ``lenskit`` command line.

``lenskit plugins | demo | simulate``, each with ``--help``.
"""

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main"]


def _cmd_plugins(args):
    from lenskit.plugins import plugins

    rows = []
    for p in plugins():
        provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(p.provides.items())) or "-"
        rows.append((p.name, p.distribution or "-", p.version or "-", p.status, provides))
    if args.json:
        print(json.dumps([{"plugin": r[0], "distribution": r[1], "version": r[2], "status": r[3],
                           "provides": r[4]} for r in rows] + [], indent=2))
        return 0
    head = ("plugin", "distribution", "version", "status", "provides")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(4)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    print(fmt.format(*head))
    print(fmt.format(*("-" * w for w in widths), "-" * 8))
    for r in rows:
        print(fmt.format(*r))
    failed = [p for p in plugins() if p.status == "failed"]
    for p in failed:
        print(f"\nplugin '{p.name}' failed to load: {p.error}")
    return 0


def _cmd_simulate(args):
    import lenskit

    inst_kwargs = {}
    if args.bands:
        inst_kwargs["bands"] = tuple(args.bands.split(","))
    if args.test:
        if args.instrument != "hst_wfc3":
            raise ValueError("--test applies to the hst_wfc3 instrument only")
        inst_kwargs["test"] = True
    instrument = lenskit.get("instrument", args.instrument)(**inst_kwargs)
    mass = ["sie", "external_shear"] if args.shear else [args.mass_model]
    lens_light = {"on": True, "off": False, "default": None}[args.lens_light]
    sim = lenskit.Simulator(mass_model=mass, source=args.source, instrument=instrument, seed=args.seed,
                            selection=args.selection, lens_light=lens_light, supersample=args.supersample)
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    ds = sim.sample(args.n, progress=not args.quiet)
    ds.write(out, overwrite=args.overwrite)
    if not args.quiet:
        print(f"wrote {len(ds)} systems to {out}")
    return 0


def _cmd_demo(args):
    import time

    import matplotlib

    matplotlib.use("Agg")
    import astropy.units as u
    import numpy as np

    import lenskit
    from lenskit.plotting import plot_gallery

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"lenskit {lenskit.__version__} demo: simulating {args.n} HST WFC3 lenses (Hezaveh et al. 2017 recipe)")
    sim = lenskit.Simulator(mass_model="sie", source="sersic_clump", instrument="hst_wfc3", seed=args.seed)
    ds = sim.sample(args.n, progress=not args.quiet)
    t_sim = time.perf_counter() - t0
    path = out / "hst_lenses.asdf"
    ds.write(path, overwrite=True)
    back = lenskit.read(path)
    assert back == ds, "ASDF round trip changed the data"
    fig = plot_gallery(ds, n=min(8, len(ds)), title="lenskit demo: simulated HST WFC3 lenses")
    fig.savefig(out / "hst_gallery.png", dpi=90)
    t = ds.params
    print(f"\nsimulated {len(ds)} systems in {t_sim:.1f} s ({len(ds) / t_sim:.0f} per second)")
    print(f"{'quantity':<22}{'min':>9}{'median':>9}{'max':>9}")
    for name, col in (("theta_E [arcsec]", t["theta_E"].to_value(u.arcsec)), ("q", t["q"]),
                      ("magnification", t["magnification"]), ("arc S/N (eq. 10)", t["arc_snr"]),
                      ("masked arc flux", t["masked_flux_fraction"])):
        col = np.asarray(col, float)
        print(f"{name:<22}{col.min():>9.3f}{np.median(col):>9.3f}{col.max():>9.3f}")
    print(f"\nwrote {path} (read back bit for bit) and {out / 'hst_gallery.png'}")
    return 0


def build_parser():
    from lenskit import __version__

    parser = argparse.ArgumentParser(prog="lenskit", description="Simulate, deblend, model and find strong lenses.")
    parser.add_argument("--version", action="version", version=f"lenskit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("plugins", help="list plugins, what they provide, and what failed to load")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_plugins)

    p = sub.add_parser("demo", help="simulate a small HST set, write it to ASDF and draw a gallery")
    p.add_argument("-n", type=int, default=32, help="number of lenses (default 32)")
    p.add_argument("-o", "--output", default="lenskit-demo", help="output folder (default ./lenskit-demo)")
    p.add_argument("--seed", type=int, default=2017)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("simulate", help="simulate lenses to an ASDF file")
    p.add_argument("-n", type=int, required=True, help="number of accepted systems")
    p.add_argument("-o", "--output", required=True, help="output .asdf file")
    p.add_argument("--instrument", default="hst_wfc3", help="instrument name (see `lenskit plugins`)")
    p.add_argument("--bands", help="comma-separated bands, e.g. g,r,i")
    p.add_argument("--source", default="sersic_clump", help="source name (default sersic_clump)")
    p.add_argument("--mass-model", default="sie", help="mass model name (default sie)")
    p.add_argument("--shear", action="store_true", help="add external shear to the SIE")
    p.add_argument("--selection", default="default",
                   help="hezaveh2017, pearson2019, none, or the instrument's default")
    p.add_argument("--lens-light", choices=("on", "off", "default"), default="default")
    p.add_argument("--supersample", type=int, default=1)
    p.add_argument("--test", action="store_true", help="HST test-set masks (< 2%% of the arc flux)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_simulate)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if getattr(args, "selection", None) == "none":
        args.selection = None
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as exc:
        from lenskit.core.exceptions import LenskitError  # noqa: F401

        print(f"lenskit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from lenskit.core.exceptions import LenskitError

        if isinstance(exc, LenskitError):
            print(f"lenskit {args.command}: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
