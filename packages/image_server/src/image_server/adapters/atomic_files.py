"""Crash-safe file primitives shared by the filesystem adapters.

A crash or a full disk at any moment must leave the old or the new file whole, never
a truncated one; reads must never follow a symlink planted on the data volume; and a
read-modify-write of a shared file must not lose another process's update.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from image_core.errors import StorageError

TEMP_SUFFIX = ".tmp"
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_SYMLINK_ERRNOS = frozenset({errno.ELOOP, errno.EMLINK})
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV})


def write_atomic(
    path: Path, data: bytes, *, mode: int = 0o600, overwrite: bool = True, durable: bool = True
) -> os.stat_result:
    """Write ``data`` to ``path`` so readers and crashes only ever see a whole file.

    The temp file lives in the same folder (so the rename is atomic), starts with a
    dot and ends in ``.tmp`` (so no public name or record scan can match it) and is
    removed on any failure. With ``overwrite=False`` an existing ``path`` raises
    ``FileExistsError`` atomically (a hard link never replaces its target). With
    ``durable=False`` nothing is flushed to the disk (file and folder stay in the page
    cache): for short-lived state a flood must not turn into a queue of disk flushes.
    Returns the written file's status (a rename keeps size and mtime).
    """
    directory = path.parent
    temp = directory / f".{path.name}.{secrets.token_hex(8)}{TEMP_SUFFIX}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC, mode)
    try:
        try:
            _write_all(fd, data)
            if durable:
                os.fsync(fd)
            info = os.fstat(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(temp, path)
        else:
            _publish_new(temp, path)
    except BaseException:
        remove_quietly(temp)
        raise
    if durable:
        fsync_dir(directory)
    return info


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` may write less than asked (signals, quotas): loop until done."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _publish_new(temp: Path, path: Path) -> None:
    """Move ``temp`` to ``path`` unless ``path`` exists, without a check-then-act race."""
    try:
        os.link(temp, path)
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        # Some network or FUSE volumes have no hard links: fall back to a plain check.
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path.name) from None
        os.replace(temp, path)
    else:
        os.unlink(temp)


def storage_error(action: str, exc: OSError) -> StorageError:
    """A ``StorageError`` saying what failed and why, without the folder's path."""
    if exc.errno in {errno.ENOSPC, errno.EDQUOT}:
        reason = "the disk is full"
    elif exc.errno:
        reason = os.strerror(exc.errno).lower()
    else:
        reason = "an input/output error"
    return StorageError(f"Could not {action}: {reason}.")


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_files(paths: Iterable[Path]) -> None:
    """Unlink each of ``paths`` in order; missing ones are fine, any other failure is said."""
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise storage_error(f"delete {path.name}", exc) from exc


def remove_quietly(path: Path) -> None:
    """Unlink ``path`` if present; cleanup must never hide the error that caused it."""
    with contextlib.suppress(OSError):
        os.unlink(path)


def open_regular_file(
    path: Path | str, *, dir_fd: int | None = None
) -> tuple[int, os.stat_result] | None:
    """Open ``path`` read-only as a file descriptor, or ``None`` if it is not a regular file.

    A symlink (``O_NOFOLLOW``), a folder, a FIFO or a device all count as absent, so a
    planted link never exposes another file; ``O_NONBLOCK`` keeps a FIFO from hanging
    the open. ``dir_fd`` resolves a bare name in an open folder (fast bulk reads). The
    caller owns the descriptor and must close it.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno in _SYMLINK_ERRNOS:
            return None
        raise
    try:
        info = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return None
    return fd, info


def read_regular_file(path: Path | str, *, dir_fd: int | None = None) -> bytes | None:
    """The bytes of ``path``, or ``None`` when it is missing or not a regular file."""
    opened = open_regular_file(path, dir_fd=dir_fd)
    if opened is None:
        return None
    fd, info = opened
    try:
        data = os.read(fd, info.st_size + 1)
        if len(data) == info.st_size:  # the common case: one read, no EOF probe
            return data
        parts = [data]  # changed since fstat, or too large for one read
        while parts[-1]:
            parts.append(os.read(fd, 1 << 20))
        return b"".join(parts)
    finally:
        os.close(fd)


def is_regular_file(path: Path) -> bool:
    """Whether ``path`` itself (not a symlink's target) is a regular file."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def remove_stale_temps(directory: Path, older_than_seconds: float = 3600.0) -> int:
    """Delete temp files a crash left behind; young ones may belong to a live writer."""
    cutoff = time.time() - older_than_seconds
    removed = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            if not (entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX)):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if info.st_mtime < cutoff:
                remove_quietly(Path(entry.path))
                removed += 1
    return removed


class FileLock:
    """Mutual exclusion across threads and processes around a read-modify-write.

    ``flock`` holds across processes (each acquisition opens its own descriptor, so
    it also excludes other instances in this process); the threading lock makes
    threads sharing this instance wait without touching the descriptor it holds.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._thread_lock = threading.Lock()
        self._fd: int | None = None

    def __enter__(self) -> FileLock:
        self._thread_lock.acquire()
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | _CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
        except BaseException:
            self._thread_lock.release()
            raise
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        fd, self._fd = self._fd, None
        try:
            if fd is not None:
                os.close(fd)  # closing the last descriptor releases the flock
        finally:
            self._thread_lock.release()
