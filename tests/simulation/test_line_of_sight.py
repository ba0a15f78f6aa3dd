import numpy as np
import pytest

import lenskit
from lenskit.core.priors import LogUniform, Normal
from lenskit.simulation import presets
from lenskit.simulation.finder import LensFinderSimulator
from lenskit.simulation.line_of_sight import LineOfSight

AREA = (45 * 0.18) ** 2 / 3600  # the finder's cutout, arcmin^2


@pytest.fixture(scope="module")
def finder():
    return LensFinderSimulator(seed=0, source="sersic")


def counts(los, finder, n=600, seed=1):
    images, n_gal = los.render(n, np.random.default_rng(seed), finder.lenses)
    assert images.shape == (n, 1, 45, 45)
    return n_gal


def test_fixed_density_is_poisson(finder):
    n = counts(LineOfSight(density=120.0, max_per_stamp=40), finder)
    assert np.mean(n) == pytest.approx(120 * AREA, rel=0.1)
    assert 0.8 < np.var(n) / np.mean(n) < 1.2  # Poisson: variance = mean


def test_density_prior_draws_each_stamps_own(finder):
    # log-uniform 30-300 per arcmin^2: mean (300 - 30) / ln 10, and the counts scatter beyond Poisson's
    los = LineOfSight(density=LogUniform(30.0, 300.0), max_per_stamp=40)
    n = counts(los, finder)
    mean_density = 270.0 / np.log(10.0)
    var_density = (300.0**2 - 30.0**2) / (2 * np.log(10.0)) - mean_density**2
    assert np.mean(n) == pytest.approx(mean_density * AREA, rel=0.1)
    expected = (mean_density * AREA + var_density * AREA**2) / (mean_density * AREA)  # 1.87
    assert np.var(n) / np.mean(n) == pytest.approx(expected, rel=0.2)
    # a (low, high) pair is a uniform prior
    assert isinstance(LineOfSight(density=(10, 20)).density, lenskit.core.priors.Uniform)


def test_density_prior_round_trips_through_the_simulator_config():
    sim = lenskit.Simulator(line_of_sight=presets.robust_line_of_sight(), seed=0)
    again = lenskit.Simulator.from_config(sim.config)
    assert repr(again.line_of_sight.density) == "LogUniform(30.0, 300.0)"
    assert again.line_of_sight.mag_range == (19.0, 27.0) and again.line_of_sight.max_per_stamp == 20
    # the default stays a plain number
    assert LineOfSight().to_config()["density"] == 60.0


def test_robust_line_of_sight_has_bright_neighbours_more_often():
    rng = np.random.default_rng(0)
    wide = presets.robust_line_of_sight().draw_magnitudes(rng, 20000)
    paper = LineOfSight().draw_magnitudes(rng, 20000)
    assert wide.min() >= 19.0 and paper.min() >= 20.0
    # neighbours brighter than 23 mag per square arcminute: 117 x 14% against 60 x 5.6%
    assert np.mean(wide < 23.0) > 2 * np.mean(paper < 23.0)
    assert 270.0 / np.log(10.0) * np.mean(wide < 23.0) > 4 * 60.0 * np.mean(paper < 23.0)


@pytest.mark.parametrize("density, match", [
    (-1.0, r"density must be >= 0"),
    (Normal(50.0, 20.0), r"density must be >= 0 .*Normal"),
    ((-5.0, 10.0), r"density must be >= 0 .*Uniform"),
    ("many", r"density"),
])
def test_bad_density_is_refused(density, match):
    with pytest.raises((ValueError, TypeError), match=match):
        LineOfSight(density=density)


def test_satellites_off_keep_the_fields_draws(finder):
    a, na = LineOfSight().render(60, np.random.default_rng(3), finder.lenses)
    b, nb = LineOfSight(satellites=0.0).render(60, np.random.default_rng(3), finder.lenses)
    assert np.array_equal(a.numpy(), b.numpy()) and np.array_equal(na, nb)


