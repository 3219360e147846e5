"""Atomic file replacement: a reader sees the old file or the complete new one, never a part.

The new content is written to a temporary file in the target's directory
(same file system, so the final rename is atomic), flushed and fsync'ed, then
renamed over the target with :func:`os.replace`, and the directory is
fsync'ed so the rename survives a power cut. If writing fails part-way (full
disk, a file-size limit, an exception) the temporary file is removed and the
old file is untouched. A process killed while writing leaves the old file
intact and, at worst, a stray ``.<name>.<random>.tmp`` next to it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from typing import BinaryIO


def _fsync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened; rename is durable enough
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a directory
        pass
    finally:
        os.close(fd)


def _link(tmp: str, target: str, name: str) -> bool:
    """Give ``tmp`` the name ``target`` unless it is taken; False where links are unsupported."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise FileExistsError(f"{name!r} exists; it was not overwritten") from None
    except OSError:  # no hard links here (some network and FAT file systems)
        if os.path.lexists(target):
            raise FileExistsError(f"{name!r} exists; it was not overwritten") from None
        return False
    os.unlink(tmp)
    return True


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str], overwrite: bool = True) -> Iterator[BinaryIO]:
    """A binary file to write; on a clean exit it atomically becomes ``path``.

    Parameters
    ----------
    path : str or PathLike
        The target. A symbolic link is followed: its target is replaced. A
        replaced file keeps its permission bits; a new one gets the umask's.
    overwrite : bool, default True
        False: raise :class:`FileExistsError` if ``path`` exists when the
        new content is ready (the new file is linked in place, which fails
        atomically if the name is taken; where hard links are not
        supported, existence is checked just before the rename).

    Yields
    ------
    BinaryIO
        The temporary file, opened for writing.
    """
    target = os.path.realpath(os.fspath(path))
    directory, name = os.path.split(target)
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
    # 0o666 filtered by the umask, as for any new file (not mkstemp's 0o600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with contextlib.suppress(FileNotFoundError):  # a replaced file keeps its permissions
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if overwrite or not _link(tmp, target, os.fspath(path)):
            os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory or ".")
