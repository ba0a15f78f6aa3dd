"""
How a lens finder's completeness depends on the seeing of the cutouts it is shown.

Renders the same Lanusse et al. (2018) finder cutouts (LSST g, 45 x 45 at 0.18", one 3000 s exposure, half of them
lensed, ``presets.lanusse2018`` priors with its default clumpy sources and line-of-sight galaxies) under Gaussian
PSFs of fixed FWHM 0.6-1.0" -- the best of ten exposures is about 0.6", a single visit's median 0.81" -- and prints,
per finder and seeing, the AUROC (lenses with arc S/N > 20) and the completeness at 1% false positives for
theta_E > 1.4" and S/N > 20 (the threshold set on each set's own non-lenses), as JSON.  A finder trained on the
best-seeing epochs alone reads blurred faint arcs as lens galaxies; one trained on many seeings should hold.

Usage::

    python benchmarks/finder_seeing.py deeplens_lsst_g deeplens_lsst_g_robust --n 2000 --threads 2
"""

import argparse
import json

import numpy as np
import torch

import lenskit
from lenskit.estimators.finder_metrics import auroc, tpr_at_fpr
from lenskit.estimators.pretrained import load_estimator
from lenskit.simulation import presets

SEEINGS = (0.6, 0.7, 0.8, 0.9, 1.0)


def figures(p, params):
    lab = np.asarray(params["is_lens"]).astype(bool)
    th = np.asarray(params["theta_E"].value if hasattr(params["theta_E"], "value") else params["theta_E"])
    snr = np.asarray(params["arc_snr"])
    bright = ~lab | (snr > 20)
    sel = ~lab | ((th > 1.4) & (snr > 20))
    return {"auroc_snr_gt_20": float(auroc(p[bright], lab[bright])),
            "completeness_fpr1pc_theta_gt_1.4_snr_gt_20": float(tpr_at_fpr(p[sel], lab[sel], 0.01)),
            "lenses_theta_gt_1.4_snr_gt_20": int((lab & (th > 1.4) & (snr > 20)).sum())}


def load_finders(ap, names):
    """Name -> finder for each shipped name or weight file, refused through ``ap`` unless an LSST g lens finder."""
    finders = {name: load_estimator(name) for name in names}
    for name, f in finders.items():
        if "p_lens" not in getattr(f, "targets", ()) or tuple(f.expects.get("bands", ())) != ("g",):
            ap.error(f"{name} is not an LSST g lens finder (targets {getattr(f, 'targets', None)}, "
                     f"expects {f.expects})")
    return finders


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("finders", nargs="+", help="shipped finders' names or weight files")
    ap.add_argument("--n", type=int, default=2000, help="cutouts per seeing, half lensed (the same at every seeing)")
    ap.add_argument("--seed", type=int, default=45)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.n < 100:
        ap.error(f"--n must be at least 100; got {args.n}")
    torch.set_num_threads(args.threads)
    finders = load_finders(ap, args.finders)
    make = lenskit.get("instrument", "lsst")
    out = {"n": args.n, "seed": args.seed, "cpu_threads": torch.get_num_threads(), "seeing_fwhm": {}}
    for fw in SEEINGS:
        # one exposure at exactly this seeing: the best of one, without scatter
        inst = make.lanusse2018(bands=("g",), mode="single_epoch", n_epochs=1, seeing_scatter=0.0, seeing=fw)
        ds = presets.lanusse2018(seed=args.seed, instrument=inst).sample(args.n)
        row = {}
        for name, f in finders.items():
            p = np.asarray(f.predict(ds, batch_size=256).table["p_lens"])
            row[name] = figures(p, ds.params)
        out["seeing_fwhm"][f"{fw:.1f}"] = row
        print(json.dumps({"seeing": fw, **{k: v["completeness_fpr1pc_theta_gt_1.4_snr_gt_20"] for k, v in row.items()}}),
              flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
