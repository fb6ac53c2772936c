"""Release files -> frozen :class:`Release` models: read, validate, route.

A release is ``content/releases/<slug>.md`` or a bundle folder ``content/releases/<slug>/index.md``
with its images beside it. The file starts with YAML front matter between ``---`` lines;
:class:`FrontMatter` is the one table of what each field means and accepts.

Every problem becomes a :class:`~pressroom.errors.ReleaseError` naming the file, the line
and the field, and the release is skipped; the other releases still load.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import multiprocessing
import os
import pickle
import re
import threading
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import nh3
import yaml
from markdown_it import MarkdownIt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pressroom.errors import ReleaseError
from pressroom.settings import Settings

__all__ = [
    "Contact",
    "HeroImage",
    "Release",
    "LoadResult",
    "load_releases",
    "load_release",
    "resolve_local_time",
    "public_releases",
    "slugify",
    "plain_text",
]

MAX_FILE_BYTES = 1_000_000
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")
# Characters XML 1.0 forbids (they make readers reject a feed) and C1 controls, which no one types.
_ILLEGAL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")


# --------------------------------------------------------------------------- the model


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HeroImage(_Frozen):
    src: str = Field(description="absolute URL of the image on the public site")
    alt: str
    file: Path | None = Field(None, description="the local file, copied next to the release page")


class Contact(_Frozen):
    name: str
    role: str = ""
    organisation: str = ""
    email: str = ""
    phone: str = ""


class ChannelOptions(_Frozen):
    """Per-channel overrides in front matter: ``email: {subject: ..., enabled: false}``."""

    enabled: bool = True
    subject: str | None = None
    text: str | None = None
    approval: bool | None = Field(None, description="email only: ask an editor first; default [email] approval_required")


class Release(_Frozen):
    """One valid release. Its id is its slug; URL, feed GUID and Message-ID root derive from it."""

    slug: str
    title: str
    summary: str
    date: datetime = Field(description="publication instant, timezone-aware")
    status: Literal["draft", "approved"]
    expires: datetime | None = None
    tags: tuple[str, ...] = ()
    language: str
    author: str = ""
    hero: HeroImage | None = None
    contacts: tuple[Contact, ...] = ()
    about_html: str = ""
    canonical_url: str | None = None
    email: ChannelOptions = ChannelOptions()
    social: dict[str, ChannelOptions] = Field(default_factory=dict)
    body_markdown: str
    body_html: str = Field(description="sanitised HTML; every URL in it is absolute")
    url: str = Field(description="the permanent public URL of the release page")
    source: Path
    assets: tuple[Path, ...] = Field((), description="local files copied next to the release page")
    digest: str = Field(description="changes whenever the file or the settings that shape it change")

    def is_public(self, now: datetime) -> bool:
        """Approved, due and not expired: the one rule that decides what appears anywhere."""
        if self.status != "approved" or self.date > now:
            return False
        return self.expires is None or now < self.expires

    @property
    def path(self) -> str:
        """Site-relative folder of the release page, e.g. ``releases/my-slug/``."""
        return f"releases/{self.slug}/"

    @property
    def tag_slugs(self) -> tuple[str, ...]:
        return tuple(slugify(tag) for tag in self.tags)

    def needs_approval(self, settings: Settings) -> bool:
        """Whether an editor must approve this release's email: its own front matter, else the site's rule."""
        own = self.email.approval
        return settings.email.approval_required if own is None else own

    def channel(self, name: str) -> ChannelOptions:
        """Overrides for one channel (``email``, ``mastodon``, ...); defaults when none are given."""
        if name == "email":
            return self.email
        return self.social.get(name, ChannelOptions())


class FrontMatter(BaseModel):
    """What a comms officer may write between the ``---`` lines. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=300)
    slug: str | None = None
    summary: str = Field("", max_length=2000)
    date: str
    timezone: str | None = None
    status: Literal["draft", "approved"]
    expires: str | None = None
    tags: list[str] = Field(default_factory=list)
    language: str | None = None
    author: str = ""
    hero: dict[str, str] | None = None
    contacts: list[Contact] = Field(default_factory=list)
    about: str | None = None
    canonical_url: str | None = None
    email: ChannelOptions = ChannelOptions()
    social: dict[Literal["mastodon", "bluesky", "linkedin", "outbox"], ChannelOptions] = Field(default_factory=dict)

    @field_validator("tags", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("title", "summary", "author")
    @classmethod
    def _one_line(cls, value: str) -> str:
        # A line break in a title would otherwise reach email headers and feed titles.
        return " ".join(value.split())


@dataclass
class LoadResult:
    """Every valid release (sorted newest first) and every problem found."""

    releases: list[Release] = field(default_factory=list)
    problems: list[ReleaseError] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers


def slugify(text: str) -> str:
    """``"Raw Materials & Batteries"`` -> ``"raw-materials-batteries"`` (ASCII, lowercase)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def clean_text(text: str) -> str:
    """Drop characters that XML forbids or that no one types on purpose."""
    return _ILLEGAL_CHARS.sub("", text)


def plain_text(html: str) -> str:
    """Tag-free text of a sanitised HTML fragment, for summaries and meta descriptions."""
    text = re.sub(r"<[^>]+>", " ", html)
    import html as html_module

    return " ".join(html_module.unescape(text).split())


def resolve_local_time(naive: datetime, zone: ZoneInfo) -> datetime:
    """Attach ``zone`` to a wall-clock time, refusing times that DST makes ambiguous or impossible.

    Raises ``ValueError`` with a message that says which offset to write instead.
    """
    early, late = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    if early.utcoffset() == late.utcoffset():
        return early
    round_trip = early.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if round_trip != naive:
        raise ValueError(
            f"{naive:%Y-%m-%d %H:%M} does not exist in {zone.key} (the clocks jump forward then)"
        )
    offsets = " or ".join(_format_offset(dt) for dt in (early, late))
    raise ValueError(
        f"{naive:%Y-%m-%d %H:%M} happens twice in {zone.key} (the clocks go back then); write the offset: {offsets}"
    )


def _format_offset(dt: datetime) -> str:
    return dt.isoformat(timespec="minutes")[-6:]


class _StringLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml: the same result, 2x faster
    """YAML that keeps scalars as written: ``no`` stays "no", ``09:00`` is not sexagesimal,
    a date is not silently turned into a naive datetime. Pydantic does the typing."""


_StringLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag == "tag:yaml.org,2002:null"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _clean_strings(value: Any) -> Any:
    """YAML escapes such as "\\x0b" can produce characters that the raw-text pass could not see."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {key: _clean_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean_strings(item) for item in value]
    return value


def _line_map(node: yaml.Node, prefix: tuple = (), lines: dict | None = None) -> dict[tuple, int]:
    """Field path -> 0-based line in the front matter, so errors can name a line."""
    lines = {} if lines is None else lines
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = (*prefix, key_node.value)
            lines[path] = key_node.start_mark.line
            _line_map(value_node, path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = (*prefix, index)
            lines[path] = item.start_mark.line
            _line_map(item, path, lines)
    return lines


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"typographer": False}).enable(["table", "strikethrough"])


