"""The site's pages rendered with its Jinja templates: release pages, lists, topics, notices, the 404.

Links between pages are relative (``../../tags/x/``) so the site works under any base path, on a
preview server and from disk; canonical, Open Graph and feed URLs are absolute.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import jinja2
from markupsafe import Markup

from pressroom import i18n, images, templating
from pressroom.colours import site_brand
from pressroom.errors import TemplateError
from pressroom.feeds import FEED_FILES
from pressroom.presskit import press_kit
from pressroom.releases.blocks import about_blocks, eu_acknowledgement, media_contacts
from pressroom.releases.model import PRESS_KIT, Release
from pressroom.settings import Settings
from pressroom.site.listing import Listing, Tag, tag_slugs

__all__ = ["STATIC", "Renderer"]

STATIC = "static"
# Stands for "../../" in cached card HTML; the releases' reader strips NUL from every text, so it cannot clash.
_ROOT = "\x00"


_DEFAULT_CARD = "card.png"  # shipped in templates/site/static/, 1200x630: what a link preview shows


def _default_image(settings: Settings) -> dict[str, object] | None:
    """The og:image of a page without a hero: the site's logo, else the default card (None if a
    site's own templates/site/static/ has none)."""
    site = settings.site
    if site.logo:
        return {"src": urljoin(f"{site.base_url}/", site.logo), "size": None}
    card = settings.path("templates") / "site" / STATIC / _DEFAULT_CARD
    if not card.is_file():
        return None
    return {"src": f"{site.base_url}/{STATIC}/{_DEFAULT_CARD}", "size": images.header_size(card)}


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
    for path in [*sorted(folder.rglob("*.j2")), *_code()]:  # the blocks/ partials too
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _code() -> list[Path]:
    """The modules whose code shapes a page, a press kit or a feed."""
    package = Path(__file__).resolve().parent.parent
    rooms = ("site", "releases")
    modules = ("feeds.py", "presskit.py", "text.py", "images.py", "templating.py", "colours.py", "i18n/__init__.py")
    return [*(path for room in rooms for path in sorted((package / room).glob("*.py"))), *(package / name for name in modules)]


