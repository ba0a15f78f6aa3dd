import astropy.units as u
import numpy as np
import pytest
from scipy.special import gamma, gammaincinv

import lenskit
from lenskit.core import Deblended
from lenskit.deblenders.ica import ICADeblender, match_psfs
from lenskit.deblenders.sersic import PixelSersic2D, SersicDeblender

N = 64
SCALE = 0.05


def _sersic(h, w, x0, y0, r_eff, n, ellip, theta, amp):
    return PixelSersic2D(amp, r_eff, n, x0, y0, ellip, theta, oversample=5)(*np.mgrid[:h, :w][::-1].astype(float))


def _arcs(h, w, cx, cy, radius=14.0):
    yy, xx = np.indices((h, w))
    r = np.hypot(yy - cy, xx - cx)
    ang = np.arctan2(yy - cy, xx - cx)
    ring = np.exp(-0.5 * ((r - radius) / 1.5) ** 2)
    return ring * (np.exp(-0.5 * (ang / 0.5) ** 2) + 0.7 * np.exp(-0.5 * ((ang - 2.8) / 0.35) ** 2))


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(11)
    lens = _sersic(N, N, 31.6, 32.3, 6.0, 3.0, 0.3, 0.6, 1.0)
    arcs = _arcs(N, N, 31.6, 32.3)
    # a red lens and a blue source: each band mixes them differently
    colours_lens, colours_arc = np.array([0.3, 1.0]), np.array([0.8, 0.5])
    clean = lens[None] * colours_lens[:, None, None] + arcs[None] * colours_arc[:, None, None]
    noise = 0.01
    img = clean + rng.normal(0, noise, clean.shape)
    true_arcs = arcs[None] * colours_arc[:, None, None]
    return img, true_arcs, lens, noise


