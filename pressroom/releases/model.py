"""The frozen model of a release: what every page, feed, email and post reads, and nothing else.

A :class:`Release` is made by :mod:`pressroom.releases.reading` from one file; its language
versions hang from it (``translations``), its co-issuers are inside it (``issuers``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path, PurePath, PurePosixPath
from typing import Literal

from pydantic import Field

from pressroom.errors import ReleaseError, ReleaseWarning
from pressroom.i18n import format_size
from pressroom.organisations import Organisation
from pressroom.records import Contact, Frozen, Shared
from pressroom.settings import Settings
from pressroom.text import slugify

__all__ = [
    "ChannelOptions", "Contact", "Correction", "Download", "Embargo", "HeroImage", "IMAGE_SUFFIXES", "LoadResult",
    "PRESS_KIT", "Release", "Withdrawal", "is_image", "public_releases",
]

#: The archive of a release's text, images and downloads, beside its page (built by pressroom.presskit).
PRESS_KIT = "press-kit.zip"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".svg", ".avif"})


def is_image(file: PurePath) -> bool:
    """A picture pages and emails show (and the build makes sized copies of), by its extension."""
    return file.suffix.lower() in IMAGE_SUFFIXES


class HeroImage(Frozen):
    """The picture at the top of a release, and what it shows for those who cannot see it."""

    src: str = Field(description="absolute URL of the image on the public site")
    alt: str
    file: Path | None = Field(None, description="the local file, copied next to the release page")


class Correction(Frozen):
    """A dated note shown below the title of a published release that was changed."""

    date: datetime
    note: str


class Withdrawal(Frozen):
    """Why and when a published release was withdrawn: its URL keeps only this notice."""

    date: datetime
    reason: str


class Download(Frozen):
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


class ChannelOptions(Shared):
    """Per-channel overrides in front matter: ``email: {subject: ..., enabled: false}``."""

    enabled: bool = True
    subject: str | None = None
    text: str | None = None
    approval: bool | None = Field(None, description="email only: ask an editor first; default [email] approval_required")
    corrections: bool | None = Field(None, description="email only: send each new correction note; default [email] send_corrections")
    withdrawal_notice: bool = Field(False, description="email only: tell those who received it that it was withdrawn")


class Embargo(Frozen):
    """When the media list hears of a release before it is public, and which beats."""

    notify: datetime = Field(description="the journalists' instant, timezone-aware, never after the release's date")
    topics: tuple[str, ...] = Field((), description="beats (tag slugs) it goes to; default: the release's tags")


class Release(Frozen):
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
    # version, a whole Release of its own words (title, summary, body, URL) and index.md's shared facts.
    translations: dict[str, Release] = Field(default_factory=dict)
    prefix: str = Field("", description="'de/' for a translation: its pages live under /de/")
    base: Path | None = Field(None, description="a language version's index.md, whose shared fields it takes")
    written: tuple[str, ...] = Field((), description="a language version's own front-matter fields (hero.alt, email.subject…)")
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
        if not self.corrections:  # most releases: asked of each for every sitemap
            return self.date
        return max(self.date, *(correction.date for correction in self.corrections))

    def local_name(self, file: Path) -> str:
        """Where one of the release's files lives beside its page (its path from the release file), as its URL says."""
        # ``assets`` are resolved already. As text, ten times faster than Path.relative_to; and a resolved file
        # below the release file's folder as written shows that folder holds no symbolic link, so only the
        # others need resolving (a few system calls each, for every build of 10,000 releases).
        text = str(file)
        folder = f"{str(self.source).rpartition('/')[0]}/"
        if not text.startswith(folder):
            folder = f"{_real_folder(self.source)}/"
            if not text.startswith(folder):
                return file.relative_to(_real_folder(self.source)).as_posix()
        return text[len(folder):]

    @property
    def images(self) -> tuple[tuple[str, Path], ...]:
        """(name beside the page, local file) of each image of the release: its hero and those of its body."""
        return tuple((self.local_name(a), a) for a in self.assets if is_image(a))

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


def public_releases(releases: list[Release], now: datetime) -> list[Release]:
    """The releases that may appear anywhere public at ``now``, newest first."""
    return [release for release in releases if release.is_public(now)]


@lru_cache(maxsize=4096)
def _real_folder(source: Path) -> Path:
    """The folder of a release file, symbolic links resolved, once per process: every build asks it for each of a
    release's files, at a few system calls each time. (A long-lived process does not see a release folder's
    symbolic link pointed elsewhere; its files' names beside the page would not change with it anyway.)"""
    return source.parent.resolve()
