"""The text rules, one function each: a slug, clean text, Markdown -> safe HTML, HTML -> text.

Every room that turns a release into words (the site, the feeds, emails, posts, the press kit)
takes them from here, so a rule changes in one place. The only module that imports
the Markdown parser (markdown-it-pyrs), the sanitiser (nh3) and the HTML parser (selectolax).
All three are compiled: parsing, sanitising and reading back HTML were most of a build's time.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache
from typing import Literal
from urllib.parse import urljoin, urlsplit

import nh3
from markdown_it_pyrs import MarkdownIt
from selectolax.lexbor import LexborHTMLParser, LexborNode

__all__ = [
    "ALIGN_CLASSES", "LANGUAGE_RE", "SLUG_RE", "cell_alignment", "clean_text", "html_to_text", "render_about", "render_markdown",
    "slugify",
]

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")
# Characters XML 1.0 forbids (they make readers reject a feed) and C1 controls, which no one types.
_ILLEGAL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")


def slugify(text: str) -> str:
    """``"Raw Materials & Batteries"`` -> ``"raw-materials-batteries"`` (ASCII, lowercase)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def clean_text(text: str) -> str:
    """Drop characters that XML forbids or that no one types on purpose."""
    return _ILLEGAL_CHARS.sub("", text)


# --------------------------------------------------------------------------- Markdown -> safe HTML


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # markdown-it's own rules (CommonMark with GFM tables and strikethrough), compiled: a twentieth of the time
    # of markdown-it-py, and the same HTML on every release the tests hold.
    return MarkdownIt("commonmark").enable_many(["table", "strikethrough"])


#: The class a ``---:`` / ``:---:`` column's cells get: the sanitiser drops every style attribute (it would let a
#: release restyle the page) and ``align`` is obsolete HTML; the site's stylesheet and the email's inline styles
#: (pressroom.mail.style) align by these.
ALIGN_CLASSES = {"left": "align-left", "right": "align-right", "center": "align-center"}
_ALIGNED = {name: alignment for alignment, name in ALIGN_CLASSES.items()}
# The parser writes an aligned column's cells exactly so; the sanitiser, next, keeps only these classes.
_ALIGNED_CELL = re.compile(r'<(t[hd]) style="text-align:(left|right|center)">')


def _cell_alignment(html: str) -> str:
    if "text-align:" not in html:
        return html  # no aligned table: most releases
    return _ALIGNED_CELL.sub(lambda match: f'<{match[1]} class="{ALIGN_CLASSES[match[2]]}">', html)


def cell_alignment(classes: str | None) -> str:
    """``left``, ``right`` or ``center``: how a table cell of a release body is aligned, by its ``class``."""
    for name in (classes or "").split():
        if name in _ALIGNED:
            return _ALIGNED[name]
    return "left"


_URL_ATTRIBUTES = {("a", "href"), ("img", "src")}
# ammonia's attributes without the obsolete ones (align, char, charoff, summary, hr's size and width): the Nu
# HTML checker refuses them, and a release's raw HTML should not bring them onto a page.
_OBSOLETE = {"align", "char", "charoff", "summary", "size"}
_ATTRIBUTES = {
    tag: {name for name in names if name not in _OBSOLETE and not (tag == "hr" and name == "width")}
    for tag, names in nh3.ALLOWED_ATTRIBUTES.items()
}
_CELL_CLASSES = {"th": set(ALIGN_CLASSES.values()), "td": set(ALIGN_CLASSES.values())}


def render_markdown(text: str, *, base_url: str) -> tuple[str, list[str]]:
    """CommonMark -> sanitised HTML with absolute URLs, and the relative URLs it referenced.

    Raw HTML is allowed in the source but passes through nh3 (ammonia): no script or style
    element, no event handler attribute, no ``javascript:`` URL survives.
    """
    relative: list[str] = []
    _CALL.base_url, _CALL.relative = base_url, relative
    return _cleaner().clean(_cell_alignment(_markdown().render(text))), relative


# What one render_markdown call is making absolute, for the sanitiser's filter (which is made once: a sanitiser
# made per call, with its tables of tags and attributes, took a third of the time of sanitising).
_CALL = threading.local()


def _absolutise(tag: str, attribute: str, value: str) -> str | None:
    if (tag, attribute) in _URL_ATTRIBUTES and value and not value.startswith("#"):
        parts = urlsplit(value)
        if not parts.scheme and not parts.netloc:
            _CALL.relative.append(value)
            return urljoin(_CALL.base_url, value)
    return value


@lru_cache(maxsize=1)
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        attributes=_ATTRIBUTES,
        allowed_classes=_CELL_CLASSES,
        attribute_filter=_absolutise,
        url_schemes={"http", "https", "mailto", "tel"},
        link_rel="noopener",
    )


