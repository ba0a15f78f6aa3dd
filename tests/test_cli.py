import subprocess
import sys

import numpy as np
import pytest

import lenskit
from lenskit.cli import main


def test_plugins_table(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "lenskit" in out and "sie" in out and "hst_wfc3" in out


def test_simulate_writes_dataset(tmp_path, capsys):
    out = tmp_path / "lsst.asdf"
    assert main(["simulate", "-n", "3", "-o", str(out), "--instrument", "lsst", "--bands", "r", "--seed", "1",
                 "-q"]) == 0
    ds = lenskit.read(out)
    assert ds.images.shape == (3, 1, 57, 57)
    assert main(["simulate", "-n", "3", "-o", str(out), "-q"]) == 2  # exists, no --overwrite
    assert "exists" in capsys.readouterr().err
    sub = tmp_path / "sub.asdf"
    assert main(["simulate", "-n", "2", "-o", str(sub), "--instrument", "lsst", "--bands", "r", "--seed", "1",
                 "--lens-light", "subtracted", "-q"]) == 0
    ds = lenskit.read(sub)
    assert ds.provenance.config["lens_light"] == "subtracted" and "lens_light" in ds.truth


def test_simulate_bad_band(tmp_path, capsys):
    assert main(["simulate", "-n", "1", "-o", str(tmp_path / "x.asdf"), "--instrument", "lsst", "--bands", "q"]) == 2
    assert "unknown band" in capsys.readouterr().err
    assert not (tmp_path / "x.asdf").exists()


def test_demo(tmp_path, capsys):
    assert main(["demo", "-n", "6", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "read back bit for bit" in out
    # -q: nothing on standard output
    assert main(["demo", "-n", "6", "-o", str(tmp_path / "q"), "-q"]) == 0
    assert capsys.readouterr().out == "" and (tmp_path / "q" / "hst_lenses.asdf").exists()
    assert (tmp_path / "hst_lenses.asdf").exists() and (tmp_path / "hst_gallery.png").stat().st_size > 10000


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "lenskit.cli", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("plugins", "demo", "simulate"):
        assert cmd in out.stdout


@pytest.mark.parametrize("argv", [["--version"]])
def test_version(argv, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert lenskit.__version__ in capsys.readouterr().out


def test_cli_find(tmp_path, capsys):
    from astropy.io import fits

    from lenskit.cli import main
    from lenskit.estimators.finder import DeepLensFinder
    from lenskit.simulation.finder import LensFinderSimulator

    ds = LensFinderSimulator(seed=8, source="sersic").sample(40)
    finder = DeepLensFinder(arch_kwargs={"units_per_stage": 1}, expects={"pixel_scale": 0.18})
    finder.set_statistics(ds)
    weights = tmp_path / "finder.asdf"
    finder.save(weights)
    cube = tmp_path / "cutouts.fits"
    fits.writeto(cube, ds.images[:, 0])
    out = tmp_path / "candidates.asdf"
    assert main(["find", str(cube), "-o", str(out), "--finder", str(weights), "--top", "3"]) == 0
    est = lenskit.read(out)
    assert len(est) == 40 and "p_lens" in est.table.colnames
    assert "scored 40 cutout(s)" in capsys.readouterr().out
    # a dataset with labels also prints the metrics
    ds.write(tmp_path / "cut.asdf")
    assert main(["find", str(tmp_path / "cut.asdf"), "-o", str(tmp_path / "c2.asdf"), "--finder", str(weights),
                 "--lens-fraction", "0.01"]) == 0
    assert '"auroc"' in capsys.readouterr().out
    assert main(["find", str(cube), "-o", str(out), "--finder", str(weights), "-q"]) == 2  # exists
    assert main(["find", str(cube), "-o", str(tmp_path / "x.asdf"), "--finder", "hst_wfc3", "-q"]) == 2
    assert main(["find", str(cube), "-o", str(tmp_path / "y.asdf"), "--finder", str(weights), "-q", "--fast",
                 "--workers", "2"]) == 2  # --fast is single-process: refused before any work
    assert not (tmp_path / "y.asdf").exists()
    # test-time augmentation needs a threshold chosen for it
    assert main(["find", str(cube), "-o", str(tmp_path / "t.asdf"), "--finder", str(weights), "-q", "--tta", "2"]) == 2
    assert "set_threshold" in capsys.readouterr().err and not (tmp_path / "t.asdf").exists()
    finder.set_threshold(ds, tta=2)
    finder.save(weights)
    assert main(["find", str(cube), "-o", str(tmp_path / "t.asdf"), "--finder", str(weights), "-q", "--tta", "2"]) == 0
    assert lenskit.read(tmp_path / "t.asdf").table.meta["tta"] == 2
    # one 2-D cutout at its own pixel scale is resampled onto the finder's grid, as `lenskit estimate` does
    from lenskit.io.fits import Cutout, read_cutout

    s = ds.pixel_scale.to_value("arcsec")
    one = tmp_path / "one.fits"
    fits.writeto(one, ds.images[0, 0], fits.Header({"PIXSCALE": s}))
    coarse = Cutout(np.asarray(ds.images[0, 0], float), s).resample(0.2, (41, 41), outside="noise")
    fits.writeto(tmp_path / "coarse.fits", coarse.image.astype(np.float32), fits.Header({"PIXSCALE": 0.2}))
    for path in (one, tmp_path / "coarse.fits"):
        assert main(["find", str(path), "-o", str(tmp_path / "one.asdf"), "--finder", str(weights),
                     "--overwrite"]) == 0
        printed = capsys.readouterr().out
        assert "resampled" in printed and "scaled by" in printed
        p = float(lenskit.read(tmp_path / "one.asdf").table["p_lens"][0])
        # the documented path: the cutout centred on its galaxy's light, resampled onto the finder's grid and
        # scaled to the finder's training noise
        stamp = read_cutout(path).to_stamp(s, (45, 45)).to_dataset()
        assert p == pytest.approx(float(finder.predict(finder.match_noise(stamp)).table["p_lens"][0]), rel=1e-5)
        assert main(["find", str(path), "-o", str(tmp_path / "raw.asdf"), "--finder", str(weights), "--overwrite",
                     "--no-noise-match", "-q"]) == 0
        raw = float(lenskit.read(tmp_path / "raw.asdf").table["p_lens"][0])
        assert raw == pytest.approx(float(finder.predict(stamp).table["p_lens"][0]), rel=1e-5)
    # the same cutout in other units (x 1000) gets the same score: its noise is matched, not its units
    fits.writeto(tmp_path / "milli.fits", ds.images[0, 0] * 1000, fits.Header({"PIXSCALE": s}))
    assert main(["find", str(tmp_path / "milli.fits"), "-o", str(tmp_path / "milli.asdf"), "--finder", str(weights),
                 "-q"]) == 0
    p_one = float(finder.predict(finder.match_noise(read_cutout(one).to_stamp(s, (45, 45)).to_dataset()))
                  .table["p_lens"][0])
    assert float(lenskit.read(tmp_path / "milli.asdf").table["p_lens"][0]) == pytest.approx(p_one, abs=1e-4)
    # --band names the filter of one 2-D cutout; a cube names its own, and a Dask run takes neither option
    assert main(["find", str(cube), "-o", str(tmp_path / "b.asdf"), "--finder", str(weights), "-q",
                 "--band", "g"]) == 2
    assert "--band applies to one 2-D FITS cutout" in capsys.readouterr().err
    assert main(["find", str(cube), "-o", str(tmp_path / "b.asdf"), "--finder", str(weights), "-q", "--workers", "2",
                 "--band", "g"]) == 2
    assert "--band" in capsys.readouterr().err and not (tmp_path / "b.asdf").exists()
    small = tmp_path / "small.fits"
    fits.writeto(small, ds.images[0, 0, 10:30, 10:30], fits.Header({"PIXSCALE": s}))
    assert main(["find", str(small), "-o", str(tmp_path / "s.asdf"), "--finder", str(weights), "-q"]) == 2
    assert "covers only" in capsys.readouterr().err and not (tmp_path / "s.asdf").exists()
    assert main(["find", str(cube), "-o", str(tmp_path / "s.asdf"), "--finder", str(weights), "-q",
                 "--pixel-scale", "0.2"]) == 2  # a cube is not resampled
    assert "--pixel-scale" in capsys.readouterr().err


def test_train_with_architecture_options(tmp_path, capsys):
    out = tmp_path / "net.asdf"
    assert main(["train", "--instrument", "lsst", "--bands", "r", "--steps", "2", "--batch-size", "4",
                 "--validation-size", "8", "--arch", "stretch=asinh", "--arch", "first_stride=1", "-o", str(out),
                 "-q"]) == 0
    est = lenskit.load_estimator(out)
    assert est.arch_kwargs == {"stretch": "asinh", "first_stride": 1}
    assert "bfloat16" not in est.training
    bf = tmp_path / "bf.asdf"
    assert main(["train", "--instrument", "lsst", "--bands", "r", "--steps", "2", "--batch-size", "4",
                 "--validation-size", "8", "--bfloat16", "-o", str(bf), "-q"]) == 0
    assert lenskit.load_estimator(bf).training["bfloat16"] is True
    assert est.network.inp.stretch == "asinh" and est.network.features[0].stride == (1, 1)
    assert main(["train", "--arch", "stretch", "-o", str(tmp_path / "a.asdf")]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["train", "--arch", "depth=3", "-o", str(tmp_path / "b.asdf")]) == 2
    assert "--arch" in capsys.readouterr().err
    assert not (tmp_path / "a.asdf").exists() and not (tmp_path / "b.asdf").exists()


def test_cli_estimate_with_test_time_augmentation(tmp_path, capsys):
    from lenskit.cli import main
    from lenskit.instruments.lsst import LSST

    ds = lenskit.Simulator(instrument=LSST(bands=("g", "r", "i")), source="sersic", seed=4).sample(6)
    path = tmp_path / "lenses.asdf"
    ds.write(path)
    one, four = tmp_path / "one.asdf", tmp_path / "four.asdf"
    assert main(["estimate", str(path), "--estimator", "lsst_gri", "-o", str(one), "-q"]) == 0
    assert main(["estimate", str(path), "--estimator", "lsst_gri", "-o", str(four), "-q", "--tta", "4"]) == 0
    a, b = lenskit.read(one).table, lenskit.read(four).table
    assert len(b) == 6 and not np.allclose(a["e1"], b["e1"])  # averaged over four symmetries: different numbers
    assert np.all(np.abs(a["theta_E"] - b["theta_E"]).value < 0.5)
    with pytest.raises(SystemExit):
        main(["estimate", str(path), "--estimator", "lsst_gri", "-o", str(tmp_path / "x.asdf"), "--tta", "3"])
    assert main(["estimate", str(path), "--estimator", "lsst_gri", "-o", str(tmp_path / "y.asdf"), "--tta", "2",
                 "--workers", "2"]) == 2
    assert not (tmp_path / "y.asdf").exists()


def test_simulate_presets_make_the_papers_data(tmp_path, capsys):
    from lenskit.cli import main

    out = tmp_path / "cutouts.asdf"
    assert main(["simulate", "-n", "12", "--preset", "lanusse2018", "--seed", "3", "-o", str(out), "-q"]) == 0
    ds = lenskit.read(out)
    assert ds.shape == (12, 1, 45, 45) and "is_lens" in ds.params.colnames
    assert len(lenskit.load_estimator("finder").predict(ds)) == 12  # what the finder expects
    out = tmp_path / "pearson.asdf"
    assert main(["simulate", "-n", "3", "--preset", "pearson2019-euclid", "--lens-light", "subtracted", "--seed", "1",
                 "-o", str(out), "-q"]) == 0
    ds = lenskit.read(out)
    assert ds.instrument == "euclid_vis" and ds.provenance.config["lens_light"] == "subtracted"


def test_plugins_lists_the_shipped_weights_and_what_they_expect(capsys):
    from lenskit.cli import main

    assert main(["plugins"]) == 0
    assert "shipped weights" in capsys.readouterr().out
    assert main(["plugins", "--weights"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    hst = next(r for r in rows if r and r[0] == "hst_wfc3")
    assert hst[1:] == ["cnn", "hst_wfc3", "F814W", '0.04"', "192x192", "False", "-"]  # no conditions


def test_estimate_table_names_its_input_at_four_significant_figures(tmp_path, capsys):
    from lenskit.cli import main

    ds = lenskit.Simulator(instrument="lsst", seed=4).sample(2)
    ds.write(tmp_path / "in.asdf")
    assert main(["estimate", str(tmp_path / "in.asdf"), "--estimator", "lsst_gri", "-o", str(tmp_path / "e.asdf")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ["input", "row", "theta_E"]
    first = lines[4].split()
    assert first[0] == "in.asdf" and first[1] == "0"
    assert len(first[2].replace(".", "").replace("-", "").lstrip("0")) <= 4  # 4 significant figures


def test_cli_estimate_passes_conditions(tmp_path, capsys):
    from lenskit.estimators.regression import CNNEstimator
    from lenskit.instruments.lsst import LSST

    ds = lenskit.Simulator(instrument=LSST(bands=("g", "r", "i")), source="sersic", seed=5).sample(3)
    path = tmp_path / "lenses.asdf"
    ds.write(path)
    est = CNNEstimator(in_shape=(3, 57, 57), conditions=["psf_fwhm"])
    est.condition_mean, est.condition_std, est.condition_range = np.array([0.7]), np.array([0.1]), np.array(
        [[0.5, 1.0]])
    weights = tmp_path / "cond.asdf"
    est.save(weights)
    table, given = tmp_path / "t.asdf", tmp_path / "g.asdf"
    assert main(["estimate", str(path), "--estimator", str(weights), "-o", str(table), "-q"]) == 0
    assert main(["estimate", str(path), "--estimator", str(weights), "-o", str(given), "-q",
                 "--condition", "psf_fwhm=0.95"]) == 0
    a, b = lenskit.read(table).table, lenskit.read(given).table
    assert not np.allclose(a["theta_E"].value, b["theta_E"].value)  # the network read the other seeing
    capsys.readouterr()
    assert main(["estimate", str(path), "--estimator", str(weights), "-o", str(tmp_path / "x.asdf"),
                 "--condition", "seeing=1"]) == 2
    assert "reads ['psf_fwhm']" in capsys.readouterr().err
    assert main(["estimate", str(path), "--estimator", "lsst_gri", "-o", str(tmp_path / "y.asdf"),
                 "--condition", "psf_fwhm=0.7"]) == 2
    assert not (tmp_path / "x.asdf").exists() and not (tmp_path / "y.asdf").exists()
    with pytest.raises(SystemExit):
        main(["estimate", str(path), "--estimator", str(weights), "-o", str(tmp_path / "z.asdf"),
              "--condition", "psf_fwhm=wide"])
