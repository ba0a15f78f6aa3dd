import shutil

import astropy.units as u
import numpy as np
import pytest
import torch
from sklearn import metrics as skm

import lenskit
from lenskit.core.priors import EinsteinRadius
from lenskit.estimators.finder import DeepLensFinder, augment, focal_loss
from lenskit.estimators.finder_metrics import (
    auroc,
    completeness_table,
    prior_correction,
    roc_curve,
    threshold_at_fpr,
    tpr0,
    tpr10,
    tpr_at_fpr,
)
from lenskit.estimators.networks.deeplens import BottleneckUnit, DeepLensNet
from lenskit.simulation.finder import LensFinderSimulator


# -- network ---------------------------------------------------------------------------------
def test_deeplens_architecture():
    net = DeepLensNet((1, 45, 45))
    units = [m for m in net.units if isinstance(m, BottleneckUnit)]
    assert len(units) == 15
    widths = [(u.conv1.out_channels, u.conv3.out_channels) for u in units]
    assert widths[::3] == [(16, 32), (32, 64), (64, 128), (128, 256), (256, 512)]
    strides = [u.conv2.stride[0] for u in units]
    assert strides == [1, 1, 1, 2, 1, 1, 2, 1, 1, 2, 1, 1, 2, 1, 1]
    # projection shortcuts exactly where the shape changes
    assert [u.project is not None for u in units] == [s == 2 for s in strides]
    assert net.stem[0].kernel_size == (7, 7) and net.stem[0].out_channels == 32
    assert isinstance(net.stem[2], torch.nn.ELU)
    out = net(torch.randn(3, 1, 45, 45))
    assert out.shape == (3, 1)
    net3 = DeepLensNet((3, 45, 45))
    assert net3(torch.randn(2, 3, 45, 45)).shape == (2, 1)


def test_preprocessing_clips_and_zeroes_masks():
    net = DeepLensNet((1, 8, 8), clip=5.0)
    net.pre.set_statistics(np.full((1, 8, 8), 2.0), [0.5])
    x = torch.full((1, 1, 8, 8), 3.0)
    x[0, 0, 0, 0] = 1000.0
    mask = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    mask[0, 0, 1, 1] = True
    y = net.pre(x, mask)
    assert float(y[0, 0, 2, 2]) == pytest.approx(2.0)  # (3 - 2) / 0.5
    assert float(y[0, 0, 0, 0]) == 5.0  # clipped at k sigma
    assert float(y[0, 0, 1, 1]) == 0.0  # masked pixels last


def test_augment_identity_and_flux():
    x = torch.zeros(4, 1, 45, 45)
    x[:, :, 20:25, 18:27] = 1.0
    same = augment(x, torch.Generator().manual_seed(0), max_angle=0.0, zoom=(1.0, 1.0), flips=False)
    torch.testing.assert_close(same, x)
    rot = augment(x, torch.Generator().manual_seed(1))
    # rotation and mild zoom of a central blob keep its flux to within the zoom's area change
    ratio = rot.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert torch.all(ratio > 0.75) and torch.all(ratio < 1.05)
    # wrapping: content pushed over one edge comes back on the other
    edge = torch.zeros(1, 1, 45, 45)
    edge[0, 0, :, :3] = 1.0
    w = augment(edge, torch.Generator().manual_seed(2), max_angle=0.0, zoom=(0.9, 0.9), flips=False)
    assert float(w[0, 0, 22, -1]) > 0.5  # the right edge samples beyond the stamp: the left columns wrap in
    assert float(w[0, 0, 22, 22]) == 0.0


# -- metrics ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scores():
    rng = np.random.default_rng(5)
    y = rng.random(3000) < 0.3
    s = np.where(y, rng.normal(1.5, 1, 3000), rng.normal(0, 1, 3000))
    return s, y


def test_roc_and_auroc_match_scikit_learn(scores):
    s, y = scores
    f, t, th = roc_curve(s, y)
    f2, t2, _ = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(f, f2)
    np.testing.assert_allclose(t, t2)
    assert auroc(s, y) == pytest.approx(skm.roc_auc_score(y, s), rel=1e-12)
    # binormal model: AUROC = Phi(d / sqrt 2) with d = 1.5
    from scipy.stats import norm

    assert auroc(s, y) == pytest.approx(norm.cdf(1.5 / np.sqrt(2)), abs=0.015)
    tied = np.r_[np.zeros(50), np.ones(50)]
    assert auroc(np.ones(100), tied) == 0.5


