import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable

import lenskit
from lenskit.core import Estimate, LensDataset, LenskitFileError, ModelWeights, Provenance


def make_dataset(n=3, bands=("g", "r"), seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, len(bands), 8, 9)).astype(np.float32)
    params = QTable({"theta_E": rng.uniform(0.5, 2, n) * u.arcsec, "e1": rng.normal(0, .1, n),
                     "e2": rng.normal(0, .1, n), "x0": rng.normal(0, .1, n) * u.arcsec,
                     "y0": rng.normal(0, .1, n) * u.arcsec})
    return LensDataset(images, params, bands=bands, pixel_scale=0.2 * u.arcsec, instrument="lsst",
                       noise=np.abs(images) + 0.1, masks=images > 1.5,
                       truth={"arcs": images * 0.5},
                       provenance=Provenance.current(seed=seed, config={"n": n}))


def test_dataset_round_trip_bit_exact(tmp_path):
    ds = make_dataset()
    path = tmp_path / "ds.asdf"
    ds.write(path)
    back = lenskit.read(path)
    assert isinstance(back, LensDataset)
    assert back == ds
    assert back.images.dtype == np.float32 and back.images.tobytes() == ds.images.tobytes()
    assert back.params["theta_E"].unit == u.arcsec
    assert back.provenance == ds.provenance


def test_estimate_round_trip(tmp_path):
    t = QTable({"theta_E": [1.0, 1.2] * u.arcsec, "theta_E_std": [0.01, 0.02] * u.arcsec})
    est = Estimate(t, covariance=np.full((2, 1, 1), 1e-4), provenance=Provenance.current(config={"estimator": "x"}))
    est.write(tmp_path / "e.asdf")
    back = Estimate.read(tmp_path / "e.asdf")
    assert back == est and back.targets == ("theta_E",)


def test_weights_round_trip_no_pickle(tmp_path):
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    w = ModelWeights.from_module("toy", net, config={"in": 1}, metrics={"rmse": 0.1})
    w.write(tmp_path / "w.asdf")
    back = lenskit.read(tmp_path / "w.asdf")
    assert back == w
    for k, v in net.state_dict().items():
        assert torch.equal(back.to_state_dict()[k].to(v.dtype), v)
    assert b"pickle" not in (tmp_path / "w.asdf").read_bytes()


def test_weights_checksum_detects_corruption(tmp_path):
    w = ModelWeights("toy", {"a": np.arange(1000, dtype=np.float32)})
    path = tmp_path / "w.asdf"
    w.write(path)
    raw = bytearray(path.read_bytes())
    i = raw.rfind(np.arange(1000, dtype=np.float32)[500:502].tobytes())
    raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(LenskitFileError, match="checksum"):
        lenskit.read(path)


def test_schema_violation_is_named(tmp_path):
    ds = make_dataset()
    path = tmp_path / "bad.asdf"
    ds.write(path)
    raw = path.read_bytes()
    assert b"bands: [g, r]" in raw
    # same length, so the binary blocks stay where the index says: an integer where a list is required
    (tmp_path / "bad2.asdf").write_bytes(raw.replace(b"bands: [g, r]", b"bands: 123456"))
    with pytest.raises(LenskitFileError, match="does not follow its lenskit schema"):
        lenskit.read(tmp_path / "bad2.asdf")
    # a missing required entry
    (tmp_path / "bad3.asdf").write_bytes(raw.replace(b"  provenance: !<", b"  provenancX: !<"))
    with pytest.raises(LenskitFileError, match="schema"):
        lenskit.read(tmp_path / "bad3.asdf")


def test_truncated_file(tmp_path):
    ds = make_dataset()
    path = tmp_path / "ds.asdf"
    ds.write(path)
    data = path.read_bytes()
    (tmp_path / "trunc.asdf").write_bytes(data[: len(data) // 2])
    with pytest.raises(LenskitFileError, match="trunc.asdf"):
        lenskit.read(tmp_path / "trunc.asdf")


def test_empty_and_missing_file(tmp_path):
    (tmp_path / "empty.asdf").write_bytes(b"")
    with pytest.raises(LenskitFileError, match="empty"):
        lenskit.read(tmp_path / "empty.asdf")
    with pytest.raises(FileNotFoundError, match="nope.asdf"):
        lenskit.read(tmp_path / "nope.asdf")


def test_unknown_tag_version(tmp_path):
    ds = make_dataset()
    path = tmp_path / "ds.asdf"
    ds.write(path)
    raw = path.read_bytes().replace(b"tags/lens_dataset-1.0.0", b"tags/lens_dataset-9.0.0")
    (tmp_path / "future.asdf").write_bytes(raw)
    with pytest.raises(LenskitFileError, match="lens_dataset-9.0.0.*newer lenskit"):
        lenskit.read(tmp_path / "future.asdf")


def test_write_is_atomic(tmp_path, monkeypatch):
    ds = make_dataset()
    path = tmp_path / "ds.asdf"
    ds.write(path)
    before = path.read_bytes()
    import asdf

    def boom(self, *a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(asdf.AsdfFile, "write_to", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        make_dataset(seed=1).write(path, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.asdf"]


def test_no_overwrite_by_default(tmp_path):
    ds = make_dataset()
    ds.write(tmp_path / "a.asdf")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ds.write(tmp_path / "a.asdf")


def test_asdf_entry_points_registered():
    import asdf

    uris = [e.extension_uri for e in asdf.get_config().extensions]
    assert "asdf://lenskit.org/lenskit/extensions/lenskit-1.0.0" in uris
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        schema = asdf.schema.load_schema("asdf://lenskit.org/lenskit/schemas/lens_dataset-1.0.0")
    assert "images" in schema["required"]
