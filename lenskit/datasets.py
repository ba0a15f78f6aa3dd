"""
Locate and download public data: archives of real galaxies, and real lenses to validate on.

The archives are far too large to ship: this module fetches them into a
cache folder on first use, verifies them, and finds them again afterwards::

    import lenskit.datasets as lds
    lds.available()                       # what can be fetched
    folder = lds.fetch("cosmos_23.5")     # downloads (once), verifies, unpacks
    src = lenskit.get("source", "great3")(lds.catalog("cosmos_23.5"))

    lenses = lds.slacs_lenses()           # eight real SLACS lenses (HST ACS F814W, ~6 MB) with their
                                          # published SIE parameters, ready for lenskit.modelling.model_lens

Settings (arguments, or environment variables):

``LENSKIT_DATA_DIR``
    The cache folder; default ``$XDG_CACHE_HOME/lenskit`` (``~/.cache/lenskit``).
``LENSKIT_OFFLINE=1``
    Never download: a missing archive is an error that says where to put it.
``LENSKIT_DATA_MIRROR``
    A base URL (``https://``, ``http://`` or ``file://``) that replaces each
    archive's host: ``<mirror>/<file name>``, or ``<mirror>/<folder>/<file
    name>`` for an archive with a ``folder``; for sites that mirror the data.

Integrity: each archive is checked against its SHA-256 where the registry
records one, or against the MD5 its publisher gives.  None of the upstream
galaxy archives has a published checksum that lenskit could record, so a first
download is unverified, and says so (`~lenskit.core.LenskitDataWarning`): the
SHA-256 of what arrived is pinned beside the file (``<file>.sha256``) and every
later use is checked against it.  An archive without any checksum is never
fetched over plain ``http://``.  Downloads go to a temporary file that is renamed
into place only once complete and verified; archives are unpacked into a
temporary folder that is renamed into place, with tar's ``data`` filter
(no absolute paths, links out of the folder or device files).

Galaxy Zoo images need the user's own download (Kaggle's terms): point
`lenskit.sources.galaxy_zoo.GalaxyZooSource` at the folder.
"""

import dataclasses
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

from astropy.io import fits
from tqdm.auto import tqdm

from lenskit.core.exceptions import LenskitDataWarning, LenskitFileError
from lenskit.core.files import atomic_open, atomic_path
from lenskit.io.fits import read_cutout

__all__ = ["Archive", "REGISTRY", "available", "register", "cache_dir", "path", "fetch", "catalog", "sha256_of",
           "SLACS_LENSES", "slacs_lenses"]


@dataclasses.dataclass(frozen=True)
class Archive:
    """
    A downloadable archive.

    Attributes
    ----------
    url : str
        Where to get it (``https://``, ``http://`` or ``file://``).
    sha256 : str or None
        Expected SHA-256 (hex); None where nobody has recorded one.
    md5 : str or None
        The MD5 the publisher gives (Zenodo publishes one per file), checked
        on download where no SHA-256 is recorded.
    unpack : bool
        Whether the file is a tar archive to unpack.
    catalog : str or None
        Path of the galaxy catalogue inside the unpacked folder.
    description : str
    folder : str or None
        For a file that is not unpacked: the folder (relative, ``/``-separated)
        it is kept in, inside the cache and under a mirror, so that files of
        the same name from different places do not collide.
    """

    url: str
    sha256: str | None = None
    md5: str | None = None
    unpack: bool = True
    catalog: str | None = None
    description: str = ""
    folder: str | None = None

    def __post_init__(self):
        # checked when the archive is described, not after a download of gigabytes fails its checksum
        if not isinstance(self.url, str):
            raise TypeError(f"url must be a str; got {type(self.url).__name__}")
        parts = urllib.parse.urlparse(self.url)
        if parts.scheme not in ("https", "http", "file") or not Path(parts.path).name:
            raise ValueError(f"url must be an https://, http:// or file:// address of a file; got {self.url!r}")
        for name, n in (("sha256", 64), ("md5", 32)):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or len(value) != n
                                      or any(c not in "0123456789abcdefABCDEF" for c in value)):
                raise ValueError(f"{name} must be None or {n} hexadecimal digits; got {value!r}")
            if value is not None:
                object.__setattr__(self, name, value.lower())  # hexdigest() is lower case
        if self.folder is not None:
            parts = self.folder.split("/") if isinstance(self.folder, str) else None
            if not parts or any(p in ("", ".", "..") or "\\" in p for p in parts):
                raise ValueError(f"folder must be a relative path of named folders separated by '/'; "
                                 f"got {self.folder!r}")
            if self.unpack:
                raise ValueError("folder is for a file that is not unpacked (unpack=False); an unpacked archive "
                                 "has a folder of its own")

    @property
    def filename(self):
        return urllib.parse.unquote(Path(urllib.parse.urlparse(self.url).path).name)

    @property
    def relative_path(self):
        """Where the file sits inside the cache (and under a mirror): ``folder/filename``, or the file name."""
        return f"{self.folder}/{self.filename}" if self.folder else self.filename


