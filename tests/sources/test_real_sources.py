"""Real-galaxy sources: formats, preparation, normalisation, splits and errors."""

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import Table

import lenskit
from lenskit.core.exceptions import LenskitFileError
from lenskit.sources.stamps import SPLITS, prepare_stamp, split_of


@pytest.fixture(scope="module")
def cosmos(shared_data):
    return shared_data / "sources" / "cosmos_f814w" / "real_galaxy_catalog_23.5.fits"


def fine_grid(n=512, half=4.0, batch=1):
    g = torch.linspace(-half, half, n, dtype=torch.float64)
    return g.reshape(1, 1, n).expand(batch, n, n), g.reshape(1, n, 1).expand(batch, n, n), (g[1] - g[0]).item()


def moments(img, x, y):
    w = img / img.sum()
    mx, my = (w * x).sum(), (w * y).sum()
    qxx = (w * (x - mx) ** 2).sum()
    qyy = (w * (y - my) ** 2).sum()
    qxy = (w * (x - mx) * (y - my)).sum()
    return mx, my, qxx, qyy, qxy


def gaussian_file(path, sigma_pix, scale=0.03, n=96, noise=0.01, seed=0):
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    img = np.exp(-0.5 * (xx**2 + yy**2) / sigma_pix**2)
    img = img + np.random.default_rng(seed).normal(0, noise, img.shape)
    hdu = fits.PrimaryHDU(img)
    hdu.header["PIXSCALE"] = scale
    hdu.writeto(path, overwrite=True)


def test_great3_cosmos(cosmos):
    src = lenskit.get("source", "great3")(cosmos)
    assert len(src.stamps) == 10 and src.bands == ("F814W",)
    for st in src.stamps:
        assert st.image.shape[0] == 1 and np.isfinite(st.image).all()
        assert 0.05 < st.r_half < 1.5 and st.pixel_scale == pytest.approx(0.03)
        # tapered to zero at the edge
        assert np.abs(st.image[0, 0]).max() == 0 and np.abs(st.image[0, :, 0]).max() == 0


def test_great3_two_bands(shared_data):
    folder = shared_data / "sources" / "aegis_f606w_f814w"
    src = lenskit.get("source", "great3")([folder / "AEGIS_F606w_catalog.fits", folder / "AEGIS_F814w_catalog.fits"])
    assert src.bands == ("F606W", "F814W")
    assert len(src.stamps) == 5 and all(st.image.shape[0] == 2 for st in src.stamps)
    b = src.sample(3, np.random.default_rng(0))
    x, y, dx = fine_grid(batch=3, half=3.0, n=256)
    f606 = b.brightness(x, y, band=0)
    f814 = b.brightness(x, y, band=1)
    assert not torch.allclose(f606, f814)


def test_unit_flux_size_and_rotation(tmp_path):
    gaussian_file(tmp_path / "g.fits", sigma_pix=6.0)
    src = lenskit.get("source", "image_directory")(tmp_path, size=0.3, rotate=False, flip=False)
    (st,) = src.stamps
    assert st.r_half == pytest.approx(6.0 * 1.1774 * 0.03, rel=0.1)
    b = src.sample(2, np.random.default_rng(1))
    x, y, dx = fine_grid(batch=2, half=2.0, n=400)
    img = b.brightness(x, y)
    np.testing.assert_allclose(img.sum((1, 2)).numpy() * dx * dx, 1.0, rtol=0.02)
    r = torch.sqrt(x**2 + y**2)
    inside = ((img * (r < 0.3)).sum((1, 2)) * dx * dx).numpy()
    np.testing.assert_allclose(inside, 0.5, atol=0.04)


