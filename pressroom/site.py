"""public/ from the releases and the clock: pages, feeds, sitemap, robots.txt; writes only what changed.

The build is a list of jobs (a page, or a folder's three feeds), each with a key of everything that
goes into it. A job whose key and files are as the last build left them (var/cache/) is not even
rendered; any other job is rendered and compared with the file on disk: a file whose bytes are
unchanged is not touched (its mtime, hence a static host's ETag and Last-Modified, stay valid), a
new or changed file is replaced atomically. Files the build no longer produces are removed:
public/ is fully generated.

Only releases that are public at ``now`` (approved, due, not expired) are looked at; everything
else is dropped before any rendering, so a draft or an embargoed release cannot leak anywhere.

Links between pages are relative (``../../tags/x/``) so the site works under any base path, on a
preview server and from disk; canonical, Open Graph and feed URLs are absolute.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import shutil
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache, partial
from gettext import NullTranslations
from pathlib import Path
from urllib.parse import urljoin, urlsplit
from xml.sax.saxutils import escape as xml_escape

import jinja2
from markupsafe import Markup, escape

from pressroom import feeds as feeds_module
from pressroom import i18n
from pressroom import images
from pressroom import releases as releases_module
from pressroom.errors import ConfigError, TemplateError
from pressroom.feeds import FEED_FILES, render_feeds
from pressroom.organisations import about_blocks, eu_acknowledgement, media_contacts
from pressroom.presskit import press_kit
from pressroom.releases import PRESS_KIT, Release, slugify
from pressroom.settings import Settings

__all__ = ["BuildReport", "build_site"]


_HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{3,8}$")
_STATIC = "static"
_MANIFEST = "site-manifest.json"
# Stands for "../../" in cached card HTML; releases.py strips NUL from every text, so it cannot clash.
_ROOT = "\x00"


@dataclass(frozen=True)
class BuildReport:
    """What one build did to public/."""

    written: list[Path] = field(default_factory=list)
    unchanged: int = 0
    removed: list[Path] = field(default_factory=list)
    pages: int = 0
    releases: tuple[str, ...] = ()  # slugs of the releases that are public in this build, newest first


@dataclass(frozen=True)
class _Tag:
    name: str
    slug: str
    releases: tuple[Release, ...]
    prefix: str = ""  # "de/": a topic of the German pages

    @property
    def path(self) -> str:
        return f"{self.prefix}tags/{self.slug}/"


def build_site(*, settings: Settings, releases: Sequence[Release], now: datetime) -> BuildReport:
    """Render public/ for every release that is public at ``now``; write only files whose bytes changed.

    ``releases`` may hold drafts, embargoed and expired releases: they are filtered out here and
    leave no trace in any page, feed, sitemap or index.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    with _frozen_heap():
        return _build(settings, releases, now)


@contextmanager
def _frozen_heap() -> Iterator[None]:
    """Keep the cycle collector off the releases: a build makes many short-lived objects next to a
    large, long-lived heap of releases, and each full collection would walk that heap again (a
    third of a rebuild). Frozen, that heap is skipped, while the cycles each page render leaves
    (Jinja contexts) are still collected: with the collector off they held 60 MB at 10,000 releases."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _build(settings: Settings, releases: Sequence[Release], now: datetime) -> BuildReport:
    public_dir = _public_dir(settings)
    public = sorted((r for r in releases if r.is_public(now)), key=lambda r: (r.date, r.slug), reverse=True)
    # The site language at the root, every other language (configured, or of a translation) under /<lang>/.
    languages = tuple(dict.fromkeys((*settings.site.all_languages, *(code for r in public for code in r.translations))))
    notices = [r for r in releases if r.shows_notice(now)]
    # A withdrawn release's feed item turns into its notice for a while, so readers learn of it, then goes.
    recent = timedelta(days=settings.site.withdrawn_days)
    in_feeds = [r for r in notices if r.withdrawn is not None and now - r.withdrawn.date < recent]
    cache = _BuildCache(settings.path("var") / "cache" / _MANIFEST)

    trees: list[tuple[list[Release], list[_Tag]]] = []
    release_jobs: list[_Job] = []
    jobs: list[_Job] = []
    copies: dict[str, Path] = {}
    for language in languages:
        withdrawn = [_withdrawn_version(r, language, settings) for r in notices]
        feeds = [_withdrawn_version(r, language, settings) for r in in_feeds]
        trees.append(_language_jobs(settings, public, language, languages, release_jobs, jobs, copies,
                                    [r for r in withdrawn if r], [r for r in feeds if r]))
    small = {
        "sitemap.xml": partial(_sitemap, settings, trees),
        "robots.txt": lambda: f"User-agent: *\nAllow: /\n\nSitemap: {settings.site.base_url}/sitemap.xml\n".encode(),
    }
    jobs += [_Job(paths=(path,), key=None, render=render) for path, render in small.items()]
    pages = sum(1 for job in (*release_jobs, *jobs) if job.paths[0].endswith(".html"))
    for static in sorted((settings.path("templates") / "site" / _STATIC).glob("*")):
        if static.is_file():
            copies[f"{_STATIC}/{static.name}"] = static

    # Release pages are a stage of their own: they are all written before any page links to them.
    report = _sync(public_dir, (release_jobs, jobs), copies, cache=cache)
    cache.save()
    return BuildReport(
        written=report.written,
        unchanged=report.unchanged,
        removed=report.removed,
        pages=pages,
        releases=tuple(release.slug for release in public),
    )


def _withdrawn_version(release: Release, language: str, settings: Settings) -> Release | None:
    """A withdrawn release's version in ``language`` (None when it has none): its URL keeps a notice too."""
    return release if language == settings.site.language else release.translations.get(language)


