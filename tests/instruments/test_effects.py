"""Statistical tests of each observational effect, with fixed seeds."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from lenskit.core.priors import LogUniform, Normal, Uniform
from lenskit.instruments.effects import (
    CCDNoise,
    CircularMasks,
    CosmicRays,
    GaussianNoise,
    GaussianPSF,
    ImagePSF,
    MoffatPSF,
    Normalize,
    Observation,
    PoissonNoise,
    noise_correlation,
    poisson_counts,
)


def obs_of(img, scale=0.04, **truth):
    t = torch.as_tensor(np.asarray(img, dtype=np.float64))
    return Observation(images=t.clone(), pixel_scale=scale, bands=("F814W",) * t.shape[1],
                       truth={k: torch.as_tensor(v, dtype=torch.float64) for k, v in truth.items()})


def point_sources(n=4, size=65):
    img = np.zeros((n, 1, size, size))
    img[:, :, size // 2, size // 2] = 1.0
    return img


def test_gaussian_psf_width_and_flux():
    o = GaussianPSF(sigma=0.08)(obs_of(point_sources()), np.random.default_rng(0))
    im = o.images[0, 0].numpy()
    assert im.sum() == pytest.approx(1.0, abs=1e-6)
    c = np.arange(65) - 32
    var_x = (im.sum(0) * c**2).sum()
    # pixel-integrated Gaussian: variance = sigma^2 + 1/12 pixel^2
    assert np.sqrt(var_x) * 0.04 == pytest.approx(np.sqrt(0.08**2 + 0.04**2 / 12), rel=1e-3)
    np.testing.assert_allclose(o.meta["psf_fwhm"], 0.08 * 2.3548, rtol=1e-3)


def test_gaussian_psf_random_width_within_range():
    o = GaussianPSF(sigma=(0.0, 0.1))(obs_of(point_sources(200)), np.random.default_rng(1))
    f = o.meta["psf_fwhm"] / 2.3548
    assert f.min() >= 0 and f.max() <= 0.1 and abs(f.mean() - 0.05) < 0.006
    assert torch.allclose(o.images.sum((1, 2, 3)), torch.ones(200, dtype=torch.float64))


def test_gaussian_psf_records_the_mean_fwhm_over_bands():
    fwhm = {"g": 0.8, "r": 0.7, "i": 0.6}
    o = Observation(images=torch.zeros(3, 3, 21, 21), pixel_scale=0.2, bands=("g", "r", "i"))
    o = GaussianPSF(fwhm=fwhm)(o, np.random.default_rng(0))
    np.testing.assert_allclose(o.meta["psf_fwhm"], 0.7)


def test_psf_convolves_truth_too():
    img = point_sources(2)
    o = GaussianPSF(fwhm=0.2)(obs_of(img, arcs=img * 0.5), np.random.default_rng(0))
    torch.testing.assert_close(o.truth["arcs"], o.images * 0.5)


@pytest.mark.parametrize("effect", [GaussianPSF(fwhm=0.2), GaussianPSF(sigma=(0.04, 0.12)),
                                    MoffatPSF(fwhm=0.2, beta=2.5), ImagePSF(np.outer([1, 3, 5, 3, 1], [1, 2, 1]))],
                         ids=["gaussian_shared", "gaussian_each", "moffat", "image"])
def test_linear_effects_on_a_sum_of_components(effect):
    rng = np.random.default_rng(3)
    arcs, light = rng.random((2, 40, 2, 33, 33))
    plain = effect(obs_of(arcs + light, arcs=arcs, lens_light=light), np.random.default_rng(0))
    o = obs_of(arcs + light, arcs=arcs, lens_light=light)
    o = Observation(images=o.images, pixel_scale=o.pixel_scale, bands=("g", "r"), truth=o.truth,
                    sum_of=("arcs", "lens_light"))
    plain.bands = ("g", "r")
    summed = effect(o, np.random.default_rng(0))
    # the components as before, the images their sum (equal to rounding)
    for k in ("arcs", "lens_light"):
        assert torch.equal(summed.truth[k], plain.truth[k])
    torch.testing.assert_close(summed.images, plain.images, rtol=1e-12, atol=1e-12)
    assert torch.equal(summed.images, summed.truth["arcs"] + summed.truth["lens_light"])
    assert summed.images_are_sum()
    # changing the images in place ends the promise: the next linear effect transforms them
    summed.images.add_(1.0)
    assert not summed.images_are_sum()
    again = GaussianPSF(fwhm=0.3)(summed, np.random.default_rng(0))
    assert not torch.allclose(again.images, again.truth["arcs"] + again.truth["lens_light"])
    with pytest.raises(ValueError, match="sum_of"):
        Observation(images=o.images, pixel_scale=0.04, truth={"arcs": o.images}, sum_of=("lens_light",))


def test_simulated_images_are_the_sum_of_their_components():
    import lenskit
    from lenskit.instruments.camera import Camera

    sim = lenskit.Simulator(source="sersic", instrument=lenskit.get("instrument", "lsst")(), seed=4,
                            selection=None)
    ds = sim.sample(24, keep_truth=True)
    orig = Camera.observe

    def without_sum(self, ideal, rng, *, sum_of=(), **truth):
        return orig(self, ideal, rng, **truth)

    Camera.observe = without_sum
    try:
        ref = lenskit.Simulator(source="sersic", instrument=lenskit.get("instrument", "lsst")(), seed=4,
                                selection=None).sample(24, keep_truth=True)
    finally:
        Camera.observe = orig
    assert np.array_equal(ds.truth["arcs"], ref.truth["arcs"])
    assert np.array_equal(ds.truth["lens_light"], ref.truth["lens_light"])
    np.testing.assert_allclose(ds.images, ref.images, rtol=0, atol=1e-3 * np.abs(ref.images).max())


def test_image_psf_matches_gaussian():
    x = np.arange(-15, 16)
    k = np.exp(-0.5 * (x[:, None] ** 2 + x[None, :] ** 2) / 2.0**2)
    a = ImagePSF(k)(obs_of(point_sources()), np.random.default_rng(0)).images[0, 0].numpy()
    np.testing.assert_allclose(a[32 - 15:32 + 16, 32 - 15:32 + 16], k / k.sum(), atol=1e-12)
    with pytest.raises(ValueError, match="2-D"):
        ImagePSF(np.ones(5))
    with pytest.raises(ValueError, match="positive sum"):
        ImagePSF(np.zeros((3, 3)))


def test_poisson_variance_tracks_mean():
    levels = np.array([0.1, 0.3, 1.0])
    img = np.zeros((40, 1, 60, 60))
    for i, lv in enumerate(levels):
        img[:, :, i * 20:(i + 1) * 20] = lv
    o = PoissonNoise(counts_factor=200.0)(obs_of(img), np.random.default_rng(2))
    out = o.images.numpy()
    for i, lv in enumerate(levels):
        block = out[:, :, i * 20:(i + 1) * 20]
        assert block.mean() == pytest.approx(lv, rel=0.01)
        assert block.var() == pytest.approx(lv / 200.0, rel=0.05)
    np.testing.assert_allclose(o.variance.numpy(), img / 200.0)


def _cornish_fisher_pmf(m):
    """
    The distribution `poisson_counts` draws from at mean ``m`` (>= 50): count k where the polynomial of a
    standard normal z lies in [k - 1/2, k + 1/2); the polynomial increases over the normal's mass, so each
    count's probability is a difference of the normal CDF between the roots (Newton's method).
    """
    from scipy import special

    s = np.sqrt(m)
    k = np.arange(max(int(m - 10 * s), 0), int(m + 10 * s) + 2)

    s1 = np.sqrt(m - 1 / 12)

    def poly(z):
        return m + s1 * z + (z**2 - 1) / 6 + z * (1 - z**2) / (72 * s) + 0.5

    def slope(z):
        return s1 + z / 3 + (1 - 3 * z**2) / (72 * s)

    z = (k - m) / s
    for _ in range(30):
        z = z - (poly(z) - k) / slope(z)
    assert np.all(slope(z) > 0) and np.allclose(poly(z), k, atol=1e-9)
    cdf = special.ndtr(z)  # P(count < k)
    return k[:-1], np.diff(cdf)


@pytest.mark.parametrize("m", [50.0, 120.0, 1000.0, 1e5])
def test_poisson_counts_approximation_is_close_in_total_variation(m):
    from scipy import stats

    k, p = _cornish_fisher_pmf(m)
    q = stats.poisson.pmf(k, m)
    tv = 0.5 * (np.abs(p - q).sum() + (1 - q.sum()))
    assert tv < 2e-2 / m**1.5  # 5e-5 at the threshold, falling as m**-1.5
    mean = (k * p).sum()
    assert mean == pytest.approx(m, rel=1e-9)
    assert ((k - mean) ** 2 * p).sum() == pytest.approx(m, rel=1e-5)
    # the plain normal approximation (lenstronomy's) is ~400x further at 50 counts
    kn = np.arange(int(m - 12 * np.sqrt(m)), int(m + 12 * np.sqrt(m)))
    pn = stats.norm.cdf(kn + 0.5, m, np.sqrt(m)) - stats.norm.cdf(kn - 0.5, m, np.sqrt(m))
    assert 0.5 * np.abs(pn - stats.poisson.pmf(kn, m)).sum() > 100 * tv


@pytest.mark.parametrize("m", [0.02, 0.7, 6.0, 49.9, 50.0, 300.0, 4e4])
def test_poisson_counts_match_poisson_distribution(m):
    """Chi-square against the Poisson pmf for exact (< 50) and approximate draws, fixed seeds."""
    from scipy import stats

    g = torch.Generator().manual_seed(int(m * 100) + 7)
    x = poisson_counts(torch.full((200_000,), m, dtype=torch.float32), g).numpy()
    assert np.all(x == np.round(x)) and x.min() >= 0
    lo, hi = stats.poisson.ppf([1e-4, 1 - 1e-4], m)
    edges = np.unique(np.r_[-0.5, np.arange(lo, hi + 1) + 0.5, np.inf])
    if len(edges) > 40:  # wide distributions: about 30 equal-probability bins
        edges = np.unique(np.r_[-0.5, stats.poisson.ppf(np.linspace(0.02, 0.98, 30), m) + 0.5, np.inf])
    obs = np.histogram(x, edges)[0]
    cdf = stats.poisson.cdf(np.floor(edges[1:]), m) - stats.poisson.cdf(np.floor(edges[:-1]), m)
    cdf[0] = stats.poisson.cdf(np.floor(edges[1]), m)
    expected = cdf * len(x)
    keep = expected > 5
    chi2 = ((obs[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    dof = max(int(keep.sum()) - 1, 1)
    assert stats.chi2.sf(chi2, dof) > 1e-3
    assert x.mean() == pytest.approx(m, rel=4 / np.sqrt(m * len(x)) + 1e-4, abs=1e-3)
    assert x.var() == pytest.approx(m, rel=0.02)


def test_poisson_counts_exact_and_mixed_means():
    g = torch.Generator().manual_seed(3)
    mean = torch.tensor([[0.0, 3.0], [80.0, 60.0]]).repeat(20_000, 1, 1)  # half the means >= 50: split
    x = poisson_counts(mean, g)
    assert x.shape == mean.shape and x.dtype == mean.dtype
    assert torch.all(x[:, 0, 0] == 0)
    assert x[:, 0, 1].mean().item() == pytest.approx(3.0, abs=0.05)
    for (i, j), m in (((1, 0), 80.0), ((1, 1), 60.0)):
        assert x[:, i, j].mean().item() == pytest.approx(m, abs=0.25)
        assert x[:, i, j].var().item() == pytest.approx(m, rel=0.05)
    assert torch.all(poisson_counts(torch.full((4,), -1.0), g) == 0)  # negative means count as 0
    # exact=True, and a call where under a quarter of the means reach 50, are torch.poisson draw for draw
    few = torch.tensor([0.5, 2.0, 7.0, 80.0, 0.1, 3.0, 1.0, 9.0]).repeat(100)
    for m, kw in ((mean, {"exact": True}), (few, {})):
        a = poisson_counts(m, torch.Generator().manual_seed(5), **kw)
        assert torch.equal(a, torch.poisson(m, generator=torch.Generator().manual_seed(5)))


def _poisson_gaussian_cameras(counts, rms, correlation=None):
    """A Poisson + Gaussian chain on a small HST camera: drawn together (default) and one after the other."""
    from lenskit.instruments.hst import HSTWFC3

    def cam(exact):
        return HSTWFC3(shape=(24, 24), effects=[PoissonNoise(counts_factor=counts, exact=exact),
                                                GaussianNoise(rms=rms, correlation=correlation)])
    return cam(False), cam(True)


def _blob(n):
    yy, xx = np.mgrid[:24, :24]
    img = np.exp(-((xx - 11.3) ** 2 + (yy - 12.1) ** 2) / (2 * 3.0**2)) + 0.002  # means 0.2 to 100 counts
    return torch.as_tensor(np.broadcast_to(img, (n, 1, 24, 24)).copy(), dtype=torch.float32)


@pytest.mark.parametrize("m", [0.05, 1.0, 2.0, 10.0, 60.0])
def test_poisson_plus_gaussian_in_one_draw_is_close_in_total_variation(m):
    """The continuous density of `_cornish_fisher_sum` against Poisson(m) + N(0, 3**2): TV below 5e-5."""
    from scipy import stats

    from lenskit.instruments.effects import POISSON_GAUSSIAN_MIN_RMS, _cornish_fisher_sum

    s = POISSON_GAUSSIAN_MIN_RMS
    v = m + s * s
    sg, g = np.sqrt(v), m / v
    z = np.linspace(-9, 9, 60001)
    t = (g * (5 / 36 - z * z * 2 / 36) + (z * z - 3) / 24) * g / sg
    x = m + sg * z + g * (z * z - 1) / 6 + z * t
    dx = np.gradient(x, z)
    assert np.all(dx > 0)
    k = np.arange(int(m + 12 * np.sqrt(m) + 20))
    exact = (stats.poisson.pmf(k, m)[:, None] * stats.norm.pdf(x[None, :], k[:, None], s)).sum(0)
    tv = 0.5 * np.trapezoid(np.abs(exact * dx - stats.norm.pdf(z)), z)
    assert tv < 5e-5
    # the implementation evaluates that polynomial at its normal draw
    zz = torch.randn(50_000, generator=torch.Generator().manual_seed(4), dtype=torch.float64).numpy()
    tt = (g * (5 / 36 - zz * zz * 2 / 36) + (zz * zz - 3) / 24) * g / sg
    drawn = _cornish_fisher_sum(torch.full((50_000,), m, dtype=torch.float64), s * s,
                                torch.Generator().manual_seed(4)).numpy()
    np.testing.assert_allclose(drawn, m + sg * zz + g * (zz * zz - 1) / 6 + zz * tt, rtol=1e-10, atol=1e-9)


def test_noisy_peak_candidates_bound():
    """Pixels below the threshold reach the brightest pixel's draw with negligible probability (scipy)."""
    from scipy import stats

    from lenskit.instruments.effects import _peak_candidates

    top = torch.tensor([0.0, 10.0, 40.0, 100.0, 300.0, 1000.0, 1e5], dtype=torch.float64)
    thr = _peak_candidates(top).numpy()
    assert np.all(thr[:3] == 0) and np.all(np.diff(thr[2:]) > 0) and np.all(thr[1:] < top.numpy()[1:])
    for m, t in zip(top.numpy()[2:], thr[2:]):
        a = m - 6 * np.sqrt(m)
        assert stats.poisson.cdf(np.ceil(a) - 1, m) < 1.6e-8  # the brightest pixel draws at least a ...
        assert 1e6 * stats.poisson.sf(np.ceil(a) - 1, t) < 1.3e-8  # ... which a million fainter ones miss


