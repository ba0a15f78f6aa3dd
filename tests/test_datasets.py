"""Download code exercised against a local file:// mirror the test builds."""

import hashlib
import shutil
import tarfile
import warnings

import numpy as np
import pytest

import lenskit
import lenskit.datasets as lds
from lenskit.core.exceptions import LenskitDataWarning, LenskitFileError


@pytest.fixture
def mirror(tmp_path, shared_data):
    """A tar.gz of the real COSMOS sample in the RealGalaxyCatalog layout, served from file://."""
    src = tmp_path / "build" / "COSMOS_mini"
    src.mkdir(parents=True)
    for f in (shared_data / "sources" / "cosmos_f814w").iterdir():
        shutil.copy(f, src / f.name)
    site = tmp_path / "site"
    site.mkdir()
    tarball = site / "COSMOS_mini.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(src, arcname="COSMOS_mini")
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    archive = lds.Archive(url=tarball.as_uri(), sha256=digest, catalog="COSMOS_mini/real_galaxy_catalog_23.5.fits")
    lds.register("test_mini", archive)
    yield site, digest
    lds.REGISTRY.pop("test_mini", None)
    lds.REGISTRY.pop("test_tofu", None)


def test_fetch_verify_unpack_and_use(mirror, tmp_path):
    cache = tmp_path / "cache"
    assert lds.path("test_mini", cache=cache) is None
    folder = lds.fetch("test_mini", cache=cache, progress=False)
    assert (folder / "COSMOS_mini" / "real_galaxy_images_23.5_n1.fits").exists()
    cat = lds.catalog("test_mini", cache=cache)
    src = lenskit.get("source", "great3")(cat)
    assert len(src.stamps) == 10
    # second call: from the cache, even offline and with the site gone
    shutil.rmtree(mirror[0])
    assert lds.fetch("test_mini", cache=cache, offline=True) == folder
    assert not list(cache.glob(".*"))  # no temporary files left


