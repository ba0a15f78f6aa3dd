import numpy as np
import pytest
from scipy import stats

import lenskit
from lenskit.simulation import presets
from lenskit.simulation.finder import LensFinderSimulator


def test_hezaveh2017_is_the_hst_recipe():
    sim = presets.hezaveh2017(test=True, seed=4)
    assert sim.instrument.name == "hst_wfc3" and sim.instrument.test and sim.lens_light is False
    assert sim.source.name == "sersic_clump" and sim.selection.to_config() == {"selection": "min_magnification", "minimum": 2.0}
    plain = lenskit.Simulator(instrument=lenskit.get("instrument", "hst_wfc3")(test=True), seed=4)
    assert sim.sample(2) == plain.sample(2)


def test_pearson2019_priors_follow_their_fig1():
    rng = np.random.default_rng(11)
    for survey, (mean, width) in presets.PEARSON2019_THETA_E.items():
        prior = presets.pearson2019_priors(survey)["theta_E"]
        draws = prior.sample(rng, 40_000)
        assert draws.min() >= 0.5 and draws.max() <= 2.5
        a, b = (0.5 - mean) / width, (2.5 - mean) / width
        expected = stats.truncnorm(a, b, loc=mean, scale=width)
        # mean and spread of the truncated normal, to 5 standard errors
        se = expected.std() / np.sqrt(len(draws))
        assert abs(draws.mean() - expected.mean()) < 5 * se
        assert abs(draws.std() / expected.std() - 1) < 0.02
    centre = presets.pearson2019_priors("euclid")["x0"]
    assert centre.sigma == pytest.approx(0.1) and centre.high == pytest.approx(0.3)


def test_pearson2019_test_set_without_lens_light_suits_the_twin_estimator():
    ds = presets.pearson2019_test_set("lsst", 3, lens_light=False, seed=5)
    assert ds.bands == ("g", "r", "i") and ds.provenance.config["lens_light"] == "subtracted"
    assert np.all((ds.params["theta_E"].value >= 0.5) & (ds.params["theta_E"].value <= 2.5))
    assert len(lenskit.load_estimator("lsst_gri_no_lens_light").predict(ds)) == 3
    with pytest.raises(ValueError, match="lens_light"):  # and not the estimator trained with lens light
        lenskit.load_estimator("lsst_gri").predict(ds)
    again = presets.pearson2019_test_set("lsst", 3, lens_light=False, seed=5)
    assert np.array_equal(again.images, ds.images)


def test_lanusse2018_cutouts():
    sim = presets.lanusse2018(seed=2)
    assert isinstance(sim, LensFinderSimulator)
    ds = sim.sample(4)
    assert ds.shape == (4, 1, 45, 45) and ds.pixel_scale.value == pytest.approx(0.18)


@pytest.mark.parametrize("call, match", [
    (lambda: presets.pearson2019("hst"), "survey"),
    (lambda: presets.pearson2019_priors("des"), "survey"),
    (lambda: presets.pearson2019_test_set("lsst", 0), r"\bn\b"),
    (lambda: presets.lanusse2018(mode="deep"), "mode"),
    (lambda: presets.pearson2019_priors("lsst", pixel_scale="0.2"), "pixel_scale"),
])
def test_presets_refuse_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
