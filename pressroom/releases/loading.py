"""Every release of ``content/releases/``: read (from the cache, else parsed, in parallel when many), validated,
each with its language versions, and every file that is not a release named.

A bad file is reported and skipped; the other releases still load. :func:`load_releases` never
raises for bad content.
"""

from __future__ import annotations

from pathlib import Path

from pressroom.errors import ReleaseError, ReleaseWarning
from pressroom.organisations import load_organisations
from pressroom.releases import parallel
from pressroom.releases.cache import ReleaseCache, collector_paused
from pressroom.releases.files import INDEX_NAMES, is_release_name, not_a_release, scan, translation_language, unread_files
from pressroom.releases.languages import attach_translations
from pressroom.releases.model import LoadResult, Release
from pressroom.settings import Settings

__all__ = ["load_releases"]


def load_releases(settings: Settings, *, path: Path | None = None) -> LoadResult:
    """Load every release under ``path`` (default: content/releases); never raises for bad content.

    Below content/releases, every other file is named too (:func:`~pressroom.releases.files.unread_files`);
    a file named by ``path`` that is not a release says what it is; a bundle's file is read with its bundle.
    """
    result = LoadResult()
    result.problems += load_organisations(settings=settings).problems.values()
    root = Path(path) if path else settings.releases_dir
    if root.is_file() and (root.name in INDEX_NAMES or translation_language(root) is not None):
        root = root.parent  # a bundle's file is read with its language versions: they are one release
    if root.is_file() and not is_release_name(root):
        result.problems.append(not_a_release(root))
        return result
    # Reading releases, from the cache or parsed, makes only live objects (a parse leaves no cycle): each collection
    # would walk the 10,000 releases read back from the cache again, a tenth of an add-one build's time.
    with collector_paused():
        return _load(settings, root, path is None, result)


def _load(settings: Settings, root: Path, whole: bool, result: LoadResult) -> LoadResult:
    within = _within(root, settings.releases_dir)
    found = scan(root, bundle=bool(within), others=within is not None)
    # One release (a check of one file, a journalist's preview): parsing it beats reading the cache of all.
    cache = ReleaseCache(settings, read=whole)
    versions, version_problems = _read_all(found.releases, cache, settings, result)
    attach_translations(result, versions, version_problems, settings)
    result.releases.sort(key=lambda release: (release.date, release.slug), reverse=True)
    if found.others:
        problems, warnings = unread_files(
            found.others, root=root, within=within or (), releases=result.releases, problems=result.problems
        )
        result.problems += problems
        result.warnings += warnings
    if whole:  # a check of one file must not shrink the cache to that file
        cache.save()
    return result


def _within(root: Path, releases_dir: Path) -> tuple[str, ...] | None:
    """Where a folder to load is in content/releases, where every file is named: ``()`` for content/releases
    itself, ``(name,)`` for one of its bundle folders; None for a file, a folder elsewhere or deeper."""
    if root.is_file():
        return None
    try:
        parts = root.resolve().relative_to(releases_dir.resolve()).parts
    except (OSError, ValueError):
        return None
    return parts if len(parts) <= 1 else None


def _read_all(
    files: list[Path], cache: ReleaseCache, settings: Settings, result: LoadResult
) -> tuple[list[tuple[Release, list[ReleaseWarning]]], list[ReleaseError]]:
    """Each file's release (from ``cache``, else parsed) into ``result``; returns the language versions with their
    warnings, and the problems of those that could not be read (which depend on their index.md's)."""
    # By place, not by file: a dict would hash each of the 10,000 paths twice.
    cached = [cache.get(file) for file in files]
    parsed = parallel.parse_files([file for file, kept in zip(files, cached) if kept is None], settings, cache)
    seen: dict[str, Path] = {}
    versions: list[tuple[Release, list[ReleaseWarning]]] = []
    version_problems: list[ReleaseError] = []
    for file, kept in zip(files, cached, strict=True):
        is_version = translation_language(file) is not None
        problems = version_problems if is_version else result.problems
        try:
            release, warnings = kept or _outcome(parsed[file])
        except ReleaseError as exc:
            problems.append(exc)
            continue
        except OSError as exc:
            problems.append(ReleaseError(f"cannot read the file: {exc.strerror}", path=file, field="file"))
            continue
        if is_version:
            versions.append((release, warnings))
            continue
        if release.slug in seen:
            result.problems.append(_duplicate(release, file, seen[release.slug]))
            continue
        seen[release.slug] = file
        result.releases.append(release)
        result.warnings += warnings
    return versions, version_problems


def _outcome(outcome: parallel.Parsed | Exception) -> tuple[Release, list[ReleaseWarning]]:
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _duplicate(release: Release, file: Path, first: Path) -> ReleaseError:
    return ReleaseError(
        f"{release.slug!r} is already used by {first}",
        path=file,
        line=1,
        field="slug",
        hint="give this release its own 'slug:' (a slug is its permanent URL)",
    )