def test_rotation_and_flip_act_on_the_image(cosmos):
    src = lenskit.get("source", "great3")(cosmos, size=0.5)
    stamp = src.stamps[0]  # an elongated galaxy
    from lenskit.sources.stamps import StampBatch

    angles = np.array([0.0, np.pi / 2])
    b = StampBatch([stamp, stamp], [0.5 / stamp.r_half] * 2, angles, [False, False], [0.5, 0.5])
    x, y, _ = fine_grid(batch=2, half=2.5, n=300)
    img = b.brightness(x, y)
    m0 = moments(img[0], x[0], y[0])
    m1 = moments(img[1], x[1], y[1])
    # a quarter turn swaps the second moments
    assert float(m0[2]) == pytest.approx(float(m1[3]), rel=0.05)
    assert float(m0[3]) == pytest.approx(float(m1[2]), rel=0.05)
    # a flip mirrors the image: flipped(x, y) == plain(-x, y)
    flipped = StampBatch([stamp], [0.5 / stamp.r_half], [0.0], [True], [0.5]).brightness(x[:1], y[:1])
    plain = StampBatch([stamp], [0.5 / stamp.r_half], [0.0], [False], [0.5]).brightness(-x[:1], y[:1])
    torch.testing.assert_close(flipped, plain)
    assert not torch.allclose(flipped, StampBatch([stamp], [0.5 / stamp.r_half], [0.0], [False], [0.5]).brightness(
        x[:1], y[:1]))


def test_split_is_deterministic_and_disjoint(cosmos):
    ids = [str(i) for i in range(3000)]
    a = [split_of(i) for i in ids]
    assert a == [split_of(i) for i in ids]
    for name, frac in SPLITS.items():
        assert abs(a.count(name) / len(a) - frac) < 0.03
    src = lenskit.get("source", "great3")(cosmos)
    train = {s.ident for s in src.with_split("train").galaxies()}
    test = {s.ident for s in src.with_split("test").galaxies()}
    assert train and test and not train & test
    ds = lenskit.Simulator(source=src, split="test", seed=2,
                           instrument=lenskit.get("instrument", "hst_wfc3")(shape=(64, 64))).sample(4)
    assert set(ds.params["source_id"]) <= test
    assert ds.provenance.config["split"] == "test"


def test_with_galaxies_draws_only_the_named_galaxies(cosmos):
    src = lenskit.get("source", "great3")(cosmos)
    train = [s.ident for s in src.with_split("train").galaxies()]
    test = [s.ident for s in src.with_split("test").galaxies()]
    few = src.with_galaxies(train[:2] + test[:1])
    assert [s.ident for s in few.galaxies()] == [i for i in [s.ident for s in src.stamps] if i in set(few.idents)]
    assert {s.ident for s in few.with_split("train").galaxies()} == set(train[:2])  # the split applies on top
    assert {s.ident for s in few.with_split("test").galaxies()} == set(test[:1])
    assert len(src.galaxies()) == len(src.stamps)  # the original is untouched
    drawn = few.with_split("train").sample(200, np.random.default_rng(3))
    assert {s.ident for s in drawn.stamps} == set(train[:2])
    ds = lenskit.Simulator(source=few, split="train", seed=2,
                           instrument=lenskit.get("instrument", "hst_wfc3")(shape=(64, 64))).sample(3)
    assert set(ds.params["source_id"]) <= set(train[:2])
    with pytest.raises(ValueError, match="idents: 1 galaxies .*'no-such-galaxy'"):
        src.with_galaxies(train[:1] + ["no-such-galaxy"])
    with pytest.raises(ValueError, match="at least one"):
        src.with_galaxies([])
    with pytest.raises(TypeError, match="not one string"):
        src.with_galaxies(train[0])
    fresh = lenskit.get("source", "great3")(cosmos)
    copies = [fresh.with_split("train"), fresh.with_split("test")]  # made before the stamps are read ...
    assert all(c.stamps is fresh.stamps for c in copies)  # ... they share one preparation


def test_image_directory_jwst(shared_data):
    folder = shared_data / "sources" / "jwst"
    with pytest.raises(ValueError, match=r"galaxy_4/data.fits has \d+ NaN"):
        lenskit.get("source", "image_directory")(folder, pattern="*/data.fits", pixel_scale=0.06).stamps
    src = lenskit.get("source", "image_directory")(folder, pattern="*/data.fits", pixel_scale=0.06, nan_policy="zero")
    assert len(src.stamps) >= 8
    assert {s.ident for s in src.stamps} <= {f"galaxy_{i}/data" for i in range(10)}


