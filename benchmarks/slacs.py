"""
Real SLACS lenses against Bolton et al. (2008): the shipped CNN and the maximum-likelihood refinement.

Runs `lenskit.pipeline.model_lens` (outlier mask, Sérsic lens-light
subtraction, the shipped ``hst_wfc3`` CNN on the resampled arcs, then
`lenskit.fit` with Laplace errors) on the eight SLACS lenses with published
SIE parameters (`lenskit.datasets.slacs_lenses`: read from ``../shared/data`` beside a
checkout, else downloaded once, about 6 MB) and compares theta_E, q and,
where the cutout has a WCS, the position angle with Bolton et al. (2008,
Table 5).  Prints JSON (per lens and the medians of the absolute differences,
seconds per stage, CPU threads); ``--rst FILE`` also writes the table that the
documentation includes.

``--copies`` also records the CNN's Einstein radius on each of the eight
symmetries of the pixel grid of the stamp it was given (what ``--tta 8``
averages), each copy alone, and on as many simulated test lenses: whether
the stamp as it comes is special on real cutouts.

The CNN's own uncertainty is measured beside it: each lens's predicted
standard deviation (``cnn_theta_E_std``) and its error in units of it, and,
on ``--n-sim`` simulated test lenses (the ``hezaveh2017`` test recipe), the
fraction of errors within one, two and three predicted standard deviations
and the spread of the predicted standard deviations, so that the real
lenses' can be compared with what the network says on its own simulations.

Usage::

    python benchmarks/slacs.py --threads 2 --rst docs/slacs_results.txt
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import lenskit
from devdata import shared_data  # the development-data folder, when beside the checkout (not a benchmark)
from lenskit.datasets import slacs_lenses
from lenskit.estimators.tta import DIHEDRAL, transform_images
from lenskit.modelling import model_lens


def pa_diff(a, b):
    d = abs(a - b) % 180
    return min(d, 180 - d)


class EightCopies:
    """
    A CNN estimator that answers as itself, and notes its Einstein radius on each of the eight symmetries of the
    pixel grid (`~lenskit.estimators.tta.DIHEDRAL`, the untransformed stamp first) of every stamp it is given.
    """

    def __init__(self, est):
        self.est, self.copies = est, []

    def __getattr__(self, name):
        return getattr(self.est, name)

    def theta_E_copies(self, images, conditions=None):
        """(N, 8) Einstein radii, one column per symmetry (the Einstein radius does not change under them)."""
        arr, masks = (images.images, images.masks) if isinstance(images, lenskit.LensDataset) else (images, None)
        if conditions is None and self.est.conditions and isinstance(images, lenskit.LensDataset):
            conditions = {c: images.params[c] for c in self.est.conditions}
        out = []
        for t in DIHEDRAL:  # each copy through the public predict, as a user would give it
            e = self.est.predict(transform_images(np.asarray(arr), t),
                                 masks=None if masks is None else transform_images(np.asarray(masks), t),
                                 **({} if conditions is None else {"conditions": conditions}))
            out.append(np.asarray(e.table["theta_E"], float))
        return np.stack(out, 1)

    def predict(self, images, **kwargs):
        self.copies.append(self.theta_E_copies(images, kwargs.get("conditions"))[0].tolist())
        return self.est.predict(images, **kwargs)


def copies_summary(rows, est, n_sim):
    """How far the untransformed stamp's Einstein radius lies from the mean of its seven transformed copies."""
    from lenskit.simulation import presets

    real = np.array([r["cnn_copies"][0] - np.mean(r["cnn_copies"][1:]) for r in rows])
    out = {"real_identity_minus_others": real.tolist(), "real_mean": float(real.mean()),
           "real_identity_highest": int(sum(np.argmax(r["cnn_copies"]) == 0 for r in rows))}
    if n_sim:
        ds = presets.hezaveh2017(test=True, seed=31).sample(n_sim)
        c = EightCopies(est).theta_E_copies(ds)
        d = c[:, 0] - c[:, 1:].mean(1)
        out.update(simulated_n=int(n_sim), simulated_mean=float(d.mean()),
                   simulated_sem=float(d.std(ddof=1) / np.sqrt(len(d))),
                   simulated_identity_highest_fraction=float(np.mean(np.argmax(c, 1) == 0)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--estimator", default="hst_wfc3",
                    help="a shipped estimator's name or the path of a weight file (default hst_wfc3)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shear", action=argparse.BooleanOptionalAction, default=False,
                    help="fit an external shear with the SIE (default: SIE alone, like Bolton et al.'s models)")
    ap.add_argument("--tta", type=int, choices=(1, 2, 4, 8), default=1,
                    help="test-time augmentation of the CNN step (grid symmetries averaged)")
    ap.add_argument("--rst", default=None, help="write the comparison table (reStructuredText) here")
    ap.add_argument("--n-sim", type=int, default=1000,
                    help="simulated test lenses for the calibration of the CNN's uncertainty (0: skip)")
    ap.add_argument("--copies", type=int, default=None, metavar="N_SIM",
                    help="also record the CNN's Einstein radius on each of the eight symmetries of every stamp, and "
                         "on N_SIM simulated test lenses (the hezaveh2017 test recipe): is the untransformed stamp "
                         "special?")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    est = lenskit.load_estimator(args.estimator)
    rows = []
    for lens in slacs_lenses(directory=shared_data()):
        spy = EightCopies(est) if args.copies is not None else est
        r = model_lens(lens["cutout"], spy, deblend=not lens["lens_subtracted"], psf=lens["psf"],
                       fit_kwargs={"shear": args.shear}, tta=args.tta)
        v = {k: float(getattr(r[k], "value", r[k])) for k in r.table.colnames if r.table[k].dtype.kind in "biuf"}
        row = {"lens": lens["name"], "published": {k: lens[k] for k in ("theta_E", "q", "pa")}}
        for who, pre in (("cnn", "cnn_"), ("fit", "")):
            row[who] = {"theta_E": v[f"{pre}theta_E"], "q": v[f"{pre}q"], "pa": v[f"{pre}pa"],
                        "d_theta_E": abs(v[f"{pre}theta_E"] - lens["theta_E"]), "d_q": abs(v[f"{pre}q"] - lens["q"]),
                        "d_pa": pa_diff(v[f"{pre}pa"], lens["pa"]) if np.isfinite(v[f"{pre}pa"]) else None}
        row["fit"].update(theta_E_std=v["theta_E_std"], reduced_chi2=v["reduced_chi2"],
                          at_bound=str(r["fit_at_bound"]), no_error=str(r["fit_no_error"]),
                          cnn_tension=v.get("fit_cnn_tension"))
        if "cnn_theta_E_std" in v:  # the network's own uncertainty, and the error in units of it
            row["cnn"].update(theta_E_std=v["cnn_theta_E_std"],
                              d_theta_E_sigmas=row["cnn"]["d_theta_E"] / v["cnn_theta_E_std"])
        row["seconds"] = {"deblend": v["seconds_deblend"], "cnn": v["seconds_cnn"], "fit": v["seconds_fit"]}
        if args.copies is not None:  # the stamp of the answer (model_lens asks again after masking neighbours)
            row["cnn_copies"] = spy.copies[-1]
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {}
    for who in ("cnn", "fit"):
        dpa = [r[who]["d_pa"] for r in rows if r[who]["d_pa"] is not None]
        summary[who] = {"median_abs_d_theta_E": float(np.median([r[who]["d_theta_E"] for r in rows])),
                        "median_abs_d_q": float(np.median([r[who]["d_q"] for r in rows])),
                        "median_abs_d_pa_deg": float(np.median(dpa)) if dpa else None, "n_pa": len(dpa)}
    summary["seconds_per_lens"] = {k: float(np.mean([r["seconds"][k] for r in rows]))
                                   for k in ("deblend", "cnn", "fit")}
    out = {"estimator": str(args.estimator), "n_lenses": len(rows), "threads": torch.get_num_threads(),
           "shear": args.shear, "tta": args.tta,
           "summary": summary}
    if args.copies is not None:
        out["copies"] = copies_summary(rows, est, args.copies)
    if args.n_sim and "theta_E_std" in rows[0]["cnn"]:
        out["cnn_uncertainty_simulated"] = simulated_calibration(est, args.n_sim, args.tta)
    print(json.dumps(out, indent=1))
    if args.rst:
        head = ("lens", "theta_E pub", "CNN", "fit", "q pub", "CNN", "fit", "PA pub", "CNN", "fit", "chi2_red")
        lines = []
        for r in rows:
            p, c, f = r["published"], r["cnn"], r["fit"]
            pa = [f"{x:.0f}" if np.isfinite(x) else "-" for x in (c["pa"], f["pa"])]
            lines.append((r["lens"], f"{p['theta_E']:.2f}", f"{c['theta_E']:.2f}",
                          f"{f['theta_E']:.3f} at a bound" if "theta_E" in f["at_bound"].split(",")
                          else f"{f['theta_E']:.3f} no minimum" if "theta_E" in f["no_error"].split(",")
                          else f"{f['theta_E']:.3f} +- {f['theta_E_std']:.3f}", f"{p['q']:.2f}", f"{c['q']:.2f}",
                          f"{f['q']:.2f}", f"{p['pa']:.0f}", pa[0], pa[1], f"{f['reduced_chi2']:.2f}"))
        s = summary
        lines.append(("median abs. difference", "", f"{s['cnn']['median_abs_d_theta_E']:.3f}",
                      f"{s['fit']['median_abs_d_theta_E']:.3f}", "", f"{s['cnn']['median_abs_d_q']:.3f}",
                      f"{s['fit']['median_abs_d_q']:.3f}", "", f"{s['cnn']['median_abs_d_pa_deg']:.0f}",
                      f"{s['fit']['median_abs_d_pa_deg']:.0f}", ""))
        widths = [max(len(x[i]) for x in lines + [head]) for i in range(len(head))]
        rule = "  ".join("=" * w for w in widths)
        fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        text = "\n".join([rule, fmt(head), rule] + [fmt(x) for x in lines] + [rule]) + "\n"
        Path(args.rst).write_text(text)
    return out


def simulated_calibration(est, n, tta):
    """The CNN's predicted theta_E standard deviations against its errors on ``n`` simulated test lenses."""
    from lenskit.simulation import presets

    ds = presets.hezaveh2017(test=True, seed=31).sample(n)
    t = est.predict(ds, **({"tta": tta} if tta != 1 else {})).table
    th, sd = np.asarray(getattr(t["theta_E"], "value", t["theta_E"])), np.asarray(
        getattr(t["theta_E_std"], "value", t["theta_E_std"]))
    z = np.abs(th - np.asarray(ds.params["theta_E"])) / sd
    mid = (th > 1.5) & (th < 2.2)
    return {"n": n, "recipe": "presets.hezaveh2017(test=True, seed=31)",
            "within_1_2_3_sigma": [float(np.mean(z < k)) for k in (1, 2, 3)],
            "theta_E_std_percentiles_50_90_99": [float(x) for x in np.percentile(sd, [50, 90, 99])],
            "theta_E_std_percentiles_50_90_99_for_estimates_1.5_2.2": [float(x) for x in
                                                                       np.percentile(sd[mid], [50, 90, 99])]}


if __name__ == "__main__":
    main()
