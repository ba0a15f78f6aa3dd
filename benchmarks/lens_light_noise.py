"""
What the lens galaxy's light costs the HST network once it is removed: its shot noise and a fit's residuals.

Hezaveh et al.'s images, on which the HST network trains, are "lens-subtracted": no lens galaxy at all.  A real
cutout's arcs, after any lens-light removal, still carry the lens light's photon noise (bright near the
centre, where small Einstein radii put their arcs) and whatever the fit left.  For each seed this renders the
same lenses of the ``hezaveh2017`` test recipe three ways (the same lenses, sources and noise draws otherwise;
`lenskit.Simulator`'s ``lens_light``):

* ``none``: no lens galaxy (the recipe);
* ``subtracted``: the lens galaxy observed and its true light subtracted (its shot noise left);
* ``residual``: the lens galaxy observed and an imperfect model of it subtracted
  (`lenskit.simulation.residuals`: the residuals of lenskit's Sérsic deblender at the median),

and, as `lenskit.modelling.model_lens` does after a lens-light fit, masks the disc of ``--core`` arcsec
(default its `~lenskit.modelling.pipeline.CNN_CORE`, 0.2") about the lens centre in all three (where a fit
leaves most of its residual), then prints each estimator's 68% theta_E error, its median error (bias) by Einstein radius, and the 68% error
by the lens galaxy's F814W magnitude (the recipe's 17.5-21; the SLACS lenses are 16.5-18.5), as JSON.

Usage::

    python benchmarks/lens_light_noise.py --estimators hst_wfc3 new.asdf --n 800 --seeds 21 22 --threads 2
"""

import argparse
import json

import numpy as np
import torch

from lenskit.estimators.pretrained import load_estimator
from lenskit.modelling.pipeline import CNN_CORE
from lenskit.simulation import presets

KINDS = {"none": False, "subtracted": "subtracted", "residual": "residual"}
#: Einstein-radius bins (arcsec) of the bias.
THETA_BINS = ((0.1, 0.8), (0.8, 1.4), (1.4, 3.0))
#: Lens-galaxy magnitude bins (F814W) of the error.
MAG_BINS = ((17.5, 18.5), (18.5, 19.5), (19.5, 21.0))


def mask_core(ds, radius):
    """The dataset's masks and the disc of ``radius`` arcsec about each lens centre (``x0``, ``y0``)."""
    n, nb, h, w = ds.images.shape
    ps = float(ds.pixel_scale.to_value("arcsec"))
    yy, xx = np.mgrid[:h, :w]
    cx = (w - 1) / 2 + np.asarray(ds.params["x0"].to_value("arcsec")) / ps
    cy = (h - 1) / 2 + np.asarray(ds.params["y0"].to_value("arcsec")) / ps
    disc = np.hypot(xx[None] - cx[:, None, None], yy[None] - cy[:, None, None]) * ps < radius
    disc = np.broadcast_to(disc[:, None], ds.images.shape)
    ds.masks = np.ascontiguousarray(disc if ds.masks is None else ds.masks | disc)
    return ds


def measure(estimators, n, seed, core=CNN_CORE):
    """{kind: {estimator: (errors, truths)}} and the lenses' magnitudes, for one seed's ``n`` lenses."""
    out, mags, first = {}, None, None
    for kind, light in KINDS.items():
        ds = presets.hezaveh2017(test=True, seed=seed, lens_light=light).sample(n)
        if core > 0:
            ds = mask_core(ds, core)
        truth = ds.params["theta_E"].value
        if first is None:
            first = truth
        elif not np.array_equal(truth, first):  # the same lenses whatever is done with their light
            raise RuntimeError(f"seed {seed}: lens_light={light!r} drew other lenses than lens_light=False")
        if "lens_mag" in ds.params.colnames:
            mags = np.asarray(ds.params["lens_mag"], float)
        out[kind] = {name: (est.predict(ds, batch_size=64).table["theta_E"].value - truth, truth)
                     for name, est in estimators.items()}
    return out, mags


def summary(err, truth, mags):
    a = np.abs(err)
    return {"err68": round(float(np.percentile(a, 68)), 4),
            "bias_by_theta_E": {f"{lo}-{hi}": round(float(np.median(err[(truth >= lo) & (truth < hi)])), 4)
                                for lo, hi in THETA_BINS},
            "err68_by_lens_mag": {f"{lo}-{hi}": round(float(np.percentile(a[(mags >= lo) & (mags < hi)], 68)), 4)
                                  for lo, hi in MAG_BINS}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--estimators", nargs="+", default=["hst_wfc3"],
                    help="shipped HST estimators' names or weight files")
    ap.add_argument("--n", type=int, default=800, help="lenses per seed")
    ap.add_argument("--seeds", type=int, nargs="+", default=[21, 22])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--core", type=float, default=CNN_CORE,
                    help=f"radius (arcsec) of the disc about the lens centre masked, as model_lens masks it after a "
                         f"lens-light fit (default {CNN_CORE}; 0: none)")
    args = ap.parse_args(argv)
    if not args.core >= 0:
        ap.error(f"--core must be >= 0 arcsec; got {args.core}")
    if args.n < 30:
        ap.error(f"--n must be at least 30; got {args.n}")
    torch.set_num_threads(args.threads)
    estimators = {}
    for name in args.estimators:
        est = load_estimator(name)
        if est.expects.get("instrument") != "hst_wfc3":
            ap.error(f"--estimators: {name} is not an HST estimator (expects {est.expects})")
        estimators[name] = est
    errs = {k: {e: [] for e in estimators} for k in KINDS}
    truths, mags = [], []
    for seed in args.seeds:
        got, m = measure(estimators, args.n, seed, args.core)
        mags.append(m)
        truths.append(next(iter(got["none"].values()))[1])
        for k in KINDS:
            for e in estimators:
                errs[k][e].append(got[k][e][0])
    truth, mag = np.concatenate(truths), np.concatenate(mags)
    out = {"benchmark": "lens_light_noise", "n": int(len(truth)), "seeds": args.seeds,
           "cpu_threads": torch.get_num_threads(), "protocol": "hezaveh2017(test=True), lens F814W 17.5-21",
           "core_masked_arcsec": args.core,
           "theta_E": {k: {e: summary(np.concatenate(v), truth, mag) for e, v in errs[k].items()} for k in KINDS}}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
