"""What a comms officer may write between the ``---`` lines: one field, one validator, one hint.

:class:`FrontMatter` is the one table of the fields a release file accepts; :func:`validate`
turns a file's YAML into it, or into a :class:`~pressroom.errors.ReleaseError` at the field's line.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from pressroom import frontmatter
from pressroom.frontmatter import problem
from pressroom.organisations import Organisations
from pressroom.records import Contact
from pressroom.releases.files import file_slug, translation_language
from pressroom.releases.languages import Base, owned_by_version
from pressroom.releases.model import ChannelOptions, Correction, Download, Embargo, HeroImage, Withdrawal
from pressroom.settings import Settings
from pressroom.text import LANGUAGE_RE, SLUG_RE, slugify

__all__ = ["Context", "FrontMatter", "download", "local_file", "resolve_local_time", "validate"]


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


class Context:
    """What the validators need beyond the front matter: the file, the settings, and where warnings go."""

    __slots__ = ("path", "settings", "warnings", "organisations")

    def __init__(self, path: Path, settings: Settings, organisations: Organisations | None = None) -> None:
        self.path = path
        self.settings = settings
        self.organisations = organisations
        self.warnings: list[tuple[str, str, str]] = []  # (message, field, hint)


def _context(info: ValidationInfo) -> Context:
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
            raise problem(
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
            raise problem(f"unknown time zone {name!r}", "use an IANA name such as Europe/Brussels or UTC") from None
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
            raise problem(f"{value!r} is not one of: 'draft', 'approved', 'withdrawn'", f"write it in lowercase: 'status: {value.lower()}'")
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
            raise problem("is not after the publication date", hint)
        return expires

    @field_validator("embargo", mode="plain")
    @classmethod
    def _embargo(cls, value: Any, info: ValidationInfo) -> Embargo | None:
        date = info.data.get("date")
        if value is None or date is None:
            return None
        if not isinstance(value, dict):
            raise problem("is not a {notify, topics} mapping", _EMBARGO_SHAPE)
        unknown = [key for key in value if key not in ("notify", "topics")]
        if unknown:
            raise problem("unknown field", "the fields of embargo are: notify, topics",
                          field=f"embargo.{unknown[0]}", at=f"embargo.{unknown[0]}")
        notify = _notify(value.get("notify"), date, ZoneInfo(info.data["timezone"]))
        return Embargo(notify=notify, topics=_topics(value.get("topics")))

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
            raise problem(f"{language!r} is not a language tag", "use a tag such as en, de or pt-BR")
        if named and language != named:
            raise problem(
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
                broken = found.problems[name]
                raise problem(
                    f"issuer {name!r} cannot be used: {broken.location()}: {broken.field}: {broken.message}",
                    f"fix content/organisations/{name}.yaml first (pressroom check lists its problem)",
                    field="issuers", at=f"issuers.{index}",
                )
            if name not in known:
                names = ", ".join(sorted(known)) or "none yet"
                raise problem(
                    f"unknown issuer {name!r}",
                    f"add content/organisations/{name}.yaml or check the spelling; known: {names}",
                    field="issuers", at=f"issuers.{index}",
                )
            if known[name].logo is None:
                _context(info).warnings.append((
                    f"issuer {name!r} has no logo: pages and emails show its name as text",
                    "issuers", f"add 'logo: <file>.png' (or .svg) to content/organisations/{name}.yaml",
                ))
        return list(dict.fromkeys(value))

    @field_validator("hero", mode="plain")
    @classmethod
    def _hero(cls, value: Any, info: ValidationInfo) -> HeroImage | None:
        if value is None:
            return None
        shape = 'write hero: {src: photo.jpg, alt: "what the photo shows"}'
        if isinstance(value, str):
            raise problem(
                "a hero is an image and its alt text, not only a file name",
                f'write hero: {{src: {value.strip()}, alt: "…"}} with alt saying what the picture shows',
            )
        if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
            raise problem("is not a {src, alt} pair", shape)
        unknown = [key for key in value if key not in ("src", "alt")]
        if unknown:
            raise problem("unknown field", "the fields of hero are: src, alt", field=f"hero.{unknown[0]}", at=f"hero.{unknown[0]}")
        src, alt = value.get("src", "").strip(), " ".join(value.get("alt", "").split())
        if not src:
            raise problem("hero needs src", shape, field="hero.src")
        if not alt:
            raise problem(
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
        file, message, hint = local_file(src, context.path)
        if message:
            raise problem(message, hint, field="hero.src", at="hero.src")
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
                    raise problem("is before the publication date", "date a correction when it was made", field=f"corrections.{index}.date", at=f"corrections.{index}.date")
        return sorted((Correction(date=moment, note=note) for moment, note in corrections), key=lambda c: c.date)

    @field_validator("withdrawn", mode="plain")
    @classmethod
    def _withdrawn(cls, value: Any, info: ValidationInfo) -> Withdrawal | None:
        shape = 'write withdrawn: {date: 2026-12-05 09:00, reason: "Published in error."}'
        status = info.data.get("status")
        if value is None:
            if status == "withdrawn":
                raise problem("a withdrawn release needs withdrawn: {date, reason}", shape, field="withdrawn", at="status")
            return None
        if status != "withdrawn":
            raise problem("withdrawn: is set but the status is not withdrawn", "write 'status: withdrawn' too, or remove withdrawn:", field="withdrawn", at="withdrawn")
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
                raise problem("is not a {file, title} pair", shape, field=at, at=at)
            unknown = [key for key in item if key not in ("file", "title")]
            if unknown:
                raise problem("unknown field", "the fields of a download are: file, title", field=f"{at}.{unknown[0]}", at=f"{at}.{unknown[0]}")
            name = item.get("file", "").strip()
            if not name or urlsplit(name).scheme:
                raise problem("needs the name of a file in the release's folder", shape, field=f"{at}.file", at=at)
            downloads.append(download(name, " ".join(item.get("title", "").split()), _context(info).path, at=f"{at}.file"))
        return downloads


_EMBARGO_SHAPE = "write embargo: {notify: 48h} (before 'date') or embargo: {notify: 2026-12-01T09:00:00+01:00}"


def _notify(raw: Any, date: datetime, zone: ZoneInfo) -> datetime:
    """``embargo.notify``: a duration before ``date`` (48h, 2d, 90m) or an instant, never after ``date``."""
    if raw is None:
        raise problem("embargo needs notify", _EMBARGO_SHAPE, field="embargo.notify")
    text = raw.strip() if isinstance(raw, str) else ""
    duration = _DURATION.fullmatch(text.replace(" ", ""))
    if duration:
        notify = date - timedelta(**{_UNITS[duration.group(2)]: int(duration.group(1))})
    else:
        try:
            notify = _instant(raw, zone, _EMBARGO_SHAPE)
        except PydanticCustomError as exc:
            raise problem(f"{raw!r} is neither a duration (48h, 2d, 90m) nor a date and time", _EMBARGO_SHAPE,
                          field="embargo.notify", at="embargo.notify") from exc
    if notify > date:
        raise problem(
            f"the journalists would hear of it at {notify.isoformat()}, after its date {date.isoformat()}",
            "set embargo.notify before 'date' (e.g. notify: 48h), or remove the embargo",
            field="embargo.notify", at="embargo.notify",
        )
    return notify


def _topics(value: Any) -> tuple[str, ...]:
    """``embargo.topics``: the beats, as tag slugs (a comma-separated string is a list too)."""
    topics = value or []
    if isinstance(topics, str):
        topics = topics.split(",")
    if not isinstance(topics, list) or not all(isinstance(topic, str) for topic in topics):
        raise problem("is not a list of beats", "write topics: [energy, research]", field="embargo.topics", at="embargo.topics")
    return tuple(dict.fromkeys(slugify(t) for t in topics if slugify(t)))


def _list_of(value: Any, what: str, shape: str) -> list:
    """A front-matter list (none written: empty), else a problem saying what it should hold."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise problem(f"is not a list of {what}", shape)
    return value


