"""The release cache: valid releases of the last run, kept in ``var/cache/releases.pickle``.

Parsing is most of a build (YAML, Markdown, sanitising: ~1 ms a release), so a rebuild after one
new release parses one file. An entry is reused while its file, its images (and a language version's
index.md), the settings, the co-issuers' files and the code that reads releases are unchanged; the
pickle lives in var/cache/, which only Pressroom writes.

Each chunk of entries is kept twice: a summary of each release (what a build asks of every release: whether it
is public, where, its topics, neighbours and files), read whole, then the whole entries, read only when one of
their releases is first asked for anything else (:class:`CachedRelease`): a rebuild after one new release reads
the texts of the few dozen releases it shows again, not the 50 MB of 10,000.
"""

from __future__ import annotations

import copyreg
import gc
import hashlib
import io
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path, PosixPath
from typing import Any, BinaryIO

from pressroom.errors import ReleaseError, ReleaseWarning
from pressroom.organisations import load_organisations
from pressroom.records import Frozen
from pressroom.releases.model import Release
from pressroom.settings import Settings

__all__ = ["CachedRelease", "ReleaseCache", "as_fields", "collector_paused", "dump_entries", "entry", "file_stamp", "from_fields",
           "load_entries"]

_CACHE_CHUNK = 64  # entries of the release cache pickled together
_LENGTH = 8  # bytes of the length of a chunk's whole entries, after its summaries
# What every build asks of every release; the rest (its texts and blocks) is read when first asked for.
# Its source is not among them: :meth:`ReleaseCache.get` gives it the path of the file it was asked for, which is
# that very file, as scanned (its text made already, which a path read back would make again).
_SUMMARY = frozenset({"slug", "date", "status", "expires", "withdrawn", "tags", "language", "translations", "prefix",
                      "base", "issuers", "corrections", "url", "assets", "digest"})
_FIELDS = frozenset(Release.model_fields)


class CachedRelease(Release):
    """A release read back from the cache: its summary, and the rest from its chunk of the cache file once anything
    else is asked of it. Pickled, compared and copied as the whole release it stands for."""

    def __getattr__(self, name: str) -> Any:
        if name in _FIELDS:
            self.fill()
            return self.__dict__[name]
        return super().__getattr__(name)

    def fill(self) -> None:
        """Read the rest of the release from its chunk (once)."""
        state = self.__dict__
        if len(state) == len(_FIELDS):
            return
        private = self.__pydantic_private__
        if not private:
            return  # filled meanwhile by another thread
        chunks, offset, length, index = private["chunk"]
        whole = chunks.release(offset, length, index)
        for name, value in whole.__dict__.items():
            state.setdefault(name, value)  # a field a copy was given (its language versions) stays
        object.__setattr__(self, "__pydantic_fields_set__", self.__pydantic_fields_set__ | whole.__pydantic_fields_set__)
        # Whole now: it no longer holds the cache file open (nor its chunks read), which a process that keeps
        # releases for long (the web preview) would otherwise keep on disk after a save replaced it.
        object.__setattr__(self, "__pydantic_private__", None)

    def __reduce__(self) -> tuple[Any, ...]:
        self.fill()
        function, (_, *arguments) = super().__reduce__()
        return function, (Release, *arguments)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Release):
            return NotImplemented
        for release in (self, other):
            if isinstance(release, CachedRelease):
                release.fill()
        return self.__dict__ == other.__dict__

    __hash__ = Release.__hash__

    # What reads every field at once reads them all.
    def model_dump(self, **options: Any) -> dict[str, Any]:
        self.fill()
        return super().model_dump(**options)

    def model_dump_json(self, **options: Any) -> str:
        self.fill()
        return super().model_dump_json(**options)

    @property
    def model_fields_set(self) -> set[str]:
        self.fill()
        return self.__pydantic_fields_set__

    def __iter__(self) -> Any:
        self.fill()
        return super().__iter__()


class _Summary:
    """A release as its chunk's summary pickles it: a :class:`CachedRelease` of the fields of ``_SUMMARY``."""

    __slots__ = ("release",)

    def __init__(self, release: Release) -> None:
        self.release = release

    def __reduce__(self) -> tuple[Any, ...]:
        summary = CachedRelease.__new__(CachedRelease)
        object.__setattr__(summary, "__dict__", {k: v for k, v in self.release.__dict__.items() if k in _SUMMARY})
        object.__setattr__(summary, "__pydantic_fields_set__", self.release.__pydantic_fields_set__)
        return Frozen.__reduce__(summary)


