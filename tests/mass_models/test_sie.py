"""The SIE against an independent code (lenstronomy maps) and analytic identities."""

import json

import astropy.units as u
import numpy as np
import pytest
import torch

import lenskit
from lenskit.core.interfaces import MassModel


@pytest.fixture(scope="module")
def sie():
    return lenskit.get("mass_model", "sie")()


def cases(ref):
    return json.loads((ref / "manifest.json").read_text())["cases"]


def params_of(case):
    return dict(theta_E=case["theta_E"], e1=case["e1"], e2=case["e2"], x0=case["center_x"], y0=case["center_y"])


def test_against_lenstronomy_reference(sie, sie_reference):
    gx = np.load(sie_reference / "grid_x.npy")
    gy = np.load(sie_reference / "grid_y.npy")
    for case in cases(sie_reference):
        p = params_of(case)
        alpha = np.load(sie_reference / f"sie_{case['name']}_alpha.npy")
        pot = np.load(sie_reference / f"sie_{case['name']}_potential.npy")
        ax, ay = sie.deflection(gx, gy, **p)
        assert np.abs(ax - alpha[0]).max() < 1e-6, case["name"]
        assert np.abs(ay - alpha[1]).max() < 1e-6, case["name"]
        assert np.abs(sie.potential(gx, gy, **p) - pot).max() < 1e-6, case["name"]
        kap = np.load(sie_reference / f"sie_{case['name']}_kappa.npy")
        mine = sie.convergence(gx, gy, **p)
        far = np.hypot(gx - p["x0"], gy - p["y0"]) > 0.2  # the reference kappa is a finite difference
        np.testing.assert_allclose(mine[far], kap[far], rtol=1e-3)


def test_in_place_deflection_equals_the_differentiable_one():
    from lenskit.mass_models.func.sie import deflection

    g = torch.Generator().manual_seed(2)
    x = torch.linspace(-2, 2, 41, dtype=torch.float64).reshape(1, 1, -1)
    y = torch.linspace(-1.5, 1.5, 31, dtype=torch.float64).reshape(1, -1, 1)
    theta = 0.5 + 2 * torch.rand(4, 1, 1, generator=g, dtype=torch.float64)
    e1, e2 = (0.6 * torch.rand(4, 1, 1, generator=g, dtype=torch.float64) - 0.3 for _ in range(2))
    x0, y0 = (0.4 * torch.rand(4, 1, 1, generator=g, dtype=torch.float64) - 0.2 for _ in range(2))
    fast = deflection(x, y, theta, e1, e2, x0, y0)  # no gradient wanted: in place
    slow = deflection(x, y, theta.clone().requires_grad_(True), e1, e2, x0, y0)
    for a, b in zip(fast, slow):
        assert a.shape == (4, 31, 41)
        torch.testing.assert_close(a, b.detach(), rtol=1e-12, atol=1e-14)


def test_kappa_matches_formula(sie):
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-3, 3, (2, 500))
    q, phi = 0.6, 0.4
    e1, e2 = lenskit.core.q_phi_to_ellipticity(q, phi)
    k = sie.convergence(x, y, theta_E=1.3, e1=e1, e2=e2, x0=0.1, y0=-0.2)
    xp = np.cos(phi) * (x - 0.1) + np.sin(phi) * (y + 0.2)
    yp = -np.sin(phi) * (x - 0.1) + np.cos(phi) * (y + 0.2)
    np.testing.assert_allclose(k, 1.3 / (2 * np.sqrt(q * xp**2 + yp**2 / q)), rtol=1e-12)


def test_divergence_of_alpha_is_two_kappa(sie):
    """Numerical divergence of the deflection equals 2 kappa (float64 central differences)."""
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-2.5, 2.5, (2, 300))
    p = dict(theta_E=1.1, e1=0.2, e2=-0.15, x0=0.05, y0=0.1)
    h = 1e-5
    div = ((sie.deflection(x + h, y, **p)[0] - sie.deflection(x - h, y, **p)[0])
           + (sie.deflection(x, y + h, **p)[1] - sie.deflection(x, y - h, **p)[1])) / (2 * h)
    np.testing.assert_allclose(div, 2 * sie.convergence(x, y, **p), rtol=1e-6)


def test_analytic_hessian_matches_autograd(sie):
    rng = np.random.default_rng(2)
    x = torch.as_tensor(rng.uniform(-2, 2, 400))
    y = torch.as_tensor(rng.uniform(-2, 2, 400))
    p = {k: torch.tensor(v, dtype=torch.float64) for k, v in
         dict(theta_E=0.9, e1=-0.3, e2=0.25, x0=0.2, y0=0.0).items()}
    analytic = sie._hessian(x, y, **p)
    numeric = MassModel._hessian(sie, x, y, **p)
    for a, b in zip(analytic, numeric):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("e", [0.0, 1e-12, 1e-6, 1e-3, 0.02])
def test_sis_limit(sie, e):
    """q -> 1 is continuous and tends to alpha = theta_E r_hat."""
    rng = np.random.default_rng(3)
    x, y = rng.uniform(-2, 2, (2, 200))
    ax, ay = sie.deflection(x, y, theta_E=1.5, e1=e, e2=0.0, x0=0.0, y0=0.0)
    r = np.hypot(x, y)
    tol = 3 * e + 1e-12
    np.testing.assert_allclose(ax, 1.5 * x / r, atol=tol * 1.5)
    np.testing.assert_allclose(ay, 1.5 * y / r, atol=tol * 1.5)
    assert np.all(np.isfinite(ax)) and np.all(np.isfinite(ay))


