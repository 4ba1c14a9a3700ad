"""Every file opened below a run directory: reached one component at a time, never through a link.

Why: a path checked and then opened can change in between. Exchanging `nn/` with a symlink
(renameat2 RENAME_EXCHANGE) while a checker resolved the path made a player load a file outside
the run 18 times in 25 s; O_NOFOLLOW guards only the last component. Here the run root is opened
once (a link *to* the run, or above it, is the user's own layout and is followed) and every
component below it is opened relative to the previous one's descriptor with O_NOFOLLOW, so what
is opened lies inside the run whatever happens meanwhile. A link below the root is refused with a
reason; it is never followed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
NOFOLLOW = os.O_NOFOLLOW


class LinkRefused(OSError):
    """A component below the run root is a symbolic link (or not a directory where one must be)."""


def parts_below(root: Path, path: Path | str) -> list[str]:
    """The components of `path` below `root` (a path under root, or a name relative to it).

    Lexical only ('a/../b' is 'b'); ValueError for a path that is not inside the root.
    """
    path = Path(path)
    if "\x00" in str(path):
        raise ValueError("a name with a NUL byte is not a file name")
    root_abs = os.path.abspath(root)
    full = os.path.abspath(path if path.is_absolute() or path.is_relative_to(root) else Path(root_abs) / path)
    relative = os.path.relpath(full, root_abs)
    if relative == "." or relative == ".." or relative.startswith(".." + os.sep):
        raise ValueError(f"{path} is not a name inside {root}")
    return list(Path(relative).parts)


def is_below(root: Path, path: Path | str) -> bool:
    """Whether `path` names something inside `root` (lexically, as `parts_below` decides)."""
    try:
        parts_below(root, path)
    except ValueError:
        return False
    return True


def _open_component(name: str, dir_fd: int, flags: int, mode: int = 0o644) -> int:
    try:
        return os.open(name, flags | NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    except OSError as err:
        if flags & os.O_DIRECTORY and err.errno in (errno.ELOOP, errno.ENOTDIR):
            raise LinkRefused(
                err.errno, f"{name}/ is a symbolic link or not a directory, which is not followed"
            ) from None
        if err.errno == errno.ELOOP:
            raise LinkRefused(err.errno, f"{name} is a symbolic link, which is not followed") from None
        raise


@contextlib.contextmanager
def open_dir(root: Path, parts: list[str], create: bool = False) -> Iterator[int]:
    """A descriptor of root/parts..., each directory below root opened without following a link."""
    fd = os.open(root, DIR_FLAGS)
    try:
        for part in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            child = _open_component(part, fd, DIR_FLAGS)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def open_in(root: Path, path: Path | str, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """A descriptor of the file `path` below `root`, no component below root followed if a link."""
    parts = parts_below(root, path)
    with open_dir(root, parts[:-1]) as dir_fd:
        return _open_component(parts[-1], dir_fd, flags, mode)


def scandir_in(root: Path, path: Path | str) -> list[tuple[str, os.stat_result]]:
    """(name, lstat) of each entry of a directory below root; links are listed as links, not followed.

    An entry removed while listing is left out.
    """
    parts = parts_below(root, path) if Path(path) != Path(root) else []
    listed = []
    with open_dir(root, parts) as fd:
        for name in os.listdir(fd):
            try:
                listed.append((name, os.stat(name, dir_fd=fd, follow_symlinks=False)))
            except FileNotFoundError:
                continue
    return listed


def unlink_in(root: Path, path: Path | str) -> None:
    parts = parts_below(root, path)
    with open_dir(root, parts[:-1]) as dir_fd:
        os.unlink(parts[-1], dir_fd=dir_fd)


def make_dirs_in(root: Path, path: Path | str) -> None:
    """Create a directory below root (and its parents) without passing through a link."""
    with open_dir(root, parts_below(root, path), create=True):
        pass


class RunLock:
    """An exclusive advisory lock on a file below a run (flock), opened without following links.

    filelock's FileLock opens its file with O_TRUNC and follows a link: a lock file that someone
    replaced by a link would truncate the file it points to. This one never truncates and refuses
    a link. Released on `release()`, on exit of a `with`, or when the process dies.
    """

    def __init__(self, root: Path, path: Path | str) -> None:
        self.root, self.path = root, Path(path)
        self.fd: int | None = None

    def acquire(self, blocking: bool = True) -> bool:
        fd = open_in(self.root, self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the only descriptor drops the flock
            self.fd = None

    @property
    def is_locked(self) -> bool:
        return self.fd is not None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
