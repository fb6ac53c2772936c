"""Image facts and images sized for each use, with Pillow (the only module that imports it) and resvg
(PNG twins of SVG logos, which Gmail and Outlook do not show).

A release page shows its images (hero and body) at most :data:`PAGE_WIDTH` wide and an email at
most :data:`EMAIL_WIDTH`; the original stays beside them for the press kit and "Download the image".
A sized copy is named after its width (``hero-600w.png``) and is a pure function of the original's
bytes (no metadata, no timestamps), so a rebuild writes the same bytes and the site build rewrites nothing.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "EMAIL_WIDTH", "LOGO_HEIGHT", "PAGE_WIDTH", "email_logo_name", "fit_bytes", "header_size", "png_twin", "resize",
    "sized_html", "sized_name", "variant", "width_at",
]


def _pillow() -> ModuleType:
    # Imported on first use: an email sender asks only sizes, which the headers give, and so does
    # without Pillow's start-up and memory. (Its UnidentifiedImageError is an OSError.)
    from PIL import Image

    return Image


PAGE_WIDTH = 1200
EMAIL_WIDTH = 600
LOGO_HEIGHT = 48  # a co-issuer's logo beside the others (the EU emblem beside them is taller: 56)
_TWIN_SCALE = 2  # PNG twins are drawn at twice the size they are shown, sharp on high-density screens
# GIFs may be animated and SVGs have no pixels: they are shown as they are.
_RESIZABLE = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}


def sized_name(name: str, width: int) -> str:
    """``photos/hero.png`` -> ``photos/hero-600w.png``: the sized copy beside the original."""
    path = PurePosixPath(name)
    return str(path.with_name(f"{path.stem}-{width}w{path.suffix}"))


def sized_html(html: str, *, base_url: str, files: Iterable[tuple[str, Path]], width: int) -> str:
    """``html`` (URLs absolute under ``base_url``) whose images among ``files`` (name, local file)
    wider than ``width`` show their sized copy; links to the originals are left alone."""
    for name, file in files:
        if variant(file, width):
            html = html.replace(f'src="{base_url}{name}"', f'src="{base_url}{sized_name(name, width)}"')
    return html


def variant(file: Path, width: int) -> tuple[int, int] | None:
    """The size of ``file`` shown at most ``width`` wide, when that needs a smaller copy (else None)."""
    if file.suffix.lower() not in _RESIZABLE:
        return None
    try:
        stat = file.stat()
    except OSError:
        return None
    original = _pixels(file, stat.st_mtime_ns, stat.st_size)
    if original is None or original[0] <= width:
        return None
    return width, max(1, round(original[1] * width / original[0]))


@lru_cache(maxsize=4096)
def _pixels(file: Path, mtime_ns: int, size: int) -> tuple[int, int] | None:
    """An image's size in pixels, read once per version of the file: every build asks it of every image twice or more."""
    del mtime_ns, size  # part of the cache key only
    if file.suffix.lower() in (".png", ".jpg", ".jpeg"):
        # Its header says its size (a PNG's IHDR, a JPEG's frame): Pillow would read the same, in five times the time.
        shown = header_size(file)
        if shown is not None:
            return shown
    try:
        with _pillow().open(file) as image:
            return image.size
    except OSError:
        return None


def header_size(path: Path | None) -> tuple[int, int] | None:
    """Width and height of a PNG, GIF or JPEG from its header, for og:image:width/height and img attributes.

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
        return _jpeg_size(head)
    return None


_JPEG_FRAMES = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    """The size a JPEG's start-of-frame segment gives, walking the segments before it."""
    index = 2
    while index + 9 < len(head) and head[index] == 0xFF:
        marker, length = head[index + 1], int.from_bytes(head[index + 2 : index + 4], "big")
        if marker in _JPEG_FRAMES:
            return int.from_bytes(head[index + 7 : index + 9], "big"), int.from_bytes(head[index + 5 : index + 7], "big")
        index += 2 + length
    return None


_SVG_BOX = re.compile(r'<svg\b[^>]*?\bviewBox="\s*[-\d.]+[\s,]+[-\d.]+[\s,]+([\d.]+)[\s,]+([\d.]+)\s*"')


def _svg_size(path: Path) -> tuple[float, float] | None:
    """Width and height of an SVG from its viewBox (what its aspect ratio is drawn in)."""
    try:
        match = _SVG_BOX.search(path.read_text(encoding="utf-8", errors="replace")[:4096])
    except OSError:
        return None
    return (float(match.group(1)), float(match.group(2))) if match else None


def width_at(file: Path, height: int) -> int:
    """A logo's width at ``height`` pixels (PNG or SVG), for clients that size images by their attributes (Outlook)."""
    size = header_size(file) if file.suffix.lower() == ".png" else _svg_size(file)
    return round(height * size[0] / size[1]) if size and size[1] else height * 3


def email_logo_name(name: str) -> str:
    """The logo an email shows: a PNG as it is; an SVG's PNG twin beside it (``logo.svg`` -> ``logo-96h.png``)."""
    path = PurePosixPath(name)
    if path.suffix.lower() != ".svg":
        return name
    return str(path.with_name(f"{path.stem}-{LOGO_HEIGHT * _TWIN_SCALE}h.png"))


def png_twin(*, source: Path) -> bytes:
    """The PNG twin of SVG logo ``source``: drawn at twice :data:`LOGO_HEIGHT`, the same bytes every time."""
    height = LOGO_HEIGHT * _TWIN_SCALE
    import resvg_py  # only the site build draws logos

    drawn = resvg_py.svg_to_bytes(svg_path=str(source), width=width_at(source, height), height=height)
    with _pillow().open(io.BytesIO(bytes(drawn))) as image:
        return _encode(image, "PNG")


def resize(*, source: Path, width: int) -> bytes:
    """``source`` scaled to ``width`` (aspect kept), in its own format, without metadata: the same bytes every time."""
    try:
        with _pillow().open(source) as image:
            size = variant(source, width) or image.size
            scaled = image.resize(size, _pillow().Resampling.LANCZOS)
            return _encode(scaled, _RESIZABLE.get(source.suffix.lower(), "PNG"))
    except OSError:
        # A header that reads but pixels that do not (a truncated upload): the page links the copy,
        # so the copy is the original, as broken as it came, rather than a missing file.
        return source.read_bytes()


def fit_bytes(data: bytes, *, max_bytes: int) -> tuple[bytes, str]:
    """``data`` (an image) as a JPEG of at most ``max_bytes``, narrower step by step: for a network's thumbnail limit."""
    with _pillow().open(io.BytesIO(data)) as image:
        picture = image.convert("RGB")
    width = min(picture.width, 2000)
    while True:
        scaled = picture.resize((width, max(1, round(picture.height * width / picture.width))), _pillow().Resampling.LANCZOS)
        encoded = _encode(scaled, "JPEG")
        if len(encoded) <= max_bytes or width <= 64:
            return encoded, "image/jpeg"
        width = int(width * 0.75)


def _encode(image: Image.Image, kind: str) -> bytes:
    buffer = io.BytesIO()
    if kind == "JPEG":
        image.convert("RGB").save(buffer, "JPEG", quality=85, optimize=True)
    else:
        image.save(buffer, kind, optimize=True)
    return buffer.getvalue()
