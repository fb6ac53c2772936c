"""Compose: a release, a digest or a transactional email rendered ONCE (MJML -> HTML, text twin).

Templates live in ``templates/email/``: ``<kind>.mjml.j2`` (Jinja2 with autoescape, then MJML)
and ``<kind>.txt.j2`` (the plain-text twin, no escaping). The personal values are slot
tokens at this stage; :class:`~pressroom.mail.message.Composed` fills them per recipient.
"""

from __future__ import annotations

import hashlib
import html as html_module
import re
import textwrap
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from gettext import NullTranslations
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import jinja2
from mjml import mjml2html

from pressroom import i18n
from pressroom.i18n import N_
from pressroom.errors import TemplateError
from pressroom.mail.message import Composed, build_composed, new_tokens
from pressroom.organisations import about_blocks, eu_acknowledgement, media_contacts
from pressroom.releases import PRESS_KIT, Release
from pressroom.settings import Settings

__all__ = ["compose_digest", "compose_embargo", "compose_follow_up", "compose_release", "compose_transactional",
           "compose_withdrawn", "contrast_ratio", "digest_key", "embargo_until"]

_PACKAGED_TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "email"
TransactionalKind = Literal["confirm", "welcome", "unsubscribed"]


# --------------------------------------------------------------------------- colours


