"""Reading and writing the small files processes exchange: bounded, non-blocking, atomic.

Every file under a run may be missing, torn, hand-edited, a FIFO, a link or huge; readers here never
block, never follow a link in the last component and never read more than they allow. Writers
replace a file by rename so that readers see the old or the new one, never a part. Given the run's
root (`root=`), no component below it is followed if it is a link (runfs), so neither a reader nor
a writer can be led outside the run, even by a directory swapped for a link mid-call.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import isaacgymenvs.protocol.runfs as runfs

JSON_MAX_BYTES = 64 * 1024  # state/status/manifest files are a few hundred bytes
JSON_MAX_DEPTH = 16  # ours are 2 deep; json's recursion would die at ~1000 levels


class UnreadableFile(OSError):
    """A file that is not a regular file, too large or unreadable; the message says which."""


def _open_for_reading(path: Path, follow_links: bool, root: Path | None) -> int:
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if root is not None:
        try:
            return runfs.open_in(root, path, flags)
        except runfs.LinkRefused as err:
            where = "" if err.strerror.startswith(f"{path.name} ") else f"{path.name}: "  # a folder on the way
            raise UnreadableFile(f"{where}{err.strerror}") from None
        except ValueError:
            raise UnreadableFile(f"{path.name} is not inside the run directory; it is not read") from None
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(path, flags)
    except OSError as err:
        if err.errno == errno.ELOOP and not follow_links:
            raise UnreadableFile(f"{path.name} is a symbolic link, which is not followed") from None
        raise


def open_regular_file(path: Path, max_bytes: int, follow_links: bool = True, root: Path | None = None) -> int:
    """A read-only fd of `path` if it is a regular file of at most `max_bytes`, else UnreadableFile.

    O_NONBLOCK: opening a FIFO (or a device) that someone put under a watched name must not block
    the reader until a writer appears; the fstat afterwards refuses it. Without `follow_links` a
    symlink in the last component is refused (O_NOFOLLOW): the run's own small files are replaced
    by rename, never linked, so a link there can only lead somewhere we must not read. With `root`
    (the run directory) no component below the root is followed (runfs).
    """
    try:
        fd = _open_for_reading(path, follow_links, root)
    except (FileNotFoundError, UnreadableFile):
        raise
    except OSError as err:
        raise UnreadableFile(f"cannot open {path.name} ({err.strerror or err})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableFile(f"{path.name} is not a regular file")
        if st.st_size > max_bytes:
            raise UnreadableFile(f"{path.name} is {st.st_size} bytes, more than the {max_bytes} allowed")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bounded(path: Path, max_bytes: int, root: Path | None = None) -> bytes:
    """The bytes of a regular, non-symlink file of at most `max_bytes` (FileNotFoundError if absent).

    Never blocks on special files, never follows a link out of the run, and never reads more than
    `max_bytes` + 1, even if the file grows while it is read.
    """
    fd = open_regular_file(path, max_bytes, follow_links=False, root=root)
    with os.fdopen(fd, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnreadableFile(f"{path.name} grew beyond the {max_bytes} bytes allowed")
    return data


def json_depth(text: str) -> int:
    """Deepest nesting of [ and { outside strings: lets a reader refuse deep JSON before parsing."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def parse_json_object(raw: bytes, name: str) -> tuple[dict[str, Any] | None, str | None]:
    """(object, None) or (None, why): bytes from disk to a JSON object, refusing deep nesting first."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, f"{name} is not UTF-8 text"
    if json_depth(text) > JSON_MAX_DEPTH:
        return None, f"{name} is nested deeper than {JSON_MAX_DEPTH} levels"
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None, f"{name} is not valid JSON"
    if not isinstance(value, dict):
        return None, f"{name} is not a JSON object"
    return value, None


def read_json_object(path: Path, root: Path | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """(object, None); (None, None) when absent; (None, why) when unusable. Never blocks or raises."""
    try:
        raw = read_bounded(path, JSON_MAX_BYTES, root)
    except FileNotFoundError:
        return None, None
    except UnreadableFile as err:
        return None, str(err)
    except OSError as err:
        return None, f"cannot read {path.name} ({err.strerror or err})"
    return parse_json_object(raw, path.name)


_temp_counter = 0


def atomic_write(
    path: Path, write: Callable[[BinaryIO], None], root: Path | None = None, digest: bool = False
) -> tuple[int, str] | None:
    """Replace `path` with what `write(file)` writes; a reader sees old or new, never a part.

    A temp file in the same directory (so the rename stays on one filesystem), created exclusively
    and never through a link, fsync, rename, then fsync the directory so that the rename itself
    survives a crash. With `root`, the directory is reached below the run without following links.
    `digest`: return the written file's (size, sha256 hex).
    """
    global _temp_counter
    _temp_counter += 1
    tmp = f".{path.name}.tmp-{os.getpid()}-{_temp_counter}"
    parts = runfs.parts_below(root, path)[:-1] if root is not None else []
    result = None
    with runfs.open_dir(root if root is not None else path.parent, parts) as dir_fd:
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o644, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "w+b") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
                if digest:
                    result = file_digest(f)
            os.replace(tmp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        os.fsync(dir_fd)
    return result


def atomic_write_bytes(path: Path, data: bytes, root: Path | None = None) -> None:
    """`atomic_write` of a bytes object."""
    atomic_write(path, lambda f: f.write(data), root)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Temp files are hidden and end in .tmp-<pid>-<n>: no reader's *.pth / *.json pattern matches them.
TEMP_GLOB = ".*.tmp-*"


TEMP_PID_RE = re.compile(r"\.tmp-(?P<pid>\d+)-\d+$")
# A temp file lives for the milliseconds of one write; one this old has no writer any more, even
# if its pid (maybe of another host on a shared filesystem) happens to be alive here.
STALE_TEMP_SECONDS = 600.0


def writer_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # exists but belongs to someone else (or an absurd pid: treat as foreign)
    return True


def file_digest(f: BinaryIO) -> tuple[int, str]:
    """(size, sha256 hex) of an open file, read from its start (the file just written, not a path
    that could meanwhile name another)."""
    f.seek(0)
    return os.fstat(f.fileno()).st_size, hashlib.file_digest(f, "sha256").hexdigest()


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type when empty), at most 120 characters."""
    text = str(err).strip()
    return text.splitlines()[0][:120] if text else type(err).__name__


# Filesystem events (watchdog's event types) that change what a name holds. watchdog >= 4 also
# reports opens and closes without a write: a watcher that reacts to those wakes itself by reading,
# which made a player read the state file ~4,500 times a second (a whole core).
CHANGE_EVENTS = frozenset({"created", "modified", "moved", "deleted", "closed"})


def is_change_event(event_type: str) -> bool:
    """Whether a watchdog event of this type can mean new content (not a mere read)."""
    return event_type in CHANGE_EVENTS
