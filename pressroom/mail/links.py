"""Links in emails: into the public site, tagged with ``utm_*`` parameters when ``[email] utm`` is on;
through the counting redirect (``/r/<token>``) when ``[analytics] links`` is on.

A counted link names the release, the link, the channel and the language, never the reader: the
email is composed once and every recipient's copy carries the same links.
"""

from __future__ import annotations

import html as html_module
import re
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pressroom.settings import Settings
from pressroom.tokens import link_count_url

__all__ = ["counted_links", "utm_html", "with_utm"]


def with_utm(url: str, *, settings: Settings, campaign: str) -> str:
    """Add utm_* parameters to links into the public site when settings.email.utm is on."""
    email = settings.email
    if not email.utm or not url:
        return url
    parts = urlsplit(url)
    if parts.netloc.lower() != urlsplit(settings.site.base_url).netloc.lower():
        return url
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {name for name, _ in query}
    extra = [
        (name, value)
        for name, value in (("utm_source", email.utm_source), ("utm_medium", email.utm_medium), ("utm_campaign", campaign))
        if name not in present
    ]
    return urlunsplit(parts._replace(query=urlencode(query + extra)))


_HREF = re.compile(r'href="([^"]*)"')


def utm_html(fragment: str, *, settings: Settings, campaign: str) -> str:
    """Every link of an HTML fragment into the public site, tagged as :func:`with_utm` tags one."""
    if not settings.email.utm:
        return fragment

    def replace(match: re.Match[str]) -> str:
        url = html_module.unescape(match.group(1))
        return f'href="{html_module.escape(with_utm(url, settings=settings, campaign=campaign))}"'

    return _HREF.sub(replace, fragment)


# A bare URL in a text part ends at white space or a closing bracket; a sentence's full stop is not part of it.
_TEXT_URL = re.compile(r"https?://[^\s<>\"')\]]+")
_TRAILING = ".,;:!?"
# Personal links (each reader's own token) and links that are ours already are never counted.
_PERSONAL_PATHS = ("/r/", "/unsubscribe", "/preferences", "/preview/", "/approval/", "/journalists/", "/data")


def counted_links(html: str, text: str, *, settings: Settings, release: str, channel: str, language: str,
                  owners: Sequence[tuple[str, str]] = ()) -> tuple[str, str]:
    """The HTML and text parts with each http(s) link replaced by its counting redirect.

    A link under the URL of one of ``owners`` (release URL, slug), as in a digest, is counted for that
    release; any other for ``release``. Nothing changes when ``[analytics] links`` is off.
    """
    if not settings.analytics.links:
        return html, text
    base = settings.site.base_url

    def counted(url: str) -> str:
        if not url.startswith(("https://", "http://")):
            return url
        if url.startswith(base) and url[len(base):].startswith(_PERSONAL_PATHS):
            return url
        slug = next((slug for prefix, slug in owners if url.startswith(prefix)), release)
        return link_count_url(settings=settings, release=slug, link=url, channel=channel, language=language)

    def in_html(match: re.Match[str]) -> str:
        return f'href="{html_module.escape(counted(html_module.unescape(match.group(1))))}"'

    def in_text(match: re.Match[str]) -> str:
        url = match.group(0)
        kept = url.rstrip(_TRAILING)
        return counted(kept) + url[len(kept):]

    return _HREF.sub(in_html, html), _TEXT_URL.sub(in_text, text)
