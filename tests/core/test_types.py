import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable

from lenskit.core import (Estimate, LensDataset, ellipticity_to_q_phi, lenskit_to_pearson_ellipticity,
                          pearson_to_lenskit_ellipticity, position_angle_to_phi, q_phi_to_ellipticity)


def params(n):
    return QTable({"theta_E": np.ones(n) * u.arcsec, "e1": np.zeros(n)})


def test_dataset_shapes_promoted():
    ds = LensDataset(np.zeros((2, 5, 5)), params(2), bands=["F814W"], pixel_scale=0.04)
    assert ds.images.shape == (2, 1, 5, 5) and ds.images.dtype == np.float32
    assert ds.pixel_scale == 0.04 * u.arcsec
    assert len(ds[1:]) == 1 and len(ds[0]) == 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(images=np.zeros((2, 1, 5, 5, 1))), "4 dimensions"),
    (dict(images=np.full((2, 1, 5, 5), np.nan)), "NaN"),
    (dict(bands=["g", "r"]), "bands must name each of the 1"),
    (dict(pixel_scale=-1), "pixel_scale must be > 0"),
    (dict(pixel_scale=1 * u.kg), "pixel_scale must be a scalar angle"),
    (dict(params=params(3)), "one row per image"),
    (dict(noise=np.zeros((2, 1, 4, 4))), "noise must have the shape"),
    (dict(masks=np.zeros((2, 1, 5, 5))), "masks must be boolean"),
])
def test_dataset_validation(kwargs, match):
    args = dict(images=np.zeros((2, 1, 5, 5)), params=params(2), bands=["g"], pixel_scale=0.2)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError, u.UnitsError), match=match):
        LensDataset(args.pop("images"), args.pop("params"), **args)


def test_dataset_param_units_checked():
    bad = QTable({"theta_E": np.ones(2)})  # no unit
    with pytest.raises(u.UnitsError, match="theta_E"):
        LensDataset(np.zeros((2, 1, 3, 3)), bad, bands=["g"], pixel_scale=0.2)
    bad = QTable({"theta_E": np.ones(2) * u.kg})
    with pytest.raises(u.UnitConversionError, match="theta_E"):
        LensDataset(np.zeros((2, 1, 3, 3)), bad, bands=["g"], pixel_scale=0.2)


def test_estimate_validation():
    with pytest.raises(ValueError, match="negative uncertainties"):
        Estimate({"theta_E": [1.0] * u.arcsec, "theta_E_std": [-1.0] * u.arcsec})
    with pytest.raises(ValueError, match="no matching 'e1'"):
        Estimate({"theta_E": [1.0] * u.arcsec, "e1_std": [1.0]})
    with pytest.raises(u.UnitConversionError, match="theta_E_std"):
        Estimate({"theta_E": [1.0] * u.arcsec, "theta_E_std": [1.0] * u.kg})
    with pytest.raises(ValueError, match="covariance must have shape"):
        Estimate({"theta_E": [1.0] * u.arcsec}, covariance=np.zeros((1, 2, 2)))


def test_estimate_rows_and_columns(tmp_path):
    t = QTable({"theta_E": [1.0, 1.2, 0.8] * u.arcsec, "theta_E_std": [0.1, 0.2, 0.3] * u.arcsec})
    t.meta["threshold"] = 0.7
    cov = np.arange(3.0).reshape(3, 1, 1) + 1
    e = Estimate(t, covariance=cov)
    assert e["theta_E"] is e.table["theta_E"]  # a column, as an astropy table gives it
    sub = e[1:]
    assert len(sub) == 2 and list(sub["theta_E"].value) == [1.2, 0.8] and list(sub.covariance.ravel()) == [2, 3]
    assert sub.table.meta["threshold"] == 0.7 and sub.provenance is e.provenance
    one = e[-1]
    assert len(one) == 1 and one["theta_E_std"][0] == 0.3 * u.arcsec
    assert list(e[np.array([True, False, True])]["theta_E"].value) == [1.0, 0.8]
    one.write(tmp_path / "one.asdf")  # a slice is an Estimate like any other
    assert Estimate.read(tmp_path / "one.asdf") == one


def test_ellipticity_round_trip():
    rng = np.random.default_rng(1)
    q = rng.uniform(0.1, 1, 100)
    phi = rng.uniform(-np.pi / 2, np.pi / 2, 100)
    e1, e2 = q_phi_to_ellipticity(q, phi)
    q2, phi2 = ellipticity_to_q_phi(e1, e2)
    np.testing.assert_allclose(q2, q, rtol=1e-12)
    np.testing.assert_allclose(np.cos(2 * phi2), np.cos(2 * phi), atol=1e-12)
    p1, p2 = lenskit_to_pearson_ellipticity(e1, e2)
    np.testing.assert_allclose(np.hypot(p1, p2), (1 - q**2) / (1 + q**2), rtol=1e-12)
    b1, b2 = pearson_to_lenskit_ellipticity(p1, p2)
    np.testing.assert_allclose([b1, b2], [e1, e2], atol=1e-12)
    with pytest.raises(ValueError, match="q must lie in"):
        q_phi_to_ellipticity(0.0, 0.0)


def test_position_angle_north_up():
    # north-up, east-left: PA 0 (north) is +y, PA 90 (east) is -x
    assert position_angle_to_phi(0.0) == pytest.approx(np.pi / 2)
    assert abs(position_angle_to_phi(90.0)) == pytest.approx(0.0, abs=1e-12)
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cdelt = [-0.05 / 3600, 0.05 / 3600]
    assert position_angle_to_phi(30.0, w) == pytest.approx(position_angle_to_phi(30.0))
    # rotate the sky by 90 degrees on the detector: PA 0 now lies along +x (or -x)
    w.wcs.pc = [[0, -1], [1, 0]]
    assert abs(np.cos(position_angle_to_phi(0.0, w))) == pytest.approx(1.0)


def test_phi_to_position_angle_inverts_position_angle_to_phi():
    from astropy.wcs import WCS

    from lenskit.core import phi_to_position_angle

    assert phi_to_position_angle(np.pi / 2) == pytest.approx(0.0)  # north-up: +y is north
    assert phi_to_position_angle(0.0) == pytest.approx(90.0)  # +x is west, i.e. PA 90 (a line)
    pas = np.array([0.0, 25.0, 100.0, 170.0])
    for cd in ([[-1.0, 0.0], [0.0, 1.0]], [[-0.8, 0.6], [0.6, 0.8]], [[0.0, -1.0], [-1.0, 0.0]]):  # incl. a mirror
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.cd = np.array(cd) * 0.05 / 3600
        back = phi_to_position_angle(position_angle_to_phi(pas, w), w)
        np.testing.assert_allclose(back, pas, atol=1e-9)
