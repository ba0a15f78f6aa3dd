"""Galaxies from a folder of FITS stamps."""

from pathlib import Path

from lenskit.core.headers import header_pixel_scale
from lenskit.io.fits import read_image
from lenskit.sources.stamps import StampSource

__all__ = ["ImageDirectorySource"]


class ImageDirectorySource(StampSource):
    """
    Galaxies from a folder of FITS stamps, one galaxy per file.

    Parameters
    ----------
    directory : path
        The folder.
    pixel_scale : float, optional
        Arcsec per pixel; otherwise read from each header by lenskit's one
        policy (`lenskit.core.headers`: a celestial WCS, else ``PIXSCALE``,
        ``PIXSCAL``, ``PIXELSCL`` or ``PIXEL_SCALE``).
    pattern : str
        Glob pattern of the stamps inside ``directory``; default ``"*.fits"``
        (``"*/data.fits"`` reads one sub-folder per galaxy).
    hdu : int
        HDU of the image.  Default 0.
    **kwargs
        Options of `~lenskit.sources.stamps.StampSource`.

    The galaxy identity is the file's path relative to ``directory``,
    without its suffix.
    """

    name = "image_directory"

    def __init__(self, directory, pixel_scale=None, pattern="*.fits", hdu=0, **kwargs):
        super().__init__(**kwargs)
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise FileNotFoundError(f"directory {self.directory} does not exist")
        self.files = sorted(self.directory.glob(pattern))
        if not self.files:
            raise ValueError(f"directory {self.directory} holds no file matching {pattern!r}")
        if pixel_scale is not None and not pixel_scale > 0:
            raise ValueError(f"pixel_scale must be > 0 arcsec; got {pixel_scale}")
        self.pixel_scale = pixel_scale
        self.hdu = hdu

    def _scale(self, header, path):
        if self.pixel_scale is not None:
            return float(self.pixel_scale)
        scale = header_pixel_scale(header, where=str(path))  # lenskit's one policy: WCS, then keywords
        if scale is None:
            raise ValueError(f"{path}: no pixel scale in the header; pass pixel_scale=")
        return scale

    def _read(self):
        for path in self.files:
            data, header = read_image(path, self.hdu)
            ident = str(path.relative_to(self.directory).with_suffix(""))
            yield ident, data, self._scale(header, path), str(path), None
