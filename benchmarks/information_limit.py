"""
How well could *any* estimator measure the lens on Pearson et al.'s kind of test set?

On ``test_pearson2019_literal`` (Pearson et al. 2019's test distribution, their Sérsic sources, lens light
removed; see ``train_estimators.py``) every image is made by a model with a handful of parameters: the SIE
(theta_E, e1, e2, x0, y0), the source position, its Sérsic half-light radius, index and ellipticity, and its
flux in each band.  The Fisher information of an image about those parameters, given its noise map,
bounds how precisely they can be measured: an unbiased estimator's covariance is at least the inverse
Fisher matrix (the Cramér-Rao bound), with every nuisance parameter marginalised.  An estimator that
also knows the test set's distribution can shrink towards it; the script reports that too, adding the
information of a Gaussian with the test set's own spread of each parameter (an approximation: the
bound for the shrinking estimator is asymptotic).

The script re-renders each test system from its true parameters with the simulator that made it
(checked: the re-rendered arcs match the stored noise-free arcs), differentiates the noise-free
images numerically (central differences, float64), and prints, as JSON, the root-mean-square of the
bounds over the test set next to the RMS error of a shipped estimator on the same images, overall and in
bins of arc S/N and theta_E -- in Pearson et al.'s ellipticity convention, (1 - q^2) / (1 + q^2).

Usage::

    python benchmarks/information_limit.py lsst_gri --n 2000 --tta 8
    python benchmarks/information_limit.py euclid_vis --n 2000 --tta 8

The first 2,000 systems are the same as those of ``train_estimators.py``'s literal test set (same seed).
"""

import argparse
import json
import time

import numpy as np
import torch

import lenskit
from lenskit.core.conventions import lenskit_to_pearson_ellipticity
from lenskit.instruments.effects import Observation
from lenskit.simulation import presets
from lenskit.sources.sersic import SersicBatch

SURVEY = {"lsst_gri": "lsst", "euclid_vis": "euclid"}  # estimator name -> preset survey
LENS = ["theta_E", "e1", "e2", "x0", "y0"]
GEOMETRY = LENS + ["source_x", "source_y", "source_R_e", "source_n", "source_e1", "source_e2"]
# central-difference step: arcsec for positions, dimensionless for the rest, relative for the Sérsic radius
STEP = 1e-3


class Renderer:
    """Noise-free, PSF-convolved arcs of given parameters, with the simulator and instrument of a test set."""

    def __init__(self, name):
        self.sim = presets.pearson2019(SURVEY[name], lens_light=False, dtype=torch.float64)
        self.inst = self.sim.instrument
        self.psf = [e for e in self.inst.effects if e.name.endswith("psf")]
        if list(self.sim.mass_model.param_names) != LENS:
            raise RuntimeError(f"expected an SIE with parameters {LENS}; got {list(self.sim.mass_model.param_names)}")

    def __call__(self, values):
        """``values``: dict of arrays (n,) for GEOMETRY; returns (n, bands, H, W) arcs of unit source flux."""
        p = {k: values[k] for k in LENS}
        beta = np.stack([values["source_x"], values["source_y"]], 1)
        src = SersicBatch(values["source_R_e"], values["source_n"], values["source_e1"], values["source_e2"])
        n, nb = len(beta), len(self.inst.bands)
        arcs, _, _ = self.sim.render(p, beta, src, np.ones((n, nb)))
        obs = Observation(images=arcs, pixel_scale=self.inst.pixel_scale.value, bands=self.inst.bands, truth={})
        for effect in self.psf:  # a fixed PSF: no random draws
            obs = effect(obs, np.random.default_rng(0))
        return obs.images.double().numpy()


