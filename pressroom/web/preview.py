"""A journalist's private preview of an embargoed release, and their one-click opt-out.

``/preview/<slug>?token=...``: the token is signed for one journalist and one release. Until
the release's date the page is the release page the public will see (the site's own template,
:meth:`pressroom.site.render.Renderer.preview_page`) with an "EMBARGOED" band, ``noindex`` and
``Cache-Control: private, no-store`` (it is rendered per request, never written to ``public/``); from
its date the link redirects to the public page. Its files are served beside it with the same link:
every image (the hero too), download, the press kit and the co-issuers' logos
(``/preview/<slug>/files/<name>?token=...``).
A page view is recorded for ``pressroom journalists report`` once per link per
:data:`~pressroom.audience.media.OPEN_WINDOW`, however often a leaked link is opened.
A forged, tampered or misdirected link (another journalist's token, a release they were not sent)
gets one and the same 400 page: nothing in it tells them apart.

The release is read again only when its files change (their names, sizes and times), so a
release set back to draft stops its previews at once, and a link opened a thousand times reads
it once.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from pressroom.audience import (
    JOURNALIST_UNSUBSCRIBE,
    Journalist,
    MediaList,
    TokenError,
    preview_action,
    verify_token,
)
from pressroom.audience.media import OPEN_WINDOW
from pressroom.presskit import press_kit
from pressroom.releases import Release, load_releases
from pressroom.releases.model import PRESS_KIT
from pressroom.site.render import Renderer
from pressroom.web import pages
from pressroom.web.core import Web
from pressroom.web.security import CSP

_PRIVATE = {"Cache-Control": "private, no-store", "X-Robots-Tag": "noindex"}
_MAX_COUNTED = 10_000  # links whose last counted open is remembered in memory


class Previews:
    """What the preview pages keep between requests: releases by their files' state, the last counted open of each link."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: dict[str, Path] = {}  # slug -> the file the last whole load accepted for it
        self._releases: dict[str, tuple[tuple, Release]] = {}  # slug -> (state of its files, release)
        self._counted: OrderedDict[tuple[int, str], datetime] = OrderedDict()
        self._renderers: dict[str, Renderer] = {}  # language -> the site's page renderer (templates read once)

    def renderer(self, web: Web, language: str) -> Renderer:
        """The site's renderer for release pages in ``language``."""
        found = self._renderers.get(language)
        if found is None:
            found = Renderer(web.settings, [], language=language, prefix="", languages=web.settings.site.all_languages)
            with self._lock:
                self._renderers[language] = found
        return found

    def release(self, web: Web, slug: str) -> Release | None:
        """The release ``slug`` as its files say now, read again only when they changed."""
        source = self._sources.get(slug)
        if source is not None:
            folder = source.parent if source.name.startswith("index.") else source
            state = _state(folder)
            cached = self._releases.get(slug)
            if cached is not None and cached[0] == state:
                return cached[1]
            found = next((r for r in load_releases(web.settings, path=folder).releases if r.slug == slug), None)
            if found is not None:
                with self._lock:
                    self._releases[slug] = (state, found)
                return found
        releases = load_releases(web.settings).releases
        found = next((r for r in releases if r.slug == slug), None)
        with self._lock:
            self._sources = {r.slug: r.source for r in releases}
            self._releases.pop(slug, None)
            if found is not None:
                self._releases[slug] = (_state(found.source.parent if found.source.name.startswith("index.") else found.source), found)
        return found

    def count_open(self, web: Web, journalist: Journalist, slug: str) -> None:
        """Record an open unless this link's last one counted less than the window ago (here, then in the database)."""
        now = web.clock()
        key = (journalist.id, slug)
        with self._lock:
            last = self._counted.get(key)
            if last is not None and now - last < OPEN_WINDOW:
                return
            self._counted[key] = now
            self._counted.move_to_end(key)
            while len(self._counted) > _MAX_COUNTED:
                self._counted.popitem(last=False)
        MediaList(audience=web.audience).record_open(journalist_id=journalist.id, release=slug, now=now)


def _state(path: Path) -> tuple:
    """Names, sizes and change times of a release's file, or of the files of its bundle folder."""
    try:
        if path.is_dir():
            with os.scandir(path) as entries:
                return tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries if e.is_file()))
        stat = path.stat()
        return ((path.name, stat.st_size, stat.st_mtime_ns),)
    except OSError:
        return ()


def _journalist_for(web: Web, token: str, action: str) -> Journalist | None:
    try:
        journalist_id = verify_token(settings=web.settings, token=token, action=action, now=web.clock())
    except TokenError:
        return None
    return MediaList(audience=web.audience).get(journalist_id=journalist_id)


