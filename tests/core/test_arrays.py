import subprocess
import sys

import numpy as np
import pytest
import torch

from lenskit.core.arrays import broadcast_shape


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
