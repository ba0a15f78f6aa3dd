"""The one renderer against identities: surface brightness is conserved, an unlensed source keeps its flux."""

import math

import numpy as np
import pytest
import torch

import lenskit
from lenskit.lensing.light import gaussian
from lenskit.lensing.render import downsample, pixel_grid, render


def _grid(n=64, scale=0.05, s=1):
    x, y = pixel_grid((n, n), scale, s, dtype=torch.float64)
    return x.reshape(1, 1, -1), y.reshape(1, -1, 1)


def _sie_params(theta_E=1.0):
    return {k: torch.tensor([[[v]]], dtype=torch.float64)
            for k, v in dict(theta_E=theta_E, e1=0.1, e2=-0.05, x0=0.03, y0=0.0).items()}


def test_grid_follows_the_pixel_centre_convention():
    x, y = pixel_grid((3, 4), 0.5)
    np.testing.assert_allclose(x.numpy(), [-0.75, -0.25, 0.25, 0.75])
    np.testing.assert_allclose(y.numpy(), [-0.5, 0.0, 0.5])
    xs, _ = pixel_grid((3, 4), 0.5, supersample=2)
    np.testing.assert_allclose(downsample(xs.reshape(1, 1, -1).expand(1, 2, 8), 2).numpy()[0, 0], x.numpy())


def test_lensing_conserves_surface_brightness():
    sie = lenskit.get("mass_model", "sie")()
    X, Y = _grid()
    arcs, _, total = render(sie._deflection, _sie_params(), lambda bx, by: torch.full_like(bx, 2.5), X, Y, 0.05,
                            supersample=1)
    np.testing.assert_allclose(arcs.numpy(), 2.5)
    np.testing.assert_allclose(total.numpy(), 2.5 * (64 * 0.05) ** 2)


def test_an_unlensed_source_keeps_its_flux_and_a_lensed_one_is_magnified():
    sie = lenskit.get("mass_model", "sie")()
    X, Y = _grid(n=128, scale=0.04, s=2)
    sigma = 0.05
    src = lambda bx, by: gaussian(bx * bx + by * by, sigma)  # noqa: E731 - unit flux
    _, _, total = render(sie._deflection, _sie_params(theta_E=0.0), src, X, Y, 0.04, supersample=2)
    assert math.isclose(float(total), 1.0, rel_tol=1e-6)
    # a source on the optical axis of an SIS far from the caustic: mu = 1 / (1 - theta_E / |theta|) summed over images
    sis = {k: v if k != "e1" and k != "e2" else torch.zeros_like(v) for k, v in _sie_params(1.0).items()}
    sis["x0"] = torch.zeros_like(sis["x0"])
    beta = 0.5  # |beta| < theta_E: two images at theta_E +- beta, total magnification 2 theta_E / beta
    _, _, lensed = render(sie._deflection, sis, src, X, Y, 0.04, supersample=2,
                          source_offset=(torch.tensor(beta, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)))
    assert math.isclose(float(lensed), 2 * 1.0 / beta, rel_tol=0.01)


def test_simulator_render_is_public_and_reproduces_sample():
    from lenskit.sources.sersic import SersicBatch

    sim = lenskit.Simulator(instrument="euclid_vis", lens_light=False, seed=9)
    ds = sim.sample(3)
    p = {k: ds.params[k].value if hasattr(ds.params[k], "unit") else np.asarray(ds.params[k])
         for k in sim.mass_model.param_names}
    assert set(p) == {"theta_E", "e1", "e2", "x0", "y0"}
    src = SersicBatch(np.full(3, 0.3), np.full(3, 1.0), np.zeros(3), np.zeros(3))
    arcs, lens, mu = sim.render(p, np.zeros((3, 2)), src, np.ones((3, 1)))
    assert arcs.shape == (3, 1, 57, 57) and lens is None and np.all(mu > 1)


def test_sersic_in_place_path_equals_the_differentiable_one():
    from lenskit.lensing.light import sersic

    g = torch.Generator().manual_seed(0)
    r2 = torch.rand(4, 30, 30, generator=g, dtype=torch.float64) * 4
    r2[0, 0, 0] = 0.0  # the centre
    R_e = torch.tensor([0.3, 0.5, 1.0, 2.0], dtype=torch.float64).reshape(4, 1, 1)
    n = torch.tensor([0.5, 1.0, 4.0, 8.0], dtype=torch.float64).reshape(4, 1, 1)
    fast = sersic(r2, R_e, n)  # no gradient wanted: computed in place
    n_grad = n.clone().requires_grad_(True)
    slow = sersic(r2, R_e, n_grad)
    torch.testing.assert_close(fast, slow.detach(), rtol=1e-12, atol=0)
    slow.sum().backward()
    assert torch.isfinite(n_grad.grad).all()
    small = sersic(r2[0], R_e, n)  # a grid that broadcasts to a larger result: not in place
    assert small.shape == (4, 30, 30)
    torch.testing.assert_close(small[1], sersic(r2[0], R_e[1], n[1]), rtol=1e-12, atol=0)


