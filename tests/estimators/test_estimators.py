import astropy.units as u
import numpy as np
import pytest
import torch
from astropy.table import QTable

import lenskit
from lenskit.core.estimate import Estimate
from lenskit.estimators.metrics import error_table, summary
from lenskit.estimators.regression import CNNEstimator
from lenskit.estimators.targets import TargetSpec, gaussian_nll
from lenskit.instruments.hst import HSTWFC3


@pytest.fixture(scope="module")
def small():
    # small stamps: keep the lenses small too, or most candidates fail the magnification selection
    prior = {"theta_E": (0.2, 0.7)}
    inst = HSTWFC3(shape=(48, 48))
    sim = lenskit.Simulator(instrument=inst, source="sersic", seed=1, priors=prior)
    val = lenskit.Simulator(instrument=HSTWFC3(shape=(48, 48), test=True), source="sersic", seed=2,
                            priors=prior).sample(48)
    return sim, val


def test_spin1_round_trip_and_parity_loss():
    rng = np.random.default_rng(0)
    y = torch.as_tensor(np.c_[rng.uniform(0.5, 2, 50), rng.uniform(-0.4, 0.4, (50, 2)), rng.normal(0, .1, (50, 2))])
    spec = TargetSpec(("theta_E", "e1", "e2", "x0", "y0"), spin=1, mean=[1, 0, 0, 0, 0], std=[1, .3, .3, .1, .1])
    z = spec.to_network(y)
    back, _ = spec.from_network(z)
    torch.testing.assert_close(back, y)
    # the parity-minimum loss does not care about the sign of (ex, ey)
    out = torch.zeros(50, 5, dtype=torch.float64)
    flipped = z.clone()
    e_phys = z[:, 1:3] * torch.tensor([.3, .3], dtype=z.dtype)
    flipped[:, 1:3] = (-e_phys) / torch.tensor([.3, .3], dtype=z.dtype)
    out[:] = z
    assert float(gaussian_nll(out, flipped, 5, spec, uncertainty=False)) == pytest.approx(0.0, abs=1e-12)
    spin2 = TargetSpec(spec.names, spin=2)
    assert float(gaussian_nll(out, flipped, 5, spin2, uncertainty=False)) > 0.01


def test_fit_with_shift_pairs(small):
    sim, _ = small
    est = CNNEstimator(in_shape=(1, 48, 48))
    seen = []
    est.fit(sim, steps=2, batch_size=4, progress=False, warmup=1, standardize_samples=64, shift_pairs=2,
            shift_weight=0.5, checkpoint_every=1, log=seen.append)
    assert est.training["shift_pairs"] == {"max_shift": 2, "weight": 0.5}
    assert seen[-1]["images"] == 16  # 4 systems and their 4 moved copies per step
    with pytest.raises(ValueError, match="max_shift"):
        est.fit(sim, steps=1, batch_size=4, progress=False, shift_pairs=0)
    seen = []
    est.fit(sim, steps=2, batch_size=4, progress=False, warmup=1, standardize_samples=64, symmetry_pairs=True,
            checkpoint_every=1, log=seen.append)  # rotated or mirrored copies, not moved
    assert est.training["shift_pairs"] == {"max_shift": 0, "weight": 1.0, "symmetries": True}
    assert seen[-1]["images"] == 16
    with pytest.raises(TypeError, match="symmetry_pairs"):
        est.fit(sim, steps=1, batch_size=4, progress=False, symmetry_pairs=1)
    with pytest.raises(ValueError, match="square"):  # refused before anything is simulated
        CNNEstimator(in_shape=(1, 48, 40)).fit(sim, steps=1, batch_size=4, progress=False, symmetry_pairs=True)


def test_fit_with_a_bank(small):
    from lenskit.estimators.training import BankMix

    sim, _ = small
    est = CNNEstimator(in_shape=(1, 48, 48))
    rng = np.random.default_rng(5)
    names = est.targets
    bank = BankMix(rng.normal(size=(6, 1, 48, 48)).astype(np.float32), rng.uniform(0.2, 0.7, (6, len(names))), names,
                   fraction=0.25, seed=2)
    seen = []
    est.fit(sim, steps=2, batch_size=8, progress=False, warmup=1, standardize_samples=64, bank=bank,
            checkpoint_every=1, log=seen.append)
    assert est.training["bank"]["systems"] == 6 and est.training["bank"]["fraction"] == 0.25
    assert est.training["bank"]["checksum"].startswith("sha256:") and seen[-1]["images"] == 16
    other = BankMix(np.zeros((2, 1, 48, 48), np.float32), np.zeros((2, 1)), ("theta_E",))
    with pytest.raises(ValueError, match="not the estimator's"):  # refused before anything is simulated
        est.fit(sim, steps=1, batch_size=4, progress=False, bank=other)
    with pytest.raises(TypeError, match="BankMix"):
        est.fit(sim, steps=1, batch_size=4, progress=False, bank=np.zeros((2, 1, 48, 48)))


