import subprocess
import sys

import numpy as np
import pytest
import torch

from lenskit.core.arrays import at_least, broadcast_shape, flat_nonzero


@pytest.mark.parametrize("shapes", [
    [(8, 96), (8, 1), ()],
    [(3, 1, 5), (4, 1)],
    [(1,), (0,)],
    [(2, 1, 1, 1), (2, 3, 4, 5), (5,)],
    [()],
    [],
])
def test_broadcast_shape_agrees_with_numpy_and_torch(shapes):
    assert broadcast_shape(*shapes) == np.broadcast_shapes(*shapes) == tuple(torch.broadcast_shapes(*shapes))
    assert broadcast_shape(*(torch.Size(s) for s in shapes)) == torch.Size(np.broadcast_shapes(*shapes))


@pytest.mark.parametrize("shapes", [[(3,), (4,)], [(2, 3), (3, 2)], [(0,), (2,)], [(5, 1, 3), (1, 4, 2)]])
def test_broadcast_shape_refuses_what_does_not_broadcast(shapes):
    with pytest.raises(ValueError):
        np.broadcast_shapes(*shapes)
    with pytest.raises(ValueError, match="do not broadcast together"):
        broadcast_shape(*shapes)


def test_a_first_sample_does_not_import_sympy():
    # torch.broadcast_shapes imports SymPy on its first call (about 0.4 s of a user's first sample)
    code = ("import sys, lenskit; lenskit.Simulator(seed=1).sample(4); "
            "assert 'sympy' not in sys.modules, 'sympy imported'")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]


_UFUNCS = [("atan_", "arctan", -50.0, 50.0), ("atanh_", "arctanh", -0.9999, 0.9999), ("exp_", "exp", -87.0, 80.0),
           ("log_", "log", 1e-30, 1e30)]


@pytest.mark.parametrize("name, numpy_name, lo, hi", _UFUNCS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inplace_ufuncs_are_torchs_to_a_few_ulp_and_numpys_where_used(name, numpy_name, lo, hi, dtype):
    import warnings

    from lenskit.core import arrays

    fn = getattr(arrays, name)
    g = torch.Generator().manual_seed(4)
    u = torch.rand(50_000, generator=g, dtype=dtype)
    x = torch.exp(np.log(lo) + u * (np.log(hi) - np.log(lo))) if name == "log_" else lo + u * (hi - lo)
    t = x.clone()
    ptr = t.data_ptr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = fn(t)
    assert out is t and t.data_ptr() == ptr and t._version == 1  # in place, and recorded as such
    if arrays.NUMPY_UFUNCS:
        assert np.array_equal(out.numpy(), getattr(np, numpy_name)(x.numpy()))
    else:
        assert torch.equal(out, getattr(x.clone(), name)())
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(out, getattr(torch, name[:-1])(x), rtol=4 * eps, atol=0)
    # what NumPy's loops are not used for: views, tensors that need gradients -> torch's own method, bit for bit
    view = x.clone().reshape(250, 200).t()
    assert torch.equal(fn(view), getattr(x.reshape(250, 200).t(), name[:-1])())
    leaf = x[:10].clone().requires_grad_(True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        fn(leaf)  # as torch's in-place method refuses it, not silently detached
    with torch.no_grad():  # no graph to record: the fast path, in place on the leaf, as torch's method allows
        torch.testing.assert_close(fn(leaf), getattr(torch, name[:-1])(x[:10]), rtol=4 * eps, atol=0)


def test_inplace_ufuncs_keep_torchs_special_values_without_warnings():
    import warnings

    from lenskit.core.arrays import atan_, atanh_, exp_, log_

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(atanh_(torch.tensor([-1.0, 1.0, 0.0])), torch.tensor([-np.inf, np.inf, 0.0]))
        assert torch.isnan(atanh_(torch.tensor([2.0]))).all() and torch.isnan(log_(torch.tensor([-1.0]))).all()
        assert torch.equal(log_(torch.tensor([0.0, 1.0])), torch.tensor([-np.inf, 0.0]))
        assert torch.equal(exp_(torch.tensor([-np.inf, 0.0, -200.0])), torch.tensor([0.0, 1.0, 0.0]))
        assert torch.equal(atan_(torch.tensor([np.inf, -np.inf])), torch.tensor([np.pi / 2, -np.pi / 2]))
        assert torch.isnan(exp_(torch.tensor([np.nan]))).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_at_least_and_flat_nonzero_agree_with_torch(dtype):
    g = torch.Generator().manual_seed(5)
    t = torch.rand((6, 2, 9, 7), generator=g, dtype=dtype)
    thr = torch.rand((6, 1, 1, 1), generator=g, dtype=dtype)
    mask = at_least(t, thr)
    assert mask.dtype == torch.bool and torch.equal(mask, t >= thr)
    flat = flat_nonzero(mask)
    assert flat.dtype == torch.long and torch.equal(flat, mask.reshape(-1).nonzero()[:, 0])
    # equality counts, as torch's >= does
    assert bool(at_least(thr.expand_as(t).contiguous(), thr).all())
    # what NumPy cannot serve takes torch's path: a strided tensor, a float threshold, another dtype
    strided = t.transpose(2, 3)
    assert torch.equal(at_least(strided, thr), strided >= thr)
    assert torch.equal(at_least(t, 0.5), t >= 0.5)
    assert torch.equal(at_least(t, thr.float() if dtype == torch.float64 else thr.double()),
                       t >= (thr.float() if dtype == torch.float64 else thr.double()))
    assert torch.equal(flat_nonzero(mask.transpose(2, 3)), mask.transpose(2, 3).reshape(-1).nonzero()[:, 0])
    assert len(flat_nonzero(torch.zeros((3, 4), dtype=torch.bool))) == 0
