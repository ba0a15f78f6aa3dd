import astropy.units as u
import numpy as np
import pytest
import torch

import lenskit
from lenskit.fitting import fit, render_model

TRUTH = {"theta_E": 0.8, "e1": 0.08, "e2": -0.05, "x0": 0.03, "y0": -0.02, "gamma1": 0.02, "gamma2": 0.01,
         "src_R_e": 0.12, "src_n": 1.2, "src_e1": 0.1, "src_e2": 0.05, "src_x": 0.08, "src_y": 0.04,
         "light_R_e": 0.5, "light_n": 3.5, "light_e1": 0.05, "light_e2": -0.03}


def _psf():
    yy, xx = np.indices((11, 11)) - 5.0
    k = np.exp(-0.5 * (xx ** 2 + yy ** 2) / 1.2 ** 2)
    return k / k.sum()


@pytest.fixture(scope="module")
def lens_image():
    vals = {k: torch.tensor(v, dtype=torch.float64) for k, v in TRUTH.items()}
    src, lens = render_model(vals, (48, 48), 0.05, torch.as_tensor(_psf()), 2, True, True)
    clean = 5.0 * src.numpy() + 2.0 * lens.numpy()
    sigma = np.full(clean.shape, 0.02 * clean.max())
    img = clean + np.random.default_rng(1).normal(0, sigma)
    return img, sigma


def test_fit_recovers_truth_with_calibrated_errors(lens_image):
    img, sigma = lens_image
    start = {"theta_E": 0.65, "e1": 0.0, "e2": 0.0, "x0": 0.0, "y0": 0.0}  # a CNN-like rough start
    r = fit(img, sigma, 0.05, psf=_psf(), init=start, n_starts=2, adam_steps=120, lbfgs_steps=50)
    assert r.reduced_chi2 == pytest.approx(1.0, abs=0.1)
    pulls = []
    for k in ("theta_E", "e1", "e2", "x0", "y0", "gamma1", "gamma2"):
        val, std = r.params[k][0], r.params[f"{k}_std"][0]
        val, std = getattr(val, "value", val), getattr(std, "value", std)
        assert 0 < std < 0.05
        pulls.append((val - TRUTH[k]) / std)
    assert np.all(np.abs(pulls) < 4), pulls
    assert r.params["theta_E"].unit == u.arcsec
    assert r.residual.std() == pytest.approx(sigma[0, 0], rel=0.15)
    assert r.lens_light.shape == img.shape


def test_fit_options_and_errors(lens_image):
    img, sigma = lens_image
    r = fit(img, sigma, 0.05, shear=False, lens_light=False, n_starts=1, adam_steps=20, lbfgs_steps=5,
            laplace=False)
    assert "gamma1" not in r.params.colnames and r.lens_light is None
    with pytest.raises(ValueError, match="noise must be shaped"):
        fit(img, sigma[:10], 0.05)
    with pytest.raises(ValueError, match="pixel_scale"):
        fit(img, sigma, 0.0)
    with pytest.raises(ValueError, match="psf"):
        fit(img, sigma, 0.05, psf=np.ones((4, 4)))
    with pytest.raises(ValueError, match="every pixel"):
        fit(img, sigma, 0.05, mask=np.ones(img.shape, bool))
    assert lenskit.fit is fit
