"""asdf converters for lenskit's value types."""

import numpy as np
from asdf.extension import Converter

from lenskit.core.dataset import LensDataset
from lenskit.core.deblended import Deblended
from lenskit.core.estimate import Estimate
from lenskit.core.exceptions import LenskitFileError
from lenskit.core.provenance import Provenance, array_checksum
from lenskit.core.weights import ModelWeights
from lenskit.io.asdf.uris import TAG


def _only(node, kind, allowed):
    """Refuse keys the schema does not declare (asdf's own validation lets them through, and they were dropped)."""

    extra = sorted(set(node) - set(allowed))
    if extra:
        raise LenskitFileError(f"its {kind} holds undeclared entries {extra} (allowed: {sorted(allowed)}); "
                               f"the file was edited or written by other software")
    return node


class ProvenanceConverter(Converter):
    tags = [TAG.format("provenance")]
    types = ["lenskit.core.provenance.Provenance"]

    def to_yaml_tree(self, obj, tag, ctx):
        return obj.to_dict()

    def from_yaml_tree(self, node, tag, ctx):
        _only(node, "provenance", Provenance._fields)
        return Provenance.from_dict(dict(node))


class LensDatasetConverter(Converter):
    tags = [TAG.format("lens_dataset")]
    types = ["lenskit.core.dataset.LensDataset"]

    def to_yaml_tree(self, obj, tag, ctx):
        return {
            "images": obj.images,
            "params": obj.params,
            "bands": list(obj.bands),
            "pixel_scale": obj.pixel_scale,
            "instrument": obj.instrument,
            "noise": obj.noise,
            "masks": obj.masks,
            "truth": dict(obj.truth),
            # the images' SHA-256 as written, so that a read can tell a damaged file (slices and edits in
            # memory keep their provenance, so it is refreshed here)
            "provenance": obj.provenance.with_checksums(images=array_checksum(obj.images)),
        }

    def from_yaml_tree(self, node, tag, ctx):
        _only(node, "lens_dataset", ("images", "params", "bands", "pixel_scale", "instrument", "noise", "masks",
                                     "truth", "provenance"))
        return LensDataset(
            node["images"], node["params"], bands=node["bands"], pixel_scale=node["pixel_scale"],
            instrument=node.get("instrument"), noise=node.get("noise"), masks=node.get("masks"),
            truth=node.get("truth") or {}, provenance=node["provenance"])


class EstimateConverter(Converter):
    tags = [TAG.format("estimate")]
    types = ["lenskit.core.estimate.Estimate"]

    def to_yaml_tree(self, obj, tag, ctx):
        return {"table": obj.table, "covariance": obj.covariance, "provenance": obj.provenance}

    def from_yaml_tree(self, node, tag, ctx):
        _only(node, "estimate", ("table", "covariance", "provenance"))
        return Estimate(node["table"], covariance=node.get("covariance"), provenance=node["provenance"])


class DeblendedConverter(Converter):
    tags = [TAG.format("deblended")]
    types = ["lenskit.core.deblended.Deblended"]

    def to_yaml_tree(self, obj, tag, ctx):
        return {"arcs": obj.arcs, "lens_light": obj.lens_light, "bands": list(obj.bands), "method": obj.method,
                "params": obj.params, "masks": obj.masks, "diagnostics": obj.diagnostics,
                "provenance": obj.provenance}

    def from_yaml_tree(self, node, tag, ctx):
        _only(node, "deblended", ("arcs", "lens_light", "bands", "method", "params", "masks", "diagnostics",
                                  "provenance"))
        return Deblended(node["arcs"], node["lens_light"], node["bands"], node["method"], params=node["params"],
                         masks=node.get("masks"), diagnostics=node.get("diagnostics"),
                         provenance=node["provenance"])


class ModelWeightsConverter(Converter):
    tags = [TAG.format("model_weights")]
    types = ["lenskit.core.weights.ModelWeights"]

    def to_yaml_tree(self, obj, tag, ctx):
        return {
            "architecture": obj.architecture,
            "arrays": dict(obj.arrays),
            "checksum": obj.checksum,
            "config_checksum": obj.config_checksum,
            "config": obj.config,
            "metrics": obj.metrics,
            "provenance": obj.provenance,
        }

    def from_yaml_tree(self, node, tag, ctx):
        _only(node, "model_weights", ("architecture", "arrays", "checksum", "config_checksum", "config", "metrics",
                                      "provenance"))
        arrays = {k: np.asarray(v) for k, v in node["arrays"].items()}
        obj = ModelWeights(node["architecture"], arrays, config=node["config"], metrics=node["metrics"],
                           provenance=node["provenance"])
        if obj.checksum != node["checksum"]:
            raise LenskitFileError(
                f"model weights '{obj.architecture}' fail their checksum: stored {node['checksum']}, "
                f"computed {obj.checksum}; the file is corrupt")
        if "config_checksum" not in node:
            raise LenskitFileError(
                f"model weights '{obj.architecture}' carry no checksum over their configuration (written before "
                f"lenskit 0.2), so an edit of their standardisation or expected inputs would go unnoticed; "
                f"re-save them with a current lenskit from a copy you trust")
        if obj.config_checksum != node["config_checksum"]:
            raise LenskitFileError(
                f"model weights '{obj.architecture}': their configuration or metrics fail their checksum (stored "
                f"{node['config_checksum']}, computed {obj.config_checksum}); the file was edited or is corrupt")
        return obj


CONVERTERS = [ProvenanceConverter(), LensDatasetConverter(), EstimateConverter(), ModelWeightsConverter(),
              DeblendedConverter()]