def _opened(web: Web, previews: Previews, slug: str, token: str, record: bool = True) -> tuple[Journalist, Release] | None:
    from pressroom.dispatch.embargo import CHANNEL
    from pressroom.ledger import Ledger

    journalist = _journalist_for(web, token, preview_action(slug))
    if journalist is None:
        return None
    if journalist.address not in Ledger.from_settings(web.settings).states(release=slug, channel=CHANNEL):
        return None  # a genuine link, of a release this journalist was never sent
    release = previews.release(web, slug)
    if release is None or release.status != "approved" or release.embargo is None:
        return None  # withdrawn
    if record and not release.is_public(web.clock()):
        previews.count_open(web, journalist, slug)
    return journalist, release


def _refused(web: Web, request: Request) -> Response:
    # One fixed answer for every bad link: which check failed is nobody's business.
    language = web.language(request)
    _ = web.translations(language).gettext
    response = pages.message(
        web, request, status=400, tone="error", language=language, eyebrow=_("Media list"), heading=_("This link does not work"),
        paragraphs=[_("We could not open this preview link. Please use the link exactly as it arrived in our email,"
                      " or ask the press contacts of the release for a new one.")],
        links=[(_("Press releases"), "/")],
    )
    response.headers.update(_PRIVATE)
    return response


async def preview(web: Web, previews: Previews, request: Request) -> Response:
    from pressroom.mail import embargo_until

    token = request.query_params.get("token", "")
    found = await run_in_threadpool(_opened, web, previews, request.path_params["slug"], token)
    if found is None:
        return _refused(web, request)
    journalist, release = found
    if release.is_public(web.clock()):
        return RedirectResponse(release.url, status_code=303, headers=_PRIVATE)
    language = web.language(request, journalist)  # their version of the release, in their words
    release = release.version(language)
    slug = release.slug

    def link(name: str) -> str:
        return f"/preview/{slug}/files/{quote(name)}?token={quote(token)}"

    html = await run_in_threadpool(
        previews.renderer(web, release.language).preview_page, release,
        until=embargo_until(release.date, web.settings, release.language), name=journalist.name or journalist.address, link=link,
    )
    return Response(html, media_type="text/html; charset=utf-8",
                    headers=_PRIVATE | {"Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer"})


async def download(web: Web, previews: Previews, request: Request) -> Response:
    # Images, downloads and the press kit too reach public/ only at the date: the journalist's link fetches them from content/.
    found = await run_in_threadpool(_opened, web, previews, request.path_params["slug"], request.query_params.get("token", ""), False)
    name = request.path_params["name"]
    if found is None:
        return _refused(web, request)
    release = found[1].version(web.language(request, found[0]))
    if name == PRESS_KIT:
        kit = await run_in_threadpool(press_kit, release=release, settings=web.settings)
        return Response(kit, media_type="application/zip", headers=_PRIVATE | {
            "Content-Disposition": f'attachment; filename="{PRESS_KIT}"'})
    files = {d.name: d.file for d in release.downloads} | {release.local_name(file): file for file in release.assets}
    for issuer in release.issuers:  # copied to public/ with the first public release that names them
        files |= issuer.logo_files
    file = files.get(name)
    if file is None:
        return _refused(web, request)
    return FileResponse(file, headers=_PRIVATE, filename=Path(name).name)


async def unsubscribe_page(web: Web, request: Request) -> Response:
    token = request.query_params.get("token", "")
    journalist = await run_in_threadpool(_journalist_for, web, token, JOURNALIST_UNSUBSCRIBE)
    if journalist is None:
        return _refused(web, request)
    return pages.page(web, request, "web/journalist_unsubscribe.html.j2", language=web.language(request, journalist),
                      journalist=journalist, token=token)


async def unsubscribe(web: Web, request: Request) -> Response:
    # RFC 8058: the token in the URL is the credential; the body is never read.
    token = request.query_params.get("token", "")

    def apply() -> Journalist | None:
        journalist = _journalist_for(web, token, JOURNALIST_UNSUBSCRIBE)
        if journalist is None:
            return None
        with web.writes:
            return MediaList(audience=web.audience).opt_out(journalist_id=journalist.id, now=web.clock(), source="web:journalist-unsubscribe")

    journalist = await run_in_threadpool(apply)
    if journalist is None:
        return _refused(web, request)
    language = web.language(request, journalist)
    _ = web.translations(language).gettext
    return pages.message(web, request, language=language, eyebrow=_("Media list"), heading=_("You are off our media list"),
                         paragraphs=[_("We will send no more media-list emails to %(address)s.") % {"address": journalist.address}],
                         links=[(_("Press releases"), "/")])


def routes(web: Web) -> list[Route]:
    bound = functools.partial
    previews = Previews()
    return [
        Route("/preview/{slug}", bound(preview, web, previews), methods=["GET"]),
        Route("/preview/{slug}/files/{name:path}", bound(download, web, previews), methods=["GET"]),
        Route("/journalists/unsubscribe", bound(unsubscribe_page, web), methods=["GET"]),
        Route("/journalists/unsubscribe", bound(unsubscribe, web), methods=["POST"]),
    ]
