"""Release files -> frozen :class:`Release` models: read, validate, route.

A release is ``content/releases/<slug>.md`` or a bundle folder ``content/releases/<slug>/index.md``
with its images beside it. The file starts with YAML front matter between ``---`` lines;
:class:`FrontMatter` is the one table of what each field means and accepts.

A bundle may hold the release in other languages too, ``index.de.md`` beside ``index.md``: each
is read like any release file, then attached to the release as ``Release.translations`` when it
agrees on what the versions share (slug, date, status, expiry, approval).

Every problem becomes a :class:`~pressroom.errors.ReleaseError` naming the file, the line
and the field, and the release is skipped; the other releases still load. What is only worth a
second look (a date without a time) is a :class:`~pressroom.errors.ReleaseWarning`: the release loads.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import multiprocessing
import os
import pickle
import re
import sys
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO, Literal
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import nh3
import yaml
from markdown_it import MarkdownIt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from pressroom.errors import ReleaseError, ReleaseWarning
from pressroom.i18n import format_size
from pressroom.settings import Settings

if TYPE_CHECKING:
    from pressroom.organisations import Organisation, Organisations

__all__ = [
    "Contact",
    "Correction",
    "Download",
    "Embargo",
    "Withdrawal",
    "FrontMatter",
    "HeroImage",
    "Release",
    "LoadResult",
    "load_releases",
    "load_release",
    "translation_language",
    "resolve_local_time",
    "public_releases",
    "slugify",
    "plain_text",
]

MAX_FILE_BYTES = 1_000_000
# index.de.md beside index.md: the German version of the same release.
_TRANSLATION_FILE = re.compile(r"^index\.([A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*)\.md$")
# What every version of one release shares: one URL, one approval, one publication instant.
_SHARED_FIELDS = ("slug", "date", "status", "expires", "embargo")
#: The archive of a release's text, images and downloads, beside its page (built by pressroom.presskit).
PRESS_KIT = "press-kit.zip"
#: Images larger than this load slowly and fill journalists' inboxes: ``pressroom check`` warns.
MAX_IMAGE_BYTES = 5_000_000
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")
# Characters XML 1.0 forbids (they make readers reject a feed) and C1 controls, which no one types.
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")
_ILLEGAL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")


# --------------------------------------------------------------------------- the model


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Every release comes out of a pickle (the cache, a parsing worker), each with its own copy of what
        # thousands of releases share: the set of the fields it was given (2.7 KB a release, 27 MB at 10,000)
        # and short values (status, language, tags, contacts). One shared object each instead; pydantic
        # copies the set before it changes one (model_copy), and a frozen model never changes its own.
        given = state.get("__pydantic_fields_set__")
        if given is not None:
            state = {**state, "__pydantic_fields_set__": _FIELD_SETS.setdefault(frozenset(given), given)}
        values = state.get("__dict__") or {}
        for name, value in values.items():
            if type(value) is str and len(value) <= _SHORT:
                values[name] = sys.intern(value)
            elif type(value) is tuple and all(type(item) is str and len(item) <= _SHORT for item in value):
                values[name] = tuple(map(sys.intern, value))
        super().__setstate__(state)


_FIELD_SETS: dict[frozenset[str], set[str]] = {}
_SHORT = 64  # characters: a value this short is likely one many releases share


class _Shared(_Frozen):
    """A small model many releases hold equal copies of (the default channel options, the press office's
    contact): unpickled, equal ones are one shared object (0.5 KB a release each)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _shared, (type(self), tuple(self.__dict__.items()), frozenset(self.__pydantic_fields_set__))


@lru_cache(maxsize=1024)
def _shared(model: type[_Shared], values: tuple[tuple[str, Any], ...], given: frozenset[str]) -> _Shared:
    return model.model_construct(_fields_set=set(given), **dict(values))


class HeroImage(_Frozen):
    src: str = Field(description="absolute URL of the image on the public site")
    alt: str
    file: Path | None = Field(None, description="the local file, copied next to the release page")


class Contact(_Shared):
    name: str
    role: str = ""
    organisation: str = ""
    email: str = ""
    phone: str = ""

    @field_validator("email")
    @classmethod
    def _address(cls, value: str) -> str:
        value = value.strip()
        if value and not _ADDRESS.fullmatch(value):
            raise _problem(f"{value!r} is not an email address", "write the whole address, e.g. press@example.org")
        return value


class Correction(_Frozen):
    """A dated note shown below the title of a published release that was changed."""

    date: datetime
    note: str


class Withdrawal(_Frozen):
    """Why and when a published release was withdrawn: its URL keeps only this notice."""

    date: datetime
    reason: str


class Download(_Frozen):
    """A file of the bundle folder offered for download next to the release page."""

    file: Path = Field(description="the local file, copied next to the release page")
    name: str = Field(description="its path relative to the release page, e.g. statement.pdf")
    title: str
    size: int = Field(description="bytes")

    @property
    def kind(self) -> str:
        """What the file is, for people: its extension in capitals (PDF, DOCX, ZIP)."""
        return PurePosixPath(self.name).suffix.lstrip(".").upper() or "File"

    def size_in(self, language: str) -> str:
        """The file's size as readers of ``language`` write it: "1.5 MB", "1,5 Mo"."""
        return format_size(self.size, language=language)


class ChannelOptions(_Shared):
    """Per-channel overrides in front matter: ``email: {subject: ..., enabled: false}``."""

    enabled: bool = True
    subject: str | None = None
    text: str | None = None
    approval: bool | None = Field(None, description="email only: ask an editor first; default [email] approval_required")
    corrections: bool | None = Field(None, description="email only: send each new correction note; default [email] send_corrections")
    withdrawal_notice: bool = Field(False, description="email only: tell those who received it that it was withdrawn")


class Embargo(_Frozen):
    """When the media list hears of a release before it is public, and which beats."""

    notify: datetime = Field(description="the journalists' instant, timezone-aware, never after the release's date")
    topics: tuple[str, ...] = Field((), description="beats (tag slugs) it goes to; default: the release's tags")