def test_threshold_tpr0_tpr10(scores):
    s, y = scores
    thr = threshold_at_fpr(s, y, 0.01)
    assert np.mean(s[~y] >= thr) <= 0.01
    assert tpr_at_fpr(s, y, 0.01) == pytest.approx(np.mean(s[y] >= thr))
    neg = np.sort(s[~y])[::-1]
    assert tpr0(s, y) == pytest.approx(np.mean(s[y] > neg[0]))
    assert tpr10(s, y) == pytest.approx(np.mean(s[y] > neg[9]))
    assert tpr0(s, y) <= tpr10(s, y) <= tpr_at_fpr(s, y, 0.5)
    with pytest.raises(ValueError, match="both lenses"):
        auroc(s, np.ones_like(y))
    with pytest.raises(ValueError, match="same length"):
        roc_curve(s[:10], y)


def test_prior_correction_is_bayes():
    # a calibrated posterior at lens fraction 0.5 maps to the exact posterior at fraction 0.01
    x = np.linspace(-3, 5, 50)
    like1, like0 = np.exp(-0.5 * (x - 2) ** 2), np.exp(-0.5 * x ** 2)
    p_half = like1 / (like1 + like0)
    p_rare = 0.01 * like1 / (0.01 * like1 + 0.99 * like0)
    np.testing.assert_allclose(prior_correction(p_half, 0.5, 0.01), p_rare, rtol=1e-12)
    np.testing.assert_allclose(prior_correction(p_half, 0.5, 0.5), p_half)
    assert np.all(np.diff(prior_correction(p_half, 0.5, 1e-4)) > 0)  # monotonic
    with pytest.raises(ValueError, match="target_fraction"):
        prior_correction(p_half, 0.5, 0.0)


# -- simulation ------------------------------------------------------------------------------
def test_einstein_radius_prior_against_astropy():
    from astropy import constants as const
    from astropy import units as u
    from astropy.cosmology import Planck18

    prior = EinsteinRadius()
    theta, aux = prior.sample_aux(np.random.default_rng(0), 200)
    zl, sv = aux["z_lens"], aux["sigma_v"]
    # independent route: D_ls from the comoving distances of a flat universe
    dm_l, dm_s = Planck18.comoving_distance(zl), Planck18.comoving_distance(2.0)
    ratio = ((dm_s - dm_l) / 3.0 / Planck18.angular_diameter_distance(2.0)).value
    expect = (4 * np.pi * (sv * u.km / u.s / const.c) ** 2 * ratio * u.rad).to_value(u.arcsec)
    np.testing.assert_allclose(theta, expect, rtol=1e-4)
    assert 0.3 < theta.min() and theta.max() < 3.2
    from astropy.cosmology import LambdaCDM

    for curved in (LambdaCDM(70, 0.3, 0.5), LambdaCDM(70, 0.3, 0.9)):  # open and closed
        zl = np.array([0.2, 0.45, 0.7])
        ref = (curved.angular_diameter_distance(zl, 2.0) / curved.angular_diameter_distance(2.0)).value
        np.testing.assert_allclose(EinsteinRadius(cosmology=curved)._ratio(zl, 2.0), ref, rtol=1e-4)


@pytest.fixture(scope="module")
def finder_data():
    sim = LensFinderSimulator(seed=3, source="sersic")
    return sim, sim.sample(160, keep_truth=True)


def test_finder_simulator(finder_data):
    sim, ds = finder_data
    y = np.asarray(ds.params["is_lens"], bool)
    assert ds.images.shape == (160, 1, 45, 45)
    assert 50 < y.sum() < 110  # binomial(160, 0.5)
    assert np.all(ds.params["arc_snr"][~y] == 0) and np.median(ds.params["arc_snr"][y]) > 5
    # sources near the caustics (arcs), as Lanusse et al. place theirs
    assert np.all(np.asarray(ds.params["magnification"])[y] >= 5.0)
    arc_flux = ds.truth["arcs"].sum((1, 2, 3))
    assert np.all(arc_flux[~y] < 1e-6 * arc_flux[y].min())
    assert {"sigma_v", "z_lens", "n_line_of_sight", "theta_E"} <= set(ds.params.colnames)
    assert ds.params["sigma_v"].unit == "km / s"
    # line-of-sight galaxies: Poisson with mean density x area
    area = (45 * 0.18) ** 2 / 3600
    assert np.mean(ds.params["n_line_of_sight"]) == pytest.approx(60 * area, rel=0.35)
    with pytest.raises(ValueError, match="lens_fraction"):
        LensFinderSimulator(lens_fraction=1.5)


