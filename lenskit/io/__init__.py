"""Reading and writing lenskit products (ASDF natively, FITS for real data)."""

from pathlib import Path

import numpy as np

from lenskit.core.exceptions import LenskitFileError
from lenskit.io.asdf import read, write  # noqa: F401

__all__ = ["read", "write", "read_images"]


def read_images(path, as_cube=True):
    """
    Images from a `~lenskit.LensDataset` ``.asdf`` file or a FITS image / cube.

    Parameters
    ----------
    path : path
    as_cube : bool
        Return FITS data as (N, bands, H, W): a 2-D image is one single-band
        cutout, a 3-D cube N single-band cutouts.  Otherwise as stored.

    Returns
    -------
    `~lenskit.LensDataset` or `numpy.ndarray` (float32)
    """
    from lenskit.core.dataset import LensDataset
    from lenskit.io.asdf import read

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix == ".asdf":
        obj = read(path)
        if not isinstance(obj, LensDataset):
            raise TypeError(f"{path} holds a {type(obj).__name__}, not a LensDataset")
        return obj
    if path.suffix.lower() in (".fits", ".fit", ".fz") or path.name.lower().endswith(".fits.gz"):
        from astropy.io import fits

        try:
            with fits.open(path, memmap=False) as hl:
                hdu = next((h for h in hl if h.data is not None and np.ndim(h.data) >= 2), None)
                if hdu is None:
                    raise LenskitFileError(f"{path} holds no image")
                if np.asarray(hdu.data).dtype.kind not in "iuf":
                    raise LenskitFileError(f"{path} holds {np.asarray(hdu.data).dtype} pixels; expected real "
                                           f"numbers")
                data = np.asarray(hdu.data, dtype=np.float32)
        except LenskitFileError:
            raise
        except Exception as exc:
            raise LenskitFileError(f"{path} could not be read as FITS: {type(exc).__name__}: {exc}") from exc
        if not as_cube:
            return data
        if data.ndim == 2:
            data = data[None, None]
        elif data.ndim == 3:
            data = data[:, None]
        elif data.ndim != 4:
            raise LenskitFileError(f"{path} holds a {data.ndim}-D image; expected (H, W), (N, H, W) or (N, B, H, W)")
        return data
    raise ValueError(f"{path}: expected a .asdf dataset or a .fits image / cube")
