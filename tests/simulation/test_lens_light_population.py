"""The lens-light population beyond one Sérsic: a disc (bulge + disc, twists, colour gradients), light-mass offsets,
per-image Moffat PSFs and the robust training preset."""

import astropy.units as u
import numpy as np
import pytest
import torch
from scipy import ndimage

import lenskit
from lenskit import Simulator
from lenskit.core.priors import Fixed, Normal, Uniform
from lenskit.instruments.effects import MoffatPSF, Observation, moffat_kernels
from lenskit.simulation import presets
from lenskit.simulation.drawing import SystemDrawer, build_priors


def _lsst():
    return lenskit.get("instrument", "lsst")(bands=("g", "r", "i"))


def test_disc_fraction_zero_is_the_one_component_population_bit_for_bit():
    a = Simulator(source="sersic", instrument="lsst", seed=5).sample(8)
    b = Simulator(source="sersic", instrument="lsst", seed=5, priors={"light_disc_fraction": 0.0}).sample(8)
    assert np.array_equal(a.images, b.images)
    assert "light_disc_fraction" not in a.params.colnames and "light_dx" not in a.params.colnames


def _one_system(light, lens_flux, shape_inst=None):
    inst = shape_inst or lenskit.get("instrument", "lsst")(bands=("g", "r", "i"), stamp=161)
    sim = Simulator(source="sersic", instrument=inst, seed=1, supersample=3)
    params = {"theta_E": np.array([1.0]), "e1": np.zeros(1), "e2": np.zeros(1), "x0": np.array([0.1]),
              "y0": np.array([-0.2])}
    src = lenskit.get("source", "sersic")().sample(1, np.random.default_rng(0))
    _, lens, _ = sim.render(params, np.zeros((1, 2)), src, np.ones((1, 3)), light, lens_flux)
    return lens.numpy()[0], sim.instrument.pixel_scale.to_value(u.arcsec)


def test_bulge_and_disc_carry_their_fluxes_per_band():
    """Analytic identity: each component's total flux is the one asked for, so the band sums add up."""
    light = {"light_R_e": np.array([0.5]), "light_n": np.array([4.0]), "light_e1": np.array([0.1]),
             "light_e2": np.array([0.0]), "light_disc_R_e": np.array([1.2]), "light_disc_e1": np.array([0.0]),
             "light_disc_e2": np.array([0.3])}
    flux = np.array([[[100.0, 200.0, 300.0], [50.0, 40.0, 30.0]]])  # (1, bulge/disc, bands)
    lens, pix = _one_system(light, flux)
    # a de Vaucouleurs bulge of R_e 0.5" loses ~1.5% beyond 16" (analytic): 2% tolerance
    assert np.allclose(lens.sum((1, 2)), flux[0].sum(0), rtol=0.02)
    # the colour gradient: with more of its flux in the (larger) disc, g is less concentrated than i
    y, x = np.indices(lens.shape[1:])
    cy, cx = ndimage.center_of_mass(lens[1])
    inner = np.hypot(x - cx, y - cy) * pix < 0.5
    conc = lens[:, inner].sum(1) / lens.sum((1, 2))
    assert conc[0] < 0.85 * conc[2]


def test_lens_light_offset_moves_its_centroid():
    light = {"light_R_e": np.array([0.4]), "light_n": np.array([1.0]), "light_e1": np.array([0.0]),
             "light_e2": np.array([0.0]), "light_dx": np.array([0.3]), "light_dy": np.array([-0.1])}
    lens, pix = _one_system(light, np.array([[10.0, 10.0, 10.0]]))
    cy, cx = ndimage.center_of_mass(lens[1])
    h, w = lens.shape[1:]
    # mass centre (0.1, -0.2) plus the offset, in arcsec, pixel centres at (i - (n - 1) / 2) * scale
    assert abs((cx - (w - 1) / 2) * pix - 0.4) < 0.01 and abs((cy - (h - 1) / 2) * pix - (-0.3)) < 0.01