def _language_jobs(
    settings: Settings,
    public: list[Release],
    language: str,
    languages: tuple[str, ...],
    release_jobs: list[_Job],
    jobs: list[_Job],
    copies: dict[str, Path],
    notices: Sequence[Release],
    in_feeds: Sequence[Release],
) -> tuple[list[Release], list[_Tag]]:
    """The jobs of one language's pages and feeds (under ``<lang>/`` unless it is the site's); returns
    its releases and topics, for the sitemap. ``notices``: the withdrawn releases whose page is a
    notice, ``in_feeds`` those whose notice is still in the feeds."""
    site_language = language == settings.site.language
    pairs = [(r, r) for r in public] if site_language else [(r.translations[language], r) for r in public if language in r.translations]
    shown = [version for version, _ in pairs]
    mains = {version.slug: main for version, main in pairs}
    prefix = "" if site_language else f"{language}/"
    tags = _collect_tags(shown, prefix)
    renderer = _Renderer(settings, tags, language=language, prefix=prefix, languages=languages)
    # Every page shows the subscribe form with all topics, so the topic list is part of every key.
    common = (renderer.fingerprint, language, ",".join(languages), *(f"{tag.slug}={tag.name}" for tag in tags))

    for index, release in enumerate(shown):
        newer = shown[index - 1] if index > 0 else None
        older = shown[index + 1] if index + 1 < len(shown) else None
        main = mains[release.slug]
        release_jobs.append(
            _Job(
                paths=(f"{release.path}index.html", f"{release.path}{PRESS_KIT}"),
                key=_key(
                    *common, "release", _identity(release), *map(_file_stamp, release.assets),
                    _identity(newer), _identity(older), *(version.language for version in main.versions),
                ),
                render=partial(renderer.release_page, release, main=main, newer=newer, older=older),
            )
        )
        copies.update(_assets(release))
        copies.update({issuer.logo_path: issuer.logo for issuer in release.issuers})
        for name, image in release.images:
            for width in (images.PAGE_WIDTH, images.EMAIL_WIDTH):
                # The page's and the email's copies; the original stays for the press kit and the download link.
                if images.variant(image, width):
                    release_jobs.append(_Job(
                        paths=(f"{release.path}{images.sized_name(name, width)}",),
                        key=_key("sized image", str(image), _file_stamp(image), str(width)),
                        render=partial(images.resize, source=image, width=width),
                    ))
    for release in notices:
        release_jobs.append(
            _Job(
                paths=(f"{release.path}index.html",),
                key=_key(*common, "withdrawn", _identity(release)),
                render=partial(renderer.withdrawn_page, release),
            )
        )

    def listings(items: list[Release], base: str, tag: _Tag | None) -> None:
        for page in _paginate(items, settings.site.page_size, base):
            identities = map(_identity, page.releases)
            jobs.append(
                _Job(
                    paths=(f"{page.path}index.html",),
                    # A numbered page's key holds only what it shows, so it is never rendered again.
                    key=_key(
                        *common, "listing", page.path, page.newer or "-", page.older or "-",
                        str(page.total), str(page.count), *identities,
                    ),
                    render=partial(renderer.listing, page, tag=tag, feed_folder=base),
                )
            )

    def feeds(items: Sequence[Release], folder: str, title: str | None, description: str | None) -> None:
        tag = folder.removeprefix("tags/").rstrip("/")
        withdrawn = [r for r in in_feeds if not folder or tag in _tag_slugs(r)]
        if withdrawn:
            items = sorted([*items, *withdrawn], key=lambda r: (r.date, r.slug), reverse=True)
        newest = items[: settings.site.feed_items]
        heroes = map(_hero_stamp, newest)
        identities = map(_identity, newest)
        jobs.append(
            _Job(
                paths=tuple(f"{folder}{name}" for name in FEED_FILES.values()),
                key=_key(*common, "feeds", folder, title or "", description or "", *identities, *heroes),
                render=partial(
                    render_feeds, settings=settings, releases=newest, folder=folder, title=title, description=description,
                    language=language,
                ),
            )
        )

    listings(shown, prefix, None)
    feeds(shown, prefix, None, None)
    about = i18n.translations(language=language, settings=settings).gettext("Press releases of %(site)s about %(topic)s")
    for tag in tags:
        listings(list(tag.releases), tag.path, tag)
        feeds(
            tag.releases,
            tag.path,
            f"{settings.site.name}: {tag.name}",
            about % {"site": settings.site.name, "topic": tag.name},
        )
    jobs.append(_Job(paths=(f"{prefix}tags/index.html",), key=None, render=renderer.tag_index))
    if site_language:
        jobs.append(_Job(paths=("404.html",), key=None, render=renderer.not_found))
    return shown, tags


