import astropy.units as u
import numpy as np
import pytest
import torch

import lenskit
from lenskit.core import LenskitFitWarning
from lenskit.fitting import fit, render_model
from lenskit.modelling.transforms import ParameterTransform

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
    assert r.at_bound == [] and r.no_error == []  # inside every range, at a minimum: no warning, every error finite


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


def test_fft_convolve_equals_direct_convolution():
    import torch.nn.functional as F

    from lenskit.fitting import fft_convolve

    rng = np.random.default_rng(0)
    img = torch.as_tensor(rng.normal(size=(2, 30, 37)))
    k = torch.as_tensor(rng.random((7, 7)))
    direct = F.conv2d(F.pad(img[:, None], (3, 3, 3, 3)), k.flip(-1, -2)[None, None])[:, 0]
    np.testing.assert_allclose(fft_convolve(img, k).numpy(), direct.numpy(), atol=1e-12)


def test_ring_radius_of_an_einstein_ring():
    from lenskit.fitting import ring_radius

    vals = {k: torch.tensor(v, dtype=torch.float64) for k, v in TRUTH.items()}
    vals.update(src_x=torch.tensor(0.0), src_y=torch.tensor(0.0), e1=torch.tensor(0.0), e2=torch.tensor(0.0),
                gamma1=torch.tensor(0.0), gamma2=torch.tensor(0.0), x0=torch.tensor(0.0), y0=torch.tensor(0.0),
                src_R_e=torch.tensor(0.05))
    src, _ = render_model(vals, (64, 64), 0.05, None, 2, True, False)
    img = src.numpy() / src.numpy().max()
    assert ring_radius(img, 0.01, 0.05) == pytest.approx(TRUTH["theta_E"], rel=0.05)
    assert np.isnan(ring_radius(np.zeros((32, 32)), 1.0, 0.05))


def test_outlier_mask_finds_cosmic_rays_not_psf_limited_stars():
    from lenskit.fitting import outlier_mask

    rng = np.random.default_rng(3)
    img = rng.normal(0, 1.0, (80, 80))
    yy, xx = np.indices(img.shape)
    for (x, y) in ((20, 20), (60, 30), (40, 65)):  # stars: Gaussian PSF of FWHM 2.5 px, peak 200 sigma
        img += 200 * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / (2.5 / 2.3548) ** 2)
    cr = np.zeros(img.shape, bool)
    cr[50, 10:18] = True  # a track
    cr[10, 70] = True  # a hot pixel
    cr[70, 50:52] = True
    img[cr] += 80.0
    m = outlier_mask(img, 1.0, grow=0)
    assert m[cr].mean() > 0.9
    stars = np.zeros(img.shape, bool)
    for (x, y) in ((20, 20), (60, 30), (40, 65)):
        stars |= np.hypot(xx - x, yy - y) < 3
    assert m[stars].sum() == 0
    assert m[~cr].mean() < 0.002


def test_neighbour_mask_flags_far_sources_not_arcs_or_noise():
    from lenskit.modelling.outliers import neighbour_mask

    rng = np.random.default_rng(4)
    n = 120
    yy, xx = np.indices((n, n))
    c = (59.5, 59.5)
    r = np.hypot(xx - c[0], yy - c[1])
    ring = 3.0 * np.exp(-0.5 * (r - 25) ** 2 / 2.0**2)  # arcs at 25 px, 3 sigma per pixel
    galaxy = 20.0 * np.exp(-0.5 * ((xx - 105) ** 2 + (yy - 100) ** 2) / 3.0**2)  # a neighbour 61 px away
    img = ring + galaxy + rng.normal(0, 1.0, (n, n))
    m = neighbour_mask(img, 1.0, c, radius=45)
    assert m[(np.hypot(xx - 105, yy - 100) < 6)].all()  # the neighbour, grown
    assert not m[r <= 45].any() and m.sum() < 400
    # pure noise, white and correlated (a drizzled image's): a few detections at most, the threshold measured
    from scipy import ndimage

    white = rng.normal(0, 1.0, (n, n))
    drizzled = ndimage.uniform_filter(rng.normal(0, 1.0, (n, n)), 2)  # correlated, its per-pixel noise unknown
    assert neighbour_mask(white, 1.0, c, radius=0).sum() < 60
    assert neighbour_mask(drizzled, 1.0, c, radius=0).sum() < 60
    # masked pixels are ignored; a constant background does not matter
    masked = np.zeros((n, n), bool)
    masked[90:, 90:] = True
    assert not neighbour_mask(img + 7.0, 1.0, c, radius=45, mask=masked)[(np.hypot(xx - 105, yy - 100) < 6)].any()
    np.testing.assert_array_equal(neighbour_mask(img + 7.0, 1.0, c, radius=45), m)
    with pytest.raises(ValueError, match="image must be 2-D"):
        neighbour_mask(img[None], 1.0, c, radius=45)
    with pytest.raises(ValueError, match="radius"):
        neighbour_mask(img, 1.0, c, radius=-1)


class _Identity:
    def jacobian(self, z):
        return torch.eye(len(z), dtype=z.dtype)