#: The public archives lenskit knows.
REGISTRY = {
    "cosmos_23.5": Archive(
        url="https://zenodo.org/records/3242143/files/COSMOS_23.5_training_sample.tar.gz",
        catalog="COSMOS_23.5_training_sample/real_galaxy_catalog_23.5.fits",
        description="GalSim COSMOS HST/ACS F814W training sample to I < 23.5 (Mandelbaum et al.), "
                    "RealGalaxyCatalog format, ~56,000 galaxies, ~4 GB"),
    "cosmos_25.2": Archive(
        url="https://zenodo.org/records/3242143/files/COSMOS_25.2_training_sample.tar.gz",
        catalog="COSMOS_25.2_training_sample/real_galaxy_catalog_25.2.fits",
        description="GalSim COSMOS HST/ACS F814W training sample to I < 25.2 (the GREAT3 galaxies), "
                    "RealGalaxyCatalog format, ~87,000 galaxies, ~4 GB"),
    "candels_goodss_f160w": Archive(
        url="https://archive.stsci.edu/pub/hlsp/candels/goods-s/gs-tot/v1.0/"
            "hlsp_candels_hst_wfc3_gs-tot_f160w_v1.0_drz.fits",
        unpack=False,
        description="CANDELS GOODS-S WFC3 F160W mosaic (Koekemoer et al. 2011), 0.06\"/px; "
                    "pair it with a catalogue for the candels source"),
}


def available():
    """Name -> description of every registered archive."""
    return {k: v.description for k, v in REGISTRY.items()}


def register(name, archive):
    """Add an archive to the registry (for a mirror of your own data, or in tests)."""
    if not isinstance(archive, Archive):
        raise TypeError(f"archive must be an Archive; got {type(archive).__name__}")
    REGISTRY[str(name)] = archive


def _get(name):
    if name not in REGISTRY:
        raise ValueError(f"unknown archive {name!r}; available: {sorted(REGISTRY)}")
    return REGISTRY[name]


def cache_dir(cache=None):
    """The cache folder (created if needed)."""
    if cache is None:
        cache = os.environ.get("LENSKIT_DATA_DIR")
    if cache is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        cache = os.path.join(base, "lenskit")
    p = Path(cache)
    p.mkdir(parents=True, exist_ok=True)
    return p


def sha256_of(file, chunk=1 << 20):
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _target(name, cache):
    a = _get(name)
    base = cache_dir(cache)
    if a.unpack:
        return base / name, base / a.filename
    return base / a.relative_path, base / a.relative_path


def path(name, cache=None):
    """The local path of an archive if it is present (unpacked), else None; never downloads."""
    target, _ = _target(name, cache)
    return target if target.exists() else None


def _expected(name, download):
    a = _get(name)
    if a.sha256:
        return a.sha256.lower()
    side = download.with_name(download.name + ".sha256")
    return side.read_text().split()[0] if side.exists() else None


def _download(url, dest, progress):
    """Stream ``url`` into ``dest`` (a temporary path); returns the SHA-256 and MD5 of what arrived."""
    h, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    req = urllib.request.Request(url, headers={"User-Agent": "lenskit"})
    with urllib.request.urlopen(req, timeout=60) as resp, open(dest, "wb") as out:
        total = int(resp.headers.get("Content-Length") or 0) or None
        bar = None
        if progress:
            bar = tqdm(total=total, unit="B", unit_scale=True,
                       desc=f"downloading {urllib.parse.unquote(Path(url).name)}")
        got = 0
        while True:
            block = resp.read(1 << 20)
            if not block:
                break
            out.write(block)
            h.update(block)
            md5.update(block)
            got += len(block)
            if bar is not None:
                bar.update(len(block))
        if bar is not None:
            bar.close()
    if total is not None and got != total:
        raise LenskitFileError(f"the download from {url} stopped after {got} of {total} bytes")
    return h.hexdigest(), md5.hexdigest()


