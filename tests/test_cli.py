import subprocess
import sys

import pytest

import lenskit
from lenskit.cli import main


def test_plugins_table(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "lenskit" in out and "sie" in out and "hst_wfc3" in out


def test_simulate_writes_dataset(tmp_path, capsys):
    out = tmp_path / "lsst.asdf"
    assert main(["simulate", "-n", "3", "-o", str(out), "--instrument", "lsst", "--bands", "r", "--seed", "1",
                 "-q"]) == 0
    ds = lenskit.read(out)
    assert ds.images.shape == (3, 1, 57, 57)
    assert main(["simulate", "-n", "3", "-o", str(out), "-q"]) == 2  # exists, no --overwrite
    assert "exists" in capsys.readouterr().err


def test_simulate_bad_band(tmp_path, capsys):
    assert main(["simulate", "-n", "1", "-o", str(tmp_path / "x.asdf"), "--instrument", "lsst", "--bands", "q"]) == 2
    assert "unknown band" in capsys.readouterr().err
    assert not (tmp_path / "x.asdf").exists()


def test_demo(tmp_path, capsys):
    assert main(["demo", "-n", "6", "-o", str(tmp_path), "-q"]) == 0
    out = capsys.readouterr().out
    assert "read back bit for bit" in out
    assert (tmp_path / "hst_lenses.asdf").exists() and (tmp_path / "hst_gallery.png").stat().st_size > 10000


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "lenskit.cli", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("plugins", "demo", "simulate"):
        assert cmd in out.stdout


@pytest.mark.parametrize("argv", [["--version"]])
def test_version(argv, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert lenskit.__version__ in capsys.readouterr().out