def _dated(value: Any, names: tuple[str, str], at: str, shape: str, zone: str | None) -> tuple[datetime, str]:
    """A ``{date, <text>}`` mapping of the front matter as (aware instant, one-line text)."""
    if not isinstance(value, dict) or not all(isinstance(part, str) for part in value.values()):
        raise problem(f"is not a {{{', '.join(names)}}} pair", shape, field=at, at=at)
    unknown = [key for key in value if key not in names]
    if unknown:
        raise problem("unknown field", f"the fields are: {', '.join(names)}", field=f"{at}.{unknown[0]}", at=f"{at}.{unknown[0]}")
    text = " ".join(value.get(names[1], "").split())
    if "date" not in value or not text:
        raise problem(f"needs both {names[0]} and {names[1]}", shape, field=at, at=at)
    if zone is None:
        raise problem("the time zone is wrong", "fix 'timezone:' first", field=at, at=at)
    return _instant(value["date"], ZoneInfo(zone), shape), text


def download(reference: str, title: str, path: Path, *, at: str = "") -> Download:
    """The download a reference of release ``path`` names; a missing file is an error pointing at ``at``."""
    file, message, hint = local_file(reference, path, kind="download")
    if message:
        raise problem(message, hint, field=at, at=at)
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
        raise problem(
            f"{value!r} is not a date and time; write it as 2024-07-30 09:00 or 2024-07-30T09:00:00+02:00", hint
        ) from None
    if parsed.tzinfo is not None:
        return parsed
    try:
        return resolve_local_time(parsed, zone)
    except ValueError as exc:
        raise problem(str(exc), hint) from None


def local_file(reference: str, path: Path, *, kind: str = "image") -> tuple[Path, str, str]:
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


#: The fields of each nested section, for "unknown field" hints.
_SECTIONS: dict[str, type[BaseModel]] = {"email": ChannelOptions, "social": ChannelOptions, "contacts": Contact}


def validate(data: dict, context: Context, lines: frontmatter.Lines, *, base: Base | None = None) -> FrontMatter:
    """The front matter of ``context.path`` as :class:`FrontMatter`; the first problem as a ReleaseError at its line.

    A language version's ``data`` is merged over its index.md's (``base``): a problem in what it did not
    write itself is index.md's, and named there."""
    try:
        return FrontMatter.model_validate(frontmatter.clean_strings(data), context=context)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        path = context.path
        if base is not None and not owned_by_version(error, lines):
            path, lines = base.path, base.lines
        raise frontmatter.field_error(
            error, path, lines, sections=_SECTIONS, fields=FrontMatter.model_fields, hints=_FIELD_HINTS,
        ) from None
