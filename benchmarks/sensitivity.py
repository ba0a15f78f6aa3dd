"""
How much the CNN's Einstein radius moves under what a real analysis does differently from the training.

A network estimate should not depend on choices that carry no information
about the mass: where the cutout is centred, how it was resampled, how the
lens light was removed, which PSF the removal assumed.  This benchmark moves
one choice at a time through the one documented path for real cutouts,
`lenskit.modelling.model_lens` with ``refine=False`` (the CNN alone), and
reports |delta theta_E| against the same path with its defaults:

``recentre``
    The stamp's centre moved by 3 input pixels in each of eight directions
    (the largest move per lens is reported).
``resample_first``
    The cutout resampled onto the network's 0.04" grid *before* the Sérsic
    lens-light removal (with its noise map and PSF), instead of after it.
``psf_broader`` / ``psf_none``
    The lens light removed with the PSF convolved with a Gaussian of one
    pixel rms (a PSF mismatch), or with no PSF at all.

``noise_colour``
    Simulated HST lenses (the same systems) with white Gaussian noise only,
    and with all of it coloured by the COSMOS ACS blank-field spectrum
    (`lenskit.instruments.effects.noise_correlation`): the 68% theta_E
    error and bias of each (real drizzled images have correlated noise).

On the eight SLACS lenses with published SIE parameters
(`lenskit.datasets.slacs_lenses`) it also reports each estimate's difference
from Bolton et al. (2008).  On simulated HST lenses (``hezaveh2017`` test
set, lens-subtracted) it reports the re-centring sensitivity: per lens the
largest |delta theta_E| over shifts of 3 pixels (``--shift``) along x and
y, then the median and 90th percentile, and ``centre_follows_shift``, the
mean move of the estimated lens centre as a fraction of the move of the
lens (1: the centre follows the image).  ``--window W`` also reports it for the CNN
averaged over the (2W + 1)**2 one-pixel re-centrings around each centre
(whether averaging over small shifts makes the estimate depend less on
where the stamp is cut); ``--self-centre K`` also reports it after K steps that move each
stamp by 0.7 of the CNN's own lens-centre estimate (at most 0.25" from where it started), and how far
those stamps end from the true lens centres (whether the CNN can centre its own stamp).

Usage::

    python benchmarks/sensitivity.py --n-sim 200 --threads 2

Prints JSON with the CPU thread count.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

import lenskit
from lenskit.datasets import slacs_lenses
from lenskit.io.fits import Cutout
from lenskit.modelling import model_lens

sys.path.insert(0, str(Path(__file__).resolve().parent))
from devdata import shared_data  # noqa: E402  (the development-data folder, when beside the checkout)

SHIFT = 3.0  # pixels
DIRECTIONS = [(np.cos(a), np.sin(a)) for a in np.arange(8) * np.pi / 4]


def cnn_theta(cutout, est, deblend, psf, centre=None, tta=1, mask_outliers=True, mask_neighbours=True):
    r = model_lens(cutout, est, deblend=deblend, refine=False, psf=psf, centre=centre, tta=tta,
                   mask_outliers=mask_outliers, mask_neighbours=mask_neighbours)
    return float(getattr(r["cnn_theta_E"], "value", r["cnn_theta_E"])), r.centre


def broaden(psf, sigma_pix=1.0):
    k = ndimage.gaussian_filter(np.asarray(psf, float), sigma_pix, mode="constant")
    return k / k.sum()


def resampled_first(cutout, psf, pixel_scale, centre):
    """The whole cutout on the network's pixel scale, centred where the default path centres, with its PSF."""
    h, w = cutout.shape
    f = cutout.pixel_scale / pixel_scale
    shape = (int(h * f) // 2 * 2, int(w * f) // 2 * 2)
    out = cutout.resample(pixel_scale, shape, centre=centre)
    k = ndimage.zoom(np.asarray(psf, float), f, order=3) if psf is not None else None
    if k is not None:
        k = np.clip(k, 0, None)
        if k.shape[0] % 2 == 0:
            k = k[:-1, :-1]
        k = k / k.sum()
    # the resampled cutout's grid is centred on ``centre``: its lens-light centre is the middle
    return Cutout(out.image, pixel_scale, noise=out.noise, psf=k, mask=out.mask), k


def slacs_rows(est, tta=1, shift=SHIFT):
    rows = []
    for lens in slacs_lenses(directory=shared_data()):
        cut, deblend = lens["cutout"], not lens["lens_subtracted"]
        psf = lens["psf"] if lens["psf"] is not None else cut.psf
        t0 = time.perf_counter()
        r = model_lens(cut, est, deblend=deblend, refine=False, psf=psf, tta=tta)
        base, (cx, cy) = float(getattr(r["cnn_theta_E"], "value", r["cnn_theta_E"])), r.centre
        # the lens light is removed once; the same path (its arcs with any neighbours replaced, noise map and
        # artefact mask: r.arcs_cutout) then resamples the arcs about moved centres, so that only the centre changes
        arcs = r.arcs_cutout
        same = cnn_theta(arcs, est, False, psf, centre=(cx, cy), tta=tta, mask_outliers=False,
                         mask_neighbours=False)[0]
        if abs(same - base) > 1e-4:
            raise RuntimeError(f"{lens['name']}: the repeated CNN step gives {same}, not {base}")
        moved = [cnn_theta(arcs, est, False, psf, centre=(cx + shift * dx, cy + shift * dy), tta=tta,
                           mask_outliers=False, mask_neighbours=False)[0] for dx, dy in DIRECTIONS]
        row = {"lens": lens["name"], "published": lens["theta_E"], "cnn": base,
               "d_published": abs(base - lens["theta_E"]),
               "recentre_max": float(np.max(np.abs(np.array(moved) - base))),
               "recentre_median": float(np.median(np.abs(np.array(moved) - base)))}
        if deblend and psf is not None:
            row["psf_broader"] = abs(cnn_theta(cut, est, True, broaden(psf), centre=(cx, cy), tta=tta)[0] - base)
            row["psf_none"] = abs(cnn_theta(cut, est, True, None, centre=(cx, cy), tta=tta)[0] - base)
            first, k = resampled_first(cut, psf, est.expects["pixel_scale"], (cx, cy))
            mid = ((first.shape[1] - 1) / 2, (first.shape[0] - 1) / 2)
            row["resample_first"] = abs(cnn_theta(first, est, True, k, centre=mid, tta=tta)[0] - base)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def _predict_at(est, ds, centres, tta=1):
    """The CNN on each lens-subtracted stamp of ``ds`` resampled about its own centre (``centres``: (n, 2) pixels)."""
    ps = float(ds.pixel_scale.value)
    h, w = ds.images.shape[2:]
    noise = ds.noise if ds.noise is not None else np.ones_like(ds.images)
    imgs, masks = [], []
    for i, (cx, cy) in enumerate(centres):
        m = ds.masks[i, 0] if ds.masks is not None else np.zeros((h, w), bool)
        # the strip a shift moves beyond the stamp is filled with its background, as model_lens fills its field
        r = Cutout(ds.images[i, 0], ps, noise=noise[i, 0], mask=m).resample(ps, (h, w), centre=(cx, cy),
                                                                             outside="noise")
        imgs.append(r.image)
        masks.append(r.mask)
    arr = lenskit.LensDataset(np.asarray(imgs, np.float32)[:, None], ds.params, bands=ds.bands,
                              pixel_scale=ds.pixel_scale, instrument=ds.instrument,
                              masks=np.asarray(masks)[:, None], provenance=ds.provenance)
    table = est.predict(arr, batch_size=64, **({"tta": tta} if tta != 1 else {})).table
    return np.asarray(table["theta_E"]), np.asarray(table["x0"]), np.asarray(table["y0"])


def simulated(est, n, seed=31, tta=1, window=0, shift=SHIFT, self_centre=0):
    """
    Re-centring of lens-subtracted simulated HST lenses: per lens the largest move over ``shift``-pixel shifts; with
    ``window`` W, also for the estimate averaged over the (2W + 1)**2 one-pixel re-centrings about each centre;
    with ``self_centre`` K, also after K steps that move each stamp towards the CNN's own lens centre.
    """
    from lenskit.simulation import presets

    ds = presets.hezaveh2017(test=True, seed=seed).sample(n)
    ps = float(ds.pixel_scale.value)
    h, w = ds.images.shape[2:]
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    centres = [(0, 0), (shift, 0), (-shift, 0), (0, shift), (0, -shift)]
    near = [(dx, dy) for dx in range(-window, window + 1) for dy in range(-window, window + 1)]
    theta, centre_est = {}, {}
    for dx, dy in sorted({(cx + a, cy + b) for cx, cy in centres for a, b in near}):
        th, x0, y0 = _predict_at(est, ds, np.tile(c + (dx, dy), (n, 1)), tta)
        theta[(dx, dy)] = th
        if (dx, dy) in centres:
            centre_est[(dx, dy)] = (x0, y0)
    truth = np.asarray(ds.params["theta_E"])
    # re-centring the stamp by (dx, dy) pixels moves the lens by -(dx, dy) * ps: how much of that the centre follows
    follows = [float(np.mean(centre_est[(dx, dy)][0 if dx else 1] - centre_est[(0, 0)][0 if dx else 1])
                     / (-(dx or dy) * ps)) for dx, dy in centres[1:]]

    def moves(at):
        m = np.max(np.abs(np.stack(at[1:]) - at[0]), axis=0)
        return {"recentre_median": float(np.median(m)), "recentre_p90": float(np.percentile(m, 90)),
                "theta_E_err68_unshifted": float(np.percentile(np.abs(at[0] - truth), 68))}

    def measure(ring):
        return moves([np.mean([theta[(cx + a, cy + b)] for a, b in ring], axis=0) for cx, cy in centres])

    out = {"n": n, **measure([(0, 0)]), "centre_follows_shift": float(np.mean(follows))}
    if window:
        out[f"averaged_over_{len(near)}_shifts"] = measure(near)
    if self_centre:
        # each stamp moved by 0.7 of the CNN's lens centre per step, at most 0.25" (the training centring) from
        # where it started; then the same measure, and how far the stamps ended from the true lens centres
        at, ends = [], []
        for dx, dy in centres:
            start = np.tile(c + (dx, dy), (n, 1))
            cen = start.copy()
            for _ in range(self_centre):
                _, x0, y0 = _predict_at(est, ds, cen, tta)
                d = cen + 0.7 * np.stack([x0, y0], 1) / ps - start
                r = np.hypot(*d.T)
                cen = start + d * np.minimum(1.0, (0.25 / ps) / np.maximum(r, 1e-9))[:, None]
            at.append(_predict_at(est, ds, cen, tta)[0])
            ends.append(cen)
        true_c = c + np.stack([np.asarray(ds.params["x0"]), np.asarray(ds.params["y0"])], 1) / ps
        out[f"self_centred_{self_centre}_steps"] = {
            **moves(at), "end_from_true_centre_median_px": float(np.median(np.hypot(*(ends[0] - true_c).T))),
            "ends_spread_median_px": float(np.median(np.max([np.hypot(*(e - ends[0]).T) for e in ends[1:]], 0)))}
    return out


def noise_colour(est, n, seed=31, tta=1):
    """The 68% theta_E error and bias on the same simulated HST lenses with white and with coloured noise."""
    from lenskit.instruments.effects import GaussianNoise
    from lenskit.instruments.hst import HSTWFC3, hezaveh2017_effects

    out = {"n": n}
    for label, fraction in (("white", 0.0), ("coloured", 1.0)):
        effects = [GaussianNoise(rms=e.rms, correlation="cosmos_acs_f814w", coloured_fraction=fraction)
                   if isinstance(e, GaussianNoise) else e for e in hezaveh2017_effects(test=True)]
        ds = lenskit.Simulator(mass_model="sie", source="sersic_clump", instrument=HSTWFC3(test=True, effects=effects),
                               selection="hezaveh2017", seed=seed).sample(n)
        d = (np.asarray(est.predict(ds, batch_size=64, **({"tta": tta} if tta != 1 else {})).table["theta_E"])
             - np.asarray(ds.params["theta_E"]))
        out[label] = {"theta_E_err68": float(np.percentile(np.abs(d), 68)), "theta_E_bias": float(np.mean(d))}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--estimator", default="hst_wfc3")
    ap.add_argument("--n-sim", type=int, default=200, help="simulated lenses (0: SLACS only)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tta", type=int, choices=(1, 2, 4, 8), default=1,
                    help="test-time augmentation of the CNN step (model_lens(tta=...))")
    ap.add_argument("--window", type=int, default=0, metavar="W",
                    help="simulated lenses: also average the CNN over the (2W+1)**2 one-pixel re-centrings "
                         "about each centre (default 0: not)")
    ap.add_argument("--self-centre", type=int, default=0, metavar="K",
                    help="simulated lenses: also measure after K steps moving each stamp towards the CNN's own lens "
                         "centre (default 0: not)")
    ap.add_argument("--shift", type=float, default=SHIFT, help=f"re-centring in input pixels (default {SHIFT:g})")
    ap.add_argument("--no-slacs", action="store_true", help="skip the SLACS lenses (simulated lenses only)")
    args = ap.parse_args(argv)
    if not args.shift > 0:
        ap.error(f"--shift must be > 0 pixels; got {args.shift}")
    if args.self_centre < 0:
        ap.error(f"--self-centre must be >= 0; got {args.self_centre}")
    if args.window < 0:
        ap.error(f"--window must be >= 0; got {args.window}")
    torch.set_num_threads(args.threads)
    est = lenskit.load_estimator(args.estimator)
    out = {"estimator": args.estimator, "shift_pixels": args.shift, "tta": args.tta, "cpu_threads": torch.get_num_threads()}
    if args.no_slacs:
        out["slacs"] = "skipped (--no-slacs)"
    else:
        rows = slacs_rows(est, args.tta, args.shift)
        keys = ("d_published", "recentre_max", "psf_broader", "psf_none", "resample_first")
        out["slacs"] = {"lenses": rows, "median": {k: float(np.median([r[k] for r in rows if k in r]))
                                                   for k in keys},
                        "max": {k: float(np.max([r[k] for r in rows if k in r])) for k in keys}}
    if args.n_sim:
        out["simulated_hst"] = simulated(est, args.n_sim, tta=args.tta, window=args.window, shift=args.shift,
                                        self_centre=args.self_centre)
        out["simulated_hst"]["noise_colour"] = noise_colour(est, 2 * args.n_sim, tta=args.tta)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
