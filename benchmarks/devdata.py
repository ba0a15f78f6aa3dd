"""
The development-data loader (not a benchmark): lenskit's validation lenses in ``../shared/data``.

The folder sits beside a lenskit checkout in the development setup only, so
this module lives with the benchmarks, not in the installed package; the
tests, ``benchmarks/slacs.py`` and the SLACS tutorial import it from here.
``LENSKIT_SHARED`` overrides the folder's location.
"""

import csv
import os
from pathlib import Path

from astropy.io import fits

from lenskit.io.fits import read_cutout

__all__ = ["shared_data", "slacs_sample"]

ROOT = Path(__file__).resolve().parents[1]


def shared_data():
    """The ``data`` folder of ../shared (or of ``$LENSKIT_SHARED``), or None when it is absent."""
    path = Path(os.environ.get("LENSKIT_SHARED", ROOT.parent / "shared")) / "data"
    return path if path.is_dir() else None


def slacs_sample(directory):
    """
    The SLACS lenses with published SIE parameters in lenskit's validation data, ready for `model_lens`.

    Reads ``lens_parameters.csv`` of a ``real_lenses`` folder laid out as in
    the development data (``../shared/data/real_lenses``: HST ACS F814W
    cutouts of SLACS lenses; Bolton et al. 2008, Table 5, b_SIE, q and PA east
    of north).  Real lenses are for validation only, never for training.

    Returns
    -------
    list of dict
        ``name``, ``cutout`` (`~lenskit.io.fits.Cutout`), ``lens_subtracted``
        (bool), ``theta_E`` (arcsec, b_SIE in lenskit's convention), ``q``,
        ``pa`` (deg east of north), ``z_lens``, ``z_source`` and ``psf``
        (the TinyTim PSF for cutouts without one).
    """
    root = Path(directory)
    table = root / "lens_parameters.csv"
    if not table.exists():
        raise FileNotFoundError(f"{table} does not exist (expected a lenskit real_lenses folder)")
    slacs = root / "slacs_acs_f814w"
    tiny = fits.getdata(slacs / "psf" / "tinytim_ACS.fits").astype(float)
    out, seen = [], set()
    with open(table, newline="") as f:
        for row in csv.DictReader(f):
            if not row["b_SIE_arcsec"] or row["lens"] in seen or not row["instrument_filter"].startswith("ACS"):
                continue
            src = row["image_file"]
            if src.startswith("slacs-match"):
                if "198x198" not in src:  # the 198 x 198 version of each 99 x 99 cutout covers the whole ring
                    continue
                path, kw = slacs / "198x198" / Path(src.split("[")[0]).name, {"hdu": 1}
            else:
                folder = slacs / Path(src).parent.name
                path = folder / Path(src).name
                prefix = "F814W_" if Path(src).name.startswith("F814W") else ""
                noise = sorted(folder.glob(f"{prefix}noise_map*.fits"))
                kw = {"noise": noise[0], "psf": folder / f"{prefix}psf.fits"}
            cut = read_cutout(path, pixel_scale=float(row["pixel_scale_arcsec"]), **kw)
            seen.add(row["lens"])
            out.append({"name": row["lens"], "cutout": cut, "lens_subtracted": "subtracted" in row["notes"],
                        "theta_E": float(row["b_SIE_arcsec"]), "q": float(row["q_SIE"]),
                        "pa": float(row["PA_SIE_deg_EofN"]), "z_lens": float(row["z_lens"]),
                        "z_source": float(row["z_source"]), "psf": tiny if cut.psf is None else None})
    return out
