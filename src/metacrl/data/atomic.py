"""Atomic file writes: a reader sees the old file or the complete new one, never a partial one.

Files written here get the mode a plain ``open(path, "w")`` would give them (``0o666`` less
the process's umask), although the temporary file they start as is private (``0o600``).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "atomic_path",
    "current_umask",
    "fsync_directory",
    "remove_orphans",
    "write_bytes_atomic",
]


def fsync_directory(directory: Path) -> None:
    """Flush a directory entry to disk (a no-op where directories cannot be opened).

    Args:
        directory: The directory whose entries were just renamed.

    Example:
        >>> fsync_directory(Path("."))
    """
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def current_umask() -> int:
    """Return the process's umask without changing it (where the system lets us read it).

    Linux reports it in ``/proc/self/status``; elsewhere it is read by setting it and setting
    it back at once.

    Returns:
        The umask, e.g. ``0o022``.

    Example:
        >>> old = os.umask(0o027)
        >>> oct(current_umask())
        '0o27'
        >>> _ = os.umask(old)
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())


def _prefix(target: Path) -> str:
    return f".{target.name}.pid{os.getpid()}@{_host()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists but belongs to someone else
        return True
    return True


def remove_orphans(target: Path) -> list[Path]:
    """Delete temporary files of ``target`` left by killed writers on this machine.

    A writer killed outright (``SIGKILL``, power loss) cannot delete its temporary file. Such a
    file is never mistaken for ``target``, but may be large; this removes those whose writing
    process (named in the file name) no longer runs on this host. Files of live processes or of
    other hosts are left alone.

    Args:
        target: The final path whose temporary files to look for.

    Returns:
        The files removed.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     orphan = Path(d) / f".x.npy.pid999999999@{_host()}.abc.tmp"
        ...     _ = orphan.write_bytes(b"partial")
        ...     [p.name == orphan.name for p in remove_orphans(Path(d) / "x.npy")]
        [True]
    """
    pattern = re.compile(re.escape(f".{target.name}.pid") + r"(\d+)@([A-Za-z0-9_-]+)\.")
    removed = []
    host = _host()
    for path in target.parent.glob(f".{target.name}.pid*.tmp"):
        match = pattern.match(path.name)
        if match and match.group(2) == host and not _alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it replaces ``target``.

    The body writes the temporary file (closing it). On a normal exit the file gets the mode
    that the umask gives a new file (``0o666 & ~umask``: the temporary file starts private), is
    fsynced and moved onto ``target`` with :func:`os.replace`; on any exception
    (``KeyboardInterrupt`` included) it is deleted and ``target`` is left as it was.

    Args:
        target: The final path.

    Yields:
        The temporary path, in the same directory as ``target``.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     with atomic_path(Path(d) / "x.txt") as tmp:
        ...         _ = tmp.write_text("hi")
        ...     (Path(d) / "x.txt").read_text(), len(os.listdir(d))
        ('hi', 1)
    """
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=_prefix(target), suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(target.parent)


def write_bytes_atomic(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically (see :func:`atomic_path`).

    Args:
        target: The file to write.
        data: Its new content.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     write_bytes_atomic(Path(d) / "a.bin", b"abc")
        ...     (Path(d) / "a.bin").read_bytes()
        b'abc'
    """
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
