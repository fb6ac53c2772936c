"""A release's language versions: ``index.de.md`` beside ``index.md`` is the German version of the same release,
and it says only what differs.

A version's front matter is read over its release's (:func:`merge`): what it does not write it takes from
``index.md``: date, time zone, status, withdrawal, embargo, hero picture, contacts, issuers, downloads, tags,
corrections. Its own words are its own and never inherited: title, summary, body, About, canonical URL, the
email subject and the posts' texts (without them it falls back to its own title and summary, never to another
language's). Alt text, download titles, correction notes and the withdrawal reason are its own when written
and index.md's otherwise.

A version that contradicts a shared fact (another date, status, embargo, expiry, withdrawal date, correction
date or email option) is an error naming both files, and the release goes on without it; one that overrides a
shared field on purpose (its own contacts, tags, issuers, hero picture or an extra download) is a warning.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pressroom import frontmatter
from pressroom.errors import ReleaseError, ReleaseWarning
from pressroom.releases.files import INDEX_NAMES, translation_language
from pressroom.releases.model import LoadResult, Release
from pressroom.settings import Settings
from pressroom.text import clean_text

__all__ = ["Base", "attach_translations", "base_of", "describe", "merge", "owned_by_version", "written_fields"]

#: A version's own words: never taken from index.md (a version without them gets its own default).
OWN = frozenset({"title", "summary", "about", "canonical_url", "language"})
#: Mappings merged key by key: ``hero: {alt: …}`` keeps index.md's picture with this language's alt text.
_MAPPINGS = frozenset({"hero", "embargo", "withdrawn", "email"})
#: Words of a channel in one language: an email subject or a post's text is never another language's.
_CHANNEL_WORDS = ("subject", "text")


@dataclass(frozen=True)
class Base:
    """What a language version reads of its release: index.md's front matter and where each field is."""

    path: Path
    data: dict
    lines: frontmatter.Lines
    front: str


def base_of(path: Path) -> Base | None:
    """The front matter of the release a language version belongs to (None for a file that is not a version).

    A version without its release is an error; one whose release cannot be read raises index.md's own problem,
    which that file reports too (:func:`attach_translations` keeps it once)."""
    if translation_language(path) is None:
        return None
    main = next((path.parent / name for name in INDEX_NAMES if (path.parent / name).is_file()), None)
    if main is None:
        raise ReleaseError(
            "a translation without its release", path=path, line=1, field="file",
            hint="put the release in the site language beside it as index.md",
        )
    text = clean_text(frontmatter.decode(main.read_bytes(), main))
    front, _ = frontmatter.split(text, main)
    node, data = frontmatter.parse_yaml(front, main, first_line=2)
    return Base(main, data, frontmatter.line_map(node, first_line=2), front)


def merge(inherited: dict, own: dict) -> dict:
    """A version's front matter: index.md's shared fields with the version's own over them."""
    merged = {key: value for key, value in inherited.items() if key not in OWN}
    for name in ("email", "social"):
        if isinstance(merged.get(name), dict):
            merged[name] = _without_words(merged[name], nested=name == "social")
    for key, value in own.items():
        old = merged.get(key)
        merger = _MERGERS.get(key) if key in merged else None
        merged[key] = merger(old, value) if merger is not None and type(old) is type(value) else value
    return merged


def _without_words(options: dict, *, nested: bool) -> dict:
    if nested:
        return {network: _without_words(value, nested=False) if isinstance(value, dict) else value
                for network, value in options.items()}
    return {key: value for key, value in options.items() if key not in _CHANNEL_WORDS}


def _merge_mapping(old: dict, new: dict) -> dict:
    return {**old, **new}


def _merge_social(old: dict, new: dict) -> dict:
    return {**old, **{network: _merge_mapping(old[network], value)
                      if isinstance(old.get(network), dict) and isinstance(value, dict) else value
                      for network, value in new.items()}}


def _merge_corrections(old: list, new: list) -> list:
    """Notes by position: the version's ``{note}`` (its date, when written, must be index.md's) over each
    of index.md's corrections; those it has no note for keep index.md's."""
    merged = [_merge_mapping(before, after) if isinstance(before, dict) and isinstance(after, dict) else after
              for before, after in zip(old, new, strict=False)]
    return merged + (old[len(new):] if len(old) > len(new) else new[len(old):])


def _merge_downloads(old: list, new: list) -> list:
    """index.md's downloads with the version's titles (matched by file), then the version's own extra files."""
    titled = {item.get("file"): item for item in new if isinstance(item, dict)}
    files = {item.get("file") for item in old if isinstance(item, dict)}
    merged = [_merge_mapping(item, titled[item.get("file")]) if isinstance(item, dict) and item.get("file") in titled
              else item for item in old]
    return merged + [item for item in new if not isinstance(item, dict) or item.get("file") not in files]


_MERGERS: dict[str, Callable[[Any, Any], Any]] = {
    **dict.fromkeys(_MAPPINGS, _merge_mapping),
    "social": _merge_social,
    "corrections": _merge_corrections,
    "downloads": _merge_downloads,
}