def fetch(name, cache=None, offline=None, mirror=None, progress=True):
    """
    Return the local path of an archive, downloading, verifying and unpacking it if needed.

    Parameters
    ----------
    name : str
        A key of `REGISTRY`.
    cache : path, optional
        Cache folder (default `cache_dir`).
    offline : bool, optional
        Never download (default from ``LENSKIT_OFFLINE``).
    mirror : str, optional
        Base URL replacing the archive's host (default from ``LENSKIT_DATA_MIRROR``).
    progress : bool
        Show a progress bar.

    Returns
    -------
    pathlib.Path
        The unpacked folder, or the file for archives that are not unpacked.

    Raises
    ------
    LenskitFileError
        Offline and absent, a checksum mismatch, or a broken archive; nothing
        half-written is left behind.
    """
    a = _get(name)
    target, download = _target(name, cache)
    if offline is None:
        offline = os.environ.get("LENSKIT_OFFLINE", "").strip().lower() in ("1", "true", "yes")
    mirror = mirror if mirror is not None else os.environ.get("LENSKIT_DATA_MIRROR")
    if target.exists() and (a.unpack or _verify(name, download, quiet=True)):
        return target
    if not download.exists():
        if offline:
            raise LenskitFileError(
                f"archive {name!r} is not in the cache and lenskit is offline: download {a.url} and place it at "
                f"{download} (or unset LENSKIT_OFFLINE)")
        url = mirror.rstrip("/") + "/" + urllib.parse.quote(a.relative_path) if mirror else a.url
        expected = _expected(name, download)
        scheme = urllib.parse.urlparse(url).scheme
        if scheme not in ("https", "http", "file"):
            raise ValueError(f"mirror must be an https://, http:// or file:// URL; got {url!r}")
        if scheme == "http" and expected is None and not a.md5:
            raise LenskitFileError(
                f"archive {name!r} has no recorded checksum, so it is not downloaded over plain http ({url}): "
                f"use an https:// or file:// mirror, or record its sha256 with lenskit.datasets.register")
        download.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(download, overwrite=True, name="archive") as tmp:
            try:
                digest, md5 = _download(url, tmp, progress)
            except OSError as exc:
                raise LenskitFileError(f"could not download archive {name!r} from {url}: {exc}") from exc
            if expected and digest != expected:
                raise LenskitFileError(f"archive {name!r} from {url} fails its checksum: expected sha256 "
                                       f"{expected}, got {digest}; the download was discarded")
            if a.md5 and md5 != a.md5.lower():
                raise LenskitFileError(f"archive {name!r} from {url} fails the publisher's checksum: expected md5 "
                                       f"{a.md5}, got {md5}; the download was discarded")
        if expected is None:  # trust on first use: pin what was seen for every later use
            with atomic_open(download.with_name(download.name + ".sha256"), "w", overwrite=True) as f:
                f.write(f"{digest}  {download.name}\n")
            if not a.md5:
                warnings.warn(
                    f"archive {name!r}: its publisher gives no checksum, so this first download from {url} is "
                    f"unverified; its sha256 {digest} is pinned in {download}.sha256 and every later use is "
                    f"checked against it", LenskitDataWarning, stacklevel=2)
    else:
        _verify(name, download)
    if a.unpack:
        _unpack(name, download, target)
    return target


def _verify(name, download, quiet=False):
    expected = _expected(name, download)
    if expected is None:
        return True
    got = sha256_of(download)
    if got != expected:
        if quiet:
            return False
        raise LenskitFileError(f"cached archive {download} fails its checksum (expected sha256 {expected}, got {got});"
                               f" delete it to download it again")
    return True


def _unpack(name, archive, target):
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        try:
            with tarfile.open(archive) as tf:
                tf.extractall(tmpdir, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise LenskitFileError(f"archive {archive} could not be unpacked: {exc}") from exc
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmpdir, target)
    finally:
        if tmpdir.exists():
            shutil.rmtree(tmpdir, ignore_errors=True)


def catalog(name, cache=None, **kwargs):
    """Path of an archive's galaxy catalogue (fetching the archive if needed)."""
    a = _get(name)
    if a.catalog is None:
        raise ValueError(f"archive {name!r} has no catalogue")
    return fetch(name, cache=cache, **kwargs) / a.catalog


# ----------------------------------------------------------------------------------------------------------------
# Real lenses to validate on

