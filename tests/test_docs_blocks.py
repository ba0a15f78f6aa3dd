"""
Every Python block of the documentation runs as written: a page's blocks in order, in one fresh interpreter,
in an empty folder.  A block that needs what CI cannot have says so in the comment before it
(``.. needs ...``) and is left out.  Slow (minutes): run with ``-m slow`` (CI's second step).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
SHARED_DATA = Path(os.environ.get("LENSKIT_SHARED", DOCS.parents[1] / "shared")) / "data"
BLOCK = re.compile(r"(\.\. needs [^\n]*\n\n)?\.\. code-block:: python\n\n((?:    [^\n]*\n|\n)+)")


def _blocks(page):
    out = []
    for m in BLOCK.finditer(page.read_text()):
        if m.group(1):
            continue
        out.append("\n".join(line[4:] for line in m.group(2).split("\n")).rstrip() + "\n")
    return out


PAGES = sorted(p for p in DOCS.glob("*.rst") if _blocks(p))


def test_the_docs_have_python_blocks():
    assert len(PAGES) >= 8 and sum(len(_blocks(p)) for p in PAGES) >= 11


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_docs_page_blocks_run(page, tmp_path):
    script = "\n".join(_blocks(page))
    if "lenskit.scale" in script:
        pytest.importorskip("distributed")
    env = dict(os.environ)
    if "slacs_lenses(" in script:  # the real lenses users download: from the development data, offline
        if not SHARED_DATA.is_dir():
            pytest.skip(f"{page.name} models real lenses, which CI reads from {SHARED_DATA} (absent here)")
        env.update(LENSKIT_DATA_MIRROR=SHARED_DATA.as_uri(), LENSKIT_DATA_DIR=str(tmp_path / "cache"))
    path = tmp_path / f"{page.stem}_blocks.py"
    path.write_text(script)
    proc = subprocess.run([sys.executable, str(path)], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env=env)
    assert proc.returncode == 0, f"{page.name}'s blocks failed:\n{script}\n{proc.stderr[-3000:]}"
