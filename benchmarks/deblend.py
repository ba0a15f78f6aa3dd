"""
How well the deblenders remove the lens light, and what that is worth to the estimator.

Simulates HST WFC3 lenses in F475X and F600LP (the filters of Hezaveh et al.
2017) with lens light, a Gaussian PSF and CCD noise (photometric, 192 x 192
at 0.04"), with background galaxies never used in training (AEGIS and the
COSMOS test split).  For each system it runs

* ``ica`` on both bands (PSF-matched), and
* ``sersic`` on F600LP (with the noise map and the band's PSF, as
  ``model_lens`` tells it a cutout's; ``--sersic-no-psf``: without a PSF, so
  that the Sérsic model is not blurred and no profile correction is made),

and measures, in F600LP and over the pixels the deblender did not mask:

* ``corr``: the correlation of the recovered arcs with the true arcs;
* ``residual``: sum |recovered - true| / sum true over the arcs' footprint
  (true arcs above 10% of their peak; 0 is perfect, noise included);
* ``flux_ratio``: recovered / true arc flux.

Then it estimates theta_E, e1, e2, x0, y0 with the shipped HST estimator
(trained without lens light) on four versions of the F600LP image: without
lens light (the image minus the true lens light: the same noise), deblended
by ICA, deblended by the Sérsic fit, and with the lens light left in.

Usage::

    python benchmarks/deblend.py --n 100 --threads 2

Prints JSON.
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

import lenskit
from lenskit.estimators.metrics import summary
from lenskit.instruments.effects import CCDNoise, GaussianPSF
from lenskit.instruments.hst import HSTWFC3

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LENSKIT_SHARED", ROOT.parent / "shared")) / "data" / "sources"


def instrument():
    inst = HSTWFC3(bands=("F475X", "F600LP"), effects=[
        GaussianPSF(fwhm={"F475X": 0.07, "F600LP": 0.08}),
        CCDNoise(exposure_time=1200.0, n_exposures=2, sky_brightness=HSTWFC3.SKY, zero_points=HSTWFC3.ZERO_POINTS,
                 read_noise=3.1, dark_current=0.002, gain=1.5)])
    inst.photometric = True
    return inst


def source():
    if (SHARED / "aegis_f606w_f814w").exists():
        aegis = lenskit.get("source", "great3")(SHARED / "aegis_f606w_f814w" / "AEGIS_F814w_catalog.fits")
        cosmos = lenskit.get("source", "great3")(SHARED / "cosmos_f814w" / "real_galaxy_catalog_23.5.fits",
                                                 split="test")
        return lenskit.get("source", "mixture")(sources=[aegis, cosmos, "sersic_clump"], weights=[0.4, 0.3, 0.3])
    return lenskit.get("source", "sersic_clump")()


def arc_metrics(rec, true, excluded):
    """Correlation, residual within the arcs' footprint and flux ratio, over the kept pixels."""
    use = ~excluded
    r, t = rec[use].astype(float), true[use].astype(float)
    rc, tc = r - r.mean(), t - t.mean()
    corr = float((rc * tc).sum() / np.sqrt((rc ** 2).sum() * (tc ** 2).sum()))
    foot = t > 0.1 * t.max()
    return corr, float(np.abs(r - t)[foot].sum() / t[foot].sum()), float(r.sum() / t.sum())


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--sersic-no-psf", action="store_true", help="the Sérsic fit without the PSF")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sim = lenskit.Simulator(instrument=instrument(), source=source(), lens_light=True, seed=args.seed,
                            priors={"theta_E": (0.5, 2.0), "lens_mag": (18.5, 20.5), "source_mag": (21.0, 23.5),
                                    "light_R_e": (0.3, 1.2), "light_n": (2.5, 5.5)})
    ds = sim.sample(args.n, keep_truth=True)
    b = 1  # F600LP
    true = ds.truth["arcs"][:, b]
    out = {"n": len(ds), "threads": torch.get_num_threads(), "instrument": "HST WFC3 F475X + F600LP, 192x192",
           "sersic_psf": not args.sersic_no_psf}
    t0 = time.perf_counter()
    # the bands' PSFs differ (0.07" and 0.08"): match them first, as a user would
    ica = lenskit.get("deblender", "ica")(psf_match=True).separate(ds, psfs=[0.07, 0.08])
    t_ica = (time.perf_counter() - t0) / len(ds)
    t0 = time.perf_counter()
    yy, xx = np.indices((15, 15)) - 7.0
    sigma = 0.08 / 2.3548 / 0.04  # F600LP's Gaussian PSF, in pixels
    kern = None if args.sersic_no_psf else np.exp(-0.5 * (xx ** 2 + yy ** 2) / sigma ** 2)
    ser = lenskit.get("deblender", "sersic")().separate(ds.images[:, b:b + 1], pixel_scale=0.04,
                                                       noise=ds.noise[:, b:b + 1],
                                                       psf=None if kern is None else kern / kern.sum())
    t_ser = (time.perf_counter() - t0) / len(ds)
    for name, res, sec in (("ica", ica, t_ica), ("sersic", ser, t_ser)):
        band = res.arcs[:, b] if res.arcs.shape[1] > 1 else res.arcs[:, 0]
        # compare where the deblender gives an estimate (ICA masks the lens centre)
        excl = res.masks if name == "ica" else np.zeros_like(res.masks)
        m = np.array([arc_metrics(band[i], true[i], excl[i]) for i in range(len(ds))])
        bright = np.asarray(ds.params["arc_snr"]) >= np.median(ds.params["arc_snr"])
        out[name] = {"seconds_per_image": sec, "corr_median": float(np.median(m[:, 0])),
                     "corr_p16_p84": np.percentile(m[:, 0], [16, 84]).tolist(),
                     "corr_median_brighter_half": float(np.median(m[bright, 0])),
                     "fraction_corr_above_0.8": float(np.mean(m[:, 0] > 0.8)),
                     "residual_median": float(np.median(m[:, 1])), "flux_ratio_median": float(np.median(m[:, 2]))}
    est = lenskit.load_estimator("hst_wfc3")
    versions = {
        "no_lens_light": ds.images[:, b] - ds.truth["lens_light"][:, b],
        "ica": ica.arcs[:, b],
        "sersic": ser.arcs[:, 0],
        "with_lens_light": ds.images[:, b],
    }
    masks = {"ica": ica.masks}
    out["estimator"] = {}
    for name, img in versions.items():
        e = est.predict(img[:, None].astype(np.float32), masks=masks.get(name), batch_size=32)
        s = summary(e, ds.params)
        out["estimator"][name] = {t: {"rms": round(v["rms"], 4), "err68": round(v["err68"], 4)} for t, v in s.items()}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
