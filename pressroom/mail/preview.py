"""Previews for comms staff: an email as HTML, text, .eml and PNG screenshots (375 px and 600 px).

Screenshots use Debian's headless Chromium through Playwright (the ``preview`` extra). Images
on the public site are served from local files when they exist (release bundles, public/),
so a preview of an unpublished release still shows its hero image and never needs the network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from pressroom import images
from pressroom.errors import ConfigError, ReleaseError
from pressroom.mail.compose import compose_digest, compose_release
from pressroom.mail.message import Composed, Recipient
from pressroom.releases.loading import load_releases
from pressroom.releases.model import LoadResult, Release
from pressroom.settings import Settings

__all__ = [
    "CHROMIUM", "CHROMIUM_ARGS", "PreviewFiles", "local_assets", "screenshots", "write_digest_preview", "write_files",
    "write_preview",
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDTHS = (375, 600)


@dataclass(frozen=True)
class PreviewFiles:
    """Where a preview was written."""

    html: Path
    text: Path
    eml: Path
    png: tuple[Path, ...]

    def all(self) -> list[Path]:
        return [self.html, self.text, self.eml, *self.png]


def local_assets(*, settings: Settings, releases: Sequence[Release]) -> dict[str, Path]:
    """Public image URL -> local file, for the releases' assets and anything already built in public/."""
    assets: dict[str, Path] = {}
    for release in releases:
        for file in release.assets:
            assets[release.url + release.local_name(file)] = file
        for name, file in release.images:  # the email's sized copies, before the site build has made them
            assets.setdefault(release.url + images.sized_name(name, images.EMAIL_WIDTH), file)
        for issuer in release.issuers:  # logos and the EU emblem live on the site, which may not be built yet
            for path, file in issuer.logo_files.items():
                assets[f"{settings.site.base_url}/{path}"] = file
                # An SVG logo's PNG twin, before the build draws it: the browser shows the SVG in its place.
                assets.setdefault(f"{settings.site.base_url}/{images.email_logo_name(path)}", file)
    for file in (settings.path("templates") / "site" / "static").glob("*"):
        assets[f"{settings.site.base_url}/static/{file.name}"] = file
    return assets


