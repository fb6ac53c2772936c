"""Co-issuers: ``content/organisations/<id>.yaml``, one file per organisation or project.

A release names them in ``issuers: [cluster-hub, project-a]``; the loaded :class:`Organisation`
objects travel inside the frozen :class:`~pressroom.releases.Release`, so pages, emails and posts
read logos, About texts, media contacts, social handles and EU funding from one place
(what a release shows of them: :mod:`pressroom.releases.blocks`).

Every problem in a file is a :class:`~pressroom.errors.OrganisationError` naming the file, the
line and the field, with a hint, exactly like a release's; a release naming a broken or unknown
organisation is refused (an EU-funded project must never appear without its acknowledgement).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError, field_validator

from pressroom import frontmatter
from pressroom.errors import OrganisationError
from pressroom.frontmatter import problem
from pressroom.records import Contact, Frozen
from pressroom.settings import Settings
from pressroom.text import SLUG_RE, clean_text

__all__ = ["EuFunding", "Handles", "Organisation", "Organisations", "load_organisations"]

_ID = SLUG_RE
_LOGO_SUFFIXES = {".svg", ".png"}
_MASTODON = re.compile(r"@[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}")
# An AT Protocol handle is a domain name: letters, digits and hyphens per label, a TLD that starts with a letter.
_BLUESKY = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z][A-Za-z0-9-]{0,61}[A-Za-z0-9]")
_LINKEDIN = re.compile(r"(?:urn:li:organization:)?(\d{1,20})")


class EuFunding(Frozen):
    """What an EU-funded project must show: the programme, the grant number, maybe its own wording
    (one text, or one per language: ``statement: {en: Co-funded by the European Union, de: ...}``)."""

    programme: str
    grant: str
    statement: dict[str, str] | str | None = None

    def statement_in(self, language: str, fallback: str) -> str | None:
        """The project's own statement in ``language``, else its words in ``fallback`` (the site language)
        or any language, for the catalogue to translate; None: the standard wording."""
        if not isinstance(self.statement, dict):
            return self.statement
        for key in (language, language.split("-")[0], fallback, "en"):
            if self.statement.get(key):
                return self.statement[key]
        return next(iter(self.statement.values()), None)

    @field_validator("grant", mode="before")
    @classmethod
    def _grant(cls, value: Any) -> Any:
        text = str(value).strip() if isinstance(value, (str, int)) else value
        if not text:
            raise problem(
                "an EU-funded project needs its grant number",
                "write the number of the grant agreement, e.g. grant: \"101069644\"",
            )
        return text


class Handles(Frozen):
    """An organisation's accounts: Mastodon ``@user@instance``, a Bluesky handle, a LinkedIn organisation URN."""

    mastodon: str | None = None
    bluesky: str | None = None
    linkedin: str | None = None

    @field_validator("mastodon")
    @classmethod
    def _mastodon(cls, value: str | None) -> str | None:
        if value is not None and not _MASTODON.fullmatch(value.strip()):
            raise problem(f"{value!r} is not a Mastodon handle", "write it whole: @user@instance, e.g. @clusterhub@mastodon.social")
        return value.strip() if value else None

    @field_validator("bluesky")
    @classmethod
    def _bluesky(cls, value: str | None) -> str | None:
        handle = value.strip().removeprefix("@").lower() if value else None
        if handle is not None and not _BLUESKY.fullmatch(handle):
            raise problem(f"{value!r} is not a Bluesky handle", "write the handle as a domain, e.g. clusterhub.bsky.social")
        return handle

    @field_validator("linkedin", mode="before")
    @classmethod
    def _linkedin(cls, value: Any) -> Any:
        if value is None:
            return None
        match = _LINKEDIN.fullmatch(str(value).strip())
        if not match:
            raise problem(
                f"{value!r} is not a LinkedIn organisation",
                "write its URN or number, e.g. urn:li:organization:2414183 (the number in the page's admin URL)",
            )
        return f"urn:li:organization:{match.group(1)}"


