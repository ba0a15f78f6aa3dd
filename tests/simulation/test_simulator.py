import astropy.units as u
import numpy as np
import pytest
import torch

import lenskit
from lenskit.instruments.hst import HSTWFC3
from lenskit.lensing import image_positions
from lenskit.simulation.simulator import arc_snr


@pytest.fixture(scope="module")
def hst_small():
    return lenskit.Simulator(instrument=HSTWFC3(shape=(96, 96)), seed=11).sample(12)


def test_dataset_contents(hst_small):
    ds = hst_small
    assert ds.images.shape == (12, 1, 96, 96) and ds.images.dtype == np.float32
    assert ds.instrument == "hst_wfc3" and ds.bands == ("F814W",)
    assert ds.pixel_scale == 0.04 * u.arcsec
    t = ds.params
    for c in ("theta_E", "e1", "e2", "x0", "y0", "magnification", "arc_snr", "source_x", "source_y"):
        assert c in t.colnames
    assert t["theta_E"].unit == u.arcsec
    assert np.all(t["magnification"] >= 2)  # Hezaveh et al. selection
    assert np.all((t["theta_E"] >= 0.1 * u.arcsec) & (t["theta_E"] <= 3 * u.arcsec))
    assert np.all(np.abs(t["x0"]) <= 0.25 * u.arcsec)
    assert ds.noise.shape == ds.images.shape and np.all(ds.noise >= 0)
    assert ds.masks is not None and "arcs" in ds.truth
    assert np.all(np.isfinite(ds.images))


def test_same_seed_same_dataset():
    inst = HSTWFC3(shape=(64, 64))
    a = lenskit.Simulator(instrument=inst, seed=5).sample(6)
    b = lenskit.Simulator(instrument=HSTWFC3(shape=(64, 64)), seed=5).sample(6)
    c = lenskit.Simulator(instrument=HSTWFC3(shape=(64, 64)), seed=6).sample(6)
    assert a.images.tobytes() == b.images.tobytes()
    assert a == b
    assert not np.array_equal(a.images, c.images)


def test_output_depends_on_the_generator_not_on_history():
    # shards simulated by different processes in any order must agree: nothing cached (the cosmic-ray
    # bank included) may carry state from one call to the next
    sim = lenskit.Simulator(instrument=HSTWFC3(shape=(64, 64)), seed=1)
    assert any(e.name == "cosmic_rays" for e in sim.instrument.effects)
    sim.rng = np.random.default_rng(42)
    first = sim.sample(5)
    sim.rng = np.random.default_rng(7)
    sim.sample(9)  # something else in between
    sim.rng = np.random.default_rng(42)
    again = sim.sample(5)
    fresh = lenskit.Simulator(instrument=HSTWFC3(shape=(64, 64)), seed=np.random.default_rng(42)).sample(5)
    assert first == again == fresh


def test_sources_are_multiply_imaged():
    sim = lenskit.Simulator(instrument=HSTWFC3(shape=(64, 64), effects=[]), seed=3, selection=None,
                            caustic_margin=0.0, priors={"ellipticity": (0.0, 0.4), "theta_E": (0.5, 2.0)})
    ds = sim.sample(10)
    sie = lenskit.get("mass_model", "sie")()
    t = ds.params
    assert np.all(t["multiply_imaged"])
    for i in range(len(ds)):
        p = {k: float(getattr(t[k][i], "value", t[k][i])) for k in sie.param_names}
        bx, by = t["source_x"][i].value, t["source_y"][i].value
        imgs, _ = image_positions(sie, bx, by, **p)
        assert len(imgs) >= 1
        # the images counted exactly: the SIE's deflection depends only on the direction phi from its centre,
        # so x = r u(phi) is an image where beta - centre + alpha(u(phi)) is parallel to u(phi) (r > 0).  A
        # counter-image of a source just inside the cut lies a hair from the centre, where image_positions'
        # grid does not resolve it
        phi = torch.linspace(0, 2 * np.pi, 200001, dtype=torch.float64)
        ux, uy = torch.cos(phi), torch.sin(phi)
        ax, ay = sie.deflection_tensor(p["x0"] + 1e-3 * ux, p["y0"] + 1e-3 * uy,
                                       **{k: torch.tensor(v, dtype=torch.float64) for k, v in p.items()})
        vx, vy = bx - p["x0"] + ax, by - p["y0"] + ay
        cross = (vx * uy - vy * ux).numpy()
        along = (vx * ux + vy * uy).numpy()
        roots = np.nonzero((np.sign(cross[:-1]) != np.sign(cross[1:])) & (along[:-1] > 0))[0]
        assert len(roots) >= 2, (i, p)


