"""The estimators that ship with lenskit load, carry their recipe and metrics, and run."""

import numpy as np
import pytest

import lenskit
from lenskit.estimators.pretrained import WEIGHTS_DIR, shipped


REGRESSORS = [n for n in shipped() if not n.startswith("deeplens")]
FINDERS = [n for n in shipped() if n.startswith("deeplens")]


@pytest.mark.parametrize("name", REGRESSORS)
def test_shipped_estimator(name):
    est = lenskit.load_estimator(name)
    assert est.metrics["test"]["theta_E"]["n"] >= 1000
    assert "simulator" in est.training and est.training["completed_steps"] > 0
    assert est.expects["shape"] == list(est.in_shape)
    w = lenskit.read(WEIGHTS_DIR / f"{name}.asdf")
    assert all(a.dtype == np.float16 for a in w.arrays.values() if a.dtype.kind == "f")
    x = np.random.default_rng(0).random((3,) + est.in_shape).astype(np.float32)
    if est.conditions:  # it reads per-image numbers (the seeing): refused without them
        with pytest.raises(ValueError, match="per image"):
            est.predict(x)
        assert np.all(est.condition_range[:, 0] < est.condition_range[:, 1])
        mid = est.condition_range.mean(1)  # the middle of what training saw
        e = est.predict(x, conditions={c: mid[i] for i, c in enumerate(est.conditions)})
    else:
        e = est.predict(x)
    assert len(e) == 3 and np.all(np.isfinite(e.table["theta_E"].value))
    assert np.all(e.table["theta_E_std"].value > 0)


def test_total_shipped_size():
    total = sum(p.stat().st_size for p in WEIGHTS_DIR.glob("*.asdf"))
    assert total < 40e6


def test_hst_estimator_beats_the_prior():
    """On fresh simulated HST lenses the shipped estimator is far better than guessing the prior mean."""
    if "hst_wfc3" not in shipped():
        pytest.skip("no HST weights shipped")
    est = lenskit.load_estimator("hst_wfc3")
    inst = lenskit.get("instrument", "hst_wfc3")(test=True)
    ds = lenskit.Simulator(instrument=inst, source="sersic_clump", seed=31).sample(48)
    from lenskit.estimators.metrics import summary

    m = summary(est.predict(ds), ds.params)
    assert m["theta_E"]["rms"] < 0.5 * 2.9 / np.sqrt(12)
    assert m["x0"]["rms"] < 0.8 * 0.5 / np.sqrt(12)


@pytest.mark.parametrize("name, instrument", [("lsst_gri", "lsst"), ("euclid_vis", "euclid_vis"),
                                              ("lsst_gri_no_lens_light", "lsst"),
                                              ("euclid_vis_no_lens_light", "euclid_vis"),
                                              ("lsst_gri_robust", "lsst"), ("lsst_gri_psf", "lsst"),
                                              ("lsst_gri_no_lens_light_psf", "lsst"),
                                              ("lsst_gri_no_lens_light_robust", "lsst")])
def test_survey_estimators(name, instrument):
    """
    With the lens galaxy's light in the stamp (or without it, for the ``_no_lens_light`` estimators, as after a
    perfect subtraction), the survey estimators beat the prior by far and their 68% intervals are calibrated.
    """
    if name not in shipped():
        pytest.skip(f"no {name} weights shipped")
    from lenskit.estimators.metrics import summary

    est = lenskit.load_estimator(name)
    light = "_no_lens_light" not in name
    # trained without lens light: absent (False) or subtracted with its shot noise kept ("subtracted")
    assert est.expects["lens_light"] is True if light else est.expects["lens_light"] in (False, "subtracted")
    kwargs = {"bands": ("g", "r", "i")} if instrument == "lsst" else {}
    sim = lenskit.Simulator(instrument=lenskit.get("instrument", instrument)(**kwargs), source="sersic", seed=32,
                            lens_light=light)
    ds = sim.sample(200)
    m = summary(est.predict(ds), ds.params)
    prior_rms = 2.0 / np.sqrt(12)  # theta_E uniform in 0.5-2.5"
    assert m["theta_E"]["rms"] < 0.35 * prior_rms
    spread = np.std(ds.params["e1"])  # ~0.13
    assert m["e1"]["rms"] < 0.7 * spread and m["e2"]["rms"] < 0.7 * spread
    assert 0.55 < m["theta_E"]["coverage68"] < 0.85


@pytest.mark.parametrize("name", FINDERS)
def test_shipped_finder(name):
    from lenskit.estimators.finder import DeepLensFinder
    from lenskit.estimators.finder_metrics import auroc
    from lenskit.simulation.finder import LensFinderSimulator

    finder = lenskit.load_estimator(name)
    assert isinstance(finder, DeepLensFinder)
    assert (WEIGHTS_DIR / f"{name}.asdf").stat().st_size < 15e6
    assert 0 < finder.threshold < 1 and finder.threshold_fpr == 0.01
    assert finder.metrics["test"]["single_epoch"]["summary"]["n_lenses"] >= 1000
    assert finder.training["completed_epochs"] >= 1 and "simulation" in finder.training
    ds = LensFinderSimulator(seed=77).sample(300)
    p = finder.predict(ds).table["p_lens"].value
    assert np.all((p >= 0) & (p <= 1))
    assert auroc(p, np.asarray(ds.params["is_lens"], bool)) > 0.8


def test_finder_noise_matching_makes_units_irrelevant():
    """The finder reads images in units of its training noise: other units change its answers unless matched."""
    from lenskit.estimators.finder_metrics import auroc
    from lenskit.simulation.finder import LensFinderSimulator

    finder = lenskit.load_estimator("deeplens_lsst_g")
    ds = LensFinderSimulator(seed=78).sample(80)
    labels = np.asarray(ds.params["is_lens"], bool)
    raw = finder.predict(ds).table["p_lens"].value
    tenfold = finder.predict(ds.images * 10).table["p_lens"].value
    # the same sky in other units: most non-lenses become candidates
    assert np.mean(raw[~labels] >= finder.threshold) < 0.1 < 0.3 < np.mean(tenfold[~labels] >= finder.threshold)
    matched = finder.match_noise(ds)
    f = np.asarray(matched.params["noise_scale"])
    assert 0.8 < np.median(f) < 1.2  # lenskit's own cutouts are in the training's units already
    assert np.allclose(matched.images, ds.images * f[:, None, None, None], rtol=1e-6)
    p = finder.predict(matched).table["p_lens"].value
    for k in (0.01, 3e4):  # any units: the same images reach the network
        assert np.allclose(finder.predict(finder.match_noise(ds.images * k)).table["p_lens"].value, p, atol=1e-4)
    assert auroc(p, labels) > auroc(raw, labels) - 0.02
    blank = ds.images.copy()
    blank[3] = 0.0
    with pytest.raises(ValueError, match="image 3 .* has no measurable background noise"):
        finder.match_noise(blank)
    with pytest.raises(ValueError, match=r"data must be \(N, 1, 45, 45\) cutouts"):
        finder.match_noise(ds.images[:, :, :40])