def make_zoo(folder, shared_data, n=5):
    """Galaxy Zoo layout built from cut-outs of the real Hubble Deep Field JPEG."""
    from photutils.segmentation import SourceCatalog, detect_sources
    from PIL import Image

    rgb = np.asarray(Image.open(shared_data / "sources" / "color_jpeg" / "hubble_deep_field.jpg"), dtype=float)
    grey = rgb.mean(2)
    seg = detect_sources(grey, np.median(grey) + 40, n_pixels=200)
    cat = SourceCatalog(grey, seg)
    order = np.argsort(-cat.segment_flux)[:n]
    pad = 212
    padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="constant", constant_values=np.median(rgb))
    ids = []
    for k, i in enumerate(order):
        x, y = int(cat.x_centroid[i]) + pad, int(cat.y_centroid[i]) + pad
        cut = padded[y - 212:y + 212, x - 212:x + 212].astype(np.uint8)
        gid = str(100000 + k)
        Image.fromarray(cut).save(folder / f"{gid}.jpg", quality=90)
        ids.append(gid)
    Table({"GalaxyID": [int(i) for i in ids], "Class1.1": np.linspace(0.1, 0.9, n)}).write(
        folder / "solutions.csv", format="ascii.csv")
    return ids


def test_galaxy_zoo_layout(tmp_path, shared_data):
    ids = make_zoo(tmp_path, shared_data)
    src = lenskit.get("source", "galaxy_zoo")(tmp_path, max_galaxies=5)
    assert {s.ident for s in src.stamps} <= set(ids) and len(src.stamps) >= 3
    st = src.stamps[0]
    assert st.image.shape == (1, 212, 212)
    # the galaxy sits near the centre after preparation
    assert abs(st.centroid[0] - 105.5) < 15 and abs(st.centroid[1] - 105.5) < 15
    sel = lenskit.get("source", "galaxy_zoo")(tmp_path, solutions=tmp_path / "solutions.csv", select={"Class1.1": 0.5})
    assert set(sel.files) == set(ids[2:])
    (tmp_path / "999.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(LenskitFileError, match="999.jpg"):
        lenskit.get("source", "galaxy_zoo")(tmp_path).stamps


def test_candels_mosaic(tmp_path, shared_data):
    """Stamps cut from a mosaic assembled from real COSMOS galaxies, neighbours removed."""
    from astropy.wcs import WCS

    hl = fits.open(shared_data / "sources" / "cosmos_f814w" / "real_galaxy_images_23.5_n1.fits")
    rng = np.random.default_rng(3)
    mosaic = rng.normal(0, 0.003, (700, 700))
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.1, 2.2]
    w.wcs.crpix = [350, 350]
    w.wcs.cdelt = [-0.03 / 3600, 0.03 / 3600]
    positions = [(120, 130), (350, 140), (560, 180), (150, 450), (400, 420), (600, 580), (470, 420)]
    rows = []
    for k, (x, y) in enumerate(positions):
        g = np.asarray(hl[k % 7 + 2].data, float)
        h, ww = g.shape
        mosaic[y - h // 2:y - h // 2 + h, x - ww // 2:x - ww // 2 + ww] += g
        ra, dec = w.all_pix2world(x, y, 0)
        rows.append((f"G{k}", float(ra), float(dec), 6.0))
    fits.PrimaryHDU(mosaic, header=w.to_header()).writeto(tmp_path / "mosaic.fits")
    t = Table(rows=rows, names=("ID", "RA", "DEC", "FLUX_RADIUS"))
    t.write(tmp_path / "cat.ecsv")
    src = lenskit.get("source", "candels")(tmp_path / "mosaic.fits", tmp_path / "cat.ecsv", size_column="FLUX_RADIUS",
                                           min_snr=5)
    stamps = {s.ident: s for s in src.stamps}
    assert len(stamps) >= 5
    assert all(s.pixel_scale == pytest.approx(0.03) for s in stamps.values())
    # G4 and G6 are 70 pixels apart and both fall in each other's stamps: each stamp keeps
    # only its own galaxy, centred
    assert {"G4", "G6"} <= set(stamps)
    for k, other_dx in (("G4", +70), ("G6", -70)):
        s = stamps[k]
        c = (s.image.shape[2] - 1) / 2
        assert abs(s.centroid[0] - c) < 4 and abs(s.centroid[1] - c) < 4
        ox = int(round(c + other_dx))
        if 0 <= ox < s.image.shape[2]:
            assert np.abs(s.image[0, :, max(ox - 3, 0):ox + 4]).max() < 0.05 * s.image.max()
    with pytest.raises(FileNotFoundError, match="nope.ecsv"):
        lenskit.get("source", "candels")(tmp_path / "mosaic.fits", tmp_path / "nope.ecsv")


def test_file_errors_name_the_file(tmp_path, cosmos):
    with pytest.raises(FileNotFoundError, match="missing.fits"):
        lenskit.get("source", "great3")(tmp_path / "missing.fits")
    (tmp_path / "corrupt.fits").write_bytes(b"SIMPLE  = garbage" * 10)
    with pytest.raises(LenskitFileError, match="corrupt.fits"):
        lenskit.get("source", "great3")(tmp_path / "corrupt.fits")
    empty = Table(names=("IDENT", "GAL_FILENAME", "GAL_HDU", "PIXEL_SCALE"), dtype=(int, "S32", int, float))
    empty.write(tmp_path / "empty.fits", format="fits")
    with pytest.raises(ValueError, match="empty.fits is empty"):
        lenskit.get("source", "great3")(tmp_path / "empty.fits")
    t = Table.read(cosmos)
    t["GAL_FILENAME"] = ["nowhere.fits"] * len(t)
    t.write(tmp_path / "dangling.fits", format="fits")
    with pytest.raises(FileNotFoundError, match="nowhere.fits"):
        lenskit.get("source", "great3")(tmp_path / "dangling.fits").stamps
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        lenskit.get("source", "image_directory")(tmp_path / "no_such_dir")
    nan = np.ones((40, 40))
    nan[3, 3] = np.nan
    fits.PrimaryHDU(nan).writeto(tmp_path / "nan.fits")
    with pytest.raises(ValueError, match="nan.fits has 1 NaN"):
        prepare_stamp(nan, 0.03, ident="x", source=str(tmp_path / "nan.fits"))
    with pytest.raises(ValueError, match="split must be one of"):
        lenskit.get("source", "great3")(cosmos, split="holdout")


def test_deblending_keeps_a_galaxys_clumps_and_removes_a_touching_neighbour():
    """A clumpy galaxy at the centre with a neighbour overlapping it: the clumps stay, the neighbour goes."""
    rng = np.random.default_rng(5)
    y, x = np.mgrid[:101, :101].astype(float)
    disc = 20 * np.exp(-np.hypot(x - 50, y - 50) / 6.0)
    clumps = sum(40 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 3.0) for cx, cy in ((56, 50), (46, 54), (50, 44)))
    neighbour = 60 * np.exp(-np.hypot(x - 74, y - 52) / 3.0)
    img = disc + clumps + neighbour + rng.normal(0, 0.3, x.shape)
    st = prepare_stamp(img, 0.03, ident="clumpy")
    out = st.image[0]
    for cx, cy in ((56, 50), (46, 54), (50, 44)):
        assert out[cy, cx] > 0.8 * (disc + clumps)[cy, cx]
    assert abs(out[52, 74]) < 0.05 * neighbour[52, 74]


