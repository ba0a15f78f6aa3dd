"""COOLEST export and import, checked against the coolest package's own profiles (deflection for deflection)."""

import numpy as np
import pytest

import lenskit
from lenskit.core.conventions import ellipticity_to_q_phi

coolest = pytest.importorskip("coolest")

from coolest.api.profiles.mass import PEMD, ExternalShear  # noqa: E402

from lenskit.io.coolest import coolest_angle, from_coolest, to_coolest  # noqa: E402


@pytest.mark.parametrize("e1,e2", [(0.1, -0.05), (-0.2, 0.15), (0.0, 0.3), (0.25, 0.0)])
def test_conventions_match_coolest_profiles(e1, e2):
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-2, 2, 200), rng.uniform(-2, 2, 200)
    ax, ay = lenskit.get("mass_model", "sie")().deflection(x, y, theta_E=1.2, e1=e1, e2=e2, x0=0.1, y0=-0.2)
    q, phi = (float(np.ravel(a)[0]) for a in ellipticity_to_q_phi(e1, e2))
    bx, by = PEMD().deflection(x, y, theta_E=1.2, gamma=2.0, phi=float(coolest_angle(phi)), q=q, center_x=0.1,
                               center_y=-0.2)
    np.testing.assert_allclose(ax, bx, atol=1e-12)
    np.testing.assert_allclose(ay, by, atol=1e-12)
    g1, g2 = 0.03 * np.cos(3 * e1 + 1), 0.03 * np.sin(3 * e1 + 1)
    ax, ay = lenskit.get("mass_model", "external_shear")().deflection(x, y, gamma1=g1, gamma2=g2)
    bx, by = ExternalShear().deflection(x, y, gamma_ext=np.hypot(g1, g2),
                                        phi_ext=float(coolest_angle(0.5 * np.arctan2(g2, g1))))
    np.testing.assert_allclose(ax, bx, atol=1e-12)
    np.testing.assert_allclose(ay, by, atol=1e-12)


def test_round_trip_of_an_estimate_and_a_fit_row(tmp_path):
    ds = lenskit.Simulator(instrument="lsst", seed=2).sample(2)
    est = lenskit.load_estimator("lsst_gri").predict(ds)
    row = est.table[0]
    to_coolest(row, tmp_path / "est.json", pixel_scale=0.2, band="g,r,i", instrument="LSST")
    back = from_coolest(tmp_path / "est.json")
    for k in ("theta_E", "e1", "e2", "x0", "y0"):
        assert back[k] == pytest.approx(float(getattr(row[k], "value", row[k])), abs=1e-9)
    assert "gamma1" not in back
    shear = {"theta_E": 0.9, "e1": -0.1, "e2": 0.2, "x0": 0.0, "y0": 0.05, "gamma1": -0.03, "gamma2": 0.01}
    to_coolest(shear, tmp_path / "fit.json", pixel_scale=0.05)
    back = from_coolest(tmp_path / "fit.json")
    assert {k: round(back[k], 9) for k in shear} == pytest.approx(shear)


def test_bad_input_is_refused(tmp_path):
    with pytest.raises(ValueError, match="missing"):
        to_coolest({"theta_E": 1.0}, tmp_path / "x.json", pixel_scale=0.05)
    with pytest.raises(ValueError, match=r"\.json"):
        to_coolest({"theta_E": 1.0, "e1": 0, "e2": 0, "x0": 0, "y0": 0}, tmp_path / "x.asdf", pixel_scale=0.05)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a readable COOLEST template"):
        from_coolest(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError):
        from_coolest(tmp_path / "missing.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]
