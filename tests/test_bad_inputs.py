"""
Bad input, as a hostile user would give it, across the API and the CLI.

Every case asserts the error's type, that its message names the argument (or
the file), that it comes before any expensive work (simulating, a network
pass, an optimiser step or an ASDF write all raise `WorkStarted` while a case
runs, and a case must finish within seconds), and that nothing is written or
changed: neither in the working directory nor among the input files.
"""

import contextlib
import os
import re
import time
from types import SimpleNamespace

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable

import lenskit
import lenskit.datasets as lds
from lenskit.cli import main
from lenskit.core import LenskitCorruptFileError, LenskitFileError, LenskitPluginError
from lenskit.core.weights import ModelWeights
from lenskit.estimators.pretrained import WEIGHTS_DIR
from lenskit.io import read_images
from lenskit.io.fits import read_cutout


class WorkStarted(BaseException):
    """Raised by the guarded expensive calls: a bad input reached them."""


def _refuse(*args, **kwargs):
    raise WorkStarted("expensive work started before the bad input was refused")


@pytest.fixture
def guard(monkeypatch):
    """Make simulating, network passes, optimiser steps and ASDF writes raise `WorkStarted`."""
    import asdf
    import torch

    from lenskit.simulation.simulator import Simulator

    @contextlib.contextmanager
    def active():
        with monkeypatch.context() as m:
            m.setattr(Simulator, "simulate", _refuse)
            m.setattr(torch.nn.Module, "__call__", _refuse)
            m.setattr(torch.optim.Adam, "step", _refuse)
            m.setattr(torch.optim.LBFGS, "step", _refuse)
            m.setattr(asdf.AsdfFile, "write_to", _refuse)
            yield

    return active


def _snapshot(*dirs):
    out = {}
    for d in dirs:
        for root, _, names in os.walk(d):
            for n in names:
                p = os.path.join(root, n)
                st = os.stat(p)
                out[p] = (st.st_size, st.st_mtime_ns)
    return out


# -- the inputs the cases use, made once ------------------------------------------------------------------------
def _flip_block(raw, start=200, n=400):
    b = bytearray(raw)
    i = b.find(b"\xd3BLK")
    for k in range(n):
        b[i + start + k] ^= 0xFF
    return bytes(b)