def test_poisson_then_gaussian_noise_drawn_together_has_the_same_distribution(monkeypatch):
    """Camera's one-step Poisson + Gaussian noise against the two effects one after the other (seeded)."""
    from scipy import stats

    import lenskit.instruments.effects as effects

    drawn = []
    one_draw = effects._cornish_fisher_sum
    monkeypatch.setattr(effects, "_cornish_fisher_sum",
                        lambda m, *a: drawn.append(m.numel()) or one_draw(m, *a))
    n = 6000
    together, apart = _poisson_gaussian_cameras(200.0, (0.02, 0.08))
    ra, rb = np.random.default_rng(11), np.random.default_rng(11)
    a, b = together.observe(_blob(n), ra), apart.observe(_blob(n), rb)
    assert drawn == [n * 24 * 24]  # every image drawn together (rms 4-16 counts), the separate path never
    # the same NumPy draws in the same order: identical per-image choices, generators left in the same state
    for k in ("counts_factor", "noise_rms", "noise_coloured"):
        np.testing.assert_array_equal(a.meta[k], b.meta[k])
    assert ra.random() == rb.random()
    x, y = a.images.numpy()[:, 0], b.images.numpy()[:, 0]
    # per pixel: mean and variance agree with the separate path (and with the recorded variance)
    va, vb = a.variance.numpy()[:, 0], b.variance.numpy()[:, 0]
    se = np.sqrt((x.var(0) + y.var(0)) / n)
    assert np.all(np.abs(x.mean(0) - y.mean(0)) < 5 * se)
    assert np.all(np.abs(x.var(0) / y.var(0) - 1) < 5 * np.sqrt(4 / n))
    assert np.all(np.abs(va.mean(0) / vb.mean(0) - 1) < 0.01)
    assert np.all(np.abs(x.var(0) / va.mean(0) - 1) < 5 * np.sqrt(2 / n))
    # skewness where the Poisson part is most skewed relative to the noise (faint pixels) and two-sample KS
    faint = (slice(None), 0, 0)
    assert stats.ks_2samp(x[faint], y[faint]).pvalue > 1e-3
    bright = (slice(None), 12, 11)
    assert stats.ks_2samp(x[bright], y[bright]).pvalue > 1e-3
    # the rms is a fraction of the noisy peak: its square is the variance beyond the Poisson part, and the
    # peak a whole number of counts, at least the brightest pixel's mean less 6 sigma, above it on average
    img, f = _blob(1).numpy()[0, 0].astype(np.float64), 200.0
    peak = img.max()
    sigma = np.sqrt(va[:, 0, 0] - img[0, 0] * peak / f)
    top = sigma / a.meta["noise_rms"] * f / peak
    np.testing.assert_allclose(top, np.round(top), atol=0.05)
    assert np.all(top >= f - 6 * np.sqrt(f)) and f < top.mean() < f + 3 * np.sqrt(f)


