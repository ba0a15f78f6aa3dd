import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable

import lenskit
from lenskit.core.estimate import Estimate
from lenskit.core.exceptions import LenskitFileError
from lenskit.io.fits import (
    Cutout,
    overlap_matrix,
    read_band_images,
    read_cutout,
    read_estimate_fits,
    write_estimate_fits,
)


def test_overlap_matrix_conserves_flux():
    W = overlap_matrix(40, 0.05, 30, 0.04, shift=0.013)
    covered = (np.abs((np.arange(40) - 19.5) * 0.05 - 0.013) < 0.6 - 0.05)
    np.testing.assert_allclose(W.sum(0)[covered], 1.0, rtol=1e-12)
    np.testing.assert_allclose(overlap_matrix(8, 0.1, 8, 0.1), np.eye(8), atol=1e-12)
    # an aligned 2x coarser grid sums pairs of pixels
    W2 = overlap_matrix(8, 0.1, 4, 0.2)
    np.testing.assert_allclose(W2, np.kron(np.eye(4), [[1, 1]]), atol=1e-12)


def test_resample_recentres_and_conserves_flux():
    h = w = 101
    yy, xx = np.indices((h, w))
    img = 50 * np.exp(-0.5 * ((xx - 47.3) ** 2 + (yy - 55.8) ** 2) / 3.0 ** 2)
    c = Cutout(img, 0.05)
    cx, cy = c.light_centre()
    assert cx == pytest.approx(47.3, abs=0.1) and cy == pytest.approx(55.8, abs=0.1)
    r = c.resample(0.04, (96, 96))
    assert r.image.sum() == pytest.approx(img.sum(), rel=1e-6)
    y2, x2 = np.indices(r.shape)
    assert (r.image * x2).sum() / r.image.sum() == pytest.approx(47.5, abs=0.05)  # centred on the new grid
    assert (r.image * y2).sum() / r.image.sum() == pytest.approx(47.5, abs=0.05)
    # surface brightness is conserved: the peak per arcsec^2 stays the same
    assert r.image.max() / 0.04 ** 2 == pytest.approx(img.max() / 0.05 ** 2, rel=0.05)
    with pytest.raises(ValueError, match="pixel_scale"):
        c.resample(0.0, (10, 10))


def test_resample_propagates_noise():
    rng = np.random.default_rng(4)
    sigma = 0.3
    noise_img = rng.normal(0, sigma, (200, 200))
    c = Cutout(noise_img, 0.05, noise=np.full((200, 200), sigma))
    r = c.resample(0.1, (100, 100), centre=(99.5, 99.5))  # aligned 2x2 binning
    np.testing.assert_allclose(r.noise, 2 * sigma, rtol=1e-9)
    assert np.std(r.image) == pytest.approx(2 * sigma, rel=0.03)
    # outside the input: masked, infinite noise
    r2 = c.resample(0.1, (150, 150), centre=(99.5, 99.5))
    assert r2.mask[0, 0] and np.isinf(r2.noise[0, 0]) and not r2.mask[75, 75]
    assert r2.outside_fraction == pytest.approx(1 - c.coverage(0.1, (150, 150), centre=(99.5, 99.5)))
    assert r2.outside_fraction == pytest.approx(1 - (100 / 150) ** 2, abs=0.01)