def test_disc_flux_split_and_colours():
    inst = _lsst()
    pri = build_priors({"light_disc_fraction": 0.3, "light_disc_blueness": 1.0, "colour_scatter": 0.0}, inst,
                       lenskit.get("mass_model", "sie")())
    drawer = SystemDrawer(lenskit.get("mass_model", "sie")(), inst, pri)
    rng = np.random.default_rng(2)
    light = drawer.light(50, rng, np.full(50, 0.8), np.zeros(50))
    flux = drawer.lens_fluxes(light, rng)
    assert flux.shape == (50, 2, 3)
    ref = inst.bands.index(inst.reference_band)
    # the reference band is split 70 / 30
    assert np.allclose(flux[:, 1, ref] / flux[:, :, ref].sum(1), 0.3)
    # with blueness 1 the disc has the source's colours, the bulge the lens's
    lens_c, src_c = inst.colour_offsets("lens"), inst.colour_offsets("source")
    mags = -2.5 * np.log10(flux / np.array([inst.flux(0.0, b) for b in inst.bands]))  # AB magnitudes
    for b in range(3):
        assert np.allclose(mags[:, 0, b] - mags[:, 0, ref], lens_c[b] - lens_c[ref])
        assert np.allclose(mags[:, 1, b] - mags[:, 1, ref], src_c[b] - src_c[ref])
    # the disc is larger by the ratio prior and twisted about the bulge
    assert np.all(light["light_disc_R_e"] >= light["light_R_e"] - 1e-12)
    assert np.all(light["light_disc_R_e"] <= 3 * light["light_R_e"] + 1e-12)


def test_twist_prior_statistics():
    """The disc's angle minus the bulge's follows the twist prior (fixed seed, 20 000 draws)."""
    inst = _lsst()
    sie = lenskit.get("mass_model", "sie")()
    pri = build_priors({"light_disc_fraction": 0.5, "light_twist": Uniform(10.0, 30.0), "light_disc_q": 0.5}, inst,
                       sie)
    drawer = SystemDrawer(sie, inst, pri, misalignment=False)
    light = drawer.light(20_000, np.random.default_rng(3), np.full(20_000, 0.7), np.zeros(20_000))
    phi_b = 0.5 * np.arctan2(light["light_e2"], light["light_e1"])
    phi_d = 0.5 * np.arctan2(light["light_disc_e2"], light["light_disc_e1"])
    twist = np.rad2deg((phi_d - phi_b + np.pi / 2) % np.pi - np.pi / 2)
    assert twist.min() >= 10 - 1e-9 and twist.max() <= 30 + 1e-9
    assert abs(twist.mean() - 20) < 0.1 and abs(twist.std() - 20 / np.sqrt(12)) < 0.1


@pytest.mark.parametrize("bad", [{"light_disc_fraction": 1.5 * u.arcsec}, {"light_offset": 1 * u.kg}])
def test_bad_population_priors_are_named(bad):
    with pytest.raises((ValueError, u.UnitsError), match=list(bad)[0]):
        Simulator(instrument="lsst", priors=bad)


