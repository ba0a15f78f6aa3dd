"""The published home of lenskit's scale-out (`lenskit.scale`): survey-scale simulate / estimate / find on Dask."""

from lenskit.scale import (  # noqa: F401
                           ShardError,
                           ShardIndex,
                           estimate,
                           find,
                           get_client,
                           local_cluster,
                           shard_seeds,
                           simulate,
)
from lenskit.scale.survey import resolve_estimator  # noqa: F401

__all__ = ["simulate", "estimate", "find", "ShardIndex", "ShardError", "get_client", "local_cluster", "shard_seeds"]
