"""
The registered regression estimators: the networks of Hezaveh et al. (2017) and Pearson et al. (2019) and
lenskit's own, each a `CNNEstimator` with its architecture and input shape preset.

`CNNEstimator` itself (target handling, uncertainties, prediction, training, weights) lives in
`lenskit.estimators.cnn` and is re-exported here.
"""

from lenskit.estimators.cnn import DEFAULT_TARGETS, CNNEstimator

__all__ = ["CNNEstimator", "DEFAULT_TARGETS"]


def _named(name_, arch, shape, doc):
    class Named(CNNEstimator):
        __doc__ = doc
        name = name_
        default_architecture = arch

        def __init__(self, in_shape=shape, targets=DEFAULT_TARGETS, uncertainty=True, spin=2, arch_kwargs=None,
                     expects=None, device="cpu", architecture=None, conditions=None):
            super().__init__(architecture=arch, in_shape=in_shape, targets=targets, uncertainty=uncertainty,
                             spin=spin, arch_kwargs=arch_kwargs, expects=expects, device=device,
                             conditions=conditions)

    Named.__name__ = Named.__qualname__ = "".join(p.capitalize() for p in name_.split("_")) + "Estimator"
    return Named


LenskitNetEstimator = _named("lenskit_net", "lenskit_net", (1, 192, 192),
                             "lenskit's parameter-efficient CNN (the shipped default); see `CNNEstimator`.")
HezavehEstimator = _named("hezaveh", "hezaveh", (1, 192, 192),
                          "The own network of Hezaveh et al. (2017); see `CNNEstimator`.")
AlexNetEstimator = _named("alexnet", "alexnet", (1, 192, 192), "AlexNet as in Hezaveh et al. (2017).")
OverFeatEstimator = _named("overfeat", "overfeat", (1, 192, 192), "OverFeat as in Hezaveh et al. (2017).")
InceptionV4Estimator = _named("inception_v4", "inception_v4", (1, 192, 192),
                              "Inception-v4 as in Hezaveh et al. (2017).")
PearsonEstimator = _named("pearson", "pearson", (3, 57, 57),
                          "The CNN of Pearson, Li & Dye (2019) for 57 x 57 LSST / Euclid stamps.")