class Release(_Frozen):
    """One valid release. Its id is its slug; URL, feed GUID and Message-ID root derive from it."""

    slug: str
    title: str
    summary: str
    date: datetime = Field(description="publication instant, timezone-aware")
    status: Literal["draft", "approved", "withdrawn"]
    expires: datetime | None = None
    embargo: Embargo | None = None
    tags: tuple[str, ...] = ()
    language: str
    # The other languages of this release (index.<lang>.md beside index.md): language -> that
    # version, a Release of its own (its title, summary, body, URL), sharing slug, date and status.
    translations: dict[str, Release] = Field(default_factory=dict)
    prefix: str = Field("", description="'de/' for a translation: its pages live under /de/")
    author: str = ""
    hero: HeroImage | None = None
    contacts: tuple[Contact, ...] = ()
    issuers: tuple[Organisation, ...] = Field((), description="co-issuers, resolved from content/organisations/")
    about_html: str = ""
    canonical_url: str | None = None
    corrections: tuple[Correction, ...] = Field((), description="oldest first")
    withdrawn: Withdrawal | None = None
    downloads: tuple[Download, ...] = ()
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

    def shows_notice(self, now: datetime) -> bool:
        """Withdrawn after it was due: its permanent URL keeps a notice instead of a 404."""
        return self.withdrawn is not None and self.date <= now

    @property
    def text_digest(self) -> str:
        """Changes when what readers see of the release changes, not with a new correction note or a setting."""
        text = "\x1f".join((self.title, self.summary, self.body_markdown, *(d.name for d in self.downloads)))
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    @property
    def modified(self) -> datetime:
        """When the public record last changed: the withdrawal, else the latest correction, else publication."""
        if self.withdrawn is not None:
            return max(self.date, self.withdrawn.date)
        return max([self.date, *(correction.date for correction in self.corrections)])

    def local_name(self, file: Path) -> str:
        """Where one of the release's files lives beside its page (its path from the release file), as its URL says."""
        return file.relative_to(self.source.parent.resolve()).as_posix()  # ``assets`` are resolved already

    @property
    def images(self) -> tuple[tuple[str, Path], ...]:
        """(name beside the page, local file) of each image of the release: its hero and those of its body."""
        return tuple((self.local_name(a), a) for a in self.assets if a.suffix.lower() in _IMAGE_SUFFIXES)

    @property
    def path(self) -> str:
        """Site-relative folder of the release page, e.g. ``releases/my-slug/`` (``de/releases/my-slug/``)."""
        return f"{self.prefix}releases/{self.slug}/"

    def version(self, language: str | None) -> Release:
        """This release in ``language`` (``pt-BR`` also finds ``pt``), else as written in the site language."""
        if not language or not self.translations:
            return self
        return self.translations.get(language) or self.translations.get(language.split("-")[0]) or self

    @property
    def topics(self) -> tuple[str, ...]:
        """The tag slugs of every version: a reader who follows a topic in any language gets the release."""
        return tuple(dict.fromkeys(slug for version in self.versions for slug in version.tag_slugs))

    @property
    def versions(self) -> tuple[Release, ...]:
        """Every language version, this one (the site language's) first."""
        return (self, *self.translations.values())

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


@dataclass
class LoadResult:
    """Every valid release (sorted newest first), every problem found, and the warnings of valid releases."""

    releases: list[Release] = field(default_factory=list)
    problems: list[ReleaseError] = field(default_factory=list)
    warnings: list[ReleaseWarning] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers


def slugify(text: str) -> str:
    """``"Raw Materials & Batteries"`` -> ``"raw-materials-batteries"`` (ASCII, lowercase)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def file_slug(path: Path) -> str:
    """The slug a release file gets when its front matter names none: its bundle folder's (``index.md``,
    ``index.de.md``) or its own name."""
    bundled = path.name == "index.md" or translation_language(path) is not None
    return slugify(path.parent.name if bundled else path.stem)


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
    parser = MarkdownIt("commonmark", {"typographer": False}).enable(["table", "strikethrough"])
    parser.core.ruler.push("cell_alignment", _cell_alignment)
    return parser


def _cell_alignment(state: Any) -> None:
    """``---:`` columns as ``align="right"``: the sanitiser drops every style attribute (it would
    let a release restyle the page), but keeps ``align``, which the site and email clients both honour."""
    if "|" not in state.src:
        return  # no table: most releases
    for token in state.tokens:
        if token.type in ("th_open", "td_open") and "style" in token.attrs:
            token.attrs = {"align": str(token.attrs.pop("style")).removeprefix("text-align:")}


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


def _about_html(text: str, *, base_url: str) -> str:
    """The About boilerplate as HTML. It is the same text in nearly every release: rendered once,
    unless it has relative links, which differ with each release's URL."""
    html, relative = _render_once(text)
    return render_markdown(text, base_url=base_url)[0] if relative else html


@lru_cache(maxsize=16)
def _render_once(text: str) -> tuple[str, tuple[str, ...]]:
    html, relative = render_markdown(text, base_url="")  # the base only ever joins relative links
    return html, tuple(relative)


# --------------------------------------------------------------------------- the front matter


class _Context:
    """What the validators need beyond the front matter: the file, the settings, and where warnings go."""

    __slots__ = ("path", "settings", "warnings", "organisations")

    def __init__(self, path: Path, settings: Settings, organisations: Organisations | None = None) -> None:
        self.path = path
        self.settings = settings
        self.organisations = organisations
        self.warnings: list[tuple[str, str, str]] = []  # (message, field, hint)


def _problem(message: str, hint: str, *, field: str = "", at: str = "") -> PydanticCustomError:
    """A validation error that carries its own hint; ``field`` and ``at`` (the line to point at,
    dotted) override the location pydantic would give."""
    return PydanticCustomError("release", "{message}", {"message": message, "hint": hint, "field": field, "at": at})


def _context(info: ValidationInfo) -> _Context:
    return info.context  # type: ignore[no-any-return]


