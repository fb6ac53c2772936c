"""Documents to blocks: ``.docx`` (mammoth), ``.odt`` (odfdo), ``.txt`` and ``.md``.

The only home of mammoth and odfdo. Every document becomes the same thing, a list of
:class:`Block` (headings, paragraphs, lists, quotes, tables, pictures) whose text is Markdown,
so what is guessed from it afterwards (title, dateline, contacts, partners) is written once.

A file that cannot become a draft is refused here, before anything is written, with one
:class:`~pressroom.errors.DocumentError` line: empty, too big, damaged, protected by a password,
carrying macros, or of a kind Word can save as ``.docx`` instead.
"""

from __future__ import annotations

import io
import re
import zipfile
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Any

from pressroom.errors import DocumentError
from pressroom.importer.blocks import (
    IMAGE_TYPES,
    Block,
    Picture,
    escape,
    linkify,
    sniff,
    text_blocks,
    word_line,
)
from pressroom.releases import MAX_FILE_BYTES

__all__ = ["MAX_DOCUMENT_BYTES", "SUFFIXES", "read_document"]

SUFFIXES = (".docx", ".odt", ".txt", ".md", ".markdown")
_MARKDOWN = (".md", ".markdown")
# Word files carry their pictures: a release with a few photos is a few MB; past this it is not a release.
MAX_DOCUMENT_BYTES = 25_000_000
# What a .docx or .odt may unpack to: a small file that inflates to gigabytes is an attack, not a release.
MAX_UNPACKED_BYTES = 200_000_000
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the compound file of .doc and of every password-protected Office file
_SAVE_AS_DOCX = "open it in Word (or LibreOffice) and save it as a Word document (.docx), then import that"
_FROM_PDF = "ask for the Word file it was made from, or copy its text into a .txt file and import that"
_ALIENS = {
    ".doc": ("an old Word 97-2003 document", _SAVE_AS_DOCX),
    ".rtf": ("a Rich Text document", _SAVE_AS_DOCX),
    ".pages": ("a Pages document", "in Pages: File > Export To > Word, then import the .docx"),
    ".wps": ("a Works document", _SAVE_AS_DOCX),
    ".pdf": ("a PDF", _FROM_PDF),
    ".html": ("a web page", "copy its text into a .txt file and import that"),
    ".htm": ("a web page", "copy its text into a .txt file and import that"),
}
_MACRO_SUFFIXES = {".docm", ".dotm"}


def read_document(path: Path) -> tuple[list[Block], str]:
    """The blocks of the document at ``path`` and a note on how it was read ("" when nothing to say).

    Raises :class:`DocumentError` when the file cannot become a draft; nothing is written either way.
    """
    suffix = path.suffix.lower()
    _refuse_by_name_and_size(path, suffix)
    data = path.read_bytes()
    if suffix == ".txt" or suffix in _MARKDOWN:
        text, note = _decode(data, path)
        if suffix in _MARKDOWN and text.lstrip("\ufeff").startswith("---"):
            raise DocumentError(
                "the file has front matter already: it is a release, not a document to import", path=path,
                hint=f"copy it into content/releases/ as {path.stem}.md, and run `pressroom check`",
            )
        blocks = text_blocks(text, markdown=suffix in _MARKDOWN, folder=path.parent)
    else:
        archive = _open_archive(data, path)
        blocks = _read_odt(data, archive, path) if suffix == ".odt" else _read_docx(data, archive, path)
        note = ""
    if not any(block.kind != "picture" and "".join(block.plain_lines).strip() for block in blocks):
        raise DocumentError("the document has no text", path=path, hint="is this the right file? save it again with the text in it")
    return blocks, note


# --------------------------------------------------------------------------- refusals