def test_stack_mode_is_deeper_and_blurrier():
    from lenskit.instruments.lsst import LSST

    single, stack = LSST.lanusse2018(mode="single_epoch"), LSST.lanusse2018(mode="stack")
    rng = np.random.default_rng(0)
    s1 = single.effects[0].sigma.sample(rng, 2000)
    s2 = stack.effects[0].sigma.sample(rng, 2000)
    assert np.median(s2) > np.median(s1) * 1.3
    assert stack.exposure_time > single.exposure_time
    with pytest.raises(ValueError, match="mode"):
        LSST.lanusse2018(mode="deep")


# -- the estimator ---------------------------------------------------------------------------
def test_finder_fit_resume_save_predict(finder_data, tmp_path):
    _, ds = finder_data
    torch.manual_seed(0)  # the initial weights: a tiny net trained for 2 epochs can saturate on some draws
    f = DeepLensFinder(arch_kwargs={"units_per_stage": 1})
    ck = tmp_path / "ck.asdf"
    f.fit(ds, validation=ds, epochs=1, batch_size=32, checkpoint=ck, progress=False)
    assert ck.exists() and f.training["completed_epochs"] == 1
    g = DeepLensFinder(arch_kwargs={"units_per_stage": 1})
    g.fit(ds, validation=ds, epochs=2, batch_size=32, checkpoint=ck, progress=False)
    assert [h["epoch"] for h in g.training["history"]] == [1, 2]  # resumed, not restarted
    assert 0 < g.threshold <= 1 and g.threshold_fpr == 0.01
    # the preprocessing statistics were set from the data and travel with the weights
    assert float(g.network.pre.sigma[0]) == pytest.approx(float(np.median(ds.noise)), rel=1e-3)
    path = tmp_path / "finder.asdf"
    g.save(path)
    h = lenskit.load_estimator(path)
    assert isinstance(h, DeepLensFinder)
    e1, e2 = g.predict(ds), h.predict(ds)
    np.testing.assert_allclose(e1.table["p_lens"].value, e2.table["p_lens"].value, rtol=1e-5, atol=1e-6)
    assert e1.table["candidate"].dtype == bool
    rare = g.predict(ds, lens_fraction=1e-3)
    assert np.all(np.argsort(rare.table["p_lens"].value, kind="stable")
                  == np.argsort(e1.table["p_lens"].value, kind="stable"))
    np.testing.assert_array_equal(rare.table["candidate"], e1.table["candidate"])


