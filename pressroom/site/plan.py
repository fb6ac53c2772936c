"""The build as a list of jobs: the pages and press kits of a few releases at a time, each other page, sized
image or folder of feeds, with a key of everything that goes into it, and the files copied as they are (images,
logos, the stylesheet).

Only releases that are public at ``now`` (approved, due, not expired) are looked at; everything
else is dropped before any job exists, so a draft or an embargoed release cannot leak anywhere.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from pressroom import i18n, images
from pressroom.feeds import FEED_FILES, render_feeds
from pressroom.organisations import Organisation
from pressroom.releases.model import PRESS_KIT, Release, is_image
from pressroom.settings import Settings
from pressroom.site.listing import Tag, collect_tags, paginate, tag_slugs
from pressroom.site.render import STATIC, Renderer
from pressroom.site.sitemap import Tree, sitemap
from pressroom.site.sync import Job

__all__ = ["Plan", "plan"]

# Releases whose pages are one job: about this many, a segment ending at a release whose slug says so (one in
# _SEGMENT) or at _SEGMENT_MOST releases. As the releases decide, not their places: a release added or removed
# anywhere changes the segments beside it, not every segment after it.
_SEGMENT = 8
_SEGMENT_MOST = 4 * _SEGMENT


@dataclass
class Plan:
    """Release pages (a stage of their own: all written before any page links to them), every other
    job, the files copied as they are (site path -> file), and the public releases, newest first."""

    release_jobs: list[Job] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    copies: dict[str, Path] = field(default_factory=dict)
    public: list[Release] = field(default_factory=list)
    twins: set[str] = field(default_factory=set)  # PNG twins of SVG logos planned already (each once per build)
    issuers: set[int] = field(default_factory=set)  # co-issuers whose logos are planned already (by id)
    variants: dict[str, bool] = field(default_factory=dict)  # image, its stamp and a width -> whether it gets a copy

    @property
    def pages(self) -> int:
        return sum(1 for job in (*self.release_jobs, *self.jobs) for path in job.paths if path.endswith(".html"))


def plan(settings: Settings, releases: Sequence[Release], now: datetime, *, variants: dict[str, bool] | None = None) -> Plan:
    """Every job of the build of ``releases`` at ``now``; ``variants``: the last build's :attr:`Plan.variants`."""
    planned = Plan(public=sorted((r for r in releases if r.is_public(now)), key=lambda r: (r.date, r.slug), reverse=True))
    # The site language at the root, every other language (configured, or of a translation) under /<lang>/.
    languages = tuple(dict.fromkeys((*settings.site.all_languages, *(code for r in planned.public for code in r.translations))))
    notices = [r for r in releases if r.shows_notice(now)]
    # A withdrawn release's feed item turns into its notice for a while, so readers learn of it, then goes.
    recent = timedelta(days=settings.site.withdrawn_days)
    in_feeds = [r for r in notices if r.withdrawn is not None and now - r.withdrawn.date < recent]
    trees: list[Tree] = []
    identities = _Identities()
    for language in languages:
        trees.append(_LanguageJobs(settings, planned, language, languages, identities, variants or {}).add(
            notices=_versions(notices, language, settings), in_feeds=_versions(in_feeds, language, settings),
        ))
    planned.jobs += _crawler_jobs(settings, trees, identities)
    for static in sorted((settings.path("templates") / "site" / STATIC).glob("*")):
        if static.is_file():
            planned.copies[f"{STATIC}/{static.name}"] = static
    return planned


def _crawler_jobs(settings: Settings, trees: list[Tree], identities: _Identities) -> list[Job]:
    """sitemap.xml and robots.txt, keyed like every page: a rebuild that changes nothing (most scheduled runs)
    writes no 10,000-row sitemap."""
    listed = (f"{tag.path}={tag.name}" for _, tags in trees for tag in tags)
    robots = f"User-agent: *\nAllow: /\n\nSitemap: {settings.site.base_url}/sitemap.xml\n"
    return [
        Job(paths=("sitemap.xml",), render=partial(sitemap, settings, trees), key=_key(
            "sitemap", settings.fingerprint, *(identities.of(r) for shown, _ in trees for r in shown), *listed,
        )),
        Job(paths=("robots.txt",), key=_key("robots", robots), render=robots.encode),
    ]


def _versions(releases: list[Release], language: str, settings: Settings) -> list[Release]:
    """The withdrawn releases' versions in ``language`` (those that have one): their URLs keep a notice too."""
    found = (release if language == settings.site.language else release.translations.get(language) for release in releases)
    return [release for release in found if release is not None]


