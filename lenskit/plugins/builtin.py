"""The implementations that ship with lenskit, registered lazily by "module:Class"."""

from lenskit.plugins.hookspecs import hookimpl

#: What lenskit itself provides.  Strings are imported on first use only.
BUILTINS = {
    "mass_model": {
        "sie": "lenskit.mass_models.sie:SIE",
        "external_shear": "lenskit.mass_models.shear:ExternalShear",
        "epl": "lenskit.mass_models.epl:EPL",
    },
    "source": {
        "sersic": "lenskit.sources.sersic:SersicSource",
        "sersic_clump": "lenskit.sources.sersic_clump:SersicClumpSource",
        "mixture": "lenskit.sources.mixture:MixtureSource",
        "great3": "lenskit.sources.great3:GREAT3Source",
        "galaxy_zoo": "lenskit.sources.galaxy_zoo:GalaxyZooSource",
        "hudf": "lenskit.sources.hudf:HUDFSource",
        "candels": "lenskit.sources.candels:CandelsSource",
        "image_directory": "lenskit.sources.image_directory:ImageDirectorySource",
    },
    "instrument": {
        "hst_wfc3": "lenskit.instruments.hst:HSTWFC3",
        "lsst": "lenskit.instruments.lsst:LSST",
        "euclid_vis": "lenskit.instruments.euclid:EuclidVIS",
    },
    "estimator": {
        "lenskit_net": "lenskit.estimators.regression:LenskitNetEstimator",
        "hezaveh": "lenskit.estimators.regression:HezavehEstimator",
        "alexnet": "lenskit.estimators.regression:AlexNetEstimator",
        "overfeat": "lenskit.estimators.regression:OverFeatEstimator",
        "inception_v4": "lenskit.estimators.regression:InceptionV4Estimator",
        "pearson": "lenskit.estimators.regression:PearsonEstimator",
        "ensemble": "lenskit.estimators.ensemble:EnsembleEstimator",
        "deeplens": "lenskit.estimators.finder:DeepLensFinder",
    },
    "deblender": {
        "ica": "lenskit.deblenders.ica:ICADeblender",
        "sersic": "lenskit.deblenders.sersic:SersicDeblender",
    },
}


@hookimpl
def lenskit_register_implementations():
    return {kind: dict(names) for kind, names in BUILTINS.items()}
