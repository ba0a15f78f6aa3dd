"""
Training images that went through lenskit's own lens-light removal: a bank of CNN inputs.

An estimator meant for arcs after lens-light removal should learn from arcs that went through the path real
data takes (issue #25), not only from the simulator's imitation of a fit's residuals
(``lens_light="residual"``).  This script simulates HST WFC3 lenses *with* their lens light -- the training
simulator of `lenskit.simulation.presets.robust` for ``"hst"`` (power-law mass with shear, clumpy sources,
the wide lens-light population, per-image Moffat PSFs, coloured noise, cosmic rays, line-of-sight galaxies),
without the training-only effects (normalisation, random circular masks) -- and runs each through
`lenskit.modelling.model_lens` with the CNN alone: the Sérsic deblender (told a round Moffat PSF of the
image's FWHM and wing index, 2.6" across: a real analysis's approximate PSF; so with its profile correction),
the artefact and neighbour masks, the
core mask, the resampling onto the network's stamp about the lens light's centre.  Lenses whose stamp the
path centres more than 0.2" from the lens galaxy (its light's peak taken on an arc or a neighbour), and those
whose arcs have an S/N below 10 (nothing to measure), are left out.  It records the exact
images and masks the network was given and the true SIE-equivalent parameters in that stamp's frame
(``x0``, ``y0`` measured from the stamp's centre), for `lenskit.estimators.training.train`'s ``bank``.

``--lens-light elliptical`` draws lens galaxies like the known lenses' instead (massive ellipticals: Sérsic
indices 3-6.5, radii 0.5-2", at most a fifth of the light in a disc, F814W 17.5-19.5).

Shards of ``--shard`` lenses are written as ``OUT/shard_SEED_K.npz`` (atomically, each on its own), so that
the script can be stopped at any time and continued later (``--n`` counts the lenses of every shard of this
seed already written); the Sérsic fit takes 1-5 s a lens on one thread.

``--evaluate W1,W2,...`` instead reads the shards of ``--seed`` already written and reports each estimator's
theta_E errors on them from the recorded inputs, also by the arcs' S/N (a held-out bank is a test set of the
real path: seconds instead of the hours its Sérsic fits took); ``--perfect`` also on the same lenses with
their true lens light subtracted instead of fitted, the stamp's centre and core mask as the path had them
(what the fit's residuals cost).

Usage::

    python benchmarks/deblended_bank.py OUT --n 2000 --seed 1 --threads 1
    python benchmarks/deblended_bank.py OUT --seed 3 --evaluate hst_wfc3,new.asdf [--perfect]

Prints a JSON summary (the shipped network's 68% theta_E error on the bank's lenses as it reads them).
"""

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import lenskit
from lenskit.estimators.inputs import network_inputs
from lenskit.estimators.regression import CNNEstimator
from lenskit.instruments.effects import CircularMasks, Normalize, moffat_kernels
from lenskit.io.fits import Cutout
from lenskit.modelling import model_lens
from lenskit.modelling.pipeline import CNN_CORE
from lenskit.simulation.presets import robust_instrument, robust_priors

TARGETS = ("theta_E", "e1", "e2", "x0", "y0")
#: Lenses whose arcs are fainter than this (`lenskit.simulation.assembly.arc_snr`, the simulator's ``arc_snr``)
#: are left out before the fit: nothing in them tells an Einstein radius, and no one models such a lens.
MIN_ARC_SNR = 10.0
#: Columns of the simulated systems kept beside each lens (for analyses of the bank).
KEEP = ("arc_snr", "lens_mag", "light_R_e", "light_n", "source_mag", "magnification", "psf_fwhm", "slope")
#: Arc S/N bins of `evaluate`.
SNR_BINS = ((10, 40), (40, 80), (80, 160), (160, np.inf))
#: Half-width in pixels of the PSF model the deblender is told (65 x 65 pixels, 2.6" at 0.04").
PSF_HALF = 32
#: The shards' format: 3 since the Sérsic fit adds its profile correction
#: (`lenskit.deblenders.sersic.profile_correction`); 2 since the HST effects' noise follows the arcs under the
#: lens light (`lenskit.instruments.effects.Observation.reference_peak`).  Shards without a version (1) were
#: made before, with noise scaled to the lens galaxy's core.  Training takes only the current version;
#: ``--evaluate`` also version 2 (the one-Sérsic path, a test set of its own).
BANK_VERSION = 3
#: Why a shard of an older version is not the current path.
_OLDER = {1: "made before the HST noise under the lens light followed the arcs",
          2: "made with one Sérsic profile, before the fit's profile correction"}
