"""`NetworkEstimator`: what every estimator built on one torch network shares (weights out, weights to disk)."""

import warnings

from lenskit.core.exceptions import LenskitDataWarning
from lenskit.core.interfaces import Estimator
from lenskit.core.weights import ModelWeights

__all__ = ["NetworkEstimator"]


class NetworkEstimator(Estimator):
    """
    An `~lenskit.core.Estimator` around one network: ``architecture``, ``network``, ``config()`` and ``metrics``.

    Subclasses set those attributes and ``config``; this class turns them into
    `~lenskit.core.ModelWeights` and writes them.
    """

    #: CNN estimators and the finder average over symmetries of the pixel grid with ``predict(tta=n)``.
    supports_tta = True

    def is_trained(self):
        """Whether the network has been trained (its training record is not empty): shipped or fitted weights."""
        return bool(getattr(self, "training", None))

    def _warn_untrained(self):
        """Warn that a network that was never trained answers from its random initial weights (not while fitting)."""
        if not getattr(self, "_fitting", False) and not self.is_trained():
            warnings.warn(LenskitDataWarning(
                f"this {type(self).__name__} has not been trained (its training record is empty): its answers "
                f"come from random initial weights; train it with fit(), or load trained weights with "
                f"lenskit.load_estimator()"), stacklevel=3)

    def weights(self, dtype=None):
        """The network state as `~lenskit.core.ModelWeights` (optionally cast, e.g. to float16)."""
        return ModelWeights.from_module(self.architecture, self.network, dtype=dtype, config=self.config(),
                                        metrics=self.metrics)

    def save(self, path, dtype=None, overwrite=True):
        """Write the weights, configuration and metrics to an ASDF file (atomically)."""
        self.weights(dtype=dtype).write(path, overwrite=overwrite)
