"""RSS 2.0, Atom and JSON Feed 1.1 for a list of public releases. The only module that imports feedgen.

Every feed is a pure function of the releases and the settings: no "now" goes into it (the
feed's updated time is its newest item's), so an unchanged site yields byte-identical feeds and
the incremental build leaves them alone. Item ids/GUIDs are the releases' permanent URLs, which
derive from the slug and never change.
"""

from __future__ import annotations

import html
import json
import mimetypes
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

from feedgen.entry import FeedEntry
from feedgen.feed import FeedGenerator
from lxml import etree

from pressroom import i18n
from pressroom.releases.blocks import media_contacts
from pressroom.releases.model import Release
from pressroom.settings import Settings
from pressroom.text import clean_text, slugify

__all__ = ["FEED_FILES", "FEED_MEDIA_TYPES", "render_feeds"]

#: Feed kind -> file name inside the folder the feeds describe (site root or ``tags/<slug>/``).
FEED_FILES = {"rss": "feed.xml", "atom": "atom.xml", "json": "feed.json"}
#: Feed file name -> the media type it is served as, the one the pages' <link rel="alternate"> announce.
FEED_MEDIA_TYPES = {
    FEED_FILES["rss"]: "application/rss+xml",
    FEED_FILES["atom"]: "application/atom+xml",
    FEED_FILES["json"]: "application/feed+json",
}

_T = TypeVar("_T")
_ATOM = "{http://www.w3.org/2005/Atom}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

# The updated time of a feed without items: fixed, so an empty site's feeds are stable too.
_EMPTY_FEED_UPDATED = datetime(2000, 1, 1, tzinfo=UTC)


def render_feeds(
    *,
    settings: Settings,
    releases: Sequence[Release],
    folder: str = "",
    title: str | None = None,
    description: str | None = None,
    language: str = "",
) -> dict[str, bytes]:
    """Render the RSS, Atom and JSON feeds of ``releases`` (public, newest first), in ``language``
    (default: the site's; another language's feeds live under ``<lang>/`` and say so).

    ``folder`` is the site-relative folder the feeds live in and describe (``""`` for the whole
    site, ``"tags/recycling/"`` for one topic). At most ``settings.site.feed_items`` newest
    releases are included. Returns ``{site-relative path: bytes}``.
    """
    site = settings.site
    language = language or site.language
    t = i18n.translations(language=language, settings=settings)
    items = list(releases)[: site.feed_items]
    home = f"{site.base_url}/{folder}"
    feed_title = clean_text(title or site.name)
    default = t.gettext("Press releases of %(site)s") % {"site": site.name}
    feed_description = clean_text(description or site.description_in(language) or default)
    updated = max((release.modified for release in items), default=_EMPTY_FEED_UPDATED)
    urls = {kind: f"{home}{name}" for kind, name in FEED_FILES.items()}

    # The full HTML of each item, built once for the three formats.
    contents = {
        release.slug: _made(("content", language), release, settings, lambda r: clean_text(_full_content(r, settings, language)))[0]
        for release in items
    }
    prefix = "" if language == site.language else f"{language}/"

    def generator(kind: str) -> FeedGenerator:
        return _feedgen(
            settings, items, kind=kind, home=home, self_url=urls[kind], title=feed_title,
            description=feed_description, updated=updated, contents=contents, language=language, prefix=prefix,
        )

    rss = generator("rss").rss_str(pretty=True)
    atom = _atom_links(generator("atom").atom_str(pretty=True), items)
    json_feed = _json_feed(settings, items, home=home, self_url=urls["json"], title=feed_title,
                           description=feed_description, contents=contents, language=language)
    return {
        f"{folder}{FEED_FILES['rss']}": rss,
        f"{folder}{FEED_FILES['atom']}": atom,
        f"{folder}{FEED_FILES['json']}": json_feed,
    }


