import astropy.units as u
import numpy as np
import pytest

import lenskit
from lenskit.lensing import caustics, critical_curves, image_positions, jacobian_determinant, magnification, ray_trace
from lenskit.mass_models.composite import CompositeMassModel


def area(c):
    x, y = c[:, 0], c[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


@pytest.fixture(scope="module")
def sie():
    return lenskit.get("mass_model", "sie")()


P = dict(theta_E=1.2, e1=0.15, e2=-0.05, x0=0.1, y0=-0.05)


def test_critical_curve_encloses_pi_theta_E_squared(sie):
    (cc,) = critical_curves(sie, n=2048, **P)
    assert cc.unit == u.arcsec
    assert area(cc.value) / (np.pi * 1.2**2) == pytest.approx(1, abs=1e-5)


def test_numeric_curve_matches_analytic(sie):
    lens = CompositeMassModel([sie, lenskit.get("mass_model", "external_shear")()])
    (num,) = critical_curves(lens, gamma1=0.0, gamma2=0.0, **P)
    assert area(num.value) / (np.pi * 1.2**2) == pytest.approx(1, abs=1e-3)
    det = jacobian_determinant(sie, num[:, 0].value, num[:, 1].value, **P)
    assert np.abs(det).max() < 1e-8


def test_magnification_far_away_tends_to_one(sie):
    r = np.array([50.0, 200.0, 1000.0])
    mu = magnification(sie, r, 0 * r, **P)
    assert np.all(np.diff(np.abs(mu - 1)) < 0)
    assert mu[-1] == pytest.approx(1, abs=3e-3)


def test_ray_trace_is_theta_minus_alpha(sie):
    x, y = np.array([1.0, -0.3]), np.array([0.2, 1.5])
    bx, by = ray_trace(sie, x, y, **P)
    ax, ay = sie.deflection(x, y, **P)
    np.testing.assert_allclose(bx, x - ax)
    np.testing.assert_allclose(by, y - ay)


def test_images_of_a_source_inside_the_caustic(sie):
    imgs, mu = image_positions(sie, 0.12, -0.02, **P)
    assert len(imgs) == 4  # inside the astroid caustic: four images (the fifth is at the singular centre)
    bx, by = ray_trace(sie, imgs[:, 0].value, imgs[:, 1].value, **P)
    np.testing.assert_allclose(bx, 0.12, atol=1e-8)
    np.testing.assert_allclose(by, -0.02, atol=1e-8)
    imgs, mu = image_positions(sie, 3.0, 0.0, **P)
    assert len(imgs) == 1 and mu[0] > 1


def test_sis_images_analytic():
    sie = lenskit.get("mass_model", "sie")()
    imgs, mu = image_positions(sie, 0.3, 0.0, theta_E=1.0, e1=0.0, e2=0.0, x0=0.0, y0=0.0)
    xs = np.sort(imgs[:, 0].value)
    np.testing.assert_allclose(xs, [-0.7, 1.3], atol=1e-8)  # SIS: x = beta +- theta_E
    np.testing.assert_allclose(np.sort(np.abs(mu)), [1.3 / 0.3 - 2, 1.3 / 0.3], rtol=1e-6)


def test_caustics_include_cut(sie):
    cs = caustics(sie, **P)
    assert len(cs) == 2
    # the cut of an SIS is the circle of radius theta_E
    cut = caustics(sie, theta_E=1.0, e1=0.0, e2=0.0, x0=0.0, y0=0.0)[-1].value
    np.testing.assert_allclose(np.hypot(cut[:, 0], cut[:, 1]), 1.0, atol=1e-6)


def test_one_system_at_a_time(sie):
    with pytest.raises(ValueError, match="one system at a time"):
        critical_curves(sie, theta_E=[1.0, 2.0], e1=0.0, e2=0.0, x0=0.0, y0=0.0)
