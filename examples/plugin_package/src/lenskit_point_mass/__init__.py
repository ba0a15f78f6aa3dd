"""Example lenskit plugin providing a point-mass lens."""

__version__ = "0.1.0"
