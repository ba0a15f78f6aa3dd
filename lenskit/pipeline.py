"""The published home of `model_lens`; it lives in `lenskit.modelling.pipeline`."""

from lenskit.modelling.pipeline import LensModel, model_lens

__all__ = ["model_lens", "LensModel"]