def test_offline_and_missing(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("LENSKIT_OFFLINE", "1")
    with pytest.raises(LenskitFileError, match="not in the cache and lenskit is offline"):
        lds.fetch("test_mini", cache=tmp_path / "c")
    with pytest.raises(ValueError, match="unknown archive 'nope'"):
        lds.fetch("nope")


def test_checksum_mismatch_leaves_nothing(mirror, tmp_path):
    site, digest = mirror
    lds.register("test_mini", lds.Archive(url=(site / "COSMOS_mini.tar.gz").as_uri(), sha256="0" * 64))
    cache = tmp_path / "cache"
    with pytest.raises(LenskitFileError, match="fails its checksum"):
        lds.fetch("test_mini", cache=cache, progress=False)
    assert list(cache.iterdir()) == []


def test_mirror_and_trust_on_first_use(mirror, tmp_path, monkeypatch):
    site, digest = mirror
    lds.register("test_tofu", lds.Archive(url="https://example.invalid/data/COSMOS_mini.tar.gz"))
    monkeypatch.setenv("LENSKIT_DATA_MIRROR", site.as_uri())
    cache = tmp_path / "cache"
    with pytest.warns(LenskitDataWarning, match="unverified; its sha256 " + digest):
        lds.fetch("test_tofu", cache=cache, progress=False)
    side = cache / "COSMOS_mini.tar.gz.sha256"
    assert side.read_text().split()[0] == digest
    # a later corruption of the cached archive is caught
    (cache / "COSMOS_mini.tar.gz").write_bytes(b"corrupt")
    shutil.rmtree(cache / "test_tofu")
    with pytest.raises(LenskitFileError, match="fails its checksum"):
        lds.fetch("test_tofu", cache=cache, progress=False)


def test_publisher_md5_is_checked(mirror, tmp_path):
    import hashlib

    site, digest = mirror
    data = (site / "COSMOS_mini.tar.gz").read_bytes()
    good = hashlib.md5(data, usedforsecurity=False).hexdigest()
    cache = tmp_path / "cache"
    try:
        lds.register("test_md5", lds.Archive(url=(site / "COSMOS_mini.tar.gz").as_uri(), md5="0" * 32))
        with pytest.raises(LenskitFileError, match="publisher's checksum"):
            lds.fetch("test_md5", cache=cache, progress=False)
        assert [p.name for p in cache.iterdir()] == []
        lds.register("test_md5", lds.Archive(url=(site / "COSMOS_mini.tar.gz").as_uri(), md5=good))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # verified by the publisher's checksum: no "unverified" warning
            assert (lds.fetch("test_md5", cache=cache, progress=False) / "COSMOS_mini").is_dir()
    finally:
        lds.REGISTRY.pop("test_md5", None)


def test_plain_http_without_any_checksum_is_refused(tmp_path):
    lds.register("test_http", lds.Archive(url="http://example.invalid/COSMOS_mini.tar.gz"))
    try:
        with pytest.raises(LenskitFileError, match="plain http"):
            lds.fetch("test_http", cache=tmp_path / "c", progress=False)
        assert list((tmp_path / "c").iterdir()) == []
    finally:
        lds.REGISTRY.pop("test_http", None)


def test_unreachable_url(tmp_path):
    lds.register("test_tofu", lds.Archive(url=(tmp_path / "absent.tar.gz").as_uri()))
    try:
        with pytest.raises(LenskitFileError, match="could not download"):
            lds.fetch("test_tofu", cache=tmp_path / "c", progress=False)
    finally:
        lds.REGISTRY.pop("test_tofu", None)


def test_registry_lists_public_archives():
    names = lds.available()
    assert {"cosmos_23.5", "cosmos_25.2", "candels_goodss_f160w"} <= set(names)
    assert all(a.url.startswith("https://") for k, a in lds.REGISTRY.items() if not k.startswith("test"))


def test_archive_folder_is_checked():
    with pytest.raises(ValueError, match="folder must be a relative path"):
        lds.Archive(url="https://example.invalid/a.fits", unpack=False, folder="../up")
    with pytest.raises(ValueError, match="folder must be a relative path"):
        lds.Archive(url="https://example.invalid/a.fits", unpack=False, folder="/abs")
    with pytest.raises(ValueError, match="folder is for a file that is not unpacked"):
        lds.Archive(url="https://example.invalid/a.tar.gz", folder="x")
    a = lds.Archive(url="https://example.invalid/d/SDSSJ0737%2B3216.fits", unpack=False, folder="x/y")
    assert a.filename == "SDSSJ0737+3216.fits" and a.relative_path == "x/y/SDSSJ0737+3216.fits"


def _slacs_tree(shared_data, dest):
    """A copy of the development data's SLACS files (only those `slacs_lenses` reads), laid out as a mirror."""
    for key, a in lds.REGISTRY.items():
        if key.startswith("slacs/"):
            (dest / a.folder).mkdir(parents=True, exist_ok=True)
            shutil.copy(shared_data / a.relative_path, dest / a.relative_path)
    return dest


def test_slacs_lenses_in_place_match_the_published_table(shared_data):
    import csv

    lenses = lds.slacs_lenses(directory=shared_data)
    assert [lens["name"] for lens in lenses] == [lens["name"] for lens in lds.SLACS_LENSES]
    first = lenses[0]
    assert first["name"] == "SDSSJ0029-0055" and first["theta_E"] == 0.96 and first["cutout"].wcs is not None
    assert first["psf"] is not None and first["psf"].shape == (74, 74)
    assert [lens["name"] for lens in lenses if lens["lens_subtracted"]] == ["SDSSJ2303+1422"]
    assert all(lens["cutout"].pixel_scale == 0.05 for lens in lenses)
    assert all((lens["psf"] is None) == (lens["cutout"].psf is not None) for lens in lenses)
    # the parameters shipped in the package against the development data's copy of Bolton et al. (2008), Table 5
    with open(shared_data / "real_lenses" / "bolton2008_table5.csv", newline="") as f:
        table5 = {row["system"]: row for row in csv.DictReader(f)}
    with open(shared_data / "real_lenses" / "lens_parameters.csv", newline="") as f:
        redshifts = {row["lens"]: row for row in csv.DictReader(f)}
    for lens in lenses:
        row = table5["J" + lens["name"][5:]]
        assert (lens["theta_E"], lens["q"], lens["pa"]) == (float(row["b_SIE_arcsec"]), float(row["q_SIE"]),
                                                           float(row["PA_SIE"]))
        z = redshifts[lens["name"]]
        assert (lens["z_lens"], lens["z_source"]) == (float(z["z_lens"]), float(z["z_source"]))


def test_slacs_lenses_download_verify_and_reuse(shared_data, tmp_path):
    site = _slacs_tree(shared_data, tmp_path / "site")
    cache = tmp_path / "cache"
    got = lds.slacs_lenses(cache=cache, mirror=site.as_uri(), progress=False)
    ref = lds.slacs_lenses(directory=shared_data)
    for a, b in zip(got, ref):
        assert a["name"] == b["name"] and np.array_equal(a["cutout"].image, b["cutout"].image, equal_nan=True)
    assert (cache / "real_lenses" / "slacs_acs_f814w" / "198x198" / "SDSSJ0737+3216.fits").is_file()
    assert not list(cache.rglob(".*"))  # no temporary files left
    # a second call needs neither the site nor the network
    shutil.rmtree(site)
    again = lds.slacs_lenses(cache=cache, offline=True)
    assert np.array_equal(again[4]["cutout"].noise, got[4]["cutout"].noise)


def test_slacs_lenses_refuse_missing_and_damaged_files(shared_data, tmp_path):
    with pytest.raises(LenskitFileError, match="not in the cache and lenskit is offline"):
        lds.slacs_lenses(cache=tmp_path / "empty", offline=True)
    with pytest.raises(LenskitFileError, match="is not a folder"):
        lds.slacs_lenses(directory=tmp_path / "nowhere")
    tree = _slacs_tree(shared_data, tmp_path / "tree")
    damaged = tree / "real_lenses" / "slacs_acs_f814w" / "slacs0946+1006" / "psf.fits"
    damaged.write_bytes(damaged.read_bytes()[:-2880])  # one FITS block short
    with pytest.raises(LenskitFileError, match=r"slacs0946\+1006/psf.fits fails its checksum"):
        lds.slacs_lenses(directory=tree)
    # downloaded from a mirror holding the damaged file: refused, and nothing of it kept in the cache
    cache = tmp_path / "cache"
    with pytest.raises(LenskitFileError, match="fails its checksum"):
        lds.slacs_lenses(cache=cache, mirror=tree.as_uri(), progress=False)
    assert not (cache / "real_lenses" / "slacs_acs_f814w" / "slacs0946+1006" / "psf.fits").exists()
    assert not list(cache.rglob(".*"))
    damaged.unlink()
    with pytest.raises(LenskitFileError, match=r"slacs0946\+1006/psf.fits is missing"):
        lds.slacs_lenses(directory=tree)
