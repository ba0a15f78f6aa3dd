"""Shared fixtures: paths to the shared real data and helpers for plugin tests."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATA = SHARED / "data"
REFERENCE = SHARED / "reference"


def _need(path):
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared data folder sits beside the lenskit checkout "
                    "in the development setup only")
    return path


@pytest.fixture(scope="session")
def shared_data():
    """Path to ../shared/data (skips when absent)."""
    return _need(DATA)


@pytest.fixture(scope="session")
def sie_reference():
    """Path to ../shared/reference/sie (skips when absent)."""
    return _need(REFERENCE / "sie")


@pytest.fixture
def fresh_registry():
    """Rebuild the plugin registry before and after the test."""
    from lenskit.plugins import reset

    reset()
    yield
    reset()


@pytest.fixture
def fake_plugin(tmp_path, monkeypatch, fresh_registry):
    """
    Create an installed-looking distribution with a ``lenskit.plugins`` entry point.

    Usage: ``fake_plugin("name", "module source")``; the entry point points at the
    module ``<name>_hooks`` built from the given source.
    """

    def make(name, source, version="0.3.1"):
        module = f"{name}_hooks"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        dist = tmp_path / f"{name}-{version}.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (dist / "entry_points.txt").write_text(f"[lenskit.plugins]\n{name} = {module}\n")
        return module

    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    importlib.invalidate_caches()
    return make


@pytest.fixture(scope="session")
def example_plugin_site(tmp_path_factory):
    """Install examples/plugin_package with pip into a private folder; return that folder."""
    target = tmp_path_factory.mktemp("plugin_site")
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
           "--disable-pip-version-check", "--target", str(target), str(ROOT / "examples" / "plugin_package")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"installing the example plugin failed:\n{proc.stdout}\n{proc.stderr}")
    return target
