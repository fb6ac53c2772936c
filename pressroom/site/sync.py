"""Make public/ hold exactly what the build's jobs render, touching only what differs, with forked render workers.

A job is files rendered together with a key of everything that goes into them. The manifest
(:class:`~pressroom.site.writer.BuildCache`) remembers, per file, the key of what it was rendered
from and its size and mtime after writing. A job whose key is unchanged and whose files are as the
manifest left them is not even rendered: that is what keeps a rebuild after one new release cheap.
Without a manifest (first build, deleted var/) every file is rendered and compared byte for byte.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from pressroom.site.writer import BuildCache, Writer, fresh, same_bytes, same_file

__all__ = ["Job", "SyncResult", "sync"]


class Job(NamedTuple):
    """Files rendered together, with a key of everything that goes into them (None: always render).
    A tuple: a build of 10,000 releases plans 12,000 of them, and a frozen dataclass takes three times as long to make."""

    paths: tuple[str, ...]
    key: str | None
    render: Callable[[], bytes | dict[str, bytes]]

    def outputs(self) -> dict[str, bytes]:
        rendered = self.render()
        return rendered if isinstance(rendered, dict) else {self.paths[0]: rendered}


@dataclass
class SyncResult:
    written: list[Path] = field(default_factory=list)
    unchanged: int = 0
    removed: list[Path] = field(default_factory=list)


# Rendering is CPU-bound Python (Jinja, a press kit's text: about half a millisecond a release), so
# from this many files to render, worker processes share each stage, one contiguous chunk of jobs at a
# time, each writing its own files. They are forked, as they must inherit the jobs (whose templates
# and partial renders do not pickle), and so only from a process that has no other thread yet: a
# fork could copy a lock another thread holds. Elsewhere (a Prefect flow run) the build renders here.
_PARALLEL_FROM = 800
_RENDERERS = min(4, os.cpu_count() or 1)
_SMALLEST_CHUNK = 16  # files: a chunk costs a round trip to a worker
_Copy = tuple[str, Path]  # (site path, file copied there as it is)
_forked: tuple[Path, list[list[Job]], set[str], list[_Copy]] | None = None  # what the workers inherit


def sync(public: Path, stages: Sequence[Sequence[Job]], copies: dict[str, Path], *, cache: BuildCache) -> SyncResult:
    """Make ``public`` hold exactly what the jobs of ``stages`` render and ``copies`` (site path -> file).

    Images and the stylesheet first, then each stage (release pages, then the pages and feeds that
    link to them), removals last: a reader during a build never follows a link to a file not there yet.
    """
    result = SyncResult()
    public.mkdir(parents=True, exist_ok=True)
    existing, files_in, seen = _existing(public, cache.folders)
    pages = {path for stage in stages for job in stage for path in job.paths}
    after: dict[str, list] = {}
    stale = [_stale(stage, public, cache.files, after, result) for stage in stages]
    # A page wins over an image that happens to share its name.
    copying = [(relative, source) for relative, source in copies.items() if relative not in pages]
    produced = pages | {relative for relative, _ in copying}
    global _forked
    _forked = (public, stale, existing, copying)
    try:
        with _renderers(sum(len(job.paths) for jobs in stale for job in jobs)) as pool:
            written: list[str] = []  # as text, as the workers send them: a pickled Path costs 4 times as much
            for copied, unchanged in _copy_stage(copying, pool, public):
                written += copied
                result.unchanged += unchanged
            for number, jobs in enumerate(stale):
                for rendered, unchanged, stamps in _render_stage(number, jobs, pool, public, existing):
                    written += rendered
                    result.unchanged += unchanged
                    after.update(stamps)
    finally:
        _forked = None
    result.written = [Path(path) for path in written]
    result.removed, emptied = _remove(public, existing - produced, files_in)
    cache.files = after
    # A removed folder is touched itself (its name with a slash), not only its parent.
    changed = [*written, *map(str, result.removed), *(f"{folder}/" for folder in emptied)]
    cache.folders = _listing(public, seen, _touched(public, changed))
    return result


def _existing(public: Path, listing: dict[str, list]) -> tuple[set[str], dict[str, int], dict[str, list]]:
    """Every file in public/ (site paths) and how many files each folder holds. Plain strings: this sees every file
    of the site on every build. Done first, it also spares a new file the read that would compare it with nothing.

    A folder whose mtime is the one the last build left (``listing``) holds what it held then: nothing was
    added, removed or renamed in it since (a stray file put there by hand changes it), so only the folders
    that changed are listed, not the 12,000 of a site of 10,000 releases. The third value: each folder as it was
    found (its mtime, files and subfolders), which stays the listing of every folder the build does not touch.
    """
    root = str(public)
    existing: set[str] = set()
    files_in: dict[str, int] = {}
    seen: dict[str, list] = {}
    below = [""]
    while below:
        relative = below.pop()
        folder = f"{root}/{relative}" if relative else root
        try:
            mtime = os.stat(folder).st_mtime_ns
        except OSError:
            continue
        known = listing.get(relative)
        if not known or known[0] != mtime:
            known = [mtime, *_list(folder)]
        seen[relative] = known
        names, subfolders = known[1], known[2]
        existing.update((f"{relative}/{name}" for name in names) if relative else names)
        files_in[folder] = len(names)
        below += (f"{relative}/{name}" if relative else name for name in subfolders)
    return existing, files_in, seen


def _list(folder: str) -> tuple[list[str], list[str]]:
    """The files and the subfolders of ``folder``; a link to a folder is neither (it is not followed)."""
    names: list[str] = []
    subfolders: list[str] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if not entry.is_dir():
                    names.append(entry.name)
                elif not entry.is_symlink():
                    subfolders.append(entry.name)
    except OSError:
        pass  # no longer a folder: its parent, changed too, lists it as a file
    return names, subfolders


def _touched(public: Path, changed: Iterable[str]) -> set[str]:
    """The folders (site paths) whose mtime the build changed: those it wrote or removed a file in, and above them
    (a new or removed folder changes its parent's)."""
    touched: set[str] = set()
    root = len(str(public)) + 1
    for path in changed:
        folder = os.path.dirname(path)[root:]
        while folder not in touched:
            touched.add(folder)
            if not folder:
                break
            folder = folder.rpartition("/")[0]
    return touched


def _listing(public: Path, seen: dict[str, list], touched: set[str]) -> dict[str, list]:
    """What public/ holds after the build, for the next build's :func:`_existing`: each folder's mtime, files and
    subfolders. A folder the build did not touch holds what it was ``seen`` to hold; only the few it touched (and
    those it made) are listed again, each stat taken before its listing so that a later change shows."""
    root = str(public)
    listing = {folder: known for folder, known in seen.items() if folder not in touched}
    for folder in touched:
        path = f"{root}/{folder}" if folder else root
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            continue  # removed: its parent, touched too, no longer lists it
        names, subfolders = _list(path)
        listing[folder] = [mtime, sorted(names), sorted(subfolders)]
    return listing


def _stale(stage: Sequence[Job], public: Path, before: dict[str, list], after: dict[str, list], result: SyncResult) -> list[Job]:
    """The jobs of ``stage`` to render; those whose files are as the manifest left them keep their entries."""
    stale = []
    root = f"{public}/"
    for job in stage:
        key = job.key
        if key is not None:
            for path in job.paths:
                entry = before.get(path)
                if entry is None or not fresh(root + path, entry, key):
                    break
            else:
                for path in job.paths:
                    after[path] = before[path]
                result.unchanged += len(job.paths)
                continue
        stale.append(job)
    return stale


def _copy_stage(copying: list[_Copy], pool: ProcessPoolExecutor | None, public: Path) -> Iterable[tuple[list[str], int]]:
    """Copy the files that differ: by the workers when there are several (a thousand heroes were a second of
    the parent's time at 10,000 releases, with the workers waiting), else here."""
    chunks = _chunks([1] * len(copying))
    if pool is not None and len(chunks) > 1:
        return pool.map(_copy_chunk, chunks)
    return [copy_files(copying, public, Writer(public))]


def copy_files(copying: Sequence[_Copy], public: Path, writer: Writer) -> tuple[list[str], int]:
    """Copy each file of ``copying`` unless the copy is already there: (files written, files unchanged)."""
    written: list[str] = []
    unchanged = 0
    root = f"{public}/"
    for relative, source in copying:
        target = root + relative
        if same_file(target, source):
            unchanged += 1
            continue
        writer.write(target, source.read_bytes(), like=source)
        written.append(target)
    return written, unchanged


def _chunks(files: Sequence[int]) -> list[range]:
    """A stage's items (making ``files`` files each) in contiguous chunks, a dozen for each worker: a stage ends
    when its last chunk does, and a small last chunk leaves the other workers idle for less."""
    size = max(_SMALLEST_CHUNK, sum(files) // (_RENDERERS * 12))
    chunks: list[range] = []
    start = filled = 0
    for index, count in enumerate(files):
        filled += count
        if filled >= size:
            chunks.append(range(start, index + 1))
            start, filled = index + 1, 0
    if start < len(files):
        chunks.append(range(start, len(files)))
    return chunks


def _render_stage(
    number: int, jobs: list[Job], pool: ProcessPoolExecutor | None, public: Path, existing: set[str]
) -> Iterable[tuple[list[str], int, dict[str, list]]]:
    """Render one stage's jobs: in chunks by the workers when there are several, else here."""
    chunks = _chunks([len(job.paths) for job in jobs])
    if pool is not None and len(chunks) > 1:
        return pool.map(_render_chunk, itertools.repeat(number), chunks)
    return [render_jobs(jobs, public, existing, Writer(public))]


def _remove(public: Path, unwanted: set[str], files_in: dict[str, int]) -> tuple[list[Path], list[str]]:
    """Delete the files the build no longer produces (site paths), then the folders that this leaves empty:
    (files removed, folders removed)."""
    removed = []
    for path in sorted(f"{public}/{relative}" for relative in unwanted):
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue  # this build turned it into a folder, or the folder it was in into a file
        removed.append(Path(path))
        files_in[os.path.dirname(path)] -= 1
    root = str(public)
    emptied = []
    for folder in sorted(files_in, key=len, reverse=True):  # deepest first, so a parent can empty too
        if folder != root and not files_in[folder] and os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)
            emptied.append(folder)
    return removed, emptied


def render_jobs(jobs: Sequence[Job], public: Path, existing: set[str], writer: Writer) -> tuple[list[str], int, dict[str, list]]:
    """Render ``jobs`` and write what differs from disk: (files written, files unchanged, manifest entries)."""
    written: list[str] = []
    unchanged = 0
    entries: dict[str, list] = {}
    root = f"{public}/"
    for job in jobs:
        for relative, data in job.outputs().items():
            target = root + relative
            if relative in existing and same_bytes(target, data):
                unchanged += 1
                if job.key is not None:
                    stat = os.stat(target)
                    entries[relative] = [job.key, stat.st_size, stat.st_mtime_ns]
                continue
            size, mtime = writer.write(target, data)
            written.append(target)
            if job.key is not None:
                entries[relative] = [job.key, size, mtime]
    return written, unchanged, entries


@contextmanager
def _renderers(jobs: int) -> Iterator[ProcessPoolExecutor | None]:
    if jobs < _PARALLEL_FROM or _RENDERERS < 2 or threading.active_count() > 1:
        yield None
        return
    try:
        pool = ProcessPoolExecutor(max_workers=_RENDERERS, mp_context=multiprocessing.get_context("fork"))
        pool.submit(int).result()  # forks every worker now, while this process has no other thread
    except (OSError, ValueError, BrokenProcessPool):
        yield None  # no fork here (a sandbox, a full process table, another OS): render in this one
        return
    with pool:
        yield pool


def _render_chunk(stage: int, indexes: range) -> tuple[list[str], int, dict[str, list]]:
    """In a worker: render and write one chunk of a stage's jobs."""
    assert _forked is not None, "only forked by sync"
    public, stale, existing, _ = _forked
    return render_jobs([stale[stage][index] for index in indexes], public, existing, Writer(public))


def _copy_chunk(indexes: range) -> tuple[list[str], int]:
    """In a worker: copy one chunk of the files copied as they are."""
    assert _forked is not None, "only forked by sync"
    public, _, _, copying = _forked
    return copy_files([copying[index] for index in indexes], public, Writer(public))
