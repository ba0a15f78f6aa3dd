"""
Network architectures, one per file; each a `torch.nn.Module` taking
``(images, mask=None)`` shaped (N, bands, H, W) and returning (N, n_outputs).
"""

import importlib

import torch

__all__ = ["ARCHITECTURES", "build", "check_weights"]

#: Architecture name -> "module:Class".
ARCHITECTURES = {
    "lenskit_net": "lenskit.estimators.networks.lenskit_net:LenskitNet",
    "hezaveh": "lenskit.estimators.networks.hezaveh:HezavehNet",
    "alexnet": "lenskit.estimators.networks.alexnet:AlexNet",
    "overfeat": "lenskit.estimators.networks.overfeat:OverFeat",
    "inception_v4": "lenskit.estimators.networks.inception_v4:InceptionV4",
    "pearson": "lenskit.estimators.networks.pearson:PearsonNet",
    "deeplens": "lenskit.estimators.networks.deeplens:DeepLensNet",
}


def build(name, **kwargs):
    """Instantiate architecture ``name`` with ``kwargs`` (in_shape, n_outputs, ...)."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; available: {sorted(ARCHITECTURES)}")
    mod, _, cls = ARCHITECTURES[name].partition(":")
    return getattr(importlib.import_module(mod), cls)(**kwargs)


def check_weights(weights, name, **kwargs):
    """
    Refuse `~lenskit.core.ModelWeights` whose arrays do not fill the network ``build(name, **kwargs)`` makes.

    The network is built on torch's ``meta`` device, so a configuration asking for an enormous network allocates
    nothing before it is refused (`~lenskit.core.LenskitFileError`).
    """

    with torch.device("meta"):
        probe = build(name, **kwargs)
    weights.check_network(probe)
