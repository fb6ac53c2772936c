"""Blocks: what every imported document becomes, and reading text and Markdown into them.

A :class:`Block` is a heading, paragraph, list, quote, table or picture whose text is Markdown;
``readers`` makes them from Word and OpenDocument files, :func:`text_blocks` from text files. The
helpers at the end write Word's text as Markdown (escaped, its bare web addresses as links) and
read Markdown back as the words a reader sees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["IMAGE_TYPES", "Block", "Picture", "escape", "linkify", "linkify_markdown", "plain", "sniff", "text_blocks", "word_line"]

# A picture beside a Markdown file is read only up to this size (a Word file's limit, readers.MAX_DOCUMENT_BYTES).
_MAX_PICTURE_BYTES = 25_000_000
# What browsers and email clients show; Windows metafiles and TIFFs from Word are not among them.
IMAGE_TYPES = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp"}


@dataclass
class Picture:
    """An image of the document: its bytes, the type they are, the document's alt text."""

    data: bytes
    suffix: str  # ".png"; "" when browsers cannot show it (kept out of the draft)
    alt: str
    kind: str  # what it is, for the one line that says why it was left out ("image/x-emf")
    name: str = ""  # the file name in the bundle, given when the draft is written


@dataclass
class Block:
    """One block of the document. ``lines`` hold Markdown: a paragraph's or heading's lines, a list's
    item lines (marker and indent included), a quote's or table's lines without the ``>``."""

    kind: Literal["heading", "paragraph", "list", "quote", "table", "picture", "code"]
    lines: list[str]
    level: int = 0
    hard_breaks: bool = False  # lines were separate lines in the document (Word's Shift+Enter)
    picture: Picture | None = None
    pictures: list[Picture] = field(default_factory=list)  # pictures inside a table's cells

    @property
    def plain_lines(self) -> list[str]:
        return [plain(line) for line in self.lines]

    def markdown(self) -> str:
        if self.kind == "heading":
            return "#" * self.level + " " + " ".join(self.lines)
        if self.kind == "quote":
            return "\n".join(f"> {line}".rstrip() for line in self.lines)
        if self.kind == "picture" and self.picture is not None:
            return f"![{escape(self.picture.alt)}]({self.picture.name})"
        return ("\\\n" if self.hard_breaks else "\n").join(self.lines)


def sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/other"


# --------------------------------------------------------------------------- text and Markdown