_SLACS_MATCH = "https://raw.githubusercontent.com/phdenzel/slacs-match/d02fd4ae30cd919b8181b63987373f841c233a44/"
_AUTOLENS_COPY = ("https://raw.githubusercontent.com/jonathanfrawley/autolens_workspace_copy/"
                  "1d18901547b495fac9deb542dcc3fe9d48b0d0ac/dataset/slacs/")
_AUTOLENS_TEST = "https://raw.githubusercontent.com/Jammy2211/autolens_workspace_test/"
_SLACS_FOLDER = "real_lenses/slacs_acs_f814w"

#: The files of `slacs_lenses`: (folder under ``real_lenses/slacs_acs_f814w``, URL, SHA-256); each file keeps
#: its URL's name.
#: HST ACS F814W cutouts at 0.05" per pixel from phdenzel/slacs-match (GPL-3.0: drizzled, north-up, with
#: a WCS; the TinyTim PSF) and from the PyAutoLens workspaces (MIT: with noise maps and PSFs, no WCS),
#: each at a fixed commit.
_SLACS_FILES = (
    ("198x198", _SLACS_MATCH + "data/198x198/SDSSJ0029-0055.fits",
     "6916843dd0b89f4a8ccf877389d6fe09326df2509f08d369afc3d384a13b62cd"),
    ("198x198", _SLACS_MATCH + "data/198x198/SDSSJ0737%2B3216.fits",
     "def94592ee59221afd248b39467bf0c75710ca23163be5de1f1d1765cc7d4227"),
    ("198x198", _SLACS_MATCH + "data/198x198/SDSSJ0956%2B5100.fits",
     "33ffac3d1c8e6c0c7ec495fc86ca8ff3c5466abdcc5e0dd43a3a9211f4fde8d7"),
    ("198x198", _SLACS_MATCH + "data/198x198/SDSSJ1627-0053.fits",
     "22ca36f27b47db315dc4edf60cadbe9a0760fe1f906f5051fc5095be81f2ef0d"),
    ("psf", _SLACS_MATCH + "psf/tinytim_ACS.fits",
     "505088d50b902b47aeccbcefce98ab88046485aac946f40f1e2b8446872138b9"),
    ("slacs1430+4105", _AUTOLENS_COPY + "slacs1430%2B4105/image.fits",
     "d3e98e13144f6772378811557b054cf153ca71bf8eea8f3d9dde58327b71b6bb"),
    ("slacs1430+4105", _AUTOLENS_COPY + "slacs1430%2B4105/noise_map.fits",
     "13f53c7fd0614d6854057e0fb489570ee150e1d7afd65a0ae22acb9ea1ec05e2"),
    ("slacs1430+4105", _AUTOLENS_COPY + "slacs1430%2B4105/psf.fits",
     "b96a9a6a23517d79a791f13e682a17fc9b77c3f1581ac187380a277b93de4c36"),
    ("slacs2303+1422", _AUTOLENS_COPY + "slacs2303%2B1422/image.fits",
     "319beacfcede0602a643d660c975671a26343a12a2e0c06aef4f053844ccd56a"),
    ("slacs2303+1422", _AUTOLENS_COPY + "slacs2303%2B1422/noise_map.fits",
     "f0eac86a915cba408cd60e292a48c28579ef013e0f04e2feac4dcaf0f9cc8080"),
    ("slacs2303+1422", _AUTOLENS_COPY + "slacs2303%2B1422/psf.fits",
     "b0c3fbc931fbe02af3128cbb1a2e2079a483069ed85f697eee525e56f006b1d9"),
    ("slacs0728+3835",
     _AUTOLENS_TEST + "0ce7e3e0c190a1e79ac3ccddac07eb79b75d5ff9/dataset/slacs0728%2B3835/F814W_image.fits",
     "e8b220f034766f4016ad8079d8e6aedd19cd735b950397d5c3b448679cc6ce93"),
    ("slacs0728+3835",
     _AUTOLENS_TEST + "0ce7e3e0c190a1e79ac3ccddac07eb79b75d5ff9/dataset/slacs0728%2B3835/F814W_noise_map.fits",
     "8958f8f36207318c625547060b8768895ea3c0bcdf73c1bfd7f91a291c5bef72"),
    ("slacs0728+3835",
     _AUTOLENS_TEST + "0ce7e3e0c190a1e79ac3ccddac07eb79b75d5ff9/dataset/slacs0728%2B3835/F814W_psf.fits",
     "c82b29354e010506a21bffab6344ac3978f581de1e7f2edbd7a58c46f8069b45"),
    ("slacs0946+1006", _AUTOLENS_TEST + "7d99d6274cc1498505b5659787f89d7475092d0b/likelihood_pool/slacs0946%2B1006/"
                      "image_lens_light_scaled.fits",
     "af99a99c773245f54747b2b89835b7f5adc75ec06af375f162b088c4fd0ce0b4"),
    ("slacs0946+1006", _AUTOLENS_TEST + "7d99d6274cc1498505b5659787f89d7475092d0b/likelihood_pool/slacs0946%2B1006/"
                      "noise_map_scaled.fits",
     "1f2d06fbee2dc0d1608ef5e153df56b77d75c566c22f5e4a63ef9a671a778000"),
    ("slacs0946+1006", _AUTOLENS_TEST + "7d99d6274cc1498505b5659787f89d7475092d0b/likelihood_pool/slacs0946%2B1006/psf.fits",
     "d517253f9b70d62534304657aeeefad4781686f619336bde372a3e58c3d3ae92"),
)