def test_finder_test_time_augmentation(finder_data, tmp_path):
    from lenskit.estimators.tta import DIHEDRAL, transform_images

    _, ds = finder_data
    torch.manual_seed(1)
    f = DeepLensFinder(arch_kwargs={"units_per_stage": 1})
    f.set_statistics(ds)
    x = ds.images[:12]
    # the tta=4 log-odds are the mean over the first four symmetries, each scored on its own
    by_hand = np.mean([f.logits(transform_images(x, t)) for t in DIHEDRAL[:4]], axis=0)
    np.testing.assert_allclose(f.logits(x, tta=4), by_hand, rtol=1e-5, atol=1e-6)
    zt = f.transform_logits(x, n=8)  # each symmetry once: row k is DIHEDRAL[k], prefixes are the tta means
    assert zt.shape == (8, 12)
    np.testing.assert_allclose(zt[0], f.logits(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(zt[:4].mean(axis=0), by_hand, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="tta must be"):
        f.transform_logits(x, n=5)
    # a cutout that is already symmetric scores the same under every transform
    sym = x[:1] + x[:1, :, ::-1] + x[:1, :, :, ::-1] + x[:1, :, ::-1, ::-1]
    sym = sym + np.swapaxes(sym, -1, -2)
    np.testing.assert_allclose(f.logits(sym, tta=8), f.logits(sym), rtol=1e-4, atol=1e-5)
    # predicting with tta needs a threshold chosen for it, and says so before any work
    with pytest.raises(ValueError, match="set_threshold"):
        f.predict(ds, tta=4)
    with pytest.raises(ValueError, match="tta must be"):
        f.predict(ds, tta=3)
    fresh = DeepLensFinder(arch_kwargs={"units_per_stage": 1})
    fresh.network.load_state_dict(f.network.state_dict())
    assert fresh.threshold_fpr is None
    t2 = fresh.set_threshold(ds, tta=2, fpr=0.02)  # a finder without any threshold gets the tta=1 one too
    assert fresh.threshold_fpr == 0.02 and fresh.threshold != 0.5 and fresh.tta_thresholds == {2: t2}
    thr = f.set_threshold(ds, tta=(1, 4))
    assert set(thr) == {1, 4} and f.threshold == thr[1] and f.tta_thresholds == {4: thr[4]}
    from lenskit.estimators.finder_metrics import threshold_at_fpr
    y = np.asarray(ds.params["is_lens"], bool)
    assert thr[4] == pytest.approx(1 / (1 + np.exp(-threshold_at_fpr(f.logits(ds, tta=4), y, 0.01))), rel=1e-5)
    est = f.predict(ds, tta=4)
    p = est.table["p_lens"].value
    assert est.table.meta["threshold"] == thr[4] and est.table.meta["tta"] == 4
    np.testing.assert_array_equal(est.table["candidate"], p >= thr[4])
    # the realised false-positive rate on the set it was chosen on is at most the target
    assert np.mean(p[~np.asarray(ds.params["is_lens"], bool)] >= thr[4]) <= 0.01 + 1e-9
    with pytest.raises(ValueError, match="fpr"):
        f.set_threshold(ds, fpr=0.05, tta=4)  # would mix rates with the tta=1 threshold
    f.save(tmp_path / "f.asdf")
    g = DeepLensFinder.load(tmp_path / "f.asdf")
    assert g.tta_thresholds == {4: pytest.approx(thr[4])}
    np.testing.assert_allclose(g.predict(ds, tta=4).table["p_lens"].value, p, rtol=1e-5, atol=1e-6)
    g.fit(ds, epochs=1, batch_size=64, progress=False)  # new weights: the old tta thresholds are gone
    assert g.tta_thresholds == {}


def test_finder_fine_tune_keeps_statistics(finder_data):
    _, ds = finder_data
    f = DeepLensFinder(arch_kwargs={"units_per_stage": 1})
    mean = np.full((1, 45, 45), 0.25, np.float32)
    f.network.pre.set_statistics(mean, np.array([0.5], np.float32))
    f.fit(ds, epochs=1, batch_size=64, progress=False, statistics=False)
    np.testing.assert_array_equal(f.network.pre.mean_image.numpy(), mean)
    assert float(f.network.pre.sigma[0]) == 0.5 and f.training["statistics_from_train"] is False
    f.fit(ds, epochs=1, batch_size=64, progress=False)  # the default takes them from the training set
    assert float(f.network.pre.sigma[0]) == pytest.approx(float(np.median(ds.noise)), rel=1e-3)


@pytest.mark.slow  # torch.compile of the ResNet: tens of seconds
@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++")), reason="torch.compile needs a C++ compiler")
def test_finder_compiled_predict_matches_eager(finder_data):
    _, ds = finder_data
    torch.manual_seed(1)
    f = DeepLensFinder(arch_kwargs={"units_per_stage": 1})
    f.set_statistics(ds)
    eager = f.predict(ds.images[:70], batch_size=32).table["p_lens"].value
    fast = f.predict(ds.images[:70], batch_size=32, compile=True).table["p_lens"].value  # includes a short batch
    np.testing.assert_allclose(fast, eager, atol=1e-5)
    # training, and new preprocessing statistics, invalidate the compiled graph, whose weights are frozen in
    f.fit(ds, epochs=1, batch_size=64, progress=False)
    np.testing.assert_allclose(f.predict(ds.images[:8], compile=True).table["p_lens"].value,
                               f.predict(ds.images[:8]).table["p_lens"].value, atol=1e-5)
    f.network.pre.set_statistics(np.zeros((1, 45, 45), np.float32), np.array([3.0], np.float32))
    np.testing.assert_allclose(f.predict(ds.images[:8], compile=True).table["p_lens"].value,
                               f.predict(ds.images[:8]).table["p_lens"].value, atol=1e-5)


def test_focal_loss_against_its_definition():
    rng = np.random.default_rng(5)
    z = torch.as_tensor(rng.normal(0, 4, 500))
    y = torch.as_tensor((rng.random(500) < 0.5).astype(float))
    ce = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
    assert float(focal_loss(z, y, 0.0)) == pytest.approx(float(ce), rel=1e-12)
    p = 1 / (1 + np.exp(-z.numpy()))
    pt = np.where(y.numpy() > 0.5, p, 1 - p)
    want = np.mean((1 - pt) ** 2 * -np.log(pt))
    assert float(focal_loss(z, y, 2.0)) == pytest.approx(want, rel=1e-9)
    # easy cutouts weigh less: a confidently right one loses far more of its weight than a wrong one
    easy, hard = torch.tensor([6.0]), torch.tensor([-1.0])
    one = torch.tensor([1.0])
    ratio_easy = float(focal_loss(easy, one, 2.0) / focal_loss(easy, one, 0.0))
    ratio_hard = float(focal_loss(hard, one, 2.0) / focal_loss(hard, one, 0.0))
    assert ratio_easy < 1e-4 < 0.5 < ratio_hard
    # finite for extreme logits, with gradients
    zz = torch.tensor([-200.0, 200.0, 0.0], requires_grad=True)
    out = focal_loss(zz, torch.tensor([1.0, 0.0, 1.0]), 2.0)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(zz.grad).all()


def test_finder_fit_focal_loss(finder_data):
    _, ds = finder_data
    f = DeepLensFinder(arch_kwargs={"units_per_stage": 1})
    f.fit(ds, epochs=1, batch_size=64, progress=False, focal_gamma=2.0)
    assert f.training["focal_gamma"] == 2.0
    g = DeepLensFinder(arch_kwargs={"units_per_stage": 1})
    g.fit(ds, epochs=1, batch_size=64, progress=False)
    assert "focal_gamma" not in g.training  # the paper's loss, recorded as before
    for bad in (-1.0, float("nan"), 11.0):
        with pytest.raises(ValueError, match="focal_gamma"):
            DeepLensFinder(arch_kwargs={"units_per_stage": 1}).fit(ds, epochs=1, progress=False, focal_gamma=bad)


def test_finder_input_errors(finder_data):
    _, ds = finder_data
    f = DeepLensFinder(arch_kwargs={"units_per_stage": 1})
    with pytest.raises(ValueError, match=r"\(N, 1, 45, 45\)"):
        f.predict(np.zeros((2, 1, 57, 57)))
    bad = ds.images[:2].copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        f.predict(bad)
    from lenskit.core.dataset import LensDataset

    plain = LensDataset(ds.images[:4], {"theta_E": np.ones(4) * u.arcsec}, bands=["g"], pixel_scale=0.18)
    with pytest.raises(ValueError, match="is_lens"):
        f.fit(plain, epochs=1, progress=False)


def test_completeness_table(scores):
    s, y = scores
    rng = np.random.default_rng(1)
    params = {"is_lens": y, "theta_E": rng.uniform(0.3, 3, len(y)), "arc_snr": np.where(y, rng.uniform(0, 80, len(y)), 0)}
    t = completeness_table(s, params, fpr=0.01)
    assert t.meta["fpr_realised"] <= 0.01
    row = t[(t["theta_E_min"] == 0) & (t["snr_min"] == 0)][0]
    assert row["completeness"] == pytest.approx(tpr_at_fpr(s, y, 0.01))
    assert row["n_lenses"] == y.sum()


def test_background_sigma_ignores_the_sources():
    from lenskit.estimators.finder import background_sigma

    rng = np.random.default_rng(11)
    yy, xx = np.indices((45, 45))
    sky = []
    for _ in range(200):
        img = rng.normal(0.0, 0.1, (45, 45))
        sky.append(background_sigma(img))
        # a bright lens galaxy and two neighbours: their light is not noise
        for x0, y0, amp, w in ((22, 22, 30.0, 3.0), (35, 10, 3.0, 1.5), (8, 30, 1.0, 2.0)):
            img += amp * np.exp(-0.5 * ((xx - x0) ** 2 + (yy - y0) ** 2) / w**2)
        busy = background_sigma(img)
        assert abs(busy / 0.1 - 1) < 0.12
    sky = np.asarray(sky)
    # pure noise: 2% low (chance 2-sigma clusters are taken for sources), 1.6% scatter over 2,025 pixels
    assert -0.03 < np.mean(sky) / 0.1 - 1 < 0 and np.std(sky) / 0.1 < 0.03
    mask = np.zeros((45, 45), bool)
    mask[:, :30] = True
    img = rng.normal(0.0, 0.1, (45, 45))
    img[:, :30] = 1e3  # masked pixels count for nothing
    assert abs(background_sigma(img, mask) / 0.1 - 1) < 0.1
    assert np.isnan(background_sigma(np.full((45, 45), np.nan)))