_BULLET = re.compile(r"^(\s*)(?:[-*+•◦▪·–—]|o(?=\t))[ \t]+(?=\S)")
_NUMBERED = re.compile(r"^(\s*)(\d{1,3})[.)][ \t]+(?=\S)")
_HEADING = re.compile(r"^(#{1,6})(?:[ \t]+(.*?))?[ \t#]*$")
_PICTURE = re.compile(r"^!\[([^\]]*)\]\(<?([^)>\s]+)>?(?:\s+\"[^\"]*\")?\)$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_RULE = re.compile(r"^\s*([-=_*])(?:\s*\1){2,}\s*$")


def text_blocks(text: str, *, markdown: bool, folder: Path | None = None,
                pictures: dict[str, Picture] | None = None) -> list[Block]:
    """Blocks of a text file (read as Markdown: its ``**bold**`` stays bold) or of odfdo's Markdown.

    A pasted text keeps Word's bullets (•, –, "o" and a tab) and its tabs and indents, which would make
    Markdown code blocks: those are turned into list markers and dropped.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    chunks: list[list[str]] = [[]]
    fenced = False
    for raw in lines:
        if _FENCE.match(raw):
            fenced = not fenced
        if fenced or _FENCE.match(raw):
            chunks[-1].append(raw)
            continue
        bullet = _BULLET.match(raw)
        line = raw
        if bullet:
            line = bullet.group(1) + "- " + raw[bullet.end():]
        line = line.replace("\t", " ").rstrip()
        if not markdown:
            line = line.lstrip()
        if not line.strip():
            if chunks[-1]:
                chunks.append([])
            continue
        chunks[-1].append(line)
    blocks: list[Block] = []
    for chunk in chunks:
        if chunk:
            blocks += _chunk_blocks(chunk, folder=folder, pictures=pictures or {}, markdown_headings=markdown)
    return blocks


def _chunk_blocks(chunk: list[str], *, folder: Path | None, pictures: dict[str, Picture],
                  markdown_headings: bool) -> list[Block]:
    if _FENCE.match(chunk[0]):
        return [Block("code", chunk)]
    blocks: list[Block] = []
    run: list[str] = []
    kind = ""

    def flush() -> None:
        if run:
            blocks.append(_run_block(kind, run))
            run.clear()

    for line in chunk:
        if _RULE.match(line):
            if run and kind == "paragraph" and _RULE.match(line).group(1)[0] in "=-" and markdown_headings:
                title = run.pop()  # a Markdown "setext" heading: the line above, underlined
                flush()
                blocks.append(Block("heading", [title.strip()], level=1 if line.strip()[0] == "=" else 2))
            continue  # otherwise a line drawn with dashes or stars, which no reader needs
        heading = _HEADING.match(line.strip())
        picture = _PICTURE.match(line.strip())
        if heading:
            flush()
            if heading.group(2):
                blocks.append(Block("heading", [heading.group(2).strip()], level=len(heading.group(1))))
            continue
        if picture:
            flush()
            found = _local_picture(picture.group(2), picture.group(1), folder, pictures)
            blocks.append(Block("picture", [], picture=found) if found else Block("paragraph", [line.strip()]))
            continue
        line_kind = _line_kind(line, after=kind)
        if line_kind != kind:
            flush()
            kind = line_kind
        run.append(line)
    flush()
    return blocks


def _line_kind(line: str, *, after: str) -> str:
    """What block a line of text belongs to: list, quote, table or paragraph (``after``: the kind of the line above)."""
    if _BULLET.match(line) or _NUMBERED.match(line):
        return "list"
    if line.lstrip().startswith(">"):
        return "quote"
    if line.lstrip().startswith("|"):
        return "table"
    if after == "list" and line.startswith(" "):
        return "list"  # an item's continuation
    return "paragraph"


def _run_block(kind: str, run: list[str]) -> Block:
    """The block a run of lines of one kind makes."""
    if kind == "list":
        indent = min(len(line) - len(line.lstrip()) for line in run)
        return Block("list", [_list_line(line[indent:]) for line in run])
    if kind == "quote":
        return Block("quote", [re.sub(r"^\s*>\s?", "", line) for line in run])
    return Block(kind if kind == "table" else "paragraph", [line.strip() for line in run])


def _list_line(line: str) -> str:
    bullet = _BULLET.match(line)
    if bullet:
        return f"{bullet.group(1)}- {line[bullet.end():].strip()}"
    numbered = _NUMBERED.match(line)
    if numbered:
        return f"{numbered.group(1)}{numbered.group(2)}. {line[numbered.end():].strip()}"
    return line.rstrip()


def _local_picture(reference: str, alt: str, folder: Path | None, pictures: dict[str, Picture]) -> Picture | None:
    if reference in pictures:
        found = pictures[reference]
        found.alt = found.alt or ("" if alt == "image" else alt)
        return found
    if folder is None or re.match(r"^[a-z]+:", reference):
        return None
    target = (folder / reference).resolve()
    if not target.is_relative_to(folder.resolve()) or not target.is_file() or target.stat().st_size > _MAX_PICTURE_BYTES:
        return None
    content = target.read_bytes()
    kind = sniff(content)
    return Picture(data=content, suffix=IMAGE_TYPES.get(kind, ""), alt=alt, kind=kind)


# --------------------------------------------------------------------------- Markdown text helpers

_ESCAPED = re.compile(r"([\\`*_\[\]<>])")

# www.example.eu, https://example.eu/page: not inside a word, an address or a link already.
_URL = re.compile(r"(?<![\w@/.\-])((?:https?://|www\.)[\w-]+(?:\.[\w-]+)+(?:[/?#][^\s<>]*)?)", re.IGNORECASE)
_LINK = re.compile(r"!?\[[^\]]*\]\([^)]*\)|<https?://[^>]+>")


def escape(text: str) -> str:
    """Text from Word as Markdown that shows it as it was (a ``*`` stays a star)."""
    return _ESCAPED.sub(r"\\\1", text)


def word_line(line: str) -> str:
    """One line of Word text as Markdown: tabs and runs of spaces as one space, a typed bullet ("• ", "- ")
    as a list marker, a leading ``#`` as text rather than a heading."""
    line = " ".join(line.split())
    bullet = _BULLET.match(line)
    if bullet:
        return "- " + line[bullet.end():]
    return "\\" + line if line.startswith("#") else line


def _url_parts(text: str) -> list[tuple[str, str]]:
    """``text`` cut into ("text", …) and ("url", …) pieces; trailing punctuation stays text."""
    parts: list[tuple[str, str]] = []
    position = 0
    for match in _URL.finditer(text):
        url = match.group(1)
        trimmed = url.rstrip(".,;:!?)'\"’”")
        parts.append(("text", text[position:match.start()]))
        parts.append(("url", trimmed))
        position = match.start() + len(trimmed)
    parts.append(("text", text[position:]))
    return parts


def linkify(text: str) -> str:
    """Word's text escaped as Markdown, its bare web addresses made links: www.x.eu -> [www.x.eu](https://www.x.eu)."""
    return "".join(escape(piece) if kind == "text" else _link_for(piece, escape(piece)) for kind, piece in _url_parts(text))


def linkify_markdown(line: str) -> str:
    """The bare web addresses of a Markdown line made links, leaving its links alone."""
    out: list[str] = []
    position = 0
    for match in _LINK.finditer(line):
        out.append(_linkify_plain(line[position:match.start()]))
        out.append(match.group(0))
        position = match.end()
    out.append(_linkify_plain(line[position:]))
    return "".join(out)


def _linkify_plain(text: str) -> str:
    return "".join(piece if kind == "text" else _link_for(piece, piece) for kind, piece in _url_parts(text))


def _link_for(url: str, shown: str) -> str:
    href = url if re.match(r"https?://", url, re.IGNORECASE) else f"https://{url}"
    return f"[{shown}]({href})"


_MARKUP = re.compile(r"\*\*|\*|~~|</?su[bp]>|\\(?=[\\`*_\[\]<>#>+\-.|!])")
_LINK_TEXT = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def plain(line: str) -> str:
    """A Markdown line as the words a reader sees: no emphasis marks, links as their text."""
    return _MARKUP.sub("", _LINK_TEXT.sub(r"\1", line)).strip()
