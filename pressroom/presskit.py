"""``press-kit.zip`` of a release: its text as Markdown and plain text, its images at full resolution, its downloads,
and for a co-issued release the issuers' logos, their About texts and the EU acknowledgement it owes.

The archive is a pure function of the release and its files: entries sorted, one fixed timestamp
and fixed permissions, so a rebuild yields the same bytes and the site build rewrites nothing.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from pressroom.mail.compose import html_to_text
from pressroom.organisations import about_blocks, eu_acknowledgement, media_contacts
from pressroom.releases import Release

__all__ = ["press_kit"]

# ZIP cannot store dates before 1980; a fixed date (not the files' mtimes) keeps the bytes stable.
_TIMESTAMP = (1980, 1, 1, 0, 0, 0)


EU_DISCLAIMER = (
    "Views and opinions expressed are however those of the author(s) only and do not necessarily reflect those of the"
    " European Union or the granting authority. Neither the European Union nor the granting authority can be held"
    " responsible for them."
)


def press_kit(*, release: Release, site_language: str, emblem: Path | None = None) -> bytes:
    """The press kit of ``release``, the same bytes for the same release and files.

    ``emblem``: the EU emblem's file, put beside the issuers' logos when an issuer is EU-funded.
    """
    entries: dict[str, bytes] = {
        f"{release.slug}.md": _markdown(release, site_language).encode("utf-8"),
        f"{release.slug}.txt": _text(release, site_language).encode("utf-8"),
    }
    for asset in release.assets:
        entries[release.local_name(asset)] = Path(asset).read_bytes()
    for issuer in release.issuers:
        entries[f"logos/{issuer.id}{issuer.logo.suffix}"] = issuer.logo.read_bytes()
    if emblem is not None and eu_acknowledgement(release=release):
        entries[f"logos/eu-emblem{emblem.suffix}"] = emblem.read_bytes()
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
    for contact in media_contacts(release=release):
        parts = [contact.name, contact.role, contact.organisation, contact.email, contact.phone]
        lines.append(", ".join(part for part in parts if part))
    return lines


def _issuers(release: Release, site_language: str) -> list[tuple[str, str]]:
    """(heading, text) of each co-issuer's part: who issued it, each About, the EU acknowledgement."""
    if not release.issuers:
        return []
    parts = [("Projects involved", "\n".join(f"{issuer.name} ({issuer.website})" if issuer.website else issuer.name
                                              for issuer in release.issuers))]
    parts += [(f"About {issuer.name}", html_to_text(html)) for issuer, html in about_blocks(release=release, site_language=site_language) if html]
    for statement, grants in eu_acknowledgement(release=release):
        lines = [f"{issuer.label}: {grant.programme}, grant agreement No {grant.grant}" for issuer, grant in grants]
        parts.append((statement or "Funded by the European Union", "\n".join(lines)))
    if eu_acknowledgement(release=release):
        parts.append(("", EU_DISCLAIMER))
    return parts


def _markdown(release: Release, site_language: str) -> str:
    parts = [f"# {release.title}", release.summary, release.body_markdown.strip()]
    if release.contacts or release.issuers:
        parts.append("## Media contacts\n\n" + "\n".join(f"- {line}" for line in _contacts(release)))
    parts += [f"## {heading}\n\n{text}" if heading else text for heading, text in _issuers(release, site_language)]
    parts.append(f"Permanent link: <{release.url}>")
    return "\n\n".join(part for part in parts if part) + "\n"


def _text(release: Release, site_language: str) -> str:
    parts = [release.title, release.summary, html_to_text(release.body_html)]
    if release.contacts or release.issuers:
        parts.append("MEDIA CONTACTS\n\n" + "\n".join(_contacts(release)))
    if release.about_html:
        parts.append(html_to_text(release.about_html))
    parts += [f"{heading.upper()}\n\n{text}" if heading else text for heading, text in _issuers(release, site_language)]
    parts.append(f"Permanent link: {release.url}")
    return "\n\n".join(part for part in parts if part) + "\n"
