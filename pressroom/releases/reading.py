"""One release file -> one :class:`~pressroom.releases.model.Release`: read, validate, render its body.

Every problem is a :class:`~pressroom.errors.ReleaseError` naming the file, the line and the field;
what is only worth a second look (a date without a time, a very large image) is a
:class:`~pressroom.errors.ReleaseWarning` and the release still loads.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from pydantic_core import PydanticCustomError

from pressroom import frontmatter
from pressroom.errors import ReleaseError, ReleaseWarning
from pressroom.i18n import format_size
from pressroom.organisations import Organisations, load_organisations
from pressroom.releases.files import translation_language
from pressroom.releases.languages import base_of, merge, written_fields
from pressroom.releases.model import IMAGE_SUFFIXES, Download, Release, is_image
from pressroom.releases.schema import Context, FrontMatter, download, local_file, validate
from pressroom.settings import Settings
from pressroom.text import clean_text, html_to_text, render_about, render_markdown

__all__ = ["MAX_FILE_BYTES", "MAX_IMAGE_BYTES", "load_release"]

MAX_FILE_BYTES = 1_000_000
#: Images larger than this load slowly and fill journalists' inboxes: ``pressroom check`` warns.
MAX_IMAGE_BYTES = 5_000_000
_FIRST_PARAGRAPH = re.compile(r"<p>(.*?)</p>", re.S)
_PAGE_SUFFIXES = {".html", ".htm"}


def load_release(
    path: Path, settings: Settings, *, warnings: list[ReleaseWarning] | None = None, organisations: Organisations | None = None,
) -> Release:
    """Read and validate one release file; raise :class:`ReleaseError` on the first problem.

    What is worth a second look but still publishes (a date without a time) is appended to
    ``warnings`` when a list is given. ``organisations``: the co-issuers, when the caller reads many
    releases at once (else they are looked up, which checks every file of content/organisations/).
    """
    path = Path(path)
    raw = _read(path)
    text = clean_text(frontmatter.decode(raw, path))
    front, body = frontmatter.split(text, path)
    node, data = frontmatter.parse_yaml(front, path, first_line=2)
    lines = frontmatter.line_map(node, first_line=2)
    base = base_of(path)  # a language version reads its index.md's front matter under its own
    written = written_fields(data) if base is not None else ()
    if base is not None:
        data = merge(base.data, data)
    if organisations is None:
        organisations = load_organisations(settings=settings)  # read once per run, cached there
    context = Context(path, settings, organisations)
    meta = validate(data, context, lines, base=base)

    prefix = f"{meta.language}/" if translation_language(path) else ""
    url = f"{settings.site.base_url}/{prefix}releases/{meta.slug}/"
    body_html, relative = render_markdown(body, base_url=url)
    assets, downloads = _files(meta, relative, path, text, body)
    about_source = settings.site.about_in(meta.language) if meta.about is None else meta.about
    if warnings is not None:
        warnings += _warnings(context, lines, assets, written=written if base is not None else None)
    # The co-issuers' files shape the page too (logos, About texts, EU funding), and a version's index.md.
    shaped_by = raw + settings.fingerprint.encode() + (organisations.fingerprint.encode() if meta.issuers else b"")
    if base is not None:
        shaped_by += base.front.encode()
    return Release(
        slug=meta.slug,
        title=meta.title,
        summary=meta.summary or _derived_summary(body_html),
        date=meta.date,
        status=meta.status,
        expires=meta.expires,
        embargo=meta.embargo,
        tags=tuple(meta.tags),
        language=meta.language,
        prefix=prefix,
        base=base.path if base is not None else None,
        written=written,
        author=meta.author,
        hero=meta.hero,
        contacts=tuple(meta.contacts),
        issuers=tuple(organisations.by_id[name] for name in meta.issuers),
        about_html=render_about(about_source, base_url=url) if about_source.strip() else "",
        canonical_url=meta.canonical_url,
        corrections=tuple(meta.corrections),
        withdrawn=meta.withdrawn,
        downloads=tuple(downloads),
        email=meta.email,
        social=dict(meta.social),
        body_markdown=body,
        body_html=body_html,
        url=url,
        source=path,
        assets=tuple(dict.fromkeys(assets)),
        digest=hashlib.blake2b(shaped_by, digest_size=16).hexdigest(),
    )


def _read(path: Path) -> bytes:
    raw = path.read_bytes()
    if len(raw) > MAX_FILE_BYTES:
        raise ReleaseError(
            f"the file is {len(raw) / 1e6:.1f} MB; the limit is {MAX_FILE_BYTES / 1e6:.0f} MB",
            path=path,
            line=1,
            field="body",
            hint="put images and attachments beside index.md in a bundle folder and link them instead",
        )
    return raw


def _files(meta: FrontMatter, relative: list[str], path: Path, text: str, body: str) -> tuple[list[Path], list[Download]]:
    """The local files the release publishes beside its page (hero, the body's images, downloads,
    linked files), and its downloads: those listed, then those the body links to."""
    assets = [meta.hero.file] if meta.hero is not None and meta.hero.file is not None else []
    downloads = {item.name: item for item in meta.downloads}
    for reference in relative:
        reference_path = urlsplit(reference).path
        suffix = PurePosixPath(reference_path).suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            file, message, hint = local_file(reference_path, path)
            if message:
                raise ReleaseError(message, path=path, line=1, field="body", hint=hint)
            assets.append(file)
        elif suffix and suffix not in _PAGE_SUFFIXES and not reference_path.startswith("/"):
            # A linked file of the bundle that is not published would be a 404 on the site and in every
            # email. A path from the site's root ("/reports/r.pdf") is the site's own, not the bundle's.
            try:
                linked = download(reference_path, "", path)
            except PydanticCustomError as exc:
                line = _body_line(body, reference, first=text.count("\n", 0, len(text) - len(body)) + 1)
                raise ReleaseError(exc.context["message"], path=path, line=line, field="body", hint=exc.context["hint"]) from None
            downloads.setdefault(linked.name, linked)
    assets += [item.file for item in downloads.values()]
    return assets, list(downloads.values())


def _warnings(
    context: Context, lines: frontmatter.Lines, assets: list[Path], *, written: tuple[str, ...] | None
) -> list[ReleaseWarning]:
    """What is worth a second look; of a language version (``written``: its own fields), only about what it
    wrote: index.md warns of the rest."""
    path = context.path
    found = [
        ReleaseWarning(message, path=path, line=frontmatter.line(lines, (name,)), field=name, hint=hint)
        for message, name, hint in context.warnings
        if written is None or name.split(".")[0] in written
    ]
    for image in dict.fromkeys(assets):
        size = image.stat().st_size
        if is_image(image) and size > MAX_IMAGE_BYTES:
            # Pages and emails show smaller copies, but the original still goes into every press kit download.
            found.append(ReleaseWarning(
                f"image {image.name} is {format_size(size, language='en')}", path=path, line=1, field="images",
                hint=f"export it at most {format_size(MAX_IMAGE_BYTES, language='en')} (e.g. 3000 px wide, JPEG quality 85)",
            ))
    return found


def _derived_summary(body_html: str) -> str:
    """The first sentence of the body's first paragraph: not the body's whole text, as a table or
    list after a sentence without a full stop would join it."""
    first = _FIRST_PARAGRAPH.search(body_html)
    return _first_sentence(html_to_text(first.group(1) if first else body_html, layout="line"))


def _first_sentence(text: str, limit: int = 280) -> str:
    sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rsplit(" ", 1)[0] + "…"


def _body_line(body: str, reference: str, *, first: int) -> int:
    """The file line of the first body line that mentions ``reference`` (``first`` is the body's first line)."""
    for number, line in enumerate(body.splitlines()):
        if reference in line:
            return first + number
    return first