def _feedgen(
    settings: Settings,
    items: list[Release],
    *,
    kind: str,
    home: str,
    self_url: str,
    title: str,
    description: str,
    updated: datetime,
    contents: dict[str, str],
    language: str,
    prefix: str,
) -> FeedGenerator:
    site = settings.site
    # Atom declares title and summary as text. RSS does not say, and many readers take them as HTML:
    # a text with "<" in it is escaped once more there, so "<script>" in a title is shown, never run.
    text = _as_html if kind == "rss" else _as_text
    fg = FeedGenerator()
    fg.load_extension("media")
    if kind == "rss":
        # RSS's own <author> must be an email address; dc:creator takes a name, and is what readers
        # such as newsboat and feedparser show as an item's author. Atom has <author> for names.
        fg.load_extension("dc")
    fg.id(home)
    fg.title(text(title))
    fg.description(text(description))
    fg.language(language)
    fg.author(name=clean_text(site.name), uri=site.base_url)
    # The RSS channel <link> takes the href of the LAST link() call, so "self" goes first.
    fg.link(href=self_url, rel="self")
    fg.link(href=home, rel="alternate")
    fg.generator("Pressroom")
    fg.updated(updated)
    if site.logo:
        fg.logo(site.logo)
    for release in items:
        entry, new = _made((kind, language), release, settings, lambda r: _entry(
            fg.add_entry(order="append"), r, kind=kind, text=text, content=contents[r.slug], site_name=site.name,
            scheme=f"{site.base_url}/{prefix}tags/",
        ))
        if not new:  # made for an earlier feed of this process
            fg.add_entry(entry, order="append")
    return fg


# A release is an item of the site's feeds and of each of its topics' (four folders or more), the same item in
# each: made once per process and language. By the release and settings objects themselves (held here, so their
# ids are not reused while they are), as a build holds them; a bounded number, for a long-lived process.
_MADE: dict[tuple, tuple[Release, Settings, Any]] = {}
_MADE_AT_MOST = 4096


def _made(what: tuple, release: Release, settings: Settings, make: Callable[[Release], _T]) -> tuple[_T, bool]:
    """What ``make`` makes of ``release`` (made now, or earlier in this process), and whether it was made now."""
    key = (*what, id(release), id(settings))
    known = _MADE.get(key)
    if known is not None and known[0] is release and known[1] is settings:
        return known[2], False
    if len(_MADE) >= _MADE_AT_MOST:
        _MADE.clear()
    made = make(release)
    _MADE[key] = (release, settings, made)
    return made, True


def _entry(entry: FeedEntry, release: Release, *, kind: str, text: Callable[[str], str], content: str, site_name: str,
           scheme: str) -> FeedEntry:
    """One release as a feed item of ``kind``."""
    entry.id(release.url)
    entry.guid(release.url, permalink=True)
    entry.title(text(release.title))
    entry.link(href=release.url, rel="alternate")
    # summary before content: RSS gets <description> = summary and <content:encoded> = full text.
    entry.summary(text(_summary(release)))
    if kind == "atom":
        entry.content(content, type="html")
    else:
        # CDATA keeps the RSS readable; "]]>" cannot go inside it, so such a body is escaped instead.
        entry.content(content, type=None if "]]>" in content else "CDATA")
    entry.published(release.date)
    entry.updated(release.modified)
    # A release without an author is the organisation's word: a reader then shows the site's name rather
    # than nothing. An Atom entry would inherit the feed's author by the standard, but readers such as
    # newsboat show only an entry's own.
    if kind == "rss":
        entry.dc.dc_creator(text(release.author or site_name))
    else:
        entry.author(name=text(release.author or site_name))
    # One call for all of them: feedgen checks its arguments on every call, a fifth of a feed's time.
    categories = [
        {"term": tag_slug, "label": text(tag), "scheme": scheme}
        for tag, tag_slug in zip(release.tags, map(_slug, release.tags), strict=True)
        if tag_slug
    ]
    if categories:
        entry.category(categories)
    if release.hero is not None and release.withdrawn is None:
        mime, length = _hero_file(release)
        if kind == "rss":  # Atom gets its enclosure link in _atom_links
            entry.enclosure(url=release.hero.src, length=str(length), type=mime)
        # Outside any <media:group>: a group is for several versions of one object, and validators
        # flag a group of one.
        entry.media.content(url=release.hero.src, type=mime, medium="image", group=None)
    return entry


# A site has a few dozen distinct tags and each is in many feeds: slugify each once per process.
_slug = lru_cache(maxsize=4096)(slugify)


def _as_text(value: str) -> str:
    return clean_text(value)


def _as_html(value: str) -> str:
    # Only when markup is possible: escaping "R&D" too would make readers that take it as text show "&amp;".
    value = clean_text(value)
    return html.escape(value, quote=False) if "<" in value else value