class FrontMatter(BaseModel):
    """What a comms officer may write between the ``---`` lines: one field, one rule, one hint.

    Validated with a :class:`_Context`; fields are checked in this order and a validator may use
    the fields above it (``date`` reads ``timezone``, ``hero`` reads ``slug``). Unknown keys are errors.
    """

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=300)
    slug: str = Field("", validate_default=True, description="default: the file (or bundle folder) name")
    summary: str = Field("", max_length=2000)
    timezone: str = Field("", validate_default=True, description="default: [site] timezone")
    date: datetime
    status: Literal["draft", "approved", "withdrawn"]
    expires: datetime | None = None
    embargo: Embargo | None = None
    tags: list[str] = Field(default_factory=list)
    language: str = Field("", validate_default=True, description="default: [site] language")
    author: str = ""
    hero: HeroImage | None = None
    contacts: list[Contact] = Field(default_factory=list)
    issuers: list[str] = Field(default_factory=list, description="ids of content/organisations/<id>.yaml")
    about: str | None = None
    canonical_url: str | None = None
    corrections: list[Correction] = Field(default_factory=list)
    withdrawn: Withdrawal | None = Field(None, validate_default=True)
    downloads: list[Download] = Field(default_factory=list)
    email: ChannelOptions = ChannelOptions()
    social: dict[Literal["mastodon", "bluesky", "linkedin", "outbox"], ChannelOptions] = Field(default_factory=dict)

    @field_validator("title", "summary", "author")
    @classmethod
    def _one_line(cls, value: str) -> str:
        # A line break in a title would otherwise reach email headers and feed titles.
        return " ".join(value.split())

    @field_validator("slug", mode="before")
    @classmethod
    def _slug(cls, value: Any, info: ValidationInfo) -> Any:
        if value in ("", None):
            value = file_slug(_context(info).path)
        if not isinstance(value, str) or not SLUG_RE.fullmatch(value) or len(value) > 100:
            raise _problem(
                f"{value!r} is not a valid slug",
                "use lowercase letters, digits and single hyphens, e.g. cluster-hub-launch",
                field="slug",
            )
        return value

    @field_validator("timezone", mode="before")
    @classmethod
    def _zone(cls, value: Any, info: ValidationInfo) -> Any:
        name = value or _context(info).settings.site.timezone
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise _problem(f"unknown time zone {name!r}", "use an IANA name such as Europe/Brussels or UTC") from None
        return name

    @field_validator("date", mode="plain")
    @classmethod
    def _date(cls, value: Any, info: ValidationInfo) -> datetime | None:
        zone = info.data.get("timezone")
        if zone is None:
            return None  # the time zone is wrong and already reported
        instant = _instant(value, ZoneInfo(zone), "an explicit offset is never ambiguous: 2024-07-30T09:00:00+02:00")
        if _DATE_ONLY.fullmatch(value.strip()):
            _context(info).warnings.append((
                f"{value.strip()} has no time: it means 00:00 in {zone}",
                "date",
                f"write the time too, e.g. 'date: {value.strip()} 09:00'",
            ))
        return instant

    @field_validator("status", mode="before")
    @classmethod
    def _lowercase_status(cls, value: Any) -> Any:
        if isinstance(value, str) and value != value.lower() and value.lower() in ("draft", "approved", "withdrawn"):
            raise _problem(f"{value!r} is not one of: 'draft', 'approved', 'withdrawn'", f"write it in lowercase: 'status: {value.lower()}'")
        return value

    @field_validator("expires", mode="plain")
    @classmethod
    def _expires(cls, value: Any, info: ValidationInfo) -> datetime | None:
        date = info.data.get("date")
        if value is None or date is None:
            return None
        hint = "set it later than 'date' or remove it"
        expires = _instant(value, ZoneInfo(info.data["timezone"]), hint)
        if expires <= date:
            raise _problem("is not after the publication date", hint)
        return expires

    @field_validator("embargo", mode="plain")
    @classmethod
    def _embargo(cls, value: Any, info: ValidationInfo) -> Embargo | None:
        date = info.data.get("date")
        if value is None or date is None:
            return None
        shape = "write embargo: {notify: 48h} (before 'date') or embargo: {notify: 2026-12-01T09:00:00+01:00}"
        if not isinstance(value, dict):
            raise _problem("is not a {notify, topics} mapping", shape)
        unknown = [key for key in value if key not in ("notify", "topics")]
        if unknown:
            raise _problem("unknown field", "the fields of embargo are: notify, topics",
                           field=f"embargo.{unknown[0]}", at=f"embargo.{unknown[0]}")
        raw = value.get("notify")
        if raw is None:
            raise _problem("embargo needs notify", shape, field="embargo.notify")
        text = raw.strip() if isinstance(raw, str) else ""
        duration = _DURATION.fullmatch(text.replace(" ", ""))
        if duration:
            amount, unit = int(duration.group(1)), duration.group(2)
            notify = date - timedelta(**{_UNITS[unit]: amount})
        else:
            try:
                notify = _instant(raw, ZoneInfo(info.data["timezone"]), shape)
            except PydanticCustomError as exc:
                raise _problem(f"{raw!r} is neither a duration (48h, 2d, 90m) nor a date and time", shape,
                               field="embargo.notify", at="embargo.notify") from exc
        if notify > date:
            raise _problem(
                f"the journalists would hear of it at {notify.isoformat()}, after its date {date.isoformat()}",
                "set embargo.notify before 'date' (e.g. notify: 48h), or remove the embargo",
                field="embargo.notify", at="embargo.notify",
            )
        topics = value.get("topics") or []
        if isinstance(topics, str):
            topics = [part for part in topics.split(",")]
        if not isinstance(topics, list) or not all(isinstance(topic, str) for topic in topics):
            raise _problem("is not a list of beats", "write topics: [energy, research]", field="embargo.topics", at="embargo.topics")
        return Embargo(notify=notify, topics=tuple(dict.fromkeys(slugify(t) for t in topics if slugify(t))))

    @field_validator("tags", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("tags")
    @classmethod
    def _distinct_tags(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(" ".join(tag.split()) for tag in value if tag.strip()))

    @field_validator("language", mode="before")
    @classmethod
    def _language(cls, value: Any, info: ValidationInfo) -> Any:
        context = _context(info)
        named = translation_language(context.path)
        language = value or named or context.settings.site.language
        if not isinstance(language, str) or not LANGUAGE_RE.fullmatch(language):
            raise _problem(f"{language!r} is not a language tag", "use a tag such as en, de or pt-BR")
        if named and language != named:
            raise _problem(
                f"{language!r} disagrees with the file name, which says {named!r}",
                f"remove the line or write 'language: {named}'",
            )
        return language

    @field_validator("issuers")
    @classmethod
    def _issuers(cls, value: list[str], info: ValidationInfo) -> list[str]:
        found = _context(info).organisations
        known = found.by_id if found is not None else {}
        for index, name in enumerate(value):
            if found is not None and name in found.problems:
                problem = found.problems[name]
                raise _problem(
                    f"issuer {name!r} cannot be used: {problem.location()}: {problem.field}: {problem.message}",
                    f"fix content/organisations/{name}.yaml first (pressroom check lists its problem)",
                    field="issuers", at=f"issuers.{index}",
                )
            if name not in known:
                names = ", ".join(sorted(known)) or "none yet"
                raise _problem(
                    f"unknown issuer {name!r}",
                    f"add content/organisations/{name}.yaml or check the spelling; known: {names}",
                    field="issuers", at=f"issuers.{index}",
                )
        return list(dict.fromkeys(value))

    @field_validator("hero", mode="plain")
    @classmethod
    def _hero(cls, value: Any, info: ValidationInfo) -> HeroImage | None:
        if value is None:
            return None
        shape = 'write hero: {src: photo.jpg, alt: "what the photo shows"}'
        if isinstance(value, str):
            raise _problem(
                "a hero is an image and its alt text, not only a file name",
                f'write hero: {{src: {value.strip()}, alt: "…"}} with alt saying what the picture shows',
            )
        if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
            raise _problem("is not a {src, alt} pair", shape)
        unknown = [key for key in value if key not in ("src", "alt")]
        if unknown:
            raise _problem("unknown field", "the fields of hero are: src, alt", field=f"hero.{unknown[0]}", at=f"hero.{unknown[0]}")
        src, alt = value.get("src", "").strip(), " ".join(value.get("alt", "").split())
        if not src:
            raise _problem("hero needs src", shape, field="hero.src")
        if not alt:
            raise _problem(
                "hero image needs alt text",
                "describe the picture for people who cannot see it, e.g. alt: Researchers at the pilot plant",
                field="hero.alt",
            )
        if urlsplit(src).scheme:
            return HeroImage(src=src, alt=alt)
        slug = info.data.get("slug")
        if slug is None:
            return None  # the slug is wrong and already reported
        context = _context(info)
        file, message, hint = _local_image(src, context.path)
        if message:
            raise _problem(message, hint, field="hero.src", at="hero.src")
        url = f"{context.settings.site.base_url}/releases/{slug}/"
        return HeroImage(src=urljoin(url, file.relative_to(context.path.parent.resolve()).as_posix()), alt=alt, file=file)

    @field_validator("corrections", mode="plain")
    @classmethod
    def _corrections(cls, value: Any, info: ValidationInfo) -> list[Correction]:
        shape = 'write corrections: [{date: 2026-12-03 10:00, note: "The rate is 91%, not 95%."}]'
        zone, date = info.data.get("timezone"), info.data.get("date")
        items = _list_of(value, "{date, note}", shape)
        corrections = [_dated(item, ("date", "note"), f"corrections.{index}", shape, zone) for index, item in enumerate(items)]
        if date is not None:
            for index, (moment, _) in enumerate(corrections):
                if moment < date:
                    raise _problem("is before the publication date", "date a correction when it was made", field=f"corrections.{index}.date", at=f"corrections.{index}.date")
        return sorted((Correction(date=moment, note=note) for moment, note in corrections), key=lambda c: c.date)

    @field_validator("withdrawn", mode="plain")
    @classmethod
    def _withdrawn(cls, value: Any, info: ValidationInfo) -> Withdrawal | None:
        shape = 'write withdrawn: {date: 2026-12-05 09:00, reason: "Published in error."}'
        status = info.data.get("status")
        if value is None:
            if status == "withdrawn":
                raise _problem("a withdrawn release needs withdrawn: {date, reason}", shape, field="withdrawn", at="status")
            return None
        if status != "withdrawn":
            raise _problem("withdrawn: is set but the status is not withdrawn", "write 'status: withdrawn' too, or remove withdrawn:", field="withdrawn", at="withdrawn")
        moment, reason = _dated(value, ("date", "reason"), "withdrawn", shape, info.data.get("timezone"))
        return Withdrawal(date=moment, reason=reason)

    @field_validator("downloads", mode="plain")
    @classmethod
    def _downloads(cls, value: Any, info: ValidationInfo) -> list[Download]:
        shape = 'write downloads: [{file: statement.pdf, title: "Statement (PDF)"}]'
        downloads = []
        for index, item in enumerate(_list_of(value, "{file, title}", shape)):
            at = f"downloads.{index}"
            if not isinstance(item, dict) or not all(isinstance(part, str) for part in item.values()):
                raise _problem("is not a {file, title} pair", shape, field=at, at=at)
            unknown = [key for key in item if key not in ("file", "title")]
            if unknown:
                raise _problem("unknown field", "the fields of a download are: file, title", field=f"{at}.{unknown[0]}", at=f"{at}.{unknown[0]}")
            name = item.get("file", "").strip()
            if not name or urlsplit(name).scheme:
                raise _problem("needs the name of a file in the release's folder", shape, field=f"{at}.file", at=at)
            downloads.append(_download(name, " ".join(item.get("title", "").split()), _context(info).path, at=f"{at}.file"))
        return downloads


def _list_of(value: Any, what: str, shape: str) -> list:
    """A front-matter list (none written: empty), else a problem saying what it should hold."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _problem(f"is not a list of {what}", shape)
    return value


def _dated(value: Any, names: tuple[str, str], at: str, shape: str, zone: str | None) -> tuple[datetime, str]:
    """A ``{date, <text>}`` mapping of the front matter as (aware instant, one-line text)."""
    if not isinstance(value, dict) or not all(isinstance(part, str) for part in value.values()):
        raise _problem(f"is not a {{{', '.join(names)}}} pair", shape, field=at, at=at)
    unknown = [key for key in value if key not in names]
    if unknown:
        raise _problem("unknown field", f"the fields are: {', '.join(names)}", field=f"{at}.{unknown[0]}", at=f"{at}.{unknown[0]}")
    text = " ".join(value.get(names[1], "").split())
    if "date" not in value or not text:
        raise _problem(f"needs both {names[0]} and {names[1]}", shape, field=at, at=at)
    if zone is None:
        raise _problem("the time zone is wrong", "fix 'timezone:' first", field=at, at=at)
    return _instant(value["date"], ZoneInfo(zone), shape), text


def _download(reference: str, title: str, path: Path, *, at: str = "") -> Download:
    """The download a reference of release ``path`` names; a missing file is an error pointing at ``at``."""
    file, message, hint = _local_image(reference, path, kind="download")
    if message:
        raise _problem(message, hint, field=at, at=at)
    name = file.relative_to(path.parent.resolve()).as_posix()
    return Download(file=file, name=name, title=title or PurePosixPath(name).name, size=file.stat().st_size)


_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_DURATION = re.compile(r"(\d{1,5})([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def _instant(value: Any, zone: ZoneInfo, hint: str) -> datetime:
    """A front-matter time as an aware datetime: an offset if written, else ``zone``'s wall clock."""
    text = value.strip() if isinstance(value, str) else ""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise _problem(
            f"{value!r} is not a date and time; write it as 2024-07-30 09:00 or 2024-07-30T09:00:00+02:00", hint
        ) from None
    if parsed.tzinfo is not None:
        return parsed
    try:
        return resolve_local_time(parsed, zone)
    except ValueError as exc:
        raise _problem(str(exc), hint) from None


def _local_image(reference: str, path: Path, *, kind: str = "image") -> tuple[Path, str, str]:
    """The file an image (or download) reference of release ``path`` names, and ``(message, hint)``
    of what is wrong with it (empty if nothing)."""
    folder = path.parent.resolve()  # only for releases with local images: resolve() costs system calls
    target = (folder / PurePosixPath(reference)).resolve()
    # Images are published beside the page under the same relative path, so they must live
    # below the release's folder: that keeps every image URL and its copy in step.
    if not target.is_relative_to(folder):
        return target, f"{reference!r} points outside the release's folder", f"keep {kind}s next to the release file or in a folder below it"
    if not target.is_file():
        return target, f"{kind} file {reference!r} not found next to {path.name}", f"add the file to {path.parent} or fix the name"
    return target, "", ""


# --------------------------------------------------------------------------- loading


def _split_front_matter(text: str, path: Path) -> tuple[str, str]:
    """Return (yaml, markdown body)."""
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
            return "".join(lines[1:index]), "".join(lines[index + 1 :])
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


def load_release(path: Path, settings: Settings, *, warnings: list[ReleaseWarning] | None = None) -> Release:
    """Read and validate one release file; raise :class:`ReleaseError` on the first problem.

    What is worth a second look but still publishes (a date without a time) is appended to
    ``warnings`` when a list is given.
    """
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
    front, body = _split_front_matter(text, path)
    node, data = _parse_yaml(front, path)
    lines = _line_map(node)
    organisations = _organisations.load_organisations(settings=settings)  # read once per run, cached there
    context = _Context(path, settings, organisations)
    try:
        meta = FrontMatter.model_validate(_clean_strings(data), context=context)
    except ValidationError as exc:
        raise _release_error(exc.errors(include_url=False)[0], path, lines) from None

    prefix = f"{meta.language}/" if translation_language(path) else ""
    url = f"{settings.site.base_url}/{prefix}releases/{meta.slug}/"
    assets = [meta.hero.file] if meta.hero is not None and meta.hero.file is not None else []
    body_html, relative = render_markdown(body, base_url=url)
    downloads = {download.name: download for download in meta.downloads}
    for reference in relative:
        reference_path = urlsplit(reference).path
        suffix = PurePosixPath(reference_path).suffix.lower()
        if suffix in _IMAGE_SUFFIXES:
            file, message, hint = _local_image(reference_path, path)
            if message:
                raise ReleaseError(message, path=path, line=1, field="body", hint=hint)
            assets.append(file)
        elif suffix and suffix not in _PAGE_SUFFIXES and not reference_path.startswith("/"):
            # A linked file of the bundle that is not published would be a 404 on the site and in every
            # email. A path from the site's root ("/reports/r.pdf") is the site's own, not the bundle's.
            try:
                download = _download(reference_path, "", path)
            except PydanticCustomError as exc:
                line = _body_line(body, reference, first=text.count("\n", 0, len(text) - len(body)) + 1)
                raise ReleaseError(exc.context["message"], path=path, line=line, field="body", hint=exc.context["hint"]) from None
            downloads.setdefault(download.name, download)
    assets += [download.file for download in downloads.values()]
    about_source = settings.site.about_in(meta.language) if meta.about is None else meta.about
    about_html = _about_html(about_source, base_url=url) if about_source.strip() else ""
    if warnings is not None:
        for message, name, hint in context.warnings:
            warnings.append(ReleaseWarning(message, path=path, line=_line(lines, (name,)), field=name, hint=hint))
        for image in dict.fromkeys(assets):
            size = image.stat().st_size
            if image.suffix.lower() in _IMAGE_SUFFIXES and size > MAX_IMAGE_BYTES:
                # Pages and emails show smaller copies, but the original still goes into every press kit download.
                warnings.append(ReleaseWarning(
                    f"image {image.name} is {format_size(size, language='en')}", path=path, line=1, field="images",
                    hint=f"export it at most {format_size(MAX_IMAGE_BYTES, language='en')} (e.g. 3000 px wide, JPEG quality 85)",
                ))

    # Not the body's whole text: a table or list after a sentence without a full stop would join it.
    first = _FIRST_PARAGRAPH.search(body_html)
    return Release(
        slug=meta.slug,
        title=meta.title,
        summary=meta.summary or _first_sentence(plain_text(first.group(1) if first else body_html)),
        date=meta.date,
        status=meta.status,
        expires=meta.expires,
        embargo=meta.embargo,
        tags=tuple(meta.tags),
        language=meta.language,
        prefix=prefix,
        author=meta.author,
        hero=meta.hero,
        contacts=tuple(meta.contacts),
        issuers=tuple(organisations.by_id[name] for name in meta.issuers),
        about_html=about_html,
        canonical_url=meta.canonical_url,
        corrections=tuple(meta.corrections),
        withdrawn=meta.withdrawn,
        downloads=tuple(downloads.values()),
        email=meta.email,
        social=dict(meta.social),
        body_markdown=body,
        body_html=body_html,
        url=url,
        source=path,
        assets=tuple(dict.fromkeys(assets)),
        # The co-issuers' files shape the page too (logos, About texts, EU funding).
        digest=hashlib.blake2b(
            raw + settings.fingerprint.encode() + (organisations.fingerprint.encode() if meta.issuers else b""), digest_size=16
        ).hexdigest(),
    )


def _parse_yaml(front: str, path: Path) -> tuple[yaml.Node, dict]:
    """The front matter's YAML node (for line numbers) and its data, which must be a mapping."""
    loader = _StringLoader(front)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        # The context mark points at where an unclosed quote or bracket began, which is what needs fixing.
        mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        tab = _tab_indented_line(front, before=mark.line if mark else len(front))
        if tab is not None:
            raise ReleaseError(
                "a tab in the indentation",
                path=path,
                line=2 + tab,
                field="front-matter",
                hint="YAML indents with spaces only: replace the tab at the start of the line with spaces",
            ) from None
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
    return node, data


def _tab_indented_line(front: str, *, before: int) -> int | None:
    """0-based number of the first line up to ``before`` whose indentation holds a tab."""
    if "\t" not in front:
        return None
    for number, line in enumerate(front.splitlines()[: before + 1]):
        if "\t" in line[: len(line) - len(line.lstrip(" \t"))]:
            return number
    return None


def _line(lines: dict[tuple, int], loc: tuple) -> int:
    """1-based file line of a front-matter field (the front matter starts on line 2); 1 if not written."""
    line = lines.get(loc)
    return 2 + line if line is not None else 1


#: The fields of each nested section, for "unknown field" hints.
_SECTIONS: dict[str, type[BaseModel]] = {"email": ChannelOptions, "social": ChannelOptions, "contacts": Contact}


def _release_error(
    error: Any, path: Path, lines: dict[tuple, int], *,
    sections: dict[str, type[BaseModel]] | None = None, fields: Iterable[str] | None = None, hints: dict[str, str] | None = None,
) -> ReleaseError:
    """The first pydantic error as a ReleaseError: the field, its line, a message and what to do.

    ``sections``, ``fields`` and ``hints`` describe another YAML schema than the front matter (organisations.py)."""
    loc = tuple(error["loc"])
    kind, ctx = error["type"], error.get("ctx") or {}
    name = ctx.get("field") or ".".join(str(part) for part in loc)
    at = tuple(int(part) if part.isdigit() else part for part in ctx["at"].split(".")) if ctx.get("at") else loc
    hint = (_FIELD_HINTS if hints is None else hints).get(str(loc[0]), "see the front-matter fields in the README")
    message = error["msg"].removeprefix("Value error, ")
    if kind == "release":
        hint = ctx["hint"]
    elif kind == "missing":  # at the section it is missing from (line 1 for a top-level field)
        return ReleaseError("is required", path=path, line=_line(lines, loc[:-1]), field=name, hint=hint)
    elif kind == "literal_error":
        message = f"{error['input']!r} is not one of: {ctx['expected'].replace(' or ', ', ')}"
    elif kind == "extra_forbidden":
        message = "unknown field"
        if len(loc) == 1:
            hint = "remove it or check its spelling; known fields: " + ", ".join(fields or FrontMatter.model_fields)
        else:
            section = ".".join(str(part) for part in loc[:-1])
            known = ", ".join((sections or _SECTIONS)[str(loc[0])].model_fields)
            hint = f"remove it or check its spelling; the fields of {section} are: {known}"
    return ReleaseError(message, path=path, line=_line(lines, at), field=name, hint=hint)


_FIRST_PARAGRAPH = re.compile(r"<p>(.*?)</p>", re.S)
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".svg", ".avif"}
_PAGE_SUFFIXES = {".html", ".htm"}