def _zero_checksums_and_flip(raw):
    """Corrupt the first block and blank asdf's block checksum (all zeros: asdf then skips it)."""
    b = bytearray(raw)
    i = b.find(b"\xd3BLK")
    # block header: magic (4), header size (2), flags (4), compression (4), allocated (8), used (8), data (8),
    # checksum (16)
    ck = i + 4 + 2 + 4 + 4 + 8 + 8 + 8
    b[ck:ck + 16] = bytes(16)
    hsize = int.from_bytes(b[i + 4:i + 6], "big")
    data = i + 6 + hsize
    for k in range(64):
        b[data + 100 + k] ^= 0xFF
    return bytes(b)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    lsst = lenskit.Simulator(instrument="lsst", seed=5).sample(2)
    lsst.write(d / "lsst.asdf")
    lsst_r = lenskit.Simulator(instrument=lenskit.get("instrument", "lsst")(bands=("r",)), seed=6).sample(2)
    lsst_r.write(d / "lsst_r.asdf")
    rng = np.random.default_rng(0)
    hst01 = lenskit.LensDataset(rng.normal(size=(2, 1, 192, 192)).astype(np.float32), QTable({"i": [0, 1]}),
                                bands=["F814W"], pixel_scale=0.1, instrument="hst_wfc3")
    raw = (d / "lsst.asdf").read_bytes()
    (d / "text.asdf").write_text("this is not ASDF\n")
    (d / "empty.asdf").write_bytes(b"")
    (d / "truncated.asdf").write_bytes(raw[: len(raw) // 2])
    (d / "flipped.asdf").write_bytes(_flip_block(raw))
    (d / "sha_mismatch.asdf").write_bytes(_zero_checksums_and_flip(raw))
    (d / "undeclared.asdf").write_bytes(raw.replace(b"  pixel_scale:", b"  bogus: 3\n  pixel_scale:", 1))
    (d / "external.asdf").write_bytes(raw.replace(b"    source: 0\n", b"    source: other.asdf\n", 1))
    head = b"#ASDF 1.0.0\n#ASDF_STANDARD 1.5.0\n%YAML 1.1\n%TAG ! tag:stsci.edu:asdf/\n--- !core/asdf-1.1.0\n"
    bomb = head + b"a: &a [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(
        b"%s: &%s [%s]\n" % (chr(98 + k).encode(), chr(98 + k).encode(),
                            b", ".join([b"*" + chr(97 + k).encode()] * 10)) for k in range(8)) + b"...\n"
    assert len(bomb) < 600
    (d / "bomb.asdf").write_bytes(bomb)
    (d / "loop.asdf").write_bytes(head + b"a: &a [1, *a]\n...\n")
    w = (WEIGHTS_DIR / "euclid_vis.asdf").read_bytes()
    mean = re.search(rb"      mean: \[([0-9.]+),", w)
    (d / "weights_edited.asdf").write_bytes(w.replace(mean.group(0), b"      mean: [2.3706371784210205,", 1))
    (d / "weights_unsealed.asdf").write_bytes(re.sub(rb"  config_checksum: sha256:[0-9a-f]{64}\n", b"", w, 1))
    est = lenskit.load_estimator("euclid_vis")
    cfg = est.weights().config
    big = ModelWeights("lenskit_net", est.weights().arrays,
                       config={**cfg, "arch_kwargs": {**cfg["arch_kwargs"], "width": 100000}},
                       metrics=est.metrics)
    big.write(d / "weights_huge.asdf")
    fits.PrimaryHDU(rng.normal(size=(64, 64))).writeto(d / "nowcs.fits")
    hdr = fits.Header({"PIXSCALE": 0.05})
    fits.PrimaryHDU(rng.normal(size=(64, 64)).astype(np.float32), header=hdr).writeto(d / "cutout.fits")
    fits.PrimaryHDU(rng.normal(size=(3, 57, 57)).astype(np.float32)).writeto(d / "cube.fits")
    fits.PrimaryHDU(rng.normal(size=(3, 57, 57)).astype(np.float32), header=fits.Header({"PIXSCALE": 0.2})).writeto(
        d / "cube_0.2.fits")
    fits.PrimaryHDU(rng.normal(size=(3, 45, 45)).astype(np.float32), header=fits.Header({"PIXSCALE": 0.25})).writeto(
        d / "finder_cube_0.25.fits")
    return SimpleNamespace(d=d, lsst=lsst, lsst_r=lsst_r, hst01=hst01)


@pytest.fixture
def ctx(inputs, tmp_path, monkeypatch):
    out = tmp_path / "work"
    out.mkdir()
    monkeypatch.chdir(out)
    return SimpleNamespace(**vars(inputs), out=out, p=lambda name: str(inputs.d / name))


# -- API cases: (call, exception type, regular expression the message must match) -----------------------------
def sim(**kw):
    return lenskit.Simulator(**kw)


def _lsst_gri_reordered(c):
    ds = c.lsst
    return lenskit.LensDataset(ds.images[:, ::-1], ds.params, bands=["i", "r", "g"], pixel_scale=ds.pixel_scale,
                               instrument="lsst", provenance=ds.provenance)


def _model_lens(*args, **kwargs):
    from lenskit.modelling import model_lens  # heavy (torch, the fit): only for these cases

    return model_lens(*args, **kwargs)


def _cutout(**kw):
    from lenskit.io.fits import Cutout

    args = {"image": np.ones((32, 32)), "pixel_scale": 0.05, **kw}
    return Cutout(args.pop("image"), args.pop("pixel_scale"), **args)


def _fit(**kw):
    args = {"image": np.ones((32, 32)), "noise": np.ones((32, 32)), "pixel_scale": 0.05, **kw}
    return lenskit.fit(args.pop("image"), args.pop("noise"), args.pop("pixel_scale"), **args)


UC = u.UnitConversionError
API = [
    # Simulator construction
    ("sim priors theta_E km/s", lambda c: sim(priors={"theta_E": (1 * u.km / u.s, 2 * u.km / u.s)}), UC,
     r"priors\['theta_E'\]"),
    ("sim priors theta_E str", lambda c: sim(priors={"theta_E": "big"}), TypeError, r"priors\['theta_E'\]"),
    ("sim priors theta_E nan", lambda c: sim(priors={"theta_E": (np.nan, 1.0)}), ValueError, r"priors\['theta_E'\]"),
    ("sim priors theta_E inverted", lambda c: sim(priors={"theta_E": (2.0, 1.0)}), ValueError,
     r"priors\['theta_E'\]"),
    ("sim priors loguniform negative", lambda c: sim(priors={"theta_E": {"loguniform": [-1, 2]}}), ValueError,
     r"priors\['theta_E'\]"),
    ("sim priors normal negative sigma", lambda c: sim(priors={"theta_E": {"normal": [1, -1]}}), ValueError,
     r"priors\['theta_E'\]"),
    ("sim priors unknown kind", lambda c: sim(priors={"theta_E": {"gamma": [1, 2]}}), TypeError,
     r"priors\['theta_E'\]"),
    ("sim priors three-tuple", lambda c: sim(priors={"theta_E": (1, 2, 3)}), TypeError, r"priors\['theta_E'\]"),
    ("sim priors Quantity array", lambda c: sim(priors={"theta_E": [1, 2, 3] * u.arcsec}), ValueError,
     r"priors\['theta_E'\]"),
    ("sim priors lens_mag arcsec", lambda c: sim(priors={"lens_mag": 19 * u.arcsec}), UC, r"priors\['lens_mag'\]"),
    ("sim priors ellipticity arcsec", lambda c: sim(priors={"ellipticity": (0 * u.arcsec, 1 * u.arcsec)}), UC,
     r"priors\['ellipticity'\]"),
    ("sim priors unknown key", lambda c: sim(priors={"thetaE": 1.0}), ValueError, r"unknown prior 'thetaE'"),
    ("sim priors not a dict", lambda c: sim(priors=[1, 2]), TypeError, r"priors"),
    ("sim colour_scatter arcsec", lambda c: sim(priors={"colour_scatter": 1 * u.arcsec}), UC, r"colour_scatter"),
    ("sim colour_scatter str", lambda c: sim(priors={"colour_scatter": "x"}), TypeError, r"colour_scatter"),
    ("sim chunk_size 0", lambda c: sim(chunk_size=0), ValueError, r"chunk_size"),
    ("sim split typo", lambda c: sim(split="training"), ValueError, r"split"),
    ("sim device unparsable", lambda c: sim(device="tpu9"), ValueError, r"device"),
    ("sim device absent", lambda c: sim(device="cuda:7"), ValueError, r"device 'cuda:7'"),
    ("estimator device absent", lambda c: lenskit.load_estimator("euclid_vis", device="cuda:7"), ValueError,
     r"device 'cuda:7'"),
    ("render rows disagree", lambda c: _render(source_positions=np.zeros((2, 2))), ValueError,
     r"params\['theta_E'\].*one value per system"),
    ("render theta_E nan", lambda c: _render(theta_E=[np.nan]), ValueError, r"params\['theta_E'\].*finite"),
    ("render theta_E negative", lambda c: _render(theta_E=[-1.0]), ValueError, r"theta_E must be > 0"),
    ("render theta_E kg", lambda c: _render(theta_E=[1.0] * u.kg), UC, r"params\['theta_E'\]"),
    ("render positions 1-D", lambda c: _render(source_positions=[0.1, 0.0]), ValueError, r"source_positions"),
    ("render flux negative", lambda c: _render(source_flux=[-1.0]), ValueError, r"source_flux"),
    ("render light index in arcsec", lambda c: _render(light={"light_R_e": [1.0], "light_n": [4.0] * u.arcsec,
                                                              "light_e1": [0.0], "light_e2": [0.0]}), UC,
     r"light\['light_n'\] must be in units convertible to dimensionless"),
    ("render light without flux", lambda c: _render(light={"light_R_e": [1.0], "light_n": [4.0],
                                                            "light_e1": [0.0], "light_e2": [0.0]}), ValueError,
     r"lens_flux"),
    ("fit init misspelt", lambda c: lenskit.fit(np.ones((20, 20)), np.ones((20, 20)), 0.05, init={"thetaE": 1.0}),
     ValueError, r"init: unknown parameter\(s\) \['thetaE'\]"),
    ("fit init nan", lambda c: lenskit.fit(np.ones((20, 20)), np.ones((20, 20)), 0.05, init={"theta_E": np.nan}),
     ValueError, r"init\['theta_E'\] must be finite"),
    ("fit init str", lambda c: lenskit.fit(np.ones((20, 20)), np.ones((20, 20)), 0.05, init={"theta_E": "big"}),
     TypeError, r"init\['theta_E'\]"),
    # sources
    ("sersic_clump size reaching 0", lambda c: lenskit.get("source", "sersic_clump")(size=(-0.1, 0.5)), ValueError,
     r"size must stay > 0"),
    ("sersic n beyond 10", lambda c: lenskit.get("source", "sersic")(n=(1, 12)), ValueError, r"n must stay"),
    ("sersic R_e from 0", lambda c: lenskit.get("source", "sersic")(R_e=(0, 1)), ValueError, r"R_e must stay > 0"),
    # plots
    ("plot_gallery of an array", lambda c: _plotting().plot_gallery(c.lsst.images), TypeError, r"dataset"),
    ("plot_gallery ncols 0", lambda c: _plotting().plot_gallery(c.lsst, ncols=0), ValueError, r"ncols"),
    ("plot_gallery estimate rows", lambda c: _plotting().plot_gallery(c.lsst, estimate=lenskit.Estimate(
        QTable({"theta_E": [1.0] * u.arcsec}))), ValueError, r"estimate must have one row per system"),
    ("plot_predicted_vs_true unknown target", lambda c: _plotting().plot_predicted_vs_true(
        lenskit.Estimate(QTable({"theta_E": [1.0, 1.1] * u.arcsec})), c.lsst.params, targets=["thetaE"]),
     ValueError, r"targets must be columns of both"),
    ("plot_predicted_vs_true rows", lambda c: _plotting().plot_predicted_vs_true(
        lenskit.Estimate(QTable({"theta_E": [1.0] * u.arcsec})), c.lsst.params), ValueError, r"same rows"),
    ("show_image stretch", lambda c: _plotting().show_image(None, np.ones((4, 4)), 0.2, stretch="cubic"),
     ValueError, r"stretch"),
    ("show_image all NaN", lambda c: _plotting().show_image(None, np.full((4, 4), np.nan), 0.2), ValueError,
     r"image has no finite pixel"),
    ("show_image pixel_scale 0", lambda c: _plotting().show_image(None, np.ones((4, 4)), 0), ValueError,
     r"pixel_scale"),
    ("plot_roc without labels", lambda c: _plotting().plot_roc(np.zeros(2), c.lsst.params), ValueError,
     r"is_lens"),
    # datasets
    ("dataset index out of range", lambda c: c.lsst[5], IndexError, r"index 5 is out of range.*2 system"),
    ("dataset empty slice", lambda c: c.lsst[5:9], IndexError, r"selects none"),
    ("dataset bool index", lambda c: c.lsst[True], TypeError, r"index"),
    ("dataset mask too short", lambda c: c.lsst[np.array([True])], IndexError, r"index"),
    ("estimate index out of range", lambda c: lenskit.Estimate(QTable({"theta_E": [1.0] * u.arcsec}))[1],
     IndexError, r"index 1 is out of range for an estimate of 1 row"),
    ("estimate unknown column", lambda c: lenskit.Estimate(QTable({"theta_E": [1.0] * u.arcsec}))["thetaE"],
     KeyError, r"no column 'thetaE'"),
    ("estimate index a float", lambda c: lenskit.Estimate(QTable({"theta_E": [1.0] * u.arcsec}))[0.5],
     IndexError, r"index"),
    ("sim chunk_size 1.5", lambda c: sim(chunk_size=1.5), ValueError, r"chunk_size"),
    ("sim chunk_size text", lambda c: sim(chunk_size="8"), TypeError, r"chunk_size"),
    ("sim supersample 0", lambda c: sim(supersample=0), ValueError, r"supersample"),
    ("sim caustic_margin -1", lambda c: sim(caustic_margin=-1), ValueError, r"caustic_margin"),
    ("sim caustic_margin nan", lambda c: sim(caustic_margin=np.nan), ValueError, r"caustic_margin"),
    ("sim max_tries 0", lambda c: sim(max_tries=0), ValueError, r"max_tries"),
    ("sim max_tries str", lambda c: sim(max_tries="many"), TypeError, r"max_tries"),
    ("sim lens_light maybe", lambda c: sim(lens_light="maybe"), ValueError, r"lens_light"),
    ("sim lens_light 2", lambda c: sim(lens_light=2), ValueError, r"lens_light"),
    ("sim dtype float16", lambda c: sim(dtype=np.float16), ValueError, r"dtype"),
    ("sim seed -1", lambda c: sim(seed=-1), ValueError, r"seed"),
    ("sim seed str", lambda c: sim(seed="abc"), TypeError, r"seed"),
    ("sim mass_model unknown", lambda c: sim(mass_model="nfw_typo"), LenskitPluginError, r"mass_model 'nfw_typo'"),
    ("sim source unknown", lambda c: sim(source="nope"), LenskitPluginError, r"source 'nope'"),
    ("sim instrument unknown", lambda c: sim(instrument="jwst_typo"), LenskitPluginError, r"instrument 'jwst_typo'"),
    ("sim mass_model int", lambda c: sim(mass_model=5), TypeError, r"mass_model"),
    ("sim line_of_sight str", lambda c: sim(line_of_sight="yes"), TypeError, r"line_of_sight"),
    ("sim mass parameter without prior", lambda c: sim(mass_model=["sie", "external_shear"],
                                                         priors={"gamma": "x"}), TypeError, r"priors\['gamma'\]"),
    # Simulator.sample / stream
    ("sample 0", lambda c: sim(seed=1).sample(0), ValueError, r"\bn\b"),
    ("sample -1", lambda c: sim(seed=1).sample(-1), ValueError, r"\bn\b"),
    ("sample None", lambda c: sim(seed=1).sample(None), TypeError, r"\bn\b"),
    ("sample nan", lambda c: sim(seed=1).sample(np.nan), ValueError, r"\bn\b"),
    ("sample 1.5", lambda c: sim(seed=1).sample(1.5), ValueError, r"\bn\b"),
    ("sample str", lambda c: sim(seed=1).sample("10"), TypeError, r"\bn\b"),
    ("sample 10**9 (memory)", lambda c: sim(seed=1).sample(10**9), ValueError, r"n=1000000000 needs about .*stream"),
    ("sample 10**7 lsst (memory)", lambda c: sim(instrument="lsst", seed=1).sample(10**8), ValueError,
     r"n=100000000 needs"),
    ("stream batch 0", lambda c: next(sim(seed=1).stream(0)), ValueError, r"batch_size"),
    ("stream batch 10**9 (memory)", lambda c: next(sim(seed=1).stream(10**9)), ValueError, r"batch_size=1000000000"),
    ("stream batch None", lambda c: next(sim(seed=1).stream(None)), TypeError, r"batch_size"),
    ("stream steps 0", lambda c: next(sim(seed=1).stream(4, steps=0)), ValueError, r"steps"),
    ("stream unknown target", lambda c: next(sim(seed=1).stream(4, targets=["sigma_v_typo"])), ValueError,
     r"target"),
    # instruments and effects
    ("hst pixel_scale km", lambda c: lenskit.get("instrument", "hst_wfc3")(pixel_scale=1 * u.km), UC,
     r"pixel_scale"),
    ("hst pixel_scale str", lambda c: lenskit.get("instrument", "hst_wfc3")(pixel_scale="0.04"), TypeError,
     r"pixel_scale"),
    ("hst pixel_scale -0.04", lambda c: lenskit.get("instrument", "hst_wfc3")(pixel_scale=-0.04), ValueError,
     r"pixel_scale"),
    ("hst shape 2x2", lambda c: lenskit.get("instrument", "hst_wfc3")(shape=(2, 2)), ValueError, r"shape"),
    ("lsst pixel_scale seconds", lambda c: lenskit.get("instrument", "lsst")(pixel_scale=0.2 * u.s), UC,
     r"pixel_scale"),
    ("lsst seeing str", lambda c: lenskit.get("instrument", "lsst")(seeing="good"), TypeError, r"seeing"),
    ("lsst seeing nan", lambda c: lenskit.get("instrument", "lsst")(seeing=np.nan), ValueError, r"seeing"),
    ("lsst unknown band", lambda c: lenskit.get("instrument", "lsst")(bands=("q",)), ValueError, r"band"),
    ("lsst repeated band", lambda c: lenskit.get("instrument", "lsst")(bands=("g", "g")), ValueError, r"bands"),
    ("lsst no band", lambda c: lenskit.get("instrument", "lsst")(bands=()), ValueError, r"bands"),
    ("lsst n_visits 0", lambda c: lenskit.get("instrument", "lsst")(n_visits=0), ValueError, r"n_visits"),
    ("lsst exposure arcsec", lambda c: lenskit.get("instrument", "lsst")(exposure_per_visit=1 * u.arcsec), UC,
     r"exposure_per_visit"),
    ("euclid psf_fwhm seconds", lambda c: lenskit.get("instrument", "euclid_vis")(psf_fwhm=1 * u.s), UC,
     r"psf_fwhm"),
    ("euclid exposure arcsec", lambda c: lenskit.get("instrument", "euclid_vis")(exposure_time=1 * u.arcsec), UC,
     r"exposure_time"),
    ("GaussianPSF neither", lambda c: _effect("GaussianPSF")(), ValueError, r"sigma.*fwhm"),
    ("GaussianPSF fwhm -1", lambda c: _effect("GaussianPSF")(fwhm=-1), ValueError, r"fwhm"),
    ("GaussianPSF fwhm seconds", lambda c: _effect("GaussianPSF")(fwhm=1 * u.s), UC, r"fwhm"),
    ("GaussianPSF fwhm dict bad", lambda c: _effect("GaussianPSF")(fwhm={"g": 0.0}), ValueError, r"fwhm\['g'\]"),
    ("GaussianPSF sigma kg", lambda c: _effect("GaussianPSF")(sigma=1 * u.kg), UC, r"sigma"),
    ("ImagePSF zero kernel", lambda c: _effect("ImagePSF")(np.zeros((3, 3))), ValueError, r"PSF kernel"),
    ("ImagePSF 1-D kernel", lambda c: _effect("ImagePSF")(np.ones(5)), ValueError, r"PSF kernel"),
    ("ImagePSF pixel_scale -1", lambda c: _effect("ImagePSF")(np.ones((3, 3)), pixel_scale=-1), ValueError,
     r"pixel_scale"),
    ("ImagePSF pixel_scale km", lambda c: _effect("ImagePSF")(np.ones((3, 3)), pixel_scale=1 * u.km), UC,
     r"pixel_scale"),
    ("CircularMasks radius 0", lambda c: _effect("CircularMasks")(radius=0), ValueError, r"radius"),
    ("CircularMasks radius kg", lambda c: _effect("CircularMasks")(radius=1 * u.kg), UC, r"radius"),
    ("CircularMasks fraction 2", lambda c: _effect("CircularMasks")(max_flux_fraction=2), ValueError,
     r"max_flux_fraction"),
    ("CircularMasks n_masks inverted", lambda c: _effect("CircularMasks")(n_masks=(3, 1)), ValueError, r"n_masks"),
    # mass models
    ("SIE r_core km", lambda c: lenskit.get("mass_model", "sie")(r_core=1 * u.km), UC, r"r_core"),
    ("SIE deflection theta_E km/s", lambda c: _sie(theta_E=1 * u.km / u.s), UC, r"theta_E"),
    ("SIE deflection missing x0", lambda c: _sie(drop="x0"), ValueError, r"x0"),
    ("SIE deflection unknown q", lambda c: _sie(q=0.5), ValueError, r"'q'"),
    ("SIE deflection nan theta_E", lambda c: _sie(theta_E=np.nan), ValueError, r"theta_E"),
    # LensDataset
    ("dataset images 1-D", lambda c: _ds(images=np.ones(10)), ValueError, r"images"),
    ("dataset images complex", lambda c: _ds(images=np.ones((1, 1, 8, 8), complex)), TypeError, r"images"),
    ("dataset images nan", lambda c: _ds(images=np.full((1, 1, 8, 8), np.nan)), ValueError, r"images"),
    ("dataset images empty", lambda c: _ds(images=np.ones((0, 1, 8, 8))), ValueError, r"images"),
    ("dataset images str", lambda c: _ds(images=[["a"]]), TypeError, r"images"),
    ("dataset params rows", lambda c: _ds(params=QTable({"i": [1, 2]})), ValueError, r"params"),
    ("dataset params list", lambda c: _ds(params=[1]), TypeError, r"params"),
    ("dataset theta_E without unit", lambda c: _ds(params=QTable({"theta_E": [1.0]})), u.UnitsError,
     r"params\['theta_E'\]"),
    ("dataset theta_E in km", lambda c: _ds(params=QTable({"theta_E": [1.0] * u.km})), UC, r"params\['theta_E'\]"),
    ("dataset bands count", lambda c: _ds(bands=["g", "r"]), ValueError, r"bands"),
    ("dataset bands str", lambda c: _ds(bands="g"), TypeError, r"bands"),
    ("dataset pixel_scale -1", lambda c: _ds(pixel_scale=-1), ValueError, r"pixel_scale"),
    ("dataset pixel_scale km", lambda c: _ds(pixel_scale=1 * u.km), ValueError, r"pixel_scale"),
    ("dataset noise negative", lambda c: _ds(noise=-np.ones((1, 1, 8, 8))), ValueError, r"noise"),
    ("dataset noise shape", lambda c: _ds(noise=np.ones((1, 1, 4, 4))), ValueError, r"noise"),
    ("dataset masks float", lambda c: _ds(masks=np.zeros((1, 1, 8, 8))), TypeError, r"masks"),
    ("dataset masks shape", lambda c: _ds(masks=np.zeros((1, 1, 4, 4), bool)), ValueError, r"masks"),
    ("dataset truth shape", lambda c: _ds(truth={"arcs": np.ones((1, 1, 4, 4))}), ValueError, r"truth\['arcs'\]"),
    ("dataset instrument int", lambda c: _ds(instrument=5), TypeError, r"instrument"),
    ("dataset provenance list", lambda c: _ds(provenance=[1]), TypeError, r"provenance"),
    # writing
    ("write unknown object", lambda c: lenskit.write({"a": 1}, "x.asdf"), TypeError, r"obj"),
    ("write to missing directory", lambda c: c.lsst.write("nowhere/x.asdf"), FileNotFoundError, r"nowhere"),
    ("write over an existing file", lambda c: c.lsst.write(c.p("lsst.asdf")), FileExistsError, r"lsst.asdf"),
    ("write onto a directory", lambda c: c.lsst.write(str(c.out), overwrite=True), IsADirectoryError, r"directory"),
    ("write ASDF under .fits", lambda c: c.lsst.write("x.fits"), ValueError, r"x\.fits.*ASDF"),
    ("write ASDF under .fits.gz", lambda c: c.lsst.write("x.fits.gz"), ValueError, r"FITS"),
    ("estimate FITS table exists", lambda c: _write_fits_estimate(c, c.p("cutout.fits")), FileExistsError,
     r"cutout\.fits"),
    # reading
    ("read missing", lambda c: lenskit.read("absent.asdf"), FileNotFoundError, r"absent\.asdf"),
    ("read empty", lambda c: lenskit.read(c.p("empty.asdf")), LenskitFileError, r"empty\.asdf is empty"),
    ("read a directory", lambda c: lenskit.read(str(c.d)), IsADirectoryError, r"directory"),
    ("read text", lambda c: lenskit.read(c.p("text.asdf")), LenskitFileError, r"not an ASDF file"),
    ("read truncated", lambda c: lenskit.read(c.p("truncated.asdf")), LenskitFileError, r"truncated\.asdf"),
    ("read flipped block", lambda c: lenskit.read(c.p("flipped.asdf")), LenskitCorruptFileError,
     r"flipped\.asdf is corrupt"),
    ("read images against provenance SHA-256", lambda c: lenskit.read(c.p("sha_mismatch.asdf")),
     LenskitCorruptFileError, r"SHA-256 in its provenance"),
    ("read undeclared key", lambda c: lenskit.read(c.p("undeclared.asdf")), LenskitFileError, r"undeclared.*bogus"),
    ("read external block", lambda c: lenskit.read(c.p("external.asdf")), LenskitFileError, r"another file"),
    ("read alias bomb", lambda c: lenskit.read(c.p("bomb.asdf")), LenskitFileError, r"alias bomb"),
    ("read self-referring alias", lambda c: lenskit.read(c.p("loop.asdf")), LenskitFileError, r"refers to itself"),
    ("read a dataset as weights", lambda c: lenskit.load_estimator(c.p("lsst.asdf")), TypeError,
     r"LensDataset, not estimator weights"),
    ("weights with an edited mean", lambda c: lenskit.load_estimator(c.p("weights_edited.asdf")), LenskitFileError,
     r"configuration or metrics fail their checksum"),
    ("weights without a config checksum", lambda c: lenskit.load_estimator(c.p("weights_unsealed.asdf")),
     LenskitFileError, r"no checksum over their configuration"),
    ("weights whose config asks for a huge network", lambda c: lenskit.load_estimator(c.p("weights_huge.asdf")),
     LenskitFileError, r"does not match its arrays"),
    ("load_estimator unknown", lambda c: lenskit.load_estimator("jwst_typo"), LenskitPluginError, r"jwst_typo"),
    ("read_images text", lambda c: read_images(c.p("text.asdf")), LenskitFileError, r"text\.asdf"),
    ("read_images unknown suffix", lambda c: read_images(c.p("lsst.asdf").replace(".asdf", ".txt")),
     FileNotFoundError, r"lsst\.txt"),
    # estimators: data that do not suit them
    ("euclid_vis on LSST r", lambda c: _est("euclid_vis").predict(c.lsst_r), ValueError,
     r"pixel_scale.*bands.*instrument"),
    ("lsst_gri bands i,r,g", lambda c: _est("lsst_gri").predict(_lsst_gri_reordered(c)), ValueError,
     r"expects them in the order \['g', 'r', 'i'\]"),
    ("hst_wfc3 on a 0.1 arcsec dataset", lambda c: _est("hst_wfc3").predict(c.hst01), ValueError,
     r"pixel_scale: the images have 0\.1"),
    ("no-lens-light estimator on lens light", lambda c: _est("lsst_gri_no_lens_light").predict(c.lsst), ValueError,
     r"lens_light: the images hold the lens galaxy's light"),
    ("finder on LSST g,r,i at 0.2 arcsec", lambda c: _est("deeplens_lsst_g").predict(c.lsst), ValueError,
     r"pixel_scale: the images have 0\.2.*0\.18"),
    ("finder on unlabelled g,r,i arrays", lambda c: _est("deeplens_lsst_g").predict(c.lsst.images), ValueError,
     r"images must be shaped"),
    ("all pixels masked", lambda c: _est("lsst_gri").predict(c.lsst.images, masks=np.ones(c.lsst.shape, bool)),
     ValueError, r"masks cover every pixel"),
    ("one image fully masked", lambda c: _est("lsst_gri").predict(c.lsst.images, masks=_one_blind(c.lsst.shape)),
     ValueError, r"masks cover every pixel of 1 image\(s\) \(indices \[1\]\)"),
    ("blank images", lambda c: _est("hst_wfc3").predict(np.zeros((2, 1, 192, 192), np.float32)), ValueError,
     r"2 band\(s\) hold one value in every unmasked pixel \(image 0 band 0, image 1 band 0, e\.g\. 0\)"),
    ("one band of zeros", lambda c: _est("lsst_gri").predict(_zero_band(c.lsst.images, 1, 2)), ValueError,
     r"1 band\(s\) hold one value.*\(image 1 band 2, e\.g\. 0\)"),
    ("constant outside the masks", lambda c: _est("lsst_gri").predict(_constant_outside(c.lsst.images), masks=_centre(
        c.lsst.shape)), ValueError, r"image 0 band 0.*e\.g\. 7"),
    ("finder on a blank cutout", lambda c: _est("deeplens_lsst_g").predict(np.zeros((1, 1, 45, 45))), ValueError,
     r"blank or constant plane"),
    ("masks float", lambda c: _est("lsst_gri").predict(c.lsst.images, masks=np.full(c.lsst.shape, 0.5)), TypeError,
     r"masks"),
    ("masks wrong shape", lambda c: _est("lsst_gri").predict(c.lsst.images, masks=np.zeros((2, 5, 5), bool)),
     ValueError, r"masks"),
    ("images wrong shape", lambda c: _est("lsst_gri").predict(np.ones((2, 3, 40, 40))), ValueError,
     r"images must be shaped \(N, 3, 57, 57\)"),
    ("images nan unmasked", lambda c: _est("lsst_gri").predict(np.full((1, 3, 57, 57), np.nan)), ValueError,
     r"images"),
    ("images complex", lambda c: _est("lsst_gri").predict(np.ones((1, 3, 57, 57), complex)), TypeError, r"images"),
    ("batch_size 0", lambda c: _est("lsst_gri").predict(c.lsst.images, batch_size=0), ValueError, r"batch_size"),
    ("tta 3", lambda c: _est("lsst_gri").predict(c.lsst.images, tta=3), ValueError, r"tta"),
    ("finder lens_fraction 2", lambda c: _est("deeplens_lsst_g").predict(np.ones((1, 1, 45, 45)), lens_fraction=2),
     ValueError, r"lens_fraction"),
    ("finder tta 5", lambda c: _est("deeplens_lsst_g").predict(np.ones((1, 1, 45, 45)), tta=5), ValueError, r"tta"),
    # training arguments
    ("fit steps -5", lambda c: _small_est().fit(_lsst_sim(), steps=-5), ValueError, r"steps"),
    ("fit steps 0", lambda c: _small_est().fit(_lsst_sim(), steps=0), ValueError, r"steps"),
    ("fit steps 1.5", lambda c: _small_est().fit(_lsst_sim(), steps=1.5), ValueError, r"steps"),
    ("fit steps None", lambda c: _small_est().fit(_lsst_sim(), steps=None), TypeError, r"steps"),
    ("fit batch_size 0", lambda c: _small_est().fit(_lsst_sim(), steps=2, batch_size=0), ValueError, r"batch_size"),
    ("fit lr 0", lambda c: _small_est().fit(_lsst_sim(), steps=2, lr=0), ValueError, r"\blr\b"),
    ("fit lr nan", lambda c: _small_est().fit(_lsst_sim(), steps=2, lr=np.nan), ValueError, r"\blr\b"),
    ("fit checkpoint_every 0", lambda c: _small_est().fit(_lsst_sim(), steps=2, checkpoint_every=0), ValueError,
     r"checkpoint_every"),
    ("fit workers -1", lambda c: _small_est().fit(_lsst_sim(), steps=2, workers=-1), ValueError, r"workers"),
    ("fit time_limit -1", lambda c: _small_est().fit(_lsst_sim(), steps=2, time_limit=-1), ValueError,
     r"time_limit"),
    ("fit warmup -1", lambda c: _small_est().fit(_lsst_sim(), steps=2, warmup=-1), ValueError, r"warmup"),
    ("fit checkpoint in missing directory", lambda c: _small_est().fit(_lsst_sim(), steps=2,
                                                                        checkpoint="nowhere/ck.asdf"),
     FileNotFoundError, r"checkpoint"),
    ("fit validation not a dataset", lambda c: _small_est().fit(_lsst_sim(), steps=2, validation="val.asdf"),
     TypeError, r"validation"),
    ("fit simulator of another shape", lambda c: _small_est().fit(sim(seed=1), steps=2), ValueError,
     r"the estimator expects"),
    ("finder fit epochs 0", lambda c: _finder().fit(c.lsst_r, epochs=0), ValueError, r"epochs"),
    ("finder fit fpr 1.5", lambda c: _finder().fit(c.lsst_r, fpr=1.5), ValueError, r"fpr"),
    ("finder fit lr -1", lambda c: _finder().fit(c.lsst_r, lr=-1), ValueError, r"\blr\b"),
    ("finder fit time_limit 0", lambda c: _finder().fit(c.lsst_r, time_limit=0), ValueError, r"time_limit"),
    # the maximum-likelihood fit
    ("fit image 1-D", lambda c: _fit(image=np.ones(32), noise=np.ones(32)), ValueError, r"image"),
    ("fit image complex", lambda c: _fit(image=np.ones((32, 32), complex)), TypeError, r"image"),
    ("fit noise shape", lambda c: _fit(noise=np.ones((16, 16))), ValueError, r"noise"),
    ("fit pixel_scale 0", lambda c: _fit(pixel_scale=0), ValueError, r"pixel_scale"),
    ("fit pixel_scale km", lambda c: _fit(pixel_scale=1 * u.km), UC, r"pixel_scale"),
    ("fit pixel_scale None", lambda c: _fit(pixel_scale=None), TypeError, r"pixel_scale"),
    ("fit n_starts 0", lambda c: _fit(n_starts=0), ValueError, r"n_starts"),
    ("fit adam_steps -1", lambda c: _fit(adam_steps=-1), ValueError, r"adam_steps"),
    ("fit psf even", lambda c: _fit(psf=np.ones((4, 4))), ValueError, r"psf"),
    ("fit everything masked", lambda c: _fit(mask=np.ones((32, 32), bool)), ValueError, r"masked"),
    ("fit theta_E_range inverted", lambda c: _fit(theta_E_range=(2, 1)), ValueError, r"theta_E_range"),
    ("fit theta_E_range km", lambda c: _fit(theta_E_range=(1 * u.km, 2 * u.km)), UC, r"theta_E_range"),
    # deblenders
    ("ica one band", lambda c: lenskit.get("deblender", "ica")().separate(c.lsst_r), ValueError, r"band"),
    ("ica nan images", lambda c: lenskit.get("deblender", "ica")().separate(np.full((1, 2, 32, 32), np.nan)),
     ValueError, r"images"),
    ("ica pixel_scale km", lambda c: lenskit.get("deblender", "ica")().separate(c.lsst, pixel_scale=1 * u.km), UC,
     r"pixel_scale"),
    ("ica mask_radius kg", lambda c: lenskit.get("deblender", "ica")(mask_radius=1 * u.kg), UC, r"mask_radius"),
    ("sersic complex images", lambda c: lenskit.get("deblender", "sersic")().separate(np.ones((32, 32), complex)),
     TypeError, r"images"),
    ("sersic pixel_scale str", lambda c: lenskit.get("deblender", "sersic")().separate(c.lsst_r, pixel_scale="x"),
     TypeError, r"pixel_scale"),
    ("sersic protect_radius s", lambda c: lenskit.get("deblender", "sersic")(protect_radius=1 * u.s), UC,
     r"protect_radius"),
    ("deblender unknown", lambda c: lenskit.get("deblender", "pca_typo"), LenskitPluginError, r"pca_typo"),
    # real cutouts
    ("Cutout 1-D", lambda c: _cutout(image=np.ones(10)), ValueError, r"image"),
    ("Cutout complex", lambda c: _cutout(image=np.ones((32, 32), complex)), TypeError, r"image"),
    ("Cutout pixel_scale 0", lambda c: _cutout(pixel_scale=0), ValueError, r"pixel_scale"),
    ("Cutout pixel_scale km", lambda c: _cutout(pixel_scale=1 * u.km), UC, r"pixel_scale"),
    ("Cutout all nan", lambda c: _cutout(image=np.full((32, 32), np.nan)), ValueError, r"masked"),
    ("Cutout noise shape", lambda c: _cutout(noise=np.ones((4, 4))), ValueError, r"noise"),
    ("Cutout psf zero", lambda c: _cutout(psf=np.zeros((3, 3))), ValueError, r"psf"),
    ("Cutout resample pixel_scale -1", lambda c: _cutout().resample(-1, (16, 16)), ValueError, r"pixel_scale"),
    ("Cutout resample shape 2x2", lambda c: _cutout().resample(0.05, (2, 2)), ValueError, r"shape"),
    ("Cutout resample outside unknown", lambda c: _cutout().resample(0.05, (16, 16), outside="zeros"), ValueError,
     r"outside"),
    ("Cutout to_stamp under half the field", lambda c: _cutout().to_stamp(0.04, (192, 192), centre=(15.5, 15.5)),
     ValueError, r"covers only 4% of the estimator's 7\.68\" x 7\.68\" field"),
    ("model_lens cutout under half the field", lambda c: _model_lens(_cutout(image=np.random.default_rng(0).normal(
        size=(64, 64))), "hst_wfc3", refine=False), ValueError, r"covers only 17% of hst_wfc3's 7\.68\""),
    ("read_cutout missing", lambda c: read_cutout("absent.fits"), FileNotFoundError, r"absent"),
    ("read_cutout without scale", lambda c: read_cutout(c.p("nowcs.fits")), ValueError,
     r"pixel_scale"),
    ("read_cutout pixel_scale km", lambda c: read_cutout(c.p("nowcs.fits"), pixel_scale=1 * u.km),
     UC, r"pixel_scale"),
    ("read_cutout unit", lambda c: read_cutout(c.p("cutout.fits"), unit="jy"), ValueError, r"unit"),
    # scale-out (no cluster is started for any of these)
    ("distributed n 0", lambda c: _dist().simulate(sim(seed=1), 0, "shards"), ValueError, r"\bn\b"),
    ("distributed shard_size 0", lambda c: _dist().simulate(sim(seed=1), 10, "shards", shard_size=0), ValueError,
     r"shard_size"),
    ("distributed shard_size 10**9", lambda c: _dist().simulate(sim(seed=1), 10**9, "shards", shard_size=10**9),
     ValueError, r"shard_size"),
    ("distributed workers 0", lambda c: _dist().simulate(sim(seed=1), 10, "shards", workers=0), ValueError,
     r"workers"),
    ("distributed retries -1", lambda c: _dist().simulate(sim(seed=1), 10, "shards", retries=-1), ValueError,
     r"retries"),
    ("distributed seed None", lambda c: _dist().simulate(sim(seed=1), 10, "shards", seed=None,
                                                         scheduler="serial"), ValueError, r"seed"),
    ("distributed not a simulator", lambda c: _dist().simulate("sim", 10, "shards"), TypeError, r"simulator"),
    ("distributed scheduler int", lambda c: _dist().simulate(sim(seed=1), 10, "shards", scheduler=5), TypeError,
     r"scheduler"),
    ("distributed scheduler file missing", lambda c: _dist().simulate(sim(seed=1), 10, "shards",
                                                                      scheduler="absent.json"),
     FileNotFoundError, r"absent\.json"),
    ("distributed estimate lens_fraction 2", lambda c: _dist().estimate("deeplens_lsst_g", c.p("lsst.asdf"), "sc",
                                                                        lens_fraction=2), ValueError,
     r"lens_fraction"),
    ("distributed estimate missing input", lambda c: _dist().estimate("hst_wfc3", "absent.asdf", "sc"),
     FileNotFoundError, r"absent\.asdf"),
    ("distributed estimate files_per_task 0", lambda c: _dist().estimate("hst_wfc3", c.p("lsst.asdf"), "sc",
                                                                         files_per_task=0), ValueError,
     r"files_per_task"),
    ("distributed open a missing index", lambda c: _dist().ShardIndex.open("absent"), FileNotFoundError, r"absent"),
    ("distributed estimate match_noise for a regression network", lambda c: _dist().estimate(
        "hst_wfc3", c.p("lsst.asdf"), "sc", match_noise=True), ValueError, r"match_noise applies to the lens finder"),
    ("distributed find match_noise 'yes'", lambda c: _dist().find(c.p("lsst.asdf"), "sc", match_noise="yes"),
     TypeError, r"match_noise must be True or False"),
    # archives and plugins
    ("fetch unknown archive", lambda c: lds.fetch("cosmos_typo", cache=str(c.out / "cache")), ValueError,
     r"cosmos_typo"),
    ("register a str", lambda c: lds.register("x", "https://example.invalid/x.tar.gz"), TypeError, r"archive"),
    ("archive sha256 malformed", lambda c: lds.Archive(url="https://example.invalid/x.tar.gz", sha256="xyz"),
     ValueError, r"sha256 must be None or 64 hexadecimal digits"),
    ("archive md5 malformed", lambda c: lds.Archive(url="https://example.invalid/x.tar.gz", md5="0" * 31),
     ValueError, r"md5 must be None or 32"),
    ("archive ftp url", lambda c: lds.Archive(url="ftp://example.invalid/x.tar.gz"), ValueError, r"url must be"),
    ("archive url without a file", lambda c: lds.Archive(url="https://example.invalid/"), ValueError,
     r"url must be"),
    ("archive folder out of the cache", lambda c: lds.Archive(url="https://example.invalid/x.fits", unpack=False,
                                                             folder="a/../../b"), ValueError, r"folder must be"),
    ("archive folder for an unpacked archive", lambda c: lds.Archive(url="https://example.invalid/x.tar.gz",
                                                                    folder="a"), ValueError, r"folder is for a file"),
    ("slacs_lenses directory missing", lambda c: lds.slacs_lenses(directory="absent"), LenskitFileError,
     r"directory absent is not a folder"),
    ("slacs_lenses directory without the files", lambda c: lds.slacs_lenses(directory=c.out), LenskitFileError,
     r"198x198/SDSSJ0029-0055\.fits is missing"),
    ("slacs_lenses offline, nothing cached", lambda c: lds.slacs_lenses(cache=c.out / "cache", offline=True),
     LenskitFileError, r"not in the cache and lenskit is offline"),
    ("finder match_noise blank cutout", lambda c: lenskit.load_estimator("deeplens_lsst_g").match_noise(
        np.zeros((2, 1, 45, 45))), ValueError, r"image 0 \(band 0\) has no measurable background noise"),
    ("finder match_noise wrong shape", lambda c: lenskit.load_estimator("deeplens_lsst_g").match_noise(
        np.ones((2, 45, 45))), ValueError, r"data must be \(N, 1, 45, 45\)"),
    ("model_lens band empty", lambda c: _model_lens(_cutout(), "hst_wfc3", band=""), ValueError,
     r"band must be a filter name"),
    ("model_lens band the network was not trained on", lambda c: _model_lens(_cutout(), "hst_wfc3", band="F606W"),
     ValueError, r"bands: the images hold bands \['F606W'\], this estimator was trained on \['F814W'\]"),
    ("get unknown kind", lambda c: lenskit.get("lens_model", "sie"), ValueError, r"kind"),
    ("get name int", lambda c: lenskit.get("mass_model", 5), TypeError, r"name"),
    ("available unknown kind", lambda c: lenskit.available("sources"), ValueError, r"kind"),
]


def _effect(name):
    from lenskit.instruments import effects

    return getattr(effects, name)


def _sie(drop=None, **kw):
    params = {"theta_E": 1.0, "e1": 0.1, "e2": 0.0, "x0": 0.0, "y0": 0.0, **kw}
    if drop:
        params.pop(drop)
    return lenskit.get("mass_model", "sie")().deflection(np.zeros(3), np.zeros(3), **params)


def _ds(**kw):
    args = {"images": np.ones((1, 1, 8, 8)), "params": QTable({"i": [0]}), "bands": ["g"], "pixel_scale": 0.2, **kw}
    return lenskit.LensDataset(args.pop("images"), args.pop("params"), **args)


_ESTIMATORS = {}


def _est(name):
    if name not in _ESTIMATORS:
        _ESTIMATORS[name] = lenskit.load_estimator(name)
    return _ESTIMATORS[name]


def _zero_band(images, i, b):
    out = np.array(images, copy=True)
    out[i, b] = 0.0
    return out


def _centre(shape):
    """Masks over all but a 9 x 9 box in the middle of every image."""
    m = np.ones(shape, bool)
    h, w = shape[-2:]
    m[..., h // 2 - 4: h // 2 + 5, w // 2 - 4: w // 2 + 5] = False
    return m


def _constant_outside(images):
    """Image 0's first band: 7 in the unmasked box of `_centre`, noise under the masks."""
    out = np.array(images, copy=True)
    h, w = out.shape[-2:]
    out[0, 0, h // 2 - 4: h // 2 + 5, w // 2 - 4: w // 2 + 5] = 7.0
    return out


def _one_blind(shape):
    m = np.zeros(shape, bool)
    m[1] = True
    return m


def _plotting():
    import matplotlib

    matplotlib.use("Agg")
    from lenskit import plotting

    return plotting


def _render(source_positions=((0.1, 0.0),), source_flux=(100.0,), light=None, **mass):
    params = {"theta_E": [1.0], "e1": [0.0], "e2": [0.0], "x0": [0.0], "y0": [0.0], **mass}
    src = lenskit.get("source", "sersic")().sample(1, np.random.default_rng(0))
    return lenskit.Simulator(seed=1).render(params, source_positions, src, source_flux, light=light)


def _small_est():
    return lenskit.get("estimator", "pearson")(in_shape=(3, 57, 57))


def _lsst_sim():
    return lenskit.Simulator(instrument="lsst", seed=1)


def _finder():
    return lenskit.get("estimator", "deeplens")(in_shape=(1, 57, 57))


def _dist():
    import lenskit.distributed as dist

    return dist


def _write_fits_estimate(c, path):
    from lenskit.io.fits import write_estimate_fits

    est = lenskit.Estimate(QTable({"theta_E": [1.0] * u.arcsec}))
    write_estimate_fits(est, path)


@pytest.mark.parametrize("call, exc, match", [pytest.param(*case[1:], id=case[0]) for case in API])
def test_api_refuses_bad_input(call, exc, match, ctx, guard):
    before = _snapshot(ctx.out, ctx.d)
    t0 = time.perf_counter()
    with guard(), pytest.raises(exc) as info:
        call(ctx)
    elapsed = time.perf_counter() - t0
    assert re.search(match, str(info.value)), f"message does not name the argument: {info.value}"
    assert _snapshot(ctx.out, ctx.d) == before, "a refused call wrote or changed files"
    assert elapsed < 20, f"refused only after {elapsed:.1f} s"


# -- CLI cases: (argv, regular expression that stderr must match) -------------------------------------------------
CLI = [
    ("bare lenskit", [], r"a command is required"),
    ("simulate -n 0", ["simulate", "-n", "0", "-o", "x.asdf"], r"argument -n: must be >= 1"),
    ("simulate -n -1", ["simulate", "-n", "-1", "-o", "x.asdf"], r"argument -n"),
    ("simulate -n abc", ["simulate", "-n", "abc", "-o", "x.asdf"], r"argument -n: expected an integer"),
    ("simulate -n 1e9 (memory)", ["simulate", "-n", "1000000000", "-o", "x.asdf"], r"n=1000000000 needs about"),
    ("simulate -o x.fits", ["simulate", "-n", "2", "-o", "x.fits"], r"-o/--output.*\.asdf.*FITS output"),
    ("simulate -o x.txt", ["simulate", "-n", "2", "-o", "x.txt"], r"-o/--output"),
    ("simulate -o missing dir", ["simulate", "-n", "2", "-o", "nowhere/x.asdf"], r"-o/--output.*does not exist"),
    ("simulate -o exists", ["simulate", "-n", "2", "-o", "{d}/lsst.asdf"], r"-o/--output.*exists.*--overwrite"),
    ("simulate -o a directory", ["simulate", "-n", "2", "-o", "{d}"], r"-o/--output"),
    ("simulate --workers 0", ["simulate", "-n", "2", "-o", "x", "--workers", "0"], r"argument --workers: must be >= 1"),
    ("simulate --shard-size 0", ["simulate", "-n", "2", "-o", "x", "--shard-size", "0"], r"--shard-size"),
    ("simulate --supersample 0", ["simulate", "-n", "2", "-o", "x.asdf", "--supersample", "0"], r"--supersample"),
    ("simulate --seed -3", ["simulate", "-n", "2", "-o", "x.asdf", "--seed", "-3"], r"--seed"),
    ("simulate --lens-light maybe", ["simulate", "-n", "2", "-o", "x.asdf", "--lens-light", "maybe"],
     r"--lens-light"),
    ("simulate --instrument unknown", ["simulate", "-n", "2", "-o", "x.asdf", "--instrument", "jwst_typo"],
     r"instrument 'jwst_typo'"),
    ("simulate --bands unknown", ["simulate", "-n", "2", "-o", "x.asdf", "--instrument", "lsst", "--bands", "q"],
     r"band"),
    ("simulate --test on lsst", ["simulate", "-n", "2", "-o", "x.asdf", "--instrument", "lsst", "--test"],
     r"--test"),
    ("simulate --source unknown", ["simulate", "-n", "2", "-o", "x.asdf", "--source", "nope"], r"source 'nope'"),
    ("simulate --scheduler missing file", ["simulate", "-n", "2", "-o", "x", "--scheduler", "absent.json"],
     r"absent\.json"),
    ("simulate --preset unknown", ["simulate", "-n", "2", "-o", "x.asdf", "--preset", "hezaveh2016"], r"--preset"),
    ("simulate --preset with --instrument", ["simulate", "-n", "2", "-o", "x.asdf", "--preset", "lanusse2018",
                                             "--instrument", "lsst"], r"drop --instrument"),
    ("simulate --preset hezaveh with --lens-light", ["simulate", "-n", "2", "-o", "x.asdf", "--preset", "hezaveh2017",
                                                      "--lens-light", "on"], r"--lens-light applies to the pearson"),
    ("simulate --preset lanusse2018 on Dask", ["simulate", "-n", "2", "-o", "x", "--preset", "lanusse2018",
                                               "--workers", "2"], r"one process"),
    ("train --steps 0", ["train", "--steps", "0", "-o", "w.asdf"], r"argument --steps: must be >= 1"),
    ("train --steps -1", ["train", "--steps", "-1", "-o", "w.asdf"], r"argument --steps"),
    ("train --minutes -1", ["train", "--minutes", "-1", "-o", "w.asdf"], r"argument --minutes: must be"),
    ("train --minutes 0", ["train", "--minutes", "0", "-o", "w.asdf"], r"argument --minutes"),
    ("train --minutes nan", ["train", "--minutes", "nan", "-o", "w.asdf"], r"argument --minutes"),
    ("train --checkpoint-every 0", ["train", "--checkpoint-every", "0", "-o", "w.asdf"], r"--checkpoint-every"),
    ("train --workers -1", ["train", "--workers", "-1", "-o", "w.asdf"], r"--workers"),
    ("train --batch-size 0", ["train", "--batch-size", "0", "-o", "w.asdf"], r"--batch-size"),
    ("train --lr 0", ["train", "--lr", "0", "-o", "w.asdf"], r"--lr"),
    ("train --validation-size 0", ["train", "--validation-size", "0", "-o", "w.asdf"], r"--validation-size"),
    ("train -o x.fits", ["train", "--steps", "1", "-o", "w.fits"], r"-o/--output"),
    ("train -o exists", ["train", "--steps", "1", "-o", "{d}/lsst.asdf"], r"-o/--output.*exists"),
    ("train --checkpoint in missing dir", ["train", "--steps", "1", "-o", "w.asdf", "--checkpoint", "no/ck.asdf"],
     r"--checkpoint"),
    ("train --estimator unknown", ["train", "--steps", "1", "-o", "w.asdf", "--estimator", "resnet_typo"],
     r"resnet_typo"),
    ("train --arch malformed", ["train", "--steps", "1", "-o", "w.asdf", "--arch", "3=x"], r"--arch"),
    ("train --arch value of the wrong type", ["train", "--steps", "1", "-o", "w.asdf", "--arch", "width=abc"],
     r"--arch: lenskit_net was not built with width='abc'"),
    ("train --backend without --ddp", ["train", "--steps", "1", "-o", "w.asdf", "--backend", "gloo"], r"--backend"),
    ("train --ddp without torchrun", ["train", "--steps", "1", "-o", "w.asdf", "--ddp"], r"--ddp.*torchrun"),
    ("estimate missing input", ["estimate", "absent.asdf", "-o", "e.asdf"], r"absent\.asdf"),
    ("estimate cutout under half the field", ["estimate", "{d}/cutout.fits", "--no-lens-light", "-o", "e.asdf"],
     r"cutout\.fits: the cutout \(3\.2\" x 3\.2\"\) covers only 17% of hst_wfc3's 7\.68\" x 7\.68\" field"),
    ("estimate -o exists", ["estimate", "{d}/lsst.asdf", "-o", "{d}/lsst_r.asdf"], r"-o/--output.*exists"),
    ("estimate -o x.txt", ["estimate", "{d}/lsst.asdf", "-o", "e.txt"], r"-o/--output"),
    ("estimate --estimator a dataset", ["estimate", "{d}/lsst.asdf", "-o", "e.asdf", "--estimator",
                                        "{d}/lsst_r.asdf"], r"LensDataset, not estimator weights"),
    ("estimate --estimator unknown", ["estimate", "{d}/lsst.asdf", "-o", "e.asdf", "--estimator", "typo"],
     r"typo"),
    ("estimate --estimator edited weights", ["estimate", "{d}/lsst.asdf", "-o", "e.asdf", "--estimator",
                                             "{d}/weights_edited.asdf"], r"fail their checksum"),
    ("estimate euclid_vis on LSST", ["estimate", "{d}/lsst_r.asdf", "-o", "e.asdf", "--estimator", "euclid_vis"],
     r"pixel_scale.*instrument"),
    ("estimate no-lens-light on lens light", ["estimate", "{d}/lsst.asdf", "-o", "e.asdf", "--estimator",
                                              "lsst_gri_no_lens_light"], r"lens_light"),
    ("estimate corrupt input", ["estimate", "{d}/flipped.asdf", "-o", "e.asdf", "--estimator", "lsst_gri"],
     r"corrupt"),
    ("estimate alias bomb", ["estimate", "{d}/bomb.asdf", "-o", "e.asdf"], r"alias bomb"),
    ("estimate --tta 3", ["estimate", "{d}/lsst.asdf", "-o", "e.asdf", "--tta", "3"], r"--tta"),
    ("estimate --batch-size 0", ["estimate", "{d}/lsst.asdf", "-o", "e.asdf", "--batch-size", "0"],
     r"--batch-size"),
    ("estimate --pixel-scale -1", ["estimate", "{d}/cutout.fits", "-o", "e.asdf", "--pixel-scale", "-1"],
     r"--pixel-scale"),
    ("estimate --workers 0", ["estimate", "{d}/lsst.asdf", "-o", "e.asdf", "--workers", "0"], r"--workers"),
    ("estimate --files-per-task 0", ["estimate", "{d}/lsst.asdf", "-o", "e", "--workers", "1",
                                     "--files-per-task", "0"], r"--files-per-task"),
    ("estimate two inputs serially", ["estimate", "{d}/lsst.asdf", "{d}/lsst_r.asdf", "-o", "e.asdf"],
     r"several inputs"),
    ("deblend -o x.fits", ["deblend", "{d}/lsst.asdf", "-o", "d.fits"], r"-o/--output.*\.asdf"),
    ("deblend missing input", ["deblend", "absent.fits", "-o", "d.asdf"], r"absent\.fits"),
    ("deblend --method unknown", ["deblend", "{d}/lsst.asdf", "-o", "d.asdf", "--method", "pca"], r"pca"),
    ("deblend --pixel-scale 0", ["deblend", "{d}/cutout.fits", "-o", "d.asdf", "--pixel-scale", "0"],
     r"--pixel-scale"),
    ("deblend corrupt dataset", ["deblend", "{d}/truncated.asdf", "-o", "d.asdf"], r"truncated\.asdf"),
    ("find --top -3", ["find", "{d}/cube.fits", "-o", "f.asdf", "--top", "-3"], r"argument --top: must be >= 0"),
    ("find --lens-fraction 2", ["find", "{d}/cube.fits", "-o", "f.asdf", "--lens-fraction", "2"],
     r"--lens-fraction"),
    ("find --lens-fraction 0", ["find", "{d}/cube.fits", "-o", "f.asdf", "--lens-fraction", "0"],
     r"--lens-fraction"),
    ("find --finder a regression estimator", ["find", "{d}/cube.fits", "-o", "f.asdf", "--finder", "hst_wfc3"],
     r"not a lens finder"),
    ("find --batch-size 0", ["find", "{d}/cube.fits", "-o", "f.asdf", "--batch-size", "0"], r"--batch-size"),
    ("find missing input", ["find", "absent.fits", "-o", "f.asdf"], r"absent\.fits"),
    ("find wrong cutout size", ["find", "{d}/cube.fits", "-o", "f.asdf"], r"images must be shaped"),
    ("find -o exists", ["find", "{d}/cube.fits", "-o", "{d}/lsst.asdf"], r"-o/--output.*exists"),
    ("find --tta 3", ["find", "{d}/cube.fits", "-o", "f.asdf", "--tta", "3"], r"--tta"),
    ("estimate a cube at another pixel scale", ["estimate", "{d}/cube_0.2.fits", "-o", "e.asdf", "--estimator",
                                                "euclid_vis"], r"pixel_scale: the images have 0\.2\"/px"),
    ("estimate a cube declared at another pixel scale", ["estimate", "{d}/cube.fits", "-o", "e.asdf", "--estimator",
                                                         "euclid_vis", "--pixel-scale", "0.2"],
     r"pixel_scale: the images have 0\.2\"/px"),
    ("find a cube at another pixel scale", ["find", "{d}/finder_cube_0.25.fits", "-o", "f.asdf"],
     r"pixel_scale: the images have 0\.25\"/px"),
    ("find --band on a cube", ["find", "{d}/cube.fits", "-o", "f.asdf", "--band", "g"],
     r"--band applies to one 2-D FITS cutout"),
    ("estimate --band on a dataset", ["estimate", "{d}/lsst.asdf", "-o", "e.asdf", "--estimator", "lsst_gri",
                                      "--band", "g"], r"--band applies to one 2-D FITS cutout"),
    ("model --band other filter", ["model", "{d}/cutout.fits", "-o", "m.asdf", "--band", "F606W"],
     r"bands: the images hold bands \['F606W'\]"),
    ("demo -n 0", ["demo", "-n", "0"], r"argument -n"),
    ("plugins --bogus", ["plugins", "--bogus"], r"unrecognized arguments"),
]


@pytest.mark.parametrize("argv, match", [pytest.param(*case[1:], id=case[0]) for case in CLI])
def test_cli_refuses_bad_input(argv, match, ctx, guard, capsys):
    argv = [a.format(d=ctx.d) for a in argv]
    before = _snapshot(ctx.out, ctx.d)
    t0 = time.perf_counter()
    with guard():
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse's usage errors
            rc = exc.code
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert rc == 2, f"exit status {rc}: {err}"
    assert "Traceback" not in err
    assert re.search(match, err, re.S), f"stderr does not name the problem: {err}"
    assert _snapshot(ctx.out, ctx.d) == before, "a refused command wrote or changed files"
    assert elapsed < 20, f"refused only after {elapsed:.1f} s"


def test_enough_cases():
    assert len(API) + len(CLI) >= 150


# -- what the refusals must not refuse -----------------------------------------------------------------------------
def test_quantities_are_accepted_where_a_unit_is_meant():
    plain = lenskit.Simulator(instrument="lsst", priors={"theta_E": (0.8, 1.0), "lens_mag": (19.0, 20.0)}, seed=4)
    quant = lenskit.Simulator(instrument=lenskit.get("instrument", "lsst")(pixel_scale=200 * u.mas,
                                                                           seeing=0.7 * u.arcsec),
                              priors={"theta_E": (800 * u.mas, 1.0 * u.arcsec), "lens_mag": (19, 20) * u.mag},
                              seed=4)
    assert quant.priors["theta_E"].low == pytest.approx(0.8) and quant.priors["theta_E"].high == 1.0
    a, b = plain.sample(2), quant.sample(2)
    assert np.array_equal(a.images, b.images)
    from lenskit.io.fits import Cutout

    assert Cutout(np.ones((16, 16)), 50 * u.mas).pixel_scale == pytest.approx(0.05)
    assert lenskit.get("instrument", "hst_wfc3")(pixel_scale=0.04 * u.arcsec).pixel_scale == 0.04 * u.arcsec


def test_strict_false_warns_and_estimates(inputs):
    est = _est("euclid_vis")
    with pytest.warns(UserWarning, match="pixel_scale"):
        out = est.predict(inputs.lsst_r, strict=False)
    assert len(out) == 2
    # a matching dataset passes without a word, and so do plain arrays (they record nothing)
    ds = lenskit.Simulator(instrument="euclid_vis", seed=1).sample(1)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.predict(ds)
        est.predict(inputs.lsst_r.images)


def test_sliced_datasets_round_trip_with_their_own_checksum(tmp_path, inputs):
    part = inputs.lsst[1:]
    part.write(tmp_path / "part.asdf")
    assert lenskit.read(tmp_path / "part.asdf") == part