@dataclass(frozen=True)
class _Job:
    """Files rendered together, with a key of everything that goes into them (None: always render)."""

    paths: tuple[str, ...]
    key: str | None
    render: Callable[[], bytes | dict[str, bytes]]

    def outputs(self) -> dict[str, bytes]:
        rendered = self.render()
        return rendered if isinstance(rendered, dict) else {self.paths[0]: rendered}


def _identity(release: Release | None) -> str:
    """What a page needs to know changed about a release: the file (digest), where it is, what it is called."""
    if release is None:
        return "-"
    return f"{release.slug}:{release.digest}:{release.source}"


@lru_cache(maxsize=4096)
def _tag_slug(tag: str) -> str:
    return slugify(tag)


def _tag_slugs(release: Release) -> tuple[str, ...]:
    """``release.tag_slugs``, with each distinct tag slugified once per process."""
    return tuple(_tag_slug(tag) for tag in release.tags)


def _key(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


def _hero_stamp(release: Release) -> str:
    """Size and mtime of the hero file: pages and feeds show its dimensions and length, which the
    release's digest (the Markdown file) does not cover."""
    return _file_stamp(release.hero.file if release.hero is not None else None)


def _file_stamp(file: Path | None) -> str:
    """Size and mtime of a file the release shows or packs (``-`` when missing)."""
    try:
        stat = file.stat() if file is not None else None
    except OSError:
        stat = None
    return f"{stat.st_size}:{stat.st_mtime_ns}" if stat else "-"


# --------------------------------------------------------------------------- model helpers


def _public_dir(settings: Settings) -> Path:
    """public/, refusing a folder whose other contents the build would delete."""
    public = settings.path("public")
    for name in ("content", "templates", "var"):
        other = settings.path(name)  # type: ignore[arg-type]
        if public == other or public in other.parents:
            raise ConfigError(
                f"paths.public ({public}) contains paths.{name} ({other}); the build deletes everything "
                "in public/ that it did not generate",
                hint="point paths.public at a folder of its own, e.g. public",
            )
    if public == settings.root.resolve():
        raise ConfigError(f"paths.public is the project folder ({public})", hint="use a folder of its own, e.g. public")
    return public


def _collect_tags(releases: list[Release], prefix: str) -> list[_Tag]:
    """Tags by slug, named as the newest release spells them, sorted by name."""
    names: dict[str, str] = {}
    members: dict[str, list[Release]] = {}
    for release in releases:
        for name, slug in zip(release.tags, _tag_slugs(release), strict=True):
            if not slug:
                continue  # a tag of punctuation only has no URL
            names.setdefault(slug, name)
            if not members.setdefault(slug, []) or members[slug][-1] is not release:
                members[slug].append(release)
    return sorted(
        (_Tag(name=names[slug], slug=slug, releases=tuple(group), prefix=prefix) for slug, group in members.items()),
        key=lambda tag: (tag.name.casefold(), tag.slug),
    )


@dataclass(frozen=True)
class _Listing:
    """One page of a list of releases. ``number`` is None for the front page, whose URL is the list's own."""

    path: str
    releases: list[Release]
    number: int | None
    newer: str | None  # site-relative path of the page of newer releases
    older: str | None
    # What only the front page says about the whole list: it changes with every release, so a
    # numbered page must not show it.
    total: int | None = None  # pages
    count: int | None = None  # releases


def _paginate(items: list[Release], size: int, base: str) -> list[_Listing]:
    """Pages numbered from the oldest release, so a full page's URL and contents never change.

    ``items`` is newest first. ``{base}page/1/`` holds the ``size`` oldest releases, ``page/2/``
    the next ``size``, and so on; the front page (``base``) holds the rest: the newest full
    page's worth plus the releases that do not fill a page yet (``size`` to ``2 * size - 1`` of
    them, or all when there are fewer), so a reader's first page is never nearly empty. A new
    release changes the front page only; every ``size`` releases a numbered page appears, and
    the page before it (then the newest numbered one) has its "newer" link turned from the
    front page to it.
    """
    count = len(items)
    numbered = max(0, count // size - 1)
    front_size = count - numbered * size

    def path(number: int) -> str:
        return f"{base}page/{number}/"

    pages = [
        _Listing(
            path=base,
            releases=items[:front_size],
            number=None,
            newer=None,
            older=path(numbered) if numbered else None,
            total=numbered + 1,
            count=count,
        )
    ]
    for number in range(numbered, 0, -1):
        end = count - (number - 1) * size
        pages.append(
            _Listing(
                path=path(number),
                releases=items[end - size : end],
                number=number,
                newer=path(number + 1) if number < numbered else base,
                older=path(number - 1) if number > 1 else None,
            )
        )
    return pages


def _assets(release: Release) -> dict[str, Path]:
    """Site path -> local file for the images a release references, kept beside its page.

    Every image keeps its path relative to the release file: that is what its URL was made from
    (releases.py refuses images outside the release's folder).
    """
    if not release.assets:
        return {}  # most releases: spares a resolve(), a few system calls each
    return {f"{release.path}{release.local_name(asset)}": asset for asset in release.assets}


def _image_size(path: Path | None) -> tuple[int, int] | None:
    """Width and height of a PNG, GIF or JPEG from its header, for og:image:width/height.

    Networks that know the size can draw the card on the very first share. Anything else: None.
    """
    if path is None:
        return None
    try:
        with open(path, "rb") as stream:
            head = stream.read(65536)
    except OSError:
        return None
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    if head.startswith(b"\xff\xd8"):
        index = 2
        while index + 9 < len(head) and head[index] == 0xFF:
            marker, length = head[index + 1], int.from_bytes(head[index + 2 : index + 4], "big")
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                return int.from_bytes(head[index + 7 : index + 9], "big"), int.from_bytes(head[index + 5 : index + 7], "big")
            index += 2 + length
    return None


_DEFAULT_CARD = "card.png"  # shipped in templates/site/static/, 1200x630: what a link preview shows


def _default_image(settings: Settings) -> dict[str, object] | None:
    """The og:image of a page without a hero: the site's logo, else the default card (None if a
    site's own templates/site/static/ has none)."""
    site = settings.site
    if site.logo:
        return {"src": urljoin(f"{site.base_url}/", site.logo), "size": None}
    card = settings.path("templates") / "site" / _STATIC / _DEFAULT_CARD
    if not card.is_file():
        return None
    return {"src": f"{site.base_url}/{_STATIC}/{_DEFAULT_CARD}", "size": _image_size(card)}


# --------------------------------------------------------------------------- rendering


@lru_cache(maxsize=16)
def _environment(folder: Path, fingerprint: str, catalogue: NullTranslations, compiled: Path) -> jinja2.Environment:
    # fingerprint is part of the cache key so an edited template is picked up by a long-lived process;
    # that is also why Jinja need not stat every template file again on each page (auto_reload).
    del fingerprint
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        bytecode_cache=_CompiledTemplates(compiled),
        auto_reload=False,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["breakable"] = _breakable
    return i18n.install(environment, translations=catalogue)


class _CompiledTemplates(jinja2.FileSystemBytecodeCache):
    """Compiled templates in var/cache/, checked against each template's source and Jinja's version:
    compiling them was a third of a rebuild after one new release at 1,000 releases. Like every cache
    there, it only saves time: one that cannot be written (var/cache/ deleted mid-run) is skipped."""

    def __init__(self, folder: Path) -> None:
        super().__init__(str(folder))

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            os.makedirs(self.directory, exist_ok=True)
            super().dump_bytecode(bucket)
        except OSError:
            pass


def _breakable(text: str) -> Markup:
    """An address or URL that may wrap after ``@`` and ``/`` (a ``<wbr>`` there, not in ``//``), never inside a word."""
    return Markup(re.sub(r"(@|(?<!/)/(?![/]|$))", r"\1<wbr>", str(escape(text))))  # noqa: S704


_TABLE = re.compile(r"<table>(.*?)</table>", re.S)


def _scrolling_tables(fragment: str, table: str = "Table") -> str:
    """Each table in a box that scrolls sideways on a narrow screen, reachable and named for the keyboard."""

    def wrap(match: re.Match[str]) -> str:
        head = re.search(r"<tr>(.*?)</tr>", match.group(1), re.S)
        headers = re.findall(r"<th[^>]*>(.*?)</th>", head.group(1) if head else "", re.S)
        cells = [" ".join(re.sub(r"<[^>]+>", " ", cell).split()).replace('"', "&quot;") for cell in headers]
        label = f"{table}: " + ", ".join(filter(None, cells)) if any(cells) else table
        return f'<div class="table-scroll" tabindex="0" role="region" aria-label="{label}">{match.group(0)}</div>'

    return _TABLE.sub(wrap, fragment)


def _template_location(exc: jinja2.TemplateError, name: str) -> str:
    """``templates/site/<file>:<line>`` of a template error: where a syntax error is, or the innermost
    template line that was running (Jinja puts template lines into the traceback)."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"templates/site/{exc.name or name}:{exc.lineno}"
    location = f"templates/site/{name}"
    traceback = exc.__traceback__
    while traceback is not None:
        filename = traceback.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            location = f"templates/site/{Path(filename).name}:{traceback.tb_lineno}"
        traceback = traceback.tb_next
    return location


def _templates_fingerprint(folder: Path) -> str:
    """Digest of the templates and of the code that turns files into pages: a change to any re-renders all."""
    digest = hashlib.blake2b(digest_size=16)
    code = [Path(module.__file__) for module in (sys.modules[__name__], feeds_module, releases_module, i18n)]
    for path in [*sorted(folder.glob("*.j2")), *code]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class _Renderer:
    """Renders the pages of one language with the site's Jinja templates; one instance per language and build.

    ``prefix`` is where that language's pages live ("" for the site language, "de/" for German);
    ``languages`` are all the site's languages, for the language switcher.
    """

    def __init__(self, settings: Settings, tags: list[_Tag], *, language: str, prefix: str, languages: Sequence[str]) -> None:
        self.settings = settings
        self.site = settings.site
        self.language, self.prefix, self.languages = language, prefix, tuple(languages)
        folder = settings.path("templates") / "site"
        if not (folder / "base.html.j2").is_file():
            raise TemplateError(f"{folder / 'base.html.j2'}: the site templates are missing")
        templates = _templates_fingerprint(folder)
        catalogue = i18n.translations(language=language, settings=settings)
        self.env = _environment(folder, templates, catalogue, settings.path("var") / "cache" / "templates")
        self.table = catalogue.gettext("Table")  # a scrolling table's label
        self.fingerprint = f"{templates}:{settings.fingerprint}:{i18n.fingerprint(settings=settings)}"
        # Card HTML by slug, with _ROOT standing for the page's way back to the site root: the same
        # card is on the index and on each of its topics' pages. Not kept between builds: a new
        # release re-renders front pages only, a few dozen cards.
        self.cards: dict[str, str] = {}
        self.tags = tags
        self.tag_names = {tag.slug: tag.name for tag in tags}
        brand = self.site.brand_color if _HEX_COLOUR.match(self.site.brand_color) else "#0b5d7a"
        # Rendered once: the form is the same on every page (its action is absolute).
        subscribe = self._render(
            "_subscribe.html.j2",
            topics=[(t.slug, t.name) for t in tags],
            # recorded as consent evidence by pressroom.web, in the language of the page
            consent_text=i18n.consent(language=language, settings=settings),
            languages=[(code, i18n.language_name(code)) for code in self.languages],
            lang=language,
        )
        self.common = {
            "site": self.site,
            "brand": brand,
            "feeds": FEED_FILES,
            "subscribe": Markup(subscribe),
            "description": self.site.description_in(language)
            or catalogue.gettext("Press releases of %(site)s") % {"site": self.site.name},
            "intro": self.site.description_in(language),
            "default_image": _default_image(settings),
            "home": prefix,
        }

    def _others(self, paths: dict[str, str], root: str) -> dict[str, object]:
        """hreflang alternates (reciprocal: every version lists all, x-default the site language's)
        and the language switcher, from ``{language: site-relative path}`` of one page's versions."""
        if len(self.languages) < 2:
            return {"alternates": (), "switcher": ()}
        base = self.site.base_url
        alternates = [(code, f"{base}/{path}") for code, path in paths.items()]
        if len(alternates) > 1:
            default = paths.get(self.site.language, next(iter(paths.values())))
            alternates.append(("x-default", f"{base}/{default}"))
        else:
            alternates = []
        homes = {code: "" if code == self.site.language else f"{code}/" for code in self.languages}
        switcher = [(code, i18n.language_name(code), root + paths.get(code, homes[code])) for code in self.languages]
        return {"alternates": alternates, "switcher": switcher}

    def _homes(self, path: str) -> dict[str, str]:
        """The same list page (front page, topics page) in every language."""
        return {code: ("" if code == self.site.language else f"{code}/") + path for code in self.languages}

    def _render(self, name: str, **context: object) -> str:
        try:
            return self.env.get_template(name).render(**context)
        except jinja2.TemplateError as exc:
            raise TemplateError(f"{_template_location(exc, name)}: {exc}") from exc

    def _page(self, name: str, path: str, *, root: str | None = None, **context: object) -> bytes:
        root = "../" * path.count("/") if root is None else root
        # A page in one language only (a notice, the 404) has no alternates and no switcher.
        text = self._render(
            name, **self.common, root=root, url=f"{self.site.base_url}/{path}", **({"alternates": (), "switcher": ()} | context)
        )
        return text.encode("utf-8")

    def _relative_html(self, fragment: str, root: str) -> Markup:
        """Sanitised release HTML with the site's own absolute URLs made relative (works on any host)."""
        base = self.site.base_url
        fragment = fragment.replace(f'href="{base}/', f'href="{root}').replace(f'src="{base}/', f'src="{root}')
        return Markup(_scrolling_tables(fragment, self.table))  # noqa: S704 - body_html was sanitised by nh3 in releases.py

    def _date_text(self, moment: datetime) -> str:
        return i18n.format_date(moment=moment, language=self.language, settings=self.settings)

    def _card(self, release: Release) -> dict[str, object]:
        return {
            "release": release,
            "home": self.prefix,
            "date_text": self._date_text(release.date),
            "date_iso": release.date.isoformat(),
            "tags": [(self.tag_names[slug], slug) for slug in dict.fromkeys(_tag_slugs(release)) if slug],
            "image": self._local_hero(release),
        }

    def _card_html(self, release: Release, root: str) -> Markup:
        """A release's card; the same card appears on the index and on each of its tag pages."""
        html = self.cards.get(release.slug)
        if html is None:
            macro = self.env.get_template("_card.html.j2").module.card  # type: ignore[attr-defined]
            html = self.cards[release.slug] = str(macro(self._card(release), _ROOT))
        return Markup(html.replace(_ROOT, root))  # noqa: S704 - rendered by the autoescaping template

    @staticmethod
    def _local_hero(release: Release) -> str | None:
        """Site-relative path of a hero published beside the page, else its absolute URL."""
        if release.hero is None:
            return None
        if release.hero.file is not None:
            return f"{release.path}{release.local_name(release.hero.file)}"
        return release.hero.src

    def release_page(self, release: Release, *, main: Release, newer: Release | None, older: Release | None) -> dict[str, bytes]:
        root = "../" * release.path.count("/")
        kit = press_kit(release=release, settings=self.settings)
        page = self._page(
            "release.html.j2",
            release.path,
            **self._others({version.language: version.path for version in main.versions}, root),
            lang=release.language,
            canonical=release.canonical_url or release.url,
            card=self._card(release),
            body=self._relative_html(
                images.sized_html(release.body_html, base_url=release.url, files=release.images, width=images.PAGE_WIDTH), root
            ),
            about=self._relative_html(release.about_html, root),
            **self._hero(release),
            newer=newer,
            older=older,
            corrections=[self._dated(correction.date) | {"note": correction.note} for correction in release.corrections],
            downloads=release.downloads,
            press_kit={"name": PRESS_KIT, "size": i18n.format_size(len(kit), language=release.language)},
            contacts=media_contacts(release=release),
            issuer_about=[
                (issuer, self._relative_html(html, root))
                for issuer, html in about_blocks(release=release, site_language=self.site.language)
            ],
            eu=eu_acknowledgement(release=release),
        )
        return {f"{release.path}index.html": page, f"{release.path}{PRESS_KIT}": kit}

    @staticmethod
    def _hero(release: Release) -> dict[str, object]:
        """The hero as the page shows it (at most PAGE_WIDTH wide) and as it is downloaded (the original)."""
        file = release.hero.file if release.hero else None
        original = release.local_name(file) if file is not None else (release.hero and release.hero.src)
        shown = images.variant(file, images.PAGE_WIDTH) if file is not None else None
        return {
            "hero_src": images.sized_name(original, images.PAGE_WIDTH) if shown else original,
            "hero_original": original,
            "hero_size": _image_size(file),  # of the original, which og:image names
            "hero_shown_size": shown or _image_size(file),
        }

    def withdrawn_page(self, release: Release) -> bytes:
        """What stays at a withdrawn release's permanent URL: title, when and why, nothing of the body."""
        assert release.withdrawn is not None
        return self._page(
            "withdrawn.html.j2",
            release.path,
            lang=release.language,
            canonical=None,  # noindex: nothing here for search engines to keep
            release=release,
            published=self._dated(release.date),
            withdrawn=self._dated(release.withdrawn.date) | {"reason": release.withdrawn.reason},
        )

    def _dated(self, moment: datetime) -> dict[str, str]:
        return {"text": self._date_text(moment), "iso": moment.isoformat()}

    def listing(self, page: _Listing, *, tag: _Tag | None, feed_folder: str) -> bytes:
        root = "../" * page.path.count("/")
        releases = page.releases
        # Only a language's front page has the same page in the other languages.
        paths = self._homes("") if page.path == self.prefix else {self.language: page.path}
        return self._page(
            "index.html.j2",
            page.path,
            **self._others(paths, root),
            lang=self.language,
            canonical=f"{self.site.base_url}/{page.path}",
            cards=[self._card_html(release, root) for release in releases],
            number=page.number,
            total=page.total,
            count=page.count,
            # A numbered page says which weeks it covers, which never changes, rather than where it stands.
            span=None if page.number is None else tuple(
                self._date_text(release.date) for release in (releases[-1], releases[0])
            ),
            previous=page.newer,
            next=page.older,
            tag=tag,
            feed_folder=feed_folder,
        )

    def tag_index(self) -> bytes:
        path = f"{self.prefix}tags/"
        return self._page(
            "tags.html.j2", path, **self._others(self._homes("tags/"), "../" * path.count("/")),
            lang=self.language, canonical=f"{self.site.base_url}/{path}", tags=self.tags,
        )

    def not_found(self) -> bytes:
        # Served for any missing path, so its links are absolute from the site root.
        root = urlsplit(self.site.base_url).path.rstrip("/") + "/"
        # No canonical: it would tell search engines that every missing address is the home page.
        return self._page("404.html.j2", "", root=root, lang=self.language, canonical=None)


def _sitemap(settings: Settings, trees: list[tuple[list[Release], list[_Tag]]]) -> bytes:
    """Every page of every language; a release in several languages lists its versions (hreflang)."""
    base = settings.site.base_url
    rows: list[tuple[str, str | None, list[tuple[str, str]]]] = []
    versions_of: dict[str, list[tuple[str, str]]] = {}
    for versions, _tags in trees:
        for release in versions:
            versions_of.setdefault(release.slug, []).append((release.language, release.url))
    for versions, tags in trees:
        prefix = versions[0].prefix if versions else ""
        newest = max(release.modified for release in versions).isoformat() if versions else None
        rows.append((f"{base}/{prefix}", newest, []))
        for release in versions:
            others = versions_of[release.slug]
            alternates = [*others, ("x-default", others[0][1])] if len(others) > 1 else []
            rows.append((release.url, release.modified.isoformat(), alternates))
        rows.append((f"{base}/{prefix}tags/", newest, []))
        rows += [(f"{base}/{tag.path}", max(release.modified for release in tag.releases).isoformat(), []) for tag in tags]
    multilingual = any(alternates for _, _, alternates in rows)
    namespaces = ' xmlns:xhtml="http://www.w3.org/1999/xhtml"' if multilingual else ""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"{namespaces}>']
    for loc, lastmod, alternates in rows:
        modified = f"<lastmod>{lastmod}</lastmod>" if lastmod else ""
        links = "".join(
            f'<xhtml:link rel="alternate" hreflang="{code}" href="{xml_escape(href)}"/>' for code, href in alternates
        )
        lines.append(f"<url><loc>{xml_escape(loc)}</loc>{modified}{links}</url>")
    lines.append("</urlset>\n")
    return "\n".join(lines).encode("utf-8")


# --------------------------------------------------------------------------- writing


@dataclass
class _SyncResult:
    written: list[Path] = field(default_factory=list)
    unchanged: int = 0
    removed: list[Path] = field(default_factory=list)


def _sync(
    public: Path, stages: Sequence[Sequence[_Job]], copies: dict[str, Path], *, cache: _BuildCache
) -> _SyncResult:
    """Make public/ hold exactly what the jobs render and ``copies``, touching only what differs.

    The manifest remembers, per file, the key of what it was rendered from and its size and mtime
    after writing. A job whose key is unchanged and whose files are as the manifest left them is
    not even rendered: that is what keeps a rebuild after one new release cheap. Without a
    manifest (first build, deleted var/) every file is rendered and compared byte for byte.
    """
    result = _SyncResult()
    public.mkdir(parents=True, exist_ok=True)
    # Plain strings here: this walk sees every file of the site on every build. Done first, it also
    # spares a new file the read that would compare it with nothing.
    root = str(public)
    existing: set[str] = set()
    files_in: dict[str, int] = {}  # folder -> how many files it held
    for folder, _subfolders, names in os.walk(root):
        existing.update(os.path.join(folder, name) for name in names)
        files_in[folder] = len(names)
    before = cache.files
    after: dict[str, list] = {}
    pages = {path for stage in stages for job in stage for path in job.paths}
    produced: set[str] = set(pages)
    stale: list[list[_Job]] = []
    for stage in stages:
        stale.append([])
        for job in stage:
            if job.key is not None and all(_fresh(public / path, before.get(path), job.key) for path in job.paths):
                for path in job.paths:
                    after[path] = before[path]
                result.unchanged += len(job.paths)
            else:
                stale[-1].append(job)
    global _forked
    _forked = (public, stale, existing)
    try:
        with _renderers(sum(map(len, stale))) as pool, _Writer(public) as writer:
            # Images and the stylesheet first, then each stage (release pages, then the pages and feeds
            # that link to them), removals last: a reader during a build never follows a link to a file
            # not there yet.
            for relative, source in copies.items():
                if relative in pages:
                    continue  # a page wins over an image that happens to share its name
                produced.add(relative)
                target = public / relative
                if _same_file(target, source):
                    result.unchanged += 1
                    continue
                writer.write(target, source.read_bytes(), like=source)
                result.written.append(target)
            writer.wait()
            for number, jobs in enumerate(stale):
                size = max(_SMALLEST_CHUNK, len(jobs) // (_RENDERERS * 4))
                chunks = [range(start, min(start + size, len(jobs))) for start in range(0, len(jobs), size)]
                if pool is not None and len(chunks) > 1:
                    outcomes = pool.map(_render_chunk, itertools.repeat(number), chunks)
                else:
                    outcomes = iter([_render_jobs(jobs, public, existing, writer)])
                for written, unchanged, stamps in outcomes:
                    result.written += written
                    result.unchanged += unchanged
                    after.update(stamps)
    finally:
        _forked = None
    wanted = {os.path.join(root, relative) for relative in produced}
    for path in sorted(existing - wanted):
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue  # this build turned it into a folder, or the folder it was in into a file
        result.removed.append(Path(path))
        files_in[os.path.dirname(path)] -= 1
    for folder in sorted(files_in, key=len, reverse=True):  # deepest first, so a parent can empty too
        if folder != root and not files_in[folder] and os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)
    cache.files = after
    return result


def _render_jobs(
    jobs: Sequence[_Job], public: Path, existing: set[str], writer: _Writer
) -> tuple[list[Path], int, dict[str, list]]:
    """Render ``jobs`` and write what differs from disk: (files written, files unchanged, manifest entries)."""
    written: list[Path] = []
    unchanged = 0
    stamps: list[tuple[str, str, Path]] = []
    entries: dict[str, list] = {}
    for job in jobs:
        for relative, data in job.outputs().items():
            target = public / relative
            if str(target) in existing and _same_bytes(target, data):
                unchanged += 1
                if job.key is not None:
                    stat = target.stat()
                    entries[relative] = [job.key, stat.st_size, stat.st_mtime_ns]
                continue
            writer.write(target, data)
            written.append(target)
            if job.key is not None:
                stamps.append((relative, job.key, target))
    writer.wait()
    for relative, key, target in stamps:
        entries[relative] = [key, *writer.stamps.pop(target)]
    return written, unchanged, entries


# Rendering is CPU-bound Python (Jinja, a press kit's text: about half a millisecond a release), so
# from this many jobs to render, worker processes share each stage, one contiguous chunk of jobs at a
# time, each writing its own files. They are forked, as they must inherit the jobs (whose templates
# and partial renders do not pickle), and so only from a process that has no other thread yet: a
# fork could copy a lock another thread holds. Elsewhere (a Prefect flow run) the build renders here.
_PARALLEL_FROM = 400
_RENDERERS = min(4, os.cpu_count() or 1)
_SMALLEST_CHUNK = 16  # jobs: a chunk costs a round trip to a worker
_forked: tuple[Path, list[list[_Job]], set[str]] | None = None  # what the workers inherit


@contextmanager
def _renderers(jobs: int) -> Iterator[ProcessPoolExecutor | None]:
    if jobs < _PARALLEL_FROM or _RENDERERS < 2 or threading.active_count() > 1:
        yield None
        return
    try:
        pool = ProcessPoolExecutor(max_workers=_RENDERERS, mp_context=multiprocessing.get_context("fork"))
        pool.submit(int).result()  # forks every worker now, before this process starts its writing threads
    except (OSError, ValueError, BrokenProcessPool):
        yield None  # no fork here (a sandbox, a full process table, another OS): render in this one
        return
    with pool:
        yield pool


def _render_chunk(stage: int, indexes: range) -> tuple[list[Path], int, dict[str, list]]:
    """In a worker: render and write one chunk of a stage's jobs."""
    assert _forked is not None, "only forked by _sync"
    public, stale, existing = _forked
    with _Writer(public) as writer:
        return _render_jobs([stale[stage][index] for index in indexes], public, existing, writer)


class _BuildCache:
    """What the last build rendered (file keys, sizes, mtimes), in var/cache/.

    It only saves time: missing, damaged or stale, the build renders and compares everything.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.raw = b""
        try:
            self.raw = path.read_bytes()
            data = json.loads(self.raw)
            self.files: dict[str, list] = dict(data["files"])
        except (OSError, ValueError, KeyError, TypeError):
            self.files = {}

    def save(self) -> None:
        data = json.dumps({"files": self.files}, separators=(",", ":")).encode()
        if data == self.raw:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with _Writer(self.path.parent, threads=1) as writer:
                writer.write(self.path, data)
        except OSError:
            pass  # public/ is already right; the next build just renders more


def _fresh(target: Path, entry: list | None, key: str) -> bool:
    """The file was rendered from ``key`` and nobody has touched it since."""
    if not entry or len(entry) != 3 or entry[0] != key:
        return False
    try:
        stat = target.stat()
    except OSError:
        return False
    return [stat.st_size, stat.st_mtime_ns] == entry[1:]


def _same_bytes(target: Path, data: bytes) -> bool:
    try:
        with open(target, "rb") as stream:
            # One read past the expected size tells a longer file apart without a separate stat.
            return stream.read(len(data) + 1) == data
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return False


def _same_file(target: Path, source: Path) -> bool:
    try:
        ours, theirs = target.stat(), source.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    if ours.st_size != theirs.st_size:
        return False
    # copies keep the source's mtime, so an equal mtime means an earlier build copied this very file.
    return ours.st_mtime_ns == theirs.st_mtime_ns or target.read_bytes() == source.read_bytes()


_IN_FLIGHT = 64


class _Writer:
    """Atomic file replacement on a few threads, creating each folder once per build.

    Creating a file or a folder is mostly kernel time (about half a millisecond each on a busy
    disk), which a thread spends without the GIL while the build renders the next page. ``wait``
    returns once everything handed over is written, raising the first failure; ``stamps`` then
    holds each written file's size and mtime (plain tuples: a future or a stat result per file,
    kept to the end of a stage, was 40 MB at 10,000 releases). At most ``_IN_FLIGHT`` files wait
    to be written: rendering outruns a slow disk, and 10,000 pages held in a queue are 80 MB.
    """

    def __init__(self, public: Path, *, threads: int = min(4, os.cpu_count() or 1)) -> None:
        self.public = public
        self.folders: set[Path] = {public}
        self.making_folders = threading.Lock()  # two files of one new folder: one thread makes it
        self.names = itertools.count()
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pressroom-write")
        self.pending: deque[Future[None]] = deque()
        self.stamps: dict[Path, tuple[int, int]] = {}

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.pool.shutdown(wait=True)

    def write(self, target: Path, data: bytes, *, like: Path | None = None) -> None:
        """Replace ``target`` with ``data`` soon (done, at the latest, when ``wait`` returns)."""
        while len(self.pending) >= _IN_FLIGHT:
            self.pending.popleft().result()
        self.pending.append(self.pool.submit(_replace, self, target, data, like))

    def wait(self) -> None:
        while self.pending:
            self.pending.popleft().result()

    def folder(self, folder: Path) -> None:
        if folder in self.folders:
            return
        with self.making_folders:
            self._make(folder)

    def _make(self, folder: Path) -> None:
        if folder in self.folders:
            return
        self._make(folder.parent)
        try:
            os.mkdir(folder)
        except FileExistsError:
            if os.path.islink(folder) or not os.path.isdir(folder):
                os.unlink(folder)  # an earlier build had a file where this build needs a folder
                os.mkdir(folder)
        self.folders.add(folder)


def _replace(writer: _Writer, target: Path, data: bytes, like: Path | None) -> None:
    """Replace ``target`` in one step, so a reader (or a crash) never sees half a file."""
    writer.folder(target.parent)
    temporary = target.parent / f".tmp-{os.getpid()}-{id(writer):x}-{next(writer.names)}"
    try:
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(handle, 0o644)  # whatever the umask: the web server must be able to read it
            stream.write(data)
            stream.flush()
            if like is not None:
                stat = like.stat()
                os.utime(handle, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            written = os.fstat(handle)
        try:
            os.replace(temporary, target)
        except IsADirectoryError:
            shutil.rmtree(target)  # an earlier build had a folder where this build needs a file
            os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    writer.stamps[target] = (written.st_size, written.st_mtime_ns)
