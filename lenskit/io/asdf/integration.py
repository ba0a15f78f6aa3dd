"""Entry points through which asdf finds lenskit's extension and schemas."""

from pathlib import Path

from asdf.extension import ManifestExtension
from asdf.resource import DirectoryResourceMapping

from lenskit.io.asdf.converters import CONVERTERS
from lenskit.io.asdf.uris import URI_PREFIX

RESOURCES = Path(__file__).parent / "resources"


def get_resource_mappings():
    """Map lenskit's schema and manifest URIs to the YAML files shipped in the package."""
    return [
        DirectoryResourceMapping(RESOURCES / "schemas", URI_PREFIX + "schemas/"),
        DirectoryResourceMapping(RESOURCES / "manifests", URI_PREFIX + "manifests/"),
    ]


def get_extensions():
    """The lenskit ASDF extension, built from its manifest."""
    return [ManifestExtension.from_uri(URI_PREFIX + "manifests/lenskit-1.0.0", converters=CONVERTERS)]
