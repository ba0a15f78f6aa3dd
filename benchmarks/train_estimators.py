"""
The recipe of lenskit's shipped estimators: simulate, train, test, write weights.

Trains the parameter-efficient ``lenskit_net`` for HST WFC3 (192 x 192, the
setting of Hezaveh et al. 2017), LSST g, r, i and Euclid VIS (57 x 57, with
lens light, the setting of Pearson et al. 2019) on batches simulated on the
fly, then measures each on a test set of held-out galaxies and writes
``lenskit/estimators/weights/<name>.asdf`` (float16) with its simulation
config, training budget and test metrics.

Training sources: a mixture of clumpy and Sérsic galaxies and the real
galaxies of the *train* split of the COSMOS and JWST samples in
``../shared/data``.  HST test sources: the five AEGIS galaxies (never used in
training) and the COSMOS *test* split, with the test-set masks of Hezaveh et
al. (under 2% of the arc flux).  Real lenses are never used.

LSST and Euclid are also measured on two versions of Pearson et al.'s (2019)
test distribution: ``test_pearson2019`` with lenskit's held-out real
galaxies as sources, and ``test_pearson2019_literal`` as they made theirs --
Sérsic sources with indices around 4 and, without lens light, the true lens
light subtracted from the noisy image (its shot noise stays).

Usage::

    # the shipped HST weights predate the asinh stretch:
    python benchmarks/train_estimators.py hst_wfc3 --minutes 45 --stretch linear
    # optionally continued from its checkpoint with a warm restart:
    python benchmarks/train_estimators.py hst_wfc3 --minutes 24 --lr 1e-3 --stretch linear --checkpoint /tmp/lenskit_hst_wfc3.ckpt.asdf
    python benchmarks/train_estimators.py lsst_gri --minutes 50
    python benchmarks/train_estimators.py euclid_vis --minutes 50
    # fine-tune shipped weights with a new schedule (train_seconds then counts both runs):
    python benchmarks/train_estimators.py hst_wfc3 --minutes 30 --lr 1e-3 --init lenskit/estimators/weights/hst_wfc3.asdf
    # the LSST twin without lens light, last round: images whose lens light was subtracted (its shot noise
    # kept) and a quarter of the sources Pearson et al.'s Sérsic galaxies:
    python benchmarks/train_estimators.py lsst_gri --no-lens-light subtracted --pearson-sources 0.25 --minutes 115 --lr 5e-4 --init lenskit/estimators/weights/lsst_gri_no_lens_light.asdf
    # neighbours: half of the systems with unlensed line-of-sight galaxies in the stamp (the real-lens failure
    # of docs/real_lenses.rst, a bright companion in the corner), fine-tuned on one thread:
    python benchmarks/train_estimators.py hst_wfc3 --line-of-sight 0.5 --init lenskit/estimators/weights/hst_wfc3.asdf --minutes 80 --lr 3e-4 --workers 0 --threads 1 --out hst_los.asdf
    # the experiment of docs/benchmarks.rst (not shipped): Pearson et al.'s Sérsic sources only, as they trained:
    python benchmarks/train_estimators.py lsst_gri --no-lens-light subtracted --pearson-sources 1 --minutes 115 --lr 5e-4 --init lenskit/estimators/weights/lsst_gri_no_lens_light.asdf --out sersic_only.asdf
    # lsst_gri_no_lens_light_robust: the twin without lens light fine-tuned on presets.robust (one thread):
    python benchmarks/train_estimators.py lsst_gri --no-lens-light subtracted --robust --pearson-sources 0.15 --minutes 95 --lr 5e-4 --workers 0 --threads 1 --init lenskit/estimators/weights/lsst_gri_no_lens_light.asdf --out lenskit/estimators/weights/lsst_gri_no_lens_light_robust.asdf
    # the same with half of every batch from the default simulator (measured, not shipped):
    python benchmarks/train_estimators.py lsst_gri --no-lens-light subtracted --robust --robust-fraction 0.5 --pearson-sources 0.15 --minutes 85 --lr 5e-4 --workers 0 --threads 1 --init lenskit/estimators/weights/lsst_gri_no_lens_light.asdf --out half_robust.asdf
    # ablations of the robust preset (which ingredient an estimate depends on), e.g. without the neighbours:
    python benchmarks/train_estimators.py lsst_gri --robust --robust-without line_of_sight --pearson-sources 0.15 --conditions psf_fwhm --init lenskit/estimators/weights/lsst_gri_robust_psf.asdf --minutes 45 --lr 2.5e-4 --workers 0 --threads 1 --bfloat16 --out no_los.asdf
    # the HST network with a position-pooled head on its convolutions (measured in docs/real_lenses.rst, not shipped):
    python benchmarks/train_estimators.py hst_wfc3 --init lenskit/estimators/weights/hst_wfc3.asdf --head pooled --minutes 75 --lr 5e-4 --workers 0 --threads 1 --out hst_pooled.asdf
    # the HST network fine-tuned to give the same Einstein radius wherever the stamp is cut (pairs moved by up
    # to 4 pixels; measured in docs/real_lenses.rst):
    python benchmarks/train_estimators.py hst_wfc3 --init lenskit/estimators/weights/hst_wfc3.asdf --shift-pairs 4 --minutes 100 --lr 5e-4 --workers 0 --threads 1 --out hst_shift.asdf
    # lenses that are not isothermal: half of the systems power laws in an external shear (regressed as their
    # SIE-equivalent parameters), fine-tuned on one thread:
    python benchmarks/train_estimators.py hst_wfc3 --power-law 0.5 --init lenskit/estimators/weights/hst_wfc3.asdf --minutes 90 --lr 1e-4 --workers 0 --threads 1 --out hst_pl.asdf
    # arcs as real data leave them: half of the lenses have a lens galaxy whose light an imperfect model removed
    # (its shot noise and the fit's residuals left), symmetry pairs as the shipped weights:
    python benchmarks/train_estimators.py hst_wfc3 --residual-lens-light 0.5 --init lenskit/estimators/weights/hst_wfc3.asdf --symmetry-pairs --seed 6 --minutes 95 --lr 2e-4 --workers 0 --threads 1 --out hst_residual.asdf
    # re-measure shipped weights (e.g. after adding a test protocol) without training:
    python benchmarks/train_estimators.py lsst_gri --evaluate lenskit/estimators/weights/lsst_gri.asdf

Each prints its test metrics as JSON.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

import lenskit
from lenskit.estimators.metrics import summary
from lenskit.estimators.training import BankMix, native_bfloat16
from lenskit.estimators.regression import CNNEstimator
from lenskit.simulation import presets
from lenskit.simulation.mixture import SimulatorMixture

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deblended_bank import shard_paths  # noqa: E402  (the bank's format, beside this script)

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LENSKIT_SHARED", ROOT.parent / "shared")) / "data" / "sources"
WEIGHTS = ROOT / "lenskit" / "estimators" / "weights"


def real_sources(split):
    cosmos = lenskit.get("source", "great3")(SHARED / "cosmos_f814w" / "real_galaxy_catalog_23.5.fits",
                                             split=split)
    jwst = lenskit.get("source", "image_directory")(SHARED / "jwst", pattern="*/data.fits", pixel_scale=0.06,
                                                    nan_policy="zero", split=split)
    return cosmos, jwst


# what each training source is, in training_source's order (for the weights' training record)
TRAINING_LABELS = ["sersic_clump", "sersic", "great3: COSMOS F814W real galaxies, train split",
                   "image_directory: JWST real galaxies, train split", "sersic: n ~ N(4, 1) in 0.5-8, Pearson et al."]


def training_source(pearson_fraction=0.0, hudf_fraction=0.0):
    """
    The training mixture and its labels (for the weights' training record).  ``pearson_fraction`` of it can be
    Pearson et al.'s own Sérsic sources (indices around 4) and ``hudf_fraction`` real galaxies of the Hubble
    eXtreme Deep Field (the ``hudf`` source's train split), the rest keeping its proportions.
    """
    cosmos, jwst = real_sources("train")
    sources, weights = ["sersic_clump", "sersic", cosmos, jwst], [0.35, 0.15, 0.3, 0.2]
    labels = list(TRAINING_LABELS[:4])
    extra = []
    if hudf_fraction:
        extra.append((lenskit.get("source", "hudf")(split="train"), hudf_fraction,
                      "hudf: Hubble eXtreme Deep Field galaxies (skimage.data), train split"))
    if pearson_fraction:
        extra.append((presets.pearson2019_source(), pearson_fraction, TRAINING_LABELS[4]))
    rest = 1.0 - sum(f for _, f, _ in extra)
    if rest < 0:
        raise ValueError(f"--pearson-sources and --hudf-sources add up to more than 1 ({1 - rest})")
    weights = [w * rest for w in weights]
    for src, f, label in extra:
        sources.append(src)
        weights.append(f)
        labels.append(label)
    return lenskit.get("source", "mixture")(sources=sources, weights=weights), labels


def test_source():
    aegis = lenskit.get("source", "great3")(SHARED / "aegis_f606w_f814w" / "AEGIS_F814w_catalog.fits")
    cosmos, _ = real_sources("test")
    return lenskit.get("source", "mixture")(sources=[aegis, cosmos], weights=[0.8, 0.2])


def instrument(name, test=False):
    if name == "hst_wfc3":
        return lenskit.get("instrument", "hst_wfc3")(test=test)
    if name == "lsst_gri":
        return lenskit.get("instrument", "lsst")(bands=("g", "r", "i"))
    if name == "euclid_vis":
        return lenskit.get("instrument", "euclid_vis")()
    raise ValueError(f"unknown estimator {name!r}")


SURVEY = {"lsst_gri": "lsst", "euclid_vis": "euclid", "hst_wfc3": "hst"}  # estimator name -> preset survey


def new_head(est, head):
    """
    The estimator ``est`` with another lenskit_net head: its convolutions, input stage and target scaling kept,
    the dense layers whose shapes change initialised at random.  Returns (estimator, names of fresh tensors).
    """
    out = CNNEstimator(est.architecture, in_shape=est.in_shape, targets=est.targets, uncertainty=est.uncertainty,
                       spin=est.spec.spin, arch_kwargs={**est.arch_kwargs, "head": head}, expects=est.expects,
                       conditions=est.conditions)
    out.condition_mean, out.condition_std, out.condition_range = est.condition_mean, est.condition_std, \
        est.condition_range
    out.spec = est.spec
    out.training = dict(est.training)
    old, new = est.network.state_dict(), out.network.state_dict()
    fresh = [k for k, v in new.items() if k not in old or old[k].shape != v.shape]
    out.network.load_state_dict({k: (v if k in fresh else old[k]) for k, v in new.items()})
    return out, fresh


def with_conditions(est, names):
    """
    The estimator ``est`` reading the per-image conditions ``names`` too (``lenskit_net``): its weights kept, the
    dense layer's new inputs starting at zero, so that it answers as before until training teaches it to use them.
    """
    out = CNNEstimator(est.architecture, in_shape=est.in_shape, targets=est.targets, uncertainty=est.uncertainty,
                       spin=est.spec.spin, arch_kwargs={k: v for k, v in est.arch_kwargs.items() if k != "n_conditions"},
                       expects=est.expects, conditions=names)
    out.spec = est.spec
    out.training = dict(est.training)
    old, new = est.network.state_dict(), out.network.state_dict()
    state = {}
    for k, v in new.items():
        if old[k].shape == v.shape:
            state[k] = old[k]
        else:  # the first dense layer: its old columns, then zeros for the conditions
            w = torch.zeros_like(v)
            w[:, :old[k].shape[1]] = old[k]
            state[k] = w
    out.network.load_state_dict(state)
    return out


def recipe(argv, source, labels):
    """
    The command line (without the machine's --checkpoint / --out paths) and training-source mixture of a
    training run, for the weights' training record.
    """
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--checkpoint", "--out"):
            skip = True
        elif not a.startswith(("--checkpoint=", "--out=")):
            kept.append(a)
    return {"command": " ".join(["python", "benchmarks/train_estimators.py", *kept]),
            "training_sources": [{"source": n, "weight": round(float(w), 6)}
                                 for n, w in zip(labels, source.weights)]}


def light_kind(lens_light):
    """Whether images have the lens light: True; False and "subtracted" (removed, its shot noise kept) have not."""
    return lens_light is True


def pearson_convention(estimate, params):
    """
    The other rows of Pearson et al.'s Table 1: RMS of e1, e2 in their convention, (1-q^2)/(1+q^2) (truths and
    estimates both converted), of the ellipticity 1 - b/a and of the orientation (radians, the difference wrapped
    to +-pi/2).
    """
    from lenskit.core.conventions import ellipticity_to_q_phi, lenskit_to_pearson_ellipticity

    true = np.asarray(params["e1"]), np.asarray(params["e2"])
    est = np.asarray(estimate.table["e1"]), np.asarray(estimate.table["e2"])
    t, e = lenskit_to_pearson_ellipticity(*true), lenskit_to_pearson_ellipticity(*est)
    out = {k: float(np.sqrt(np.mean((e[i] - t[i]) ** 2))) for i, k in enumerate(("e1_rms", "e2_rms"))}
    (qt, pt), (qe, pe) = ellipticity_to_q_phi(*true), ellipticity_to_q_phi(*est)
    dphi = (pe - pt + np.pi / 2) % np.pi - np.pi / 2
    out["ellipticity_1_minus_q_rms"] = float(np.sqrt(np.mean((qe - qt) ** 2)))
    out["orientation_rms_rad"] = float(np.sqrt(np.mean(dphi**2)))
    return out


def theta_E_rms_by_arc_snr(estimate, params, edges=(0, 20, 50, 100, np.inf)):
    """theta_E RMS (arcsec) and counts in bins of arc S/N (Lanusse et al. eq. 10), where the tails come from."""
    snr = np.asarray(params["arc_snr"])
    d = np.asarray(estimate.table["theta_E"]) - np.asarray(params["theta_E"])
    out = {}
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (snr >= lo) & (snr < hi)
        if m.any():
            out[f"{lo}-{hi}"] = {"n": int(m.sum()), "rms": float(np.sqrt(np.mean(d[m] ** 2)))}
    return out


def load_bank(folder, targets, fraction, seed):
    """The shards of ``benchmarks/deblended_bank.py`` in ``folder`` as a `BankMix` of the estimator's targets."""
    images, masks, ys = [], [], []
    for path in shard_paths(folder):
        z = np.load(path)
        names = [str(n) for n in z["names"]]
        missing = [t for t in targets if t not in names]
        if missing:
            raise ValueError(f"--bank: {path} has no {missing} (it holds {names})")
        if len(z["targets"]):
            images.append(z["images"])
            masks.append(z["masks"])
            ys.append(z["targets"][:, [names.index(t) for t in targets]])
    if not ys:
        raise ValueError(f"--bank: the shards in {folder} hold no lenses")
    return BankMix(np.concatenate(images), np.concatenate(ys), targets, masks=np.concatenate(masks),
                   fraction=fraction, seed=seed)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("name", choices=["hst_wfc3", "lsst_gri", "euclid_vis"])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads of the training process (default 2 with --workers 0, else 1)")
    ap.add_argument("--test-size", type=int, default=2000)
    ap.add_argument("--checkpoint", default=None, help="resume from (and keep writing) this checkpoint")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=2017,
                    help="seed of the training simulations (default 2017, every shipped recipe's): a round "
                    "continued with another seed trains on other lenses than the rounds before it (the validation "
                    "and test sets do not change)")
    ap.add_argument("--out", default=None)
    start = ap.add_mutually_exclusive_group()
    start.add_argument("--init", default=None, metavar="WEIGHTS",
                       help="start from these weights (fresh optimiser and schedule) instead of random initialisation")
    start.add_argument("--evaluate", default=None, metavar="WEIGHTS",
                       help="skip training: re-measure these weights and write the metrics back (or to --out)")
    ap.add_argument("--stretch", choices=["linear", "asinh"], default=None,
                    help="input normalisation of lenskit_net (default asinh: noise units, arcsinh stretch; with "
                         "--init, the weights' own)")
    ap.add_argument("--head", choices=["flatten", "pooled"], default=None,
                    help="how lenskit_net's last feature map reaches its dense layers (default flatten; with --init, "
                         "the weights' own, or a new head on the --init weights' convolutions)")
    ap.add_argument("--no-lens-light", nargs="?", const="absent", choices=["absent", "subtracted"], default=None,
                    help="LSST / Euclid: train and test on images without the lens galaxy's light (Pearson et al.'s "
                         "other column); writes <name>_no_lens_light.asdf.  'subtracted': train on images whose "
                         "true lens light was subtracted, leaving its shot noise (as Pearson et al. made theirs); "
                         "the test sets are the same either way")
    ap.add_argument("--pearson-sources", type=float, default=0.0, metavar="FRACTION",
                    help="this fraction of the training sources are Pearson et al.'s Sérsic galaxies (n ~ N(4, 1)), "
                         "the rest the usual mixture; default 0 (1: their sources only, as they trained)")
    ap.add_argument("--hudf-sources", type=float, default=0.0, metavar="FRACTION",
                    help="this fraction of the training sources are XDF galaxies (the 'hudf' source, train split: "
                         "about 330 real galaxies), the rest the usual mixture; default 0")
    ap.add_argument("--robust", action="store_true",
                    help="train on presets.robust (per-image Moffat PSFs, wide lens-light population with discs, "
                         "twists and colour gradients, line-of-sight galaxies, power-law lenses with external shear; "
                         "LSST / Euclid: centring errors; HST: arcs after an imperfect lens-light subtraction) instead "
                         "of the defaults; the test sets are the same")
    ap.add_argument("--robust-without", default=None, metavar="NAMES",
                    help="with --robust: comma-separated ingredients left at the survey's defaults, for ablations: "
                         "psf, lens_light, centring, mass (presets.robust(without=...)) and line_of_sight (no "
                         "neighbours)")
    ap.add_argument("--robust-psf-fwhm", default=None, metavar="LO,HI",
                    help="with --robust: the robust PSFs' FWHM range in arcsec instead of presets.robust_instrument's "
                         "wide one (presets.robust(psf_fwhm=...)), e.g. 0.6,0.8: PSFs of every shape near LSST's "
                         "median seeing, for a network that is not told the seeing")
    ap.add_argument("--robust-fraction", type=float, default=1.0, metavar="FRACTION",
                    help="with --robust: this share of every training batch comes from presets.robust, the rest "
                         "from the default simulator (lenskit.simulation.mixture.SimulatorMixture), so that the "
                         "network keeps its accuracy on the population it knew; default 1")
    ap.add_argument("--line-of-sight", type=float, default=0.0, metavar="FRACTION",
                    help="this fraction of the training systems carry unlensed line-of-sight galaxies "
                         "(Simulator(line_of_sight=True): neighbours anywhere in the stamp), the rest none; "
                         "default 0 (with --robust every system has them)")
    ap.add_argument("--power-law", type=float, default=0.0, metavar="FRACTION",
                    help="this fraction of the training lenses are elliptical power laws in an external shear "
                         "(mass_model=['epl', 'external_shear'] with their default priors: slopes N(2, 0.1), shear "
                         "0-0.1), regressed as their SIE-equivalent theta_E, e1, e2, x0, y0; the rest SIEs; default "
                         "0 (with --robust every lens is one)")
    ap.add_argument("--residual-lens-light", type=float, default=0.0, metavar="FRACTION",
                    help="estimators of arcs without lens light (hst_wfc3, --no-lens-light): this fraction of the "
                         "training systems have a lens galaxy whose observed light was removed by an imperfect model "
                         "(lens_light='residual': its shot noise and a fit's residuals left in the arcs, as on "
                         "real data after lenskit's deblenders), the rest none; default 0")
    ap.add_argument("--colour-scatter", type=float, default=None, metavar="MAG",
                    help="the training systems' colours scatter by this many magnitudes per band about the "
                         "instrument's typical lens and source colours (priors={'colour_scatter': MAG}; the default "
                         "simulator's 0.1 is narrower than real lenses at z 0.2-0.7, and a network trained on it "
                         "reads the lens by its colour); with --robust, the default simulator's share only "
                         "(presets.robust has 0.25); the test sets keep 0.1",
                    )
    ap.add_argument("--tta", default="8", help="also measure with test-time augmentation over these numbers of grid "
                                              "symmetries (comma-separated from 2, 4, 8; 'none' to skip)")
    ap.add_argument("--shift-pairs", type=int, default=None, metavar="PIXELS",
                    help="pair every training image with a copy moved by up to this many pixels and ask the two "
                         "estimates of the Einstein radius and ellipticity to agree (lenskit.estimators.training."
                         "ShiftPairs); half of --batch-size are originals, half their copies")
    ap.add_argument("--shift-weight", type=float, default=1.0, help="weight of that agreement term (default 1)")
    ap.add_argument("--symmetry-pairs", action="store_true",
                    help="rotate or mirror every paired copy as well (one of the eight symmetries of the pixel grid, "
                         "its targets transformed exactly), and ask the Einstein radii to agree: a single pass that "
                         "agrees with predict(tta=8); with or without --shift-pairs")
    ap.add_argument("--conditions", default=None, metavar="NAMES",
                    help="comma-separated columns of the systems' table the network reads beside the image (e.g. "
                         "psf_fwhm: the seeing, which a real analysis knows); with --init, added to those weights "
                         "(new inputs starting at zero)")
    ap.add_argument("--bfloat16", action="store_true",
                    help="train under bfloat16 autocast (weights, optimiser and loss float32): about 1.4x the training "
                         "images per second on CPUs with AVX-512 BF16 or AMX; in float32 (saying so) on others, where it is slower")
    ap.add_argument("--bank", default=None, metavar="DIR",
                    help="replace --bank-fraction of every batch by lenses drawn from the shards of "
                         "benchmarks/deblended_bank.py in DIR (arcs that went through model_lens's Sérsic "
                         "deblender; rotated and mirrored at random: lenskit.estimators.training.BankMix)")
    ap.add_argument("--bank-fraction", type=float, default=0.25, metavar="FRACTION",
                    help="fraction of every batch drawn from --bank (default 0.25)")
    ap.add_argument("--first-stride", type=int, choices=[1, 2], default=None,
                    help="stride of lenskit_net's first convolution (default: 1 for stamps under 96 pixels, else 2)")
    args = ap.parse_args(argv)
    try:
        ttas = [] if args.tta == "none" else [int(v) for v in args.tta.split(",")]
    except ValueError:
        ap.error(f"--tta must be comma-separated integers from 2, 4, 8 or 'none'; got {args.tta!r}")
    if any(n not in (2, 4, 8) for n in ttas):
        ap.error(f"--tta values must be 2, 4 or 8; got {args.tta!r}")
    if args.bank:  # refused now, not after the simulations
        try:
            shard_paths(args.bank)
        except (FileNotFoundError, ValueError) as exc:
            ap.error(f"--bank: {exc}")
        if not 0 < args.bank_fraction < 1:
            ap.error(f"--bank-fraction must be in (0, 1); got {args.bank_fraction}")
    if args.no_lens_light and args.name == "hst_wfc3":
        ap.error("--no-lens-light: the HST estimator is already trained without lens light (as Hezaveh et al.)")
    if not 0.0 <= args.hudf_sources <= 1.0 or args.pearson_sources + args.hudf_sources > 1.0:
        ap.error(f"--hudf-sources must be a fraction in [0, 1] (with --pearson-sources at most 1 in all); got "
                 f"{args.hudf_sources}")
    if not 0.0 < args.robust_fraction <= 1.0:
        ap.error(f"--robust-fraction must be a fraction in (0, 1]; got {args.robust_fraction}")
    if args.robust_fraction < 1.0 and not args.robust:
        ap.error("--robust-fraction needs --robust")
    without = [] if args.robust_without is None else [w.strip() for w in args.robust_without.split(",") if w.strip()]
    if without and not args.robust:
        ap.error("--robust-without needs --robust")
    unknown = sorted(set(without) - {*presets.ROBUST_INGREDIENTS, "line_of_sight"})
    if unknown:
        ap.error(f"--robust-without: unknown ingredient(s) {unknown}; choose from "
                 f"{sorted({*presets.ROBUST_INGREDIENTS, 'line_of_sight'})}")
    if not 0.0 <= args.line_of_sight <= 1.0:
        ap.error(f"--line-of-sight must be a fraction in [0, 1]; got {args.line_of_sight}")
    psf_fwhm = None
    if args.robust_psf_fwhm is not None:
        if not args.robust:
            ap.error("--robust-psf-fwhm needs --robust")
        if "psf" in without:
            ap.error("--robust-psf-fwhm: --robust-without leaves the robust PSFs out")
        try:
            psf_fwhm = tuple(float(v) for v in args.robust_psf_fwhm.split(","))
        except ValueError:
            psf_fwhm = ()
        if len(psf_fwhm) != 2 or not 0 < psf_fwhm[0] <= psf_fwhm[1] < float("inf"):
            ap.error(f"--robust-psf-fwhm: expected LO,HI in arcsec with 0 < LO <= HI (e.g. 0.6,0.8); got "
                     f"{args.robust_psf_fwhm!r}")
    if args.line_of_sight and args.robust:
        ap.error("--line-of-sight: --robust already puts line-of-sight galaxies in every system")
    if not 0.0 <= args.power_law <= 1.0:
        ap.error(f"--power-law must be a fraction in [0, 1]; got {args.power_law}")
    if args.colour_scatter is not None and not 0.0 <= args.colour_scatter <= 1.0:
        ap.error(f"--colour-scatter must be in [0, 1] mag; got {args.colour_scatter}")
    if args.power_law and (args.robust or args.line_of_sight):
        ap.error("--power-law mixes power-law lenses into the default simulator: not with --robust (whose lenses "
                 "are power laws already) or --line-of-sight")
    if not 0.0 <= args.residual_lens_light <= 1.0:
        ap.error(f"--residual-lens-light must be a fraction in [0, 1]; got {args.residual_lens_light}")
    if args.residual_lens_light and (args.robust or (args.name != "hst_wfc3" and not args.no_lens_light)):
        ap.error("--residual-lens-light mixes arcs left by an imperfect lens-light removal into the default "
                 "simulator of an estimator without lens light (hst_wfc3 or --no-lens-light): not with --robust "
                 "(whose HST arcs are such residuals already) or an estimator that reads the lens light")
    if not 0.0 <= args.pearson_sources <= 1.0:
        ap.error(f"--pearson-sources must be a fraction in [0, 1]; got {args.pearson_sources}")
    conditions = [c for c in (args.conditions or "").split(",") if c]
    light = {"lens_light": False} if args.no_lens_light else {}
    train_light = {"lens_light": "subtracted"} if args.no_lens_light == "subtracted" else light
    label = f"{args.name}_no_lens_light" if args.no_lens_light else args.name
    torch.set_num_threads(args.threads or (2 if args.workers == 0 else 1))
    inst = instrument(args.name)
    shape = (len(inst.bands),) + inst.shape
    if args.evaluate:  # re-measure saved weights (written back to --out, default the same file)
        est = CNNEstimator.load(args.evaluate)
        test_light = lenskit.Simulator(source="sersic", instrument=instrument(args.name, test=True),
                                       **light).lens_light  # what the test images will have
        if args.out is None and light_kind(est.expects.get("lens_light", True)) != light_kind(test_light):
            ap.error("--evaluate: these weights were trained with lens_light="
                     f"{est.expects.get('lens_light', True)}; measuring them on other images needs --out, so that "
                     "their own metrics are not overwritten")
        train_seconds = est.metrics.get("train_seconds")
    else:
        if args.init:  # fine-tune saved weights with a fresh optimiser and schedule; checked before simulating
            est = CNNEstimator.load(args.init)
            have = {"stretch": est.arch_kwargs.get("stretch", "linear"),
                    "first_stride": est.arch_kwargs.get("first_stride", 2)}
            for key, asked in (("stretch", args.stretch), ("first_stride", args.first_stride)):
                if asked is not None and asked != have[key]:
                    ap.error(f"--{key.replace('_', '-')} {asked}: the --init weights were trained with "
                             f"{key}={have[key]!r}, which fine-tuning cannot change")
            before = {"file": Path(args.init).name, "completed_steps": est.training.get("completed_steps"),
                      "train_seconds": est.metrics.get("train_seconds"),
                      "initialised_from": est.training.get("initialised_from")}
            if args.head and args.head != est.arch_kwargs.get("head", "flatten"):
                est, fresh = new_head(est, args.head)
                before["new_head"] = {"head": args.head, "initialised_at_random": fresh}
            if conditions and tuple(conditions) != est.conditions:
                if est.conditions:
                    ap.error(f"--conditions: the --init weights already read {list(est.conditions)}")
                est = with_conditions(est, conditions)
                before["new_conditions"] = list(conditions)
        src, labels = training_source(args.pearson_sources, args.hudf_sources)
        for s in src.sources:  # prepare real stamps once, before worker processes fork
            getattr(s, "stamps", None)
        colour = {} if args.colour_scatter is None else {"priors": {"colour_scatter": args.colour_scatter}}
        seed = args.seed  # the training stream's; validation and test sets keep their own seeds
        if args.robust:
            sim = presets.robust(SURVEY[args.name], source=src, seed=seed, line_of_sight="line_of_sight" not in without,
                                 without=[w for w in without if w != "line_of_sight"], psf_fwhm=psf_fwhm,
                                 **train_light)
            if args.robust_fraction < 1.0:
                plain = lenskit.Simulator(source=src, instrument=inst, seed=seed + 1, **colour, **train_light)
                sim = SimulatorMixture([sim, plain], [args.robust_fraction, 1.0 - args.robust_fraction], seed=seed)
        else:
            sim = lenskit.Simulator(source=src, instrument=inst, seed=seed, **colour, **train_light)
            if args.line_of_sight:
                los = lenskit.Simulator(source=src, instrument=inst, seed=seed + 2, line_of_sight=True, **colour,
                                       **train_light)
                sim = SimulatorMixture([los, sim], [args.line_of_sight, 1.0 - args.line_of_sight], seed=seed) \
                    if args.line_of_sight < 1.0 else los
            if args.power_law:
                pl = lenskit.Simulator(mass_model=["epl", "external_shear"], source=src, instrument=inst, seed=seed + 3,
                                       **colour, **train_light)
                sim = SimulatorMixture([pl, sim], [args.power_law, 1.0 - args.power_law], seed=seed) \
                    if args.power_law < 1.0 else pl
            if args.residual_lens_light:
                res = lenskit.Simulator(source=src, instrument=inst, seed=seed + 4, lens_light="residual", **colour)
                # the plain simulator first: the mixture's lens_light (the weights' expects) is its
                sim = SimulatorMixture([sim, res], [1.0 - args.residual_lens_light, args.residual_lens_light],
                                       seed=seed) if args.residual_lens_light < 1.0 else res
        val = lenskit.Simulator(source=test_source(), instrument=instrument(args.name, test=True), seed=7,
                                split=None, **light).sample(256)
        steps = args.steps or 10**6  # time-limited: the schedule anneals by wall time
        first_stride = args.first_stride or (1 if max(inst.shape) < 96 else 2)
        if args.init:
            est.expects["lens_light"] = sim.lens_light
        else:
            est = CNNEstimator("lenskit_net", in_shape=shape, conditions=conditions,
                               arch_kwargs={"stretch": args.stretch or "asinh", "first_stride": first_stride,
                                            **({"head": args.head} if args.head else {})},
                               expects={"instrument": inst.name, "bands": list(inst.bands),
                                        "pixel_scale": inst.pixel_scale.value, "shape": list(shape),
                                        "lens_light": sim.lens_light})
        ck = args.checkpoint or f"/tmp/lenskit_{label}.ckpt.asdf"
        t0 = time.time()
        options = {} if args.shift_pairs is None and not args.symmetry_pairs else {
            "shift_pairs": args.shift_pairs, "shift_weight": args.shift_weight, "symmetry_pairs": args.symmetry_pairs}
        if args.bank:
            options["bank"] = load_bank(args.bank, est.targets, args.bank_fraction, seed)
            print(json.dumps({"bank": args.bank, "systems": len(options["bank"])}), flush=True)
        bf16 = args.bfloat16 and native_bfloat16()
        if args.bfloat16 and not bf16:
            print(json.dumps({"bfloat16": "this CPU has no native bfloat16: training in float32"}), flush=True)
        paired = "shift_pairs" in options  # originals and their copies share the batch
        est.fit(sim, steps=steps, batch_size=args.batch_size // (2 if paired else 1), lr=args.lr, validation=val,
                checkpoint=ck, **options, bfloat16=bf16,
                checkpoint_every=200, workers=args.workers, progress=False, time_limit=args.minutes * 60,
                log=lambda r: print(json.dumps({k: v for k, v in r.items() if k != "validation"} |
                                               {"val_rms": {t: round(m["rms"], 4) for t, m in
                                                            r.get("validation", {}).items()}}), flush=True))
        train_seconds = time.time() - t0
        est.training["recipe"] = recipe(argv, src, labels)
        if args.init:
            est.training["initialised_from"] = before
            train_seconds += before["train_seconds"] or 0.0
    tsim = lenskit.Simulator(source=test_source(), instrument=instrument(args.name, test=True), seed=99, **light)
    test = tsim.sample(args.test_size)
    t1 = time.time()
    estimate = est.predict(test, batch_size=128)
    infer = len(test) / (time.time() - t1)
    metrics = summary(estimate, test.params)
    by_snr = theta_E_rms_by_arc_snr(estimate, test.params)
    protocol = {}
    pearson = args.name in ("lsst_gri", "euclid_vis")  # (SURVEY also names HST, for --robust)
    if pearson:  # also on Pearson et al.'s test distribution
        pt = lenskit.Simulator(source=test_source(), instrument=instrument(args.name, test=True), seed=98,
                               priors=presets.pearson2019_priors(SURVEY[args.name], inst.pixel_scale),
                               **light).sample(args.test_size)
        pe = est.predict(pt, batch_size=128)
        lit = presets.pearson2019_test_set(SURVEY[args.name], args.test_size, tsim.lens_light)
        pl = est.predict(lit, batch_size=128)
        convention = {"test": pearson_convention(estimate, test.params),
                      "test_pearson2019": pearson_convention(pe, pt.params),
                      "test_pearson2019_literal": pearson_convention(pl, lit.params)}
        protocol = {"test_pearson2019": summary(pe, pt.params), "test_pearson2019_literal": summary(pl, lit.params),
                    "pearson_ellipticity_convention": convention}
    for n in ttas:  # the same test sets, averaged over n symmetries of the pixel grid
        t2 = time.time()
        et = est.predict(test, batch_size=128, tta=n)
        entry = {"test": summary(et, test.params), "inference_per_second_cpu": len(test) / (time.time() - t2)}
        if pearson:
            pe_t = est.predict(pt, batch_size=128, tta=n)
            entry["test_pearson2019"] = summary(pe_t, pt.params)
            pl_t = est.predict(lit, batch_size=128, tta=n)
            entry["test_pearson2019_literal"] = summary(pl_t, lit.params)
            entry["pearson_ellipticity_convention"] = {
                "test": pearson_convention(et, test.params), "test_pearson2019": pearson_convention(pe_t, pt.params),
                "test_pearson2019_literal": pearson_convention(pl_t, lit.params)}
        protocol[f"tta{n}"] = entry
    # re-measuring the same weights keeps their cross-simulator figures (benchmarks/cross_simulator.py --store);
    # new weights drop those of the weights they started from
    kept = {"cross_simulator": est.metrics["cross_simulator"]} if args.evaluate and "cross_simulator" in est.metrics \
        else {}
    est.metrics = {**kept, "test": metrics, "test_set": {"n": len(test), "sources": "AEGIS F814W (all) + COSMOS test split",
                                                 "masks": "test (< 2% of arc flux)" if args.name == "hst_wfc3"
                                                 else "none", "lens_light": tsim.lens_light,
                                                 **({"noise": "Gaussian, white in half of the images and coloured "
                                                              "by the COSMOS ACS F814W correlation function in "
                                                              "the other half"} if args.name == "hst_wfc3"
                                                    else {})},
                   **protocol, "inference_per_second_cpu": infer, "train_seconds": train_seconds,
                   "cpu_threads": torch.get_num_threads()}
    out = Path(args.out) if args.out else Path(args.evaluate) if args.evaluate else WEIGHTS / f"{label}.asdf"
    est.save(out, dtype=np.float16)
    # check float16 costs no accuracy
    back = CNNEstimator.load(out)
    m16 = summary(back.predict(test, batch_size=128), test.params)
    print(json.dumps({"estimator": label, "test": metrics, "float16_test": m16, **protocol,
                      "test_theta_E_rms_by_arc_snr": by_snr, "inference_per_second": infer,
                      "steps": est.training.get("completed_steps"), "train_seconds": train_seconds,
                      "weights_bytes": out.stat().st_size}, indent=1), flush=True)


if __name__ == "__main__":
    main()