def test_hudf_source_cuts_galaxies_from_the_xdf():
    pytest.importorskip("skimage")
    src = lenskit.get("source", "hudf")(max_galaxies=25, size=(0.2, 0.4))
    stamps = src.stamps
    assert len(stamps) >= 15
    idents = [s.ident for s in stamps]
    assert len(set(idents)) == len(idents) and all(i.startswith("xdf-") for i in idents)
    for s in stamps:
        c = (s.image.shape[1] - 1) / 2  # cut about the field segment's centroid: near the prepared galaxy's
        assert abs(s.centroid[0] - c) < 0.15 * s.image.shape[1] and abs(s.centroid[1] - c) < 0.15 * s.image.shape[1]
        assert s.snr >= 30 and s.flux[0] > 0 and s.pixel_scale == pytest.approx(0.138)
    # the split is by identity: disjoint, and the same on every machine
    train, test = src.with_split("train").galaxies(), src.with_split("test").galaxies()
    assert not {s.ident for s in train} & {s.ident for s in test}
    assert [split_of(i) for i in idents] == [split_of(i) for i in idents]
    ds = lenskit.Simulator(source=src.with_split("train"), seed=2).sample(4)
    assert len(ds) == 4 and np.all(np.isfinite(ds.images))
    with pytest.raises(ValueError, match="min_area"):
        lenskit.get("source", "hudf")(min_area=2)
    with pytest.raises(ValueError, match="channels"):
        lenskit.get("source", "hudf")(channels="cmyk")
