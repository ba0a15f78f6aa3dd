"""
An LSST estimator's Einstein-radius error by where the source lies: source offset over Einstein radius.

Renders lenskit's own Pearson et al. (2019) protocol test set (the held-out AEGIS and COSMOS test galaxies of
``train_estimators.py``, LSST g, r, i at 0.2"; with lens light for estimators trained with it, without for the
others) and prints each estimator's theta_E bias and RMS in bins of beta / theta_E, the source's distance
from the lens centre over the Einstein radius, as JSON.  Sources far from the centre (beta / theta_E > 0.6)
make wide doubles: an outer image at about theta_E + beta and a faint inner one near the lens.  The
lenstronomy test sets of ``cross_simulator.py`` place their sources within 0.6 theta_E, so
``rms_beta_lt_0.6`` is the own-simulator figure that compares like with like.  ``--line-of-sight`` adds
unlensed neighbours to the test set, ``--robust-test`` the robust training preset's PSFs, lens light and
centring.

Usage::

    python benchmarks/source_offset.py lsst_gri lsst_gri_robust_psf lsst_gri_no_lens_light \
        lsst_gri_no_lens_light_robust --n 1500 --threads 2
"""

import argparse
import json

import numpy as np
import torch

import lenskit
from lenskit.estimators.pretrained import load_estimator
from lenskit.simulation import presets
from train_estimators import instrument, test_source  # the test galaxies of the shipped weights' own test sets

BINS = ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, np.inf))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("estimators", nargs="+", help="shipped LSST g, r, i estimators' names or weight files")
    ap.add_argument("--n", type=int, default=1500, help="lenses (the same lenses for every estimator)")
    ap.add_argument("--seed", type=int, default=98, help="default 98, the seed of the weights' own test set")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--line-of-sight", action="store_true",
                    help="add unlensed line-of-sight galaxies to the test set (Simulator(line_of_sight=True))")
    ap.add_argument("--robust-test", action="store_true",
                    help="render the test set with presets.robust's PSFs, lens light and centring priors (Pearson et "
                         "al.'s Einstein radii and ellipticities kept; add --line-of-sight for its neighbours)")
    args = ap.parse_args(argv)
    if args.n < 20:
        ap.error(f"--n must be at least 20; got {args.n}")
    torch.set_num_threads(args.threads)
    ests = {name: load_estimator(name) for name in args.estimators}
    for name, est in ests.items():
        if est.expects.get("instrument") != "lsst" or tuple(est.expects.get("bands", ())) != ("g", "r", "i"):
            ap.error(f"{name} is not an LSST g, r, i estimator (expects {est.expects})")
    inst = instrument("lsst_gri", test=True)
    priors = presets.pearson2019_priors("lsst", inst.pixel_scale)
    if args.robust_test:
        inst = presets.robust_instrument("lsst")
        priors = {**priors, **presets.robust_priors("lsst", inst.pixel_scale)}
    out = {"n": args.n, "seed": args.seed, "line_of_sight": args.line_of_sight, "robust_test": args.robust_test,
           "cpu_threads": torch.get_num_threads(), "theta_E": {}}
    for light in (True, False):
        names = [n for n, e in ests.items() if (e.expects.get("lens_light", True) is True) == light]
        if not names:
            continue
        ds = lenskit.Simulator(source=test_source(), instrument=inst, seed=args.seed, priors=priors,
                               lens_light=light, line_of_sight=args.line_of_sight).sample(args.n)
        p = ds.params
        true = p["theta_E"].value
        beta = np.hypot(p["source_x"].value - p["x0"].value, p["source_y"].value - p["y0"].value) / true
        for name in names:
            # strict=False: the twins without lens light were trained on subtracted light, shown none here
            d = ests[name].predict(ds, batch_size=128, strict=False).table["theta_E"].value - true
            row = {"lens_light": light, "rms": float(np.sqrt(np.mean(d ** 2))), "bias": float(d.mean()),
                   "rms_beta_lt_0.6": float(np.sqrt(np.mean(d[beta < 0.6] ** 2))), "bins": []}
            for lo, hi in BINS:
                m = (beta >= lo) & (beta < hi)
                row["bins"].append({"beta_over_theta_E": [lo, None if np.isinf(hi) else hi], "n": int(m.sum()),
                                    "bias": float(d[m].mean()) if m.any() else None,
                                    "rms": float(np.sqrt(np.mean(d[m] ** 2))) if m.any() else None})
            out["theta_E"][name] = row
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