def _refuse_by_name_and_size(path: Path, suffix: str) -> None:
    """Refuse, before reading a byte, a file that is missing, of a kind Pressroom does not import, empty or too large."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DocumentError(f"cannot read the file: {exc.strerror}", path=path, hint="check the name and the folder") from None
    if suffix in _MACRO_SUFFIXES:
        raise _macros(path)
    if suffix in _ALIENS:
        what, hint = _ALIENS[suffix]
        raise DocumentError(f"the file is {what}, which Pressroom does not import", path=path, hint=hint)
    if suffix not in SUFFIXES:
        raise DocumentError(
            f"Pressroom imports {', '.join(SUFFIXES)} files, not {suffix or 'files without an extension'}",
            path=path, hint=_SAVE_AS_DOCX,
        )
    if size == 0:
        raise DocumentError("the file is empty", path=path, hint="save the document again and import the saved file")
    limit = MAX_DOCUMENT_BYTES if suffix in (".docx", ".odt") else MAX_FILE_BYTES
    if size > limit:
        hint = ("make the pictures smaller (Word: File > Compress Pictures) or send them separately"
                if suffix in (".docx", ".odt") else "a release's text is much shorter: is this the right file?")
        raise DocumentError(f"the file is {size / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB", path=path, hint=hint)


def _macros(path: Path) -> DocumentError:
    return DocumentError(
        "the document contains macros, which Pressroom never opens", path=path,
        hint="in Word: File > Save As > Word Document (.docx), which leaves the macros out, then import that file",
    )


def _open_archive(data: bytes, path: Path) -> zipfile.ZipFile:
    """The .docx or .odt as a ZIP archive, once it is known to be safe to read."""
    if data.startswith(_OLE_MAGIC):
        # Word and LibreOffice write a protected document as an encrypted package inside a compound file.
        if "EncryptedPackage".encode("utf-16-le") in data:
            raise DocumentError(
                "the document is protected with a password", path=path,
                hint="in Word: File > Info > Protect Document > Encrypt with Password, clear the password, save, and import again",
            )
        raise DocumentError("the file is an old Word 97-2003 document with a .docx name", path=path, hint=_SAVE_AS_DOCX)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise DocumentError("the file is damaged: it is not a complete Word or OpenDocument file", path=path,
                            hint="open it in Word and save it again; if Word cannot open it, ask for the file again") from None
    if any(PurePosixPath(info.filename).name.lower() == "vbaproject.bin" for info in members):
        raise _macros(path)
    if sum(info.file_size for info in members) > MAX_UNPACKED_BYTES:
        raise DocumentError(f"the file unpacks to more than {MAX_UNPACKED_BYTES / 1e6:.0f} MB", path=path,
                            hint="make the pictures smaller (Word: File > Compress Pictures) or send them separately")
    return archive


def _damaged(path: Path, exc: BaseException) -> DocumentError:
    detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
    return DocumentError(f"the file is damaged: {detail}", path=path,
                         hint="open it in Word and save it again; if Word cannot open it, ask for the file again")


def _decode(data: bytes, path: Path) -> tuple[str, str]:
    """Text files from Windows come as UTF-8, UTF-16 (Notepad's "Unicode") or Windows-1252 (Word's "Plain Text")."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "read as UTF-16"
    try:
        return data.decode("utf-8-sig"), ""
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "the file is not UTF-8: read as Windows-1252 (Word's plain-text default)"
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DocumentError(f"byte 0x{data[exc.start]:02x} on line {line} is not text in any encoding Word writes",
                            path=path, hint="save the text again as UTF-8 (Word: Plain Text, encoding Unicode UTF-8)") from None


# --------------------------------------------------------------------------- .docx with mammoth

# Word's built-in styles by their English names, which Word stores whatever the language of its menus.
_STYLE_MAP = """
p[style-name='Title'] => h1:fresh
p[style-name='Subtitle'] => h2:fresh
p[style-name='Quote'] => blockquote > p:fresh
p[style-name='Intense Quote'] => blockquote > p:fresh
p[style-name='Block Text'] => blockquote > p:fresh
r[style-name='Strong'] => strong
r[style-name='Emphasis'] => em
"""


def _read_docx(data: bytes, archive: zipfile.ZipFile, path: Path) -> list[Block]:
    import mammoth

    if "word/document.xml" not in archive.namelist():
        raise DocumentError("the file is not a Word document (it has no word/document.xml)", path=path, hint=_SAVE_AS_DOCX)
    pictures: list[Picture] = []

    def keep(image: Any) -> dict[str, str]:
        try:
            with image.open() as stream:
                content = stream.read()
        except Exception:  # a picture linked to a file outside the document: never fetched, left out
            return {}
        kind = (image.content_type or "").lower()
        pictures.append(Picture(data=content, suffix=IMAGE_TYPES.get(kind, ""), alt=" ".join((image.alt_text or "").split()),
                                kind=kind or "unknown"))
        return {"src": f"picture:{len(pictures) - 1}"}

    try:
        # Never: a style map the document brings, or files outside it that it links to.
        result = mammoth.convert_to_html(io.BytesIO(data), style_map=_STYLE_MAP, convert_image=mammoth.images.img_element(keep),
                                         include_embedded_style_map=False, external_file_access=False)
    except Exception as exc:  # mammoth raises whatever its XML and ZIP readers raise on a damaged part
        raise _damaged(path, exc) from None
    return _HtmlBlocks(pictures).convert(result.value)


class _Node:
    __slots__ = ("attrs", "children", "tag")

    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag, self.attrs, self.children = tag, attrs, []