class _Chunks:
    """The cache file as it was read, open until the releases read from it go (a save may replace it meanwhile):
    its chunks of whole entries, each read once, when one of its releases is first asked for more than its summary.
    Read by offset, so forked render workers can share the descriptor."""

    descriptor = -1  # none yet: a dup that failed leaves nothing to close

    def __init__(self, stream: io.BufferedReader) -> None:
        self.descriptor = os.dup(stream.fileno())
        self.size = os.fstat(self.descriptor).st_size
        self.read: dict[int, list[tuple[str, tuple]]] = {}

    def __del__(self) -> None:
        if self.descriptor >= 0:
            os.close(self.descriptor)

    # Shared, never copied: a copy (a deep copy of a release) would close the descriptor its original still reads.
    def __copy__(self) -> _Chunks:
        return self

    def __deepcopy__(self, memo: dict) -> _Chunks:
        return self

    def summaries(self, stream: io.BufferedReader) -> Iterator[list[tuple[str, tuple]]]:
        """The entries of each chunk, each with the summary of its release; a torn chunk ends them."""
        while stream.peek(1):
            entries = pickle.load(stream)
            length = int.from_bytes(stream.read(_LENGTH), "little")
            offset = stream.tell()
            if offset + length > self.size:
                return
            stream.seek(length, io.SEEK_CUR)
            for index, (_, made) in enumerate(entries):
                object.__setattr__(made[2], "__pydantic_private__", {"chunk": (self, offset, length, index)})
            yield entries

    def release(self, offset: int, length: int, index: int) -> Release:
        entries = self.read.get(offset)
        if entries is None:
            with collector_paused():
                entries = self.read[offset] = pickle.loads(os.pread(self.descriptor, length, offset))
        return entries[index][1][2]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Unpickling makes only live objects; the cycle collector would walk them again and again
    as they pile up (half the time of loading 10,000 cached releases)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def as_fields(problem: ReleaseError) -> tuple:
    """A problem or warning as plain fields, to pickle: its keyword-only constructor does not unpickle."""
    return (isinstance(problem, ReleaseWarning), problem.message, problem.path, problem.line, problem.field, problem.hint)


def from_fields(fields: tuple) -> ReleaseError:
    warning, message, path, line, field_name, hint = fields
    return (ReleaseWarning if warning else ReleaseError)(message, path=path, line=line, field=field_name, hint=hint)


@lru_cache(maxsize=1)
def _code_digest() -> str:
    """The code that turns a file into a Release: a change to it makes every cached release stale."""
    folder = Path(__file__).resolve().parent
    sources = [*sorted(folder.glob("*.py")), *(folder.parent / name for name in _READERS)]
    digest = hashlib.blake2b(digest_size=8)
    for source in sources:
        digest.update(source.read_bytes())
    return digest.hexdigest()


_READERS = ("text.py", "frontmatter.py", "records.py", "organisations.py")


def _path(parts: tuple[str, ...]) -> Path:
    """A path read back from the cache, from its parts as they were split when it was written: parsing each
    path again from its text was a third of the time of reading a release back."""
    if _FROM_PARTS is not None:
        return _FROM_PARTS("", "/", list(parts))
    return Path(*parts)


# Python 3.11's PosixPath keeps its parts as a list; later versions build paths otherwise, and get Path(*parts).
_FROM_PARTS = getattr(PosixPath, "_from_parsed_parts", None) if hasattr(PosixPath, "_parts") else None


def _reduce_path(path: PosixPath) -> tuple:
    return (_path, (path.parts,)) if path.is_absolute() else (Path, (str(path),))


def fast_table() -> dict:
    """How releases are pickled to be read back fast (the cache, a parsing worker's releases): paths as their parts."""
    return {**copyreg.dispatch_table, PosixPath: _reduce_path}


def _depends(release: Release) -> tuple[Path, ...]:
    """The files a cached release was made from besides its own: its images and downloads, and a language
    version's index.md, whose front matter it reads."""
    return release.assets if release.base is None else (*release.assets, release.base)