@pytest.mark.parametrize("gaussian", [False, True])
def test_sersic_in_place_equals_elliptical_sersic(gaussian):
    from lenskit.lensing.light import elliptical_sersic, sersic_b, sersic_in_place

    g = torch.Generator().manual_seed(1)
    x, y = pixel_grid((40, 50), 0.05, dtype=torch.float64)
    X, Y = x.reshape(1, 1, -1).expand(5, 40, 50), y.reshape(1, -1, 1).expand(5, 40, 50)

    def col(lo, hi):
        return (lo + (hi - lo) * torch.rand(5, generator=g, dtype=torch.float64)).reshape(5, 1, 1)

    e1, e2, x0, y0 = col(-0.4, 0.4), col(-0.4, 0.4), col(-0.3, 0.3), col(-0.3, 0.3)
    R_e, I_e = col(0.05, 0.8), col(0.1, 3.0)
    n = torch.full((5, 1, 1), 0.5, dtype=torch.float64) if gaussian else col(0.5, 6.0)
    e1[0] = e2[0] = 0.0  # round
    b = sersic_b(n)
    ref = I_e * torch.exp(b - b * (((X - x0) ** 2 + (Y - y0) ** 2) / R_e**2) ** (1 / (2 * n)))
    fast = sersic_in_place(X - x0, Y - y0, e1, e2, R_e, n, b, I_e)
    slow = elliptical_sersic(X, Y, e1, e2, x0, y0, R_e, n.clone().requires_grad_(True), b, I_e).detach()
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fast[0], ref[0], rtol=1e-10, atol=1e-12)  # the round one: r**2 = dx**2 + dy**2
    assert float(fast.max()) > 0 and torch.isfinite(fast).all()


@pytest.mark.parametrize("dtype, floor", [(torch.float32, -87.0), (torch.float64, -708.0)])
def test_exp_flush_is_exp_above_the_underflow_and_zero_below(dtype, floor):
    from lenskit.core.arrays import exp_
    from lenskit.lensing.light import exp_flush_

    g = torch.Generator().manual_seed(2)
    x = torch.rand(100_000, generator=g, dtype=dtype) * (3 * floor) - 20  # from 3x the floor to -20 ... +0
    x[:3] = torch.tensor([floor + 0.01, floor, floor - 0.01], dtype=dtype)
    ref = exp_(x.clone())  # torch's exp, or NumPy's where lenskit.core.arrays uses it
    out = exp_flush_(x.clone())
    above = x > floor + 1e-3
    assert torch.equal(out[above], ref[above])  # bit for bit where the result is a normal number
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(out[above], torch.exp(x)[above], rtol=4 * eps, atol=0)  # torch's own, to 4 ulp
    assert torch.all(out[~above] == 0) and out[0] > 0 and out[1] == 0 and out[2] == 0
    assert bool(above.any()) and bool((~above).any())
    assert torch.equal(exp_flush_(torch.zeros(3, dtype=torch.float16)), torch.ones(3, dtype=torch.float16))


def test_sersic_of_a_compact_source_far_away_is_zero_not_denormal():
    from lenskit.lensing.light import sersic_b, sersic_in_place

    x = torch.linspace(-4, 4, 201).reshape(1, 1, -1).expand(1, 201, 201).contiguous()
    y = x.transpose(1, 2).contiguous()
    out = sersic_in_place(x.clone(), y.clone(), 0.0, 0.0, 0.05, 0.5, sersic_b(0.5), 1.0)  # a Gaussian of 0.05"
    tiny = torch.finfo(torch.float32).tiny
    assert not bool(((out > 0) & (out < tiny)).any())  # no denormals
    assert float(out.max()) > 1 and float((out == 0).float().mean()) > 0.9
    r2 = (x**2 + y**2)[0]
    keep = r2 < 0.4**2
    torch.testing.assert_close(out[0][keep], torch.exp(sersic_b(0.5) * (1 - r2[keep] / 0.05**2)), rtol=1e-5, atol=0)