def _luminance(hex_color: str) -> float:
    value = hex_color.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    channels = [int(value[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    a, b = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def _mix(hex_color: str, target: str, amount: float) -> str:
    a = hex_color.lstrip("#")
    b = target.lstrip("#")
    mixed = [round(int(a[i : i + 2], 16) * (1 - amount) + int(b[i : i + 2], 16) * amount) for i in (0, 2, 4)]
    return "#" + "".join(f"{c:02x}" for c in mixed)


def _readable(color: str, background: str, toward: str) -> str:
    """``color`` moved toward ``toward`` until it reads at 4.5:1 (WCAG AA) on ``background``."""
    for step in range(21):
        candidate = _mix(color, toward, step / 20)
        if contrast_ratio(candidate, background) >= 4.5:
            return candidate
    return toward


def _palette(brand: str) -> dict[str, str]:
    brand = brand if re.fullmatch(r"#[0-9a-fA-F]{6}", brand or "") else "#0b5d7a"
    light_bg, dark_bg = "#ffffff", "#1a1f24"
    accent = _readable(brand, light_bg, "#000000")
    return {
        "brand": brand,
        "accent": accent,  # links, button, headings on white
        "on_accent": "#ffffff" if contrast_ratio("#ffffff", accent) >= contrast_ratio("#111111", accent) else "#111111",
        "text": "#1f2933",
        "muted": "#52606d",
        "page": "#eef2f5",
        "card": light_bg,
        "rule": "#d9e2ec",
        "dark_page": "#0f1316",
        "dark_card": dark_bg,
        "dark_text": "#e4e9ee",
        "dark_muted": "#aab6c2",
        "dark_accent": _readable(brand, dark_bg, "#ffffff"),
    }


# --------------------------------------------------------------------------- links


def _with_utm(url: str, *, settings: Settings, campaign: str) -> str:
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


def _utm_html(fragment: str, *, settings: Settings, campaign: str) -> str:
    if not settings.email.utm:
        return fragment

    def replace(match: re.Match[str]) -> str:
        url = html_module.unescape(match.group(1))
        return f'href="{html_module.escape(_with_utm(url, settings=settings, campaign=campaign))}"'

    return _HREF.sub(replace, fragment)


# Inline styles for the sanitised release body: some clients drop <style>, none drops style="".
_BODY_STYLES = {
    "p": "margin:0 0 16px 0;",
    "h1": "margin:24px 0 12px 0;font-size:22px;line-height:1.3;",
    "h2": "margin:24px 0 12px 0;font-size:20px;line-height:1.3;",
    "h3": "margin:20px 0 10px 0;font-size:18px;line-height:1.3;",
    "ul": "margin:0 0 16px 0;padding-left:24px;",
    "ol": "margin:0 0 16px 0;padding-left:24px;",
    "li": "margin:0 0 6px 0;",
    "blockquote": "margin:0 0 16px 0;padding:4px 0 4px 16px;border-left:4px solid {accent};",
    # CSS width:auto beats the width attribute where CSS works; Outlook desktop reads only the attribute.
    "img": "max-width:100%;width:auto;height:auto;",
    # MJML gives every text block word-break:break-word, which would split "Quarter" into
    # "Qu/art/er" to squeeze a table: words stay whole and the box around the table scrolls instead.
    "table": "border-collapse:collapse;word-break:normal;overflow-wrap:normal;margin:0;",
    "th": "padding:6px 10px;border-bottom:2px solid {rule};text-align:{align};vertical-align:bottom;font-weight:bold;",
    "td": "padding:6px 10px;border-bottom:1px solid {rule};text-align:{align};vertical-align:top;",
    "a": "color:{accent};text-decoration:underline;word-break:break-word;",
}
_OPEN_TAG = re.compile(r"<(p|h1|h2|h3|ul|ol|li|blockquote|img|table|th|td|a)(\s[^>]*)?>")
_ALIGN = re.compile(r'\salign="(left|right|center)"')
#: The width of the release body in the 600px layout (32px padding each side), for img width="".
_BODY_WIDTH = 536


def _style_body(fragment: str, palette: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        tag, attributes = match.group(1), match.group(2) or ""
        align = _ALIGN.search(attributes)
        style = _BODY_STYLES[tag].format(**palette, align=align.group(1) if align else "left")
        closing = "/" if attributes.rstrip().endswith("/") else ""
        attributes = attributes.rstrip().removesuffix("/")
        if tag == "img" and " width=" not in attributes:
            attributes += f' width="{_BODY_WIDTH}"'
        opening = f'<{tag}{attributes} style="{style}"{closing}>'
        if tag == "table":
            # width:0 keeps the table from widening MJML's layout tables (which size to their content);
            # min-width:100% then gives the box the text's width, and a wider table scrolls inside it.
            return f'<div style="overflow-x:auto;width:0;min-width:100%;margin:0 0 16px 0;">{opening}'
        return opening

    return _OPEN_TAG.sub(replace, fragment).replace("</table>", "</table></div>")


# --------------------------------------------------------------------------- HTML -> text


_TEXT_WIDTH = 72


def _fill(text: str, width: int, first: str, rest: str) -> str:
    """``textwrap.fill(text, width, initial_indent=first, subsequent_indent=rest, break_long_words=False,
    break_on_hyphens=False)`` for single-spaced text, in a quarter of the time (it runs on every paragraph of
    every email's and press kit's text). A word longer than the line stands alone on its own line."""
    lines: list[str] = []
    words: list[str] = []
    indent, used = first, 0
    for word in text.split(" ") if text else ():
        if words and used + 1 + len(word) > width - len(indent):
            lines.append(indent + " ".join(words))
            indent, words, used = rest, [word], len(word)
        else:
            used += len(word) + 1 if words else len(word)
            words.append(word)
    if words:
        lines.append(indent + " ".join(words))
    return "\n".join(lines)


class _TextWriter(HTMLParser):
    """Sanitised release HTML -> readable plain text (paragraphs, lists, quotes, links)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, bool]] = []  # (wrapped text, is a list item)
        self.line: list[str] = []
        self.lists: list[list[int]] = []  # per open list: [is_ordered, counter]
        self.quote = 0
        self.links: list[str] = []
        self.heading = False
        self.rows: list[list[tuple[str, str, bool]]] | None = None  # inside a table: (text, align, header)
        self.outside: list[str] = []  # the line around the table cell being read
        self.cell_align = "left"

    def _flush(self, prefix: str = "") -> None:
        text = " ".join("".join(self.line).split())
        self.line = []
        if not text:
            return
        if self.heading:
            text = text.upper()
        indent = "  " * max(len(self.lists) - 1, 0)
        lead = indent + prefix
        quote = "> " * self.quote
        wrapped = _fill(text, _TEXT_WIDTH, quote + lead, quote + " " * len(lead))
        self.blocks.append((wrapped, bool(prefix)))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"td", "th"}:
            self.cell_align = dict(attrs).get("align") or "left"
        if tag in {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "table", "tr"}:
            self._flush()
        if tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            self.heading = True
        elif tag == "blockquote":
            self.quote += 1
        elif tag in {"ul", "ol"}:
            self.lists.append([tag == "ol", 0])
        elif tag == "li":
            self._flush()
            if self.lists:
                self.lists[-1][1] += 1
        elif tag == "br":
            self.line.append("\n")
        elif tag == "a":
            self.links.append(dict(attrs).get("href") or "")
        elif tag == "img":
            alt = dict(attrs).get("alt") or ""
            if alt:
                self.line.append(f"[{alt}]")
        elif tag == "table":
            self.rows = []
        elif tag == "tr" and self.rows is not None:
            self.rows.append([])
        elif tag in {"td", "th"}:
            self.outside, self.line = self.line, []

    def handle_endtag(self, tag: str) -> None:
        if tag in {"td", "th"} and self.rows:
            text = " ".join("".join(self.line).split())
            self.rows[-1].append((text, self.cell_align, tag == "th"))
            self.line = self.outside
        elif tag == "table" and self.rows is not None:
            self.blocks.append((_table_text([row for row in self.rows if row]), False))
            self.rows = None
        elif tag == "li":
            ordered, counter = self.lists[-1] if self.lists else (False, 0)
            self._flush(f"{counter}. " if ordered else "- ")
        elif tag in {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "tr"}:
            self._flush()
            self.heading = False
        elif tag == "blockquote":
            self._flush()
            self.quote = max(self.quote - 1, 0)
        elif tag in {"ul", "ol"}:
            self._flush()
            if self.lists:
                self.lists.pop()
        elif tag == "a" and self.links:
            href = self.links.pop()
            label = " ".join("".join(self.line).split()[-8:])
            # Show the target unless the label already says it (a bare link or address).
            if href and not href.startswith("#") and label.split()[-1:] and label.split()[-1] not in href:
                self.line.append(f" <{href}>")

    def handle_data(self, data: str) -> None:
        self.line.append(data)

    def text(self) -> str:
        self._flush()
        out: list[str] = []
        for index, (block, item) in enumerate(self.blocks):
            if index:
                # List items stay together; every other block is a paragraph.
                out.append("\n" if item and self.blocks[index - 1][1] else "\n\n")
            out.append(block)
        return "".join(out)


def _table_text(rows: list[list[tuple[str, str, bool]]]) -> str:
    """A table as aligned columns under a dashed header rule; as "header: value" lines per row
    when the columns would not fit in 72 characters."""
    columns = max((len(row) for row in rows), default=0)
    rows = [row + [("", "left", False)] * (columns - len(row)) for row in rows]
    header = rows[0] if rows and all(is_header for _, _, is_header in rows[0]) else None
    body = rows[1:] if header else rows
    widths = [max(len(row[index][0]) for row in rows) for index in range(columns)]
    if sum(widths) + 2 * (columns - 1) > _TEXT_WIDTH and header:
        names = [text for text, _, _ in header]

        def record(row: list[tuple[str, str, bool]]) -> str:
            fields = (f"{name}: {text}" if name else text for name, (text, _, _) in zip(names, row) if text)
            return "\n".join(
                _fill(field, _TEXT_WIDTH, "", "  ")
                for field in fields
            )

        return "\n\n".join(record(row) for row in body)

    def line(row: list[tuple[str, str, bool]]) -> str:
        pad = {"right": str.rjust, "center": str.center}
        return "  ".join(pad.get(align, str.ljust)(text, width) for (text, align, _), width in zip(row, widths)).rstrip()

    lines = [line(row) for row in rows]
    if header:
        lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


@lru_cache(maxsize=64)  # the About boilerplates recur in every release, email and press kit
def html_to_text(fragment: str) -> str:
    """Plain text of a sanitised HTML fragment, wrapped at 72 columns, links shown as ``<url>``."""
    writer = _TextWriter()
    writer.feed(fragment)
    writer.close()
    return writer.text()


# --------------------------------------------------------------------------- templates


@lru_cache(maxsize=16)
def _environment(folder: Path, catalogue: NullTranslations) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(folder), jinja2.FileSystemLoader(_PACKAGED_TEMPLATES)]),
        autoescape=jinja2.select_autoescape(enabled_extensions=("mjml.j2",), default_for_string=False, default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["wrap"] = lambda text, width=72: textwrap.fill(
        " ".join(str(text).split()), width=width, break_long_words=False, break_on_hyphens=False
    )
    environment.filters["underline"] = lambda text, char="=": char * max(
        len(line) for line in textwrap.wrap(" ".join(str(text).split()), width=72, break_long_words=False) or [""]
    )
    return i18n.install(environment, translations=catalogue)


def _render(settings: Settings, name: str, context: dict[str, Any]) -> str:
    catalogue = i18n.translations(language=context["language"], settings=settings)
    try:
        return _environment(settings.path("templates") / "email", catalogue).get_template(name).render(context)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"email template {exc.name!r} not found in templates/email/") from None
    except jinja2.TemplateError as exc:
        where = f" line {exc.lineno}" if getattr(exc, "lineno", None) else ""
        raise TemplateError(f"templates/email/{name}{where}: {exc.message}") from None


def _mjml(settings: Settings, name: str, context: dict[str, Any]) -> str:
    source = _render(settings, name, context)
    try:
        html = mjml2html(source, disable_comments=True)
    except Exception as exc:  # mjml-python raises plain exceptions for invalid MJML
        raise TemplateError(f"templates/email/{name}: MJML could not be rendered: {exc}") from None
    # mj-image writes height="auto", which is not a valid value of the attribute; its style says the same.
    return _HEIGHT_AUTO.sub(r"\1", html)


_HEIGHT_AUTO = re.compile(r'(<img\b[^>]*?)\sheight="auto"')


def _absolute(url: str | None, settings: Settings) -> str:
    return urljoin(settings.site.base_url + "/", url) if url else ""


def _clean_line(text: str) -> str:
    return " ".join(text.split())


def _base_context(settings: Settings, *, language: str, subject: str, preheader: str, tokens: dict) -> dict[str, Any]:
    site = settings.site
    t = i18n.translations(language=language, settings=settings)
    return {
        "site": {
            "name": site.name,
            "base_url": site.base_url,
            "host": urlsplit(site.base_url).netloc,
            "logo": _absolute(site.logo, settings),
            "postal_address": site.postal_address,
        },
        "colors": _palette(site.brand_color),
        "language": language,
        "subject": subject,
        "preheader": preheader,
        "sender": settings.email.sender,
        "reason": t.gettext("You receive this email because you subscribed to press releases from %(site)s at %(host)s.")
        % {"site": site.name, "host": urlsplit(site.base_url).netloc},
        "footer_links": True,
        "proof": [],  # the links of an editors' proof (compose_release)
        "slot": {slot: token for (part, slot), token in tokens.items() if part == "html"},
        "text_slot": {slot: token for (part, slot), token in tokens.items() if part == "text"},
    }


def _greeting(settings: Settings, language: str) -> tuple[str, str]:
    t = i18n.translations(language=language, settings=settings)
    return t.gettext("Hello %(name)s,") % {"name": "{name}"}, t.gettext("Hello,")


def _both(settings: Settings, kind: str, context: dict[str, Any]) -> tuple[str, str]:
    html = _mjml(settings, f"{kind}.mjml.j2", context | {"slot": context["slot"]})
    text = _render(settings, f"{kind}.txt.j2", context | {"slot": context["text_slot"]})
    return html, text.strip() + "\n"


def _release_context(
    release: Release, settings: Settings, campaign: str, colors: dict[str, str], language: str
) -> dict[str, Any]:
    def utm(url: str) -> str:
        return _with_utm(url, settings=settings, campaign=campaign)

    from pressroom import images

    sized = images.sized_html(release.body_html, base_url=release.url, files=release.images, width=images.EMAIL_WIDTH)
    body = _style_body(_utm_html(sized, settings=settings, campaign=campaign), colors)
    about = _style_body(_utm_html(release.about_html, settings=settings, campaign=campaign), colors)
    return {
        "slug": release.slug,
        "title": release.title,
        "summary": release.summary,
        "date": i18n.format_date(moment=release.date, language=language, settings=settings),
        "date_iso": release.date.isoformat(),
        "url": utm(release.url),
        "plain_url": release.url,
        "hero": {"src": _email_hero(release), "alt": release.hero.alt} if release.hero else None,
        "body_html": body,
        "body_text": html_to_text(release.body_html),
        "about_html": about,
        "about_text": html_to_text(release.about_html),
        "contacts": [contact.model_dump() for contact in media_contacts(release=release)],
        "tags": list(release.tags),
        "downloads": [
            {"title": d.title, "url": utm(urljoin(release.url, d.name)), "kind": d.kind, "size": d.size_in(release.language)}
            for d in release.downloads
        ],
        "press_kit": utm(urljoin(release.url, PRESS_KIT)),
        **_issuers_context(release, settings, campaign, colors),
    }


_LOGO_HEIGHT = 48  # the EU emblem beside the logos is 56 px high: never less prominent than they are


def _issuers_context(release: Release, settings: Settings, campaign: str, colors: dict[str, str]) -> dict[str, Any]:
    """Co-issuers for the email: logos as absolute URLs on the site (the build copies them there)."""
    base = settings.site.base_url
    eu = eu_acknowledgement(release=release)
    return {
        "issuers": [
            {"name": issuer.name, "alt": issuer.alt, "website": issuer.website, "logo_url": f"{base}/{issuer.logo_path}",
             "logo_width": issuer.logo_width(_LOGO_HEIGHT), "logo_height": _LOGO_HEIGHT}
            for issuer in release.issuers
        ],
        "issuer_about": [
            {"html": _style_body(_utm_html(html, settings=settings, campaign=campaign), colors), "text": html_to_text(html)}
            for _, html in about_blocks(release=release, site_language=settings.site.language)
        ],
        "eu": eu and {
            "emblem_url": f"{base}/static/eu-emblem.png",
            "groups": [
                (statement, [{"project": issuer.label, "programme": g.programme, "grant": g.grant} for issuer, g in grants])
                for statement, grants in eu
            ],
        },
    }


def _email_hero(release: Release) -> str:
    """The hero's URL at most EMAIL_WIDTH wide: the copy the site build publishes beside the page, if one is needed."""
    from pressroom import images

    assert release.hero is not None
    file = release.hero.file
    if file is not None and images.variant(file, images.EMAIL_WIDTH):
        return release.url + images.sized_name(release.local_name(file), images.EMAIL_WIDTH)
    return release.hero.src


def compose_release(
    *, release: Release, settings: Settings, proof: Mapping[str, str] | None = None, language: str = ""
) -> Composed:
    """Render the email for one release, once; personalise it with ``Composed.message(recipient)``.

    ``language`` picks the release's version in that language (else the site language's); every
    fixed word is in the language of the version.

    The subject is the release's ``email.subject`` override when set, else its title.
    ``proof`` (label -> URL, e.g. Approve and Reject) makes the editors' proof instead: "[PROOF]"
    before the subject, a band on top with those links, no subscriber footer, no list headers.
    """
    tokens = new_tokens()
    release = release.version(language)
    language = release.language
    t = i18n.translations(language=language, settings=settings)
    subject = _clean_line(release.channel("email").subject or release.title)
    if proof is not None:
        subject = t.gettext("[PROOF] %(subject)s") % {"subject": subject}
    context = _base_context(settings, language=language, subject=subject, preheader=release.summary, tokens=tokens)
    context["release"] = _release_context(release, settings, release.slug, context["colors"], language)
    context["view_url"] = context["release"]["url"]
    key = release.slug
    if proof is not None:
        context["proof"] = [{"label": label, "url": url} for label, url in proof.items()]
        context["reason"] = t.gettext("This proof went to the editors of %(site)s only.") % {"site": settings.site.name}
        context["footer_links"] = False
        key = f"proof-{release.slug}-{release.digest[:8]}"  # never the Message-ID of the real email
    html, text = _both(settings, "release", context)
    return build_composed(
        key=key, subject=subject, html_body=html, text_body=text, tokens=tokens, settings=settings, bulk=proof is None,
        greeting=_greeting(settings, language),
    )


def digest_key(*, period_start: datetime, settings: Settings) -> str:
    """``digest-<ISO year>-W<week>`` of ``period_start`` in the site time zone: the digest's
    Message-ID root and ledger key, without rendering anything."""
    year, week, _ = period_start.astimezone(settings.site.tz).isocalendar()
    return f"digest-{year}-W{week:02d}"


def compose_digest(
    *, releases: Sequence[Release], settings: Settings, period_start: datetime, period_end: datetime, language: str = ""
) -> Composed:
    """Render the digest of ``releases`` (shown newest first) for the period, once, in ``language``
    (default: the site's).

    The key is ``digest-<ISO year>-W<week>`` of ``period_start`` in the site time zone.
    Raises ``ValueError`` when there is nothing to send or the period is not aware.
    """
    if not releases:
        raise ValueError("a digest needs at least one release; skip the digest when the period had none")
    if period_start.tzinfo is None or period_end.tzinfo is None or period_end <= period_start:
        raise ValueError("period_start and period_end must be timezone-aware, with the end after the start")
    key = digest_key(period_start=period_start, settings=settings)
    tokens = new_tokens()
    first = period_start.astimezone(settings.site.tz)
    # The end is exclusive (next Monday 00:00), so the last day shown is the day before it when at midnight.
    last = period_end.astimezone(settings.site.tz)
    if (last.hour, last.minute, last.second, last.microsecond) == (0, 0, 0, 0):
        last = last.fromordinal(last.toordinal() - 1).replace(tzinfo=last.tzinfo)
    language = language or settings.site.language
    period = i18n.format_period(first=first, last=last, language=language, settings=settings)
    heading = i18n.digest_subject(language=language, settings=settings)
    subject = _clean_line(f"{heading}, {period}")
    ordered = sorted(releases, key=lambda r: (r.date, r.slug), reverse=True)
    titles = "; ".join(r.title for r in ordered[:3])
    context = _base_context(settings, language=language, subject=subject, preheader=titles, tokens=tokens)
    context["period"] = period
    context["heading"] = _clean_line(heading)
    context["releases"] = [_release_context(r, settings, key, context["colors"], language) for r in ordered]
    context["view_url"] = _with_utm(settings.site.base_url + "/", settings=settings, campaign=key)
    html, text = _both(settings, "digest", context)
    return build_composed(
        key=key, subject=subject, html_body=html, text_body=text, tokens=tokens, settings=settings, bulk=True,
        greeting=_greeting(settings, language),
    )


_TRANSACTIONAL_SUBJECTS = {
    "confirm": N_("Confirm your subscription to %(site)s press releases"),
    "welcome": N_("Welcome: you now receive %(site)s press releases"),
    "unsubscribed": N_("You are unsubscribed from %(site)s press releases"),
}


def compose_transactional(
    *,
    kind: TransactionalKind,
    settings: Settings,
    action_url: str = "",
    cadence: str | None = None,
    topics: Sequence[str] = (),
    language: str = "",
    lang: str = "",
) -> Composed:
    """Render a subscription-flow email once: ``confirm``, ``welcome`` or ``unsubscribed``.

    Its button link is a personal slot: each recipient's ``Recipient.action_url`` (the signed
    confirm link; for ``unsubscribed``, where to subscribe again), else ``action_url`` here,
    else the site (a confirm email goes to no one without a link). So one composition serves
    every reader with the same choices; ``Recipient.message_key`` gives each email its own Message-ID.

    The welcome email says what the reader chose: ``cadence`` (``per-release`` or ``weekly``;
    without it the email makes no claim about it), ``topics`` (their names; none means every
    topic) and ``language`` (its label). ``lang`` is the language the email is written in
    (default: the site's).
    """
    if kind not in _TRANSACTIONAL_SUBJECTS:
        raise ValueError(f"unknown transactional email {kind!r}; use confirm, welcome or unsubscribed")
    if action_url and not re.fullmatch(r"https?://[^\s<>\"']+", action_url):
        raise ValueError(f"action_url {action_url[:80]!r} is not an absolute http(s) URL")
    now = datetime.now(UTC)
    # Unique per composition: the Message-ID root of emails that bring no message_key of their own.
    nonce = hashlib.blake2b(f"{action_url}\n{now.isoformat()}".encode(), digest_size=4).hexdigest()
    key = f"{kind}-{now:%Y%m%dT%H%M%S}-{nonce}"
    tokens = new_tokens()
    lang = lang or settings.site.language
    t = i18n.translations(language=lang, settings=settings)
    site = settings.site.name
    subject = t.gettext(_TRANSACTIONAL_SUBJECTS[kind]) % {"site": _clean_line(site)}
    context = _base_context(settings, language=lang, subject=subject, preheader="", tokens=tokens)
    context["kind"] = kind
    context["footer_links"] = kind == "welcome"
    context["chosen"] = {"cadence": cadence, "topics": [_clean_line(t) for t in topics], "language": _clean_line(language)}
    context["reason"] = {
        "confirm": t.gettext(
            "You receive this email because someone asked to subscribe this address to press releases"
            " from %(site)s. If it was not you, ignore it: nothing will be sent without your confirmation."
        ) % {"site": site},
        "welcome": context["reason"],
        "unsubscribed": t.gettext(
            "You receive this email to confirm that this address was removed from the"
            " %(site)s press list. We will not email it again unless you subscribe again."
        ) % {"site": site},
    }[kind]
    context["view_url"] = ""  # nothing to view online: these emails exist only in the inbox
    preheader = {
        "confirm": N_("One click and you will receive our press releases."),
        "welcome": N_("Your subscription is confirmed."),
        "unsubscribed": N_("You will not receive further press releases from us."),
    }[kind]
    context["preheader"] = t.gettext(preheader)
    html, text = _both(settings, kind, context)
    return build_composed(
        key=key, subject=subject, html_body=html, text_body=text, tokens=tokens, settings=settings,
        bulk=kind == "welcome", action_url=action_url or ("" if kind == "confirm" else settings.site.base_url + "/"),
        greeting=_greeting(settings, lang),
    )


def embargo_until(moment: datetime, settings: Settings, language: str = "") -> str:
    """``2 December 2026, 09:00 CET (08:00 UTC)``: the instant in the site time zone, then UTC, in
    ``language`` (default: the site's)."""
    language = language or settings.site.language
    t = i18n.translations(language=language, settings=settings)
    local, utc = moment.astimezone(settings.site.tz), moment.astimezone(UTC)
    values = {"date": i18n.format_date(moment=local, language=language, settings=settings),
              "time": f"{local:%H:%M %Z}", "utc": f"{utc:%H:%M}"}
    if utc.date() == local.date():
        return t.gettext("%(date)s, %(time)s (%(utc)s UTC)") % values
    day = i18n.format_date(moment=utc, language=language, settings=settings, year=False, zone=UTC)
    return t.gettext("%(date)s, %(time)s (%(utc)s UTC on %(day)s)") % (values | {"day": day})


def _media_email(*, settings: Settings, kind: str, headline: str, subject: str, paragraph: str, release: dict[str, Any],
                 language: str, key: str, proof: Mapping[str, str] | None) -> Composed:
    t = i18n.translations(language=language, settings=settings)
    tokens = new_tokens()
    subject = _clean_line(subject)
    if proof is not None:
        subject = t.gettext("[PROOF] %(subject)s") % {"subject": subject}
    context = _base_context(settings, language=language, subject=subject, preheader=headline, tokens=tokens)
    context["release"] = release
    context["embargo"] = {"kind": kind, "headline": headline, "paragraphs": [paragraph]}
    context["view_url"] = ""  # the public page does not exist yet
    context["footer_links"] = False  # a journalist has no preferences page: the opt-out link is in the email
    context["reason"] = t.gettext(
        "You receive this email because you are on the media list of %(site)s. One click on the link above takes you off it."
    ) % {"site": settings.site.name}
    if proof is not None:
        context["proof"] = [{"label": label, "url": url} for label, url in proof.items()]
        context["reason"] = t.gettext("This proof went to the editors of %(site)s only.") % {"site": settings.site.name}
        key = f"proof-{key}"
    html, text = _both(settings, "embargo", context)
    # An editor has no preview link of their own: the proof's button shows where the journalists' goes.
    return build_composed(key=key, subject=subject, html_body=html, text_body=text, tokens=tokens, settings=settings,
                          bulk=proof is None, action_url="" if proof is None else f"{settings.site.base_url}/preview/",
                          greeting=_greeting(settings, language))


def compose_embargo(*, release: Release, settings: Settings, moved: bool = False,
                    proof: Mapping[str, str] | None = None, language: str = "") -> Composed:
    """The media list's email of ``release`` before its date, rendered once: embargoed until
    its date, or (``moved``) the embargo moved to its new date. Each journalist's preview link
    is the action slot (``Recipient.action_url``), their opt-out the unsubscribe slot
    (one-click, RFC 8058). ``proof`` (label -> URL) makes the editors' proof of it.
    ``language`` picks the release's version in it (else the site language's) and its words.
    """
    release = release.version(language)
    language = release.language
    t = i18n.translations(language=language, settings=settings)
    until = embargo_until(release.date, settings, language)
    if moved:
        headline = t.gettext("EMBARGO MOVED TO %(until)s") % {"until": until}
        paragraph = t.gettext(
            "The embargo of this release now ends at %(until)s. Please do not publish anything of it before then."
        ) % {"until": until}
    else:
        headline = t.gettext("EMBARGOED UNTIL %(until)s") % {"until": until}
        paragraph = t.gettext(
            "This release is under embargo: please do not publish or share anything of it before %(until)s."
            " Your personal preview link below, with the photos, is for you alone."
        ) % {"until": until}
    key = f"{'moved' if moved else 'embargo'}-{release.slug}-{int(release.date.timestamp())}"
    if proof is not None:
        key += f"-{release.digest[:8]}"
    colors = _palette(settings.site.brand_color)
    return _media_email(
        settings=settings, kind="moved" if moved else "embargo", headline=headline, subject=f"{headline}: {release.title}",
        paragraph=paragraph, release=_release_context(release, settings, f"embargo-{release.slug}", colors, language),
        language=language, key=key, proof=proof,
    )


def compose_withdrawn(*, slug: str, title: str, settings: Settings, language: str = "") -> Composed:
    """"Withdrawn: please do not publish", to the journalists who had the embargoed release
    (its file may be gone: only its slug and title are needed), in ``language`` (default: the site's)."""
    language = language or settings.site.language
    t = i18n.translations(language=language, settings=settings)
    return _media_email(
        settings=settings, kind="withdrawn", headline=t.gettext("WITHDRAWN: PLEASE DO NOT PUBLISH"),
        subject=t.gettext("WITHDRAWN: please do not publish: %(title)s") % {"title": title},
        paragraph=t.gettext(
            "We have withdrawn this release. Please do not publish anything of it, and delete what we sent you."
        ),
        release={"title": title, "slug": slug}, language=language, key=f"withdrawn-{slug}", proof=None,
    )


def compose_follow_up(*, release: Release, settings: Settings, kind: Literal["correction", "withdrawal"], note: str,
                      date: datetime, number: int = 0, language: str = "") -> Composed:
    """A short email after publication to the readers of ``release``: one correction note, or its withdrawal,
    in ``language`` (the release's version in it, else the site language's).

    Its Message-ID root is its own (``<slug>-correction-<number>``, ``<slug>-withdrawal``), the same on every rerun.
    """
    tokens = new_tokens()
    release = release.version(language)
    language = release.language
    t = i18n.translations(language=language, settings=settings)
    title = _clean_line(release.title)
    subject = (t.gettext("Correction: %(title)s") if kind == "correction" else t.gettext("Withdrawn: %(title)s")) % {"title": title}
    context = _base_context(settings, language=language, subject=subject, preheader=_clean_line(note), tokens=tokens)
    context["notice"] = {"title": title, "note": _clean_line(note),
                         "date": i18n.format_date(moment=date, language=language, settings=settings), "url": release.url,
                         "published": i18n.format_date(moment=release.date, language=language, settings=settings)}
    context["view_url"] = release.url if kind == "correction" else ""
    html, text = _both(settings, kind, context)
    key = f"{release.slug}-correction-{number}" if kind == "correction" else f"{release.slug}-withdrawal"
    return build_composed(key=key, subject=subject, html_body=html, text_body=text, tokens=tokens, settings=settings, bulk=True,
                          greeting=_greeting(settings, language))
