"""Reading a file the user named, bounded before a byte is read.

Every path mlsensors reads on a user's word (an image, a gallery, a key, a token, an
audio clip) can be a FIFO that never answers, a device that never ends (/dev/zero), a
folder, or a file far larger than the thing it claims to be. `read_regular` opens
without blocking, checks on the open descriptor (so the answer cannot change between
check and read) that it is a regular file no larger than the caller's limit, and only
then reads; anything else is one InputError line naming the path and the problem.
"""

from __future__ import annotations

import os
import stat

from mlsensors.errors import InputError, SourceError


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def open_regular(path: str | os.PathLike[str], limit: int, what: str = "file") -> int:
    """An open, read-only descriptor of the regular file at `path`, no larger than `limit`
    bytes; the caller closes it. The errors of `read_regular`."""
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise SourceError(f"{what} {name}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{what} {name} is a folder, not a file") from None
    except OSError as e:
        try:  # a socket cannot be opened at all (ENXIO): say what it is
            mode = os.stat(name).st_mode
        except OSError:
            mode = stat.S_IFREG
        if not stat.S_ISREG(mode):
            raise InputError(f"{what} {name} is {_kind(mode)}, not a regular file") from None
        raise SourceError(f"{what} {name}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{what} {name} is {_kind(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise InputError(f"{what} {name} is {_size(st.st_size)}, more than the "
                             f"{_size(limit)} allowed")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | os.PathLike[str], limit: int, what: str = "file",
                 *, head: int | None = None) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` of them (with `head`,
    only its first `head` bytes, the whole file still held to `limit`).

    Raises SourceError when the path cannot be opened (missing, no permission) and
    InputError when it is not a regular file or is larger than `limit`; both messages
    start with `what` and the path.
    """
    name = os.fspath(path)
    fd = open_regular(name, limit, what)
    want = limit if head is None else min(head, limit)
    try:
        # One read of the size fstat gave (plus one byte, to see a file that grew), so
        # the bytes are held once, not as chunks and their join.
        parts = [os.read(fd, min(want, os.fstat(fd).st_size) + 1)]
        total = len(parts[0])
        while total <= want:
            chunk = os.read(fd, min(1 << 20, want + 1 - total))
            if not chunk:
                break
            parts.append(chunk)
            total += len(chunk)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if total > want:
            if head is None:  # it grew while we read it
                raise InputError(f"{what} {name} is more than the {_size(limit)} allowed")
            data = data[:want]
        return data
    except OSError as e:
        raise SourceError(f"{what} {name}: {e.strerror or e}") from None
    finally:
        os.close(fd)