#: Arcsec between the centre the path takes (the lens light's peak) and the lens galaxy's beyond which a lens
#: is left out.
MAX_CENTRE_MISS = 0.2


class _Recorder:
    """An estimator that remembers the network inputs of its last ``predict`` and answers as the real one."""

    def __init__(self, real):
        self.real = real
        self.last = None

    def __getattr__(self, name):
        return getattr(self.real, name)

    def predict(self, dataset, **kw):
        self.last = network_inputs(dataset, None, self.real.in_shape, expects=self.real.expects)
        return self.real.predict(dataset, **kw)


#: ``--lens-light elliptical``: lens galaxies like the known lenses' (massive ellipticals: bright, centrally
#: concentrated, at most a faint disc) instead of the wide population's.
ELLIPTICAL = {"light_n": (3.0, 6.5), "light_R_e": (0.5, 2.0), "light_disc_fraction": (0.0, 0.2),
              "lens_mag": (17.5, 19.5)}


def simulator(seed, lens_light="wide"):
    """The HST robust training simulator with the lens light kept and no training-only effects."""
    inst = robust_instrument("hst")
    keep = [e for e in inst.effects if not isinstance(e, (Normalize, CircularMasks))]
    inst = type(inst)(effects=keep)
    priors = robust_priors("hst", inst.pixel_scale)
    if lens_light == "elliptical":
        priors.update(ELLIPTICAL)
    return lenskit.Simulator(mass_model=["epl", "external_shear"], source="sersic_clump", instrument=inst,
                             seed=seed, lens_light=True, priors=priors, line_of_sight=True)


