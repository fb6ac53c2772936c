"""Writing public/: files replaced atomically on a few threads, and the manifest of what the last build rendered."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

__all__ = ["BuildCache", "Writer", "fresh", "same_bytes", "same_file"]


class BuildCache:
    """What the last build rendered (file keys, sizes, mtimes), in var/cache/.

    It only saves time: missing, damaged or stale, the build renders and compares everything.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.raw = b""
        try:
            self.raw = path.read_bytes()
            data = json.loads(self.raw)
            self.files: dict[str, list] = dict(data["files"])
        except (OSError, ValueError, KeyError, TypeError):
            self.files = {}

    def save(self) -> None:
        data = json.dumps({"files": self.files}, separators=(",", ":")).encode()
        if data == self.raw:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with Writer(self.path.parent, threads=1) as writer:
                writer.write(self.path, data)
        except OSError:
            return  # public/ is already right; the next build just renders more


def fresh(target: Path, entry: list | None, key: str) -> bool:
    """The file was rendered from ``key`` and nobody has touched it since."""
    if not entry or len(entry) != 3 or entry[0] != key:
        return False
    try:
        stat = target.stat()
    except OSError:
        return False
    return [stat.st_size, stat.st_mtime_ns] == entry[1:]


def same_bytes(target: Path, data: bytes) -> bool:
    try:
        with open(target, "rb") as stream:
            # One read past the expected size tells a longer file apart without a separate stat.
            return stream.read(len(data) + 1) == data
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return False


def same_file(target: Path, source: Path) -> bool:
    try:
        ours, theirs = target.stat(), source.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    if ours.st_size != theirs.st_size:
        return False
    # copies keep the source's mtime, so an equal mtime means an earlier build copied this very file.
    return ours.st_mtime_ns == theirs.st_mtime_ns or target.read_bytes() == source.read_bytes()


_IN_FLIGHT = 64


class Writer:
    """Atomic file replacement on a few threads, creating each folder once per build.

    Creating a file or a folder is mostly kernel time (about half a millisecond each on a busy
    disk), which a thread spends without the GIL while the build renders the next page. ``wait``
    returns once everything handed over is written, raising the first failure; ``stamps`` then
    holds each written file's size and mtime (plain tuples: a future or a stat result per file,
    kept to the end of a stage, was 40 MB at 10,000 releases). At most ``_IN_FLIGHT`` files wait
    to be written: rendering outruns a slow disk, and 10,000 pages held in a queue are 80 MB.
    """

    def __init__(self, public: Path, *, threads: int = min(4, os.cpu_count() or 1)) -> None:
        self.public = public
        self.folders: set[Path] = {public}
        self.making_folders = threading.Lock()  # two files of one new folder: one thread makes it
        self.names = itertools.count()
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pressroom-write")
        self.pending: deque[Future[None]] = deque()
        self.stamps: dict[Path, tuple[int, int]] = {}

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.pool.shutdown(wait=True)

    def write(self, target: Path, data: bytes, *, like: Path | None = None) -> None:
        """Replace ``target`` with ``data`` soon (done, at the latest, when ``wait`` returns)."""
        while len(self.pending) >= _IN_FLIGHT:
            self.pending.popleft().result()
        self.pending.append(self.pool.submit(_replace, self, target, data, like))

    def wait(self) -> None:
        while self.pending:
            self.pending.popleft().result()

    def folder(self, folder: Path) -> None:
        if folder in self.folders:
            return
        with self.making_folders:
            self._make(folder)

    def _make(self, folder: Path) -> None:
        if folder in self.folders:
            return
        self._make(folder.parent)
        try:
            os.mkdir(folder)
        except FileExistsError:
            if os.path.islink(folder) or not os.path.isdir(folder):
                os.unlink(folder)  # an earlier build had a file where this build needs a folder
                os.mkdir(folder)
        self.folders.add(folder)


def _replace(writer: Writer, target: Path, data: bytes, like: Path | None) -> None:
    """Replace ``target`` in one step, so a reader (or a crash) never sees half a file."""
    writer.folder(target.parent)
    temporary = target.parent / f".tmp-{os.getpid()}-{id(writer):x}-{next(writer.names)}"
    try:
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(handle, 0o644)  # whatever the umask: the web server must be able to read it
            stream.write(data)
            stream.flush()
            if like is not None:
                stat = like.stat()
                os.utime(handle, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            written = os.fstat(handle)
        try:
            os.replace(temporary, target)
        except IsADirectoryError:
            shutil.rmtree(target)  # an earlier build had a folder where this build needs a file
            os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    writer.stamps[target] = (written.st_size, written.st_mtime_ns)
