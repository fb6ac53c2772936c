"""Links in emails into the public site, tagged with ``utm_*`` parameters when ``[email] utm`` is on."""

from __future__ import annotations

import html as html_module
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pressroom.settings import Settings

__all__ = ["utm_html", "with_utm"]


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