def fisher(render, truth, arcs, variance):
    """
    Fisher matrices (n, k, k) of the images about GEOMETRY + one flux per band, and the fluxes.

    ``arcs`` are the stored noise-free arcs, which fix the fluxes (the model is linear in them) and check the
    re-rendering; ``variance`` the images' noise variance.
    """
    base = render(truth)
    flux = arcs.sum((2, 3)) / base.sum((2, 3))
    model = flux[:, :, None, None] * base
    err = np.abs(model - arcs).max() / np.abs(arcs).max()
    if err > 1e-3:
        raise RuntimeError(f"re-rendered arcs differ from the stored ones by {err:.2g} of their peak")
    derivs = []
    for k in GEOMETRY:
        h = STEP * (truth[k] if k == "source_R_e" else np.ones_like(truth[k]))
        up, down = dict(truth), dict(truth)
        up[k], down[k] = truth[k] + h, truth[k] - h
        derivs.append(flux[:, :, None, None] * (render(up) - render(down)) / (2 * h[:, None, None, None]))
    nb = arcs.shape[1]
    for b in range(nb):  # d model / d flux_b: the unit-flux arcs in band b alone
        d = np.zeros_like(base)
        d[:, b] = base[:, b]
        derivs.append(d)
    D = np.stack(derivs, 1).reshape(len(base), len(derivs), -1)  # (n, k, pixels)
    w = 1.0 / variance.reshape(len(base), 1, -1)
    return np.einsum("nip,njp->nij", D * w, D), flux


def check_by_fitting(render, truth, flux, variance, C, repeats, rng):
    """
    Check the bound on one system: fit ``repeats`` noise realisations by maximum likelihood (least squares in
    noise units, started at the truth) and compare the fits' scatter with the bound ``C``'s standard deviations.
    """
    from scipy.optimize import least_squares

    sigma = np.sqrt(variance)
    start = np.array([truth[k] for k in GEOMETRY] + list(flux))
    ng = len(GEOMETRY)

    def model(x):
        arcs = render({k: np.array([x[i]]) for i, k in enumerate(GEOMETRY)})[0]
        return x[ng:, None, None] * arcs

    clean = model(start)
    fits, converged = [], 0
    for _ in range(repeats):
        data = clean + sigma * rng.standard_normal(clean.shape)
        res = least_squares(lambda x: ((model(x) - data) / sigma).ravel(), start, x_scale="jac", method="trf",
                            max_nfev=100)
        fits.append(res.x)
        converged += res.status > 0  # 0: stopped at max_nfev
    fits = np.array(fits)
    out = {"converged": f"{converged} of {repeats}", "ellipticity": "lenskit's convention, (1 - q) / (1 + q)"}
    for i, k in enumerate(LENS):
        out[k] = {"bound_std": float(np.sqrt(C[i, i])), "fit_std": float(fits[:, i].std(ddof=1))}
    return out


def pearson_jacobian(e1, e2, h=1e-6):
    """d(Pearson e1, e2) / d(lenskit e1, e2), (n, 2, 2), by central differences of the conversion."""
    J = np.zeros((len(e1), 2, 2))
    for j, (d1, d2) in enumerate(((h, 0.0), (0.0, h))):
        up = np.stack(lenskit_to_pearson_ellipticity(e1 + d1, e2 + d2), 1)
        down = np.stack(lenskit_to_pearson_ellipticity(e1 - d1, e2 - d2), 1)
        J[:, :, j] = (up - down) / (2 * h)
    return J