for _folder, _url, _sha in _SLACS_FILES:
    _archive = Archive(url=_url, sha256=_sha, unpack=False, folder=f"{_SLACS_FOLDER}/{_folder}",
                       description="SLACS lens, HST ACS F814W at 0.05\"/px (lenskit.datasets.slacs_lenses)")
    REGISTRY[f"slacs/{_folder}/{_archive.filename}"] = _archive
del _folder, _url, _sha, _archive

#: The SLACS lenses of `slacs_lenses`, with the SIE parameters Bolton et al. (2008, ApJ 682, 964, Table 5)
#: published: ``theta_E`` is their b_SIE (arcsec), whose intermediate-axis normalisation is lenskit's;
#: ``pa`` the major axis in degrees east of north.  ``image``, ``noise`` and ``psf`` are `REGISTRY` keys;
#: ``hdu`` the image's HDU; ``lens_subtracted``: the lens galaxy's light was removed by the cutout's authors.
SLACS_LENSES = (
    {"name": "SDSSJ0029-0055", "theta_E": 0.96, "q": 0.89, "pa": 25.4, "z_lens": 0.227, "z_source": 0.931,
     "image": "slacs/198x198/SDSSJ0029-0055.fits", "hdu": 1},
    {"name": "SDSSJ0737+3216", "theta_E": 1.00, "q": 0.67, "pa": 98.8, "z_lens": 0.322, "z_source": 0.581,
     "image": "slacs/198x198/SDSSJ0737+3216.fits", "hdu": 1},
    {"name": "SDSSJ0956+5100", "theta_E": 1.33, "q": 0.63, "pa": 146.2, "z_lens": 0.241, "z_source": 0.470,
     "image": "slacs/198x198/SDSSJ0956+5100.fits", "hdu": 1},
    {"name": "SDSSJ1627-0053", "theta_E": 1.23, "q": 0.91, "pa": 10.5, "z_lens": 0.208, "z_source": 0.524,
     "image": "slacs/198x198/SDSSJ1627-0053.fits", "hdu": 1},
    {"name": "SDSSJ1430+4105", "theta_E": 1.52, "q": 0.68, "pa": 111.7, "z_lens": 0.285, "z_source": 0.575,
     "image": "slacs/slacs1430+4105/image.fits", "noise": "slacs/slacs1430+4105/noise_map.fits",
     "psf": "slacs/slacs1430+4105/psf.fits"},
    {"name": "SDSSJ2303+1422", "theta_E": 1.62, "q": 0.61, "pa": 35.3, "z_lens": 0.155, "z_source": 0.517,
     "image": "slacs/slacs2303+1422/image.fits", "noise": "slacs/slacs2303+1422/noise_map.fits",
     "psf": "slacs/slacs2303+1422/psf.fits", "lens_subtracted": True},
    {"name": "SDSSJ0728+3835", "theta_E": 1.25, "q": 0.85, "pa": 67.6, "z_lens": 0.206, "z_source": 0.688,
     "image": "slacs/slacs0728+3835/F814W_image.fits", "noise": "slacs/slacs0728+3835/F814W_noise_map.fits",
     "psf": "slacs/slacs0728+3835/F814W_psf.fits"},
    {"name": "SDSSJ0946+1006", "theta_E": 1.38, "q": 0.81, "pa": 159.2, "z_lens": 0.222, "z_source": 0.609,
     "image": "slacs/slacs0946+1006/image_lens_light_scaled.fits",
     "noise": "slacs/slacs0946+1006/noise_map_scaled.fits", "psf": "slacs/slacs0946+1006/psf.fits"},
)