def written_fields(own: dict) -> tuple[str, ...]:
    """What a version's front matter writes: its top-level fields, and ``hero.alt``, ``email.subject``,
    ``social.mastodon.text``… inside the mappings merged key by key."""
    names: list[str] = []
    for key, value in own.items():
        names.append(key)
        if key in _MAPPINGS and isinstance(value, dict):
            names += [f"{key}.{inner}" for inner in value]
        elif key == "social" and isinstance(value, dict):
            names += [f"social.{network}.{inner}" for network, options in value.items() if isinstance(options, dict)
                      for inner in options]
    return tuple(names)


def owned_by_version(error: dict, lines: frontmatter.Lines) -> bool:
    """Whether a validation error of a version's merged front matter is about what the version wrote itself
    (else it is index.md's, which reports it). ``lines`` is the version's own line map."""
    at = tuple(int(part) if part.isdigit() else part for part in (error.get("ctx") or {}).get("at", "").split(".") if part)
    where = at or tuple(error["loc"])
    if error["type"] == "missing":  # not written anywhere: the version's when it is never inherited
        return where[0] in OWN or where[:-1] in lines
    return where in lines


# --------------------------------------------------------------------------- attaching the versions


def attach_translations(
    result: LoadResult,
    versions: list[tuple[Release, list[ReleaseWarning]]],
    problems: list[ReleaseError],
    settings: Settings,
) -> None:
    """Give each release of ``result`` its language versions, each with what it inherits; report a version that
    contradicts its release or doubles a language, warn of one that overrides a shared field, and
    (``require_translations``) report a release missing a language.

    ``problems`` are those of the versions that could not be read: one that is index.md's own (a version reads its
    front matter) is dropped when index.md did not load, as that file reports it already."""
    mains = {release.source.parent: index for index, release in enumerate(result.releases) if release.source.name in INDEX_NAMES}
    result.problems += [p for p in problems if p.path.name not in INDEX_NAMES or p.path.parent in mains]
    said = {(w.path, w.message) for w in result.warnings}
    grouped: dict[int, dict[str, Release]] = {}
    for version, warnings in versions:
        index = mains.get(version.source.parent)
        if index is None:
            continue  # its index.md did not load, and says why
        main, found = result.releases[index], grouped.setdefault(index, {})
        problem = _version_problem(main, version, found, settings)
        if problem is not None:
            result.problems.append(problem)
            continue
        found[version.language] = _inherit(main, version)
        # What the version repeats of index.md (an image's size) is said once, at index.md.
        result.warnings += [w for w in warnings if (main.source, w.message) not in said]
        result.warnings += _overrides(main, version)
    result.releases = _with_versions(result, grouped, settings)


def _with_versions(result: LoadResult, grouped: dict[int, dict[str, Release]], settings: Settings) -> list[Release]:
    """The releases with their versions; with ``require_translations``, those missing a language held back."""
    required = settings.site.all_languages if settings.site.require_translations else ()
    kept: list[Release] = []
    for index, release in enumerate(result.releases):
        versions = grouped.get(index, {})
        missing = [code for code in required if code != release.language and code not in versions]
        if missing:
            result.problems.append(_missing(release, missing))
        else:
            kept.append(release.model_copy(update={"translations": dict(sorted(versions.items()))}) if versions else release)
    return kept


def _version_problem(main: Release, version: Release, seen: dict[str, Release], settings: Settings) -> ReleaseError | None:
    """Why ``version`` cannot be a language version of ``main`` (None: it can)."""
    if version.language == main.language:
        return ReleaseError(
            f"the release itself is in {main.language!r} already", path=version.source, line=1, field="language",
            hint=f"give index.md 'language: {settings.site.language}', or rename this file to the language it is in",
        )
    if version.language in seen:
        return ReleaseError(
            f"{seen[version.language].source.name} is the {version.language!r} version already", path=version.source, line=1,
            field="language", hint="keep one file per language",
        )
    return _contradiction(main, version)


#: The facts every version of a release shares, as (field, how to read it); a version that says otherwise is refused.
_SHARED_FACTS: tuple[tuple[str, Callable[[Release], Any]], ...] = (
    ("slug", lambda release: release.slug),
    ("date", lambda release: release.date),
    ("status", lambda release: release.status),
    ("expires", lambda release: release.expires),
    ("embargo.notify", lambda release: release.embargo and release.embargo.notify),
    ("embargo.topics", lambda release: release.embargo and release.embargo.topics),
    ("withdrawn.date", lambda release: release.withdrawn and release.withdrawn.date),
    ("corrections", lambda release: len(release.corrections)),
    ("corrections.date", lambda release: tuple(correction.date for correction in release.corrections)),
    ("email.enabled", lambda release: release.email.enabled),
    ("email.approval", lambda release: release.email.approval),
    ("email.corrections", lambda release: release.email.corrections),
    ("email.withdrawal_notice", lambda release: release.email.withdrawal_notice),
)


