"""The elliptical power law against an independent code (the SIE reference maps, lenstronomy) and identities."""

import json

import numpy as np
import pytest
import torch

import lenskit


@pytest.fixture(scope="module")
def epl():
    return lenskit.get("mass_model", "epl")()


P = dict(theta_E=1.2, e1=0.25, e2=-0.15, x0=0.1, y0=-0.05)


def points(n=400, seed=0, lo=0.15):
    """Points within 3" of the lens, none closer than ``lo`` to its centre."""
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-3, 3, (2, 4 * n))
    keep = np.hypot(x - P["x0"], y - P["y0"]) > lo
    return x[keep][:n], y[keep][:n]


def test_slope_two_is_the_reference_sie(epl, sie_reference):
    """At slope 2 the series reproduces the SIE deflections and potentials of an independent code."""
    gx = np.load(sie_reference / "grid_x.npy")
    gy = np.load(sie_reference / "grid_y.npy")
    for case in json.loads((sie_reference / "manifest.json").read_text())["cases"]:
        p = dict(theta_E=case["theta_E"], e1=case["e1"], e2=case["e2"], x0=case["center_x"], y0=case["center_y"])
        alpha = np.load(sie_reference / f"sie_{case['name']}_alpha.npy")
        pot = np.load(sie_reference / f"sie_{case['name']}_potential.npy")
        ax, ay = epl.deflection(gx, gy, slope=2.0, **p)
        assert np.abs(ax - alpha[0]).max() < 1e-6, case["name"]
        assert np.abs(ay - alpha[1]).max() < 1e-6, case["name"]
        assert np.abs(epl.potential(gx, gy, slope=2.0, **p) - pot).max() < 1e-6, case["name"]


@pytest.mark.parametrize("slope", [1.6, 1.9, 2.0, 2.2, 2.5])
@pytest.mark.parametrize("e", [(0.0, 0.0), (0.25, -0.15), (-0.5, 0.4)])
def test_against_lenstronomy(epl, slope, e):
    lenstronomy_epl = pytest.importorskip("lenstronomy.LensModel.Profiles.epl")
    x, y = points(300, seed=1, lo=0.0)
    kw = dict(theta_E=1.3, gamma=slope, e1=e[0], e2=e[1], center_x=0.1, center_y=-0.2)
    ref = lenstronomy_epl.EPL()
    mine = dict(theta_E=1.3, slope=slope, e1=e[0], e2=e[1], x0=0.1, y0=-0.2)
    np.testing.assert_allclose(epl.deflection(x, y, **mine), ref.derivatives(x, y, **kw), atol=1e-12)
    np.testing.assert_allclose(epl.potential(x, y, **mine), ref.function(x, y, **kw), atol=1e-12)
    fxx, fxy, _, fyy = ref.hessian(x, y, **kw)
    np.testing.assert_allclose(epl.hessian(x, y, **mine), (fxx, fxy, fyy), atol=1e-10)


@pytest.mark.parametrize("slope", [1.5, 1.8, 2.0, 2.3, 2.7])
def test_divergence_is_two_kappa_and_no_curl(epl, slope):
    x, y = points(300, seed=2)
    p = dict(P, slope=slope)
    h = 1e-5
    axx = (epl.deflection(x + h, y, **p)[0] - epl.deflection(x - h, y, **p)[0]) / (2 * h)
    ayy = (epl.deflection(x, y + h, **p)[1] - epl.deflection(x, y - h, **p)[1]) / (2 * h)
    axy = (epl.deflection(x, y + h, **p)[0] - epl.deflection(x, y - h, **p)[0]) / (2 * h)
    ayx = (epl.deflection(x + h, y, **p)[1] - epl.deflection(x - h, y, **p)[1]) / (2 * h)
    np.testing.assert_allclose(axx + ayy, 2 * epl.convergence(x, y, **p), rtol=1e-6)
    np.testing.assert_allclose(axy, ayx, atol=1e-6)
    # the closed-form Hessian is the deflection's Jacobian, and the potential's gradient the deflection
    hxx, hxy, hyy = epl.hessian(x, y, **p)
    np.testing.assert_allclose(hxx, axx, atol=1e-6)
    np.testing.assert_allclose(hyy, ayy, atol=1e-6)
    np.testing.assert_allclose(hxy, 0.5 * (axy + ayx), atol=1e-6)
    gx = (epl.potential(x + h, y, **p) - epl.potential(x - h, y, **p)) / (2 * h)
    gy = (epl.potential(x, y + h, **p) - epl.potential(x, y - h, **p)) / (2 * h)
    np.testing.assert_allclose(np.stack([gx, gy]), np.stack(epl.deflection(x, y, **p)), atol=1e-7)