def bins(values, edges):
    return [(f"{lo:g}-{hi:g}", (values >= lo) & (values < hi)) for lo, hi in zip(edges[:-1], edges[1:])]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name", choices=["lsst_gri", "euclid_vis"])
    ap.add_argument("--n", type=int, default=2000, help="test systems (default 2000)")
    ap.add_argument("--weights", default=None,
                    help="estimator to compare (a name for lenskit.load_estimator or a weights file; default "
                         "<name>_no_lens_light)")
    ap.add_argument("--tta", type=int, choices=[1, 2, 4, 8], default=8, help="test-time augmentation of the "
                                                                             "estimator (default 8)")
    ap.add_argument("--chunk", type=int, default=100, help="systems per Fisher batch")
    ap.add_argument("--check", type=int, default=0, metavar="REPEATS",
                    help="also check the bound on three systems (the quartiles of arc S/N) by fitting REPEATS noise "
                         "realisations of each by maximum likelihood (default 0: no check)")
    args = ap.parse_args(argv)
    if args.n < 10:
        ap.error(f"--n must be at least 10; got {args.n}")
    if args.check < 0 or args.check == 1:
        ap.error(f"--check must be 0 (no check) or at least 2 repeats; got {args.check}")
    t0 = time.time()
    est = lenskit.load_estimator(args.weights or f"{args.name}_no_lens_light")
    ds = presets.pearson2019_test_set(SURVEY[args.name], args.n, lens_light=False)
    P = ds.params
    truth = {k: np.asarray(getattr(P[k], "value", P[k]), float) for k in GEOMETRY}
    variance = ds.noise.astype(float) ** 2
    render = Renderer(args.name)
    F, flux = [], []
    for s in range(0, len(P), args.chunk):
        sl = slice(s, s + args.chunk)
        Fi, fi = fisher(render, {k: v[sl] for k, v in truth.items()}, ds.truth["arcs"][sl].astype(float),
                        variance[sl])
        F.append(Fi)
        flux.append(fi)
    F, flux = np.concatenate(F), np.concatenate(flux)
    k = F.shape[1]
    # the test set's own spread of each geometric parameter, as Gaussian prior information (fluxes: none)
    prior = np.zeros(k)
    prior[:len(GEOMETRY)] = [1.0 / np.var(truth[g]) for g in GEOMETRY]
    cov = {"unbiased": np.linalg.inv(F), "with_test_prior": np.linalg.inv(F + np.diag(prior))}
    J = pearson_jacobian(truth["e1"], truth["e2"])
    # Pearson-convention e1, e2 covariance of each bound
    cov_e = {label: np.einsum("nij,njk,nlk->nil", J, C[:, 1:3, 1:3], J) for label, C in cov.items()}
    t_fisher = time.time() - t0

    estimate = est.predict(ds, batch_size=128, tta=args.tta)
    got = {p: np.asarray(estimate.table[p], float) for p in LENS}
    tp = np.stack(lenskit_to_pearson_ellipticity(truth["e1"], truth["e2"]), 1)
    ep = np.stack(lenskit_to_pearson_ellipticity(got["e1"], got["e2"]), 1)

    def figures(mask):
        out = {"n": int(mask.sum())}
        for label, C in cov.items():
            ce = cov_e[label]
            out[label] = {"theta_E_rms": float(np.sqrt(C[mask, 0, 0].mean())),
                          "x0_rms": float(np.sqrt(C[mask, 3, 3].mean())),
                          "e1_rms": float(np.sqrt(ce[mask, 0, 0].mean())),
                          "e2_rms": float(np.sqrt(ce[mask, 1, 1].mean()))}
        out["estimator"] = {"theta_E_rms": float(np.sqrt(np.mean((got["theta_E"] - truth["theta_E"])[mask] ** 2))),
                            "x0_rms": float(np.sqrt(np.mean((got["x0"] - truth["x0"])[mask] ** 2))),
                            "e1_rms": float(np.sqrt(np.mean((ep - tp)[mask, 0] ** 2))),
                            "e2_rms": float(np.sqrt(np.mean((ep - tp)[mask, 1] ** 2)))}
        return out

    everything = np.ones(len(P), bool)
    snr = np.asarray(P["arc_snr"], float)
    checks = {}
    if args.check:
        rng = np.random.default_rng(5)
        for qu in (25, 50, 75):
            i = int(np.argmin(np.abs(snr - np.percentile(snr, qu))))
            checks[f"arc_snr_{snr[i]:.0f}"] = check_by_fitting(render, {k: v[i] for k, v in truth.items()}, flux[i],
                                                               variance[i], cov["unbiased"][i], args.check, rng)
    theta = truth["theta_E"]
    report = {
        "test_set": f"test_pearson2019_literal, {args.name}, no lens light, {len(P)} systems",
        "estimator": {"weights": args.weights or f"{args.name}_no_lens_light", "tta": args.tta},
        "pearson2019_table1": {"lsst_gri": {"theta_E_rms": 0.046, "e1_rms": 0.058, "e2_rms": 0.058},
                               "euclid_vis": {"theta_E_rms": 0.051, "e1_rms": 0.081}}[args.name],
        "all": figures(everything),
        "by_arc_snr": {lab: figures(m) for lab, m in bins(snr, (20, 30, 50, 100, 400, np.inf)) if m.sum() >= 5},
        "by_theta_E": {lab: figures(m) for lab, m in bins(theta, (0.5, 0.8, 1.1, 1.4, 1.7, 2.5)) if m.sum() >= 5},
        "median_arc_snr": float(np.median(snr)),
        **({"check_by_fitting": checks} if checks else {}),
        "seconds": {"fisher": round(t_fisher, 1), "total": round(time.time() - t0, 1)},
        "cpu_threads": torch.get_num_threads(),
    }
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