def render_about(text: str, *, base_url: str) -> str:
    """An About boilerplate as safe HTML. It is the same text in nearly every release: rendered once,
    unless it has relative links, which differ with each release's URL."""
    html, relative = _render_once(text)
    return render_markdown(text, base_url=base_url)[0] if relative else html


@lru_cache(maxsize=16)
def _render_once(text: str) -> tuple[str, tuple[str, ...]]:
    html, relative = render_markdown(text, base_url="")  # the base only ever joins relative links
    return html, tuple(relative)


# --------------------------------------------------------------------------- HTML -> text


#: How wide the text of an email or a press kit is.
TEXT_WIDTH = 72
_BLOCKS = frozenset({"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "table", "tr"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_CELLS = frozenset({"td", "th"})


def html_to_text(fragment: str, *, layout: Literal["blocks", "line"] = "blocks") -> str:
    """Plain text of a sanitised HTML fragment.

    ``blocks`` (emails, the press kit): paragraphs, lists, quotes and tables laid out and wrapped at
    72 columns, headings in capitals, links shown as ``<url>``, images as ``[alt]``. ``line`` (a
    derived summary, a meta description): the words on one line; a block, a line break or an image
    parts words, an inline tag (``**bold**``, a link) does not, so "**the HUB**." stays "the HUB.".
    """
    return _read(_LineWriter(), fragment) if layout == "line" else _blocks(fragment)


@lru_cache(maxsize=64)  # the About boilerplates recur in every release, email and press kit
def _blocks(fragment: str) -> str:
    return _read(_TextWriter(), fragment)


def _read(writer: _LineWriter | _TextWriter, fragment: str) -> str:
    body = LexborHTMLParser(fragment).body
    if body is not None:
        _walk(writer, body)
    return writer.text()


# The only tags whose attributes a writer reads (a cell's alignment, a link's target, an image's alt text).
_READ_ATTRIBUTES = frozenset({"a", "img", "td", "th"})
_NONE: dict[str, str | None] = {}


def _walk(writer: _LineWriter | _TextWriter, node: LexborNode) -> None:
    """Hand the writer the tree under ``node`` as a stream: a start tag, what is inside, the end tag."""
    for child in node.iter(include_text=True):
        tag = child.tag
        if tag == "-text":
            writer.handle_data(child.text_content or "")
        elif tag and tag[0] != "-":  # not a comment
            writer.handle_starttag(tag, child.attributes if tag in _READ_ATTRIBUTES else _NONE)
            _walk(writer, child)
            writer.handle_endtag(tag)


@lru_cache(maxsize=256)
def _line_pattern(width: int) -> re.Pattern[str]:
    # The most words that fit in ``width`` (followed by a space or the end), else one word longer than the line.
    return re.compile(rf"(.{{1,{max(width, 1)}}}|\S+)(?: |$)")


def _fill(text: str, width: int, first: str, rest: str) -> str:
    """``textwrap.fill(text, width, initial_indent=first, subsequent_indent=rest, break_long_words=False,
    break_on_hyphens=False)`` for single-spaced text, in a tenth of the time (it runs on every paragraph of
    every email's and press kit's text). A word longer than the line stands alone on its own line."""
    lines: list[str] = []
    indent, position = first, 0
    while position < len(text):
        line = _line_pattern(width - len(indent)).match(text, position)
        assert line is not None, "a word always matches"
        lines.append(indent + line[1])
        indent, position = rest, line.end()
    return "\n".join(lines)


#: Tags inside a line of text: they part no words (a browser shows "<b>HUB</b>." as "HUB.").
_INLINE = frozenset({
    "a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "del", "dfn", "em", "i", "ins", "kbd", "mark", "q", "s",
    "samp", "small", "span", "strike", "strong", "sub", "sup", "time", "tt", "u", "var",
})


_Attributes = dict[str, str | None]


class _LineWriter:
    """The ``line`` layout: every tag but an inline one is a word break, white space is folded."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: _Attributes) -> None:
        if tag not in _INLINE:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag not in _INLINE:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def text(self) -> str:
        return " ".join("".join(self.parts).split())


class _TextWriter:
    """The ``blocks`` layout: readable plain text (paragraphs, lists, quotes, tables, links)."""

    def __init__(self) -> None:
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
        wrapped = _fill(text, TEXT_WIDTH, quote + lead, quote + " " * len(lead))
        self.blocks.append((wrapped, bool(prefix)))

    def handle_starttag(self, tag: str, attrs: _Attributes) -> None:
        if tag in _CELLS:
            self.cell_align = cell_alignment(attrs.get("class"))
        if tag in _BLOCKS or tag == "li":
            self._flush()
        opener = self._OPENERS.get(tag)
        if opener is not None:
            opener(self, tag, attrs)

    def _open_heading(self, tag: str, attrs: _Attributes) -> None:
        self.heading = True

    def _open_quote(self, tag: str, attrs: _Attributes) -> None:
        self.quote += 1

    def _open_list(self, tag: str, attrs: _Attributes) -> None:
        self.lists.append([tag == "ol", 0])

    def _open_item(self, tag: str, attrs: _Attributes) -> None:
        if self.lists:
            self.lists[-1][1] += 1

    def _open_break(self, tag: str, attrs: _Attributes) -> None:
        self.line.append("\n")

    def _open_link(self, tag: str, attrs: _Attributes) -> None:
        self.links.append(attrs.get("href") or "")

    def _open_image(self, tag: str, attrs: _Attributes) -> None:
        alt = attrs.get("alt") or ""
        if alt:
            self.line.append(f"[{alt}]")

    def _open_table(self, tag: str, attrs: _Attributes) -> None:
        self.rows = []

    def _open_row(self, tag: str, attrs: _Attributes) -> None:
        if self.rows is not None:
            self.rows.append([])

    def _open_cell(self, tag: str, attrs: _Attributes) -> None:
        self.outside, self.line = self.line, []

    def handle_endtag(self, tag: str) -> None:
        closer = self._CLOSERS.get(tag)
        if closer is not None:
            closer(self, tag)

    def _close_cell(self, tag: str) -> None:
        if self.rows:
            text = " ".join("".join(self.line).split())
            self.rows[-1].append((text, self.cell_align, tag == "th"))
            self.line = self.outside

    def _close_table(self, tag: str) -> None:
        if self.rows is not None:
            self.blocks.append((_table_text([row for row in self.rows if row]), False))
            self.rows = None

    def _close_item(self, tag: str) -> None:
        ordered, counter = self.lists[-1] if self.lists else (False, 0)
        self._flush(f"{counter}. " if ordered else "- ")

    def _close_block(self, tag: str) -> None:
        self._flush()
        self.heading = False

    def _close_quote(self, tag: str) -> None:
        self._flush()
        self.quote = max(self.quote - 1, 0)

    def _close_list(self, tag: str) -> None:
        self._flush()
        if self.lists:
            self.lists.pop()

    def _close_anchor(self, tag: str) -> None:
        if self.links:
            self._close_link(self.links.pop())

    def _close_link(self, href: str) -> None:
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

    _OPENERS = {
        **dict.fromkeys(_HEADINGS, _open_heading),
        "blockquote": _open_quote,
        "ul": _open_list,
        "ol": _open_list,
        "li": _open_item,
        "br": _open_break,
        "a": _open_link,
        "img": _open_image,
        "table": _open_table,
        "tr": _open_row,
        "td": _open_cell,
        "th": _open_cell,
    }
    _CLOSERS = {
        **dict.fromkeys(_CELLS, _close_cell),
        "table": _close_table,
        "li": _close_item,
        **dict.fromkeys((*_HEADINGS, "p", "div", "tr"), _close_block),
        "blockquote": _close_quote,
        "ul": _close_list,
        "ol": _close_list,
        "a": _close_anchor,
    }


def _table_text(rows: list[list[tuple[str, str, bool]]]) -> str:
    """A table as aligned columns under a dashed header rule; as "header: value" lines per row
    when the columns would not fit in 72 characters."""
    columns = max((len(row) for row in rows), default=0)
    rows = [row + [("", "left", False)] * (columns - len(row)) for row in rows]
    header = rows[0] if rows and all(is_header for _, _, is_header in rows[0]) else None
    body = rows[1:] if header else rows
    widths = [max(len(row[index][0]) for row in rows) for index in range(columns)]
    if sum(widths) + 2 * (columns - 1) > TEXT_WIDTH and header:
        return _table_records(header, body)
    pad = {"right": str.rjust, "center": str.center}
    lines = [
        "  ".join(pad.get(align, str.ljust)(text, width) for (text, align, _), width in zip(row, widths)).rstrip()
        for row in rows
    ]
    if header:
        lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _table_records(header: list[tuple[str, str, bool]], body: list[list[tuple[str, str, bool]]]) -> str:
    """A table too wide for the text: each row as "header: value" lines, rows apart."""
    names = [text for text, _, _ in header]

    def record(row: list[tuple[str, str, bool]]) -> str:
        fields = (f"{name}: {text}" if name else text for name, (text, _, _) in zip(names, row) if text)
        return "\n".join(_fill(field, TEXT_WIDTH, "", "  ") for field in fields)

    return "\n\n".join(record(row) for row in body)