@pytest.mark.parametrize("slope", [1.4, 2.0, 2.6])
def test_round_power_law(epl, slope):
    """q = 1: alpha = theta_E**t r**(1 - t) towards the centre (t = slope - 1), kappa = (2 - t)/2 (theta_E/r)**t."""
    x, y = points(200, seed=3)
    t = slope - 1
    r = np.hypot(x - 0.1, y + 0.05)
    ax, ay = epl.deflection(x, y, theta_E=1.2, e1=0.0, e2=0.0, x0=0.1, y0=-0.05, slope=slope)
    mod = 1.2**t * r ** (1 - t)
    np.testing.assert_allclose(ax, mod * (x - 0.1) / r, rtol=1e-12)
    np.testing.assert_allclose(ay, mod * (y + 0.05) / r, rtol=1e-12)
    k = epl.convergence(x, y, theta_E=1.2, e1=0.0, e2=0.0, x0=0.1, y0=-0.05, slope=slope)
    np.testing.assert_allclose(k, (2 - t) / 2 * (1.2 / r) ** t, rtol=1e-12)


@pytest.mark.parametrize("slope", [1.7, 2.0, 2.2])
def test_mean_convergence_in_the_einstein_ellipse_is_one(epl, slope):
    """theta_E is the intermediate-axis Einstein radius: mean kappa 1 inside q x'**2 + y'**2 / q < theta_E**2."""
    h = 0.004
    g = np.arange(-2.6 + h / 2, 2.6, h)  # pixel centres, none on the (integrable) singularity
    x, y = np.meshgrid(g, g)
    p = dict(theta_E=1.0, e1=0.3, e2=0.0, x0=0.0, y0=0.0, slope=slope)  # q = 0.7 / 1.3, major axis along x
    q = 0.7 / 1.3
    inside = q * x**2 + y**2 / q < 1
    k = epl.convergence(x, y, **p)
    mass = k[inside].sum() * h * h
    assert mass / np.pi == pytest.approx(1.0, abs=1e-2)  # the sum's error at the centre grows with the slope


@pytest.mark.parametrize("slope", [1.6, 2.0, 2.4])
def test_critical_curves_are_where_the_magnification_diverges(epl, slope):
    p = dict(theta_E=1.3, e1=0.2, e2=0.1, x0=0.05, y0=-0.1, slope=slope)
    curves = epl.analytic_critical_curves(n=64, **p)
    assert len(curves) == (2 if slope < 2 else 1)
    for cx, cy in curves:
        hxx, hxy, hyy = epl.hessian(cx.numpy(), cy.numpy(), **p)
        det = (1 - hxx) * (1 - hyy) - hxy**2
        assert np.abs(det).max() < 1e-8
    if slope == 2.0:  # the SIE's: the ellipse q x'**2 + y'**2 / q = theta_E**2
        c = np.hypot(0.2, 0.1)
        q, phi = (1 - c) / (1 + c), np.arctan2(0.1, 0.2) / 2
        dx, dy = cx.numpy() - 0.05, cy.numpy() + 0.1
        xp, yp = np.cos(phi) * dx + np.sin(phi) * dy, np.cos(phi) * dy - np.sin(phi) * dx
        np.testing.assert_allclose(q * xp**2 + yp**2 / q, 1.3**2, rtol=1e-10)


def test_multiple_image_regions(epl):
    n = 3
    p = dict(theta_E=np.array([1.0, 1.3, 0.8]), e1=np.array([0.1, -0.2, 0.3]), e2=np.array([0.0, 0.1, -0.2]),
             x0=np.array([0.0, 0.1, -0.1]), y0=np.array([0.0, 0.05, 0.2]))
    sie = lenskit.get("mass_model", "sie")()
    ref = sie.multiple_image_regions(n=48, **p)
    mine = epl.multiple_image_regions(n=48, slope=np.full(n, 2.0), **p)
    assert mine[0].shape == mine[1].shape == (n, 48, 2)
    np.testing.assert_allclose(mine[1], ref[1], atol=1e-8)  # the cut: both along directions from the centre
    dense = sie.multiple_image_regions(n=20000, **p)[0]  # the caustic, sampled along other angles
    gap = np.linalg.norm(mine[0][:, :, None] - dense[:, None], axis=-1).min(-1)
    assert gap.max() < 1e-3
    # shallower: a radial caustic inside the isothermal cut; steeper: the isothermal cut
    shallow = epl.multiple_image_regions(n=48, slope=np.full(n, 1.8), **p)[1]
    steep = epl.multiple_image_regions(n=48, slope=np.full(n, 2.2), **p)[1]
    c = np.stack([p["x0"], p["y0"]], 1)[:, None]
    assert np.all(np.linalg.norm(shallow - c, axis=-1).mean(1) < np.linalg.norm(ref[1] - c, axis=-1).mean(1))
    np.testing.assert_allclose(steep, ref[1], atol=1e-8)


def test_float32_close_to_float64(epl):
    x, y = points(300, seed=4)
    p = dict(P, slope=2.2, e1=0.6)  # q = 0.25: the series' slowest case here
    a64 = epl.deflection(x, y, **p)
    a32 = epl.deflection(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32), **p)
    np.testing.assert_allclose(np.stack([t.numpy() for t in a32]), np.stack(a64), rtol=2e-5, atol=2e-6)


