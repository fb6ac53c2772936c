"""A Word, OpenDocument, text or Markdown file becomes a draft release: ``pressroom import FILE``.

``readers`` turns the file into ``blocks`` (mammoth and odfdo live there and nowhere else), ``guess``
reads the front matter out of them, and this module writes the bundle folder
``content/releases/<slug>/`` (``index.md``, or ``index.<lang>.md`` for a translation of an existing
release) with the pictures beside it, then checks it as ``pressroom check`` would. ``inbox`` does
the same for every file dropped into ``content/inbox/``.

A draft is always ``status: draft``: nothing imported is published before a person writes
``status: approved``. An existing release is never overwritten.
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pressroom.errors import DocumentError
from pressroom.importer.draft import Draft, Guess
from pressroom.importer.guess import analyse
from pressroom.importer.readers import SUFFIXES, read_document
from pressroom.importer.sections import organisation_stub
from pressroom.organisations import Organisations, load_organisations
from pressroom.releases import load_releases
from pressroom.settings import Settings
from pressroom.text import LANGUAGE_RE, SLUG_RE, slugify

__all__ = ["SUFFIXES", "CheckResult", "Guess", "ImportResult", "check_draft", "import_document", "organisation_stub"]

_SLUG_WORDS = 60  # characters: a slug is a permanent URL, typed and read by people
# The guesses in the order of the front matter they explain.
_ORDER = ("encoding", "kicker", "title", "summary", "slug", "translation", "language", "date", "embargo", "status",
          "issuers", "contacts", "hero", "pictures", "quotes")


@dataclass
class ImportResult:
    """What ``import_document`` wrote."""

    source: Path
    path: Path  # index.md or index.<lang>.md
    slug: str
    title: str
    translation: str | None  # the language, when the file is a translation of an existing release
    guesses: list[Guess]
    files: list[Path] = field(default_factory=list)  # everything written, the text file first
    unmatched: list[str] = field(default_factory=list)  # partners named in the document without an organisation file


@dataclass
class CheckResult:
    """``pressroom check`` on a new draft: its problem and warning lines, relative to the project."""

    ok: bool
    lines: list[str]


def import_document(
    source: Path,
    *,
    settings: Settings,
    now: datetime,
    slug: str | None = None,
    issuers: Sequence[str] = (),
    language: str | None = None,
    free_slug: bool = False,
    source_name: str | None = None,
) -> ImportResult:
    """Import ``source`` as a draft; raise :class:`DocumentError` (nothing written) when it cannot be.

    ``free_slug`` takes the next free slug (``-2``, ``-3`` …) instead of refusing a slug in use (the
    drop folder: the person who dropped the file cannot choose one). ``source_name`` is the name the
    draft says it came from (default: the file's).
    """
    source = Path(source)
    source_name = source_name or source.name
    organisations = _checked_options(source, settings=settings, slug=slug, language=language, issuers=issuers)
    blocks, note = read_document(source)
    draft = analyse(blocks, organisations=organisations, zone=settings.site.tz, now=now, issuers=issuers)
    if note:
        draft.guesses.insert(0, Guess("encoding", note))
    language = language or settings.site.language
    foreign = language if language != settings.site.language else None  # written in another language than the site's
    chosen = slug or _slug_for("" if draft.title_stand_in else draft.title, source_name)
    releases = settings.releases_dir
    existing = releases / chosen / "index.md"
    if foreign and existing.is_file():
        return _write_translation(draft, settings=settings, source=source, source_name=source_name,
                                  folder=existing.parent, language=foreign, now=now)
    if foreign and (releases / f"{chosen}.md").is_file():
        raise DocumentError(
            f"content/releases/{chosen}.md is a single file: a translation needs its release in a bundle folder", path=source,
            hint=f"move it to content/releases/{chosen}/index.md (the slug stays the same), then import again",
        )
    folder = _claim(releases, chosen, free=free_slug, source=source)
    _guess_slug(draft, folder=folder, chosen=chosen, given=slug)
    if foreign:
        draft.guess("language", f"{language}: a release of its own (no release {chosen} to be a translation of)")
    text = _front_matter(draft, source_name=source_name, now=now, settings=settings, language=foreign)
    try:
        files = _write_files(folder, "index.md", text, draft)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return ImportResult(source=source, path=folder / "index.md", slug=folder.name, title=draft.title, translation=None,
                        guesses=draft.guesses, files=files, unmatched=draft.unmatched)


def _checked_options(
    source: Path, *, settings: Settings, slug: str | None, language: str | None, issuers: Sequence[str]
) -> Organisations:
    """Refuse a bad --slug, --language or --issuers before anything is read; the site's organisations."""
    if slug is not None and not SLUG_RE.fullmatch(slug):
        raise DocumentError(f"--slug {slug!r} is not a valid slug", path=source,
                            hint="use lowercase letters, digits and single hyphens, e.g. cluster-hub-launch")
    if language is not None and not LANGUAGE_RE.fullmatch(language):
        raise DocumentError(f"--language {language!r} is not a language tag", path=source,
                            hint="write the language's two-letter code, e.g. --language de")
    organisations = load_organisations(settings=settings)
    unknown = [name for name in issuers if name not in organisations.by_id]
    if unknown:
        known = ", ".join(sorted(organisations.by_id)) or "none yet"
        raise DocumentError(f"--issuers {unknown[0]!r}: there is no content/organisations/{unknown[0]}.yaml", path=source,
                            hint=f"name an organisation by its file name; known: {known}")
    return organisations


def _guess_slug(draft: Draft, *, folder: Path, chosen: str, given: str | None) -> None:
    if folder.name != chosen:
        draft.guess("slug", f"{chosen} is taken by another release: this draft is {folder.name}", warning=True)
    elif given:
        draft.guess("slug", "from --slug")
    else:
        draft.guess("slug", f"{folder.name}, from the {'title' if draft.title and not draft.title_stand_in else 'file name'}")


def check_draft(result: ImportResult, *, settings: Settings) -> CheckResult:
    """What ``pressroom check`` says about the new draft (its whole folder, so a translation is checked with its release)."""
    folder = result.path.parent.resolve()
    loaded = load_releases(settings, path=result.path.parent)
    found = [problem for problem in [*loaded.problems, *loaded.warnings] if problem.path.resolve().is_relative_to(folder)]
    lines = [problem.line_for_humans(settings.root) for problem in sorted(found, key=lambda p: (str(p.path), p.line or 1))]
    problems = [problem for problem in loaded.problems if problem.path.resolve().is_relative_to(folder)]
    return CheckResult(ok=not problems, lines=lines)


# --------------------------------------------------------------------------- the folder and its files


def _slug_for(title: str, file_name: str) -> str:
    """From the title, cut at a word to stay readable; from the file name when there is no title."""
    slug = slugify(title) or slugify(Path(file_name).stem) or "imported-release"
    if len(slug) > _SLUG_WORDS:
        slug = slug[:_SLUG_WORDS + 1].rsplit("-", 1)[0]
    return slug


def _claim(releases: Path, slug: str, *, free: bool, source: Path) -> Path:
    """Create the draft's bundle folder; never one that exists (making the folder is what claims the slug)."""
    releases.mkdir(parents=True, exist_ok=True)
    for number in range(1, 100 if free else 2):
        candidate = slug if number == 1 else f"{slug}-{number}"
        if (releases / f"{candidate}.md").exists():
            continue
        try:
            (releases / candidate).mkdir()
        except FileExistsError:
            continue
        return releases / candidate
    raise DocumentError(
        f"content/releases/{slug} exists already, and an import never overwrites a release", path=source,
        hint="give the draft its own slug with --slug NEW-SLUG, or add --language xx if the document is a translation of it",
    )


def _write_files(folder: Path, name: str, text: str, draft: Draft) -> list[Path]:
    """Write the text and the pictures, each only if no file has that name yet."""
    written: list[Path] = []
    try:
        with open(folder / name, "x", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        written.append(folder / name)
        for picture in draft.pictures:
            with open(folder / picture.name, "xb") as stream:
                stream.write(picture.data)
            written.append(folder / picture.name)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written


def _write_translation(draft: Draft, *, settings: Settings, source: Path, source_name: str, folder: Path, language: str,
                       now: datetime) -> ImportResult:
    name = f"index.{language}.md"
    if (folder / name).exists():
        raise DocumentError(
            f"content/releases/{folder.name}/{name} exists already, and an import never overwrites a release", path=source,
            hint=f"edit {name} instead, or delete it first if this document replaces it",
        )
    for picture in draft.pictures:
        # The release's own pictures are beside it: this version's get the language in front, and a number if need be.
        stem, suffix = Path(picture.name).stem, Path(picture.name).suffix
        picture.name = f"{language}-{stem}{suffix}"
        number = 1
        while (folder / picture.name).exists():
            number += 1
            picture.name = f"{language}-{stem}-{number}{suffix}"
    main = (folder / "index.md").read_text(encoding="utf-8", errors="replace")
    # A version writes only its own words: date, embargo, issuers, contacts and the hero come from index.md.
    draft.guesses = [guess for guess in draft.guesses if guess.field not in ("date", "issuers")]
    draft.issuers, draft.unmatched, draft.contacts = [], [], []
    draft.guess("translation", f"{language} version of {folder.name}: its date, embargo, issuers, contacts and"
                " downloads are index.md's")
    if not re.search(r"^status:\s*draft\b", _raw_fields(main, ("status",)).get("status", ""), re.MULTILINE):
        draft.guess("status", "draft, while index.md is approved: `pressroom check` names this version and the release"
                    " goes on without it until you delete the status line (it then shares index.md's)", warning=True)
    if draft.hero is None:
        hero = _raw_fields(main, ("hero",)).get("hero", "")
        if re.search(r"src:\s*([^\s,}]+)", hero):
            draft.guess("hero", f"the release's picture: write its alt text in {language}", todo=True)
            draft.hero_inherited = True
    text = _front_matter(draft, source_name=source_name, now=now, settings=settings, language=None, translation=True)
    files = _write_files(folder, name, text, draft)
    return ImportResult(source=source, path=folder / name, slug=folder.name, title=draft.title, translation=language,
                        guesses=draft.guesses, files=files, unmatched=draft.unmatched)


def _raw_fields(text: str, names: Sequence[str]) -> dict[str, str]:
    """Top-level front-matter fields of a release as written (their lines, comments and all), by name."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    found: dict[str, str] = {}
    current: str | None = None
    for line in lines[1:]:
        if line.strip() in ("---", "..."):
            break
        key = re.match(r"^([A-Za-z_]+)\s*:", line)
        if key:
            current = key.group(1) if key.group(1) in names else None
            if current:
                found[current] = line
        elif current and (line.startswith((" ", "\t", "-")) or not line.strip()):
            found[current] += "\n" + line
    return {name: value.rstrip() for name, value in found.items()}


# --------------------------------------------------------------------------- the front matter


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def _front_matter(draft: Draft, *, source_name: str, now: datetime, settings: Settings, language: str | None,
                  translation: bool = False) -> str:
    draft.guesses.sort(key=lambda guess: _ORDER.index(guess.field) if guess.field in _ORDER else len(_ORDER))
    zone = settings.site.tz
    lines = ["---", f"# Imported from {source_name} by `pressroom import` on {now.astimezone(zone):%Y-%m-%d %H:%M %Z}.",
             "# What was guessed: check each line, write every TODO, then set status: approved to publish it."]
    for guess in draft.guesses:
        lines += textwrap.wrap(guess.line(), width=100, initial_indent="#   ", subsequent_indent="#     ",
                               break_long_words=False, break_on_hyphens=False)
    lines.append(f"title: {_quote(draft.title)}" if draft.title else 'title: ""  # TODO: write the title')
    if draft.summary:
        lines.append(f"summary: {_quote(draft.summary)}")
    if not translation:
        lines.append(f"date: {draft.date:%Y-%m-%d %H:%M}")
    lines.append("status: draft")
    if language:
        lines.append(f"language: {language}")
    if draft.issuers:
        lines.append(f"issuers: [{', '.join(draft.issuers)}]")
    for name in draft.unmatched:
        lines.append(f"# not an issuer yet: {name} (no {organisation_stub(name)[0]})")
    lines += _hero_lines(draft) + _contact_lines(draft)
    lines.append("---")
    return "\n".join(lines) + "\n\n" + draft.body


def _hero_lines(draft: Draft) -> list[str]:
    todo_alt = '""  # TODO: say what the picture shows, for people who cannot see it'
    if draft.hero is not None:
        alt = f"{_quote(draft.hero.alt)}" if draft.hero.alt else todo_alt
        return ["hero:", f"  src: {draft.hero.name}", f"  alt: {alt}"]
    if draft.hero_inherited:
        return ["hero:", f"  alt: {todo_alt}"]
    return []


def _contact_lines(draft: Draft) -> list[str]:
    if not draft.contacts:
        return []
    lines = ["contacts:"]
    for contact in draft.contacts:
        first = True
        for key, value in contact.items():
            lines.append(f"  {'- ' if first else '  '}{key}: {_quote(value)}")
            first = False
    return lines
