"""Helpers for the site, feed and browser tests: a sample project, a real image, a loopback server."""

from __future__ import annotations

import functools
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pressroom.releases import Release, load_releases
from pressroom.site import BuildReport, build_site


def png(width: int = 1200, height: int = 630, rgb: tuple[int, int, int] = (11, 93, 122)) -> bytes:
    """A valid solid-colour PNG, so browsers and feed readers see a real image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(rgb) * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * height, 9))
        + chunk(b"IEND", b"")
    )


def write_sample(project) -> None:  # the conftest Project
    """Three public releases (one bundle with a hero and contacts), a draft, a scheduled and an expired one."""
    folder = project.releases / "battery-passport-pilot"
    folder.mkdir(parents=True)
    (folder / "hero.png").write_bytes(png())
    project.write_release(
        "battery-passport-pilot",
        title="Battery passport pilot starts in three member states",
        date="2024-07-31 10:00",
        body="The pilot **starts today**.\n\nSee the [earlier release](../recycling-record/) too.\n",
        bundle=True,
        extra="""\
            summary: Three member states test the digital battery passport.
            tags: [Battery passport, Policy]
            author: Test Hub Press Office
            hero:
              src: hero.png
              alt: A battery cell with a QR code on a lab bench
            contacts:
              - name: Ana Example
                role: Press officer
                organisation: Test Hub
                email: ana@example.org
                phone: +32 2 555 01 23
            """,
    )
    project.write_release(
        "recycling-record",
        title="Recycling plant sets a lithium recovery record",
        date="2024-07-20 08:30",
        body="Recovery reached **95 %** of the lithium.",
        extra="tags: [Recycling, Policy]\n",
    )
    project.write_release(
        "hub-launch",
        title="The Test Hub is launched",
        date="2024-06-01 12:00",
        body="Hello, world.",
        extra="tags: [recycling]\n",
    )
    project.write_release(
        "secret-draft-zebra",
        title="Draft about quokka merger",
        date="2024-07-01 09:00",
        status="draft",
        extra="tags: [Hidden topic draft]\n",
    )
    project.write_release(
        "embargoed-yak",
        title="Embargoed news about narwhals",
        date="2024-09-01 09:00",
        extra="tags: [Hidden topic embargo]\n",
    )
    project.write_release(
        "expired-okapi",
        title="Expired offer for axolotls",
        date="2024-05-01 09:00",
        extra="expires: 2024-07-01 00:00\ntags: [Hidden topic expired]\n",
    )


HIDDEN = {
    "secret-draft-zebra": "Draft about quokka merger",
    "embargoed-yak": "Embargoed news about narwhals",
    "expired-okapi": "Expired offer for axolotls",
}
PUBLIC = ["battery-passport-pilot", "recycling-record", "hub-launch"]


def build(project, now: datetime, **env: str) -> tuple[BuildReport, list[Release]]:
    """Load and build as ``pressroom build`` does; fail the test on any release problem."""
    settings = project.settings(**env)
    result = load_releases(settings)
    assert not result.problems, [str(problem) for problem in result.problems]
    return build_site(settings=settings, releases=result.releases, now=now), result.releases


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on a free loopback port; yields the base URL."""

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output readable
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def active_content(html: str) -> list[str]:
    """What in an HTML document or fragment could run: script elements, on* handlers, javascript: URLs."""
    import lxml.html

    if not html.strip():
        return []
    found = []
    for element in lxml.html.document_fromstring(html).iter():
        if not isinstance(element.tag, str):
            continue
        if element.tag.lower() == "script":
            found.append("script element")
        for name, value in element.attrib.items():
            if name.lower().startswith("on"):
                found.append(f"{name} handler")
            if name.lower() in {"href", "src", "action", "formaction"} and value.strip().lower().startswith("javascript:"):
                found.append(f"{name}={value}")
    return found


def assert_nothing_runs(public: Path) -> None:
    """Every page, every feed's HTML content and every JSON Feed item is free of anything that runs."""
    import json

    from lxml import etree

    for path in public.rglob("*"):
        if not path.is_file() or path.suffix not in {".html", ".xml", ".json"}:
            continue
        data = path.read_bytes()
        assert b"<script" not in data.lower(), path
        if path.suffix == ".html":
            assert active_content(data.decode()) == [], path
        elif path.suffix == ".xml":
            for element in etree.fromstring(data).iter():
                # Atom says which texts are HTML; RSS readers take every text as HTML.
                is_html = element.get("type") == "html" or not str(element.tag).startswith("{http://www.w3.org/2005/Atom}")
                if is_html and element.text:
                    assert active_content(element.text) == [], (path, element.tag)
        else:
            for item in json.loads(data)["items"]:
                assert active_content(item["content_html"]) == [], path


def broken_links(public: Path) -> list[tuple[str, str]]:
    """(page, link) of every link or image in public/'s pages that leads to no file of public/."""
    import lxml.html
    from urllib.parse import unquote, urlsplit

    broken = []
    for page in sorted(public.rglob("*.html")):
        if page.name == "404.html":
            continue  # served at any missing address, so its links start at the site root, not here
        document = lxml.html.fromstring(page.read_bytes())
        for element in document.iter():
            for attribute in ("href", "src"):
                link = element.get(attribute) if isinstance(element.tag, str) else None
                parts = urlsplit(link or "")
                if not link or parts.scheme or parts.netloc or not parts.path:
                    continue  # absolute URLs (canonical, og:) and fragments are not files of this folder
                target = (page.parent / unquote(parts.path)).resolve()
                if target.is_dir():
                    target = target / "index.html"
                if not target.is_file():
                    broken.append((page.relative_to(public).as_posix(), link))
    return broken