class _LanguageJobs:
    """The jobs of one language's pages and feeds (under ``<lang>/`` unless it is the site's)."""

    def __init__(
        self, settings: Settings, planned: Plan, language: str, languages: tuple[str, ...], identities: _Identities,
        known: dict[str, bool],
    ) -> None:
        self.settings, self.planned, self.language, self.known = settings, planned, language, known
        self.identity = identities.of
        site_language = language == settings.site.language
        pairs = [(r, r) for r in planned.public] if site_language else [
            (r.translations[language], r) for r in planned.public if language in r.translations
        ]
        self.shown = [version for version, _ in pairs]
        self.mains = {version.slug: main for version, main in pairs}
        self.prefix = "" if site_language else f"{language}/"
        self.tags = collect_tags(self.shown, self.prefix)
        self.renderer = Renderer(settings, self.tags, language=language, prefix=self.prefix, languages=languages)
        # Every page shows the subscribe form with all topics, so the topic list is part of every key.
        # Joined once, as _key would join it into each of the 12,000 keys of a site of 10,000 releases.
        self.common = ("\x1f".join((self.renderer.fingerprint, language, ",".join(languages),
                                     *(f"{t.slug}={t.name}" for t in self.tags))),)

    def add(self, *, notices: Sequence[Release], in_feeds: Sequence[Release]) -> Tree:
        """Add this language's jobs to the plan; returns its releases and topics, for the sitemap.
        ``notices``: the withdrawn releases whose page is a notice, ``in_feeds`` those whose notice is
        still in the feeds."""
        end = len(self.shown)
        for start in range(end - 1, -1, -1):  # from the oldest
            if not start or end - start == _SEGMENT_MOST or _ends_segment(self.shown[start].slug):
                self._segment(start, end)
                end = start
        for release in notices:
            self.planned.release_jobs.append(Job(
                paths=(f"{release.path}index.html",), key=_key(*self.common, "withdrawn", self.identity(release)),
                render=partial(self.renderer.withdrawn_page, release),
            ))
        self._listings(self.shown, self.prefix, None)
        self._feeds(self.shown, self.prefix, None, None, in_feeds)
        about = i18n.translations(language=self.language, settings=self.settings).gettext(
            "Press releases of %(site)s about %(topic)s"
        )
        for tag in self.tags:
            self._listings(list(tag.releases), tag.path, tag)
            title = f"{self.settings.site.name}: {tag.name}"
            self._feeds(tag.releases, tag.path, title, about % {"site": self.settings.site.name, "topic": tag.name}, in_feeds)
        self.planned.jobs.append(Job(paths=(f"{self.prefix}tags/index.html",), key=None, render=self.renderer.tag_index))
        if not self.prefix:
            self.planned.jobs.append(Job(paths=("404.html",), key=None, render=self.renderer.not_found))
        return self.shown, self.tags

    def _segment(self, start: int, end: int) -> None:
        """The pages and press kits of ``shown[start:end]`` as one job, their images' sized copies, and the files
        copied beside them. One key for a segment, not one per release: most of an archive is unchanged, and a
        segment whose key changed renders again only its few pages, written only where their bytes differ."""
        shown = self.shown
        parts = [*self.common, "releases", self.identity(shown[start - 1] if start else None),
                 self.identity(shown[end] if end < len(shown) else None)]
        paths: list[str] = []
        for release in shown[start:end]:
            named = _named_assets(release)
            stamps = [_file_stamp(file) for _, file in named]
            parts += (self.identity(release), *stamps,
                      *(version.language for version in self.mains[release.slug].versions), "\x1e")
            paths += (f"{release.path}index.html", f"{release.path}{PRESS_KIT}")
            if named:
                self._assets(release, named, stamps)
            for issuer in release.issuers:
                self._issuer(issuer)
        self.planned.release_jobs.append(Job(paths=tuple(paths), key=_key(*parts), render=partial(self._pages, start, end)))

    def _pages(self, start: int, end: int) -> dict[str, bytes]:
        """The pages and press kits of ``shown[start:end]``, each linking to the release before and after it."""
        shown = self.shown
        rendered: dict[str, bytes] = {}
        for index in range(start, end):
            release = shown[index]
            rendered.update(self.renderer.release_page(
                release, main=self.mains[release.slug], newer=shown[index - 1] if index > 0 else None,
                older=shown[index + 1] if index + 1 < len(shown) else None,
            ))
        return rendered

    def _assets(self, release: Release, named: list[tuple[str, Path]], stamps: list[str]) -> None:
        """The files a release references (``stamps``: theirs), copied beside its page, and its images' sized copies.

        Every file keeps its path relative to the release file: that is what its URL was made from (the
        releases' reader refuses files outside the release's folder)."""
        folder = release.path
        for (name, file), stamp in zip(named, stamps, strict=True):
            self.planned.copies[f"{folder}{name}"] = file
            if not is_image(file):
                continue
            for width in (images.PAGE_WIDTH, images.EMAIL_WIDTH):
                # The page's and the email's copies; the original stays for the press kit and the download link.
                if self._sized(file, stamp, width):
                    self.planned.release_jobs.append(Job(
                        paths=(f"{folder}{images.sized_name(name, width)}",),
                        key=_key("sized image", str(file), stamp, str(width)),
                        render=partial(images.resize, source=file, width=width),
                    ))

    def _sized(self, file: Path, stamp: str, width: int) -> bool:
        """Whether ``file`` (as ``stamp`` says it is) needs a copy ``width`` wide: as the last build found, while the
        file is unchanged, rather than from its header again (a thousand files read at 10,000 releases)."""
        memo = f"{file}\x1f{stamp}\x1f{width}"
        sized = self.known.get(memo)
        if sized is None:
            sized = images.variant(file, width) is not None
        self.planned.variants[memo] = sized
        return sized

    def _issuer(self, issuer: Organisation) -> None:
        """A co-issuer's logos, copied once per build however many releases it co-signs."""
        if id(issuer) in self.planned.issuers:
            return
        self.planned.issuers.add(id(issuer))
        self.planned.copies.update(issuer.logo_files)
        twin = images.email_logo_name(issuer.logo_path) if issuer.logo_path else None
        if issuer.logo and twin and twin != issuer.logo_path and twin not in self.planned.twins:
            # Emails show an SVG logo through its PNG twin: Gmail and Outlook do not show SVG.
            self.planned.twins.add(twin)
            self.planned.release_jobs.append(Job(
                paths=(twin,),
                key=_key("logo twin", str(issuer.logo), _file_stamp(issuer.logo)),
                render=partial(images.png_twin, source=issuer.logo),
            ))

    def _listings(self, items: list[Release], base: str, tag: Tag | None) -> None:
        for page in paginate(items, self.settings.site.page_size, base):
            self.planned.jobs.append(Job(
                paths=(f"{page.path}index.html",),
                # A numbered page's key holds only what it shows, so it is never rendered again.
                key=_key(
                    *self.common, "listing", page.path, page.newer or "-", page.older or "-",
                    str(page.total), str(page.count), *map(self.identity, page.releases),
                ),
                render=partial(self.renderer.listing, page, tag=tag, feed_folder=base),
            ))

    def _feeds(self, items: Sequence[Release], folder: str, title: str | None, description: str | None,
               in_feeds: Sequence[Release]) -> None:
        tag = folder.removeprefix("tags/").rstrip("/")
        withdrawn = [r for r in in_feeds if not folder or tag in tag_slugs(r)]
        if withdrawn:
            items = sorted([*items, *withdrawn], key=lambda r: (r.date, r.slug), reverse=True)
        newest = items[: self.settings.site.feed_items]
        self.planned.jobs.append(Job(
            paths=tuple(f"{folder}{name}" for name in FEED_FILES.values()),
            key=_key(*self.common, "feeds", folder, title or "", description or "", *map(self.identity, newest),
                     *map(_hero_stamp, newest)),
            render=partial(
                render_feeds, settings=self.settings, releases=newest, folder=folder, title=title, description=description,
                language=self.language,
            ),
        ))