_TINYTIM = "slacs/psf/tinytim_ACS.fits"
_SLACS_PIXEL_SCALE = 0.05


def slacs_lenses(directory=None, cache=None, offline=None, mirror=None, progress=True):
    """
    Eight real SLACS lenses with published SIE parameters, as cutouts ready for `~lenskit.modelling.model_lens`.

    HST ACS F814W images at 0.05" per pixel: four drizzled 198 x 198 cutouts
    with a north-up WCS (SDSS J0029-0055, J0737+3216, J0956+5100, J1627-0053;
    phdenzel/slacs-match) and four 281 x 281 cutouts with noise maps and PSFs
    but no WCS (J1430+4105, J2303+1422 with its lens light already removed,
    J0728+3835, and J0946+1006 with its outer ring replaced by noise; the
    PyAutoLens workspaces), beside the SIE parameters Bolton et al. (2008,
    Table 5) measured by detailed modelling (`SLACS_LENSES`).  Real lenses are
    for validating estimators, never for training them.

    The 17 files (about 6 MB) are downloaded once into the cache, each checked
    against its SHA-256, as `fetch` does.

    Parameters
    ----------
    directory : path, optional
        Read the files in place from a folder laid out as lenskit's
        development data (``<directory>/real_lenses/slacs_acs_f814w/...``)
        instead of the cache; they are checked against the same checksums.
    cache, offline, mirror, progress
        As for `fetch`.

    Returns
    -------
    list of dict
        One per lens: ``name``, ``cutout`` (`~lenskit.io.fits.Cutout`),
        ``lens_subtracted`` (bool), ``theta_E`` (arcsec), ``q``, ``pa`` (deg
        east of north), ``z_lens``, ``z_source`` and ``psf``: the TinyTim ACS
        F814W PSF (an array) for the cutouts that come without one, else None.

    Raises
    ------
    LenskitFileError
        A file is missing (offline, or from ``directory``), fails its checksum
        or cannot be downloaded; it names the file.

    Examples
    --------
    >>> from lenskit.datasets import slacs_lenses                        # doctest: +SKIP
    >>> from lenskit.modelling import model_lens
    >>> for lens in slacs_lenses():
    ...     res = model_lens(lens["cutout"], deblend=not lens["lens_subtracted"], psf=lens["psf"], refine=False)
    ...     print(lens["name"], lens["theta_E"], res["cnn_theta_E"])
    """
    if directory is not None:
        root = Path(directory)
        if not root.is_dir():
            raise LenskitFileError(f"directory {root} is not a folder (expected lenskit's development data, "
                                   f"holding {_SLACS_FOLDER})")

    def local(key):
        if directory is None:
            return fetch(key, cache=cache, offline=offline, mirror=mirror, progress=progress)
        a = REGISTRY[key]
        f = root / a.relative_path
        if not f.is_file():
            raise LenskitFileError(f"directory {root}: {a.relative_path} is missing (from {a.url})")
        if sha256_of(f) != a.sha256:
            raise LenskitFileError(f"directory {root}: {a.relative_path} fails its checksum (expected sha256 "
                                   f"{a.sha256}); it is not the file {a.url} holds")
        return f

    # every file first, so that a missing or damaged one stops the call before any cutout is read
    files = {key: local(key) for lens in SLACS_LENSES for key in (lens["image"], lens.get("noise"),
                                                                   lens.get("psf")) if key} | {
        _TINYTIM: local(_TINYTIM)}
    tiny = fits.getdata(files[_TINYTIM]).astype(float)
    out = []
    for lens in SLACS_LENSES:
        kw = {"hdu": lens["hdu"]} if "hdu" in lens else {"noise": files[lens["noise"]], "psf": files[lens["psf"]]}
        cut = read_cutout(files[lens["image"]], pixel_scale=_SLACS_PIXEL_SCALE, **kw)
        out.append({"name": lens["name"], "cutout": cut, "lens_subtracted": bool(lens.get("lens_subtracted")),
                    **{k: lens[k] for k in ("theta_E", "q", "pa", "z_lens", "z_source")},
                    "psf": tiny if cut.psf is None else None})
    return out