def test_fit_in_bfloat16_keeps_float32_weights(small):
    sim, _ = small
    est = CNNEstimator(in_shape=(1, 48, 48))
    conv = next(m for m in est.network.modules() if isinstance(m, torch.nn.Conv2d))
    seen = []
    hook = conv.register_forward_hook(lambda mod, inp, out: seen.append((mod.training, out.dtype)))
    est.fit(sim, steps=2, batch_size=4, progress=False, warmup=1, standardize_samples=64, bfloat16=True)
    hook.remove()
    assert {d for training, d in seen if training} == {torch.bfloat16}  # the training steps ran in bfloat16
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in est.network.parameters())
    assert est.training["bfloat16"] is True
    out = est.predict(np.random.default_rng(0).normal(size=(2, 1, 48, 48)).astype(np.float32)).table  # stays float32
    assert np.isfinite(np.asarray(out["theta_E"])).all()


def test_bfloat16_on_a_cpu_without_it_warns(small, monkeypatch):
    from lenskit.estimators import training

    sim, _ = small
    monkeypatch.setattr(training, "native_bfloat16", lambda: False)
    with pytest.warns(UserWarning, match="without native bfloat16"):
        CNNEstimator(in_shape=(1, 48, 48)).fit(sim, steps=1, batch_size=4, progress=False, warmup=1,
                                                standardize_samples=64, bfloat16=True)
    import warnings

    with warnings.catch_warnings(record=True) as seen:  # float32 training says nothing of it
        warnings.simplefilter("always")
        CNNEstimator(in_shape=(1, 48, 48)).fit(sim, steps=1, batch_size=4, progress=False, warmup=1,
                                                standardize_samples=64)
    assert not [w for w in seen if "bfloat16" in str(w.message)]


def test_conditions_psf_fwhm_fit_predict_save(tmp_path):
    from lenskit.instruments.effects import GaussianNoise, GaussianPSF, PoissonNoise

    prior = {"theta_E": (0.2, 0.7)}
    inst = HSTWFC3(shape=(48, 48), effects=[GaussianPSF(sigma=(0.02, 0.1)), PoissonNoise(), GaussianNoise()])
    sim = lenskit.Simulator(instrument=inst, source="sersic", seed=3, priors=prior)
    val = lenskit.Simulator(instrument=inst, source="sersic", seed=4, priors=prior).sample(12)
    assert "psf_fwhm" in val.params.colnames
    est = CNNEstimator(in_shape=(1, 48, 48), conditions=["psf_fwhm"])
    assert est.arch_kwargs["n_conditions"] == 1 and "psf_fwhm" in repr(est)
    with pytest.raises(RuntimeError, match="standardised"):
        est.predict(val)
    seen = []
    est.fit(sim, steps=3, batch_size=4, progress=False, warmup=1, standardize_samples=64, shift_pairs=1,
            checkpoint_every=1, log=seen.append)
    lo, hi = est.condition_range[0]
    fwhm = 0.02 * 2.3548, 0.1 * 2.3548
    assert fwhm[0] - 0.01 < lo < hi < fwhm[1] + 0.01 and est.condition_std[0] > 0.01
    a = est.predict(val).table["theta_E"]  # the column of the dataset's table
    b = est.predict(val.images, conditions={"psf_fwhm": val.params["psf_fwhm"]}).table["theta_E"]
    np.testing.assert_array_equal(a.value, b.value)
    c = est.predict(val.images, conditions={"psf_fwhm": 0.1 * u.arcsec}).table["theta_E"]  # one for all
    assert np.all(np.isfinite(c.value)) and not np.array_equal(c.value, a.value)  # the network reads it
    with pytest.raises(ValueError, match="reads 'psf_fwhm' per image"):
        est.predict(val.images)
    with pytest.raises(ValueError, match="one per image"):
        est.predict(val.images, conditions={"psf_fwhm": [0.1, 0.2]})
    with pytest.raises(ValueError, match="unknown condition"):
        est.predict(val, conditions={"seeing": 0.1})
    with pytest.raises(ValueError, match="finite"):
        est.predict(val.images, conditions={"psf_fwhm": np.full(12, np.nan)})
    with pytest.warns(UserWarning, match="outside the range"):
        est.predict(val.images[:2], conditions={"psf_fwhm": 1.0})
    path = tmp_path / "cond.asdf"
    est.save(path)
    back = CNNEstimator.load(path)
    assert back.conditions == ("psf_fwhm",)
    np.testing.assert_array_equal(back.predict(val).table["theta_E"].value, a.value)
    np.testing.assert_allclose(back.condition_range, est.condition_range)