def test_magnification_matches_point_source_images():
    """A tiny source's total magnification equals the sum of |mu| of its point images."""
    src = lenskit.get("source", "sersic")(R_e=0.01, n=1.0, ellipticity=0.0)
    inst = HSTWFC3(shape=(160, 160), effects=[])
    sim = lenskit.Simulator(source=src, instrument=inst, seed=21, selection=None, supersample=4, dtype=torch.float64,
                            priors={"ellipticity": (0.0, 0.3), "theta_E": (0.8, 1.5)}, caustic_margin=0.0)
    ds = sim.sample(4)
    sie = lenskit.get("mass_model", "sie")()
    t = ds.params
    for i in range(len(ds)):
        p = {k: float(getattr(t[k][i], "value", t[k][i])) for k in sie.param_names}
        _, mu = image_positions(sie, t["source_x"][i].value, t["source_y"][i].value, **p)
        assert t["magnification"][i] == pytest.approx(np.abs(mu).sum(), rel=0.03)


def test_lsst_and_euclid():
    ds = lenskit.Simulator(instrument="lsst", seed=1).sample(4)
    assert ds.images.shape == (4, 3, 57, 57) and ds.bands == ("g", "r", "i")
    assert np.all(ds.params["arc_snr"] > 20)  # Pearson et al. selection is the survey default
    assert "lens_light" in ds.truth
    # colour: the lens is redder than the source (i brighter than g, relative to the source)
    lens_gi = ds.truth["lens_light"][:, 0].sum((1, 2)) / ds.truth["lens_light"][:, 2].sum((1, 2))
    arc_gi = ds.truth["arcs"][:, 0].sum((1, 2)) / ds.truth["arcs"][:, 2].sum((1, 2))
    assert np.all(lens_gi < arc_gi)
    e = lenskit.Simulator(instrument="euclid_vis", seed=1).sample(2)
    assert e.images.shape == (2, 1, 57, 57) and e.pixel_scale == 0.1 * u.arcsec
    finder = lenskit.Simulator(instrument=lenskit.instruments.lsst.LSST.lanusse2018(), seed=2).sample(2)
    assert finder.images.shape == (2, 1, 45, 45)


def test_subtracted_lens_light_keeps_its_shot_noise():
    """lens_light="subtracted" is the lens-light observation minus its true profile, noise map unchanged."""
    kw = dict(source="sersic", instrument="lsst", seed=3)
    on = lenskit.Simulator(lens_light=True, **kw).sample(32)
    sub = lenskit.Simulator(lens_light="subtracted", **kw).sample(32)
    off = lenskit.Simulator(lens_light=False, **kw).sample(32)
    np.testing.assert_array_equal(sub.images, on.images - on.truth["lens_light"])
    np.testing.assert_array_equal(sub.noise, on.noise)
    assert sub.provenance.config["lens_light"] == "subtracted"
    # residuals are noise of the stated variance, larger where the lens is bright than without lens light
    r = (sub.images - sub.truth["arcs"]) / sub.noise
    assert abs(r.mean()) < 0.01 and r.std() == pytest.approx(1.0, abs=0.01)
    centre = (slice(None), slice(None), slice(24, 33), slice(24, 33))
    assert np.median(sub.noise[centre]) > 1.1 * np.median(off.noise[centre])  # 1.18 at this seed
    with pytest.raises(ValueError, match="lens_light must be"):
        lenskit.Simulator(lens_light="removed")


def test_misalignment_statistics():
    sim = lenskit.Simulator(instrument=lenskit.instruments.lsst.LSST(bands=("r",), stamp=24), seed=4, selection=None,
                            priors={"ellipticity": (0.2, 0.4)})
    p, extra = sim.drawer.lens(20000, np.random.default_rng(0))
    light = sim.drawer.light(20000, np.random.default_rng(1), extra["q"], extra["phi"])
    phi_l = 0.5 * np.arctan2(light["light_e2"], light["light_e1"])
    d = np.rad2deg((phi_l - extra["phi"] + np.pi / 2) % np.pi - np.pi / 2)
    assert d.std() == pytest.approx(10.0, rel=0.05)
    c = np.hypot(light["light_e1"], light["light_e2"])
    q_l = (1 - c) / (1 + c)
    assert np.median(extra["q"] / q_l) == pytest.approx(1.02, abs=0.01)


def test_stream_yields_training_batches():
    sim = lenskit.Simulator(instrument=HSTWFC3(shape=(48, 48)), seed=2)
    it = sim.stream(5, steps=2)
    batches = list(it)
    assert len(batches) == 2
    x, y, m = batches[0]
    assert x.shape == (5, 1, 48, 48) and y.shape == (5, 5) and m.shape == x.shape
    assert not torch.equal(batches[0][0], batches[1][0])
    assert torch.all(y[:, 0] > 0)


def test_write_read(tmp_path, hst_small):
    hst_small.write(tmp_path / "s.asdf")
    back = lenskit.read(tmp_path / "s.asdf")
    assert back == hst_small
    assert back.provenance.config["source"] == "sersic_clump"


def test_arc_snr_definition():
    arcs = torch.zeros(1, 1, 20, 20, dtype=torch.float64)
    arcs[0, 0, 5:10, 5:10] = 2.0  # 25 pixels of 2 sigma
    var = torch.ones_like(arcs)
    assert arc_snr(arcs, var)[0, 0] == pytest.approx(50 / 5)