def shard(est, seed, k, n, pixel_scale, lens_light="wide"):
    """``n`` lenses of shard ``k``: the network's inputs, masks, true targets and its answers."""
    sim = simulator(np.random.SeedSequence([seed, k]), lens_light)
    ds = sim.sample(n)
    p = ds.params
    h, w = ds.images.shape[-2:]
    rec = _Recorder(est)
    images, masks, truth, answer, kept = [], [], [], [], []
    for i in range(n):
        if float(p["arc_snr"][i]) < MIN_ARC_SNR:
            continue
        fwhm_pix = float(p["psf_fwhm"][i].to_value("arcsec")) / pixel_scale
        # a PSF model of PSF_HALF pixels about its centre, as an analysis has (the Moffat's full extent
        # for beta 1.5 is ~500 pixels, whose convolutions took half of each fit)
        kern = moffat_kernels([fwhm_pix], [float(p["psf_beta"][i])], half=PSF_HALF)[0].numpy()
        cut = Cutout(ds.images[i, 0], pixel_scale, noise=ds.noise[i, 0], psf=kern)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res = model_lens(cut, rec, refine=False)
            except Exception as exc:  # a lens the path refuses (e.g. all masked) is not a training image
                print(f"shard {k} lens {i}: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
                continue
        x, m = rec.last
        cx, cy = (float(v) for v in res.centre)
        # the lens light's true centre: a stamp centred elsewhere (a brighter arc or neighbour taken for the
        # lens galaxy, as the light centre of a faint, extended lens can be) is a failure a user sees in the
        # model's figure, not a training image
        lx = (w - 1) / 2 + float((p["x0"][i] + p["light_dx"][i]).to_value("arcsec")) / pixel_scale
        ly = (h - 1) / 2 + float((p["y0"][i] + p["light_dy"][i]).to_value("arcsec")) / pixel_scale
        if np.hypot(cx - lx, cy - ly) * pixel_scale > MAX_CENTRE_MISS:
            print(f"shard {k} lens {i}: skipped (light centre {np.hypot(cx - lx, cy - ly) * pixel_scale:.2f}\" "
                  f"from the lens galaxy's)", file=sys.stderr)
            continue
        # the truths in the stamp's frame: the stamp is centred on (cx, cy) of the simulated image
        t = [float(p["theta_E"][i].to_value("arcsec")), float(p["e1"][i]), float(p["e2"][i]),
             float(p["x0"][i].to_value("arcsec")) - (cx - (w - 1) / 2) * pixel_scale,
             float(p["y0"][i].to_value("arcsec")) - (cy - (h - 1) / 2) * pixel_scale]
        images.append(x[0])
        masks.append(np.zeros(x.shape[1:], bool) if m is None else m[0])
        truth.append(t)
        answer.append([float(getattr(res[f"cnn_{c}"], "value", res[f"cnn_{c}"])) for c in TARGETS])
        kept.append([float(getattr(p[c][i], "value", p[c][i])) for c in KEEP])
    return {"columns": np.asarray(kept, np.float64).reshape(-1, len(KEEP)), "column_names": np.asarray(KEEP),
            "images": np.asarray(images, np.float32).reshape((-1,) + tuple(est.in_shape)),
            "masks": np.asarray(masks, bool).reshape((-1,) + tuple(est.in_shape)),
            "targets": np.asarray(truth, np.float64).reshape(-1, len(TARGETS)),
            "answers": np.asarray(answer, np.float64).reshape(-1, len(TARGETS)),
            "names": np.asarray(TARGETS), "lens_light": np.asarray(lens_light), "version": np.asarray(BANK_VERSION)}


def _metrics(d):
    return {"theta_E_err68": float(np.percentile(np.abs(d), 68)), "theta_E_bias": float(d.mean()),
            "theta_E_rms": float(np.sqrt(np.mean(d ** 2)))}


def perfect_inputs(path, seed, k, shard_size, est, pixel_scale):
    """
    The lenses of one shard again, their true lens light subtracted instead of fitted and everything else as
    the path had it: the stamp about the centre the path took, the disc of ``CNN_CORE`` about it masked
    (`lenskit.modelling.model_lens` ``deblend=False``; the simulation is drawn again from its seed, the
    shard's lenses found by their Einstein radii).
    """
    z = np.load(path)
    population = str(z["lens_light"]) if "lens_light" in z else "wide"
    ds = simulator(np.random.SeedSequence([seed, k]), population).sample(shard_size)
    p = ds.params
    h, w = ds.images.shape[-2:]
    yy, xx = np.indices((h, w))
    drawn = np.asarray(p["theta_E"].to_value("arcsec"))
    light = np.asarray(ds.truth["lens_light"])
    rec = _Recorder(est)
    xs, ms = [], []
    for t in z["targets"]:
        i = int(np.flatnonzero(drawn == t[0])[0])
        # the centre the path took, from the truths in its stamp's frame
        cx = (w - 1) / 2 + (float(p["x0"][i].to_value("arcsec")) - t[3]) / pixel_scale
        cy = (h - 1) / 2 + (float(p["y0"][i].to_value("arcsec")) - t[4]) / pixel_scale
        core = np.hypot(xx - cx, yy - cy) * pixel_scale < CNN_CORE
        cut = Cutout(np.where(core, np.nan, ds.images[i, 0] - light[i, 0]), pixel_scale, noise=ds.noise[i, 0],
                     mask=core)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model_lens(cut, rec, refine=False, deblend=False, centre=(cx, cy))
        x, m = rec.last
        xs.append(x[0])
        ms.append(np.zeros(x.shape[1:], bool) if m is None else m[0])
    return np.asarray(xs, np.float32), np.asarray(ms, bool)


def shard_versions(paths):
    """The format version of each shard (1 where none is recorded)."""
    out = []
    for p in paths:
        with np.load(p) as z:
            out.append(int(z["version"]) if "version" in z else 1)
    return out


def shard_paths(out, seed="*", versions=(BANK_VERSION,)):
    """
    The finished shards of ``seed`` (default every seed) in ``out``, in the order they were written; a shard
    of a version not in ``versions`` (default the current `BANK_VERSION`), or a folder mixing versions, is
    refused (ValueError naming it and why).
    """
    paths = [p for p in Path(out).glob(f"shard_{seed}_*.npz") if not p.name.endswith(".tmp.npz")]
    if not paths:
        raise FileNotFoundError(f"no shard_{seed}_*.npz in {out} (benchmarks/deblended_bank.py writes them)")
    found = shard_versions(paths)
    for p, version in zip(paths, found):
        if version not in versions:
            why = _OLDER.get(version, "of another format")
            raise ValueError(f"{p} is a bank shard of version {version}, {why} (this script makes version "
                             f"{BANK_VERSION}); make the bank again")
    if len(set(found)) > 1:
        raise ValueError(f"{out} mixes bank shards of versions {sorted(set(found))}; keep each in its own folder")
    return sorted(paths, key=lambda p: tuple(int(v) for v in p.stem.split("_")[1:3]))


def evaluate(out, seed, names, tta=1, perfect=False, shard_size=32):
    """
    Each estimator's theta_E errors on the shards of ``seed`` in ``out``, from their recorded inputs (and,
    with ``perfect``, on the same lenses with their true lens light subtracted, `perfect_inputs`).
    """
    paths = shard_paths(out, seed, versions=(2, BANK_VERSION))
    z = [np.load(p) for p in paths]
    x = np.concatenate([a["images"] for a in z])
    m = np.concatenate([a["masks"] for a in z])
    truth = np.concatenate([a["targets"][:, 0] for a in z])
    snr = np.concatenate([a["columns"][:, list(a["column_names"]).index("arc_snr")] for a in z])
    version = shard_versions(paths[:1])[0]  # one version in the folder: shard_paths refuses a mix
    res = {"lenses": int(len(truth)), "seed": seed, "tta": tta, "bank_version": version,
           "deblender": "one Sérsic profile" if version == 2 else "Sérsic, profile corrected"}
    sets = {"deblended": (x, m)}
    ests = {name: lenskit.load_estimator(name) if not Path(name).exists() else CNNEstimator.load(name)
            for name in names}
    if perfect:
        first = ests[names[0]]
        parts = [perfect_inputs(p, seed, int(p.stem.split("_")[2]), shard_size, first,
                                float(first.expects["pixel_scale"])) for p in paths]
        sets["perfect"] = (np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts]))
    for name, est in ests.items():
        res[name] = {}
        for label, (xi, mi) in sets.items():
            got = np.asarray(est.predict(xi, masks=mi, batch_size=64, tta=tta).table["theta_E"].to_value("arcsec"))
            d = got - truth
            res[name][label] = {**_metrics(d), "by_arc_snr": {
                f"{lo:g}-{hi:g}": {"n": int(s.sum()), **_metrics(d[s])}
                for lo, hi in SNR_BINS if (s := (snr >= lo) & (snr < hi)).any()}}
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="folder of the shards")
    ap.add_argument("--n", type=int, default=2000, help="lenses of this seed in the folder when done")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shard", type=int, default=32, help="lenses per shard file")
    ap.add_argument("--estimator", default="hst_wfc3")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lens-light", choices=["wide", "elliptical"], default="wide",
                    help="the lens galaxies: the wide population of presets.robust (default), or massive "
                         "ellipticals like the known lenses' (ELLIPTICAL); keep each in its own OUT")
    ap.add_argument("--evaluate", default=None, metavar="W1,W2",
                    help="comma-separated estimators (shipped names or weight files) to measure on the shards of "
                         "--seed instead of making any")
    ap.add_argument("--tta", type=int, default=1, choices=[1, 2, 4, 8], help="with --evaluate")
    ap.add_argument("--perfect", action="store_true",
                    help="with --evaluate: also on the same lenses with their true lens light subtracted (drawn "
                         "again from the seed; --shard must be the bank's)")
    args = ap.parse_args(argv)
    if args.n < 1 or args.shard < 1:
        ap.error("--n and --shard must be >= 1")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if args.evaluate or any(out.glob(f"shard_{args.seed}_*.npz")):  # shards of another version: refused now
        try:
            shard_paths(out, args.seed, versions=(2, BANK_VERSION) if args.evaluate else (BANK_VERSION,))
        except (FileNotFoundError, ValueError) as exc:
            ap.error(str(exc))
    if args.evaluate:
        res = evaluate(out, args.seed, args.evaluate.split(","), args.tta, args.perfect, args.shard)
        print(json.dumps({**res, "threads": torch.get_num_threads()}, indent=1))
        return
    out.mkdir(parents=True, exist_ok=True)
    est = lenskit.load_estimator(args.estimator)
    ps = float(est.expects["pixel_scale"])
    t0 = time.perf_counter()
    k, done = 0, 0
    while done < args.n:
        path = out / f"shard_{args.seed}_{k}.npz"
        if not path.exists():
            part = shard(est, args.seed, k, args.shard, ps, args.lens_light)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, **part)
            os.replace(tmp, path)
            print(f"{path.name}: {len(part['targets'])} lenses, {time.perf_counter() - t0:.0f} s", file=sys.stderr,
                  flush=True)
        done += len(np.load(path)["targets"])
        k += 1
    d = []
    for path in shard_paths(out, args.seed):
        z = np.load(path)
        d.append(z["answers"][:, 0] - z["targets"][:, 0])
    d = np.concatenate(d)
    print(json.dumps({"lenses": int(d.size), "seed": args.seed, "estimator": args.estimator, **_metrics(d),
                      "threads": torch.get_num_threads(), "seconds": time.perf_counter() - t0}, indent=1))


if __name__ == "__main__":
    main()
