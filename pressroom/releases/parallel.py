"""The parallel parser: many release files read by worker processes, the outcomes back in this one.

Parsing is CPU-bound Python (YAML, Markdown, sanitising: about 1 ms a release). From
:data:`_PARALLEL_FROM` files to parse, worker processes share them. Forked when this process has
no other thread (a fork costs milliseconds); spawned otherwise, as a fork could copy another
thread's held lock, at 0.3-0.5 s of imports per worker, which a few hundred releases repay on two cores.
"""

from __future__ import annotations

import io
import itertools
import multiprocessing
import os
import pickle
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from pressroom.errors import ReleaseError, ReleaseWarning
from pressroom.organisations import Organisations, load_organisations
from pressroom.releases.cache import (ReleaseCache, as_fields, collector_paused, dump_entries, entry, file_stamp, from_fields,
                                      load_entries)
from pressroom.releases.model import Release
from pressroom.releases.reading import load_release
from pressroom.settings import Settings

__all__ = ["Parsed", "parse_files"]

_PARALLEL_FROM = 500
_WORKERS = min(4, os.cpu_count() or 1)

Parsed = tuple[Release, list[ReleaseWarning]]


def parse_files(files: list[Path], settings: Settings, cache: ReleaseCache) -> dict[Path, Parsed | Exception]:
    """Each file's Release and warnings, or the ReleaseError or OSError that reading it raised; each release
    into ``cache``."""
    if len(files) >= _PARALLEL_FROM and _WORKERS > 1:
        context = multiprocessing.get_context("fork" if threading.active_count() == 1 else "spawn")
        size = max(16, len(files) // (_WORKERS * 8))
        chunks = [files[start : start + size] for start in range(0, len(files), size)]
        try:
            with ProcessPoolExecutor(max_workers=_WORKERS, mp_context=context) as pool:
                parsed: dict[Path, Parsed | Exception] = {}
                for chunk, data in zip(chunks, pool.map(_parse_chunk, chunks, itertools.repeat(settings)), strict=True):
                    parsed.update(_read_chunk(chunk, data, cache))
                return parsed
        except (OSError, BrokenProcessPool):
            pass  # no processes here (a sandbox, a full process table): parse in this one
    organisations = load_organisations(settings=settings)
    parsed = {}
    for file in files:
        outcome = _parse_one(file, settings, organisations)
        if not isinstance(outcome, Exception):
            cache.put(file, outcome[0])
            outcome = outcome[1]
        parsed[file] = outcome
    return parsed


def _parse_one(file: Path, settings: Settings, organisations: Organisations) -> tuple[tuple, Parsed] | Exception:
    """The cache's entry and the outcome of one file, or the problem that reading it raised."""
    warnings: list[ReleaseWarning] = []
    try:
        read = file_stamp(file)
        release = load_release(file, settings, warnings=warnings, organisations=organisations)
        return entry(read, release, warnings), (release, warnings)
    except (ReleaseError, OSError) as exc:
        return exc


def _parse_chunk(files: list[Path], settings: Settings) -> bytes:
    """Parse ``files`` in a worker: the cache entries of those that are releases, pickled as the cache keeps them
    (the build saves them as they are), and the problems of the others (by their place in ``files``).

    It all goes back as one pickle, unpickled by the caller's own thread: unpickled by the pool's result
    thread, the releases would sit in that thread's malloc arena, which the rest of the build cannot reuse
    (70 MB more peak RSS at 10,000)."""
    # The co-issuers once a chunk: looking them up checks every file of content/organisations/ (a tenth of a parse).
    organisations = load_organisations(settings=settings)
    entries: list[tuple[str, tuple]] = []
    problems: dict[int, tuple | OSError] = {}
    for index, file in enumerate(files):
        outcome = _parse_one(file, settings, organisations)
        if isinstance(outcome, ReleaseError):
            problems[index] = as_fields(outcome)
        elif isinstance(outcome, OSError):
            problems[index] = outcome
        else:
            entries.append((str(file), outcome[0]))
    stream = io.BytesIO()
    dump_entries(stream, entries)
    return pickle.dumps((stream.getvalue(), problems), protocol=pickle.HIGHEST_PROTOCOL)


def _read_chunk(chunk: list[Path], data: bytes, cache: ReleaseCache) -> Iterator[tuple[Path, Parsed | Exception]]:
    """A worker's chunk back in this process: its entries adopted by the cache, each file's outcome."""
    raw, problems = pickle.loads(data)
    with collector_paused():  # unpickling makes only live objects
        entries = [made for chunk in load_entries(io.BufferedReader(io.BytesIO(raw))) for made in chunk]
    cache.adopt(raw, entries)
    made = iter(entries)
    for index, file in enumerate(chunk):
        problem = problems.get(index)
        if problem is not None:
            yield file, problem if isinstance(problem, OSError) else from_fields(problem)
        else:
            _, (_, _, release, warnings) = next(made)
            yield file, (release, [from_fields(warning) for warning in warnings])  # type: ignore[misc]
