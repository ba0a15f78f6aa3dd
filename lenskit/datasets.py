"""
Locate and download the public archives of real galaxies.

The archives are far too large to ship: this module fetches them into a
cache folder on first use, verifies them, and finds them again afterwards::

    import lenskit.datasets as lds
    lds.available()                       # what can be fetched
    folder = lds.fetch("cosmos_23.5")     # downloads (once), verifies, unpacks
    src = lenskit.get("source", "great3")(lds.catalog("cosmos_23.5"))

Settings (arguments, or environment variables):

``LENSKIT_DATA_DIR``
    The cache folder; default ``$XDG_CACHE_HOME/lenskit`` (``~/.cache/lenskit``).
``LENSKIT_OFFLINE=1``
    Never download: a missing archive is an error that says where to put it.
``LENSKIT_DATA_MIRROR``
    A base URL (``https://``, ``http://`` or ``file://``) that replaces each
    archive's host: ``<mirror>/<file name>``; for sites that mirror the data.

Integrity: each archive is checked against its SHA-256 where the registry
records one, or against the MD5 its publisher gives.  None of the upstream
archives has a published checksum that lenskit could record, so a first
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

from tqdm.auto import tqdm

from lenskit.core.exceptions import LenskitDataWarning, LenskitFileError
from lenskit.core.files import atomic_open, atomic_path

__all__ = ["Archive", "REGISTRY", "available", "register", "cache_dir", "path", "fetch", "catalog", "sha256_of"]


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
    """

    url: str
    sha256: str | None = None
    md5: str | None = None
    unpack: bool = True
    catalog: str | None = None
    description: str = ""

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

    @property
    def filename(self):
        return Path(urllib.parse.urlparse(self.url).path).name


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
    return base / a.filename, base / a.filename


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
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {Path(url).name}")
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
        url = mirror.rstrip("/") + "/" + a.filename if mirror else a.url
        expected = _expected(name, download)
        scheme = urllib.parse.urlparse(url).scheme
        if scheme not in ("https", "http", "file"):
            raise ValueError(f"mirror must be an https://, http:// or file:// URL; got {url!r}")
        if scheme == "http" and expected is None and not a.md5:
            raise LenskitFileError(
                f"archive {name!r} has no recorded checksum, so it is not downloaded over plain http ({url}): "
                f"use an https:// or file:// mirror, or record its sha256 with lenskit.datasets.register")
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
