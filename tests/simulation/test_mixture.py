import numpy as np
import pytest
import torch

import lenskit
from lenskit.estimators.regression import CNNEstimator
from lenskit.instruments.hst import HSTWFC3
from lenskit.simulation.mixture import SimulatorMixture


def _sim(lo, hi, seed=1, **kw):
    # two populations told apart by their Einstein radii (small stamps: small lenses)
    return lenskit.Simulator(instrument=HSTWFC3(shape=(48, 48)), source="sersic", seed=seed,
                             priors={"theta_E": (lo, hi)}, **kw)


def test_every_batch_holds_each_simulators_share_in_random_order():
    mix = SimulatorMixture([_sim(0.2, 0.35), _sim(0.55, 0.7)], [0.25, 0.75], seed=3)
    assert mix.shares(16).tolist() == [4, 12] and mix.shares(3).sum() == 3
    firsts = []
    for images, y, masks in mix.stream(16, steps=3):
        assert images.shape == (16, 1, 48, 48) and y.shape == (16, 5)
        small = (y[:, 0] < 0.45).numpy()
        assert small.sum() == 4  # exactly the first simulator's share, every batch
        firsts.append(np.flatnonzero(small))
    assert not all(np.array_equal(f, np.arange(4)) for f in firsts)  # shuffled within the batch
    assert mix.config["mixture"][1]["weight"] == pytest.approx(0.75)


def test_a_mixture_is_reproducible_from_its_seed():
    def draw(seed):
        mix = SimulatorMixture([_sim(0.2, 0.35), _sim(0.55, 0.7)], seed=seed)
        mix.rng = np.random.default_rng(seed)  # as the training loop's workers reseed it
        return next(iter(mix.stream(8, steps=1)))[1]
    assert torch.equal(draw(5), draw(5)) and not torch.equal(draw(5), draw(6))


def test_bad_mixtures_are_refused_before_simulating():
    a = _sim(0.2, 0.7)
    with pytest.raises(ValueError, match="two or more"):
        SimulatorMixture([a])
    with pytest.raises(ValueError, match="two or more"):
        SimulatorMixture(a)
    with pytest.raises(TypeError, match=r"simulators\[1\]"):
        SimulatorMixture([a, "lsst"])
    with pytest.raises(ValueError, match=r"simulators\[1\].*same"):
        SimulatorMixture([a, lenskit.Simulator(instrument=HSTWFC3(shape=(40, 40)), source="sersic")])
    with pytest.raises(ValueError, match=r"lens_light"):
        SimulatorMixture([a, _sim(0.2, 0.7, lens_light=True)])
    for w in ([1.0], [1.0, -1.0], [0.0, 0.0], [np.nan, 1.0]):
        with pytest.raises(ValueError, match="weights"):
            SimulatorMixture([a, _sim(0.2, 0.7)], w)


def test_arcs_without_lens_light_mix_whatever_removed_it():
    # no light, its exact subtraction (shot noise left) and an imperfect one: all arcs alone, one mixture
    plain = _sim(0.2, 0.7)
    residual = _sim(0.2, 0.7, seed=2, lens_light="residual")
    mix = SimulatorMixture([plain, residual], seed=1)
    assert mix.lens_light is False  # the first simulator's kind: what an estimator trained on it expects
    images, y, _ = next(iter(mix.stream(8, steps=1)))
    assert images.shape == (8, 1, 48, 48) and torch.isfinite(images).all()
    kinds = [c["simulator"]["lens_light"] for c in mix.config["mixture"]]
    assert kinds == [False, "residual"]
    with pytest.raises(ValueError, match=r"simulators\[1\] has lens_light=True.*all hold the lens light or none"):
        SimulatorMixture([residual, _sim(0.2, 0.7, lens_light=True)])


def test_an_estimator_trains_on_a_mixture():
    mix = SimulatorMixture([_sim(0.2, 0.45), _sim(0.45, 0.7, seed=2)], seed=4)
    est = CNNEstimator(in_shape=(1, 48, 48))
    est.fit(mix, steps=3, batch_size=8, progress=False, warmup=1, standardize_samples=64)
    assert est.training["completed_steps"] == 3
    assert "mixture" in est.training["simulator"]
    val = _sim(0.2, 0.7, seed=9).sample(8)
    assert np.all(np.isfinite(est.predict(val).table["theta_E"].value))