def _corr(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_ica_recovers_arcs_in_flux_units(scene):
    img, true_arcs, _, _ = scene
    res = ICADeblender().separate(img, pixel_scale=SCALE, bands=["F475X", "F600LP"])
    assert isinstance(res, Deblended) and res.arcs.shape == (1, 2, N, N)
    m = res.masks[0]
    for b in range(2):
        assert _corr(res.arcs[0, b], true_arcs[b]) > 0.95
        assert res.arcs[0, b][~m].sum() == pytest.approx(true_arcs[b][~m].sum(), rel=0.12)
        assert np.all(res.arcs[0, b][m] == 0)
    np.testing.assert_allclose(res.arcs + res.lens_light, img[None], atol=1e-5)  # nothing lost
    assert res.params["masked_fraction"][0] > 0  # the centre was masked
    assert res.band("F600LP").shape == (1, N, N)


def test_ica_identifies_arcs_by_morphology_not_index(scene):
    img, true_arcs, _, _ = scene
    picked = set()
    for seed in range(6):
        res = ICADeblender(random_state=seed).separate(img, pixel_scale=SCALE)
        picked.add(int(res.params["arc_component"][0]))
        assert _corr(res.arcs[0, 1], true_arcs[1]) > 0.95
    # swapping the band order swaps the mixing, not the answer
    res = ICADeblender().separate(img[::-1].copy(), pixel_scale=SCALE)
    assert _corr(res.arcs[0, 0], true_arcs[1]) > 0.95
    assert picked <= {0, 1}


def test_ica_masks_cosmic_rays(scene):
    img, true_arcs, _, noise = scene
    hit = img.copy()
    hit[0, 8:10, 50:53] += 2.0  # a cosmic ray in one band only
    noise_map = np.full(img.shape, noise)
    res = ICADeblender().separate(hit, pixel_scale=SCALE, noise=noise_map)
    assert res.params["n_cosmic_rays"][0] >= 1
    assert res.masks[0, 9, 51]
    assert _corr(res.arcs[0, 1], true_arcs[1]) > 0.9


def test_ica_input_errors(scene):
    img, *_ = scene
    ica = ICADeblender()
    with pytest.raises(ValueError, match="two or more bands"):
        ica.separate(img[:1], pixel_scale=SCALE)
    with pytest.raises(ValueError, match="masks must be shaped"):
        ica.separate(img, masks=np.zeros((N, N + 1), bool), pixel_scale=SCALE)
    bad = img.copy()
    bad[0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ica.separate(bad, pixel_scale=SCALE)
    mask = np.zeros((N, N), bool)
    mask[3, 3] = True
    ica.separate(bad, masks=mask, pixel_scale=SCALE)  # fine under a mask
    with pytest.raises(ValueError, match="every pixel"):
        ica.separate(img, masks=np.ones((N, N), bool), pixel_scale=SCALE)
    with pytest.raises(ValueError, match="pixel_scale"):
        ica.separate(img)
    with pytest.raises(ValueError, match="psfs"):
        ICADeblender(psf_match=True).separate(img, pixel_scale=SCALE)


def test_psf_matching_gaussian_is_exact():
    yy, xx = np.indices((41, 41)) - 20.0

    def g(s):
        k = np.exp(-0.5 * (xx ** 2 + yy ** 2) / s ** 2)
        return k / k.sum()

    cube = np.stack([g(1.5), g(3.0)])[None]
    fwhm = 2 * np.sqrt(2 * np.log(2)) * 0.1
    out, target = match_psfs(cube, [1.5 * fwhm, 3.0 * fwhm], pixel_scale=0.1)
    assert target == 1
    np.testing.assert_allclose(out[0, 0], g(3.0), atol=2e-4)
    # PSF images: photutils matching kernel, to within its window's accuracy
    out2, _ = match_psfs(cube, [g(1.5), g(3.0)])
    assert np.abs(out2[0, 0] - g(3.0)).max() < 0.05 * g(3.0).max()


def test_pixel_sersic_total_flux_matches_analytic():
    # total flux of an elliptical Sérsic: 2 pi q r_eff^2 I_e n e^b b^(-2n) Gamma(2n)
    r_eff, n, ellip, amp = 5.0, 2.5, 0.3, 1.0
    m = _sersic(301, 301, 150, 150, r_eff, n, ellip, 0.4, amp)
    b = gammaincinv(2 * n, 0.5)
    total = 2 * np.pi * (1 - ellip) * r_eff ** 2 * amp * n * np.exp(b) * b ** (-2 * n) * gamma(2 * n)
    assert m.sum() == pytest.approx(total, rel=0.01)


def test_sersic_deblender_recovers_profile_and_arcs(scene):
    img, true_arcs, lens, noise = scene
    rng = np.random.default_rng(2)
    band = lens * 1.0 + true_arcs[1] + 0.02 + rng.normal(0, noise, lens.shape)
    res = SersicDeblender().separate(band, pixel_scale=SCALE, noise=np.full(band.shape, noise))
    p = res.params[0]
    assert p["n"] == pytest.approx(3.0, rel=0.1)
    assert p["q"] == pytest.approx(0.7, abs=0.03)
    assert p["phi"].to_value(u.rad) == pytest.approx(0.6, abs=0.05)
    assert p["R_e"].to_value(u.arcsec) == pytest.approx(6.0 * np.sqrt(0.7) * SCALE, rel=0.1)
    assert p["x0"].to_value(u.arcsec) == pytest.approx((31.6 - 31.5) * SCALE, abs=0.01)
    assert p["sky"] == pytest.approx(0.02, abs=0.005)
    assert _corr(res.arcs[0, 0], true_arcs[1]) > 0.9
    assert res.arcs[0, 0].sum() == pytest.approx(true_arcs[1].sum(), rel=0.15)
    # the arc mask found the arcs
    on_arcs = true_arcs[1] > 0.3 * true_arcs[1].max()
    assert res.masks[0][on_arcs].mean() > 0.6


def test_profile_correction_recovers_an_elliptical_residual_and_ignores_masked_arcs():
    from lenskit.deblenders.sersic import profile_correction
    h = w = 96
    x0, y0, q, theta = 47.3, 48.1, 0.6, 0.7
    yy, xx = np.indices((h, w), dtype=float)
    dx, dy = xx - x0, yy - y0
    a = np.hypot(dx * np.cos(theta) + dy * np.sin(theta), (-dx * np.sin(theta) + dy * np.cos(theta)) / q)
    ring = 0.3 * np.exp(-0.5 * ((a - 6.0) / 2.0) ** 2) - 0.1 * np.exp(-a / 3.0)  # a profile mismatch
    arcs = 5.0 * np.exp(-0.5 * ((np.hypot(dx, dy) - 14.0) / 1.5) ** 2) * (np.arctan2(dy, dx) > 0.5)
    rng = np.random.default_rng(4)
    resid = ring + arcs + rng.normal(0, 0.01, (h, w))
    arc_mask = arcs > 0.05
    corr = profile_correction(resid, arc_mask, x0, y0, q, theta, r_max=30.0)
    inner = a < 20
    # the mismatch to a few per cent of its peak, arcs and all
    assert np.sqrt(np.mean((corr - ring)[inner] ** 2)) < 0.006
    assert np.abs(corr - ring)[inner].max() < 0.025
    assert np.sqrt(np.mean((resid - corr - arcs)[inner & ~arc_mask] ** 2)) < 0.015  # only noise left
    assert np.all(corr[a > 30] == 0)
    # nothing to correct: a pure-noise residual gives a correction of a fraction of the noise (a few terms)
    flat = profile_correction(rng.normal(0, 0.01, (h, w)), np.zeros((h, w), bool), x0, y0, q, theta, 30.0)
    assert np.sqrt(np.mean(flat[inner] ** 2)) < 0.0025 and np.abs(flat[a > 3]).max() < 0.01
    # bad input is named before any work
    with pytest.raises(ValueError, match="excluded must be a boolean mask"):
        profile_correction(resid, arc_mask[:10], x0, y0, q, theta, 30.0)
    with pytest.raises(ValueError, match="noise must be shaped"):
        profile_correction(resid, arc_mask, x0, y0, q, theta, 30.0, noise=np.ones(3))
    with pytest.raises(ValueError, match="q in"):
        profile_correction(resid, arc_mask, x0, y0, 1.5, theta, 30.0)
    with pytest.raises(ValueError, match="resid must be a 2-D"):
        profile_correction(resid[0], arc_mask, x0, y0, q, theta, 30.0)


def test_sersic_deblender_corrects_a_bulge_and_disc_galaxy():
    # a galaxy that is not one Sersic profile: one Sersic leaves a ring about the centre, the correction does not
    h = w = 80
    bulge = _sersic(h, w, 39.7, 40.2, 3.0, 4.0, 0.2, 0.6, 2.0)
    disc = _sersic(h, w, 39.7, 40.2, 12.0, 1.0, 0.45, 0.6, 0.15)
    arcs = 0.3 * _arcs(h, w, 39.7, 40.2, radius=18.0)
    noise = 0.01
    band = bulge + disc + arcs + np.random.default_rng(5).normal(0, noise, (h, w))
    sig = np.full((h, w), noise)
    yy, xx = np.indices((h, w))
    near = (np.hypot(yy - 40.2, xx - 39.7) < 12) & (arcs < 0.01)
    err = {}
    for on in (False, True):
        res = SersicDeblender(profile_correction=on).separate(band, pixel_scale=SCALE, noise=sig)
        err[on] = np.sqrt(np.mean((res.arcs[0, 0] - arcs)[near] ** 2))
        on_arcs = arcs > 0.1 * arcs.max()
        assert res.arcs[0, 0][on_arcs].sum() == pytest.approx(arcs[on_arcs].sum(), rel=0.1)
    # one Sersic leaves three times the noise about the centre; corrected, the noise is what is left
    assert err[False] > 2.5 * noise and err[True] < 1.3 * noise
    # by default only with a PSF: without one most of the mismatch is the PSF's core
    assert SersicDeblender().config()["profile_correction"] is None
    assert res.diagnostics["profile_corrected"] is True
    small = band[20:60, 20:60]
    assert SersicDeblender().separate(small, pixel_scale=SCALE).diagnostics["profile_corrected"] is False
    psf = np.exp(-0.5 * (np.indices((7, 7)) - 3.0) ** 2 / 0.8 ** 2).prod(0)
    assert SersicDeblender(max_iter=1).separate(small, pixel_scale=SCALE, psf=psf / psf.sum()).diagnostics[
        "profile_corrected"] is True
    with pytest.raises(ValueError, match="profile_correction"):
        SersicDeblender(profile_correction="yes")


def test_profile_correction_leaves_an_einstein_ring_alone():
    # a complete ring, masked as arcs out to the galaxy's visible edge: nothing may be fitted there
    h = w = 80
    yy, xx = np.indices((h, w))
    r = np.hypot(yy - 40.2, xx - 39.7)
    lens = _sersic(h, w, 39.7, 40.2, 6.0, 4.0, 0.1, 0.3, 0.4)  # below half the noise beyond the ring
    ring = 1.5 * np.exp(-0.5 * ((r - 18.0) / 1.5) ** 2) * (1 + 0.5 * np.cos(np.arctan2(yy - 40.2, xx - 39.7)))
    noise = 0.05
    band = lens + ring + np.random.default_rng(6).normal(0, noise, (h, w))
    out = {on: SersicDeblender(profile_correction=on).separate(band, pixel_scale=SCALE, noise=np.full((h, w), noise))
           for on in (False, True)}
    assert out[True].masks[0][np.abs(r - 18) < 2].mean() > 0.9
    on_ring = ring > 0.2
    for res in out.values():
        assert res.arcs[0, 0][on_ring].sum() == pytest.approx(ring[on_ring].sum(), rel=0.05)
    err = {on: np.sqrt(np.mean((res.arcs[0, 0] - ring) ** 2)) for on, res in out.items()}
    assert err[True] < 1.1 * err[False]


def test_sersic_without_noise_map_and_errors(scene):
    img, true_arcs, lens, noise = scene
    band = lens + true_arcs[1] + np.random.default_rng(3).normal(0, noise, lens.shape)
    res = SersicDeblender().separate(band)  # lengths in pixels, noise measured from the residuals
    assert res.params["R_e"].unit == u.pix
    assert _corr(res.arcs[0, 0], true_arcs[1]) > 0.85
    with pytest.raises(ValueError, match="noise must be shaped"):
        SersicDeblender().separate(band, noise=np.ones((3, 3)))
    with pytest.raises(ValueError, match="psf"):
        SersicDeblender().separate(band, psf=np.zeros((5, 5)))
    with pytest.raises(ValueError, match="oversample"):
        SersicDeblender(oversample=0)


def test_deblended_asdf_round_trip(scene, tmp_path):
    img, *_ = scene
    res = ICADeblender().separate(img, pixel_scale=SCALE, bands=["g", "r"])
    path = tmp_path / "d.asdf"
    res.write(path)
    back = lenskit.read(path)
    assert back == res
    assert back.params.colnames == res.params.colnames
    np.testing.assert_array_equal(back.diagnostics["components"], res.diagnostics["components"])
    np.testing.assert_array_equal(back.masks, res.masks)
    with pytest.raises(ValueError, match="lens_light"):
        Deblended(res.arcs, res.lens_light[:, :1], ["g", "r"], "ica")


def test_registered_and_dataset_input():
    assert {"ica", "sersic"} <= set(lenskit.available("deblender"))
    from lenskit.instruments.lsst import LSST

    sim = lenskit.Simulator(instrument=LSST(bands=("g", "i"), stamp=33), source="sersic", seed=5, selection=None)
    ds = sim.sample(3, keep_truth=True)
    res = lenskit.get("deblender", "ica")().separate(ds)
    assert res.bands == ["g", "i"] and res.arcs.shape == ds.images.shape
    ser = lenskit.get("deblender", "sersic")(max_iter=2).separate(ds)
    assert len(ser.params) == 6 and ser.params["x0"].unit == u.arcsec


def test_cli_deblend_real_sl2s(shared_data, tmp_path):
    from lenskit.cli import main

    d = shared_data / "real_lenses" / "sl2s_wfc3_two_band"
    files = [str(d / f"SL2SJ0219-0829_{b}.fits") for b in ("F475X", "F600LP")]
    out = tmp_path / "sl2s.asdf"
    assert main(["deblend", *files, "-o", str(out), "-q"]) == 0
    res = lenskit.read(out)
    assert res.bands == ["F475X", "F600LP"]
    # the arcs of SL2S J0219-0829 lie about 1.3" from the lens; the lens light is far more concentrated
    assert res.params["arc_radius"][0] > 1.5 * res.params["lens_radius"][0]
    assert main(["deblend", files[0], "-o", str(out), "-q"]) == 2  # one band: ICA refuses, clearly
    assert main(["deblend", files[1], "--method", "sersic", "-o", str(tmp_path / "s.asdf"), "-q"]) == 0
