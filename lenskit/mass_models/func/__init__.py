"""
Public physics kernels of the built-in mass models: pure torch functions.

The caustics layout: each model's closed forms are plain functions of
tensors (arcsec, parameters broadcast against the coordinates), usable
without a class, compiled or differentiated; the `~lenskit.core.MassModel`
classes in `lenskit.mass_models` are thin wrappers that add units, NumPy
conversion and parameter checks.
"""

from lenskit.mass_models.func import shear, sie  # noqa: F401

__all__ = ["sie", "shear"]
