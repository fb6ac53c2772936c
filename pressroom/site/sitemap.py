"""sitemap.xml: every page of every language; a release in several languages lists its versions (hreflang)."""

from __future__ import annotations

from datetime import datetime
from xml.sax.saxutils import escape as xml_escape

from pressroom.releases.model import Release
from pressroom.settings import Settings
from pressroom.site.listing import Tag

__all__ = ["Tree", "sitemap"]

#: One language's pages: its releases (newest first) and its topics.
Tree = tuple[list[Release], list[Tag]]
_Row = tuple[str, str | None, list[tuple[str, str]]]  # (URL, lastmod, [(hreflang, URL)])


def sitemap(settings: Settings, trees: list[Tree]) -> bytes:
    """The sitemap of the pages of ``trees``, one tree per language."""
    versions_of: dict[str, list[tuple[str, str]]] = {}
    changed: dict[int, datetime] = {}  # each release's, worked out once: a release is in several rows' dates
    for versions, _tags in trees:
        for release in versions:
            versions_of.setdefault(release.slug, []).append((release.language, release.url))
            changed[id(release)] = release.modified
    rows = [row for tree in trees for row in _rows(settings.site.base_url, tree, versions_of, changed)]
    multilingual = any(alternates for _, _, alternates in rows)
    namespaces = ' xmlns:xhtml="http://www.w3.org/1999/xhtml"' if multilingual else ""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"{namespaces}>']
    for loc, lastmod, alternates in rows:
        modified = f"<lastmod>{lastmod}</lastmod>" if lastmod else ""
        links = "".join(
            f'<xhtml:link rel="alternate" hreflang="{code}" href="{xml_escape(href)}"/>' for code, href in alternates
        ) if alternates else ""
        lines.append(f"<url><loc>{xml_escape(loc)}</loc>{modified}{links}</url>")
    lines.append("</urlset>\n")
    return "\n".join(lines).encode("utf-8")


def _rows(base: str, tree: Tree, versions_of: dict[str, list[tuple[str, str]]], changed: dict[int, datetime]) -> list[_Row]:
    """One language's rows: its front page, each release (with its versions), its topics page, each topic."""
    versions, tags = tree
    prefix = versions[0].prefix if versions else ""
    newest = max(changed[id(release)] for release in versions).isoformat() if versions else None
    rows: list[_Row] = [(f"{base}/{prefix}", newest, [])]
    for release in versions:
        others = versions_of[release.slug]
        alternates = [*others, ("x-default", others[0][1])] if len(others) > 1 else []
        rows.append((release.url, changed[id(release)].isoformat(), alternates))
    rows.append((f"{base}/{prefix}tags/", newest, []))
    rows += [(f"{base}/{tag.path}", max(changed[id(release)] for release in tag.releases).isoformat(), []) for tag in tags]
    return rows
