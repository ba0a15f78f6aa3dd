"""Estimates as ASDF, FITS and ECSV (format= or the suffix); astropy's unified I/O with format="lenskit"."""

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable

import lenskit


@pytest.fixture(scope="module")
def estimate():
    ds = lenskit.Simulator(instrument="lsst", seed=8).sample(5)
    return ds, lenskit.load_estimator("lsst_gri").predict(ds)


@pytest.mark.parametrize("name,fmt", [("e.asdf", None), ("e.fits", None), ("e.ecsv", None),
                                      ("e.tbl", "ascii.ecsv"), ("e.dat", "fits")])
def test_estimate_round_trips_with_units_and_provenance(estimate, tmp_path, name, fmt):
    _, est = estimate
    est.write(tmp_path / name, format=fmt)
    back = lenskit.Estimate.read(tmp_path / name, format=fmt)
    assert back.table.colnames == est.table.colnames
    for c in est.table.colnames:
        assert np.allclose(np.asarray(back.table[c]), np.asarray(est.table[c]))
        unit = getattr(est.table[c], "unit", None)  # FITS stores a dimensionless column without a unit
        assert (getattr(back.table[c], "unit", None) or u.one) == (unit or u.one)
    assert back.provenance.checksums == est.provenance.checksums
    assert lenskit.read(tmp_path / name, format=fmt).table.colnames == est.table.colnames
    with pytest.raises(FileExistsError):
        est.write(tmp_path / name, format=fmt)


def test_astropy_unified_io_reads_lenskit_tables(estimate, tmp_path):
    ds, est = estimate
    est.write(tmp_path / "e.asdf")
    ds.write(tmp_path / "d.asdf")
    t = QTable.read(tmp_path / "e.asdf")  # identified by its suffix
    assert t["theta_E"].unit == "arcsec"
    assert t.meta["lenskit_provenance"]["config"]["estimator"] == est.provenance.config["estimator"]
    p = QTable.read(str(tmp_path / "d.asdf"), format="lenskit")  # a dataset's true parameters
    assert len(p) == 5 and "magnification" in p.colnames
    t.write(tmp_path / "again.asdf", format="lenskit")
    assert lenskit.read(tmp_path / "again.asdf").provenance.checksums == est.provenance.checksums


def test_only_estimates_go_to_table_formats(estimate, tmp_path):
    ds, est = estimate
    with pytest.raises(ValueError, match=r"x\.ecsv.*ASDF"):
        ds.write(tmp_path / "x.ecsv")
    with pytest.raises(ValueError, match="format must be one of"):
        est.write(tmp_path / "x.xml", format="votable")
    assert not list(tmp_path.iterdir())
