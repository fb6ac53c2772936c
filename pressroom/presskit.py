"""``press-kit.zip`` of a release: its text as Markdown and plain text, its images at full resolution, its downloads,
and for a co-issued release the issuers' logos, their About texts and the EU acknowledgement it owes.

The archive is a pure function of the release and its files: entries sorted, one fixed timestamp
and fixed permissions, so a rebuild yields the same bytes and the site build rewrites nothing. Entries are
stored, not deflated: the bulk of a kit is images and PDFs, compressed already, and deflating its few kilobytes
of text took a fifth of the time a full build spends on kits.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from pressroom.i18n import translations
from pressroom.releases.blocks import about_blocks, eu_acknowledgement, media_contacts
from pressroom.releases.model import Release
from pressroom.settings import Settings
from pressroom.text import html_to_text

Gettext = Callable[[str], str]

__all__ = ["press_kit"]

# ZIP cannot store dates before 1980; a fixed date (not the files' mtimes) keeps the bytes stable.
_TIMESTAMP = (1980, 1, 1, 0, 0, 0)


def press_kit(*, release: Release, settings: Settings) -> bytes:
    """The press kit of ``release``, in its language, the same bytes for the same release and files."""
    _ = translations(language=release.language, settings=settings).gettext
    sections = _sections(release, settings, _)
    entries: dict[str, bytes] = {
        f"{release.slug}.md": _markdown(release, sections, _).encode("utf-8"),
        f"{release.slug}.txt": _text(release, sections, _).encode("utf-8"),
    }
    for asset in release.assets:
        entries[release.local_name(asset)] = Path(asset).read_bytes()
    for issuer in release.issuers:
        if issuer.logo is not None:
            entries[f"logos/{issuer.id}{issuer.logo.suffix}"] = issuer.logo.read_bytes()
    if eu_acknowledgement(release=release, settings=settings):
        emblem = settings.path("templates") / "site" / "static" / "eu-emblem.png"
        if emblem.is_file():
            entries["logos/eu-emblem.png"] = emblem.read_bytes()
    return _stored_zip([(f"{release.slug}/{name}", entries[name]) for name in sorted(entries)])


# A ZIP of stored entries, each header written once with its CRC and sizes known: byte for byte what
# zipfile.ZipFile writes for these entries (version 2.0, made on Unix, mode 0644, fixed date), in a
# quarter of its time, as a build makes one kit per release. Past what 32-bit fields hold, zipfile's ZIP64.
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_END = struct.Struct("<4s4H2LH")
_DOS_DATE = (_TIMESTAMP[0] - 1980) << 9 | _TIMESTAMP[1] << 5 | _TIMESTAMP[2]
_DOS_TIME = _TIMESTAMP[3] << 11 | _TIMESTAMP[4] << 5 | _TIMESTAMP[5] // 2
_UNIX, _VERSION, _UTF8_NAME = 3, 20, 0x800
_MODE = 0o100644 << 16  # a regular file, readable by all: whatever the umask was
_SMALL = 1 << 30  # bytes in all: well inside ZIP's 32-bit sizes and offsets, and zipfile's 5% margin before ZIP64


def _stored_zip(entries: list[tuple[str, bytes]]) -> bytes:
    if sum(len(data) for _, data in entries) > _SMALL or len(entries) > 0xFFFF:
        return _zipfile(entries)
    parts: list[bytes] = []
    central: list[bytes] = []
    offset = 0
    for name, data in entries:
        try:
            encoded, flags = name.encode("ascii"), 0
        except UnicodeEncodeError:
            encoded, flags = name.encode("utf-8"), _UTF8_NAME
        crc, size = zlib.crc32(data), len(data)
        parts += (_LOCAL.pack(b"PK\x03\x04", _VERSION, 0, flags, 0, _DOS_TIME, _DOS_DATE, crc, size, size, len(encoded), 0),
                  encoded, data)
        central += (_CENTRAL.pack(b"PK\x01\x02", _VERSION, _UNIX, _VERSION, 0, flags, 0, _DOS_TIME, _DOS_DATE, crc, size,
                                  size, len(encoded), 0, 0, 0, 0, _MODE, offset), encoded)
        offset += _LOCAL.size + len(encoded) + size
    directory = b"".join(central)
    return b"".join([*parts, directory, _END.pack(b"PK\x05\x06", 0, 0, len(entries), len(entries), len(directory), offset, 0)])


def _zipfile(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_TIMESTAMP)
            info.external_attr = _MODE
            info.create_system = _UNIX  # so the permissions above are read as such
            archive.writestr(info, data)
    return buffer.getvalue()


def _contacts(release: Release) -> list[str]:
    lines = []
    for contact in media_contacts(release=release):
        parts = [contact.name, contact.role, contact.organisation, contact.email, contact.phone]
        lines.append(", ".join(part for part in parts if part))
    return lines


def _sections(release: Release, settings: Settings, _: Gettext) -> list[tuple[str, str]]:
    """(heading, text) after the body: media contacts, who issued it, each About, the EU acknowledgement."""
    parts = [(_("Media contacts"), "\n".join(_contacts(release)))] if release.contacts or release.issuers else []
    if release.issuers:
        parts.append((_("Projects involved"), "\n".join(
            f"{issuer.name} ({issuer.website})" if issuer.website else issuer.name for issuer in release.issuers
        )))
    parts += [(_("About %(name)s") % {"name": issuer.name}, html_to_text(html))
              for issuer, html in about_blocks(release=release, site_language=settings.site.language) if html]
    acknowledgement = eu_acknowledgement(release=release, settings=settings)
    for statement, grants in acknowledgement:
        lines = [_("%(project)s: %(programme)s, grant agreement No %(grant)s")
                 % {"project": issuer.label, "programme": grant.programme, "grant": grant.grant} for issuer, grant in grants]
        parts.append((statement, "\n".join(lines)))
    if acknowledgement:
        parts.append(("", _(
            "Views and opinions expressed are however those of the author(s) only and do not necessarily reflect those of"
            " the European Union or the granting authority. Neither the European Union nor the granting authority can be"
            " held responsible for them."
        )))
    return parts


def _markdown(release: Release, sections: list[tuple[str, str]], _: Gettext) -> str:
    parts = [f"# {release.title}", release.summary, release.body_markdown.strip()]
    parts += [f"## {heading}\n\n{text}" if heading else text for heading, text in sections]
    parts.append(f"{_('Permanent link')}: <{release.url}>")
    return "\n\n".join(part for part in parts if part) + "\n"


def _text(release: Release, sections: list[tuple[str, str]], _: Gettext) -> str:
    """The plain text; ``sections`` as _sections made them (the text has the release's own About among them)."""
    parts = [release.title, release.summary, html_to_text(release.body_html)]
    sections = list(sections)
    if sections and release.about_html:  # the release's own About after its contacts, as on the page
        sections.insert(1, ("", html_to_text(release.about_html)))
    elif release.about_html:
        sections.append(("", html_to_text(release.about_html)))
    parts += [f"{heading.upper()}\n\n{text}" if heading else text for heading, text in sections]
    parts.append(f"{_('Permanent link')}: {release.url}")
    return "\n\n".join(part for part in parts if part) + "\n"