def test_composite_lens_with_shear():
    sim = lenskit.Simulator(mass_model=["sie", "external_shear"], instrument=HSTWFC3(shape=(64, 64)), seed=8)
    ds = sim.sample(3)
    assert "gamma1" in ds.params.colnames and np.all(np.hypot(ds.params["gamma1"], ds.params["gamma2"]) <= 0.1)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(instrument="jwst"), lenskit.LenskitPluginError, "unknown instrument 'jwst'"),
    (dict(priors={"theta_e": (1, 2)}), ValueError, "unknown prior 'theta_e'"),
    (dict(priors={"theta_E": (-1.0, 0.0)}), ValueError, "theta_E must be > 0"),
    (dict(supersample=0), ValueError, "supersample"),
    (dict(selection="strict"), ValueError, "selection must be"),
    (dict(dtype=torch.int32), ValueError, "dtype"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        lenskit.Simulator(**kwargs).sample(1)


def test_unknown_band():
    with pytest.raises(ValueError, match=r"unknown band\(s\) \['q'\]"):
        lenskit.get("instrument", "lsst")(bands=("g", "q"))


def test_truth_is_made_when_first_read():
    """The noise-free components are concatenated on first read, from chunks nothing else reuses."""
    import pickle

    from lenskit.core.dataset import LazyArrays
    from lenskit.instruments.lsst import LSST

    def sim():
        return lenskit.Simulator(source="sersic", instrument=LSST(), seed=3, chunk_size=8, selection=None)

    late = sim().sample(20)
    assert isinstance(late.truth, LazyArrays)
    assert "arcs" in late.truth and "lens_light" in late.truth and len(late.truth) == 2
    assert late.truth.pending() == ["arcs", "lens_light"]  # membership made nothing
    assert "not made yet" in repr(late.truth)
    s = sim()
    early = s.sample(20)
    arcs, light = early.truth["arcs"], early.truth["lens_light"]
    s.sample(40)  # more rendering in the meantime must not touch the first dataset's chunks
    assert late.truth["arcs"].tobytes() == arcs.tobytes()
    assert late.truth.pending() == ["lens_light"]
    assert late.truth["arcs"] is late.truth["arcs"]  # made once
    assert arcs.shape == late.images.shape and arcs.dtype == np.float32
    # noise-free arcs plus lens light plus noise is the image: the truth belongs to these images
    r = (late.images - arcs - light) / late.noise
    assert abs(float(r.mean())) < 0.05 and 0.9 < float(r.std()) < 1.1
    # slicing, pickling and equality read them all
    other = sim().sample(20)
    np.testing.assert_array_equal(other[3:7].truth["lens_light"], light[3:7])
    back = pickle.loads(pickle.dumps(sim().sample(20)))
    assert back == late and back.truth["lens_light"].tobytes() == light.tobytes()
    assert sim().sample(20, keep_truth=False).truth == {}


def test_lazy_arrays_check_and_edit():
    from lenskit.core.dataset import LazyArrays

    images = np.zeros((2, 1, 4, 4), np.float32)
    calls = []

    def good():
        calls.append(1)
        return np.ones((2, 1, 4, 4))

    ds = lenskit.LensDataset(images, {"theta_E": [1, 1] * u.arcsec}, bands=["g"], pixel_scale=0.2,
                             truth=LazyArrays({"arcs": good, "bad": lambda: np.ones((2, 1, 3, 3)),
                                               "nan": lambda: np.full((2, 1, 4, 4), np.nan)}))
    assert not calls  # nothing made, nothing checked yet
    assert ds.truth["arcs"].dtype == np.float32 and calls == [1]
    with pytest.raises(ValueError, match=r"truth\['bad'\] must have the shape of images"):
        ds.truth["bad"]
    with pytest.raises(ValueError, match=r"truth\['nan'\] contains 32 NaN"):
        ds.truth["nan"]
    ds.truth["extra"] = np.zeros((2, 1, 4, 4), np.float32)
    del ds.truth["bad"]
    assert list(ds.truth) == ["arcs", "nan", "extra"]
    with pytest.raises(KeyError):
        ds.truth["missing"]
    with pytest.raises(KeyError):
        del ds.truth["missing"]


def test_deferred_noise_is_checked_when_read():
    from lenskit.core.dataset import Deferred

    images = np.zeros((2, 1, 4, 4), np.float32)
    made = []

    def neg():
        made.append(1)
        return -np.ones((2, 1, 4, 4))

    ds = lenskit.LensDataset(images, {"theta_E": [1, 1] * u.arcsec}, bands=["g"], pixel_scale=0.2,
                             noise=Deferred(neg))
    assert not made
    with pytest.raises(ValueError, match="noise must be >= 0"):
        ds.noise
    ds.noise = np.ones((2, 1, 4, 4))
    assert ds.noise.dtype == np.float32
    ds.noise = None
    assert ds.noise is None
    with pytest.raises(ValueError, match="noise must have the shape"):
        ds.noise = np.ones((2, 1, 3, 3))
    with pytest.raises(TypeError, match="make must be callable"):
        Deferred(np.ones(3))
    assert isinstance(lenskit.Simulator(instrument=HSTWFC3(shape=(32, 32)), seed=1).sample(2).noise, np.ndarray)
