"""``press-kit.zip`` of a release: its text as Markdown and plain text, its images at full resolution, its downloads,
and for a co-issued release the issuers' logos, their About texts and the EU acknowledgement it owes.

The archive is a pure function of the release and its files: entries sorted, one fixed timestamp
and fixed permissions, so a rebuild yields the same bytes and the site build rewrites nothing. Entries are
stored, not deflated: the bulk of a kit is images and PDFs, compressed already, and deflating its few kilobytes
of text took a fifth of the time a full build spends on kits.
"""

from __future__ import annotations

import io
import zipfile
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
    entries: dict[str, bytes] = {
        f"{release.slug}.md": _markdown(release, settings, _).encode("utf-8"),
        f"{release.slug}.txt": _text(release, settings, _).encode("utf-8"),
    }
    for asset in release.assets:
        entries[release.local_name(asset)] = Path(asset).read_bytes()
    for issuer in release.issuers:
        if issuer.logo is not None:
            entries[f"logos/{issuer.id}{issuer.logo.suffix}"] = issuer.logo.read_bytes()
    emblem = settings.path("templates") / "site" / "static" / "eu-emblem.png"
    if eu_acknowledgement(release=release, settings=settings) and emblem.is_file():
        entries["logos/eu-emblem.png"] = emblem.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(f"{release.slug}/{name}", date_time=_TIMESTAMP)
            info.external_attr = 0o100644 << 16  # a regular file, readable by all: whatever the umask was
            info.create_system = 3  # Unix, so the permissions above are read as such
            archive.writestr(info, entries[name])
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


def _markdown(release: Release, settings: Settings, _: Gettext) -> str:
    parts = [f"# {release.title}", release.summary, release.body_markdown.strip()]
    parts += [f"## {heading}\n\n{text}" if heading else text for heading, text in _sections(release, settings, _)]
    parts.append(f"{_('Permanent link')}: <{release.url}>")
    return "\n\n".join(part for part in parts if part) + "\n"


def _text(release: Release, settings: Settings, _: Gettext) -> str:
    parts = [release.title, release.summary, html_to_text(release.body_html)]
    sections = _sections(release, settings, _)
    if sections and release.about_html:  # the release's own About after its contacts, as on the page
        sections.insert(1, ("", html_to_text(release.about_html)))
    elif release.about_html:
        sections.append(("", html_to_text(release.about_html)))
    parts += [f"{heading.upper()}\n\n{text}" if heading else text for heading, text in sections]
    parts.append(f"{_('Permanent link')}: {release.url}")
    return "\n\n".join(part for part in parts if part) + "\n"
