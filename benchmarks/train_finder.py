"""
The recipe of lenskit's shipped lens finder (CMU DeepLens, Lanusse et al. 2018).

Simulates labelled LSST g-band single-epoch cutouts (45 x 45 at 0.18",
Lanusse et al. Table 1) with `LensFinderSimulator`: half hold a lensed
source, all hold the lens galaxy and unlensed line-of-sight galaxies.  Trains
`DeepLensFinder` on a fixed training set with the paper's augmentation, sets
the detection threshold at 1% false-positive rate on a validation set (also
for test-time augmentation over 2, 4 and 8 symmetries), then
measures a test set whose background sources are galaxies never used in
training (the AEGIS galaxies and the COSMOS test split), and writes
``lenskit/estimators/weights/deeplens_lsst_g.asdf`` (float16) with the recipe
and the metrics.

Training sources: clumpy and Sérsic galaxies and the COSMOS / JWST *train*
splits; line-of-sight galaxies: Sérsic profiles and COSMOS train galaxies.

Usage::

    python benchmarks/train_finder.py --minutes 62 --n-train 40000 --epochs 30
    # continued from its checkpoint (a warm restart at lr 1e-3, drops at epochs 17 and 23):
    python benchmarks/train_finder.py --minutes 60 --epochs 26 --lr-drops 17,23
    # fine-tuned from those weights on arcs near the caustics (min_magnification 5, now the default):
    python benchmarks/train_finder.py --init lenskit/estimators/weights/deeplens_lsst_g.asdf --minutes 60 \
        --n-train 100000 --epochs 8 --lr 3e-4 --lr-drops 5,7
    # then 66 more minutes on 120,000 fresh cutouts at a lower rate:
    python benchmarks/train_finder.py --init lenskit/estimators/weights/deeplens_lsst_g.asdf --train-seed 2020 \
        --n-train 120000 --epochs 8 --lr 1e-4 --lr-drops 5,7 --minutes 70
    # and 90 more minutes on 144,000 fresh cutouts at the same rates (the shipped weights):
    python benchmarks/train_finder.py --init lenskit/estimators/weights/deeplens_lsst_g.asdf --train-seed 2021 \
        --n-train 140000 --epochs 8 --lr 1e-4 --lr-drops 5,7 --minutes 80
    # measure weights again (test sets, thresholds for test-time augmentation) and write them back:
    python benchmarks/train_finder.py --evaluate lenskit/estimators/weights/deeplens_lsst_g.asdf
    # trained to hold off lenskit's own simulator (Moffat PSFs, discs and twists in the lens light; issue #25),
    # the shipped deeplens_lsst_g_robust (37 minutes):
    python benchmarks/train_finder.py --robust --init lenskit/estimators/weights/deeplens_lsst_g.asdf \
        --train-seed 2025 --n-train 60000 --epochs 6 --lr 3e-4 --lr-drops 4,5 --threads 2 \
        --out lenskit/estimators/weights/deeplens_lsst_g_robust.asdf
    # with lens galaxies up to a magnitude brighter than the paper's (r 17.5-21.5 instead of 18.5-21.5):
    python benchmarks/train_finder.py --robust --lens-mag 17.5,21.5 \
        --init lenskit/estimators/weights/deeplens_lsst_g_robust.asdf --train-seed 2027 --out /tmp/bright.asdf
    # then at any seeing, single epochs the best of 1-5 exposures drawn per cutout (the shipped
    # deeplens_lsst_g_robust, 70 minutes on one thread):
    python benchmarks/train_finder.py --robust --lens-mag 17.5,21.5 --seeing-epochs 1,5 \
        --init lenskit/estimators/weights/deeplens_lsst_g_robust.asdf --train-seed 2029 --n-train 80000 \
        --epochs 6 --lr 3e-4 --lr-drops 4,5 --minutes 85 --threads 1 --out /tmp/seeing.asdf
    # a fourth round among wide-ranging fields of neighbours (presets.robust_line_of_sight: 30-300 per square
    # arcminute, bright ones common), 110 minutes on one thread, its thresholds chosen on the paper's field
    # (measured and not shipped: docs/finder.rst, "Neighbours"):
    python benchmarks/train_finder.py --robust --lens-mag 17.5,21.5 --seeing-epochs 1,5 --neighbours wide \
        --init lenskit/estimators/weights/deeplens_lsst_g_robust.asdf --train-seed 2031 --n-train 80000 \
        --epochs 6 --lr 3e-4 --lr-drops 4,5 --minutes 110 --threads 1 --threshold-on paper --out /tmp/wide.asdf
    # the shipped robust finder fine-tuned among satellites of the lens galaxy (1.5 per cutout within 0.5-3"), or
    # with the 13% most lens-like of about as many fresh non-lenses added (measured and not shipped: docs/finder.rst):
    python benchmarks/train_finder.py --robust --lens-mag 17.5,21.5 --seeing-epochs 1,5 --satellites 1.5 \
        --init lenskit/estimators/weights/deeplens_lsst_g_robust.asdf --train-seed 2033 --n-train 30000 \
        --epochs 6 --lr 1e-4 --lr-drops 4,5 --minutes 22 --threads 1 --threshold-on paper --out /tmp/sat.asdf
    python benchmarks/train_finder.py --robust --lens-mag 17.5,21.5 --seeing-epochs 1,5 --hard-negatives 0.13 \
        --init lenskit/estimators/weights/deeplens_lsst_g_robust.asdf --train-seed 2033 --n-train 30000 \
        --epochs 6 --lr 1e-4 --lr-drops 4,5 --minutes 22 --threads 1 --threshold-on paper --out /tmp/hard.asdf
    # worst-seeing stacks need their own network (not shipped yet):
    python benchmarks/train_finder.py --mode stack --out deeplens_lsst_g_stack.asdf

Prints the test metrics as JSON.
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

import lenskit
from lenskit.core.priors import Uniform
from lenskit.estimators import training
from lenskit.estimators.finder import DeepLensFinder
from lenskit.estimators.finder_metrics import completeness_table, finder_summary
from lenskit.simulation import presets
from lenskit.simulation.line_of_sight import LineOfSight

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LENSKIT_SHARED", ROOT.parent / "shared")) / "data" / "sources"
WEIGHTS = ROOT / "lenskit" / "estimators" / "weights"


def cosmos(split):
    return lenskit.get("source", "great3")(SHARED / "cosmos_f814w" / "real_galaxy_catalog_23.5.fits", split=split)


def sources(split):
    if split == "test":
        aegis = lenskit.get("source", "great3")(SHARED / "aegis_f606w_f814w" / "AEGIS_F814w_catalog.fits")
        return lenskit.get("source", "mixture")(sources=[aegis, cosmos("test")], weights=[0.7, 0.3])
    jwst = lenskit.get("source", "image_directory")(SHARED / "jwst", pattern="*/data.fits", pixel_scale=0.06,
                                                    nan_policy="zero", split=split)
    return lenskit.get("source", "mixture")(sources=["sersic_clump", "sersic", cosmos(split), jwst],
                                             weights=[0.35, 0.15, 0.3, 0.2])


def line_of_sight(split, neighbours="paper", satellites=0.0):
    """The training cutouts' neighbours; ``satellites``: a mean number, or `LineOfSight`'s satellite arguments."""
    mix = lenskit.get("source", "mixture")(sources=[lenskit.get("source", "sersic")(R_e=(0.1, 1.0)), cosmos(split)],
                                            weights=[0.5, 0.5])
    if neighbours == "wide":
        return presets.robust_line_of_sight(source=mix)
    return LineOfSight(source=mix, **(satellites if isinstance(satellites, dict) else {"satellites": satellites}))


def simulate(split, n, seed, mode="single_epoch", min_magnification=5.0, robust=False, lens_mag=None, n_epochs=10,
             neighbours="paper", satellites=0.0):
    priors = {} if lens_mag is None else {"lens_mag": Uniform(*lens_mag)}
    # robust: Moffat PSFs and the wide lens-light population; n_epochs: the exposures a single epoch is the best of;
    # neighbours "wide": presets.robust_line_of_sight (each field's own density, bright neighbours common)
    sim = presets.lanusse2018(mode=mode, seed=seed, robust=robust, n_epochs=n_epochs, source=sources(split),
                              line_of_sight=line_of_sight(split, neighbours, satellites),
                              min_magnification=min_magnification, priors=priors)
    return sim, sim.sample(n)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--n-train", type=int, default=40000)
    ap.add_argument("--n-val", type=int, default=4000)
    ap.add_argument("--n-test", type=int, default=8000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--checkpoint", default="/tmp/lenskit_deeplens.ckpt.asdf")
    ap.add_argument("--no-bfloat16", action="store_true",
                    help="train in float32 (the default where the CPU has no native bfloat16, on which bfloat16 "
                         "trains about ten times slower)")
    ap.add_argument("--mode", choices=("single_epoch", "stack"), default="single_epoch",
                    help="train for best-seeing single epochs (shipped) or worst-seeing stacks")
    ap.add_argument("--lr-drops", default=None, help="comma-separated epochs at which the learning rate drops 10x")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-magnification", type=float, default=5.0,
                    help="lensed sources' minimum total magnification (5: arcs near the caustics)")
    ap.add_argument("--init", default=None, help="start from these finder weights (keeps their preprocessing)")
    ap.add_argument("--train-seed", type=int, default=None,
                    help="seed of the training set (default 2018, or 2019 with --init); a new one gives fresh cutouts")
    ap.add_argument("--robust", action="store_true",
                    help="train and validate on presets.lanusse2018(robust=True): Moffat PSFs and a wide lens-light "
                         "population (discs, twists, colour gradients, offsets); the test sets stay the paper's")
    ap.add_argument("--lens-mag", default=None, metavar="LO,HI",
                    help="train and validate with lens galaxies of these reference-band (r) magnitudes, uniform "
                         "(default the paper's 18.5,21.5; g is about 1.5 fainter); the test sets stay the paper's")
    ap.add_argument("--seeing-epochs", default=None, metavar="LO,HI",
                    help="train and validate on single epochs that are the best of LO-HI exposures, drawn per "
                         "cutout (default the paper's 10; 1,10 spans the median seeing and worse to the best of "
                         "ten); the test sets stay the paper's")
    ap.add_argument("--neighbours", choices=("paper", "wide"), default="paper",
                    help="the line-of-sight galaxies of the training and validation cutouts: the paper's field (60 "
                         "per square arcminute, 20-27 mag) or presets.robust_line_of_sight (each cutout's own "
                         "density, 30-300 per square arcminute, bright neighbours common); the test sets stay the "
                         "paper's")
    ap.add_argument("--satellites", type=float, default=0.0, metavar="MEAN",
                    help="with the paper's neighbours: this mean number of further line-of-sight galaxies per "
                         "training and validation cutout within 0.5-3 arcsec of its centre, in lenses and non-lenses "
                         "alike (LineOfSight(satellites=...): the satellites that crowd real lens galaxies, which a "
                         "finder trained on a uniform field takes for lensed images); default 0")
    ap.add_argument("--satellite-mags", default=None, metavar="LO,HI",
                    help="with --satellites: the satellites' reference-band (r) magnitudes, default the field's "
                         "20,27")
    ap.add_argument("--satellite-slope", type=float, default=None,
                    help="with --satellites: the logarithmic slope of their counts, default the field's 0.3 (0: flat "
                         "in magnitude, a group's luminosity function, so that satellites a few magnitudes fainter "
                         "than the lens galaxy are common)")
    ap.add_argument("--focal-gamma", type=float, default=0.0,
                    help="train with the focal loss of this exponent (DeepLensFinder.fit(focal_gamma=...)): the "
                         "cutouts the network already gets right weigh less than the hard ones; default 0, the "
                         "paper's cross-entropy")
    ap.add_argument("--hard-negatives", type=float, default=0.0, metavar="FRACTION",
                    help="with --init: simulate twice as many more training cutouts (another seed), score their "
                         "non-lenses with the --init finder and add the highest-scoring ones, this fraction of "
                         "--n-train, to the training set (hard-negative mining: the non-lenses that look most like "
                         "lenses -- on other codes' cutouts, lens galaxies with a neighbour beside them); default 0")
    ap.add_argument("--threshold-on", choices=("training", "paper"), default="training",
                    help="the validation set the shipped thresholds (1%% false positives, with and without test-time "
                         "augmentation) are chosen on after training: the training's population (default) or the "
                         "paper's, as the test sets are made and as --evaluate chooses them (a finder trained on "
                         "harder fields otherwise ships a stricter threshold than the paper's field needs)")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads (1 for a background training beside other work: two 2-thread processes on "
                         "two cores collapse)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--evaluate", default=None, metavar="WEIGHTS",
                    help="no training: measure these finder weights again (test sets, tta thresholds and metrics) "
                         "and write them back, or to --out")
    args = ap.parse_args(argv)
    lens_mag = None if args.lens_mag is None else mag_pair(ap, args.lens_mag, "--lens-mag")
    n_epochs = 10
    if args.seeing_epochs is not None:
        try:
            n_epochs = tuple(int(v) for v in args.seeing_epochs.split(","))
        except ValueError:
            n_epochs = ()
        if len(n_epochs) != 2 or not 1 <= n_epochs[0] <= n_epochs[1] or args.mode != "single_epoch":
            ap.error(f"--seeing-epochs must be two increasing exposure counts LO,HI >= 1 (single_epoch mode); "
                     f"got {args.seeing_epochs!r}")
    if not 0 <= args.hard_negatives <= 1:
        ap.error(f"--hard-negatives must be a fraction in [0, 1]; got {args.hard_negatives}")
    if not 0 <= args.satellites <= 10:
        ap.error(f"--satellites must be a mean number per cutout in [0, 10]; got {args.satellites}")
    if args.satellites and args.neighbours != "paper":
        ap.error("--satellites adds to the paper's field of neighbours: not with --neighbours wide")
    satellites = {"satellites": args.satellites}
    if args.satellite_mags is not None or args.satellite_slope is not None:
        if not args.satellites:
            ap.error("--satellite-mags and --satellite-slope describe the satellites: pass --satellites too")
        if args.satellite_mags is not None:
            satellites["satellite_mags"] = mag_pair(ap, args.satellite_mags, "--satellite-mags")
        if args.satellite_slope is not None:
            satellites["satellite_slope"] = args.satellite_slope
    if args.hard_negatives and args.init is None:
        ap.error("--hard-negatives scores candidates with the --init finder: pass --init")
    torch.set_num_threads(args.threads)
    if args.evaluate is not None:
        finder = DeepLensFinder.load(args.evaluate)
        args.mode = finder.expects.get("mode", args.mode)
        evaluate(finder, paper_validation(args), args, Path(args.out) if args.out else Path(args.evaluate))
        return
    if args.init is not None:
        init = DeepLensFinder.load(args.init)  # fails here, before simulating, on a bad file
        if init.expects.get("mode", args.mode) != args.mode:
            ap.error(f"--init {args.init} was trained for mode {init.expects.get('mode')!r}, not {args.mode!r}")
    t0 = time.time()
    mu = args.min_magnification
    seed = args.train_seed if args.train_seed is not None else (2018 if args.init is None else 2019)
    sim, train = simulate("train", args.n_train, seed, mode=args.mode, min_magnification=mu, robust=args.robust,
                          lens_mag=lens_mag, n_epochs=n_epochs, neighbours=args.neighbours, satellites=satellites)
    _, val = simulate("validation", args.n_val, 7, mode=args.mode, min_magnification=mu, robust=args.robust,
                      lens_mag=lens_mag, n_epochs=n_epochs, neighbours=args.neighbours, satellites=satellites)
    print(json.dumps({"simulated": len(train) + len(val), "seconds": time.time() - t0}), flush=True)
    hard = None
    if args.hard_negatives:
        train, hard = with_hard_negatives(init, train, round(args.hard_negatives * args.n_train), seed + 1000,
                                          mode=args.mode, min_magnification=mu, robust=args.robust,
                                          lens_mag=lens_mag, n_epochs=n_epochs, neighbours=args.neighbours,
                                          satellites=satellites)
        print(json.dumps({"hard_negatives": hard, "seconds": time.time() - t0}), flush=True)
    inst = sim.instrument
    if args.init is None:
        finder = DeepLensFinder(in_shape=train.images.shape[1:],
                                expects={"instrument": inst.name, "bands": list(inst.bands), "mode": args.mode,
                                         "pixel_scale": inst.pixel_scale.value, "units": "electron / s",
                                         "shape": list(train.images.shape[1:])})
        previous = None
    else:
        finder, previous = init, without_local_paths({"weights": str(Path(args.init).resolve()),
                                                      "training": init.training, "metrics": init.metrics})
    bf16 = not args.no_bfloat16 and native_bfloat16()
    t1 = time.time()
    finder.fit(train, validation=val, epochs=args.epochs, batch_size=args.batch_size, checkpoint=args.checkpoint,
               time_limit=args.minutes * 60, progress=False, bfloat16=bf16,
               lr_drops=None if args.lr_drops is None else [float(v) for v in args.lr_drops.split(",")],
               log=lambda r: print(json.dumps(r), flush=True), lr=args.lr, statistics=args.init is None,
               focal_gamma=args.focal_gamma)
    train_seconds = time.time() - t1
    finder.training["simulation"] = sim.config
    finder.training["train_set_seed"] = seed
    if hard is not None:
        finder.training["hard_negatives"] = hard
    if previous is not None:
        finder.training["initialised_from"] = previous
    finder.metrics = {"train_seconds": train_seconds, "cpu_threads": torch.get_num_threads()}
    default = "deeplens_lsst_g.asdf" if args.mode == "single_epoch" else "deeplens_lsst_g_stack.asdf"
    if args.threshold_on == "paper":
        val = paper_validation(args)
    evaluate(finder, val, args, Path(args.out) if args.out else WEIGHTS / default, thresholds_on=args.threshold_on)


def mag_pair(ap, text, flag):
    """Two increasing magnitudes ``LO,HI`` from the command line, or ``ap.error`` naming ``flag``."""
    try:
        pair = tuple(float(v) for v in text.split(","))
    except ValueError:
        pair = ()
    if len(pair) != 2 or not pair[0] < pair[1]:
        ap.error(f"{flag} must be two increasing magnitudes LO,HI; got {text!r}")
    return pair


def with_hard_negatives(finder, train, k, seed, **kwargs):
    """``train`` with the ``k`` non-lenses ``finder`` scores highest among twice as many fresh cutouts (seed ``seed``):
    about as many non-lenses as ``train`` has cutouts."""
    from lenskit.scale.shards import concat_datasets

    _, pool = simulate("train", 2 * len(train), seed, **kwargs)
    neg = np.flatnonzero(~np.asarray(pool.params["is_lens"], bool))
    k = min(k, len(neg))
    z = finder.logits(pool[neg])
    top = np.argsort(z)[::-1][:k]
    info = {"n": int(k), "pool_seed": int(seed), "pool_non_lenses": int(len(neg)),
            "lowest_logit": float(z[top[-1]]) if k else None}
    return (concat_datasets([train, pool[neg[top]]]) if k else train), info


def paper_validation(args):
    """The validation cutouts of the paper's population (the test sets' kind), for choosing shipped thresholds."""
    return simulate("validation", args.n_val, 7, mode=args.mode, min_magnification=args.min_magnification)[1]


def native_bfloat16():
    """`lenskit.estimators.training.native_bfloat16`, saying so when the CPU has none."""
    ok = training.native_bfloat16()
    if not ok:
        print(json.dumps({"bfloat16": "this CPU has no native bfloat16: training in float32"}), flush=True)
    return ok


def without_local_paths(record):
    """``record`` with every path inside this repository written relative to it (no machine's paths in the file)."""
    if isinstance(record, dict):
        return {k: without_local_paths(v) for k, v in record.items()}
    if isinstance(record, list):
        return [without_local_paths(v) for v in record]
    if isinstance(record, str) and record.startswith(str(ROOT) + os.sep):
        return str(Path(record).relative_to(ROOT))
    return record


def evaluate(finder, val, args, out, thresholds_on="paper"):
    """
    Measure ``finder`` on the test sets, choose its tta thresholds on ``val`` and write it to ``out`` (float16).

    Every threshold (tta = 1, 2, 4, 8) is chosen at 1% false-positive rate on ``val``
    (`DeepLensFinder.set_threshold`).  Test-time augmentation is measured on the test cutouts of the finder's own
    mode; on the test set
    the eight symmetries are scored once (`DeepLensFinder.transform_logits`) and the smaller groups are their
    first 2 and 4, as ``predict(tta=...)`` averages them.
    """
    mu = args.min_magnification

    def measured(p, test, threshold):
        comp = completeness_table(p, test.params, threshold=threshold)
        rows = [{k: (float(r[k]) if k != "n_lenses" else int(r[k])) for k in comp.colnames} for r in comp]
        return {"summary": finder_summary(p, np.asarray(test.params["is_lens"], bool)),
                "completeness_at_validation_threshold": rows, "realised_fpr": comp.meta["fpr_realised"]}

    # every threshold (tta 1, 2, 4, 8) on ``val``: after training it may be another population than fit's
    finder.set_threshold(val, fpr=finder.threshold_fpr or 0.01, tta=(1, 2, 4, 8), batch_size=512)
    results, tests = {}, {}
    for mode in ("single_epoch", "stack"):
        _, tests[mode] = simulate("test", args.n_test, 99, mode=mode, min_magnification=mu)
        t2 = time.time()
        p = finder.predict(tests[mode], batch_size=512).table["p_lens"].value
        results[mode] = {**measured(p, tests[mode], finder.threshold),
                         "cutouts_per_second": len(p) / (time.time() - t2)}
    # the harder population of earlier versions (doubles of compact sources far from the caustics)
    _, hard = simulate("test", args.n_test, 99, mode=args.mode, min_magnification=2.0)
    p_hard = finder.predict(hard, batch_size=512).table["p_lens"].value
    results[f"{args.mode}_min_magnification_2"] = measured(p_hard, hard, finder.threshold)
    # test-time augmentation: thresholds on the validation set, completeness on the test set
    test = tests[args.mode]
    z_test = finder.transform_logits(test, n=8, batch_size=512)
    for n in (2, 4, 8):
        p = 1 / (1 + np.exp(-z_test[:n].mean(0)))
        results[f"{args.mode}_tta{n}"] = measured(p, test, finder.tta_thresholds[n])
    finder.metrics.update({"test": results, "cpu_threads": torch.get_num_threads(),
                           "thresholds_chosen_on": {"n": len(val), "population": thresholds_on},
                           "test_set": {"n": args.n_test, "sources": "AEGIS (all) + COSMOS test split",
                                        "line_of_sight": "Sérsic + COSMOS test split", "min_magnification": mu}})
    finder.save(out, dtype=np.float16)
    back = DeepLensFinder.load(out)
    p16 = back.predict(test, batch_size=512).table["p_lens"].value  # the same test cutouts, float16 weights
    print(json.dumps({"finder": out.name, "test": results,
                      f"float16_{args.mode}": finder_summary(p16, np.asarray(test.params["is_lens"], bool)),
                      "epochs": finder.training.get("completed_epochs"),
                      "train_seconds": finder.metrics.get("train_seconds"), "threshold": finder.threshold,
                      "tta_thresholds": finder.tta_thresholds, "weights_bytes": out.stat().st_size}, indent=1),
          flush=True)

if __name__ == "__main__":
    main()