def _atom_links(document: bytes, items: list[Release]) -> bytes:
    """Give each Atom entry its ``xml:lang``, a typed alternate link and its hero as ``rel="enclosure"``.

    feedgen 1.0 drops every attribute but href from entry links, which would turn an enclosure
    into a second "alternate" page; so the links are set here on the finished document.
    """
    root = etree.fromstring(document)
    for element, release in zip(root.iterfind(f"{_ATOM}entry"), items, strict=True):
        element.set(_XML_LANG, release.language)  # a release may be in another language than the site
        for link in element.iterfind(f"{_ATOM}link"):
            link.set("rel", "alternate")
            link.set("type", "text/html")
        if release.hero is not None and release.withdrawn is None:
            mime, length = _hero_file(release)
            etree.SubElement(
                element, f"{_ATOM}link", rel="enclosure", href=release.hero.src, type=mime, length=str(length)
            )
    etree.indent(root, space="  ")
    return etree.tostring(root, pretty_print=True, encoding="UTF-8", xml_declaration=True)


def _hero_file(release: Release) -> tuple[str, int]:
    """The hero's media type and size in bytes (0 when it is a remote image)."""
    assert release.hero is not None
    file = release.hero.file
    length = file.stat().st_size if file is not None and file.is_file() else 0
    return _mime(release.hero.src), length


def _summary(release: Release) -> str:
    return release.withdrawn.reason if release.withdrawn is not None else release.summary


def _full_content(release: Release, settings: Settings, language: str) -> str:
    """The release as a feed reader shows it, in ``language``'s words: corrections, body, then media
    contacts, then About; of a withdrawn release only the notice."""
    t = i18n.translations(language=language, settings=settings)

    def when(moment: datetime) -> str:
        return html.escape(i18n.format_date(moment=moment, language=language, settings=settings))

    if release.withdrawn is not None:
        label = t.gettext("Withdrawn, %(date)s:") % {"date": when(release.withdrawn.date)}
        return f"<p><strong>{label}</strong> {html.escape(release.withdrawn.reason)}</p>"
    correction = t.gettext("Correction, %(date)s:")
    parts = [
        f"<p><strong>{correction % {'date': when(note.date)}}</strong> {html.escape(note.note)}</p>"
        for note in release.corrections
    ]
    parts.append(release.body_html)
    contacts = media_contacts(release=release)  # as the page lists them: the issuers' too, each person once
    if contacts:
        lines = []
        for contact in contacts:
            bits = [f"<strong>{html.escape(contact.name)}</strong>"]
            bits += [html.escape(value) for value in (contact.role, contact.organisation) if value]
            if contact.email:
                address = html.escape(contact.email)
                bits.append(f'<a href="mailto:{address}">{address}</a>')
            if contact.phone:
                bits.append(html.escape(contact.phone))
            lines.append(f"<li>{', '.join(bits)}</li>")
        heading = html.escape(t.gettext("Media contacts"))
        parts.append(f"<h2>{heading}</h2><ul>{''.join(lines)}</ul>")
    if release.about_html:
        parts.append(release.about_html)
    return "\n".join(parts)


def _mime(url: str) -> str:
    return mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"


def _json_feed(
    settings: Settings,
    items: list[Release],
    *,
    home: str,
    self_url: str,
    title: str,
    description: str,
    contents: dict[str, str],
    language: str,
) -> bytes:
    site = settings.site
    feed: dict[str, object] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": title,
        "home_page_url": home,
        "feed_url": self_url,
        "description": description,
        "language": language,
        "authors": [{"name": clean_text(site.name), "url": site.base_url}],
    }
    if site.logo:
        feed["icon"] = site.logo
    feed["items"] = [_json_item(release, contents[release.slug]) for release in items]
    # Compact: json's C encoder only runs without indent, and feed readers do not need the spaces.
    text = json.dumps(feed, ensure_ascii=False, separators=(",", ":"))
    # Markup characters as JSON escapes: a title such as "<script>" can then never appear as a tag
    # in feed.json's bytes, even for a client that pastes values into HTML unescaped.
    text = text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return (text + "\n").encode("utf-8")


def _json_item(release: Release, content: str) -> dict[str, object]:
    item: dict[str, object] = {
        "id": release.url,
        "url": release.url,
        "title": clean_text(release.title),
        "summary": clean_text(_summary(release)),
        "content_html": content,
        "date_published": release.date.isoformat(),
        "date_modified": release.modified.isoformat(),
        "language": release.language,
    }
    if release.canonical_url:
        item["external_url"] = release.canonical_url
    if release.tags:
        item["tags"] = [clean_text(tag) for tag in release.tags]
    if release.author:
        item["authors"] = [{"name": clean_text(release.author)}]
    if release.hero is not None and release.withdrawn is None:
        item["image"] = release.hero.src
        item["banner_image"] = release.hero.src
    return item
