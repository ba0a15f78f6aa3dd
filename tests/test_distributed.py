"""lenskit.distributed (Dask shards) and `lenskit train --ddp` (torch DDP, gloo on CPU)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lenskit
from lenskit.core.exceptions import LenskitPluginError

distributed = pytest.importorskip("distributed")

from lenskit.distributed import ShardError, ShardIndex, estimate, find, get_client, shard_seeds, simulate  # noqa: E402


def _lsst(seed=0):
    return lenskit.Simulator(instrument="lsst", seed=seed)


@pytest.fixture(scope="module")
def client():
    from dask.distributed import Client

    from lenskit.distributed import local_cluster

    cluster = local_cluster(2)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("serial")
    return simulate(_lsst(), 30, d / "sims", shard_size=8, seed=11, scheduler="serial")


def test_shard_seeds_are_independent_of_the_shard_count():
    a = shard_seeds(3, 4)
    b = shard_seeds(3, 6)
    for x, y in zip(a, b):  # the first spawned children are the same whatever the number spawned
        assert np.array_equal(x.generate_state(4), y.generate_state(4))
    assert not np.array_equal(a[0].generate_state(4), a[1].generate_state(4))
    with pytest.raises(ValueError, match="seed"):
        shard_seeds(None, 2)


def test_cluster_run_equals_serial_run_bit_for_bit(serial_run, client, tmp_path):
    assert len(serial_run) == 4 and serial_run.n == 30 and serial_run.complete
    assert [s["n"] for s in serial_run.shards] == [8, 8, 8, 6]
    par = simulate(_lsst(seed=99), 30, tmp_path / "par", shard_size=8, seed=11, client=client)
    a, b = serial_run.concatenate(), par.concatenate()
    assert np.array_equal(a.images, b.images)
    assert np.array_equal(a.noise, b.noise)
    assert np.array_equal(a.truth["arcs"], b.truth["arcs"])
    assert a == b  # params table too
    # the index on disk records the same image checksums (the files differ only in their provenance dates)
    rec = json.loads((tmp_path / "par" / "index.json").read_text())
    assert [s["checksum_images"] for s in rec["shards"]] == [s["checksum_images"] for s in serial_run.shards]
    # HST with cosmic rays (a bank of artefact maps cached per process) agrees too
    from lenskit.instruments.hst import HSTWFC3

    hst = lenskit.Simulator(instrument=HSTWFC3(shape=(48, 48)))
    h1 = simulate(hst, 12, tmp_path / "h1", shard_size=3, seed=5, scheduler="serial").concatenate()
    h2 = simulate(hst, 12, tmp_path / "h2", shard_size=3, seed=5, client=client).concatenate()
    assert h1 == h2 and h1.params["n_cosmic_rays"].sum() > 0
    # a different seed gives different shards
    other = simulate(_lsst(), 8, tmp_path / "other", shard_size=8, seed=12, scheduler="serial")
    assert not np.array_equal(other.read(0).images, serial_run.read(0).images)


def test_resume_redoes_only_missing_shards(serial_run, tmp_path):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(serial_run.directory, d)
    (d / "shard-00002.asdf").unlink()
    (d / ".shard-00003.asdf.abc.tmp").write_bytes(b"half-written")  # a crash's leftover is ignored
    with open(d / "shard-00001.asdf", "r+b") as f:  # a truncated shard is redone, not trusted
        f.truncate(100)
    before = {p: (d / p).stat().st_mtime_ns for p in ("shard-00000.asdf", "shard-00003.asdf")}
    again = simulate(_lsst(), 30, d, shard_size=8, seed=11, scheduler="serial")
    assert [bool(s.get("resumed")) for s in again.shards] == [True, False, False, True]
    assert {p: (d / p).stat().st_mtime_ns for p in before} == before
    assert again.concatenate() == serial_run.concatenate()
    assert ShardIndex.open(d).complete


def test_a_different_run_in_the_directory_is_refused(serial_run, tmp_path):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(serial_run.directory, d)
    with pytest.raises(FileExistsError, match="different run"):
        simulate(_lsst(), 30, d, shard_size=8, seed=12, scheduler="serial")
    idx = simulate(_lsst(), 10, d, shard_size=5, seed=12, scheduler="serial", overwrite=True)
    assert sorted(p.name for p in d.glob("shard-*.asdf")) == ["shard-00000.asdf", "shard-00001.asdf"]
    assert idx.n == 10


def test_failing_shard_is_retried_then_reported(monkeypatch, tmp_path):
    import lenskit.scale.survey as ld

    real = ld.simulate_shard
    calls = {}

    def flaky(sim, n, entropy, key, path, meta, *rest):
        calls[meta["shard"]] = calls.get(meta["shard"], 0) + 1
        if meta["shard"] == 1 and calls[1] == 1:
            raise RuntimeError("transient failure")
        if meta["shard"] == 2:
            raise RuntimeError("broken node")
        return real(sim, n, entropy, key, path, meta, *rest)

    monkeypatch.setattr(ld, "simulate_shard", flaky)
    with pytest.raises(ShardError, match="1 of 3 shard") as info:
        simulate(_lsst(), 12, tmp_path / "s", shard_size=4, seed=1, scheduler="serial", retries=2)
    assert list(info.value.failures) == ["shard-00002.asdf"]
    assert "broken node" in info.value.failures["shard-00002.asdf"]
    assert calls == {0: 1, 1: 2, 2: 3}
    idx = ShardIndex.open(tmp_path / "s")
    assert [s["status"] for s in idx.shards] == ["done", "done", "failed"]
    assert idx.shards[1]["attempts"] == 2
    with pytest.raises(ShardError):
        idx.concatenate()
    monkeypatch.setattr(ld, "simulate_shard", real)  # the node is fixed: running again completes the run
    idx = simulate(_lsst(), 12, tmp_path / "s", shard_size=4, seed=1, scheduler="serial")
    assert idx.complete and [bool(s.get("resumed")) for s in idx.shards] == [True, True, False]


def test_estimate_over_shards_on_the_cluster(serial_run, client, tmp_path):
    est = lenskit.load_estimator("lsst_gri")
    a = estimate("lsst_gri", serial_run, tmp_path / "e1", scheduler="serial", batch_size=4).concatenate()
    b = estimate("lsst_gri", serial_run.directory, tmp_path / "e2", client=client, batch_size=4).concatenate()
    assert a == b
    assert len(a) == 30
    rows = a.table.meta["inputs"]
    assert [r["first_row"] for r in rows] == [0, 8, 16, 24]
    assert Path(rows[2]["file"]).name == "shard-00002.asdf"
    direct = est.predict(serial_run.concatenate(), batch_size=4)
    for t in est.targets:
        np.testing.assert_allclose(a.table[t].value, direct.table[t].value, rtol=1e-4, atol=1e-5)


def test_find_on_fits_cubes_and_a_corrupt_file(client, tmp_path):
    from astropy.io import fits

    from lenskit.simulation.finder import LensFinderSimulator

    ds = LensFinderSimulator(seed=3).sample(12)
    for i in range(3):
        fits.writeto(tmp_path / f"cut{i}.fits", ds.images[4 * i:4 * i + 4, 0])
    (tmp_path / "cut3.fits").write_bytes(b"SIMPLE  = T" + b" " * 50)  # corrupt
    with pytest.raises(ShardError, match="cut3.fits|shard-00003") as info:
        find(sorted(tmp_path.glob("cut*.fits")), tmp_path / "found", client=client, lens_fraction=1e-3, retries=1)
    assert list(info.value.failures) == ["shard-00003.asdf"]
    assert "could not be read as FITS" in info.value.failures["shard-00003.asdf"]
    idx = ShardIndex.open(tmp_path / "found")
    assert [s["status"] for s in idx.shards] == ["done"] * 3 + ["failed"]
    finder = lenskit.load_estimator("deeplens_lsst_g")
    want = finder.predict(ds.images[4:8], lens_fraction=1e-3).table["p_lens"].value
    np.testing.assert_allclose(idx.read(1).table["p_lens"].value, want, rtol=1e-5, atol=1e-7)



def test_find_matches_the_noise_of_cutouts_in_other_units(tmp_path):
    from astropy.io import fits

    from lenskit.simulation.finder import LensFinderSimulator

    ds = LensFinderSimulator(seed=4).sample(8)
    fits.writeto(tmp_path / "e.fits", ds.images[:, 0])
    fits.writeto(tmp_path / "nJy.fits", ds.images[:, 0] * 1e3)  # the same sky in other units
    finder = lenskit.load_estimator("deeplens_lsst_g")
    want = finder.predict(finder.match_noise(ds.images)).table["p_lens"].value
    for name in ("e", "nJy"):
        got = find([tmp_path / f"{name}.fits"], tmp_path / name, scheduler="serial", match_noise=True).concatenate()
        np.testing.assert_allclose(got.table["p_lens"].value, want, atol=1e-4)
    raw = find([tmp_path / "nJy.fits"], tmp_path / "raw", scheduler="serial").concatenate()
    assert not np.allclose(raw.table["p_lens"].value, want, atol=1e-2)  # unmatched, the units change the answers


def test_bad_input_is_refused_before_any_work(tmp_path):
    with pytest.raises(LenskitPluginError):
        estimate("no_such_estimator", [__file__], tmp_path / "x", scheduler="serial")
    with pytest.raises(FileNotFoundError, match="missing.fits"):
        estimate("lsst_gri", [tmp_path / "missing.fits"], tmp_path / "x", scheduler="serial")
    with pytest.raises(ValueError, match="lens_fraction applies to the lens finder"):
        estimate("lsst_gri", [__file__], tmp_path / "x", scheduler="serial", lens_fraction=0.1)
    with pytest.raises(ValueError, match="shard_size"):
        simulate(_lsst(), 10, tmp_path / "y", shard_size=0, scheduler="serial")
    with pytest.raises(ValueError, match="seed"):
        simulate(_lsst(), 10, tmp_path / "y", seed=None, scheduler="serial")
    with pytest.raises(TypeError, match="simulator"):
        simulate("lsst", 10, tmp_path / "y", scheduler="serial")
    with pytest.raises(ValueError, match="workers"):
        get_client(workers=0)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_cli_simulate_workers_and_estimate_scheduler(tmp_path, capsys):
    from lenskit.cli import main

    d = tmp_path / "sims"
    assert main(["simulate", "-n", "10", "--instrument", "lsst", "--scheduler", "serial", "--shard-size", "5",
                 "--seed", "2", "-o", str(d), "-q"]) == 0
    assert ShardIndex.open(d).n == 10
    out = tmp_path / "est.asdf"
    assert main(["estimate", str(d), "--estimator", "lsst_gri", "--scheduler", "serial", "-o", str(out)]) == 0
    e = lenskit.read(out)
    assert len(e) == 10 and (tmp_path / "est.asdf.shards" / "index.json").exists()
    assert "10 row(s)" in capsys.readouterr().out
    assert main(["estimate", str(d / "shard-00000.asdf"), str(d / "shard-00001.asdf"), "--estimator",
                 "lsst_gri", "-o", str(tmp_path / "b.asdf")]) == 2
    assert "several inputs need --scheduler" in capsys.readouterr().err


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(tmp_path, steps):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "lenskit", "train", "--ddp", "--backend", "gloo",
           "--instrument", "lsst", "--steps", str(steps), "--batch-size", "4", "--validation-size", "8",
           "--checkpoint-every", "2", "--checkpoint", str(tmp_path / "ck.asdf"), "-o", str(tmp_path / "w.asdf"),
           "--overwrite"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)


def test_ddp_training_with_gloo_two_ranks(tmp_path):
    run = _torchrun(tmp_path, 4)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "2 data-parallel ranks, global batch 8" in run.stdout
    est = lenskit.load_estimator(tmp_path / "w.asdf")
    ddp = est.training["ddp"]
    assert ddp["world_size"] == 2 and ddp["backend"] == "gloo" and ddp["global_batch_size"] == 8
    assert ddp["weights_identical_on_all_ranks"] is True
    keys = [tuple(k) for k in ddp["rank_seed_keys"]]
    assert len(set(keys)) == 2  # each rank simulates its own lenses
    assert est.training["completed_steps"] == 4
    # resumed from the checkpoint by a second launch
    run = _torchrun(tmp_path, 6)
    assert run.returncode == 0, run.stderr[-3000:]
    est = lenskit.load_estimator(tmp_path / "w.asdf")
    assert est.training["completed_steps"] == 6
    assert len(est.predict(np.random.default_rng(0).normal(size=(2,) + est.in_shape).astype(np.float32))) == 2


def test_ddp_flag_outside_torchrun_is_a_clear_error(tmp_path, capsys, monkeypatch):
    from lenskit.cli import main

    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    assert main(["train", "--ddp", "-o", str(tmp_path / "w.asdf")]) == 2
    assert "torchrun --nproc_per_node" in capsys.readouterr().err