class Organisation(Frozen):
    """One co-issuer, as its YAML file says; ``id`` is the file name without ``.yaml``."""

    id: str
    name: str
    short_name: str = ""
    logo: Path | None = None  # without one, pages and emails show the name as text, and check says so
    logo_dark: Path | None = None  # for dark backgrounds; without it, dark mode puts the logo on a light plate
    logo_alt: str = ""
    website: str
    about: dict[str, str] | str = ""
    contact: Contact | None = None
    social: Handles = Handles()
    eu_funding: EuFunding | None = None
    source: Path

    @field_validator("name", "short_name", "logo_alt")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return " ".join(value.split())

    @field_validator("website")
    @classmethod
    def _website(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s<>\"']+", value.strip()):
            raise problem(f"{value!r} is not a web address", "write the whole address, e.g. https://www.example.eu")
        return value.strip()

    @field_validator("logo", "logo_dark", mode="before")
    @classmethod
    def _logo(cls, value: Any, info: Any) -> Any:
        source: Path = info.context
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise problem("is not a file name", "write the logo's file name, e.g. logo: cluster-hub.png, and put it beside the YAML file")
        folder = source.parent.resolve()
        target = (folder / PurePosixPath(value.strip())).resolve()
        if not target.is_relative_to(folder):
            raise problem(f"{value!r} points outside {source.parent}", "keep the logo beside the organisation's YAML file")
        if target.suffix.lower() not in _LOGO_SUFFIXES:
            raise problem(f"{value!r} is not an SVG or PNG file", "save the logo as .svg or .png")
        if not target.is_file():
            raise problem(f"logo file {value!r} not found next to {source.name}", f"add the file to {source.parent} or fix the name")
        return target

    @property
    def label(self) -> str:
        """The name a reader sees beside a logo or in a post: the short name when there is one."""
        return self.short_name or self.name

    @property
    def alt(self) -> str:
        return self.logo_alt or self.name

    @property
    def logo_path(self) -> str | None:
        """Site path of the logo, e.g. ``organisations/cluster-hub.png`` (copied there by the build); None without one."""
        return self._site_path(self.logo)

    @property
    def logo_dark_path(self) -> str | None:
        """Site path of the logo for dark backgrounds, when the organisation has one."""
        return self._site_path(self.logo_dark)

    @property
    def logo_files(self) -> dict[str, Path]:
        """Site path -> file of every logo the build copies."""
        return {path: file for path, file in ((self.logo_path, self.logo), (self.logo_dark_path, self.logo_dark)) if path and file}

    def _site_path(self, file: Path | None) -> str | None:
        return None if file is None else f"organisations/{file.relative_to(self.source.parent.resolve()).as_posix()}"

    def about_for(self, language: str, fallback: str) -> str:
        """The About Markdown in ``language``, else in ``fallback`` (the site language), else any given."""
        if isinstance(self.about, str):
            return self.about
        for key in (language, language.split("-")[0], fallback):
            if self.about.get(key):
                return self.about[key]
        return next(iter(self.about.values()), "")


@dataclass
class Organisations:
    """Every valid organisation by id, the problems of the others, and a digest of all their files."""

    by_id: dict[str, Organisation] = field(default_factory=dict)
    problems: dict[str, OrganisationError] = field(default_factory=dict)
    fingerprint: str = ""


def _stamps(folder: Path) -> tuple[tuple[str, int, int], ...]:
    try:
        files = sorted(path for path in folder.iterdir() if path.is_file())
    except OSError:
        return ()
    return tuple((path.name, path.stat().st_size, path.stat().st_mtime_ns) for path in files)


_cache: dict[Path, tuple[tuple, Organisations]] = {}


def load_organisations(*, settings: Settings) -> Organisations:
    """Every ``content/organisations/*.yaml``, read once per run: again only when a file there changes."""
    folder = settings.path("content") / "organisations"
    stamps = _stamps(folder)
    cached = _cache.get(folder)
    if cached is not None and cached[0] == stamps:
        return cached[1]
    result = Organisations(fingerprint=hashlib.blake2b(repr(stamps).encode(), digest_size=8).hexdigest())
    for path in sorted(folder.glob("*.yaml")):
        try:
            organisation = _load_one(path)
        except OrganisationError as exc:
            result.problems[path.stem] = exc
            continue
        except OSError as exc:
            result.problems[path.stem] = OrganisationError(f"cannot read the file: {exc.strerror}", path=path, field="file")
            continue
        result.by_id[organisation.id] = organisation
    _cache[folder] = (stamps, result)
    return result


def _load_one(path: Path) -> Organisation:
    if not _ID.fullmatch(path.stem):
        raise OrganisationError(
            f"{path.name!r} is not a valid organisation id", path=path, line=1, field="file",
            hint="name the file in lowercase letters, digits and hyphens, e.g. cluster-hub.yaml (releases name it so)",
        )
    text = clean_text(frontmatter.decode(path.read_bytes(), path, error=OrganisationError))
    node, data = frontmatter.parse_yaml(text, path, first_line=1, field="yaml", error=OrganisationError)
    try:
        return Organisation.model_validate({**frontmatter.clean_strings(data), "id": path.stem, "source": path}, context=path)
    except ValidationError as exc:
        raise frontmatter.field_error(
            exc.errors(include_url=False)[0], path, frontmatter.line_map(node, first_line=1),
            sections=_SECTIONS, fields=_FIELDS, hints=_HINTS, kind=OrganisationError,
        ) from None


_HINTS = {
    "name": "add a line such as 'name: Cluster HUB'",
    "logo": "add 'logo: <file>.png' (or .svg) and put the file beside the YAML file",
    "logo_dark": "add 'logo_dark: <file>.png' (or .svg), the logo for dark backgrounds, beside the YAML file",
    "website": "add 'website: https://…'",
    "about": "write about: as Markdown text, or per language: {en: ..., de: ...}",
    "contact": "write contact: {name: ..., role: ..., email: ...}",
    "social": "write social: {mastodon: '@user@instance', bluesky: handle.bsky.social, linkedin: 'urn:li:organization:123'}",
    "eu_funding": "write eu_funding: {programme: Horizon Europe, grant: \"101069644\"} (statement: one text, or {en: ..., de: ...})",
}
_SECTIONS: dict[str, type] = {"social": Handles, "eu_funding": EuFunding, "contact": Contact}
_FIELDS = [name for name in Organisation.model_fields if name not in ("id", "source")]