class _Tree(HTMLParser):
    """mammoth's HTML as a small tree (it is well formed: one element kind per block or run)."""

    _VOID = frozenset({"br", "img", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Node("root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = _Node(tag, {key: value or "" for key, value in attrs})
        self.stack[-1].children.append(node)
        if tag not in self._VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


_BREAK = "\u2028"  # a line break inside a paragraph, until lines are split
_PICTURES = re.compile("\x00[^\x00]*\x00")  # where a picture sits in a paragraph, until it is cut there


class _HtmlBlocks:
    def __init__(self, pictures: list[Picture]) -> None:
        self.pictures = pictures

    def convert(self, html: str) -> list[Block]:
        tree = _Tree()
        tree.feed(html)
        tree.close()
        blocks: list[Block] = []
        for node in tree.root.children:
            if isinstance(node, str):
                if node.strip():
                    blocks += self._paragraph([node])
            elif node.tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
                text = " ".join(self._inline(node.children).replace(_BREAK, " ").split())
                if text:
                    blocks.append(Block("heading", [text], level=int(node.tag[1])))
            elif node.tag in ("ul", "ol"):
                lines = self._list(node, indent="")
                if lines:
                    blocks.append(Block("list", lines))
            elif node.tag == "blockquote":
                blocks += self._quote(node)
            elif node.tag == "table":
                blocks += self._table(node)
            else:
                blocks += self._paragraph(node.children)
        return blocks

    def _inline(self, children: list, *, in_link: bool = False) -> str:
        return "".join(self._inline_one(child, in_link=in_link) for child in _merged_runs(children))

    def _inline_one(self, child: str | _Node, *, in_link: bool) -> str:
        if isinstance(child, str):
            text = child.replace("\t", " ")
            return escape(text) if in_link else linkify(text)
        if child.tag == "br":
            return _BREAK
        if child.tag == "img":
            return f"\x00{child.attrs.get('src', '')}\x00"
        if child.tag in _MARKS:
            return _wrap(_MARKS[child.tag], self._inline(child.children, in_link=in_link))
        if child.tag in ("sup", "sub"):
            inner = self._inline(child.children, in_link=in_link)
            return f"<{child.tag}>{inner}</{child.tag}>" if inner.strip() else ""
        if child.tag == "a":
            return self._link(child)
        return self._inline(child.children, in_link=in_link)

    def _link(self, node: _Node) -> str:
        href = node.attrs.get("href", "")
        if href.startswith(("#footnote-ref", "#endnote-ref")):
            return ""  # the "back to the text" arrow of a footnote
        inner = self._inline(node.children, in_link=True)
        if not href or href.startswith("#") or not inner.strip():
            return inner
        target = f"<{href}>" if re.search(r"[\s()<>]", href) else href
        return f"[{inner}]({target})"

    def _paragraph(self, children: list) -> list[Block]:
        """A paragraph, split where pictures sit in it (a picture is a block of its own)."""
        blocks: list[Block] = []
        for index, part in enumerate(self._inline(children).split("\x00")):
            if index % 2:
                picture = self._picture(part)
                if picture is not None:
                    blocks.append(Block("picture", [], picture=picture))
                continue
            lines = [word_line(line) for line in part.split(_BREAK)]
            while lines and not lines[0]:
                lines.pop(0)
            while lines and not lines[-1]:
                lines.pop()
            if lines:
                blocks.append(Block("paragraph", [line for line in lines if line], hard_breaks=len(lines) > 1))
        return blocks

    def _picture(self, src: str) -> Picture | None:
        if src.startswith("picture:"):
            return self.pictures[int(src.removeprefix("picture:"))]
        return None  # a linked picture outside the document: never fetched

    def _list(self, node: _Node, *, indent: str) -> list[str]:
        lines: list[str] = []
        for number, item in enumerate((c for c in node.children if not isinstance(c, str) and c.tag == "li"), start=1):
            marker = f"{number}. " if node.tag == "ol" else "- "
            text = self._item_text(item)
            lines.append(f"{indent}{marker}{text}" if text else f"{indent}{marker}".rstrip())
            for child in item.children:
                if not isinstance(child, str) and child.tag in ("ul", "ol"):
                    lines += self._list(child, indent=indent + " " * len(marker))
        return [line for line in lines if line.strip() not in ("-", "1.")]

    def _item_text(self, item: _Node) -> str:
        """A list item's own words on one line (its nested lists apart, its pictures left out)."""
        inline = [c for c in item.children if isinstance(c, str) or c.tag not in ("ul", "ol", "p")]
        texts = [self._inline(c.children) for c in item.children if not isinstance(c, str) and c.tag == "p"]
        return " ".join(word_line(_PICTURES.sub("", part).replace(_BREAK, " ")) for part in [self._inline(inline), *texts]).strip()

    def _quote(self, node: _Node) -> list[Block]:
        lines: list[str] = []
        for child in node.children:
            paragraph = self._paragraph(child.children if not isinstance(child, str) else [child])
            for block in paragraph:
                if block.kind == "paragraph":
                    if lines:
                        lines.append("")
                    lines += block.lines
        return [Block("quote", lines)] if lines else []

    def _table(self, node: _Node) -> list[Block]:
        rows: list[list[str]] = []
        pictures: list[Picture] = []
        for row in _descendants(node, "tr"):
            cells = [self._cell(cell, pictures) for cell in row.children if not isinstance(cell, str) and cell.tag in ("td", "th")]
            if any(cells):
                rows.append(cells)
        if not rows:
            return []
        width = max(len(row) for row in rows)
        rows = [row + [""] * (width - len(row)) for row in rows]
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width]
        lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
        return [Block("table", lines, pictures=pictures)]


    def _cell(self, cell: _Node, pictures: list[Picture]) -> str:
        """A table cell's words on one line; its pictures go to ``pictures``."""
        parts = []
        for index, piece in enumerate(self._inline(cell.children).split("\x00")):
            picture = self._picture(piece) if index % 2 else None
            if picture is not None:
                pictures.append(picture)  # logos in a table, mostly: not shown in the cell
            elif not index % 2 and piece.strip():
                parts.append(word_line(piece.replace(_BREAK, " ")))
        return " ".join(parts).replace("|", "\\|")


# Inline marks as Markdown writes them.
_MARKS = {"strong": "**", "b": "**", "em": "*", "i": "*", "s": "~~", "del": "~~"}


def _merged_runs(children: list) -> list:
    """Word splits a bold phrase into runs wherever spelling marks or revisions were: join them back."""
    merged: list = []
    for child in children:
        if (merged and isinstance(child, _Node) and isinstance(merged[-1], _Node)
                and child.tag in ("strong", "em", "s") and merged[-1].tag == child.tag):
            joined = _Node(child.tag, {})
            joined.children = [*merged[-1].children, *child.children]
            merged[-1] = joined
            continue
        merged.append(child)
    return merged


def _descendants(node: _Node, tag: str) -> list[_Node]:
    found: list[_Node] = []
    for child in node.children:
        if isinstance(child, str):
            continue
        if child.tag == tag:
            found.append(child)
        elif child.tag != "table":  # a table nested in a cell keeps its own rows
            found += _descendants(child, tag)
    return found


def _wrap(marker: str, inner: str) -> str:
    """``**bold**`` with the spaces Word puts inside a bold run moved outside, where Markdown needs them."""
    core = inner.strip()
    if not core or "\x00" in core:
        return inner
    lead = inner[: len(inner) - len(inner.lstrip())]
    trail = inner[len(inner.rstrip()):]
    return f"{lead}{marker}{core}{marker}{trail}"


# --------------------------------------------------------------------------- .odt with odfdo


def _read_odt(data: bytes, archive: zipfile.ZipFile, path: Path) -> list[Block]:
    from odfdo import Document

    try:
        kind = archive.read("mimetype").decode("ascii", "replace").strip()
    except KeyError:
        kind = ""
    if kind != "application/vnd.oasis.opendocument.text":
        raise DocumentError("the file is not an OpenDocument text document", path=path, hint=_SAVE_AS_DOCX)
    try:
        if b"manifest:encryption-data" in archive.read("META-INF/manifest.xml"):
            raise DocumentError("the document is protected with a password", path=path,
                                hint="in LibreOffice: File > Save As without 'Save with password', then import again")
        document = Document(io.BytesIO(data))
        changes = document.body.get_tracked_changes()
        if changes is not None:
            changes.delete()  # the deleted text of tracked changes; insertions are already in place
        descriptions = {}
        for frame in document.body.get_frames():
            image = frame.get_image()
            if image is not None and image.url:
                descriptions[image.url] = frame.svg_title or frame.svg_description or ""
        markdown = document.to_markdown()
        pictures: dict[str, Picture] = {}
        for url, alt in descriptions.items():
            content = document.get_part(url)
            if isinstance(content, bytes):
                kind = sniff(content)
                pictures[url] = Picture(data=content, suffix=IMAGE_TYPES.get(kind, ""), alt=" ".join(alt.split()), kind=kind)
    except DocumentError:
        raise
    except Exception as exc:  # odfdo raises whatever lxml and its ZIP reader raise on a damaged part
        raise _damaged(path, exc) from None
    return text_blocks(markdown, markdown=True, pictures=pictures)