def test_satellites_lie_near_the_centre_uniform_in_radius(finder):
    from scipy import stats

    # no field galaxies: every stamp holds its satellites alone, compact enough to centroid
    src = lenskit.get("source", "sersic")(R_e=(0.1, 0.15), n=(1.0, 1.5), ellipticity=(0.0, 0.2))
    los = LineOfSight(density=0.0, satellites=1.0, satellite_radius=(1.0, 3.0), source=src)
    img, n = los.render(1500, np.random.default_rng(4), finder.lenses)
    assert np.mean(n) == pytest.approx(1.0, rel=0.1)
    assert 0.85 < np.var(n) / np.mean(n) < 1.15  # Poisson
    one = img[n == 1, 0].numpy()
    yy, xx = np.indices(one.shape[1:])
    c = (one.shape[1] - 1) / 2
    flux = one.sum((1, 2))
    r = np.hypot((one * xx).sum((1, 2)) / flux - c, (one * yy).sum((1, 2)) / flux - c) * 0.18
    assert r.min() > 0.9 and r.max() < 3.1
    # a surface density falling as 1/r: distances uniform within (1, 3)"
    assert stats.kstest(np.clip(r, 1.0, 3.0), "uniform", args=(1.0, 2.0)).pvalue > 0.01


def test_satellites_round_trip_through_the_simulator_config():
    sim = lenskit.Simulator(line_of_sight=LineOfSight(satellites=1.5, satellite_radius=(0.4, 2.5)), seed=0)
    again = lenskit.Simulator.from_config(sim.config).line_of_sight
    assert again.satellites == 1.5 and again.satellite_radius == (0.4, 2.5)
    assert again.satellite_mags is None and again.satellite_slope is None
    assert "satellites" not in LineOfSight().to_config()  # configurations without them stay as they were
    assert "satellite_mags" not in sim.line_of_sight.to_config()
    los = LineOfSight(satellites=1.0, satellite_mags=(20.5, 26.0), satellite_slope=0.0)
    again = lenskit.Simulator.from_config(lenskit.Simulator(line_of_sight=los, seed=0).config).line_of_sight
    assert again.satellite_mags == (20.5, 26.0) and again.satellite_slope == 0.0


def test_satellite_magnitudes_follow_their_own_counts():
    from scipy import stats

    los = LineOfSight(satellites=1.0, satellite_mags=(21.0, 26.0), satellite_slope=0.0)
    sat = los.draw_magnitudes(np.random.default_rng(5), 4000, satellites=True)
    assert stats.kstest(sat, "uniform", args=(21.0, 5.0)).pvalue > 0.01  # flat in magnitude
    field = los.draw_magnitudes(np.random.default_rng(5), 4000)
    assert field.min() >= 20.0 and np.mean(field > 26.0) > 0.4  # the field's steep counts (slope 0.3) unchanged
    # without their own range and slope the satellites are drawn as before: one stream with the field's
    plain = LineOfSight(satellites=1.0)
    rng_a, rng_b = np.random.default_rng(6), np.random.default_rng(6)
    split = np.concatenate([plain.draw_magnitudes(rng_a, 7), plain.draw_magnitudes(rng_a, 5, satellites=True)])
    assert np.array_equal(split, plain.draw_magnitudes(rng_b, 12))


def test_satellite_magnitudes_set_their_fluxes(finder):
    src = lenskit.get("source", "sersic")(R_e=(0.1, 0.15), n=(1.0, 1.5), ellipticity=(0.0, 0.2))
    flux = {}
    for mags in ((20.0, 20.5), (25.0, 25.5)):
        los = LineOfSight(density=0.0, satellites=1.0, satellite_mags=mags, satellite_slope=0.0, source=src)
        img, n = los.render(300, np.random.default_rng(7), finder.lenses)
        flux[mags] = img[n == 1].sum((1, 2, 3)).numpy()
    # 5 magnitudes apart: 100 times the flux (the colour scatter is the same draw in both)
    assert np.median(flux[(20.0, 20.5)]) / np.median(flux[(25.0, 25.5)]) == pytest.approx(100.0, rel=0.15)


@pytest.mark.parametrize("kwargs, match", [
    ({"satellites": -1.0}, r"satellites must be a mean number per stamp"),
    ({"satellites": 20.0}, r"satellites must be .*max_per_stamp=12"),
    ({"satellite_radius": (3.0, 1.0)}, r"satellite_radius must be \(inner, outer\)"),
    ({"satellite_radius": 2.0}, r"satellite_radius must be \(inner, outer\)"),
    ({"satellite_mags": (26.0, 21.0)}, r"satellite_mags must be \(bright, faint\) with bright < faint"),
    ({"satellite_mags": 22.0}, r"satellite_mags must be \(bright, faint\) magnitudes"),
])
def test_bad_satellites_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LineOfSight(**kwargs)
    with pytest.raises(TypeError, match=r"satellite_slope must be a number"):
        LineOfSight(satellite_slope="steep")