def test_poisson_gaussian_faint_or_coloured_noise_goes_the_separate_way():
    peak = float(_blob(1).max())
    # an rms under 3 counts: exact Poisson counts, then the noise; rms 0 leaves the counts themselves
    together, _ = _poisson_gaussian_cameras(150.0, 0.0)
    counts = together.observe(_blob(50), np.random.default_rng(2)).images.numpy() / peak * 150.0
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-3)
    together, _ = _poisson_gaussian_cameras(150.0, 0.05)
    counts = together.observe(_blob(50), np.random.default_rng(2)).images.numpy() / peak * 150.0
    assert np.abs(counts - np.round(counts)).mean() > 0.2  # drawn together: no longer whole counts
    # coloured images keep the separate effects: their noise is correlated, the white images' is not
    together, apart = _poisson_gaussian_cameras(400.0, 0.05, correlation="cosmos_acs_f814w")
    flat = torch.full((400, 1, 24, 24), 0.3)
    flat[:, :, 3, 3] = 1.0  # 120 counts everywhere, 400 in one pixel
    for cam in (together, apart):
        o = cam.observe(flat, np.random.default_rng(5))
        col = o.meta["noise_coloured"]
        assert 0.3 < col.mean() < 0.7
        r = o.images.numpy()[:, 0, 8:] - 0.3
        rho = (r[:, :, 1:] * r[:, :, :-1]).mean((1, 2)) / (r * r).mean((1, 2))
        assert rho[col].mean() > 0.25 and abs(rho[~col].mean()) < 0.02
        assert r[~col].var() == pytest.approx(o.variance.numpy()[~col, 0, 8:].mean(), rel=0.05)


