"""
Prior distributions for simulation parameters (an alias of `lenskit.core.priors`).

The priors are value types that instruments and sources use as well as the
`~lenskit.Simulator`, so they live in `lenskit.core`; this module keeps the
name they were first published under.
"""

from lenskit.core.priors import *  # noqa: F401,F403
from lenskit.core.priors import __all__  # noqa: F401