def test_resample_fills_the_grid_beyond_the_cutout_with_its_background():
    rng = np.random.default_rng(5)
    sigma, level = 0.3, 2.0
    yy, xx = np.indices((100, 100))
    img = level + rng.normal(0, sigma, (100, 100)) + 40 * np.exp(-0.5 * ((xx - 49.5) ** 2 + (yy - 49.5) ** 2) / 9)
    for noise in (np.full((100, 100), sigma), None):  # the noise map's level, or the pixels' own scatter
        c = Cutout(img, 0.05, noise=noise)
        kept = c.resample(0.05, (160, 160), centre=(49.5, 49.5))
        r = c.resample(0.05, (160, 160), centre=(49.5, 49.5), outside="noise")
        beyond = kept.mask
        assert r.outside_fraction == pytest.approx(1 - 100 ** 2 / 160 ** 2) == pytest.approx(beyond.mean())
        assert not r.mask.any()  # filled, not masked
        np.testing.assert_array_equal(r.image[~beyond], kept.image[~beyond])  # the cutout itself unchanged
        fill = r.image[beyond]
        # the cutout's median (the background, nudged by the galaxy) plus noise of its rms
        assert fill.mean() == pytest.approx(np.median(kept.image[~beyond]), abs=0.01)
        assert fill.mean() == pytest.approx(level, abs=0.03)
        assert fill.std() == pytest.approx(sigma, rel=0.02 if noise is not None else 0.06)  # MAD: nudged too
        if noise is not None:
            np.testing.assert_allclose(r.noise[beyond], sigma, rtol=1e-6)
        # the same fill every time: an estimate does not depend on when it was made
        np.testing.assert_array_equal(r.image, c.resample(0.05, (160, 160), centre=(49.5, 49.5), outside="noise").image)
    with pytest.raises(ValueError, match="outside must be 'mask' or 'noise'"):
        c.resample(0.05, (160, 160), outside="zeros")


def test_fill_large_masks_fills_regions_larger_than_the_training_masks_only():
    rng = np.random.default_rng(6)
    sigma, level = 0.2, 1.0
    img = level + rng.normal(0, sigma, (120, 120))
    mask = np.zeros(img.shape, bool)
    mask[:, 60:70] = True  # a 0.4" x 4.8" strip (1.9 arcsec**2): larger than the training's masks
    mask[10:13, 10:13] = True  # a cosmic ray (0.014 arcsec**2): as trained, it stays masked
    c = Cutout(img, 0.04, noise=np.full(img.shape, sigma), mask=mask)
    f = c.fill_large_masks()
    assert f.mask[10:13, 10:13].all() and not f.mask[:, 60:70].any()
    assert f.filled_fraction == pytest.approx(10 / 120)
    strip = f.image[:, 60:70]
    assert strip.mean() == pytest.approx(level, abs=0.02) and strip.std() == pytest.approx(sigma, rel=0.05)
    np.testing.assert_array_equal(f.image[~mask], c.image[~mask])
    np.testing.assert_allclose(f.noise[:, 60:70], sigma)
    assert c.fill_large_masks(area=10.0).filled_fraction == 0.0  # the threshold is an area in arcsec**2
    assert c.to_stamp(0.04, (120, 120), centre=(59.5, 59.5)).filled_fraction == pytest.approx(10 / 120)
    with pytest.raises(ValueError, match="area"):
        c.fill_large_masks(area=-1)


def test_check_field_refuses_a_cutout_that_covers_under_half_of_a_network_field():
    c = Cutout(np.random.default_rng(0).normal(0, 1, (100, 100)), 0.04, path="small.fits")
    assert c.check_field(0.04, (96, 96), centre=(49.5, 49.5)) == 0.0  # inside the cutout: silent
    with pytest.warns(lenskit.core.LenskitDataWarning, match=r"small.fits: 39% of hst_wfc3's 5.12\" x 5.12\" field"):
        assert c.check_field(0.04, (128, 128), centre=(49.5, 49.5), what="hst_wfc3") == pytest.approx(1 - (100 / 128) ** 2)
    with pytest.raises(ValueError, match=r"small.fits: the cutout \(4\" x 4\"\) covers only 27% of the estimator's "
                                         r"7.68\" x 7.68\" field .* at least 7.68\" x 7.68\""):
        c.to_stamp(0.04, (192, 192), centre=(49.5, 49.5))