def test_conditions_are_refused_where_they_cannot_be_read():
    with pytest.raises(TypeError, match="reads no conditions"):
        CNNEstimator("alexnet", in_shape=(1, 64, 64), conditions=["psf_fwhm"])
    with pytest.raises(TypeError, match="sequence of column names"):
        CNNEstimator(in_shape=(1, 48, 48), conditions="psf_fwhm")
    with pytest.raises(ValueError, match="not targets"):
        CNNEstimator(in_shape=(1, 48, 48), conditions=["theta_E"])
    plain = CNNEstimator(in_shape=(1, 48, 48))
    with pytest.raises(ValueError, match="reads no conditions"):
        plain.predict(np.random.default_rng(0).normal(size=(1, 1, 48, 48)), conditions={"psf_fwhm": 0.1})
    net = plain.network
    with pytest.raises(ValueError, match="reads no conditions"):
        net(torch.zeros(1, 1, 48, 48), None, torch.zeros(1, 1))
    cond = CNNEstimator(in_shape=(1, 48, 48), conditions=["psf_fwhm"]).network
    with pytest.raises(ValueError, match=r"conditions must be shaped \(2, 1\)"):
        cond(torch.zeros(2, 1, 48, 48))


def test_stream_takes_table_columns_as_targets():
    from lenskit.instruments.effects import GaussianPSF

    inst = HSTWFC3(shape=(48, 48), effects=[GaussianPSF(sigma=(0.02, 0.1))])
    sim = lenskit.Simulator(instrument=inst, source="sersic", seed=3, priors={"theta_E": (0.2, 0.7)})
    _, y, _ = next(sim.stream(4, targets=["theta_E", "psf_fwhm"]))
    assert y.shape == (4, 2) and torch.all((y[:, 1] > 0.04) & (y[:, 1] < 0.24))
    with pytest.raises(ValueError, match="this simulator's table"):
        next(sim.stream(4, targets=["theta_E", "seeing_typo"]))