_URL_ATTRIBUTES = {("a", "href"), ("img", "src")}


def render_markdown(text: str, *, base_url: str) -> tuple[str, list[str]]:
    """CommonMark -> sanitised HTML with absolute URLs, and the relative URLs it referenced.

    Raw HTML is allowed in the source but passes through nh3 (ammonia): no script or style
    element, no event handler attribute, no ``javascript:`` URL survives.
    """
    relative: list[str] = []

    def absolutise(tag: str, attribute: str, value: str) -> str | None:
        if (tag, attribute) in _URL_ATTRIBUTES and value and not value.startswith("#"):
            parts = urlsplit(value)
            if not parts.scheme and not parts.netloc:
                relative.append(value)
                return urljoin(base_url, value)
        return value

    html = nh3.clean(
        _markdown().render(text),
        attribute_filter=absolutise,
        url_schemes={"http", "https", "mailto", "tel"},
        link_rel="noopener",
    )
    return html, relative


# --------------------------------------------------------------------------- loading


def _split_front_matter(text: str, path: Path) -> tuple[str, str, int]:
    """Return (yaml, markdown body, line number where the body starts)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise ReleaseError(
            "the file does not start with front matter",
            path=path,
            line=1,
            field="front-matter",
            hint="start the file with a line '---', the fields (title:, date:, status: ...), then another '---'",
        )
    for index in range(1, len(lines)):
        if lines[index].strip() in ("---", "..."):
            return "".join(lines[1:index]), "".join(lines[index + 1 :]), index + 2
    raise ReleaseError(
        "the front matter is never closed",
        path=path,
        line=1,
        field="front-matter",
        hint="add a line '---' after the last field",
    )


def _decode(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ReleaseError(
            f"byte 0x{raw[exc.start]:02x} is not UTF-8",
            path=path,
            line=line,
            field="encoding",
            hint="save the file as UTF-8 (most editors: 'Save with encoding')",
        ) from None


def _parse_instant(value: str, zone: ZoneInfo) -> datetime:
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a date and time; write it as 2024-07-30 09:00 or 2024-07-30T09:00:00+02:00"
        ) from None
    if parsed.tzinfo is None:
        return resolve_local_time(parsed, zone)
    return parsed


def load_release(path: Path, settings: Settings) -> Release:
    """Read and validate one release file; raise :class:`ReleaseError` on the first problem."""
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) > MAX_FILE_BYTES:
        raise ReleaseError(
            f"the file is {len(raw) / 1e6:.1f} MB; the limit is {MAX_FILE_BYTES / 1e6:.0f} MB",
            path=path,
            line=1,
            field="body",
            hint="put images and attachments beside index.md in a bundle folder and link them instead",
        )
    text = clean_text(_decode(raw, path))
    front, body, body_line = _split_front_matter(text, path)

    def error(message: str, field: str, loc: tuple = (), hint: str = "") -> ReleaseError:
        line = lines.get(loc or (field,), None)
        return ReleaseError(message, path=path, line=2 + line if line is not None else 1, field=field, hint=hint)

    lines: dict[tuple, int] = {}
    loader = _StringLoader(front)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        # The context mark points at where an unclosed quote or bracket began, which is what needs fixing.
        mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        problem = " ".join(filter(None, [getattr(exc, "context", None), getattr(exc, "problem", None)])) or str(exc)
        raise ReleaseError(
            f"invalid YAML: {problem}",
            path=path,
            line=2 + mark.line if mark else 1,
            field="front-matter",
            hint="check indentation, close every quote, and quote values that contain ': ' or start with [ { * & ! | > % @",
        ) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ReleaseError(
            "the front matter is not a list of 'field: value' lines",
            path=path,
            line=2,
            field="front-matter",
            hint="write one 'field: value' per line, e.g. 'title: Our news'",
        )
    lines = _line_map(node)
    data = _clean_strings(data)

    try:
        meta = FrontMatter.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        name = ".".join(str(part) for part in loc)
        message = first["msg"].removeprefix("Value error, ")
        hint = _FIELD_HINTS.get(str(loc[0]), "see the front-matter fields in the README")
        if first["type"] == "missing":
            message, hint = "is required", _FIELD_HINTS.get(str(loc[0]), hint)
            return_line = 1
            raise ReleaseError(message, path=path, line=return_line, field=name, hint=hint) from None
        if first["type"] == "literal_error":
            message = f"{first['input']!r} is not one of: {first['ctx']['expected'].replace(' or ', ', ')}"
        if first["type"] == "extra_forbidden":
            message = "unknown field"
            hint = "remove it or check its spelling; known fields: " + ", ".join(FrontMatter.model_fields)
        raise error(message, name, loc, hint) from None

    zone_name = meta.timezone or settings.site.timezone
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise error(
            f"unknown time zone {zone_name!r}", "timezone", hint="use an IANA name such as Europe/Brussels or UTC"
        ) from None
    try:
        date = _parse_instant(meta.date, zone)
    except ValueError as exc:
        raise error(str(exc), "date", hint="an explicit offset is never ambiguous: 2024-07-30T09:00:00+02:00") from None
    expires = None
    if meta.expires:
        try:
            expires = _parse_instant(meta.expires, zone)
        except ValueError as exc:
            raise error(str(exc), "expires") from None
        if expires <= date:
            raise error("is not after the publication date", "expires", hint="set it later than 'date' or remove it")

    is_bundle = path.name == "index.md"
    slug = meta.slug if meta.slug is not None else slugify(path.parent.name if is_bundle else path.stem)
    if not SLUG_RE.fullmatch(slug or "") or len(slug) > 100:
        raise error(
            f"{slug!r} is not a valid slug",
            "slug",
            hint="use lowercase letters, digits and single hyphens, e.g. cluster-hub-launch",
        )
    language = meta.language or settings.site.language
    if not LANGUAGE_RE.fullmatch(language):
        raise error(f"{language!r} is not a language tag", "language", hint="use a tag such as en, de or pt-BR")

    url = f"{settings.site.base_url}/releases/{slug}/"
    folder = path.parent
    assets: list[Path] = []

    def local_file(reference: str, field_name: str, loc: tuple) -> Path:
        target = (folder / PurePosixPath(reference)).resolve()
        # Images are published beside the page under the same relative path, so they must live
        # below the release's folder: that keeps every image URL and its copy in step.
        if not target.is_relative_to(folder.resolve()):
            raise error(
                f"{reference!r} points outside the release's folder",
                field_name,
                loc,
                hint="keep images next to the release file or in a folder below it",
            )
        if not target.is_file():
            raise error(
                f"image file {reference!r} not found next to {path.name}",
                field_name,
                loc,
                hint=f"add the file to {folder} or fix the name",
            )
        return target

    hero = None
    if meta.hero is not None:
        src, alt = meta.hero.get("src", "").strip(), " ".join(meta.hero.get("alt", "").split())
        if not src:
            raise error("hero needs src", "hero.src", ("hero",), hint="write hero: {src: photo.jpg, alt: ...}")
        if not alt:
            raise error(
                "hero image needs alt text",
                "hero.alt",
                ("hero",),
                hint="describe the picture for people who cannot see it, e.g. alt: Researchers at the pilot plant",
            )
        file = None
        if not urlsplit(src).scheme:
            file = local_file(src, "hero.src", ("hero", "src"))
            assets.append(file)
            src = urljoin(url, file.relative_to(folder.resolve()).as_posix())
        hero = HeroImage(src=src, alt=alt, file=file)

    body_html, relative = render_markdown(body, base_url=url)
    for reference in relative:
        reference_path = urlsplit(reference).path
        if PurePosixPath(reference_path).suffix.lower() in _IMAGE_SUFFIXES:
            assets.append(local_file(reference_path, "body", ()))
    about_source = settings.site.about if meta.about is None else meta.about
    about_html = render_markdown(about_source, base_url=url)[0] if about_source.strip() else ""

    digest = hashlib.blake2b(raw + settings.fingerprint.encode(), digest_size=16).hexdigest()
    return Release(
        slug=slug,
        title=meta.title,
        summary=meta.summary or _first_sentence(plain_text(body_html)),
        date=date,
        status=meta.status,
        expires=expires,
        tags=tuple(dict.fromkeys(" ".join(tag.split()) for tag in meta.tags if tag.strip())),
        language=language,
        author=meta.author,
        hero=hero,
        contacts=tuple(meta.contacts),
        about_html=about_html,
        canonical_url=meta.canonical_url,
        email=meta.email,
        social=dict(meta.social),
        body_markdown=body,
        body_html=body_html,
        url=url,
        source=path,
        assets=tuple(dict.fromkeys(assets)),
        digest=digest,
    )


_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".svg", ".avif"}

_FIELD_HINTS = {
    "title": "add a line such as 'title: Cluster HUB celebrates friendship day'",
    "date": "add the publication time, e.g. 'date: 2024-07-30 09:00' (read in the site time zone)",
    "status": "write 'status: draft' while editing and 'status: approved' when it may go out",
    "tags": "write tags as a list, e.g. 'tags: [recycling, lithium]'",
    "hero": "write hero: {src: photo.jpg, alt: what the photo shows}",
    "contacts": "write each contact as {name: ..., email: ..., phone: ...}",
    "social": "use mastodon, bluesky or linkedin, each with text: and/or enabled:",
    "email": "write email: {subject: ..., enabled: false}",
}


def _first_sentence(text: str, limit: int = 280) -> str:
    sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rsplit(" ", 1)[0] + "…"


def _release_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    files = [p for p in root.glob("*.md")] + [p for p in root.glob("*/index.md")]
    return sorted(files)


def load_releases(settings: Settings, *, path: Path | None = None) -> LoadResult:
    """Load every release under ``path`` (default: content/releases); never raises for bad content."""
    result = LoadResult()
    seen: dict[str, Path] = {}
    cache = _ReleaseCache(settings)
    files = _release_files(Path(path) if path else settings.releases_dir)
    cached = {file: cache.get(file) for file in files}
    parsed = _parse_files([file for file, release in cached.items() if release is None], settings)
    for file in files:
        try:
            release = cached[file]
            if release is None:
                outcome = parsed[file]
                if isinstance(outcome, Exception):
                    raise outcome
                release = cache.put(file, outcome)
        except ReleaseError as exc:
            result.problems.append(exc)
            continue
        except OSError as exc:
            result.problems.append(ReleaseError(f"cannot read the file: {exc.strerror}", path=file, field="file"))
            continue
        if release.slug in seen:
            result.problems.append(
                ReleaseError(
                    f"{release.slug!r} is already used by {seen[release.slug]}",
                    path=file,
                    line=1,
                    field="slug",
                    hint="give this release its own 'slug:' (a slug is its permanent URL)",
                )
            )
            continue
        seen[release.slug] = file
        result.releases.append(release)
    result.releases.sort(key=lambda release: (release.date, release.slug), reverse=True)
    if path is None:  # a check of one file must not shrink the cache to that file
        cache.save()
    return result


# Parsing is CPU-bound Python (YAML, Markdown, sanitising: about 1 ms a release). From this many
# files to parse, worker processes share them. Forked when this process has no other thread (a
# fork costs milliseconds); spawned otherwise, as a fork could copy another thread's held lock,
# at 0.3-0.5 s of imports per worker, which a few hundred releases repay on two cores.
_PARALLEL_FROM = 500
_WORKERS = min(4, os.cpu_count() or 1)


def _parse_files(files: list[Path], settings: Settings) -> dict[Path, Release | Exception]:
    """Each file's Release, or the ReleaseError or OSError that reading it raised."""
    if len(files) >= _PARALLEL_FROM and _WORKERS > 1:
        context = multiprocessing.get_context("fork" if threading.active_count() == 1 else "spawn")
        try:
            with ProcessPoolExecutor(max_workers=_WORKERS, mp_context=context) as pool:
                chunk = max(16, len(files) // (_WORKERS * 8))
                outcomes = pool.map(_parse_portable, files, itertools.repeat(settings), chunksize=chunk)
                with _collector_paused():  # the releases arrive pickled
                    return {file: _restore(outcome) for file, outcome in zip(files, outcomes, strict=True)}
        except (OSError, BrokenProcessPool):
            pass  # no processes here (a sandbox, a full process table): parse in this one
    return {file: _parse_one(file, settings) for file in files}


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Unpickling makes only live objects; the cycle collector would walk them again and again
    as they pile up (half the time of loading 10,000 cached releases)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _parse_one(file: Path, settings: Settings) -> Release | Exception:
    try:
        return load_release(file, settings)
    except (ReleaseError, OSError) as exc:
        return exc


def _parse_portable(file: Path, settings: Settings) -> Release | OSError | tuple:
    """``_parse_one`` in a worker: a ReleaseError travels as its fields (its keyword-only
    constructor does not unpickle)."""
    outcome = _parse_one(file, settings)
    if isinstance(outcome, ReleaseError):
        return (outcome.message, outcome.path, outcome.line, outcome.field, outcome.hint)
    return outcome


def _restore(outcome: Release | OSError | tuple) -> Release | Exception:
    if isinstance(outcome, tuple):
        message, path, line, field_name, hint = outcome
        return ReleaseError(message, path=path, line=line, field=field_name, hint=hint)
    return outcome


class _ReleaseCache:
    """Valid releases of the last run, reused while their file, images, settings and this code are unchanged.

    Parsing is most of a build (YAML, Markdown, sanitising: ~1 ms a release), so a rebuild after
    one new release parses one file. The pickle lives in var/cache/, which only Pressroom writes.
    """

    def __init__(self, settings: Settings) -> None:
        self.file = settings.path("var") / "cache" / "releases.pickle"
        code = hashlib.blake2b(Path(__file__).read_bytes(), digest_size=8).hexdigest()
        self.salt = f"{settings.fingerprint}:{code}"
        self.old: dict[str, tuple] = {}
        try:
            with open(self.file, "rb") as stream, _collector_paused():
                while stream.peek(1):
                    key, entry = pickle.load(stream)  # a fresh memo for each, as they were written
                    self.old[key] = entry
        except Exception:  # missing, damaged or from another version: parse everything
            self.old = {}
        self.new: dict[str, tuple] = {}

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int]:
        stat = path.stat()
        return stat.st_size, stat.st_mtime_ns

    def get(self, file: Path) -> Release | None:
        entry = self.old.get(str(file))
        try:
            if not entry or entry[:2] != (self.salt, self._stamp(file)):
                return None
            if [self._stamp(asset) for asset in entry[3].assets] != entry[2]:
                return None
        except OSError:
            return None  # the file or an image went away: parse again, which reports it
        self.new[str(file)] = entry
        return entry[3]

    def put(self, file: Path, release: Release) -> Release:
        self.new[str(file)] = (self.salt, self._stamp(file), [self._stamp(a) for a in release.assets], release)
        return release

    def save(self) -> None:
        if self.new.keys() == self.old.keys() and all(self.new[k] is self.old[k] for k in self.new):
            return
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.file.with_name(f".{self.file.name}.{os.getpid()}")
            # Streamed, one entry at a time with the memo cleared between them: one pickle of
            # 10,000 releases would hold tens of MB of bytes, or of memo, beside the releases.
            with open(temporary, "wb") as stream:
                pickler = pickle.Pickler(stream, protocol=pickle.HIGHEST_PROTOCOL)
                for item in self.new.items():
                    pickler.dump(item)
                    pickler.clear_memo()
            temporary.replace(self.file)
        except OSError:
            pass  # the cache only saves time


def public_releases(releases: list[Release], now: datetime) -> list[Release]:
    """The releases that may appear anywhere public at ``now``, newest first."""
    return [release for release in releases if release.is_public(now)]
