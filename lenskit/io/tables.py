"""
lenskit's tables in astropy's unified I/O: estimates as ASDF, FITS or ECSV, and the "lenskit" table format.

`~lenskit.Estimate` writes and reads any of three formats, chosen by
``format=`` or by the file's suffix, each keeping units and provenance:

============  =========  ==========================================================
format        suffix     what is stored
============  =========  ==========================================================
asdf          .asdf      the `~lenskit.Estimate` itself (native, schema-validated)
fits          .fits      a binary table; provenance as JSON in the header (LKPROV)
ascii.ecsv    .ecsv      an ECSV table; provenance as JSON in its metadata
============  =========  ==========================================================

The format ``"lenskit"`` is also registered with `astropy.io.registry` for
`~astropy.table.QTable` and `~astropy.table.Table`: ``QTable.read(path,
format="lenskit")`` returns the table of any lenskit ASDF file that has one
(an estimate's predictions, a dataset's true parameters, a deblender's fitted
quantities) with its provenance in ``meta["lenskit_provenance"]``, and
``QTable.write(path, format="lenskit")`` stores a table as an estimate.
"""

import json

from astropy.io import registry
from astropy.table import QTable, Table

from lenskit.core import storage
from lenskit.core.estimate import Estimate
from lenskit.core.files import atomic_path
from lenskit.core.provenance import Provenance
from lenskit.core.validation import indefinite as _a
from lenskit.io.asdf import read as read_asdf
from lenskit.io.asdf import write as write_asdf
from lenskit.io.fits import read_estimate_fits, write_estimate_fits

__all__ = ["write_estimate_ecsv", "read_estimate_ecsv", "read_lenskit_table", "write_lenskit_table"]

PROVENANCE_KEY = "lenskit_provenance"


def _only_estimates(writer, fmt):
    def write(obj, path, overwrite=False):
        if not isinstance(obj, Estimate):
            name = getattr(path, "name", path)
            raise ValueError(f"path: {name} names a {fmt} table, which holds estimates; a "
                             f"{type(obj).__name__} is written as ASDF (name it .asdf or pass format='asdf')")
        return writer(obj, path, overwrite=overwrite)
    return write


def write_estimate_ecsv(estimate, path, overwrite=False):
    """Write an `~lenskit.Estimate` as ECSV (units kept, provenance as JSON in its meta), atomically."""
    t = QTable(estimate.table, copy=True)
    t.meta = {k: v for k, v in t.meta.items() if isinstance(v, (str, int, float, bool))}
    t.meta[PROVENANCE_KEY] = json.dumps(estimate.provenance.to_dict(), default=str)
    with atomic_path(path, overwrite=overwrite) as tmp:
        t.write(tmp, format="ascii.ecsv")


def read_estimate_ecsv(path):
    """Read an ECSV table written by `write_estimate_ecsv` back into an `~lenskit.Estimate`."""
    t = QTable.read(path, format="ascii.ecsv")
    prov = t.meta.pop(PROVENANCE_KEY, None)
    return Estimate(t, provenance=Provenance.from_dict(json.loads(prov)) if prov else None)


def read_lenskit_table(path, **kwargs):
    """The table of a lenskit ASDF file (an estimate, dataset or deblended result), provenance in ``meta``."""
    path = getattr(path, "name", path)  # astropy may hand over the file it opened to identify the format
    obj = read_asdf(path)
    table = getattr(obj, "table", None)
    if table is None:
        table = getattr(obj, "params", None)
    if table is None:
        raise TypeError(f"{path} holds {_a(type(obj).__name__)}, which has no table")
    out = QTable(table, copy=True)
    out.meta[PROVENANCE_KEY] = obj.provenance.to_dict()
    return out


def write_lenskit_table(table, path, overwrite=False, **kwargs):
    """Store an astropy table (of estimates) as a lenskit `~lenskit.Estimate` in ASDF."""
    path = getattr(path, "name", path)
    prov = dict(table.meta).get(PROVENANCE_KEY)
    write_asdf(Estimate(QTable(table, copy=True), provenance=prov), path, overwrite=overwrite)


def _is_lenskit_asdf(origin, path, fileobj, *args, **kwargs):
    name = path if isinstance(path, str) else getattr(fileobj, "name", None)
    return isinstance(name, str) and name.lower().endswith(".asdf")


storage.register("fits", read_estimate_fits, _only_estimates(write_estimate_fits, "fits"))
storage.register("ascii.ecsv", read_estimate_ecsv, _only_estimates(write_estimate_ecsv, "ascii.ecsv"))
for cls in (QTable, Table):
    known = registry.get_formats(cls)[["Format", "Data class"]]
    if "lenskit" not in {f for f, c in known if c == cls.__name__}:
        registry.register_reader("lenskit", cls, read_lenskit_table)
        registry.register_writer("lenskit", cls, write_lenskit_table)
        registry.register_identifier("lenskit", cls, _is_lenskit_asdf)
