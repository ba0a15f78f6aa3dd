"""The public API of DESIGN.md is typed (py.typed ships) and its names are where the docs say."""

import inspect
from pathlib import Path

import pytest

import lenskit
from lenskit.modelling import fit, model_lens

PUBLIC = [lenskit.get, lenskit.available, lenskit.read, lenskit.write, lenskit.load_estimator, lenskit.Simulator.sample,
          lenskit.Simulator.stream, lenskit.Simulator.simulate, lenskit.Simulator.from_config, fit, model_lens,
          lenskit.Estimate.write, lenskit.Estimate.read, lenskit.LensDataset.write, lenskit.LensDataset.read]


@pytest.mark.parametrize("func", PUBLIC, ids=[f.__qualname__ for f in PUBLIC])
def test_public_calls_are_annotated(func):
    sig = inspect.signature(func)
    assert sig.return_annotation is not inspect.Signature.empty, f"{func.__qualname__} has no return annotation"
    plain = [n for n, p in sig.parameters.items()
             if n not in ("self", "cls") and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
             and p.annotation is inspect.Parameter.empty]
    assert not plain, f"{func.__qualname__}: parameters without annotations {plain}"


def test_py_typed_ships():
    assert (Path(lenskit.__file__).parent / "py.typed").exists()


def test_published_module_names_still_work():
    from lenskit.distributed import ShardIndex, simulate  # noqa: F401
    from lenskit.fitting import fit as fit_alias  # noqa: F401
    from lenskit.fitting import outlier_mask, render_model, ring_radius  # noqa: F401
    from lenskit.pipeline import LensModel  # noqa: F401
    from lenskit.pipeline import model_lens as model_lens_alias

    assert fit_alias is fit and model_lens_alias is model_lens and lenskit.fit is fit