def test_coloured_noise_split_into_white_and_rest_sums_to_the_spectrum():
    g = GaussianNoise(correlation="cosmos_acs_f814w")
    for shape in ((24, 24), (45, 46), (192, 192)):
        c, rest = g.white_split(shape)
        amp2 = g.amplitude(shape)[:, : shape[1] // 2 + 1] ** 2
        assert 0.005 < c < 0.05 and rest.shape == amp2.shape and rest.min() == 0
        np.testing.assert_allclose(c + rest**2, amp2, rtol=1e-12, atol=1e-12)


def test_poisson_gaussian_coloured_noise_drawn_together_has_the_same_distribution(monkeypatch):
    """Coloured images whose white share of the noise is 3 counts rms or more fuse; same moments and correlations."""
    from scipy import stats

    import lenskit.instruments.effects as effects

    drawn = []
    one_draw = effects._cornish_fisher_sum
    monkeypatch.setattr(effects, "_cornish_fisher_sum", lambda m, *a: drawn.append(m.shape[0]) or one_draw(m, *a))
    n = 3000
    together, apart = _poisson_gaussian_cameras(2000.0, 0.05, correlation="cosmos_acs_f814w")
    for cam in (together, apart):  # every image coloured
        cam.effects[1].coloured_fraction = 1.0
    ra, rb = np.random.default_rng(21), np.random.default_rng(21)
    img = _blob(n) * 0.3 + 0.05  # 100 to 600 counts; rms 0.05 of a noisy peak near 2000 x 0.35: 35 counts
    a, b = together.observe(img.clone(), ra), apart.observe(img.clone(), rb)
    assert sum(drawn) == n and a.meta["noise_coloured"].all()  # the white share 0.13 x 35 counts: fused
    assert ra.random() == rb.random()
    x, y = a.images.numpy()[:, 0].astype(float), b.images.numpy()[:, 0].astype(float)
    se = np.sqrt((x.var(0) + y.var(0)) / n)
    assert np.all(np.abs(x.mean(0) - y.mean(0)) < 5 * se)
    assert np.all(np.abs(x.var(0) / y.var(0) - 1) < 5 * np.sqrt(4 / n))
    np.testing.assert_allclose(a.variance.numpy().mean(0), b.variance.numpy().mean(0), rtol=0.01)
    # the pixel-to-pixel correlations of the noise (Poisson parts are independent): lags 1 and 2 agree
    ra_, rb_ = x - x.mean(0), y - y.mean(0)
    for dy, dx in ((0, 1), (1, 0), (1, 1), (0, 2)):
        ca = (ra_[:, dy:, dx:] * ra_[:, : 24 - dy, : 24 - dx]).mean()
        cb = (rb_[:, dy:, dx:] * rb_[:, : 24 - dy, : 24 - dx]).mean()
        assert ca == pytest.approx(cb, rel=0.05), (dy, dx)
    assert (ra_[:, :, 1:] * ra_[:, :, :-1]).mean() / ra_.var() > 0.3  # correlated, not white
    assert stats.ks_2samp(x[:, 0, 0], y[:, 0, 0]).pvalue > 1e-3
    assert stats.ks_2samp(x[:, 12, 11], y[:, 12, 11]).pvalue > 1e-3


def test_effects_that_fuse_are_applied_as_one_step():
    from lenskit.instruments.effects import Effect
    from lenskit.instruments.hst import HSTWFC3

    calls = []

    class Add(Effect):
        name = "add"

        def __init__(self, v):
            self.v = v

        def __call__(self, obs, rng):
            calls.append(self.v)
            obs.images = obs.images + self.v
            return obs

        def then(self, after):
            if self.v == 1 and isinstance(after, Add):
                def both(obs, rng):
                    calls.append((self.v, after.v))
                    obs.images = obs.images + self.v + after.v
                    return obs
                return both
            return None

    cam = HSTWFC3(shape=(8, 8), effects=[Add(1), Add(2), Add(1), Add(3), Add(2)])
    out = cam.observe(torch.zeros(2, 1, 8, 8), np.random.default_rng(0))
    assert calls == [(1, 2), (1, 3), 2] and torch.all(out.images == 9)
    # PoissonNoise fuses with a GaussianNoise only: not exact, and neither one a subclass
    g = GaussianNoise()
    assert PoissonNoise().then(g) is not None
    assert PoissonNoise(exact=True).then(g) is None and PoissonNoise().then(CosmicRays()) is None
    sub = type("OwnGaussianNoise", (GaussianNoise,), {})  # a subclass may draw otherwise: not fused
    assert PoissonNoise().then(sub()) is None
    assert GaussianNoise().then(PoissonNoise()) is None


def test_gaussian_noise_rms_within_range():
    img = np.zeros((300, 1, 32, 32))
    img[:, :, 16, 16] = 2.0
    o = GaussianNoise(rms=(0.01, 0.1))(obs_of(img), np.random.default_rng(3))
    resid = (o.images.numpy() - img)
    mask = np.ones((32, 32), bool)
    mask[16, 16] = False
    rms = resid[:, 0][:, mask].std(axis=1) / 2.0
    frac = o.meta["noise_rms"]
    assert frac.min() >= 0.01 and frac.max() <= 0.1
    np.testing.assert_allclose(rms, frac, rtol=0.15)
    assert abs(frac.mean() - 0.055) < 0.005


def test_coloured_noise_is_correlated_with_unit_variance():
    x = np.arange(-10, 11)
    corr = np.exp(-0.5 * (x[:, None] ** 2 + x[None, :] ** 2) / 1.5**2)
    img = np.ones((50, 1, 64, 64))
    eff = GaussianNoise(rms=0.05, correlation=corr, coloured_fraction=1.0)
    o = eff(obs_of(img), np.random.default_rng(4))
    n = o.images.numpy()[:, 0] - 1
    assert n.std() == pytest.approx(0.05, rel=0.05)
    rho = np.mean(n[:, :, 1:] * n[:, :, :-1]) / n.var()
    assert rho > 0.5  # neighbours correlated
    white = GaussianNoise(rms=0.05)(obs_of(img), np.random.default_rng(4)).images.numpy()[:, 0] - 1
    assert abs(np.mean(white[:, :, 1:] * white[:, :, :-1]) / white.var()) < 0.02


def test_shipped_cosmos_noise_correlation():
    c = noise_correlation("cosmos_acs_f814w")
    assert c.shape == (81, 81) and c[40, 40] == 1.0
    np.testing.assert_allclose(c, c[::-1, ::-1], atol=1e-6)  # a correlation function is point-symmetric
    # drizzled ACS pixels: strongly correlated with their neighbours, little beyond two pixels
    assert 0.4 < c[40, 41] < 0.55 and 0.4 < c[41, 40] < 0.55 and 0.15 < c[41, 41] < 0.3
    assert np.abs(c[:, :36]).max() < 0.02
    with pytest.raises(ValueError, match="cosmos_acs_f814w"):
        noise_correlation("cosmos")
    with pytest.raises(ValueError, match="one of"):
        GaussianNoise(correlation="no_such_field")
    with pytest.raises(ValueError, match="odd sides"):
        GaussianNoise(correlation=np.ones((4, 4)))


@pytest.mark.parametrize("shape,dtype", [((96, 96), torch.float64), ((45, 46), torch.float32)])
def test_coloured_noise_has_the_measured_correlation(shape, dtype):
    """Coloured noise reproduces the COSMOS correlation function at small lags, at unit variance."""
    c = noise_correlation()
    img = torch.ones((300, 1) + shape, dtype=dtype)
    obs = Observation(images=img.clone(), pixel_scale=0.04, bands=("F814W",))
    o = GaussianNoise(rms=0.05, correlation="cosmos_acs_f814w", coloured_fraction=1.0)(obs, np.random.default_rng(8))
    assert o.images.dtype == dtype
    n = o.images.numpy()[:, 0].astype(float) - 1
    assert n.std() == pytest.approx(0.05, rel=0.02)
    var = n.var()
    for dy, dx in [(0, 1), (1, 0), (1, 1), (1, -1), (0, 2), (2, 2)]:
        a = n[:, max(dy, 0):, max(dx, 0):][:, : n.shape[1] - abs(dy), : n.shape[2] - abs(dx)]
        b = n[:, : n.shape[1] - dy, max(-dx, 0): n.shape[2] - max(dx, 0)]
        rho = np.mean(a * b) / var
        assert rho == pytest.approx(c[40 + dy, 40 + dx], abs=0.01), (dy, dx)


def test_hst_noise_is_half_coloured_by_default():
    """Hezaveh et al.: white or coloured by a measured blank-field spectrum; the instrument records it by name."""
    import lenskit
    from lenskit.instruments.hst import HSTWFC3

    noise = [e for e in HSTWFC3().effects if isinstance(e, GaussianNoise)][0]
    assert noise.correlation_name == "cosmos_acs_f814w" and noise.coloured_fraction == 0.5
    white = [e for e in HSTWFC3(noise_correlation=None).effects if isinstance(e, GaussianNoise)][0]
    assert white.correlation is None
    o = noise(obs_of(np.ones((400, 1, 32, 32))), np.random.default_rng(2))
    assert o.meta["noise_coloured"].mean() == pytest.approx(0.5, abs=0.075)  # binomial sd 0.025
    sim = lenskit.Simulator(instrument=HSTWFC3(shape=(48, 48)), seed=3)
    back = lenskit.Simulator.from_config(sim.config)
    assert "array" not in str(sim.config["build"]["instrument"])  # the name, not 6,561 numbers
    np.testing.assert_array_equal(back.sample(4).images, sim.sample(4).images)


def test_cosmic_ray_lengths_and_connectivity():
    cr = CosmicRays(n_rays=(1, 1), length=(2, 30), hot_pixels=(0, 0))
    rng = np.random.default_rng(5)
    lengths = []
    for _ in range(300):
        ys, xs, vals, ln = cr.draw_map((96, 96), rng)
        lengths.append(ln[0])
        assert len(ys) == ln[0]
        m = np.zeros((96, 96), bool)
        m[ys, xs] = True
        assert ndimage.label(m, structure=np.ones((3, 3)))[1] == 1  # one connected track
    lengths = np.array(lengths)
    assert lengths.min() >= 2 and lengths.max() <= 30
    assert abs(lengths.mean() - 16) < 1.5  # uniform over 2..30


def test_cosmic_ray_banks_are_shared_by_configuration_and_keep_their_maps(monkeypatch):
    # map 3 of the default 192 x 192 bank as every earlier version drew it (training streams stay reproducible)
    ys, xs, vals, lengths = CosmicRays().bank_map((192, 192), 3)
    assert (len(ys), int(ys.sum()), int(xs.sum()), lengths.tolist()) == (153, 17064, 18095, [25, 2, 30, 16, 30, 2])
    assert float(vals.sum()) == pytest.approx(31.539807, abs=1e-6)
    # a second effect of the same configuration reuses the maps; another configuration draws its own
    drawn = []
    real = CosmicRays.draw_map
    monkeypatch.setattr(CosmicRays, "draw_map", lambda self, shape, rng: drawn.append(shape) or real(self, shape, rng))
    again = CosmicRays(bank_size=16).bank_map((192, 192), 3)
    assert drawn == [] and all(np.array_equal(a, b) for a, b in zip(again, (ys, xs, vals, lengths)))
    other = CosmicRays(bank_seed=987654).bank_map((192, 192), 3)  # a seed no other test uses
    assert drawn == [(192, 192)] and not np.array_equal(other[0], ys)


def test_hot_pixels_and_application():
    cr = CosmicRays(n_rays=(0, 0), hot_pixels=(100, 100), hot_amplitude=0.5, bank_size=4)
    img = np.zeros((3, 1, 64, 64))
    img[:, :, 0, 0] = 1.0
    o = cr(obs_of(img), np.random.default_rng(6))
    added = o.images.numpy() - img
    assert np.all((added > 0).sum((1, 2, 3)) <= 100) and np.all((added > 0).sum((1, 2, 3)) >= 90)
    np.testing.assert_allclose(added[added > 0] % 0.5, 0, atol=1e-12)


def test_normalize_peak_and_bias():
    img = np.random.default_rng(7).random((400, 1, 16, 16)) * 7
    o = Normalize()(obs_of(img), np.random.default_rng(8))
    out = o.images.numpy()
    bias = o.meta["bias"]
    peak = (out - bias[:, None, None, None]).reshape(400, -1).max(1)
    assert peak.std() == pytest.approx(0.05, rel=0.15) and peak.mean() == pytest.approx(1, abs=0.01)
    assert bias.std() == pytest.approx(0.05, rel=0.15)


@pytest.mark.parametrize("limit", [0.25, 0.02])
def test_mask_coverage_within_limit(limit):
    rng = np.random.default_rng(9)
    arcs = np.zeros((60, 1, 96, 96))
    yy, xx = np.mgrid[:96, :96]
    ring = np.exp(-0.5 * ((np.hypot(yy - 48, xx - 48) - 25) / 2.0) ** 2)
    arcs[:, 0] = ring
    eff = CircularMasks(radius=0.2, n_masks=(3, 5), max_flux_fraction=limit)
    o = eff(obs_of(arcs, arcs=arcs), rng)
    m = o.masks.numpy()[:, 0]
    covered = (m * ring).sum((1, 2)) / ring.sum()
    assert np.all(covered <= limit + 1e-9)
    np.testing.assert_allclose(covered, o.meta["masked_flux_fraction"])
    assert np.all(o.images.numpy()[o.masks.numpy()] == 0)
    if limit == 0.25:
        assert covered.mean() > 0.02  # masks do land on arcs
    # each mask is a disc of radius 0.2" = 5 px
    one = CircularMasks(radius=0.2, n_masks=(1, 1), max_flux_fraction=1.0)
    o1 = one(obs_of(arcs[:1], arcs=arcs[:1]), rng)
    assert abs(o1.masks.numpy().sum() - np.pi * 25) < 12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bands", [1, 2])
def test_masks_leave_the_truth_alone_and_count_positive_flux(dtype, bands):
    # arcs with negative pixels (noise-like): the flux limit counts the clipped positive flux summed over the bands,
    # and the truth the masks read is not clipped in place
    rng = np.random.default_rng(21)
    arcs = torch.as_tensor(rng.normal(0.2, 1.0, (30, bands, 24, 24)), dtype=dtype)
    before = arcs.clone()
    o = CircularMasks(radius=0.2, n_masks=(2, 4), max_flux_fraction=0.3)(
        Observation(images=arcs.clone(), pixel_scale=0.04, bands=tuple("gr"[:bands]), truth={"arcs": arcs}),
        np.random.default_rng(22))
    assert torch.equal(o.truth["arcs"], before)
    ref = before.sum(1).clamp(min=0).double().numpy()
    m = o.masks.numpy()[:, 0]
    # to the images' precision: the total is summed in their dtype (pairwise, float32 to about 1e-7)
    rtol = 1e-12 if dtype == torch.float64 else 1e-6
    np.testing.assert_allclose(o.meta["masked_flux_fraction"], (m * ref).sum((1, 2)) / ref.sum((1, 2)), rtol=rtol)
    assert np.all(o.meta["masked_flux_fraction"] <= 0.3 + 1e-12) and m.any()
    # every band masked alike: zeros under the masks, the images untouched elsewhere
    mm = o.masks.numpy()
    assert all(np.array_equal(mm[:, b], m) for b in range(bands))
    assert np.all(o.images.numpy()[mm] == 0) and np.array_equal(o.images.numpy()[~mm], before.numpy()[~mm])


def test_masks_on_the_stamp_corner_are_clipped_discs():
    # all the arc flux in the corner pixel: the masks drawn on the arc are centred there, a quarter disc each
    arcs = np.zeros((40, 1, 32, 32))
    arcs[:, 0, 0, 0] = 1.0
    eff = CircularMasks(radius=0.2, n_masks=(1, 1), max_flux_fraction=1.0)
    o = eff(obs_of(arcs, arcs=arcs), np.random.default_rng(3))
    m = o.masks.numpy()[:, 0]
    at_corner = m[:, 0, 0]
    assert 5 < at_corner.sum() < 35  # about half of the masks go on the arc
    yy, xx = np.mgrid[:32, :32]
    quarter = (yy**2 + xx**2) <= 25  # r = 5 pixels about pixel (0, 0)
    for i in np.nonzero(at_corner)[0]:
        np.testing.assert_array_equal(m[i], quarter)
    np.testing.assert_allclose(o.meta["masked_flux_fraction"], at_corner.astype(float))


def test_ccd_noise_statistics():
    eff = CCDNoise(exposure_time=30.0, n_exposures=2, sky_brightness={"r": 21.2}, zero_points={"r": 28.5},
                   read_noise=5.0, dark_current=2.0, gain=1.0)
    img = np.zeros((20, 1, 50, 50))
    o = Observation(images=torch.as_tensor(img), pixel_scale=0.2, bands=("r",))
    out = eff(o, np.random.default_rng(10)).images.numpy()
    sky = eff.sky_rate("r", 0.2)
    expected_var = ((sky + 2.0) * 30 + 2 * 25 + 1 / 12) / 30**2
    assert out.mean() == pytest.approx(0, abs=3 * np.sqrt(expected_var / out.size) + 1e-3)
    assert out.var() == pytest.approx(expected_var, rel=0.03)
    np.testing.assert_allclose(o.variance.numpy(), expected_var)
    with pytest.raises(ValueError, match="no sky brightness"):
        eff(Observation(images=torch.zeros(1, 1, 8, 8), pixel_scale=0.2, bands=("g",)), np.random.default_rng(0))


def _cornish_fisher_sum_pmf(m, s2):
    """The distribution of `_cornish_fisher_sum` rounded to integers (gain 1), as `_cornish_fisher_pmf`."""
    from scipy import special

    v = m + s2
    sg = np.sqrt(v)
    a3, a4, a5 = m / v / 6, m / sg**3 / 24, m**2 / sg**5 / 36
    k = np.arange(int(m - 8 * sg), int(m + 8 * sg) + 2)

    def poly(z):
        return m + sg * z + a3 * (z * z - 1) + z * (a4 * (z * z - 3) - a5 * (2 * z * z - 5))

    def slope(z):
        return sg + 2 * a3 * z + a4 * (3 * z * z - 3) - a5 * (6 * z * z - 5)

    edges = k - 0.5
    z = (edges - m) / sg
    for _ in range(60):
        z = z - (poly(z) - edges) / slope(z)
    assert np.all(slope(z) > 0) and np.allclose(poly(z), edges, atol=1e-8)
    return k[:-1], np.diff(special.ndtr(z))


@pytest.mark.parametrize("m,s", [(50.0, 1.0), (50.0, 7.0), (300.0, 3.0), (1000.0, 1.0), (1e4, 10.0)])
def test_ccd_counts_and_read_noise_in_one_draw(m, s):
    from scipy import special, stats

    from lenskit.instruments.effects import _cornish_fisher_sum

    # the exact distribution of round(Poisson(m) + N(0, s**2))
    k, p = _cornish_fisher_sum_pmf(m, s * s)
    j = np.arange(0, int(m + 15 * np.sqrt(m)) + 1)
    pj = stats.poisson.pmf(j, m)
    q = np.array([(pj * (special.ndtr((kk + 0.5 - j) / s) - special.ndtr((kk - 0.5 - j) / s))).sum() for kk in k])
    tv = 0.5 * (np.abs(p - q).sum() + (1 - q.sum()))
    assert tv < 2e-5
    # the implementation computes that polynomial of its normal draw ...
    mean = torch.full((400_000,), m, dtype=torch.float64)
    z = torch.randn(mean.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64).numpy()
    raw = _cornish_fisher_sum(mean, s * s, torch.Generator().manual_seed(7)).numpy()
    v = m + s * s
    sg = np.sqrt(v)
    poly = m + sg * z + m / v / 6 * (z * z - 1) + z * (m / sg**3 / 24 * (z * z - 3) - m**2 / sg**5 / 36 * (2 * z * z - 5))
    np.testing.assert_allclose(raw, poly, rtol=1e-12, atol=1e-9)
    # ... and so draws that distribution (chi-square on 400,000 draws, fixed seed)
    x = np.round(raw)
    assert x.mean() == pytest.approx(m, abs=4 * np.sqrt((m + s * s) / x.size))
    assert x.var() == pytest.approx(m + s * s + 1 / 12, rel=0.015)
    lo, hi = np.searchsorted(np.cumsum(p), [0.002, 0.998])
    obs = np.array([(x == kk).sum() for kk in k[lo:hi]])
    exp = p[lo:hi] * x.size
    chi2 = ((obs - exp) ** 2 / exp).sum()
    assert chi2 < stats.chi2.ppf(0.999, len(obs) - 1)


def test_ccd_noise_draws_sky_dominated_pixels_at_once():
    # every pixel above the threshold with read noise: one draw; otherwise the two-draw path; both alike
    eff = CCDNoise(exposure_time=30.0, n_exposures=2, sky_brightness={"r": 21.2}, zero_points={"r": 28.5},
                   read_noise=5.0, dark_current=2.0, gain=1.0)
    low = CCDNoise(exposure_time=1.0, n_exposures=2, sky_brightness={"r": 21.2}, zero_points={"r": 28.5},
                   read_noise=5.0, dark_current=2.0, gain=1.0)
    for e in (eff, low):
        t = e.exposure_time
        bg = e.sky_rate("r", 0.2) + 2.0
        img = torch.zeros(40, 1, 50, 50, dtype=torch.float64)
        img[:, :, :25] = 100.0 / t
        out = e(Observation(images=img.clone(), pixel_scale=0.2, bands=("r",)), np.random.default_rng(3))
        for level, block in ((0.0, out.images[:, :, 25:]), (100.0 / t, out.images[:, :, :25])):
            var = ((level + bg) * t + 2 * 25 + 1 / 12) / t**2
            assert float(block.mean()) == pytest.approx(level, abs=4 * np.sqrt(var / block.numel()))
            assert float(block.var()) == pytest.approx(var, rel=0.03)
    assert (eff.sky_rate("r", 0.2) + 2.0) * 30 >= 50 > (low.sky_rate("r", 0.2) + 2.0) * 1.0


def test_effect_argument_errors():
    with pytest.raises(ValueError, match="exactly one of sigma"):
        GaussianPSF()
    with pytest.raises(ValueError, match="fwhm must be > 0"):
        GaussianPSF(fwhm=-1)
    with pytest.raises(ValueError, match=r"fwhm must be > 0 arcsec; got Uniform\(-0\.1, 0\.8\)"):
        MoffatPSF(fwhm=(-0.1, 0.8))  # a range reaching zero: refused when made, not when first drawn
    with pytest.raises(ValueError, match=r"beta must be > 1 .*LogUniform\(0\.5, 3\.0\)"):
        MoffatPSF(beta=LogUniform(0.5, 3.0))
    MoffatPSF(fwhm=Normal(0.7, 0.05))  # untruncated: its draws are checked when drawn
    with pytest.raises(ValueError, match="radius must be > 0"):
        CircularMasks(radius=0)
    with pytest.raises(ValueError, match="length must be at least 1"):
        CosmicRays(length=(0, 3))
    with pytest.raises(ValueError, match="low <= high"):
        Uniform(2, 1)
    with pytest.raises(ValueError, match="images must be a torch.Tensor"):
        Observation(images=np.zeros((1, 1, 4, 4)), pixel_scale=0.1)


def _arcs_under_a_galaxy(n=60, size=48):
    """Arcs of peak 1 (a ring) under a lens galaxy 50 times brighter at its core (a steep, round profile)."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(xx, yy)
    arcs = np.exp(-0.5 * ((r - 12) / 1.5) ** 2)
    lens = 50 * np.exp(-r / 2.0)
    return np.broadcast_to(arcs, (n, 1, size, size)).copy(), np.broadcast_to(lens, (n, 1, size, size)).copy()


@pytest.mark.parametrize("exact", [False, True])
def test_noise_follows_the_arcs_peak_when_the_lens_light_is_in_the_image(exact):
    # Hezaveh et al.'s noise is relative to the peak of lens-subtracted images: with the galaxy's light in the
    # image, the same exposure (counts and rms scaled to the arcs' peak) plus the galaxy's own photons, not
    # noise scaled to the galaxy's core (50 times the arcs': the arcs would vanish)
    from lenskit.instruments.hst import HSTWFC3

    arcs, lens = _arcs_under_a_galaxy()
    cam = HSTWFC3(shape=(48, 48), effects=[PoissonNoise(counts_factor=400.0, exact=exact), GaussianNoise(rms=0.02)])
    o = cam.observe(torch.as_tensor(arcs + lens), np.random.default_rng(3), arcs=torch.as_tensor(arcs),
                    lens_light=torch.as_tensor(lens))
    p = arcs.max()  # Poisson of arcs + lens at 400 counts per arcs' peak, Gaussian rms 2% of it
    want = (arcs + lens) * p / 400.0 + (0.02 * p) ** 2
    np.testing.assert_allclose(o.variance.numpy(), want, rtol=1e-4)
    z = (o.images.numpy() - arcs - lens) / np.sqrt(want)
    assert abs(z.mean()) < 0.01 and z.std() == pytest.approx(1.0, abs=0.01)
    outer = np.hypot(*np.mgrid[:48, :48] - 23.5) > 18  # far from the galaxy: the arcs' own noise, 2% of their peak
    assert np.std(o.images.numpy()[:, :, outer] - (arcs + lens)[:, :, outer]) == pytest.approx(0.02, rel=0.05)


def test_normalize_and_cosmic_rays_follow_the_arcs_peak_under_the_lens_light():
    arcs, lens = _arcs_under_a_galaxy(n=200)
    o = obs_of(arcs + lens, arcs=arcs, lens_light=lens)
    o = Normalize(peak_rms=0.0, bias_rms=0.0)(o, np.random.default_rng(1))
    np.testing.assert_allclose((o.images - o.truth["lens_light"]).numpy().reshape(200, -1).max(1), 1.0, rtol=1e-5)
    assert float(o.truth["lens_light"].max()) == pytest.approx(lens.max() / arcs.max(), rel=1e-6)  # core above 1
    np.testing.assert_allclose(o.reference_peak().numpy(), 1.0, rtol=1e-5)  # kept, scaled with the images
    before = o.images.clone()
    o = CosmicRays(n_rays=(3, 6), hot_pixels=(0, 0), amplitude=(0.05, 0.5))(o, np.random.default_rng(2))
    hits = (o.images - before).numpy()
    assert 0.3 < hits.max() < 1.5  # amplitudes up to 0.5 of the arcs' peak (crossing rays add), not of the core's