def test_laplace_errors_only_where_the_likelihood_curves_upwards():
    """A saddle and a flat direction: those parameters get NaN, the others the inverse curvature."""
    from lenskit.modelling.search import laplace_covariance

    z = torch.zeros(4, dtype=torch.float64)
    bowl = laplace_covariance(lambda t: (t**2 * torch.tensor([1.0, 2.0, 4.0, 0.5], dtype=t.dtype)).sum(), z,
                              _Identity())
    np.testing.assert_allclose(np.diag(bowl), [0.5, 0.25, 0.125, 1.0], rtol=1e-10)
    # z2 a saddle (the likelihood falls along it), z3 flat: no errors for them, exact ones for the rest
    saddle = laplace_covariance(lambda t: t[0] ** 2 + 2 * t[1] ** 2 - 3 * t[2] ** 2 + 0 * t[3], z, _Identity())
    d = np.diag(saddle)
    np.testing.assert_allclose(d[:2], [0.5, 0.25], rtol=1e-10)
    assert np.isnan(d[2:]).all() and np.isnan(saddle[2]).all() and np.isfinite(saddle[:2, :2]).all()
    # a degenerate pair (only their sum is measured): both unmeasured, the other exact
    pair = laplace_covariance(lambda t: (t[0] + t[1]) ** 2 + t[2] ** 2 + t[3] ** 2, z, _Identity())
    assert np.isnan(np.diag(pair)[:2]).all() and np.diag(pair)[2:] == pytest.approx([0.5, 0.5])
    assert laplace_covariance(lambda t: (t**2).sum() * float("nan"), z, _Identity()) is None


def test_fit_without_a_minimum_says_which_errors_are_missing(lens_image, monkeypatch):
    import importlib

    fitmod = importlib.import_module("lenskit.modelling.fit")  # the module (the package exports the function)
    real = fitmod.laplace_covariance

    def no_curvature_along_e1(nll, z, transform):  # as a search that stopped short along e1 leaves it
        cov = real(nll, z, transform)
        cov[1, :] = cov[:, 1] = np.nan
        return cov

    monkeypatch.setattr(fitmod, "laplace_covariance", no_curvature_along_e1)
    img, sigma = lens_image
    start = {"theta_E": 0.8, "e1": 0.08, "e2": -0.05, "x0": 0.03, "y0": -0.02}
    with pytest.warns(LenskitFitWarning, match=r"not at a minimum along e1 .*FitResult\.no_error"):
        r = fit(img, sigma, 0.05, psf=_psf(), init=start, n_starts=1, adam_steps=10, lbfgs_steps=3)
    assert r.names[1] == "e1" and r.no_error == ["e1"] and r.at_bound == []
    assert np.isnan(r["e1_std"]) and np.isfinite(r["e2_std"]) and np.isfinite(r["theta_E_std"].value)


def test_theta_E_bounds_are_respected(lens_image):
    img, sigma = lens_image
    r = fit(img, sigma, 0.05, psf=_psf(), init={"theta_E": 0.4}, lens_light=True, n_starts=3, search_steps=10,
            adam_steps=10, lbfgs_steps=3, laplace=False, theta_E_range=(0.2, 0.6))
    assert 0.2 < r["theta_E"].value < 0.6
    # the true 0.8" lies below the range: the fit ends at its lower end, and says that this is no measurement
    with pytest.warns(LenskitFitWarning, match=r"theta_E = 0\.85\d* at 0\.85, an end of its range"):
        r = fit(img, sigma, 0.05, psf=_psf(), init={"theta_E": 1.0}, lens_light=True, n_starts=3, search_steps=10,
                adam_steps=60, lbfgs_steps=20, theta_E_range=(0.85, 2.0))
    (name, v, end), = r.at_bound
    assert name == "theta_E" and end == 0.85 and v == pytest.approx(r["theta_E"].value)
    assert 0.85 <= v < 0.85 + 0.01 * 1.15 and np.isnan(r["theta_E_std"].value)
    with pytest.raises(ValueError, match="theta_E_range"):
        fit(img, sigma, 0.05, theta_E_range=(0.6, 0.2))
    with pytest.raises(ValueError, match="n_refine"):
        fit(img, sigma, 0.05, n_refine=0)


def test_at_bounds_finds_parameters_at_an_end_of_their_range():
    t = ParameterTransform(["theta_E", "e1", "src_R_e", "src_n", "x0"],
                           {"theta_E": (0.3, 2.0), "e1": (-0.8, 0.8), "src_R_e": (0.0, None), "src_n": (0.3, 8.0)})
    inside = {"theta_E": 1.0, "e1": 0.3, "src_R_e": 0.1, "src_n": 2.0, "x0": 5.0}
    assert t.at_bounds(t.free(inside)) == []
    z = t.free(inside)
    z[0], z[1], z[2], z[3] = -12.0, 9.0, -12.0, 12.0  # every bounded one pushed against an end
    got = {n: (v, b) for n, v, b in t.at_bounds(z)}
    assert set(got) == {"theta_E", "e1", "src_R_e", "src_n"}
    assert got["theta_E"][1] == 0.3 and got["e1"][1] == 0.8 and got["src_R_e"][1] == 0.0 and got["src_n"][1] == 8.0
    assert got["theta_E"][0] == pytest.approx(0.3, abs=1e-4)
    # within 1% of the width from an end is at it; 2% is not
    near = dict(inside, theta_E=0.3 + 0.005 * 1.7)
    assert [n for n, _, _ in t.at_bounds(t.free(near))] == ["theta_E"]
    assert t.at_bounds(t.free(dict(inside, theta_E=0.3 + 0.02 * 1.7))) == []
    assert [n for n, _, _ in t.at_bounds(t.free(dict(inside, e1=-0.797)))] == ["e1"]
