"""The Simulator in parts (drawing, placement, rendering, assembly) and from_config reproducing a dataset."""

import astropy.units as u
import numpy as np
import pytest

import lenskit
from lenskit import Simulator
from lenskit.core.config import ConfigError, describe, encode, rebuild
from lenskit.core.interfaces import Instrument
from lenskit.core.priors import Uniform
from lenskit.simulation.drawing import SystemDrawer, build_priors
from lenskit.simulation.placement import SourcePlacer
from lenskit.simulation.rendering import StampRenderer


def _same(a, b):
    assert np.array_equal(a.images, b.images) and np.array_equal(a.noise, b.noise)
    assert (a.masks is None) == (b.masks is None) and (a.masks is None or np.array_equal(a.masks, b.masks))
    assert a.params.colnames == b.params.colnames
    for c in a.params.colnames:
        assert np.array_equal(np.asarray(a.params[c]), np.asarray(b.params[c])), c


@pytest.mark.parametrize("make", [
    lambda: Simulator(seed=1),
    lambda: Simulator(["sie", "external_shear"], "sersic", instrument="lsst", seed=3, supersample=2,
                      priors={"theta_E": (0.8 * u.arcsec, 1.2 * u.arcsec)}, line_of_sight=True),
    lambda: Simulator(instrument="euclid_vis", seed=4, lens_light="subtracted", selection=3.0, split="test"),
    lambda: Simulator(instrument=lenskit.get("instrument", "hst_wfc3")(psf=np.ones((5, 5)) / 25,
                                                                       psf_pixel_scale=0.04), source="mixture", seed=7),
    lambda: Simulator(instrument=lenskit.get("instrument", "lsst").lanusse2018(mode="single_epoch"), source="sersic",
                      seed=8, lens_light=True),
], ids=["hst", "lsst_shear_los", "euclid_subtracted", "image_psf_mixture", "lsst_epoch_seeing"])
def test_from_config_reproduces_a_dataset_bit_for_bit(make, tmp_path):
    ds = make().sample(12)
    ds.write(tmp_path / "d.asdf")
    back = lenskit.read(tmp_path / "d.asdf")
    again = Simulator.from_config(back.provenance.config).sample(12)
    _same(ds, again)
    # another seed gives another dataset
    other = Simulator.from_config(back.provenance.config, seed=99).sample(12)
    assert not np.array_equal(other.images, ds.images)


def test_from_config_refuses_what_it_cannot_rebuild():
    config = Simulator(seed=1).config
    with pytest.raises(ValueError, match="no 'build' entry"):
        Simulator.from_config({k: v for k, v in config.items() if k != "build"})
    evil = {**config, "build": {**config["build"], "source": {"class": "os:system", "args": {}}}}
    with pytest.raises(ConfigError, match="not a lenskit class"):
        Simulator.from_config(evil)
    wrong = {**config, "build": {**config["build"], "source": {"class": "lenskit.core.files:atomic_open", "args": {}}}}
    with pytest.raises(ConfigError, match="is not a Source"):
        Simulator.from_config(wrong)
    with pytest.raises(TypeError, match="unknown Simulator argument"):
        Simulator.from_config(config, colour="red")
    with pytest.raises(TypeError, match="config must be a dict"):
        Simulator.from_config([1, 2])
    # an override replaces what the config says
    sim = Simulator.from_config(config, instrument="lsst", chunk_size=4)
    assert sim.instrument.name == "lsst" and sim.chunk_size == 4


def test_describe_and_rebuild_round_trip():
    inst = lenskit.get("instrument", "lsst")(bands=("g", "i"), pixel_scale=0.2 * u.arcsec)
    spec = describe(inst)
    assert spec["class"] == "lenskit.instruments.lsst:LSST"
    again = rebuild(spec, Instrument)
    assert again.bands == ("g", "i") and describe(again) == spec
    with pytest.raises(ConfigError, match=r"config\['x'\]\[1\]: a object cannot be recorded"):
        encode({"x": [1, object()]})


def test_drawer_follows_its_priors():
    inst = lenskit.get("instrument", "lsst")()
    sie = lenskit.get("mass_model", "sie")()
    priors = build_priors({"theta_E": Uniform(1.0, 2.0), "ellipticity": (0.0, 0.4)}, inst, sie)
    d = SystemDrawer(sie, inst, priors)
    p, extra = d.lens(20000, np.random.default_rng(0))
    assert 1.0 <= p["theta_E"].min() and p["theta_E"].max() <= 2.0
    assert np.mean(p["theta_E"]) == pytest.approx(1.5, abs=0.01)
    e = np.hypot(p["e1"], p["e2"])
    assert e.max() <= (0.4 / 1.6) + 1e-12  # e = (1-q)/(1+q) with 1-q <= 0.4
    with pytest.raises(ValueError, match="unknown prior 'colour'"):
        build_priors({"colour": 1.0}, inst, sie)


def test_placer_puts_sources_inside_the_multiply_imaged_region():
    sie = lenskit.get("mass_model", "sie")()
    rng = np.random.default_rng(1)
    n = 200
    p = {"theta_E": rng.uniform(0.8, 1.5, n), "e1": rng.uniform(-0.2, 0.2, n), "e2": rng.uniform(-0.2, 0.2, n),
         "x0": np.zeros(n), "y0": np.zeros(n)}
    extra = {"theta_E": p["theta_E"], "x0": p["x0"], "y0": p["y0"]}
    beta, inside = SourcePlacer(sie, caustic_margin=0.0).place(p, extra, rng)
    assert inside.mean() > 0.99
    # an SIE's cut lies at |beta| = |alpha(direction)|: theta_E for the SIS, a little more for these ellipticities
    assert np.all(np.hypot(*beta.T) < 1.2 * p["theta_E"])


def test_renderer_conserves_flux_of_an_unlensed_point_like_source():
    """With theta_E -> 0 a compact source keeps its flux: the rendered arcs integrate to the source flux."""
    inst = lenskit.get("instrument", "lsst")(bands=("i",))
    sie = lenskit.get("mass_model", "sie")()
    src_model = lenskit.get("source", "sersic")(R_e=(0.3, 0.3), n=(1.0, 1.0), ellipticity=(0.0, 0.0))
    src = src_model.sample(2, np.random.default_rng(2))
    r = StampRenderer(sie, inst, supersample=4)
    params = {"theta_E": np.array([1e-4, 1e-4]), "e1": np.zeros(2), "e2": np.zeros(2), "x0": np.zeros(2),
              "y0": np.zeros(2)}
    arcs, lens, mu = r.render(params, np.zeros((2, 2)), src, np.array([[100.0], [50.0]]))
    assert lens is None
    assert mu == pytest.approx([1.0, 1.0], abs=2e-3)
    assert arcs.sum(dim=(1, 2, 3)).numpy() == pytest.approx([100.0, 50.0], rel=2e-3)
