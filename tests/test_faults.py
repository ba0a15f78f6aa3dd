"""
Faults: a writer killed mid-write, corrupted blocks and shards, an alias bomb, a plugin name conflict.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import lenskit
from lenskit.core import LenskitCorruptFileError, LenskitFileError, LenskitPluginWarning
from lenskit.core.files import atomic_open, atomic_path, remove_stale_temporaries
from lenskit.io.asdf.preflight import check_header

WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    import lenskit
    from astropy.table import QTable

    path, n = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(int(sys.argv[3]))
    images = rng.normal(size=(n, 1, 192, 192)).astype(np.float32)
    ds = lenskit.LensDataset(images, QTable({"i": np.arange(n)}), bands=["F814W"], pixel_scale=0.04)
    print("ready", flush=True)
    while True:
        ds.write(path, overwrite=True)
""")


def _temporaries(directory, name):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(f".{name}."))


@pytest.mark.parametrize("delay", [0.05, 0.3, 0.9])
def test_kill_mid_write_leaves_old_or_new_file_never_a_partial_one(tmp_path, delay):
    target = tmp_path / "big.asdf"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(target), "400", "1"], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.time() + 60
        while not _temporaries(tmp_path, target.name) and time.time() < deadline:
            time.sleep(0.005)  # until a write is under way
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the final name holds a complete, verified file, or nothing at all
    if target.exists():
        ds = lenskit.read(target)
        assert ds.images.shape == (400, 1, 192, 192)
    left = _temporaries(tmp_path, target.name)
    assert len(left) == 1  # the writer loops, so a kill always lands in some write: its temporary stays
    # the killed writer's temporary (if it was mid-write) is removed by the next write of that name
    lenskit.LensDataset(np.ones((1, 1, 8, 8)), {"i": [0]}, bands=["g"], pixel_scale=0.2).write(target, overwrite=True)
    assert _temporaries(tmp_path, target.name) == []
    assert lenskit.read(target).images.shape == (1, 1, 8, 8)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_open(target, "w", overwrite=True) as f:
            f.write("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert _temporaries(tmp_path, "x.txt") == []


def test_stale_temporaries_of_live_processes_and_other_names_are_kept(tmp_path):
    from lenskit.core import files

    target = tmp_path / "x.asdf"
    mine = tmp_path / f".x.asdf.{files._HOST}.{os.getpid()}.abcd1234.tmp"  # this (live) process
    dead = tmp_path / f".x.asdf.{files._HOST}.999999999.abcd1234.tmp"  # no such process
    other_host = tmp_path / ".x.asdf.00000000.1.abcd1234.tmp"
    other_name = tmp_path / f".y.asdf.{files._HOST}.999999999.abcd1234.tmp"
    for p in (mine, dead, other_host, other_name):
        p.write_bytes(b"partial")
    removed = remove_stale_temporaries(target)
    assert removed == [dead]
    assert mine.exists() and other_host.exists() and other_name.exists()


def test_atomic_path_refuses_before_writing(tmp_path):
    (tmp_path / "exists.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="exists"):
        with atomic_path(tmp_path / "exists.txt"):
            raise AssertionError("the block must not run")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        with atomic_path(tmp_path / "absent" / "x.txt"):
            raise AssertionError("the block must not run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.txt"]


def _flip(path, offset_from_block=300, n=200):
    b = bytearray(path.read_bytes())
    i = b.find(b"\xd3BLK")
    for k in range(n):
        b[i + offset_from_block + k] ^= 0x5A
    path.write_bytes(bytes(b))


def test_corrupted_block_is_refused(tmp_path):
    ds = lenskit.Simulator(instrument="lsst", seed=3).sample(3)
    path = tmp_path / "d.asdf"
    ds.write(path)
    assert lenskit.read(path) == ds
    _flip(path)
    with pytest.raises(LenskitCorruptFileError, match="does not match its checksum"):
        lenskit.read(path)


def test_resumed_simulation_redoes_a_corrupted_shard(tmp_path):
    pytest.importorskip("distributed")
    from lenskit.distributed import ShardIndex, simulate

    sim = lenskit.Simulator(instrument="lsst", seed=0)
    first = simulate(sim, 12, tmp_path / "run", shard_size=4, seed=7, scheduler="serial")
    reference = first.concatenate()
    _flip(tmp_path / "run" / "shard-00001.asdf")
    # reading the corrupted run fails loudly instead of returning corrupted values
    with pytest.raises(LenskitFileError, match="checksum"):
        ShardIndex.open(tmp_path / "run").concatenate()
    again = simulate(sim, 12, tmp_path / "run", shard_size=4, seed=7, scheduler="serial")
    assert [bool(s.get("resumed")) for s in again.shards] == [True, False, True]
    assert again.concatenate() == reference
    # without an index the shard's own checksums decide
    _flip(tmp_path / "run" / "shard-00002.asdf")
    (tmp_path / "run" / "index.json").unlink()
    third = simulate(sim, 12, tmp_path / "run", shard_size=4, seed=7, scheduler="serial")
    assert [bool(s.get("resumed")) for s in third.shards] == [True, True, False]
    assert third.concatenate() == reference


def test_chunk_size_is_recorded_so_runs_with_another_stream_do_not_mix(tmp_path):
    pytest.importorskip("distributed")
    from lenskit.distributed import simulate

    a = lenskit.Simulator(instrument="lsst", chunk_size=8)
    b = lenskit.Simulator(instrument="lsst", chunk_size=4)
    assert a.config["chunk_size"] == 8 and b.config["chunk_size"] == 4
    simulate(a, 4, tmp_path / "run", shard_size=4, seed=1, scheduler="serial")
    with pytest.raises(FileExistsError, match="different run"):
        simulate(b, 4, tmp_path / "run", shard_size=4, seed=1, scheduler="serial")
    assert lenskit.read(tmp_path / "run" / "shard-00000.asdf").provenance.config["chunk_size"] == 8


def test_alias_bomb_is_refused_in_under_a_second(tmp_path):
    head = b"#ASDF 1.0.0\n#ASDF_STANDARD 1.5.0\n%YAML 1.1\n%TAG ! tag:stsci.edu:asdf/\n--- !core/asdf-1.1.0\n"
    lines = [b"a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for k in range(9):  # 10**10 nodes once expanded
        prev, cur = chr(97 + k).encode(), chr(98 + k).encode()
        lines.append(cur + b": &" + cur + b" [" + b", ".join([b"*" + prev] * 10) + b"]")
    path = tmp_path / "bomb.asdf"
    path.write_bytes(head + b"\n".join(lines) + b"\n...\n")
    assert path.stat().st_size < 700
    t0 = time.perf_counter()
    with pytest.raises(LenskitFileError, match="alias bomb"):
        lenskit.read(path)
    assert time.perf_counter() - t0 < 1.0


def test_header_check_passes_every_shipped_and_written_file(tmp_path):
    from lenskit.estimators.pretrained import WEIGHTS_DIR

    for f in WEIGHTS_DIR.glob("*.asdf"):
        distinct, expanded = check_header(f)
        assert expanded <= 2 * distinct
    ds = lenskit.Simulator(instrument="lsst", seed=1).sample(2)
    ds.write(tmp_path / "d.asdf")
    check_header(tmp_path / "d.asdf")


def test_plugin_name_conflict_fails_that_name_only_and_is_reported(fake_plugin, capsys):
    from lenskit.cli import main

    fake_plugin("clashing", """
        from lenskit.plugins import hookimpl
        from lenskit.mass_models.shear import ExternalShear

        class MyShear(ExternalShear):
            name = "my_shear"

        @hookimpl
        def lenskit_register_implementations():
            return {"mass_model": {"sie": "lenskit.mass_models.shear:ExternalShear", "my_shear": MyShear}}
    """)
    with pytest.warns(LenskitPluginWarning, match="mass_model 'sie' is registered by several plugins"):
        names = lenskit.available("mass_model")
    assert "sie" not in names and "my_shear" in names and "external_shear" in names
    with pytest.raises(lenskit.LenskitPluginError, match="several plugins"):
        lenskit.get("mass_model", "sie")
    assert lenskit.get("mass_model", "my_shear").name == "my_shear"
    assert main(["plugins", "--json"]) == 1
    rows = {r["plugin"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["clashing"]["status"] == "conflict" and rows["clashing"]["error"] is None
    assert "mass_model 'sie'" in rows["clashing"]["conflicts"][0]
    assert main(["plugins"]) == 1
    assert "conflict: mass_model 'sie' is registered by several plugins" in capsys.readouterr().out


def test_kill_leaves_no_partial_checkpoint(tmp_path):
    """A checkpoint is written by the same atomic writer: an interrupted write leaves the previous one."""
    import torch

    from lenskit.estimators.training import write_checkpoint

    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters())
    path = tmp_path / "ck.asdf"
    write_checkpoint(path, "lenskit_checkpoint", net, opt, {"step": 1})
    good = path.read_bytes()

    class Exploding(dict):
        def items(self):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_checkpoint(path, "lenskit_checkpoint", net, opt, {"step": 2, "history": Exploding()})
    assert path.read_bytes() == good
    assert _temporaries(tmp_path, "ck.asdf") == []


def test_unreachable_scheduler_is_a_clear_error_before_any_write(tmp_path):
    pytest.importorskip("distributed")
    import socket

    from lenskit.core import LenskitError
    from lenskit.distributed import get_client, simulate

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LenskitError, match="could not reach the Dask scheduler"):
        get_client(scheduler=f"tcp://127.0.0.1:{port}", connect_timeout=2)
    import lenskit.scale.survey as dist  # where simulate looks up get_client

    original = dist.get_client
    try:
        dist.get_client = lambda *a, **k: original(*a, **{**k, "connect_timeout": 2})
        with pytest.raises(LenskitError, match="nothing was written"):
            simulate(lenskit.Simulator(instrument="lsst"), 4, tmp_path / "run", scheduler=f"tcp://127.0.0.1:{port}")
    finally:
        dist.get_client = original
    assert not (tmp_path / "run").exists()


def test_concatenated_shards_record_their_own_image_checksum(tmp_path):
    pytest.importorskip("distributed")
    from lenskit.core.provenance import array_checksum
    from lenskit.distributed import simulate

    ds = simulate(lenskit.Simulator(instrument="lsst"), 6, tmp_path / "run", shard_size=3, seed=2,
                  scheduler="serial").concatenate()
    assert ds.provenance.checksums["images"] == array_checksum(ds.images)