def test_no_nan_at_centre_and_finite_gradients(sie):
    for dtype in (torch.float32, torch.float64):
        x = torch.tensor([0.0, 0.3, 0.0], dtype=dtype, requires_grad=True)
        y = torch.tensor([0.0, 0.0, 1e-30], dtype=dtype, requires_grad=True)
        p = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in
             dict(theta_E=1.0, e1=0.1, e2=0.05, x0=0.0, y0=0.0).items()}
        ax, ay = sie._deflection(x, y, **p)
        k = sie._convergence(x, y, **p)
        pot = sie._potential(x, y, **p)
        hxx, hxy, hyy = sie._hessian(x, y, **p)
        total = (ax + ay + k + pot + hxx + hxy + hyy).sum()
        assert torch.isfinite(total)
        total.backward()
        for t in (x, y, *p.values()):
            assert torch.isfinite(t.grad).all()
        assert ax[0] == 0 and ay[0] == 0
    # exactly round, at the centre
    ax, ay = sie.deflection([0.0], [0.0], theta_E=1.0, e1=0.0, e2=0.0, x0=0.0, y0=0.0)
    assert np.isfinite(ax).all() and np.isfinite(ay).all()


def test_float32_close_to_float64(sie):
    rng = np.random.default_rng(4)
    x, y = rng.uniform(-3, 3, (2, 1000))
    p = dict(theta_E=1.2, e1=0.3, e2=0.1, x0=0.0, y0=0.0)
    a64 = sie.deflection(x, y, **p)
    a32 = sie.deflection(x.astype(np.float32), y.astype(np.float32), **p)
    assert a32[0].dtype == np.float32
    np.testing.assert_allclose(a32[0], a64[0], atol=2e-6)


def test_types_in_equal_types_out(sie):
    ax, _ = sie.deflection(torch.tensor([1.0]), torch.tensor([0.5]), theta_E=1.0, e1=0.0, e2=0.0, x0=0.0, y0=0.0)
    assert isinstance(ax, torch.Tensor)
    ax, _ = sie.deflection([1.0] * u.arcsec, [0.5 / 60] * u.arcmin, theta_E=60 * u.arcsec / 60, e1=0.0, e2=0.0,
                           x0=0.0 * u.arcsec, y0=0.0 * u.arcsec)
    assert ax.unit == u.arcsec
    assert ax[0].value == pytest.approx(1 / np.sqrt(1.25))


def test_batched_parameters(sie):
    x = np.linspace(-1, 1, 5)[None, :]
    theta = np.array([1.0, 2.0])[:, None]
    ax, ay = sie.deflection(x, 0 * x + 0.3, theta_E=theta, e1=0.1, e2=0.0, x0=0.0, y0=0.0)
    assert ax.shape == (2, 5)
    np.testing.assert_allclose(ax[1], 2 * ax[0])  # deflection scales with theta_E


@pytest.mark.parametrize("bad, match", [
    (dict(theta_E=0.0), "theta_E must be > 0"),
    (dict(theta_E=-1.0), "theta_E must be > 0"),
    (dict(e1=1.0), r"q in \(0, 1\]"),
    (dict(e1=np.nan), "must be finite"),
])
def test_bad_parameters(sie, bad, match):
    p = dict(theta_E=1.0, e1=0.0, e2=0.0, x0=0.0, y0=0.0)
    p.update(bad)
    with pytest.raises(ValueError, match=match):
        sie.deflection([0.5], [0.5], **p)


def test_bad_coordinates(sie):
    p = dict(theta_E=1.0, e1=0.0, e2=0.0, x0=0.0, y0=0.0)
    with pytest.raises(ValueError, match="x and y must broadcast"):
        sie.deflection(np.zeros(3), np.zeros(4), **p)
    with pytest.raises(ValueError, match="finite"):
        sie.deflection([np.nan], [0.0], **p)
    with pytest.raises(ValueError, match="missing parameter"):
        sie.deflection([1.0], [0.0], theta_E=1.0)
    with pytest.raises(u.UnitConversionError, match="theta_E"):
        sie.deflection([1.0], [0.0], theta_E=1 * u.kg, e1=0, e2=0, x0=0, y0=0)


def test_external_shear_and_composition():
    from lenskit.mass_models.composite import CompositeMassModel

    shear = lenskit.get("mass_model", "external_shear")()
    sie = lenskit.get("mass_model", "sie")()
    lens = CompositeMassModel([sie, shear])
    assert lens.param_names == ("theta_E", "e1", "e2", "x0", "y0", "gamma1", "gamma2")
    x, y = np.array([0.7, -1.2]), np.array([0.4, 0.9])
    p = dict(theta_E=1.0, e1=0.1, e2=0.0, x0=0.0, y0=0.0)
    ax, ay = lens.deflection(x, y, gamma1=0.05, gamma2=-0.02, **p)
    sx, sy = sie.deflection(x, y, **p)
    np.testing.assert_allclose(ax - sx, 0.05 * x - 0.02 * y)
    np.testing.assert_allclose(ay - sy, -0.02 * x - 0.05 * y)
    hxx, hxy, hyy = shear.hessian(x, y, gamma1=0.05, gamma2=-0.02)
    np.testing.assert_allclose([hxx, hxy, hyy], [[0.05] * 2, [-0.02] * 2, [-0.05] * 2])
    with pytest.raises(ValueError, match="shear modulus must be < 1"):
        shear.deflection(x, y, gamma1=1.0, gamma2=0.5)
    # two components with the same names get prefixes
    double = CompositeMassModel([sie, sie])
    assert double.param_names[:2] == ("0_theta_E", "0_e1")