# ------------------------------------------------------------------------------------------ Moffat PSFs
def _fwhm(kernel):
    row = kernel[kernel.shape[0] // 2]
    c = len(row) // 2
    half = row[c] / 2
    right = np.interp(half, row[c:][::-1], np.arange(len(row) - c)[::-1])
    return 2 * right


def test_moffat_kernel_fwhm_sum_and_gaussian_limit():
    k = moffat_kernels([6.0, 6.0], [3.0, 200.0], half=40, oversample=9).numpy()
    assert np.allclose(k.sum((1, 2)), 1.0)
    # pixel integration widens a FWHM of 6 by about 1/(12 * 6) in quadrature: within 2%
    assert abs(_fwhm(k[0]) / 6.0 - 1) < 0.02
    # beta -> infinity is the Gaussian of the same FWHM: compare with a pixel-integrated Gaussian
    x = np.arange(-40, 41)
    sig = 6.0 / 2.3548
    from scipy.special import erf
    g1 = 0.5 * (erf((x + 0.5) / (np.sqrt(2) * sig)) - erf((x - 0.5) / (np.sqrt(2) * sig)))
    g = np.outer(g1, g1)
    assert np.abs(k[1] - g).max() < 0.01 * g.max()
    # beta 3 has wider wings than the Gaussian
    assert k[0][40, 40 + 15] > 10 * g[40, 40 + 15]


def test_moffat_kernel_wings_hold_the_analytic_enclosed_flux():
    # the profile's flux within r is 1 - (1 + r^2 / alpha^2)^(1 - beta): a kernel normalised to the total
    # flux holds it in circles (to the pixelisation of their edge), and its default size leaves out
    # MOFFAT_TAIL of it
    for fwhm, beta in ((4.0, 2.0), (3.0, 1.6), (5.0, 3.5)):
        k = moffat_kernels([fwhm], [beta], half=150, oversample=5, normalize="flux").numpy()[0]
        y, x = np.indices(k.shape) - 150
        r = np.hypot(x, y)
        alpha = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))
        for radius in (3 * fwhm, 10 * fwhm, 140):
            analytic = 1 - (1 + radius ** 2 / alpha ** 2) ** (1 - beta)
            assert abs(k[r <= radius].sum() - analytic) < 2e-3, (fwhm, beta, radius)
    from lenskit.instruments.effects import MOFFAT_TAIL, moffat_radius
    r99 = moffat_radius(4.0, 2.5)
    assert abs(1 - (1 + r99 ** 2 / (4.0 / (2 * np.sqrt(2 ** 0.4 - 1))) ** 2) ** -1.5 - (1 - MOFFAT_TAIL)) < 1e-12
    k = moffat_kernels([4.0], [2.5], normalize="flux").numpy()[0]
    assert k.shape[0] == 2 * int(np.ceil(r99)) + 1
    assert 1 - MOFFAT_TAIL - 1e-3 < k.sum() < 1.0  # the square holds a little more than its inscribed circle
    with pytest.raises(ValueError, match="normalize"):
        moffat_kernels([4.0], [2.5], normalize="peak")
    with pytest.raises(ValueError, match="tail"):
        moffat_radius(4.0, 2.5, tail=0.0)
    with pytest.raises(ValueError, match="beta"):
        moffat_radius(4.0, 1.0)


