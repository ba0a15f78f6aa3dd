"""`NetworkEstimator`: what every estimator built on one torch network shares (weights out, weights to disk)."""

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

    def weights(self, dtype=None):
        """The network state as `~lenskit.core.ModelWeights` (optionally cast, e.g. to float16)."""
        return ModelWeights.from_module(self.architecture, self.network, dtype=dtype, config=self.config(),
                                        metrics=self.metrics)

    def save(self, path, dtype=None, overwrite=True):
        """Write the weights, configuration and metrics to an ASDF file (atomically)."""
        self.weights(dtype=dtype).write(path, overwrite=overwrite)
