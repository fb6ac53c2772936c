"""``press-kit.zip`` of a release: its text as Markdown and plain text, its images at full resolution, its downloads.

The archive is a pure function of the release and its files: entries sorted, one fixed timestamp
and fixed permissions, so a rebuild yields the same bytes and the site build rewrites nothing.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from pressroom.mail.compose import html_to_text
from pressroom.releases import Release

__all__ = ["press_kit"]

# ZIP cannot store dates before 1980; a fixed date (not the files' mtimes) keeps the bytes stable.
_TIMESTAMP = (1980, 1, 1, 0, 0, 0)


def press_kit(*, release: Release) -> bytes:
    """The press kit of ``release``, the same bytes for the same release and files."""
    folder = release.source.parent.resolve()
    entries: dict[str, bytes] = {
        f"{release.slug}.md": _markdown(release).encode("utf-8"),
        f"{release.slug}.txt": _text(release).encode("utf-8"),
    }
    for asset in release.assets:
        entries[asset.resolve().relative_to(folder).as_posix()] = Path(asset).read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(f"{release.slug}/{name}", date_time=_TIMESTAMP)
            info.external_attr = 0o100644 << 16  # a regular file, readable by all: whatever the umask was
            info.create_system = 3  # Unix, so the permissions above are read as such
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name], compresslevel=9)
    return buffer.getvalue()


def _contacts(release: Release) -> list[str]:
    lines = []
    for contact in release.contacts:
        parts = [contact.name, contact.role, contact.organisation, contact.email, contact.phone]
        lines.append(", ".join(part for part in parts if part))
    return lines


def _markdown(release: Release) -> str:
    parts = [f"# {release.title}", release.summary, release.body_markdown.strip()]
    if release.contacts:
        parts.append("## Media contacts\n\n" + "\n".join(f"- {line}" for line in _contacts(release)))
    parts.append(f"Permanent link: <{release.url}>")
    return "\n\n".join(part for part in parts if part) + "\n"


def _text(release: Release) -> str:
    parts = [release.title, release.summary, html_to_text(release.body_html)]
    if release.contacts:
        parts.append("MEDIA CONTACTS\n\n" + "\n".join(_contacts(release)))
    if release.about_html:
        parts.append(html_to_text(release.about_html))
    parts.append(f"Permanent link: {release.url}")
    return "\n\n".join(part for part in parts if part) + "\n"