def test_moffat_psf_keeps_the_wings_of_a_space_psf():
    # beta 1.5 puts 21% of the flux beyond 3 FWHM: the kernel must not be cut there (as it once was)
    h = 97
    img = torch.zeros((1, 1, h, h), dtype=torch.float64)
    img[:, :, h // 2, h // 2] = 1.0
    obs = Observation(images=img, variance=torch.zeros_like(img), masks=None, truth={}, bands=("F814W",),
                      pixel_scale=0.04)
    out = MoffatPSF(fwhm=0.1, beta=1.5)(obs, np.random.default_rng(0)).images[0, 0].numpy()
    y, x = np.indices(out.shape) - h // 2
    r = np.hypot(x, y)
    alpha = 2.5 / (2 * np.sqrt(2 ** (1 / 1.5) - 1))
    for radius in (7.5, 20.0, 48.0):  # 3 FWHM, 8 FWHM, the stamp's inscribed circle
        analytic = 1 - (1 + radius ** 2 / alpha ** 2) ** -0.5
        assert abs(out[r <= radius].sum() - analytic) < 3e-3, radius


def test_moffat_kernel_ellipticity_sets_the_axis_ratio():
    e = 0.2  # q = (1 - e) / (1 + e) = 2/3
    k = moffat_kernels([8.0], [50.0], [e], [0.0], half=40, oversample=5).numpy()[0]
    y, x = np.indices(k.shape) - 40
    ratio = np.sqrt((k * y * y).sum() / (k * x * x).sum())
    assert abs(ratio - (1 - e) / (1 + e)) < 0.02


def test_moffat_psf_effect_conserves_flux_and_records_fwhm():
    n, nb, h = 6, 3, 63
    img = torch.zeros((n, nb, h, h), dtype=torch.float32)
    img[:, :, h // 2, h // 2] = 100.0
    obs = Observation(images=img.clone(), variance=torch.zeros_like(img), masks=None, truth={"arcs": img.clone()},
                      bands=("g", "r", "i"), pixel_scale=0.2)
    eff = MoffatPSF(fwhm=(0.6, 0.9), beta=(2.5, 4.0), band_scatter=0.1)
    out = eff(obs, np.random.default_rng(4))
    # the kernel reaches half across the stamp (the 0.1% tail radius is further for beta 2.5): the flux kept
    # lies between the analytic enclosed flux of the stamp's inscribed and circumscribed circles
    fb, beta, _, _ = eff.draw(n, nb, np.random.default_rng(4))
    alpha = fb / 0.2 / (2 * np.sqrt(2 ** (1 / beta[:, None]) - 1))
    def enclosed(r):
        return 100.0 * (1 - (1 + r * r / alpha ** 2) ** (1 - beta[:, None]))
    kept = out.images.sum((2, 3)).numpy()
    assert np.all(kept > enclosed(h // 2) - 0.02) and np.all(kept < enclosed(np.sqrt(2) * (h // 2 + 0.5)))
    assert np.all(kept > 99.0)
    assert torch.equal(out.images, out.truth["arcs"])
    f = out.meta["psf_fwhm"]
    assert f.shape == (n,) and np.all((f > 0.5) & (f < 1.0))
    # the convolved point has the drawn FWHM (band average) to pixel-integration accuracy
    measured = np.array([_fwhm(out.images[i].mean(0).numpy()) for i in range(n)]) * 0.2
    assert np.all(np.abs(measured / f - 1) < 0.12)


@pytest.mark.parametrize("kw,match", [({"fwhm": 0.0}, "fwhm"), ({"beta": 1.0}, "beta"), ({"band_scatter": -1}, "band_scatter")])
def test_moffat_psf_bad_inputs(kw, match):
    with pytest.raises(ValueError, match=match):  # refused when made, before anything is simulated
        MoffatPSF(**kw)
    if "fwhm" in kw or "beta" in kw:  # a range below the bound: refused when made too
        with pytest.raises(ValueError, match=match):
            MoffatPSF(fwhm=(-0.2, -0.1)) if "fwhm" in kw else MoffatPSF(beta=(0.5, 0.9))
    # a prior without a stated bound that draws bad values is refused when it draws them
    eff = MoffatPSF(fwhm=Normal(-0.2, 0.01)) if "fwhm" in kw else MoffatPSF(beta=Normal(0.7, 0.01)) if "beta" in kw \
        else None
    if eff is not None:
        img = torch.ones((2, 1, 9, 9))
        with pytest.raises(ValueError, match=match):
            eff(Observation(images=img, variance=img, masks=None, truth={}, bands=("g",), pixel_scale=0.2),
                np.random.default_rng(0))


# ------------------------------------------------------------------------------------------ the robust preset
def test_robust_preset_draws_its_population_and_rebuilds_from_config(tmp_path):
    sim = presets.robust("lsst", seed=3, source="sersic")
    ds = sim.sample(6)
    for col in ("light_disc_fraction", "light_dx", "psf_fwhm", "psf_beta", "n_line_of_sight", "slope", "gamma1"):
        assert col in ds.params.colnames, col
    assert isinstance(sim.instrument.effects[0], MoffatPSF)
    assert [c.name for c in sim.mass_model.components] == ["epl", "external_shear"]
    again = Simulator.from_config(sim.config).sample(6)
    assert np.array_equal(again.images, ds.images)
    assert not isinstance(presets.robust_priors("euclid")["light_disc_fraction"], Fixed)
    with pytest.raises(ValueError, match="survey"):
        presets.robust("jwst")


def test_robust_preset_without_an_ingredient_keeps_the_survey_default():
    from lenskit.instruments.effects import GaussianPSF

    full = presets.robust("lsst", seed=4, source="sersic")
    plain = lenskit.Simulator(instrument=lenskit.get("instrument", "lsst")(bands=("g", "r", "i")), seed=4, lens_light=True)
    bare = presets.robust("lsst", seed=4, source="sersic", without=("psf", "lens_light", "centring"))
    assert isinstance(bare.instrument.effects[0], GaussianPSF) and bare.instrument.to_config() == plain.instrument.to_config()
    for key in ("lens_mag", "light_n", "light_R_e", "light_disc_fraction", "colour_scatter", "x0", "y0"):
        assert repr(bare.priors[key]) == repr(plain.priors[key]) != repr(full.priors[key]), key
    one = presets.robust("lsst", seed=4, source="sersic", without="centring")  # one name alone, as a str
    assert repr(one.priors["x0"]) == repr(plain.priors["x0"]) and repr(one.priors["lens_mag"]) == repr(
        full.priors["lens_mag"]) and isinstance(one.instrument.effects[0], MoffatPSF)
    ds = bare.sample(40)
    assert np.asarray(ds.params["lens_mag"]).min() >= 18.5 and "light_disc_fraction" not in ds.params.colnames
    assert np.array_equal(Simulator.from_config(bare.config).sample(3).images, presets.robust(
        "lsst", seed=4, source="sersic", without=("psf", "lens_light", "centring")).sample(3).images)
    with pytest.raises(ValueError, match="without"):
        presets.robust("lsst", without=("neighbours",))
    sie = presets.robust("lsst", seed=4, source="sersic", without="mass")
    assert sie.mass_model.name == "sie" and "slope" not in sie.sample(2).params.colnames


def test_robust_psf_fwhm_keeps_every_psf_shape_within_the_range_asked_for():
    sim = presets.robust("lsst", seed=8, source="sersic", psf_fwhm=(0.6, 0.8), without=("lens_light", "mass"))
    ds = sim.sample(300)
    fwhm, beta = np.asarray(ds.params["psf_fwhm"]), np.asarray(ds.params["psf_beta"])
    # psf_fwhm is the mean over bands of the drawn FWHM times each band's 10% scatter
    assert 0.6 * 0.75 < fwhm.min() and fwhm.max() < 0.8 * 1.25 and abs(np.median(fwhm) - 0.7) < 0.02
    assert beta.min() < 2.5 and beta.max() > 7.5  # every shape, from wide wings to nearly Gaussian
    wide = np.asarray(presets.robust("lsst", seed=8, source="sersic", without=("lens_light", "mass")).sample(300)
                      .params["psf_fwhm"])
    assert np.std(wide) > 2 * np.std(fwhm)
    assert "[0.6, 0.8]" in str(sim.instrument.to_config())  # the FWHM prior is in the instrument's config
    again = Simulator.from_config(sim.config).sample(4)
    fresh = presets.robust("lsst", seed=8, source="sersic", psf_fwhm=(0.6, 0.8), without=("lens_light", "mass"))
    assert np.array_equal(again.images, fresh.sample(4).images)
    assert presets.robust_instrument("euclid", fwhm=0.18 * u.arcsec).effects[0].fwhm.value == 0.18
    with pytest.raises(ValueError, match=r"fwhm must be > 0 arcsec; got Uniform\(0\.0, 0\.8\)"):
        presets.robust_instrument("lsst", fwhm=(0.0, 0.8))  # MoffatPSF's own check, before anything is drawn
    with pytest.raises(ValueError, match="psf_fwhm"):
        presets.robust("lsst", without="psf", psf_fwhm=(0.6, 0.8))


def test_robust_preset_lenses_are_power_laws_with_shear():
    ds = presets.robust("lsst", seed=6, source="sersic").sample(200)
    slope = np.asarray(ds.params["slope"])
    assert 1.6 <= slope.min() and slope.max() <= 2.4
    assert abs(np.median(slope) - 2.0) < 0.05 and 0.05 < slope.std() < 0.12  # N(2, 0.1) after the selection
    shear = np.hypot(ds.params["gamma1"], ds.params["gamma2"])
    assert shear.max() <= 0.1 and shear.mean() > 0.03
    assert np.mean(ds.params["multiply_imaged"]) > 0.8


def test_epoch_seeing_returns_fwhm_or_sigma():
    from lenskit.instruments.lsst import FWHM_TO_SIGMA, EpochSeeing

    a = EpochSeeing(returns="fwhm").sample(np.random.default_rng(1), 1000)
    b = EpochSeeing().sample(np.random.default_rng(1), 1000)
    assert np.allclose(a * FWHM_TO_SIGMA, b)
    with pytest.raises(ValueError, match="returns"):
        EpochSeeing(returns="width")


def test_epoch_seeing_over_a_range_of_exposures():
    from scipy import stats

    from lenskit.instruments.lsst import EpochSeeing

    rng = np.random.default_rng(5)
    f = EpochSeeing(median=0.8, scatter=0.2, n_epochs=(1, 4), returns="fwhm").sample(rng, 40000)
    # the best of k log-normal exposures, k uniform in 1..4: P(F > x) = mean_k S(x)^k, S the one-exposure survival
    x = np.linspace(0.5, 1.2, 8)
    s1 = stats.norm.sf(np.log(x / 0.8) / 0.2)
    expected = np.mean([s1 ** k for k in (1, 2, 3, 4)], axis=0)
    observed = (f[:, None] > x[None, :]).mean(0)
    assert np.all(np.abs(observed - expected) < 4 * np.sqrt(expected * (1 - expected) / f.size) + 1e-3)
    # a range of one value is the fixed count, draw for draw
    a = EpochSeeing(n_epochs=(3, 3)).sample(np.random.default_rng(2), 100)
    assert np.array_equal(a, EpochSeeing(n_epochs=3).sample(np.random.default_rng(2), 100))
    worst = EpochSeeing(n_epochs=(1, 4), which="worst").sample(np.random.default_rng(2), 5000)
    assert np.isfinite(worst).all() and np.median(worst) > np.median(EpochSeeing(n_epochs=1).sample(rng, 5000))
    for bad in (0, 2.5, (4, 2), (0, 3), (1, 2, 3), "ten"):
        with pytest.raises(ValueError, match="n_epochs"):
            EpochSeeing(n_epochs=bad)
    with pytest.raises(ValueError, match="single_epoch"):
        lenskit.get("instrument", "lsst").lanusse2018(mode="stack", n_epochs=(1, 10))
    # the preset draws it, records it, and rebuilds it
    f = presets.lanusse2018(robust=True, seed=2, n_epochs=(1, 5))
    lenses = Simulator.from_config(f.lenses.config)
    assert lenses.instrument.effects[0].fwhm.n_epochs == (1, 5)
    plain = presets.lanusse2018(seed=2, n_epochs=(1, 5))
    assert plain.instrument.effects[0].sigma.n_epochs == (1, 5)
    d = plain.sample(6)
    assert np.array_equal(d.images, presets.lanusse2018(seed=2, n_epochs=(1, 5)).sample(6).images)
    inst = lenskit.get("instrument", "lsst").lanusse2018(mode="single_epoch")
    for bad in ({"n_epochs": (1, 5)}, {"robust": True}):  # an instrument of one's own, or one the preset makes
        with pytest.raises(ValueError, match="not both"):
            presets.lanusse2018(instrument=inst, **bad)
    assert presets.lanusse2018(instrument=inst).instrument is inst


def test_robust_finder_preset_rebuilds_and_draws_the_wide_population():
    f = presets.lanusse2018(robust=True, seed=2)
    assert isinstance(f.instrument.effects[0], MoffatPSF)
    d = f.sample(8)
    assert {"light_disc_fraction", "psf_beta"} <= set(d.params.colnames)
    lenses = Simulator.from_config(f.lenses.config)
    assert isinstance(lenses.instrument.effects[0], MoffatPSF)
    fw = lenses.instrument.effects[0].fwhm.sample(np.random.default_rng(0), 2000)
    assert 0.5 < np.median(fw) < 0.81  # the best of ten epochs about a median of 0.81"
    with pytest.raises(ValueError, match="psf"):
        lenskit.get("instrument", "lsst").lanusse2018(mode="single_epoch", psf="airy")


# ------------------------------------------------------------------------------------------ imperfect subtraction
def test_imperfect_model_is_exact_with_zero_errors_and_moves_and_blurs_as_drawn():
    from lenskit.simulation.residuals import imperfect_model

    y, x = np.mgrid[:41, :41].astype(float)
    light = torch.as_tensor(np.exp(-((x - 20) ** 2 + (y - 20) ** 2) / (2 * 3.0**2)))[None, None].repeat(2, 1, 1, 1)
    zero = {"residual_amplitude": Fixed(0.0), "residual_shift": Fixed(0.0), "residual_profile": Fixed(0.0)}
    model, drawn = imperfect_model(light, np.random.default_rng(0), zero)
    assert torch.allclose(model, light, atol=1e-12) and np.all(drawn["residual_dx"] == 0)
    # a shift of (1.5, -0.5) pixels moves the centroid by as much (bilinear interpolation)
    moved, _ = imperfect_model(light, np.random.default_rng(0), {**zero, "residual_shift": Fixed(1.5)})
    m = moved[0, 0].numpy()
    assert abs((m * x).sum() / m.sum() - 21.5) < 0.01 and abs((m * y).sum() / m.sum() - 21.5) < 0.01
    # a profile mismatch p > 0 (a model too extended) leaves the core under-subtracted, a ring over-subtracted
    wide, _ = imperfect_model(light, np.random.default_rng(0), {**zero, "residual_profile": Fixed(0.5)})
    r = (light - wide)[0, 0].numpy()
    assert r[20, 20] > 0 and r[20, 20 + 6] < 0 and abs(r.sum()) < 1e-3 * light[0, 0].sum().item()
    # an amplitude error scales the model
    amp, _ = imperfect_model(light, np.random.default_rng(0), {**zero, "residual_amplitude": Fixed(0.1)})
    assert torch.allclose(amp, 1.1 * light)


def test_residual_lens_light_leaves_a_small_residual_and_records_its_draws():
    inst = lenskit.get("instrument", "lsst")(bands=("g", "r", "i"))
    perfect = Simulator(source="sersic", instrument=inst, seed=9, lens_light="subtracted").sample(16, keep_truth=True)
    imperfect = Simulator(source="sersic", instrument=inst, seed=9, lens_light="residual").sample(16, keep_truth=True)
    assert {"residual_amplitude", "residual_dx", "residual_profile"} <= set(imperfect.params.colnames)
    # the systems are the same (the residual draws come after the observation): the difference is the residual
    diff = imperfect.images - perfect.images
    light = perfect.truth["lens_light"]
    frac = np.sqrt((diff**2).reshape(16, -1).mean(1)) / light.reshape(16, -1).max(1)
    assert np.median(frac) > 1e-3 and np.median(frac) < 0.05
    # an estimator trained without lens light accepts these images (they record that it was removed)
    from lenskit.estimators.inputs import check_expects

    assert check_expects(imperfect, {"lens_light": False}) == []
    with pytest.raises(ValueError, match="residual"):
        Simulator(instrument="lsst", lens_light="model")


def test_robust_hst_preset_trains_on_arcs_after_an_imperfect_subtraction():
    sim = presets.robust("hst", seed=4, source="sersic")
    assert sim.lens_light == "residual" and isinstance(sim.instrument.effects[0], MoffatPSF)
    ds = sim.sample(3)
    assert ds.images.shape == (3, 1, 192, 192) and "residual_profile" in ds.params.colnames
    assert np.array_equal(Simulator.from_config(sim.config).sample(3).images, ds.images)
