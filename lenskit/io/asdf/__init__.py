"""
ASDF input and output for lenskit products.

Files hold one lenskit object under a root key named after its kind
(``lens_dataset``, ``estimate``, ``deblended``, ``model_weights``).  Writing is atomic (a
temporary file renamed into place); reading validates the whole tree against
lenskit's schemas and turns every failure into a
`~lenskit.core.LenskitFileError` that names the file and the problem.
"""

import os
import tempfile
import warnings
from pathlib import Path

from lenskit.core.exceptions import LenskitFileError

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
    import asdf

    key = ROOT_KEYS.get(type(obj).__name__)
    if key is None:
        raise TypeError(f"obj must be one of {sorted(ROOT_KEYS)}; got {type(obj).__name__}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    if not path.parent.exists():
        raise FileNotFoundError(f"directory {path.parent} does not exist")
    tree = {key: obj}
    tree.update(extra or {})
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with asdf.AsdfFile(tree) as af:
            af.write_to(tmp, all_array_storage="internal")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
    import asdf
    from asdf.exceptions import AsdfConversionWarning, ValidationError

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.stat().st_size == 0:
        raise LenskitFileError(f"{path} is empty")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AsdfConversionWarning)
        try:
            with asdf.open(path, lazy_load=False, memmap=False) as af:
                af.validate()
                tree = dict(af.tree)
                found = {k: tree[k] for k in ROOT_KEYS.values() if k in tree}
        except ValidationError as exc:
            raise LenskitFileError(f"{path} does not follow its lenskit schema: {_first_line(exc)}") from exc
        except LenskitFileError as exc:
            raise LenskitFileError(f"{path}: {exc}") from exc
        except (ValueError, TypeError) as exc:
            raise LenskitFileError(f"{path} holds invalid lenskit data: {exc}") from exc
        except Exception as exc:
            raise LenskitFileError(
                f"{path} could not be read as ASDF (truncated or corrupt?): {type(exc).__name__}: {exc}"
            ) from exc
    unknown = [w for w in caught if issubclass(w.category, AsdfConversionWarning)]
    if unknown:
        raise LenskitFileError(
            f"{path} uses a tag this lenskit cannot read ({_first_line(unknown[0].message)}); it may have "
            f"been written by a newer lenskit: upgrade lenskit to read it")
    for w in caught:  # re-emit anything else
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not found:
        raise LenskitFileError(f"{path} holds no lenskit object (expected one of {sorted(ROOT_KEYS.values())})")
    if len(found) > 1:
        raise LenskitFileError(f"{path} holds several lenskit objects {sorted(found)}; expected one")
    return next(iter(found.values()))


def _first_line(exc):
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