class ReleaseCache:
    """Valid releases of the last run, reused while their file, images, settings and this code are unchanged."""

    def __init__(self, settings: Settings, *, read: bool = True) -> None:
        self.file = settings.path("var") / "cache" / "releases.pickle"
        # A release keeps its co-issuers inside it: an edited organisation file invalidates the cache.
        self.salt = f"{settings.fingerprint}:{_code_digest()}:{load_organisations(settings=settings).fingerprint}"
        self.old: dict[str, tuple] = {}
        self.new: dict[str, tuple] = {}
        self.whole = False  # the file was read to its end: appending to it is safe
        self.adopted: list[tuple[str, tuple]] = []  # entries pickled by a worker, in self.spool
        self.spool: BinaryIO | None = None
        if read:
            self._read()

    def _read(self) -> None:
        try:
            with open(self.file, "rb") as stream, collector_paused():
                # The salt comes first: after a settings or code change not one entry is read.
                if pickle.load(stream) != self.salt:
                    return
                for entries in _Chunks(stream).summaries(stream):
                    self.old.update(entries)  # a later entry (appended) wins
        except Exception:  # missing, torn or from another version: what was read is kept, the rest parsed
            return
        self.whole = True

    def get(self, file: Path) -> tuple[Release, list[ReleaseWarning]] | None:
        name = str(file)
        kept = self.old.get(name)
        try:
            if not kept or kept[0] != file_stamp(name):
                return None
            if [file_stamp(source) for source in _depends(kept[2])] != kept[1]:
                return None
        except OSError:
            return None  # the file or an image went away: parse again, which reports it
        self.new[name] = kept
        release = kept[2]
        release.__dict__.setdefault("source", file)
        return release, [from_fields(warning) for warning in kept[3]] if kept[3] else []  # type: ignore[misc]

    def put(self, file: Path, made: tuple) -> None:
        """The :func:`entry` of a file parsed here."""
        self.new[str(file)] = made

    def adopt(self, raw: bytes, entries: list[tuple[str, tuple]]) -> None:
        """Entries a parsing worker made and pickled (``raw``, as :meth:`save` writes them): saved as they are,
        not pickled again here (half a second of the build's own process at 10,000 releases). Kept in a
        temporary file until then, not in memory (50 MB at 10,000)."""
        self.new.update(entries)
        try:
            if self.spool is None:
                self.file.parent.mkdir(parents=True, exist_ok=True)
                self.spool = tempfile.TemporaryFile(dir=self.file.parent)
            self.spool.write(raw)
        except OSError:  # all pickled again when saved, like the releases parsed here
            if self.spool is not None:
                self.spool.close()
            self.spool, self.adopted = None, []
            return
        self.adopted += entries

    def save(self) -> None:
        try:
            self._save()
        finally:
            if self.spool is not None:
                self.spool.close()
                self.spool = None

    def _save(self) -> None:
        kept = self.whole and self.old.keys() <= self.new.keys() and all(self.new[k] is self.old[k] for k in self.old)
        added = [(key, made) for key, made in self.new.items() if key not in self.old]
        if kept and not added:
            return
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            if kept:
                # Only new releases: appended, not 50 MB rewritten at 10,000. A torn append loses
                # only what follows the tear (the reader keeps the entries before it), and the
                # next save rewrites the file whole.
                with open(self.file, "ab") as stream:
                    self._write(stream, added)
                return
            temporary = self.file.with_name(f".{self.file.name}.{os.getpid()}")
            with open(temporary, "wb") as stream:
                pickle.dump(self.salt, stream, protocol=pickle.HIGHEST_PROTOCOL)
                self._write(stream, self.new.items())
            temporary.replace(self.file)
        except OSError:
            pass  # the cache only saves time

    def _write(self, stream: BinaryIO, items: Iterable[tuple[str, tuple]]) -> None:
        """``items`` into ``stream``: those a worker pickled as they are, the others pickled here."""
        wanted = dict(items)
        if self.spool is not None and all(wanted.get(key) is made for key, made in self.adopted):
            self.spool.seek(0)
            shutil.copyfileobj(self.spool, stream)
            for key, _ in self.adopted:
                del wanted[key]
        dump_entries(stream, wanted.items())


def file_stamp(path: Path | str) -> tuple[int, int]:
    """Size and mtime: a cached release is reused while its file's and its images' are unchanged."""
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


def entry(read: tuple[int, int], release: Release, warnings: list[ReleaseWarning]) -> tuple:
    """What the cache keeps of one file: its stamp when it was ``read`` (taken before: a file changed while it was
    parsed is parsed again next time), its images' and downloads', the release and its warnings (as fields: a
    pickled ReleaseWarning would not load, and the whole cache with it)."""
    return read, [file_stamp(source) for source in _depends(release)], release, [as_fields(w) for w in warnings]


def load_entries(stream: io.BufferedReader) -> Iterator[list[tuple[str, tuple]]]:
    """The whole entries :func:`dump_entries` wrote, a chunk at a time: what was read before a tear is kept."""
    while stream.peek(1):
        pickle.load(stream)  # the chunk's summaries
        length = int.from_bytes(stream.read(_LENGTH), "little")
        yield pickle.loads(stream.read(length))


def dump_entries(stream: BinaryIO, items: Iterable[tuple[str, tuple]]) -> None:
    """Cache entries (file, entry) into ``stream``, as the cache reads them back: for each chunk, the summaries of
    its releases, then the length of its whole entries and those entries.

    A few dozen entries a chunk, each pickled with a memo of its own: one pickle of 10,000 releases would
    hold tens of MB of bytes, or of memo, beside the releases; one pickle an entry took twice as long
    to read (a load call each, and no string shared between entries)."""
    items = list(items)
    for start in range(0, len(items), _CACHE_CHUNK):
        chunk = items[start : start + _CACHE_CHUNK]
        summaries = [(key, (made[0], made[1], _Summary(made[2]), made[3])) for key, made in chunk]
        for entries in (summaries, chunk):
            pickled = io.BytesIO()
            pickler = pickle.Pickler(pickled, protocol=pickle.HIGHEST_PROTOCOL)
            pickler.dispatch_table = fast_table()
            pickler.dump(entries)
            if entries is chunk:
                stream.write(len(pickled.getbuffer()).to_bytes(_LENGTH, "little"))
            stream.write(pickled.getbuffer())
