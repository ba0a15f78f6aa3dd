"""The module named in the entry point: tells lenskit what this plugin provides."""

from lenskit.plugins import hookimpl


@hookimpl
def lenskit_register_implementations():
    return {"mass_model": {"point_mass": "lenskit_point_mass.models:PointMass"}}