def screenshots(
    *,
    html: str,
    directory: Path,
    stem: str,
    settings: Settings,
    assets: Mapping[str, Path] | None = None,
    widths: Sequence[int] = WIDTHS,
    dark: Sequence[int] = (),
) -> list[Path]:
    """Render ``html`` in headless Chromium at each width; write ``<stem>-<width>.png`` full-page shots,
    and ``<stem>-<width>-dark.png`` for each width in ``dark`` (prefers-color-scheme: dark).

    Requests for ``assets`` URLs are answered from the local files; files under public/ are
    used for other site URLs; every other request is refused, so previews never reach the network.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError(
            "screenshots need Playwright", hint="pip install 'pressroom[preview]' (Chromium comes from Debian)"
        ) from None
    directory.mkdir(parents=True, exist_ok=True)
    assets = dict(assets or {})
    public = settings.path("public")
    site_host = urlsplit(settings.site.base_url).netloc

    def local_file(url: str) -> Path | None:
        if url in assets:
            return assets[url]
        parts = urlsplit(url)
        if parts.netloc == site_host and parts.path:
            candidate = (public / parts.path.lstrip("/")).resolve()
            if candidate.is_file() and candidate.is_relative_to(public.resolve()):
                return candidate
        return None

    def route(route, request) -> None:  # type: ignore[no-untyped-def]
        file = local_file(request.url)
        if file is not None:
            route.fulfill(path=str(file))
        else:
            route.abort()

    def shoot() -> list[Path]:
        written: list[Path] = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for width, scheme in [(w, "light") for w in widths] + [(w, "dark") for w in dark]:
                    page = browser.new_page(
                        viewport={"width": width, "height": 800}, device_scale_factor=1, color_scheme=scheme
                    )
                    page.route("**/*", route)
                    page.set_content(html, wait_until="load")
                    path = directory / f"{stem}-{width}{'-dark' if scheme == 'dark' else ''}.png"
                    page.screenshot(path=str(path), full_page=True)
                    page.close()
                    written.append(path)
            finally:
                browser.close()
        return written

    # Playwright's sync API refuses to run inside an event loop (a Prefect flow, an async test,
    # another Playwright session); a thread of its own always works.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(shoot).result()


def write_files(
    *,
    composed: Composed,
    settings: Settings,
    releases: Sequence[Release],
    directory: Path | None = None,
    shots: bool = True,
) -> PreviewFiles:
    """Write ``<key>.html``, ``.txt``, ``.eml`` (to a sample recipient) and the screenshots of an
    email already composed (e.g. by the publish flow) to ``directory`` (default var/preview/).
    ``releases`` are the ones it shows, so their images are served from disk."""
    directory = directory or settings.path("var") / "preview"
    stem = composed.key
    assets = local_assets(settings=settings, releases=releases)
    directory.mkdir(parents=True, exist_ok=True)
    recipient = Recipient(
        address="preview@example.org",
        unsubscribe_url=f"{settings.site.base_url}/unsubscribe/preview",
        preferences_url=f"{settings.site.base_url}/preferences/preview",
    )
    html_path, text_path, eml_path = (directory / f"{stem}{suffix}" for suffix in (".html", ".txt", ".eml"))
    html_path.write_text(composed.html, encoding="utf-8")
    text_path.write_text(composed.text, encoding="utf-8")
    eml_path.write_bytes(composed.message(recipient))
    png = (
        screenshots(html=composed.html, directory=directory, stem=stem, settings=settings, assets=assets, dark=(375,))
        if shots
        else []
    )
    return PreviewFiles(html=html_path, text=text_path, eml=eml_path, png=tuple(png))


def write_preview(
    *, settings: Settings, slug: str | None, directory: Path | None = None, shots: bool = True, language: str = "",
) -> PreviewFiles:
    """Write the preview of the email of release ``slug`` (any status).

    Files go to ``var/preview/`` unless ``directory`` is given. Raises ReleaseError when the
    release does not exist or is invalid. ``language``: the email a reader of that language gets
    (its version, its words), in ``var/preview/<language>/``.
    """
    release = _release_of(load_releases(settings), slug, settings)
    composed = compose_release(release=release, settings=settings, language=language)
    return write_files(composed=composed, settings=settings, releases=[release.version(language)],
                       directory=_directory(settings, directory, language), shots=shots)


def write_digest_preview(
    *, settings: Settings, releases: Sequence[Release], period_start: datetime, period_end: datetime,
    directory: Path | None = None, shots: bool = True, language: str = "",
) -> PreviewFiles:
    """Write the preview of the digest of ``releases`` (the digest flow's selection) for the period, in ``language``.

    Raises ReleaseError when the period has no release to send.
    """
    if not releases:
        zone = settings.site.tz
        raise ReleaseError(
            f"no release for the digest of {period_start.astimezone(zone):%Y-%m-%d} to {period_end.astimezone(zone):%Y-%m-%d} "
            f"(Monday to Monday, {zone.key})",
            path=settings.releases_dir,
            field="date",
            hint="pass --now to preview the digest of another week",
        )
    chosen = [release.version(language) for release in releases]
    composed = compose_digest(releases=chosen, settings=settings, period_start=period_start, period_end=period_end,
                              language=language)
    return write_files(composed=composed, settings=settings, releases=chosen,
                       directory=_directory(settings, directory, language), shots=shots)


def _directory(settings: Settings, directory: Path | None, language: str) -> Path | None:
    return (directory or settings.path("var") / "preview") / language if language else directory


def _release_of(loaded: LoadResult, slug: str | None, settings: Settings) -> Release:
    """The valid release ``slug``; else its file's problem, or a ReleaseError naming the known slugs."""
    found = [r for r in loaded.releases if r.slug == slug]
    if found:
        return found[0]
    problems = [p for p in loaded.problems if slug and slug in str(p.path)]
    if problems:
        raise problems[0]
    known = ", ".join(r.slug for r in loaded.releases[:10]) or "none"
    raise ReleaseError(f"no release with slug {slug!r}", path=settings.releases_dir, field="slug", hint=f"known slugs: {known}")