def test_read_slacs_cutout_with_wcs(shared_data):
    path = shared_data / "real_lenses" / "slacs_acs_f814w" / "SDSSJ0029-0055.fits"
    c = read_cutout(path)
    assert c.pixel_scale == pytest.approx(0.05, rel=1e-6)
    assert c.wcs is not None
    x, y = c.light_centre()
    assert x == pytest.approx(49.5, abs=1.0) and y == pytest.approx(49.6, abs=1.0)  # the published centroid
    # north-up, east to the left: PA 0 points along +y, PA 90 (east) along -x
    assert np.degrees(c.phi_from_position_angle(0.0)) == pytest.approx(90.0, abs=0.01)
    assert np.degrees(c.phi_from_position_angle(90.0)) == pytest.approx(0.0, abs=0.01)
    ds = c.resample(0.04, (192, 192)).to_dataset()
    assert ds.images.shape == (1, 1, 192, 192) and ds.masks.any()


def test_read_cutout_noise_psf_and_no_wcs(shared_data):
    d = shared_data / "real_lenses" / "slacs_acs_f814w" / "slacs1430+4105"
    with pytest.raises(ValueError, match="pixel_scale"):
        read_cutout(d / "image.fits")
    c = read_cutout(d / "image.fits", noise=d / "noise_map.fits", psf=d / "psf.fits", pixel_scale=0.05)
    assert c.psf.sum() == pytest.approx(1.0) and c.noise is not None
    with pytest.raises(ValueError, match="no WCS"):
        c.phi_from_position_angle(10.0)


def test_counts_and_bad_files(tmp_path):
    img = np.ones((20, 20)) * 400.0
    hdr = fits.Header({"BUNIT": "COUNTS", "EXPTIME": 100.0, "PIXSCALE": 0.1})
    fits.writeto(tmp_path / "c.fits", img, hdr)
    c = read_cutout(tmp_path / "c.fits")
    np.testing.assert_allclose(c.image, 4.0)
    fits.writeto(tmp_path / "c2.fits", img, fits.Header({"BUNIT": "COUNTS", "PIXSCALE": 0.1}))
    with pytest.raises(ValueError, match="EXPTIME"):
        read_cutout(tmp_path / "c2.fits")
    (tmp_path / "empty.fits").write_bytes(b"")
    with pytest.raises(LenskitFileError, match="empty"):
        read_cutout(tmp_path / "empty.fits")
    (tmp_path / "junk.fits").write_bytes(b"not a fits file at all" * 10)
    with pytest.raises(LenskitFileError):
        read_cutout(tmp_path / "junk.fits")
    with pytest.raises(ValueError, match="no HDU 'SCI'"):
        read_cutout(tmp_path / "c.fits", hdu="SCI")
    with pytest.raises(FileNotFoundError):
        read_cutout(tmp_path / "missing.fits")
    nan = img.copy()
    nan[:] = np.nan
    with pytest.raises(ValueError, match="masked"):
        Cutout(nan, 0.1)


def test_truncated_files_are_refused_by_name_when_opened(tmp_path):
    # an image in the second HDU, as HST pipelines write them: 2 header blocks, 64 x 64 float32 = 6 data blocks
    img = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(img, fits.Header({"PIXSCALE": 0.05}))])
    hdul.writeto(tmp_path / "whole.fits")
    raw = (tmp_path / "whole.fits").read_bytes()
    assert len(raw) == 2880 * 8
    cuts = {"header": 2880 + 2000, "header_end": 2880 * 2 - 80, "data": 2880 * 4}
    for name, n in cuts.items():
        path = tmp_path / f"{name}.fits"
        path.write_bytes(raw[:n])
        with pytest.raises(LenskitFileError, match=f"{path.name} is truncated or corrupt"):
            read_cutout(path)
    # only the last block's padding missing: every value is there, so the file is read (astropy warns)
    path = tmp_path / "padding.fits"
    path.write_bytes(raw[:-100])
    with pytest.warns(Warning, match="truncated"):
        c = read_cutout(path)
    np.testing.assert_array_equal(c.image, img)
    # one unit of a file (a mosaic beside its weight map) is read alone, and refused by name if it is cut short
    from lenskit.io.fits import read_image

    two = tmp_path / "two.fits"
    fits.HDUList([fits.PrimaryHDU(img), fits.ImageHDU(img)]).writeto(two)
    raw = two.read_bytes()
    two.write_bytes(raw[:-2880 * 2])
    np.testing.assert_array_equal(read_image(two, 0)[0], img)
    with pytest.raises(LenskitFileError, match="two.fits is truncated or corrupt: HDU 1"):
        read_image(two, 1)


