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
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from pressroom.errors import ReleaseError, ReleaseWarning
from pressroom.organisations import Organisations, load_organisations
from pressroom.releases.cache import as_fields, collector_paused, fast_table, from_fields
from pressroom.releases.model import Release
from pressroom.releases.reading import load_release
from pressroom.settings import Settings

__all__ = ["Parsed", "parse_files"]

_PARALLEL_FROM = 500
_WORKERS = min(4, os.cpu_count() or 1)

Parsed = tuple[Release, list[ReleaseWarning]]


def parse_files(files: list[Path], settings: Settings) -> dict[Path, Parsed | Exception]:
    """Each file's Release and warnings, or the ReleaseError or OSError that reading it raised."""
    if len(files) >= _PARALLEL_FROM and _WORKERS > 1:
        context = multiprocessing.get_context("fork" if threading.active_count() == 1 else "spawn")
        size = max(16, len(files) // (_WORKERS * 8))
        chunks = [files[start : start + size] for start in range(0, len(files), size)]
        try:
            with ProcessPoolExecutor(max_workers=_WORKERS, mp_context=context) as pool:
                parsed: dict[Path, Parsed | Exception] = {}
                for chunk, data in zip(chunks, pool.map(_parse_chunk, chunks, itertools.repeat(settings)), strict=True):
                    with collector_paused():  # unpickling makes only live objects
                        outcomes = pickle.loads(data)
                    parsed.update(zip(chunk, map(_restore, outcomes), strict=True))
                return parsed
        except (OSError, BrokenProcessPool):
            pass  # no processes here (a sandbox, a full process table): parse in this one
    organisations = load_organisations(settings=settings)
    return {file: _parse_one(file, settings, organisations) for file in files}


def _parse_one(file: Path, settings: Settings, organisations: Organisations) -> Parsed | Exception:
    warnings: list[ReleaseWarning] = []
    try:
        return load_release(file, settings, warnings=warnings, organisations=organisations), warnings
    except (ReleaseError, OSError) as exc:
        return exc


def _parse_portable(file: Path, settings: Settings, organisations: Organisations) -> tuple | OSError:
    """``_parse_one`` in a worker, with problems and warnings as their fields."""
    outcome = _parse_one(file, settings, organisations)
    if isinstance(outcome, ReleaseError):
        return as_fields(outcome)
    if isinstance(outcome, OSError):
        return outcome
    release, warnings = outcome
    return release, [as_fields(warning) for warning in warnings]


def _parse_chunk(files: list[Path], settings: Settings) -> bytes:
    """Parse ``files`` in a worker. The outcomes go back as one pickle, unpickled by the caller's
    own thread: unpickled by the pool's result thread, the releases would sit in that thread's
    malloc arena, which the rest of the build cannot reuse (70 MB more peak RSS at 10,000)."""
    stream = io.BytesIO()
    pickler = pickle.Pickler(stream, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = fast_table()  # read back as the release cache is: paths and records without parsing
    # The co-issuers once a chunk: looking them up checks every file of content/organisations/ (a tenth of a parse).
    organisations = load_organisations(settings=settings)
    pickler.dump([_parse_portable(file, settings, organisations) for file in files])
    return stream.getvalue()


def _restore(outcome: tuple | OSError) -> Parsed | Exception:
    if isinstance(outcome, OSError):
        return outcome
    if not isinstance(outcome[0], Release):
        return from_fields(outcome)
    release, warnings = outcome
    return release, [from_fields(warning) for warning in warnings]  # type: ignore[misc]