def test_centre_is_finite(epl):
    for slope in (1.5, 2.0, 2.5):
        p = dict(P, slope=slope)
        ax, ay = epl.deflection(np.array([P["x0"]]), np.array([P["y0"]]), **p)
        assert ax[0] == 0 and ay[0] == 0
        assert np.all(np.isfinite(epl.hessian(np.array([P["x0"]]), np.array([P["y0"]]), **p)))
        assert np.isfinite(epl.convergence(np.array([P["x0"]]), np.array([P["y0"]]), **p)[0])


@pytest.mark.parametrize("bad, match", [
    (dict(slope=3.0), "slope must lie in"), (dict(slope=1.0), "slope must lie in"),
    (dict(theta_E=-1.0), "theta_E must be > 0"), (dict(e1=0.9, e2=0.5), "e1\\*\\*2"),
    (dict(slope=np.nan), "slope must be finite")])
def test_bad_parameters(epl, bad, match):
    with pytest.raises(ValueError, match=match):
        epl.deflection(np.zeros(3), np.zeros(3), **{**P, "slope": 2.0, **bad})


def test_simulator_draws_slopes():
    sim = lenskit.Simulator(mass_model="epl", source="sersic", instrument="hst_wfc3", seed=3)
    ds = sim.sample(24)
    s = np.asarray(ds.params["slope"])
    assert np.all((s >= 1.6) & (s <= 2.4)) and len(np.unique(s)) == len(s)
    fixed = lenskit.Simulator(mass_model="epl", source="sersic", instrument="hst_wfc3", seed=3,
                              priors={"slope": 2.3}).sample(4)
    assert np.all(np.asarray(fixed.params["slope"]) == 2.3)
    with pytest.raises(ValueError, match="slope"):
        lenskit.Simulator(mass_model="epl", source="sersic", instrument="hst_wfc3", priors={"slope": 3.5}).sample(2)


@pytest.mark.parametrize("main", ["sie", "epl"])
def test_composite_with_shear_regions_are_its_caustics(main):
    """All systems at once along rays: on the caustic traced on a grid for each system, and det A = 0 there."""
    from lenskit.lensing import caustics, tangential_critical_rays
    from lenskit.mass_models.composite import CompositeMassModel

    lens = CompositeMassModel([lenskit.get("mass_model", main)(), lenskit.get("mass_model", "external_shear")()])
    rng = np.random.default_rng(5)
    n = 4
    p = dict(theta_E=rng.uniform(0.8, 2.0, n), e1=rng.uniform(-0.3, 0.3, n), e2=rng.uniform(-0.3, 0.3, n),
             x0=rng.uniform(-0.1, 0.1, n), y0=rng.uniform(-0.1, 0.1, n), gamma1=rng.uniform(-0.08, 0.08, n),
             gamma2=rng.uniform(-0.08, 0.08, n))
    if main == "epl":
        p["slope"] = np.array([1.8, 1.95, 2.1, 2.25])
    caustic, cut = lens.multiple_image_regions(n=64, **p)
    assert caustic.shape == cut.shape == (n, 64, 2)
    # the closed form along rays (a self-similar main lens plus shear) against the generic search
    parts = lens.split(p)
    t = lens.components[0].hessian_exponent(**parts[0])
    closed = lens._critical_self_similar(lens.components[0], parts[0], parts, 0, (p["x0"], p["y0"]), t, 64)
    crit = tangential_critical_rays(lens, p, (p["x0"], p["y0"]), p["theta_E"], n=64)
    np.testing.assert_allclose(torch.stack(closed, -1).numpy(), crit, atol=1e-9)
    pt = {k: torch.as_tensor(v)[:, None] for k, v in p.items()}
    hxx, hxy, hyy = lens.hessian_tensor(*closed, **pt)
    assert float(((1 - hxx) * (1 - hyy) - hxy**2).abs().max()) < 1e-12
    for i in range(n):
        traced = caustics(lens, n=256, include_cut=False, **{k: float(v[i]) for k, v in p.items()})
        ref = traced[0].to_value("arcsec")
        seg_a, seg_b = ref, np.roll(ref, -1, axis=0)  # distance of each point to the traced polyline
        d = seg_b - seg_a
        along = np.einsum("pvk,vk->pv", caustic[i][:, None] - seg_a, d)
        w = np.clip(along / np.maximum(np.einsum("vk,vk->v", d, d), 1e-300), 0, 1)
        gap = np.linalg.norm(caustic[i][:, None] - (seg_a + w[..., None] * d), axis=-1).min(1)
        assert gap.max() < 2e-4 * p["theta_E"][i]


def test_simulator_with_shear_places_sources_in_the_region():
    sim = lenskit.Simulator(mass_model=["epl", "external_shear"], source="sersic", instrument="hst_wfc3", seed=4)
    ds = sim.sample(16)
    assert {"slope", "gamma1", "gamma2"} <= set(ds.params.colnames)
    assert np.mean(ds.params["multiply_imaged"]) > 0.7