def test_estimate_fits_round_trip(tmp_path):
    t = QTable({"theta_E": [1.0, 1.2] * u.arcsec, "theta_E_std": [0.1, 0.2] * u.arcsec, "e1": [0.1, -0.05]})
    est = Estimate(t)
    path = tmp_path / "est.fits"
    write_estimate_fits(est, path)
    back = read_estimate_fits(path)
    assert back.table["theta_E"].unit == u.arcsec
    np.testing.assert_allclose(back.table["theta_E_std"].value, [0.1, 0.2])
    assert back.provenance.to_dict()["lenskit_version"] == est.provenance.to_dict()["lenskit_version"]
    with pytest.raises(FileExistsError):
        write_estimate_fits(est, path)


def test_one_pixel_scale_policy_for_every_fits_reader(tmp_path):
    """WCS first, then PIXSCALE-like keywords, the same in read_cutout, lenskit deblend and image_directory."""
    import warnings

    from astropy.io import fits
    from astropy.wcs import WCS

    from lenskit.core import LenskitDataWarning
    from lenskit.io.fits import read_cutout

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cdelt = [-0.05 / 3600, 0.05 / 3600]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [16.5, 16.5]
    both = w.to_header()
    both["PIXSCALE"] = 0.1  # stale: disagrees with the WCS
    both["FILTER"] = "F814W"
    only_key = fits.Header({"PIXSCALE": 0.03})
    rng = np.random.default_rng(1)
    (tmp_path / "stamps").mkdir()
    for name, hdr in (("both", both), ("key", only_key)):
        fits.PrimaryHDU(rng.normal(size=(32, 32)) + 10, header=hdr).writeto(tmp_path / f"{name}.fits")
        fits.PrimaryHDU(rng.normal(size=(32, 32)) + 10, header=hdr).writeto(tmp_path / "stamps" / f"{name}.fits")
    with pytest.warns(LenskitDataWarning, match="WCS gives 0.05.*PIXSCALE = 0.1"):
        assert read_cutout(tmp_path / "both.fits").pixel_scale == pytest.approx(0.05)
    with pytest.warns(LenskitDataWarning):
        cube, bands, scale = read_band_images([tmp_path / "both.fits"])
    assert scale == pytest.approx(0.05) and bands == ["F814W"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_cutout(tmp_path / "key.fits").pixel_scale == pytest.approx(0.03)
        assert read_band_images([tmp_path / "key.fits"])[2] == pytest.approx(0.03)
        assert read_cutout(tmp_path / "both.fits", pixel_scale=0.07).pixel_scale == 0.07  # the caller's value wins
    src = lenskit.get("source", "image_directory")(tmp_path / "stamps")
    with pytest.warns(LenskitDataWarning):
        assert src._scale(both, "both.fits") == pytest.approx(0.05)
    assert src._scale(only_key, "key.fits") == pytest.approx(0.03)


def test_cutout_from_nddata_and_ccddata():
    from astropy.nddata import CCDData, NDData, StdDevUncertainty, VarianceUncertainty
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cdelt = [-0.05 / 3600, 0.05 / 3600]
    w.wcs.crpix = [25, 25]
    w.wcs.crval = [10, 10]
    img = np.random.default_rng(0).normal(size=(50, 50))
    mask = np.zeros((50, 50), bool)
    mask[3, 4] = True
    ccd = CCDData(img, unit="electron/s", uncertainty=VarianceUncertainty(np.full((50, 50), 0.25)), wcs=w, mask=mask)
    cut = Cutout.from_nddata(ccd)
    assert cut.pixel_scale == pytest.approx(0.05) and cut.wcs is not None
    assert np.allclose(cut.noise, 0.5) and cut.mask[3, 4] and cut.mask.sum() == 1  # variance -> 1 sigma
    nd = NDData(img, uncertainty=StdDevUncertainty(np.full((50, 50), 0.3)), meta={"PIXSCALE": 0.04})
    assert Cutout.from_nddata(nd).pixel_scale == pytest.approx(0.04)
    assert Cutout.from_nddata(NDData(img), pixel_scale=0.1 * u.arcsec).pixel_scale == pytest.approx(0.1)
    with pytest.raises(ValueError, match="pixel_scale"):
        Cutout.from_nddata(NDData(img))
    with pytest.raises(TypeError, match="NDData or CCDData"):
        Cutout.from_nddata(img)


def test_a_real_cutout_does_not_reach_an_estimator_trained_without_lens_light_unchecked():
    """Cutout.to_dataset records that its lens light is unknown; hst_wfc3 (no lens light) refuses, naming model_lens."""
    rng = np.random.default_rng(1)
    cut = Cutout(rng.normal(size=(100, 100)) + 10 * np.exp(-0.5 * ((np.indices((100, 100)) - 50) ** 2).sum(0) / 9),
                 0.05)
    ready = cut.resample(0.04, (192, 192))
    est = lenskit.load_estimator("hst_wfc3")
    with pytest.raises(ValueError, match="model_lens"):
        est.predict(ready.to_dataset())
    assert len(est.predict(ready.to_dataset(lens_light=False))) == 1
    assert len(lenskit.load_estimator("euclid_vis").predict(cut.resample(0.1, (57, 57)).to_dataset())) == 1


def test_read_images_as_dataset_records_the_pixel_scale_and_band(tmp_path):
    from lenskit.core.dataset import UNKNOWN_BAND
    from lenskit.io import read_images

    rng = np.random.default_rng(3)
    cube = rng.normal(size=(4, 57, 57)).astype(np.float32)
    fits.writeto(tmp_path / "vis.fits", cube, fits.Header({"PIXSCALE": 0.1, "FILTER": "VIS"}))
    fits.writeto(tmp_path / "plain.fits", cube)
    fits.writeto(tmp_path / "gri.fits", rng.normal(size=(2, 3, 57, 57)).astype(np.float32),
                 fits.Header({"PIXSCALE": 0.2, "FILTER": "r"}))
    ds = read_images(tmp_path / "vis.fits", as_dataset=True)
    assert isinstance(ds, lenskit.LensDataset) and ds.images.shape == (4, 1, 57, 57)
    assert ds.pixel_scale.to_value("arcsec") == pytest.approx(0.1) and ds.bands == ("VIS",)
    assert np.array_equal(ds.images, cube[:, None])
    plain = read_images(tmp_path / "plain.fits", as_dataset=True)  # nothing to check it against: the array
    assert isinstance(plain, np.ndarray) and plain.shape == (4, 1, 57, 57)
    declared = read_images(tmp_path / "plain.fits", as_dataset=True, pixel_scale=0.2)
    assert declared.pixel_scale.to_value("arcsec") == pytest.approx(0.2) and declared.bands == (UNKNOWN_BAND,)
    gri = read_images(tmp_path / "gri.fits", as_dataset=True)  # one FILTER cannot name three bands
    assert gri.bands == (UNKNOWN_BAND,) * 3
    # the estimators check what the file records: a Euclid network refuses a cube at another pixel scale
    est = lenskit.load_estimator("euclid_vis")
    assert len(est.predict(ds)) == 4
    with pytest.raises(ValueError, match=r"pixel_scale: the images have 0.2\"/px"):
        est.predict(declared)
    with pytest.raises(ValueError, match="pixel_scale must be > 0"):
        read_images(tmp_path / "plain.fits", as_dataset=True, pixel_scale=-1)