class Renderer:
    """Renders the pages of one language with the site's Jinja templates; one instance per language and build.

    ``prefix`` is where that language's pages live ("" for the site language, "de/" for German);
    ``languages`` are all the site's languages, for the language switcher.
    """

    def __init__(self, settings: Settings, tags: list[Tag], *, language: str, prefix: str, languages: Sequence[str]) -> None:
        self.settings = settings
        self.site = settings.site
        self.language, self.prefix, self.languages = language, prefix, tuple(languages)
        folder = settings.path("templates") / "site"
        if not (folder / "base.html.j2").is_file():
            raise TemplateError(f"{folder / 'base.html.j2'}: the site templates are missing")
        templates = _templates_fingerprint(folder)
        catalogue = i18n.translations(language=language, settings=settings)
        # The templates' digest stands for their state: an edited template is picked up by a long-lived
        # process, and Jinja need not stat every template file again on each page.
        self.env = templating.environment(
            (folder,), translations=catalogue, auto_reload=False, version=templates,
            compiled=settings.path("var") / "cache" / "templates",
        )
        # Compiled here, before the build forks its render workers, rather than once in each of them.
        for name in self.env.list_templates(filter_func=lambda name: name.endswith(".j2")):
            self._template(name)
        self.table = catalogue.gettext("Table")  # a scrolling table's label
        self.fingerprint = f"{templates}:{settings.fingerprint}:{i18n.fingerprint(settings=settings)}"
        # Card HTML by slug, with _ROOT standing for the page's way back to the site root: the same
        # card is on the index and on each of its topics' pages. Not kept between builds: a new
        # release re-renders front pages only, a few dozen cards.
        self.cards: dict[str, str] = {}
        self.dates: dict[datetime, str] = {}
        self.card_macro: Callable[..., str] | None = None
        self.tags = tags
        self.tag_names = {tag.slug: tag.name for tag in tags}
        brand = site_brand(self.site.brand_color)
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

    def _template(self, name: str) -> jinja2.Template:
        try:
            return self.env.get_template(name)
        except jinja2.TemplateError as exc:
            raise TemplateError(f"{_template_location(exc, name)}: {exc}") from exc

    def _render(self, name: str, **context: object) -> str:
        template = self._template(name)
        try:
            return template.render(**context)
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
        # body_html was sanitised by nh3 when the release was read
        return Markup(_scrolling_tables(fragment, self.table))

    def _date_text(self, moment: datetime) -> str:
        # A release's date is on its page, its card and its neighbours' cards: Babel formats each once.
        text = self.dates.get(moment)
        if text is None:
            text = self.dates[moment] = i18n.format_date(moment=moment, language=self.language, settings=self.settings)
        return text

    def _card(self, release: Release) -> dict[str, object]:
        return {
            "release": release,
            "home": self.prefix,
            "date_text": self._date_text(release.date),
            "date_iso": release.date.isoformat(),
            # Named as the site names the topic; a preview's topic may have no page yet: then as the release does.
            "tags": [(self.tag_names.get(slug, name), slug) for slug, name in dict(zip(tag_slugs(release), release.tags)).items() if slug],
            "image": self._local_hero(release),
        }

    def _card_html(self, release: Release, root: str) -> Markup:
        """A release's card; the same card appears on the index and on each of its tag pages."""
        html = self.cards.get(release.slug)
        if html is None:
            if self.card_macro is None:
                self.card_macro = self._template("_card.html.j2").module.card  # type: ignore[attr-defined]
            html = self.cards[release.slug] = str(self.card_macro(self._card(release), _ROOT))
        return Markup(html.replace(_ROOT, root))  # rendered by the autoescaping template

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
            **self._release_blocks(release, root, kit, **self._hero(release)),
            canonical=release.canonical_url or release.url,
            newer=newer,
            older=older,
            preview=None,
        )
        return {f"{release.path}index.html": page, f"{release.path}{PRESS_KIT}": kit}

    def preview_page(self, release: Release, *, until: str, name: str, link: Callable[[str], str]) -> bytes:
        """A journalist's private copy of the release page before its date: the same page with the embargo band,
        ``noindex``, no way to the other releases; its files (hero, images, downloads, press kit, co-issuers' logos)
        come through ``link`` (a file's name in the bundle or a logo's site path -> its URL on the journalist's
        preview link), as public/ has none of them yet."""
        body = release.body_html
        for file_name, _ in release.images:
            body = body.replace(f'src="{release.url}{file_name}"', f'src="{link(file_name)}"')
        file = release.hero.file if release.hero else None
        hero_src = link(release.local_name(file)) if file is not None else (release.hero.src if release.hero else None)
        hero = {"hero_src": hero_src, "hero_original": hero_src, "hero_size": images.header_size(file),
                "hero_shown_size": images.header_size(file)}
        kit = press_kit(release=release, settings=self.settings)
        return self._page(
            "release.html.j2", release.path, root="/",
            **self._release_blocks(release, "/", kit, body=body, asset=link, site_file=link, **hero),
            canonical=None, newer=None, older=None, preview={"until": until, "name": name},
        )

    def _release_blocks(self, release: Release, root: str, kit: bytes, *, body: str | None = None,
                        asset: Callable[[str], str] = str, site_file: Callable[[str], str] | None = None,
                        **hero: object) -> dict[str, object]:
        """What the release page shows of ``release``: its text and every block (templates/site/blocks/).
        ``asset`` links a file of the release's bundle, ``site_file`` a file of the site (a logo)."""
        body = images.sized_html(release.body_html, base_url=release.url, files=release.images, width=images.PAGE_WIDTH) \
            if body is None else body
        return {
            "lang": release.language,
            "card": self._card(release),
            "body": self._relative_html(body, root),
            "about": self._relative_html(release.about_html, root),
            **hero,
            "corrections": [self._dated(correction.date) | {"note": correction.note} for correction in release.corrections],
            "downloads": release.downloads,
            "press_kit": {"name": PRESS_KIT, "size": i18n.format_size(len(kit), language=release.language)},
            "asset": asset,
            "site_file": site_file or (lambda path: f"{root}{path}"),
            "contacts": media_contacts(release=release),
            "issuer_about": [
                (issuer, self._relative_html(html, root))
                for issuer, html in about_blocks(release=release, site_language=self.site.language)
            ],
            "eu": eu_acknowledgement(release=release, settings=self.settings),
        }

    @staticmethod
    def _hero(release: Release) -> dict[str, object]:
        """The hero as the page shows it (at most PAGE_WIDTH wide) and as it is downloaded (the original)."""
        file = release.hero.file if release.hero else None
        original = release.local_name(file) if file is not None else (release.hero and release.hero.src)
        shown = images.variant(file, images.PAGE_WIDTH) if file is not None else None
        return {
            "hero_src": images.sized_name(original, images.PAGE_WIDTH) if shown else original,
            "hero_original": original,
            "hero_size": images.header_size(file),  # of the original, which og:image names
            "hero_shown_size": shown or images.header_size(file),
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

    def listing(self, page: Listing, *, tag: Tag | None, feed_folder: str) -> bytes:
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
