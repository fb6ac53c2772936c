"""A release's language versions: ``index.de.md`` beside ``index.md`` is the German version of the same release.

Each version is read like any release file, then attached to the release as
``Release.translations`` when it agrees on what the versions share (slug, date, status, expiry,
embargo, approval); a version that disagrees, has no release, or doubles a language is a problem.
"""

from __future__ import annotations

import re
from pathlib import Path

from pressroom.errors import ReleaseError
from pressroom.releases.files import INDEX_NAMES
from pressroom.releases.model import LoadResult, Release
from pressroom.settings import Settings

__all__ = ["attach_translations"]

# What every version of one release shares: one URL, one approval, one publication instant.
_SHARED_FIELDS = ("slug", "date", "status", "expires", "embargo")


def attach_translations(result: LoadResult, translations: list[Release], settings: Settings) -> None:
    """Give each release of ``result`` its language versions; report a version that disagrees, has no
    release, or doubles a language, and (``require_translations``) a release missing one."""
    mains = {release.source.parent: index for index, release in enumerate(result.releases) if release.source.name in INDEX_NAMES}
    grouped: dict[int, dict[str, Release]] = {}
    for version in translations:
        index = mains.get(version.source.parent)
        problem = _version_problem(None if index is None else result.releases[index], version, settings)
        if problem is not None:
            result.problems.append(problem)
        else:
            grouped.setdefault(index, {})[version.language] = version  # type: ignore[arg-type]
    required = settings.site.all_languages if settings.site.require_translations else ()
    kept: list[Release] = []
    for index, release in enumerate(result.releases):
        versions = grouped.get(index, {})
        missing = [code for code in required if code != release.language and code not in versions]
        if missing:
            result.problems.append(_missing(release, missing))
            continue
        kept.append(release.model_copy(update={"translations": dict(sorted(versions.items()))}) if versions else release)
    result.releases = kept


def _version_problem(main: Release | None, version: Release, settings: Settings) -> ReleaseError | None:
    """Why ``version`` cannot be a language version of ``main`` (None: it can)."""
    if main is None:
        return ReleaseError(
            "a translation without its release", path=version.source, line=1, field="file",
            hint="put the release in the site language beside it as index.md",
        )
    if version.language == main.language:
        return ReleaseError(
            f"the release itself is in {main.language!r} already", path=version.source, line=1, field="language",
            hint=f"give index.md 'language: {settings.site.language}', or rename this file to the language it is in",
        )
    name = _disagreement(main, version)
    if name is None:
        return None
    shown = getattr(version, name) if name != "email" else version.email.approval
    expected = getattr(main, name) if name != "email" else main.email.approval
    return ReleaseError(
        f"{shown!r} disagrees with {main.source.name} ({expected!r}): all versions of a release share it",
        path=version.source, line=_field_line(version.source, name), field=name,
        hint=f"write the same {name} as in {main.source.name}, or leave it out where it has a default",
    )


def _disagreement(main: Release, version: Release) -> str | None:
    """The first shared field on which a translation differs from the release, or None."""
    for name in _SHARED_FIELDS:
        if getattr(main, name) != getattr(version, name):
            return name
    return "email" if main.email.approval != version.email.approval else None


def _missing(release: Release, missing: list[str]) -> ReleaseError:
    names = ", ".join(f"index.{code}.md" for code in missing)
    return ReleaseError(
        f"no version in {', '.join(missing)} ([site] require_translations)", path=release.source, line=1,
        field="translations", hint=f"add {names} beside it, or set require_translations = false",
    )


def _field_line(path: Path, name: str) -> int:
    """The front-matter line of a top-level field (1 when it is not written)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 1
    match = re.search(rf"^{re.escape(name)}\s*:", text, re.M)
    return text.count("\n", 0, match.start()) + 1 if match else 1