def test_predict_validates_input(small):
    sim, val = small
    est = CNNEstimator(in_shape=(1, 48, 48))
    with pytest.raises(ValueError, match=r"images must be shaped \(N, 1, 48, 48\)"):
        est.predict(np.zeros((2, 1, 32, 32)))
    bad = val.images[:2].copy()
    bad[0, 0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.predict(bad)
    mask = np.zeros_like(bad, dtype=bool)
    mask[0, 0, 3, 3] = True
    e = est.predict(bad, masks=mask)  # NaNs under masks are fine
    assert np.all(np.isfinite(e.table["theta_E"].value))
    assert e.table["theta_E"].unit == u.arcsec and "theta_E_std" in e.table.colnames


def test_an_untrained_network_warns_that_its_answers_are_random(small, tmp_path):
    import warnings

    from lenskit.core import LenskitDataWarning

    sim, val = small
    est = CNNEstimator(in_shape=(1, 48, 48))
    assert not est.is_trained()
    with pytest.warns(LenskitDataWarning, match="has not been trained"):
        est.predict(val.images[:2])
    with warnings.catch_warnings():
        warnings.simplefilter("error", LenskitDataWarning)  # neither its validation passes nor its answers after
        est.fit(sim, steps=2, batch_size=4, validation=val[:4], progress=False)
        assert est.is_trained()
        est.predict(val.images[:2])
        est.save(tmp_path / "w.asdf")
        lenskit.load_estimator(tmp_path / "w.asdf").predict(val.images[:2])  # the record travels with the weights


def test_fit_checkpoint_resume_and_save(small, tmp_path):
    sim, val = small
    ck = tmp_path / "ck.asdf"
    est = CNNEstimator(in_shape=(1, 48, 48))
    est.fit(sim, steps=6, batch_size=8, checkpoint=ck, checkpoint_every=3, progress=False, warmup=2, standardize_samples=64)
    assert ck.exists() and est.training["completed_steps"] == 6
    again = CNNEstimator(in_shape=(1, 48, 48))
    again.fit(sim, steps=9, batch_size=8, checkpoint=ck, checkpoint_every=3, progress=False, warmup=2, standardize_samples=64)
    assert again.training["completed_steps"] == 9  # resumed at 6, three more steps
    path = tmp_path / "w.asdf"
    again.save(path)
    back = CNNEstimator.load(path)
    a = again.predict(val).table
    b = back.predict(val).table
    np.testing.assert_array_equal(a["theta_E"].value, b["theta_E"].value)
    again.save(tmp_path / "w16.asdf", dtype=np.float16)
    assert (tmp_path / "w16.asdf").stat().st_size < 0.6 * path.stat().st_size
    assert not list(tmp_path.glob(".*"))


@pytest.mark.slow
@pytest.mark.parametrize("bfloat16", [False, True])
def test_training_learns_theta_E(bfloat16):
    """A short training run must beat the prior's spread on theta_E (statistical, fixed seeds), in bfloat16 too."""
    torch.manual_seed(0)
    inst = HSTWFC3(shape=(40, 40), effects=[])
    prior = {"theta_E": (0.3, 0.7), "ellipticity": (0.0, 0.2)}
    sim = lenskit.Simulator(instrument=inst, source=lenskit.get("source", "sersic")(R_e=0.1), seed=3, priors=prior)
    val = lenskit.Simulator(instrument=inst, source=lenskit.get("source", "sersic")(R_e=0.1), seed=4,
                            priors=prior).sample(64)
    est = CNNEstimator(in_shape=(1, 40, 40), targets=("theta_E",))
    est.fit(sim, steps=150, batch_size=32, lr=3e-3, progress=False, warmup=20, standardize_samples=256,
            bfloat16=bfloat16)
    m = summary(est.predict(val), val.params)["theta_E"]
    prior_std = 0.4 / np.sqrt(12)
    assert m["rms"] < 0.6 * prior_std


def test_ensemble_trains_only_its_layer(small):
    sim, val = small
    a, b = CNNEstimator(in_shape=(1, 48, 48)), CNNEstimator(in_shape=(1, 48, 48))
    for m in (a, b):
        m.fit(sim, steps=2, batch_size=8, progress=False, warmup=1, standardize_samples=64)
    before = [p.detach().clone() for p in a.network.parameters()]
    ens = lenskit.get("estimator", "ensemble")([a, b])
    w0 = ens.network.combine.weight.detach().clone()
    ens.fit(sim, steps=4, batch_size=8, progress=False, warmup=1)
    assert all(torch.equal(p, q) for p, q in zip(before, a.network.parameters()))
    assert not torch.equal(w0, ens.network.combine.weight)
    e = ens.predict(val)
    assert {"theta_E_spread", "theta_E_std"} <= set(e.table.colnames)
    with pytest.raises(ValueError, match="share input shape"):
        lenskit.get("estimator", "ensemble")([a, CNNEstimator(in_shape=(1, 32, 32))])


def test_metrics_on_known_errors():
    rng = np.random.default_rng(5)
    true = QTable({"theta_E": rng.uniform(0.5, 2, 20000) * u.arcsec})
    err = rng.normal(0.01, 0.05, 20000)
    est = Estimate(QTable({"theta_E": true["theta_E"] + err * u.arcsec,
                           "theta_E_std": np.full(20000, 0.05) * u.arcsec}))
    m = summary(est, true)["theta_E"]
    assert m["err68"] == pytest.approx(0.05, rel=0.03)
    assert m["rms"] == pytest.approx(np.hypot(0.05, 0.01), rel=0.03)
    assert m["bias"] == pytest.approx(0.01, abs=0.002)
    assert m["coverage68"] == pytest.approx(0.6827 - 0.013, abs=0.02)  # the 0.01 bias lowers coverage a little
    t = error_table({"net": {"theta_E": m}})
    assert t["theta_E"].unit == u.arcsec and t["estimator"][0] == "net"


def test_load_estimator_errors():
    with pytest.raises(lenskit.LenskitPluginError, match="no pretrained weights ship for 'hezaveh'"):
        lenskit.load_estimator("hezaveh")


def test_registered_estimators():
    names = lenskit.available("estimator")
    assert {"hezaveh", "alexnet", "overfeat", "inception_v4", "pearson", "lenskit_net", "ensemble"} <= set(names)
    p = lenskit.get("estimator", "pearson")()
    assert p.in_shape == (3, 57, 57)
