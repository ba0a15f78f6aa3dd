"""
How an estimator's Einstein radius depends on the PSF it is shown (LSST g, r, i or HST).

LSST: renders the same lenses (Pearson et al. 2019 priors and selection, LSST g, r, i at 0.2") under several
PSFs -- Gaussians of FWHM 0.6-0.9" and a Moffat of 0.74" with beta 3.5, about lenstronomy's LSST seeing -- and
prints each estimator's theta_E bias and RMS per PSF as JSON.  A network trained on one PSF reads a broader PSF as
broader arcs; one trained on many PSFs should not depend on it.

HST (estimators of ``hst_wfc3``): the Hezaveh et al. test recipe (``HSTWFC3(test=True)``, clumpy sources of
the test split) under a Gaussian of FWHM 0.09", Moffats of the same FWHM with beta 2.5 and 1.5 (the wings of a
space PSF), and, where the development data are beside the checkout, the TinyTim ACS F814W PSF that the SLACS
cutouts are analysed with: whether the wings of a real PSF, which the recipe's Gaussians lack, move the answer.
Then the recipe's own PSFs on the network's 0.04" grid and on ACS's 0.05" pixels resampled onto it as a real
cutout is (`lenskit.io.fits.Cutout.resample`): whether the resampler does.

Usage::

    python benchmarks/psf_dependence.py lsst_gri_no_lens_light lsst_gri_no_lens_light_robust --n 400 --threads 2
    python benchmarks/psf_dependence.py hst_wfc3 --n 500 --threads 2
"""

import argparse
import json

import numpy as np
import torch

import lenskit
from lenskit.estimators.pretrained import load_estimator
from lenskit.instruments.effects import GaussianPSF, ImagePSF, MoffatPSF
from lenskit.simulation import presets

PSFS = {"gaussian_0.6": lambda: GaussianPSF(fwhm=0.6), "gaussian_0.7": lambda: GaussianPSF(fwhm=0.7),
        "gaussian_0.8": lambda: GaussianPSF(fwhm=0.8), "gaussian_0.9": lambda: GaussianPSF(fwhm=0.9),
        "moffat_0.74_beta_3.5": lambda: MoffatPSF(fwhm=0.74, beta=3.5)}
HST_PSFS = {"gaussian_0.09": lambda: GaussianPSF(fwhm=0.09),
            "moffat_0.09_beta_2.5": lambda: MoffatPSF(fwhm=0.09, beta=2.5),
            "moffat_0.09_beta_1.5": lambda: MoffatPSF(fwhm=0.09, beta=1.5)}


def hst_psfs():
    """The HST PSFs, with the TinyTim ACS F814W PSF of the development data when it is there."""
    from devdata import shared_data  # the development-data loader beside this script (not a benchmark)

    psfs = dict(HST_PSFS)
    data = shared_data()
    tiny = None if data is None else data / "real_lenses" / "slacs_acs_f814w" / "psf" / "tinytim_ACS.fits"
    if tiny is not None and tiny.exists():
        from astropy.io import fits

        kernel = fits.getdata(tiny).astype(float)
        psfs["tinytim_acs_f814w"] = lambda: ImagePSF(kernel, pixel_scale=0.0495)
    return psfs


def _errors(est, images, true):
    """theta_E bias (with its standard error), RMS and 68% error of ``est`` on ``images`` against ``true``."""
    d = est.predict(images, batch_size=64).table["theta_E"].value - true
    return {"bias": float(d.mean()), "bias_se": float(d.std() / np.sqrt(len(d))),
            "rms": float(np.sqrt(np.mean(d ** 2))), "err68": float(np.percentile(np.abs(d), 68))}


def hst(ests, args):
    from lenskit.instruments.hst import HSTWFC3

    out = {"n": args.n, "source": args.source, "seed": args.seed, "cpu_threads": torch.get_num_threads(),
           "recipe": "hezaveh2017 test (HSTWFC3(test=True)), test split", "theta_E": {}}
    for label, psf in hst_psfs().items():
        effects = HSTWFC3(test=True).effects
        inst = HSTWFC3(test=True, effects=[psf(), *effects[1:]])
        ds = lenskit.Simulator(source=args.source, instrument=inst, seed=args.seed, split="test").sample(args.n)
        true = ds.params["theta_E"].value
        out["theta_E"][label] = {name: _errors(est, ds.images, true) for name, est in ests.items()}
    # the recipe's own PSFs, on the network's grid and on ACS's 0.05" pixels resampled onto it as real cutouts are
    # (`Cutout.resample`, flux-conserving, about the stamp's middle): does the resampler move the answer?
    from lenskit.io.fits import Cutout

    for label, ps, npix in (("recipe_0.04", 0.04, 192), ("recipe_acs_0.05_resampled", 0.05, 154)):
        inst = HSTWFC3(test=True, pixel_scale=ps, shape=(npix, npix))
        ds = lenskit.Simulator(source=args.source, instrument=inst, seed=args.seed, split="test").sample(args.n)
        true = ds.params["theta_E"].value
        images = ds.images
        if ps != 0.04:
            c = (npix - 1) / 2
            images = np.stack([Cutout(np.asarray(im[0], float), ps).resample(0.04, (192, 192), centre=(c, c),
                                                                               outside="noise").image
                               for im in ds.images])[:, None].astype(np.float32)
        out["theta_E"][label] = {name: _errors(est, images, true) for name, est in ests.items()}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("estimators", nargs="+",
                    help="shipped LSST g, r, i estimators' names or weight files, or HST ones (all of one kind)")
    ap.add_argument("--n", type=int, default=400, help="lenses per PSF (the same lenses under every PSF)")
    ap.add_argument("--source", default="sersic_clump", help="source plugin (default sersic_clump)")
    ap.add_argument("--seed", type=int, default=98)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.n < 10:
        ap.error(f"--n must be at least 10; got {args.n}")
    torch.set_num_threads(args.threads)
    ests = {name: load_estimator(name) for name in args.estimators}
    kinds = {est.expects.get("instrument") for est in ests.values()}
    if kinds == {"hst_wfc3"}:
        print(json.dumps(hst(ests, args), indent=1))
        return
    for name, est in ests.items():
        if est.expects.get("instrument") != "lsst" or tuple(est.expects.get("bands", ())) != ("g", "r", "i"):
            ap.error(f"{name} is not an LSST g, r, i or an HST estimator (expects {est.expects}); give "
                     f"estimators of one kind")
    make = lenskit.get("instrument", "lsst")
    base = make(bands=("g", "r", "i"))
    priors = presets.pearson2019_priors("lsst", base.pixel_scale)
    out = {"n": args.n, "source": args.source, "seed": args.seed, "cpu_threads": torch.get_num_threads(),
           "theta_E": {}}
    for label, psf in PSFS.items():
        inst = make(bands=("g", "r", "i"), effects=[psf(), *base.effects[1:]])
        row = {}
        for light in sorted({e.expects.get("lens_light", True) for e in ests.values()}, key=str):
            sim = lenskit.Simulator(source=args.source, instrument=inst, seed=args.seed, priors=priors,
                                    lens_light=light)
            ds = sim.sample(args.n)  # the same lenses under every PSF: the seed fixes the draws
            true = ds.params["theta_E"].value
            for name, est in ests.items():
                if est.expects.get("lens_light", True) != light:  # each on images like its training's
                    continue
                d = est.predict(ds, batch_size=128).table["theta_E"].value - true
                row[name] = {"bias": float(d.mean()), "rms": float(np.sqrt(np.mean(d ** 2)))}
        out["theta_E"][label] = row
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
