import numpy as np
import pytest
import torch

import lenskit
from lenskit.lensing.light import sersic_b


def grid(n=400, half=4.0, batch=1):
    g = torch.linspace(-half, half, n, dtype=torch.float64)
    dx = (g[1] - g[0]).item()
    return g.reshape(1, 1, n).expand(batch, n, n), g.reshape(1, n, 1).expand(batch, n, n), dx


def test_sersic_b_half_light():
    from scipy.special import gammainc

    n = np.array([0.5, 1, 2.5, 4, 6])
    assert np.allclose(gammainc(2 * n, sersic_b(n)), 0.5)
    # one b_n for numpy and torch (the simulator and the fit share a profile), in float64 and float32
    n = np.array([0.3, 0.5, 1, 2.5, 4, 6, 8, 10])
    np.testing.assert_allclose(sersic_b(torch.as_tensor(n)).numpy(), sersic_b(n), rtol=1e-12)
    np.testing.assert_allclose(sersic_b(torch.as_tensor(n, dtype=torch.float32)).numpy(), sersic_b(n), rtol=1e-6)
    # differentiable in n: the implicit derivative against central differences of the exact inverse
    for dtype, rtol in ((torch.float64, 1e-5), (torch.float32, 1e-3)):
        t = torch.as_tensor(n, dtype=dtype).requires_grad_(True)
        sersic_b(t).sum().backward()
        h = 1e-6
        numeric = (sersic_b(n + h) - sersic_b(n - h)) / (2 * h)
        np.testing.assert_allclose(t.grad.numpy(), numeric, rtol=rtol)


@pytest.mark.parametrize("name", ["sersic", "sersic_clump", "mixture"])
def test_sources_have_unit_flux(name):
    src = lenskit.get("source", name)()
    b = src.sample(6, np.random.default_rng(0))
    assert len(b) == 6
    x, y, dx = grid(batch=6, half=6.0, n=600)
    img = b.brightness(x, y)
    flux = img.sum((1, 2)).numpy() * dx * dx
    # profiles are truncated by the grid: the few per cent beyond 6" of an n = 5 clump are lost
    np.testing.assert_allclose(flux, b.flux, rtol=0.08)
    assert torch.isfinite(img).all()


def test_sersic_half_light_radius():
    src = lenskit.get("source", "sersic")(R_e=0.5, n=(1.0, 4.0), ellipticity=0.0)
    b = src.sample(3, np.random.default_rng(1))
    x, y, dx = grid(n=800, half=20.0, batch=3)
    img = b.brightness(x, y)
    r = torch.sqrt(x**2 + y**2)
    inside = (img * (r < 0.5)).sum((1, 2)) * dx * dx
    np.testing.assert_allclose(inside.numpy(), 0.5, atol=0.01)


def test_clump_counts_and_sizes():
    src = lenskit.get("source", "sersic_clump")(size=(0.2, 0.2))
    b = src.sample(500, np.random.default_rng(2))
    counts = np.asarray(b.params["source_n_clumps"])
    assert counts.min() == 1 and counts.max() == 5
    np.testing.assert_allclose(b.size, 0.2)
    # the defined size: flux-weighted radius of clump positions and sizes
    size = np.sqrt((b.weight * (b.cx**2 + b.cy**2 + b.R_e**2)).sum(1))
    np.testing.assert_allclose(size, 0.2, rtol=1e-10)


def test_take_selects_rows():
    src = lenskit.get("source", "mixture")()
    b = src.sample(10, np.random.default_rng(3))
    sub = b.take(np.array([2, 7]))
    x, y, _ = grid(n=32, half=1.0, batch=10)
    full = b.brightness(x, y)
    part = sub.brightness(x[:2], y[:2])
    torch.testing.assert_close(part, full[[2, 7]])


@pytest.mark.parametrize("name", ["sersic", "sersic_clump"])
def test_take_equals_a_batch_made_from_the_rows(name):
    # take() slices what __init__ derived (b_n, I_e) instead of computing it again: every attribute must be what a
    # batch built from the selected rows has, bit for bit, and no attribute may be missing
    b = lenskit.get("source", name)().sample(40, np.random.default_rng(5))
    idx = np.array([3, 1, 7, 7, 20])
    if name == "sersic":
        fresh = type(b)(b.R_e[idx], b.n[idx], b.e1[idx], b.e2[idx])
    else:
        fresh = type(b)(*(getattr(b, k)[idx] for k in ("cx", "cy", "R_e", "n", "e1", "e2", "weight")), b.size[idx])
    sub = b.take(idx)
    assert sorted(vars(sub)) == sorted(vars(fresh))
    for k, v in vars(fresh).items():
        np.testing.assert_array_equal(getattr(sub, k), v, err_msg=k)
    mask = np.zeros(40, bool)
    mask[[0, 39]] = True
    np.testing.assert_array_equal(b.take(mask).I_e, b.I_e[mask])


def test_mixture_weights_are_respected():
    src = lenskit.get("source", "mixture")(sources=["sersic", "sersic_clump"], weights=[3, 1])
    b = src.sample(4000, np.random.default_rng(4))
    frac = np.mean(np.asarray(b.params["source_component"]) == "sersic")
    assert abs(frac - 0.75) < 0.03


def test_source_validation():
    with pytest.raises(ValueError, match="weights must be 2"):
        lenskit.get("source", "mixture")(sources=["sersic", "sersic_clump"], weights=[1, -1])
    with pytest.raises(ValueError, match="n_clumps"):
        lenskit.get("source", "sersic_clump")(n_clumps=(0, 3))
    with pytest.raises(ValueError, match="n must be a non-negative integer"):
        lenskit.get("source", "sersic")().sample(-1, np.random.default_rng(0))
    with pytest.raises(TypeError, match="must be a number"):
        lenskit.get("source", "sersic")(R_e="big")
