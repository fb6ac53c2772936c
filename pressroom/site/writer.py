"""Writing public/: files replaced atomically, and the manifest of what the last build rendered."""

from __future__ import annotations

import contextlib
import itertools
import marshal
import os
import shutil
from functools import lru_cache
from pathlib import Path

__all__ = ["BuildCache", "Writer", "fresh", "same_bytes", "same_file"]


class BuildCache:
    """What the last build rendered (file keys, sizes, mtimes), what public/ held after it (each folder's
    mtime, files and subfolders) and which images got sized copies (:attr:`~pressroom.site.plan.Plan.variants`),
    in var/cache/.

    It only saves time: missing, damaged, stale or from another Python, the build renders and compares
    everything, and lists every folder of public/. In marshal's format, which reads and writes the 23,000
    entries of a site of 10,000 releases ten times faster than JSON did.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.raw = b""
        try:
            self.raw = path.read_bytes()
            data = marshal.loads(self.raw)
            self.files: dict[str, list] = dict(data["files"])
            self.folders: dict[str, list] = dict(data["folders"])
            self.variants: dict[str, bool] = dict(data.get("variants", {}))
        except (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError):
            self.files, self.folders, self.variants = {}, {}, {}

    def save(self) -> None:
        data = marshal.dumps({"files": self.files, "folders": self.folders, "variants": self.variants})
        if data == self.raw:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            Writer(self.path.parent).write(self.path, data)
        except OSError:
            return  # public/ is already right; the next build just renders more


def fresh(target: str, entry: list | None, key: str) -> bool:
    """The file was rendered from ``key`` and nobody has touched it since. A plain string: every build asks
    this of every file of the site."""
    if not entry or len(entry) != 3 or entry[0] != key:
        return False
    try:
        stat = os.stat(target)
    except OSError:
        return False
    return stat.st_size == entry[1] and stat.st_mtime_ns == entry[2]


def same_bytes(target: Path | str, data: bytes) -> bool:
    try:
        with open(target, "rb") as stream:
            # One read past the expected size tells a longer file apart without a separate stat.
            return stream.read(len(data) + 1) == data
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return False


def same_file(target: Path | str, source: Path) -> bool:
    try:
        ours, theirs = os.stat(target), source.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    if ours.st_size != theirs.st_size:
        return False
    # copies keep the source's mtime, so an equal mtime means an earlier build copied this very file.
    return ours.st_mtime_ns == theirs.st_mtime_ns or Path(target).read_bytes() == source.read_bytes()


@lru_cache(maxsize=1)
def _umask() -> int | None:
    """This process's umask, read without changing it (Linux); None where it cannot be read."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return None


_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC  # fails on any name already there, a link too


class Writer:
    """Atomic file replacement, creating each folder once per build.

    Files are written as they are rendered, in the rendering process: threads to write beside it
    (tried before) spent more time handing the interpreter lock back and forth (50,000 futex calls a
    build of 1,000 releases, half the build's system time) than they saved, and the forked render
    workers already keep both cores busy. A new file is four system calls (open, write, fstat, close), one
    that replaces another a rename more; its size and mtime, for the manifest, come from the fstat.
    """

    def __init__(self, public: Path) -> None:
        self.public = public
        # Plain strings: a build of 10,000 releases asks for the folder of 23,000 files.
        self.folders: set[str] = {os.fspath(public)}
        self.names = itertools.count()
        self.prefix = f".tmp-{os.getpid()}-{id(self):x}-"
        # The web server must be able to read every file, whatever the umask: a chmod only when the umask would hide it.
        umask = _umask()
        self.chmod = umask is None or bool(umask & 0o644)

    def write(self, target: Path | str, data: bytes, *, like: Path | None = None) -> tuple[int, int]:
        """Replace ``target`` with ``data`` in one step, so a reader (or a crash) never sees half of what
        was there; returns its size and mtime.

        A file that is not there yet is written in place: nobody has read it before, a crash leaves a file
        that differs from what the next build renders (so it is written again), and a temporary name and a
        rename would add a second update of the folder to each file of a first build.
        """
        path = os.fspath(target)
        parent = os.path.dirname(path)
        self.folder(parent)
        try:
            handle = os.open(path, _NEW, 0o644)
        except FileExistsError:  # a file, a link or a folder: replaced through a temporary name
            return self._replace(path, parent, data, like)
        try:
            return self._fill(handle, data, like)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            raise

    def _replace(self, target: str, parent: str, data: bytes, like: Path | None) -> tuple[int, int]:
        temporary = os.path.join(parent, f"{self.prefix}{next(self.names)}")
        try:
            stamp = self._fill(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644), data, like)
            try:
                os.replace(temporary, target)
            except IsADirectoryError:
                shutil.rmtree(target)  # an earlier build had a folder where this build needs a file
                os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        return stamp

    def _fill(self, handle: int, data: bytes, like: Path | None) -> tuple[int, int]:
        """Write ``data`` to the new file ``handle`` and close it: its size and mtime."""
        try:
            if self.chmod:
                os.fchmod(handle, 0o644)
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view):]
            if like is not None:
                stat = like.stat()
                os.utime(handle, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            written = os.fstat(handle)
        finally:
            os.close(handle)
        return written.st_size, written.st_mtime_ns

    def folder(self, folder: str) -> None:
        if folder in self.folders:
            return
        self.folder(os.path.dirname(folder))
        try:
            os.mkdir(folder)
        except FileExistsError:
            if os.path.islink(folder) or not os.path.isdir(folder):
                os.unlink(folder)  # an earlier build had a file where this build needs a folder
                os.mkdir(folder)
        self.folders.add(folder)
