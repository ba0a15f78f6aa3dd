"""Model-independent lensing: ray tracing, magnification, critical curves, caustics, images."""

from lenskit.lensing.critical import (caustics, critical_curves, multiple_image_region,  # noqa: F401
                                     self_similar_critical_radii, tangential_critical_rays)
from lenskit.lensing.images import image_positions  # noqa: F401
from lenskit.lensing.raytrace import jacobian_determinant, magnification, ray_trace  # noqa: F401

__all__ = ["ray_trace", "magnification", "jacobian_determinant", "critical_curves", "caustics",
           "multiple_image_region", "tangential_critical_rays",
           "self_similar_critical_radii", "image_positions"]
