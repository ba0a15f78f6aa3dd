"""
How a lens finder's answers depend on the units of the cutouts it is shown, with and without matching their noise.

The DeepLens finder reads images in units of its training noise (Lanusse et al.'s preprocessing divides by it),
so the same sky in other units reaches it at another signal-to-noise.  This renders lenskit's own test cutouts
(``presets.lanusse2018``, LSST g in e-/s, half lensed), multiplies them by factors that stand for other units or
depths, and prints as JSON, per finder and factor, the AUROC (lenses with arc S/N > 20), the completeness at 1%
false positives for theta_E > 1.4" and S/N > 20 (the threshold set on the set's own non-lenses), and the share of
non-lenses above the finder's shipped threshold -- scored as they come (``raw``) and after
`~lenskit.estimators.finder.DeepLensFinder.match_noise` (``matched``), which ``lenskit find`` applies to a real
cutout.

Usage::

    python benchmarks/finder_units.py deeplens_lsst_g --n 1000 --seed 7 --threads 2
"""

import argparse
import json

import numpy as np
import torch

from lenskit.simulation import presets

from finder_seeing import figures, load_finders  # the seeing benchmark's metrics and checks

FACTORS = (0.1, 1.0, 10.0, 1000.0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("finders", nargs="+", help="shipped finders' names or weight files")
    ap.add_argument("--n", type=int, default=1000, help="cutouts, half lensed")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.n < 100:
        ap.error(f"--n must be at least 100; got {args.n}")
    torch.set_num_threads(args.threads)
    finders = load_finders(ap, args.finders)
    ds = presets.lanusse2018(seed=args.seed).sample(args.n)
    lab = np.asarray(ds.params["is_lens"]).astype(bool)
    out = {"n": args.n, "seed": args.seed, "cpu_threads": torch.get_num_threads(), "finders": {}}
    for name, f in finders.items():
        rows = {}
        for k in FACTORS:
            images = ds.images * np.float32(k)
            row = {}
            for how, data in (("raw", images), ("matched", f.match_noise(images))):
                p = f.predict(data).table["p_lens"].value
                row[how] = {**figures(p, ds.params),
                            "non_lenses_above_threshold": float(np.mean(p[~lab] >= f.threshold))}
            rows[f"x{k:g}"] = row
        out["finders"][name] = rows
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
