"""Interfaces and value types shared by every lenskit plugin."""

from lenskit.core.conventions import *  # noqa: F401,F403
from lenskit.core.dataset import PARAM_UNITS, LensDataset  # noqa: F401
from lenskit.core.deblended import Deblended  # noqa: F401
from lenskit.core.estimate import Estimate  # noqa: F401
from lenskit.core.exceptions import *  # noqa: F401,F403
from lenskit.core.interfaces import (  # noqa: F401
    INTERFACES,
    Deblender,
    Estimator,
    Instrument,
    MassModel,
    Source,
    SourceBatch,
)
from lenskit.core.provenance import Provenance, array_checksum  # noqa: F401
from lenskit.core.validation import as_rng  # noqa: F401
from lenskit.core.weights import ModelWeights  # noqa: F401

__all__ = [
    "MassModel", "Source", "SourceBatch", "Instrument", "Estimator", "Deblender", "INTERFACES",
    "LensDataset", "Estimate", "Deblended", "ModelWeights", "Provenance", "array_checksum", "PARAM_UNITS", "as_rng",
    "LenskitError", "LenskitPluginError", "LenskitPluginWarning", "LenskitFileError", "LenskitCorruptFileError",
    "LenskitDataWarning", "LenskitFitWarning",
    "ellipticity_to_q_phi", "q_phi_to_ellipticity", "pearson_to_lenskit_ellipticity",
    "lenskit_to_pearson_ellipticity", "theta_E_to_pyautolens", "pyautolens_to_theta_E",
    "position_angle_to_phi", "phi_to_position_angle",
]