def _body_line(body: str, reference: str, *, first: int) -> int:
    """The file line of the first body line that mentions ``reference`` (``first`` is the body's first line)."""
    for number, line in enumerate(body.splitlines()):
        if reference in line:
            return first + number
    return first

_FIELD_HINTS = {
    "title": "add a line such as 'title: Cluster HUB celebrates friendship day'",
    "date": "add the publication time, e.g. 'date: 2024-07-30 09:00' (read in the site time zone)",
    "status": "write 'status: draft' while editing, 'status: approved' when it may go out, 'status: withdrawn' to take it down",
    "tags": "write tags as a list, e.g. 'tags: [recycling, lithium]'",
    "hero": "write hero: {src: photo.jpg, alt: what the photo shows}",
    "contacts": "write each contact as {name: ..., email: ..., phone: ...}",
    "issuers": "write the ids of the co-issuers as a list, e.g. 'issuers: [cluster-hub, project-a]'",
    "social": "use mastodon, bluesky or linkedin, each with text: and/or enabled:",
    "email": "write email: {subject: ..., enabled: false}",
    "corrections": 'write corrections: [{date: 2026-12-03 10:00, note: "The rate is 91%, not 95%."}]',
    "withdrawn": 'write withdrawn: {date: 2026-12-05 09:00, reason: "Published in error."}',
    "downloads": 'write downloads: [{file: statement.pdf, title: "Statement (PDF)"}]',
}


