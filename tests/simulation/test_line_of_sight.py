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
