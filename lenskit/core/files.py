"""
Atomic file writes: the one way lenskit puts a file under its final name.

Every product (datasets, estimates, weights, checkpoints, shard indices, FITS
tables, downloads) is written to a temporary file beside its target, flushed
and ``fsync``-ed, renamed into place with `os.replace` (atomic on POSIX and
Windows), and the directory entry is ``fsync``-ed too, so that after a crash or
a kill the final name holds either the old file or the complete new one, never
a partial file.

Temporaries are named ``.<name>.<host>.<pid>.<token>.tmp``.  A process killed
mid-write (``SIGKILL``, power loss) cannot remove its own; the next write of
the same name removes every temporary of that name whose process (on this
host) no longer runs, and any other exit removes the process's temporaries
through `atexit`.
"""

import atexit
import contextlib
import hashlib
import os
import re
import secrets
import socket
import threading
import time
from pathlib import Path

__all__ = ["atomic_path", "atomic_open", "check_output_path", "remove_stale_temporaries"]

_LIVE = set()
_LOCK = threading.Lock()
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_PATTERN = re.compile(r"^\.(?P<name>.+)\.(?P<host>[0-9a-f]{8})\.(?P<pid>\d+)\.[0-9a-f]+\.tmp$")
# lenskit before 0.2 named its temporaries .<name>.<random>.tmp (tempfile.mkstemp), without an owner
_LEGACY = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp$")
_LEGACY_AGE = 24 * 3600.0


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_temporaries(path):
    """
    Remove the temporaries of ``path`` left by writers that were killed.

    Only temporaries made on this host by a process that no longer runs are
    removed (and, from older lenskit versions, unowned ones more than a day
    old).  Returns the paths removed.
    """
    path = Path(path)
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith("." + path.name + "."):
            continue
        m = _PATTERN.match(entry.name)
        stale = False
        if m and m["name"] == path.name:
            stale = m["host"] == _HOST and not _alive(int(m["pid"]))
        elif (lm := _LEGACY.match(entry.name)) and lm["name"] == path.name:
            with contextlib.suppress(OSError):
                stale = time.time() - entry.stat().st_mtime > _LEGACY_AGE
        if stale:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def check_output_path(path, overwrite=False, name="path"):
    """
    Check, before any work, that ``path`` can be written.

    Raises `FileExistsError` when it exists and ``overwrite`` is false,
    `FileNotFoundError` when its directory does not exist, `IsADirectoryError`
    when it is a directory and `PermissionError` when the directory is not
    writable; every message names the argument.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{name} {path} is a directory; expected a file name")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{name} {path} exists; pass overwrite=True (--overwrite) to replace it")
    parent = path.parent
    if not parent.exists():
        raise FileNotFoundError(f"the directory of {name} {path} ({parent}) does not exist")
    if not parent.is_dir():
        raise NotADirectoryError(f"the directory of {name} {path} ({parent}) is not a directory")
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"the directory of {name} {path} ({parent}) is not writable")
    return path


def _fsync_dir(directory):
    if os.name != "posix":  # pragma: no cover - directories cannot be opened for fsync elsewhere
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path, overwrite=False, name="path"):
    """
    Yield a temporary path to write; on success it replaces ``path`` atomically.

    The temporary sits in the target's directory (so the rename cannot cross
    file systems).  If the block raises, or the process exits early, the
    temporary is removed and an existing ``path`` stays as it was.

    Parameters
    ----------
    path : path-like
        The final name.
    overwrite : bool
        Replace an existing file (otherwise `FileExistsError`, before any work).
    name : str
        The argument's name in error messages.

    Examples
    --------
    >>> with atomic_path("out.txt", overwrite=True) as tmp:   # doctest: +SKIP
    ...     Path(tmp).write_text("done")
    """
    path = check_output_path(path, overwrite=overwrite, name=name)
    remove_stale_temporaries(path)
    tmp = path.parent / f".{path.name}.{_HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    with _LOCK:
        _LIVE.add(tmp)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written for {path}")
        _fsync_file(tmp)
        if not overwrite and path.exists():  # appeared while we wrote: never clobber it
            raise FileExistsError(f"{name} {path} was created by someone else while lenskit wrote it")
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        with _LOCK:
            _LIVE.discard(tmp)


@contextlib.contextmanager
def atomic_open(path, mode="wb", overwrite=False, name="path", **kwargs):
    """`atomic_path` as an open file (``mode`` ``"wb"`` or ``"w"``), flushed before the rename."""
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w'; got {mode!r}")
    with atomic_path(path, overwrite=overwrite, name=name) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()


@atexit.register
def _remove_live():  # pragma: no cover - runs at interpreter exit
    for tmp in list(_LIVE):
        with contextlib.suppress(OSError):
            os.unlink(tmp)