class _Identities:
    """What a page needs to know changed about a release: the file (digest), where it is, what it is called.
    Each release is in half a dozen keys (its page, its neighbours', lists, feeds): made once per build, by
    the release's id (the releases outlive the plan, so no id is reused while it is made)."""

    def __init__(self) -> None:
        self.made: dict[int, str] = {}

    def of(self, release: Release | None) -> str:
        if release is None:
            return "-"
        identity = self.made.get(id(release))
        if identity is None:
            identity = self.made[id(release)] = f"{release.slug}:{release.digest}:{release.source}"
        return identity


def _ends_segment(slug: str) -> bool:
    """Whether the segment of release pages that reaches this release (from the older ones) ends with it."""
    return zlib.crc32(slug.encode()) % _SEGMENT == 0


def _key(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


def _hero_stamp(release: Release) -> str:
    """Size and mtime of the hero file: pages and feeds show its dimensions and length, which the
    release's digest (the Markdown file) does not cover."""
    return _file_stamp(release.hero.file if release.hero is not None else None)


def _file_stamp(file: Path | None) -> str:
    """Size and mtime of a file the release shows or packs (``-`` when missing)."""
    try:
        stat = os.stat(file) if file is not None else None
    except OSError:
        stat = None
    return f"{stat.st_size}:{stat.st_mtime_ns}" if stat else "-"


def _named_assets(release: Release) -> list[tuple[str, Path]]:
    """(name beside the page, local file) of each file the release references; most releases have none."""
    return [(release.local_name(asset), asset) for asset in release.assets] if release.assets else []