def _contradiction(main: Release, version: Release) -> ReleaseError | None:
    """A shared fact on which ``version`` says otherwise than ``main``, as an error naming both files."""
    for name, read in _SHARED_FACTS:
        mine, theirs = read(version), read(main)
        if mine == theirs:
            continue
        # A time written without an offset reads in the version's time zone: a different one moves it.
        top = name.split(".")[0]
        field = "timezone" if top not in version.written and "timezone" in version.written else name
        return ReleaseError(
            f"{_shown(mine, name)} disagrees with {main.source.name} ({_shown(theirs, name)}): every language version "
            "of a release shares it",
            path=version.source, line=_field_line(version.source, field.split(".")[0]), field=field,
            hint=f"leave {field.split('.')[0]} out of {version.source.name}: it comes from {main.source.name}, where one "
                 "edit changes it for every language",
        )
    return None


def _shown(value: Any, name: str) -> str:
    if name == "corrections":
        return f"{value} correction{'s' if value != 1 else ''}"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="minutes")
    if isinstance(value, tuple):
        return "[" + ", ".join(_shown(item, name) for item in value) + "]"
    return "none" if value is None else repr(value)


def _own(label: str) -> Callable[[Release, Release], str | None]:
    def differs(version: Release, main: Release) -> str | None:
        if getattr(version, label) == getattr(main, label):
            return None
        return f"its own {label}, not those of {main.source.name}: the {version.language} pages, emails and posts show these"
    return differs


def _own_hero(version: Release, main: Release) -> str | None:
    if (version.hero and version.hero.src) == (main.hero and main.hero.src):
        return None
    return f"its own hero picture, not that of {main.source.name}"


def _extra_downloads(version: Release, main: Release) -> str | None:
    offered = {item.name for item in main.downloads}
    extra = [item.name for item in version.downloads if item.name not in offered]
    if not extra:
        return None  # the titles of index.md's files are the version's own words
    return f"downloads that {main.source.name} does not offer ({', '.join(extra)}): the {version.language} page offers them too"


#: What a version may set apart from index.md on purpose: (field, what is different, or None).
_OVERRIDABLE: tuple[tuple[str, Callable[[Release, Release], str | None]], ...] = (
    ("tags", _own("tags")),
    ("contacts", _own("contacts")),
    ("issuers", _own("issuers")),
    ("hero.src", _own_hero),
    ("downloads", _extra_downloads),
)


def _overrides(main: Release, version: Release) -> list[ReleaseWarning]:
    """A warning for each shared field that ``version`` sets otherwise than ``main`` on purpose."""
    found = []
    for name, differs in _OVERRIDABLE:
        message = differs(version, main) if name in version.written else None
        if message is not None:
            found.append(ReleaseWarning(
                message, path=version.source, line=_field_line(version.source, name.split(".")[0]), field=name,
                hint=f"leave {name} out of {version.source.name} to show {main.source.name}'s, or keep it if this "
                     "language needs its own",
            ))
    return found


def _inherit(main: Release, version: Release) -> Release:
    """``version`` with what it takes from ``main`` beyond its front matter: the downloads index.md's body links,
    and a digest that changes with index.md too."""
    names = {item.name for item in version.downloads}
    extra = tuple(item for item in main.downloads if item.name not in names)
    digest = hashlib.blake2b(f"{version.digest}:{main.digest}".encode(), digest_size=16).hexdigest()
    update: dict[str, Any] = {"digest": digest}
    if extra:
        update["downloads"] = version.downloads + extra
        update["assets"] = tuple(dict.fromkeys((*version.assets, *(item.file for item in extra))))
    return version.model_copy(update=update)


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
    match = re.search(rf"^{re.escape(name)}\s*:", text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else 1


# --------------------------------------------------------------------------- what `check` says


#: What ``check`` lists a version as taking from index.md: (name, whether index.md has it, what the version writes instead).
_LISTED: tuple[tuple[str, Callable[[Release], Any], str], ...] = (
    ("date", lambda release: True, "date"),
    ("status", lambda release: True, "status"),
    ("expires", lambda release: release.expires, "expires"),
    ("embargo", lambda release: release.embargo, "embargo"),
    ("withdrawn", lambda release: release.withdrawn, "withdrawn"),
    ("tags", lambda release: release.tags, "tags"),
    ("author", lambda release: release.author, "author"),
    ("hero", lambda release: release.hero, "hero.src"),
    ("hero.alt", lambda release: release.hero, "hero.alt"),
    ("contacts", lambda release: release.contacts, "contacts"),
    ("issuers", lambda release: release.issuers, "issuers"),
    ("downloads", lambda release: release.downloads, "downloads"),
    ("corrections", lambda release: release.corrections, "corrections"),
)


def describe(release: Release) -> list[str]:
    """One line per language version of ``release``: the file, what it writes, what it takes from index.md."""
    lines = []
    for version in release.translations.values():
        # hero.alt rather than hero, when the version writes only inside the mapping
        own = [name for name in version.written if name != "language" and not any(
            other.startswith(f"{name}.") for other in version.written)]
        inherited = [name for name, present, instead in _LISTED if present(release) and instead not in version.written]
        lines.append(
            f"    {version.language}: {version.source.name} writes {', '.join(['body', *own])}"
            + (f"; from {release.source.name}: {', '.join(inherited)}" if inherited else "")
        )
    return lines
