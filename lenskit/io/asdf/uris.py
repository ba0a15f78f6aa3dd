"""The URIs of lenskit's ASDF schemas, manifests and tags."""

__all__ = ["URI_PREFIX", "TAG"]

#: Prefix of every lenskit schema, manifest and tag URI.
URI_PREFIX = "asdf://lenskit.org/lenskit/"
#: Tag URI of a lenskit type (``TAG.format("lens_dataset")``).
TAG = URI_PREFIX + "tags/{}-1.0.0"