def _first_sentence(text: str, limit: int = 280) -> str:
    sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rsplit(" ", 1)[0] + "…"


def translation_language(path: Path) -> str | None:
    """``de`` for a bundle's ``index.de.md``; None for any other file."""
    match = _TRANSLATION_FILE.fullmatch(path.name)
    return match.group(1) if match else None


def _release_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    files = [p for p in root.glob("*.md")] + [p for p in root.glob("*/index.md")] + [p for p in root.glob("*/index.*.md")]
    return sorted(files)


def _field_line(path: Path, name: str) -> int:
    """The front-matter line of a top-level field (1 when it is not written)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 1
    match = re.search(rf"^{re.escape(name)}\s*:", text, re.M)
    return text.count("\n", 0, match.start()) + 1 if match else 1


def _disagreement(main: Release, version: Release) -> str | None:
    """The first shared field on which a translation differs from the release, or None."""
    for name in _SHARED_FIELDS:
        if getattr(main, name) != getattr(version, name):
            return name
    return "email" if main.email.approval != version.email.approval else None


def _attach_translations(result: LoadResult, translations: list[Release], settings: Settings) -> None:
    """Give each release its language versions; report a version that disagrees, has no
    release, or doubles a language, and (``require_translations``) a release missing one."""
    mains = {release.source.parent: index for index, release in enumerate(result.releases) if release.source.name == "index.md"}
    grouped: dict[int, dict[str, Release]] = {}
    for version in translations:
        index = mains.get(version.source.parent)
        if index is None:
            result.problems.append(ReleaseError(
                "a translation without its release", path=version.source, line=1, field="file",
                hint="put the release in the site language beside it as index.md",
            ))
            continue
        main = result.releases[index]
        name = _disagreement(main, version)
        if version.language == main.language:
            result.problems.append(ReleaseError(
                f"the release itself is in {main.language!r} already", path=version.source, line=1, field="language",
                hint=f"give index.md 'language: {settings.site.language}', or rename this file to the language it is in",
            ))
        elif name is not None:
            shown = getattr(version, name) if name != "email" else version.email.approval
            expected = getattr(main, name) if name != "email" else main.email.approval
            result.problems.append(ReleaseError(
                f"{shown!r} disagrees with {main.source.name} ({expected!r}): all versions of a release share it",
                path=version.source, line=_field_line(version.source, name), field=name,
                hint=f"write the same {name} as in {main.source.name}, or leave it out where it has a default",
            ))
        else:
            grouped.setdefault(index, {})[version.language] = version
    required = settings.site.all_languages if settings.site.require_translations else ()
    kept: list[Release] = []
    for index, release in enumerate(result.releases):
        versions = grouped.get(index, {})
        missing = [code for code in required if code != release.language and code not in versions]
        if missing:
            names = ", ".join(f"index.{code}.md" for code in missing)
            result.problems.append(ReleaseError(
                f"no version in {', '.join(missing)} ([site] require_translations)", path=release.source, line=1,
                field="translations", hint=f"add {names} beside it, or set require_translations = false",
            ))
            continue
        kept.append(release.model_copy(update={"translations": dict(sorted(versions.items()))}) if versions else release)
    result.releases = kept


def load_releases(settings: Settings, *, path: Path | None = None) -> LoadResult:
    """Load every release under ``path`` (default: content/releases); never raises for bad content."""
    result = LoadResult()
    result.problems += _organisations.load_organisations(settings=settings).problems.values()
    seen: dict[str, Path] = {}
    # One release (a check of one file, a journalist's preview): parsing it beats reading the cache of all.
    cache = _ReleaseCache(settings, read=path is None)
    files = _release_files(Path(path) if path else settings.releases_dir)
    cached = {file: cache.get(file) for file in files}
    versions: list[Release] = []
    parsed = _parse_files([file for file, release in cached.items() if release is None], settings)
    for file in files:
        try:
            loaded = cached[file]
            if loaded is None:
                outcome = parsed[file]
                if isinstance(outcome, Exception):
                    raise outcome
                loaded = cache.put(file, *outcome)
            release, warnings = loaded
        except ReleaseError as exc:
            result.problems.append(exc)
            continue
        except OSError as exc:
            result.problems.append(ReleaseError(f"cannot read the file: {exc.strerror}", path=file, field="file"))
            continue
        if release.slug in seen and translation_language(file) is None:
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
        if translation_language(file) is not None:
            versions.append(release)
            result.warnings += warnings
            continue
        seen[release.slug] = file
        result.releases.append(release)
        result.warnings += warnings
    _attach_translations(result, versions, settings)
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


def _parse_files(files: list[Path], settings: Settings) -> dict[Path, _Parsed | Exception]:
    """Each file's Release and warnings, or the ReleaseError or OSError that reading it raised."""
    if len(files) >= _PARALLEL_FROM and _WORKERS > 1:
        context = multiprocessing.get_context("fork" if threading.active_count() == 1 else "spawn")
        size = max(16, len(files) // (_WORKERS * 8))
        chunks = [files[start : start + size] for start in range(0, len(files), size)]
        try:
            with ProcessPoolExecutor(max_workers=_WORKERS, mp_context=context) as pool:
                parsed: dict[Path, _Parsed | Exception] = {}
                for chunk, data in zip(chunks, pool.map(_parse_chunk, chunks, itertools.repeat(settings)), strict=True):
                    with _collector_paused():  # unpickling makes only live objects
                        outcomes = pickle.loads(data)
                    parsed.update(zip(chunk, map(_restore, outcomes), strict=True))
                return parsed
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


_Parsed = tuple[Release, list[ReleaseWarning]]


def _parse_one(file: Path, settings: Settings) -> _Parsed | Exception:
    warnings: list[ReleaseWarning] = []
    try:
        return load_release(file, settings, warnings=warnings), warnings
    except (ReleaseError, OSError) as exc:
        return exc


def _fields(problem: ReleaseError) -> tuple:
    """A problem or warning as plain fields, to pickle: its keyword-only constructor does not unpickle."""
    return (isinstance(problem, ReleaseWarning), problem.message, problem.path, problem.line, problem.field, problem.hint)


def _from_fields(fields: tuple) -> ReleaseError:
    warning, message, path, line, field_name, hint = fields
    return (ReleaseWarning if warning else ReleaseError)(message, path=path, line=line, field=field_name, hint=hint)


def _parse_portable(file: Path, settings: Settings) -> tuple | OSError:
    """``_parse_one`` in a worker, with problems and warnings as their fields."""
    outcome = _parse_one(file, settings)
    if isinstance(outcome, ReleaseError):
        return _fields(outcome)
    if isinstance(outcome, OSError):
        return outcome
    release, warnings = outcome
    return release, [_fields(warning) for warning in warnings]


def _parse_chunk(files: list[Path], settings: Settings) -> bytes:
    """Parse ``files`` in a worker. The outcomes go back as one pickle, unpickled by the caller's
    own thread: unpickled by the pool's result thread, the releases would sit in that thread's
    malloc arena, which the rest of the build cannot reuse (70 MB more peak RSS at 10,000)."""
    return pickle.dumps([_parse_portable(file, settings) for file in files], protocol=pickle.HIGHEST_PROTOCOL)


def _restore(outcome: tuple | OSError) -> _Parsed | Exception:
    if isinstance(outcome, OSError):
        return outcome
    if not isinstance(outcome[0], Release):
        return _from_fields(outcome)
    release, warnings = outcome
    return release, [_from_fields(warning) for warning in warnings]  # type: ignore[misc]


_CACHE_CHUNK = 64  # entries of the release cache pickled together


class _ReleaseCache:
    """Valid releases of the last run, reused while their file, images, settings and this code are unchanged.

    Parsing is most of a build (YAML, Markdown, sanitising: ~1 ms a release), so a rebuild after
    one new release parses one file. The pickle lives in var/cache/, which only Pressroom writes.
    """

    def __init__(self, settings: Settings, *, read: bool = True) -> None:
        self.file = settings.path("var") / "cache" / "releases.pickle"
        code = hashlib.blake2b(Path(__file__).read_bytes(), digest_size=8).hexdigest()
        # A release keeps its co-issuers inside it: an edited organisation file invalidates the cache.
        self.salt = f"{settings.fingerprint}:{code}:{_organisations.load_organisations(settings=settings).fingerprint}"
        self.old: dict[str, tuple] = {}
        self.new: dict[str, tuple] = {}
        self.whole = False  # the file was read to its end: appending to it is safe
        if not read:
            return
        try:
            with open(self.file, "rb") as stream, _collector_paused():
                # The salt comes first: after a settings or code change not one entry is read.
                if pickle.load(stream) != self.salt:
                    return
                while stream.peek(1):
                    self.old.update(pickle.load(stream))  # a later entry (appended) wins
            self.whole = True
        except Exception:  # noqa: S110 - missing, torn or from another version: what was read is kept, the rest parsed
            pass

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int]:
        stat = path.stat()
        return stat.st_size, stat.st_mtime_ns

    def get(self, file: Path) -> tuple[Release, list[ReleaseWarning]] | None:
        entry = self.old.get(str(file))
        try:
            if not entry or entry[0] != self._stamp(file):
                return None
            if [self._stamp(asset) for asset in entry[2].assets] != entry[1]:
                return None
        except OSError:
            return None  # the file or an image went away: parse again, which reports it
        self.new[str(file)] = entry
        return entry[2], [_from_fields(warning) for warning in entry[3]]  # type: ignore[misc]

    def put(self, file: Path, release: Release, warnings: list[ReleaseWarning]) -> tuple[Release, list[ReleaseWarning]]:
        stamps = [self._stamp(asset) for asset in release.assets]
        # Warnings as fields: a pickled ReleaseWarning would not load, and the whole cache with it.
        self.new[str(file)] = (self._stamp(file), stamps, release, [_fields(w) for w in warnings])
        return release, warnings

    def save(self) -> None:
        kept = self.whole and self.old.keys() <= self.new.keys() and all(self.new[k] is self.old[k] for k in self.old)
        added = [(key, entry) for key, entry in self.new.items() if key not in self.old]
        if kept and not added:
            return
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            if kept:
                # Only new releases: appended, not 50 MB rewritten at 10,000. A torn append loses
                # only what follows the tear (the reader keeps the entries before it), and the
                # next save rewrites the file whole.
                with open(self.file, "ab") as stream:
                    self._dump(stream, added)
                return
            temporary = self.file.with_name(f".{self.file.name}.{os.getpid()}")
            with open(temporary, "wb") as stream:
                pickle.dump(self.salt, stream, protocol=pickle.HIGHEST_PROTOCOL)
                self._dump(stream, self.new.items())
            temporary.replace(self.file)
        except OSError:
            pass  # the cache only saves time

    @staticmethod
    def _dump(stream: BinaryIO, items: Iterable[tuple[str, tuple]]) -> None:
        # A few dozen entries a pickle, the memo cleared between them: one pickle of 10,000 releases
        # would hold tens of MB of bytes, or of memo, beside the releases; one pickle an entry took
        # twice as long to read (a load call each, and no string shared between entries).
        pickler = pickle.Pickler(stream, protocol=pickle.HIGHEST_PROTOCOL)
        items = list(items)
        for start in range(0, len(items), _CACHE_CHUNK):
            pickler.dump(items[start : start + _CACHE_CHUNK])
            pickler.clear_memo()


def public_releases(releases: list[Release], now: datetime) -> list[Release]:
    """The releases that may appear anywhere public at ``now``, newest first."""
    return [release for release in releases if release.is_public(now)]


# Last: organisations.py builds on the models above, and completes Release.issuers when it loads.
from pressroom import organisations as _organisations  # noqa: E402
