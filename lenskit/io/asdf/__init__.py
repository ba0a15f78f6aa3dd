"""
ASDF input and output for lenskit products.

Files hold one lenskit object under a root key named after its kind
(``lens_dataset``, ``estimate``, ``deblended``, ``model_weights``).  Writing is atomic (a
temporary file renamed into place); reading validates the whole tree against
lenskit's schemas and turns every failure into a
`~lenskit.core.LenskitFileError` that names the file and the problem.
"""

import re
import warnings
from pathlib import Path

import asdf
from asdf.exceptions import AsdfConversionWarning, ValidationError

from lenskit.core import storage
from lenskit.core.dataset import LensDataset
from lenskit.core.exceptions import LenskitCorruptFileError, LenskitFileError
from lenskit.core.files import atomic_open
from lenskit.core.provenance import array_checksum
from lenskit.io.asdf.converters import CONVERTERS
from lenskit.io.asdf.preflight import check_header
from lenskit.io.asdf.uris import URI_PREFIX

__all__ = ["read", "write", "ROOT_KEYS"]

ROOT_KEYS = {
    "LensDataset": "lens_dataset",
    "Estimate": "estimate",
    "ModelWeights": "model_weights",
    "Deblended": "deblended",
}


def write(obj, path, overwrite=False, extra=None):
    """
    Write a lenskit object to an ASDF file atomically.

    Parameters
    ----------
    obj : `~lenskit.LensDataset`, `~lenskit.Estimate`, `~lenskit.core.Deblended` or `~lenskit.core.ModelWeights`
    path : str or path-like
    overwrite : bool
        Replace an existing file (the old file stays intact if writing fails).
    extra : dict, optional
        Additional top-level entries (JSON-like) to store beside the object.
    """

    key = ROOT_KEYS.get(type(obj).__name__)
    if key is None:
        raise TypeError(f"obj must be one of {sorted(ROOT_KEYS)}; got {type(obj).__name__}")
    path = Path(path)
    if path.suffix.lower() in (".fits", ".fit", ".fts", ".fz") or path.name.lower().endswith(".fits.gz"):
        raise ValueError(f"path: {path.name} names a FITS file, but this writes ASDF; name it .asdf (FITS tables of "
                         f"estimates: lenskit.io.fits.write_estimate_fits)")
    tree = {key: obj}
    tree.update(extra or {})
    with atomic_open(path, "wb", overwrite=overwrite) as f:
        with asdf.AsdfFile(tree) as af:
            af.write_to(f, all_array_storage="internal")


def read(path):
    """
    Read the lenskit object stored in an ASDF file.

    The file is validated against its schema (wrong types, shapes or missing
    entries), a truncated or corrupt file is reported, and a tag written by a
    newer or unknown version of lenskit is an error rather than a silent
    conversion to raw data.

    Returns
    -------
    `~lenskit.LensDataset`, `~lenskit.Estimate`, `~lenskit.core.Deblended` or `~lenskit.core.ModelWeights`
    """

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; expected a lenskit .asdf file")
    if path.stat().st_size == 0:
        raise LenskitFileError(f"{path} is empty")
    check_header(path)  # size, alias expansion and external arrays, before asdf walks the tree
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AsdfConversionWarning)
        try:
            with asdf.open(path, lazy_load=False, memmap=False, validate_checksums=True) as af:
                af.validate()
                tree = dict(af.tree)
                found = {k: tree[k] for k in ROOT_KEYS.values() if k in tree}
        except ValidationError as exc:
            raise LenskitFileError(f"{path} does not follow its lenskit schema: {_first_line(exc)}") from exc
        except LenskitFileError as exc:
            raise type(exc)(f"{path}: {exc}") from exc
        except ValueError as exc:
            if "checksum" in str(exc).lower():
                raise LenskitCorruptFileError(
                    f"{path} is corrupt: an array block does not match its checksum ({_first_line(exc)})") from exc
            raise LenskitFileError(f"{path} holds invalid lenskit data: {exc}") from exc
        except TypeError as exc:
            raise LenskitFileError(f"{path} holds invalid lenskit data: {exc}") from exc
        except Exception as exc:
            raise LenskitFileError(
                f"{path} could not be read as ASDF (truncated or corrupt?): {type(exc).__name__}: {exc}") from exc
    for w in caught:
        if issubclass(w.category, AsdfConversionWarning):
            raise LenskitFileError(_conversion_problem(path, w.message))
    for w in caught:  # re-emit anything else
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not found:
        raise LenskitFileError(f"{path} holds no lenskit object (expected one of {sorted(ROOT_KEYS.values())})")
    if len(found) > 1:
        raise LenskitFileError(f"{path} holds several lenskit objects {sorted(found)}; expected one")
    obj = next(iter(found.values()))
    _verify_checksums(path, obj)
    return obj


def _conversion_problem(path, message):
    """Why asdf could not convert a tagged node: an unknown (newer) lenskit tag, or a damaged known one."""

    known = {t for c in CONVERTERS for t in c.tags}
    text = _first_line(message)
    tags = re.findall(re.escape(URI_PREFIX) + r"tags/[\w.-]+", str(message))
    if any(t not in known for t in tags):
        return (f"{path} uses a lenskit tag this lenskit cannot read ({text}); it was written by a newer lenskit: "
                f"upgrade lenskit to read it")
    return f"{path} holds data lenskit cannot convert (corrupt or edited?): {text}"


def _verify_checksums(path, obj):
    """Compare the images with the SHA-256 their provenance records (written by `write`)."""

    if isinstance(obj, LensDataset):
        stored = obj.provenance.checksums.get("images")
        if stored is not None and stored != array_checksum(obj.images):
            raise LenskitCorruptFileError(
                f"{path} is corrupt: its images do not match the SHA-256 in its provenance ({stored})")


storage.register("asdf", read, write)  # the write / read methods of lenskit's value types use these


def _first_line(exc):
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
