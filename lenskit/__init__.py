"""
lenskit: simulate, deblend, model and find strong gravitational lenses.

The public API::

    import lenskit
    lenskit.available("mass_model")
    sie = lenskit.get("mass_model", "sie")()
    sim = lenskit.Simulator(mass_model="sie", source="sersic_clump", instrument="hst_wfc3", seed=1)
    ds = sim.sample(100)
    ds.write("train.asdf"); ds = lenskit.read("train.asdf")
"""

from lenskit.core import Estimate, LensDataset, Provenance  # noqa: E402
from lenskit.core.exceptions import LenskitError, LenskitFileError, LenskitPluginError, LenskitPluginWarning  # noqa: E402
from lenskit.core.version import VERSION as __version__
from lenskit.io import read, write  # noqa: E402
from lenskit.plugins import available, get  # noqa: E402

__all__ = [
    "__version__", "get", "available", "read", "write", "load",
    "LensDataset", "Estimate", "Provenance", "Simulator", "load_estimator", "fit",
    "LenskitError", "LenskitFileError", "LenskitPluginError", "LenskitPluginWarning",
]

#: Alias of `read`.
load = read


def __getattr__(name):
    # heavy pieces (torch) load on first use so that `import lenskit` stays fast
    if name == "Simulator":
        from lenskit.simulation.simulator import Simulator  # heavy (torch): loaded on first use

        return Simulator
    if name == "fit":
        from lenskit.modelling.fit import fit  # heavy (torch): loaded on first use

        return fit
    if name == "load_estimator":
        from lenskit.estimators.pretrained import load_estimator  # heavy (torch): loaded on first use

        return load_estimator
    raise AttributeError(f"module 'lenskit' has no attribute {name!r}")


def __dir__():
    # the lazily imported names (Simulator, fit, load_estimator) belong to the public API too
    return sorted(set(globals()) | set(__all__))
