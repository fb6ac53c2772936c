"""A journalist's private preview of an embargoed release, and their one-click opt-out.

``/preview/<slug>?token=...``: the token is signed for one journalist and one release. Until
the release's date the page shows it with an "EMBARGOED" band, ``noindex`` and ``Cache-Control:
private, no-store`` (it is rendered per request, never written to ``public/``); from its date
the link redirects to the public page. Its hero image is served beside it with the same link
(``/preview/<slug>/hero?token=...``), and so are its downloads (``/preview/<slug>/files/<name>?token=...``). Every open is recorded for ``pressroom journalists report``.
A forged, tampered or misdirected link (another journalist's token, a release they were not sent)
gets one and the same 400 page: nothing in it tells them apart.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from pressroom.audience import JOURNALIST_UNSUBSCRIBE, Journalist, MediaList, TokenError, preview_action, verify_token
from pressroom.releases import Release, load_releases
from pressroom.web.core import Web

_PRIVATE = {"Cache-Control": "private, no-store", "X-Robots-Tag": "noindex"}


def routes(web: Web) -> list[Route]:
    def _media() -> MediaList:
        return MediaList(audience=web.audience)

    def journalist_for(token: str, action: str) -> Journalist | None:
        try:
            journalist_id = verify_token(settings=web.settings, token=token, action=action, now=web.clock())
        except TokenError:
            return None
        return _media().get(journalist_id=journalist_id)

    sources: dict[str, Path] = {}  # slug -> the file the last whole load of content/releases accepted for it

    def current(slug: str) -> Release | None:
        """The release ``slug`` as its file says now, so a release set back to draft stops its previews at
        once. Read alone (a millisecond, not the whole archive's cache) while its file is where the last
        whole load found it."""
        source = sources.get(slug)
        if source is not None:
            alone = load_releases(web.settings, path=source.parent if source.name.startswith("index.") else source)
            found = next((r for r in alone.releases if r.slug == slug), None)
            if found is not None:
                return found
        releases = load_releases(web.settings).releases
        sources.clear()
        sources.update((r.slug, r.source) for r in releases)
        return next((r for r in releases if r.slug == slug), None)

    def opened(slug: str, token: str, record: bool = True) -> tuple[Journalist, Release] | None:
        from pressroom.dispatch.embargo import CHANNEL
        from pressroom.ledger import Ledger

        journalist = journalist_for(token, preview_action(slug))
        if journalist is None:
            return None
        if journalist.address not in Ledger.from_settings(web.settings).states(release=slug, channel=CHANNEL):
            return None  # a genuine link, of a release this journalist was never sent
        release = current(slug)
        if release is None or release.status != "approved" or release.embargo is None:
            return None  # withdrawn
        if record and not release.is_public(web.clock()):
            _media().record_open(journalist_id=journalist.id, release=slug, now=web.clock())
        return journalist, release

    def refused(request: Request) -> Response:
        # One fixed answer for every bad link: which check failed is nobody's business.
        language = web.language(request)
        _ = web.translations(language).gettext
        response = web.message(
            request, status=400, tone="error", language=language, eyebrow=_("Media list"), heading=_("This link does not work"),
            paragraphs=[_("We could not open this preview link. Please use the link exactly as it arrived in our email,"
                          " or ask the press contacts of the release for a new one.")],
            links=[(_("Press releases"), "/")],
        )
        response.headers.update(_PRIVATE)
        return response

    async def preview(request: Request) -> Response:
        from pressroom.mail import embargo_until

        found = await run_in_threadpool(opened, request.path_params["slug"], request.query_params.get("token", ""))
        if found is None:
            return refused(request)
        journalist, release = found
        if release.is_public(web.clock()):
            return RedirectResponse(release.url, status_code=303, headers=_PRIVATE)
        token = request.query_params["token"]
        language = web.language(request, journalist)  # their version of the release, in their words
        release = release.version(language)
        response = web.page(request, "web/preview.html.j2", language=language, release=release, journalist=journalist,
                            until=embargo_until(release.date, web.settings, language),
                            hero=f"/preview/{release.slug}/hero?token={token}" if release.hero and release.hero.file else "",
                            downloads=[(d, f"/preview/{release.slug}/files/{quote(d.name)}?token={quote(token)}")
                                       for d in release.downloads])
        response.headers.update(_PRIVATE)
        return response

    async def hero(request: Request) -> Response:
        # The hero is copied to public/ only at the date; until then the preview serves it from content/.
        found = await run_in_threadpool(opened, request.path_params["slug"], request.query_params.get("token", ""), False)
        if found is None or found[1].hero is None or found[1].hero.file is None:
            return refused(request)
        return FileResponse(found[1].hero.file, headers=_PRIVATE)

    async def download(request: Request) -> Response:
        # Downloads too reach public/ only at the date: the journalist's link fetches them from content/.
        found = await run_in_threadpool(opened, request.path_params["slug"], request.query_params.get("token", ""), False)
        name = request.path_params["name"]
        file = next((d.file for d in found[1].downloads if d.name == name), None) if found else None
        if file is None:
            return refused(request)
        return FileResponse(file, headers=_PRIVATE, filename=Path(name).name)

    async def unsubscribe_page(request: Request) -> Response:
        token = request.query_params.get("token", "")
        journalist = await run_in_threadpool(journalist_for, token, JOURNALIST_UNSUBSCRIBE)
        if journalist is None:
            return refused(request)
        return web.page(request, "web/journalist_unsubscribe.html.j2", language=web.language(request, journalist),
                        journalist=journalist, token=token)

    async def unsubscribe(request: Request) -> Response:
        # RFC 8058: the token in the URL is the credential; the body is never read.
        token = request.query_params.get("token", "")

        def apply() -> Journalist | None:
            journalist = journalist_for(token, JOURNALIST_UNSUBSCRIBE)
            if journalist is None:
                return None
            with web.writes:
                return _media().opt_out(journalist_id=journalist.id, now=web.clock(), source="web:journalist-unsubscribe")

        journalist = await run_in_threadpool(apply)
        if journalist is None:
            return refused(request)
        language = web.language(request, journalist)
        _ = web.translations(language).gettext
        return web.message(request, language=language, eyebrow=_("Media list"), heading=_("You are off our media list"),
                           paragraphs=[_("We will send no more media-list emails to %(address)s.") % {"address": journalist.address}],
                           links=[(_("Press releases"), "/")])

    return [
        Route("/preview/{slug}", preview, methods=["GET"]),
        Route("/preview/{slug}/hero", hero, methods=["GET"]),
        Route("/preview/{slug}/files/{name:path}", download, methods=["GET"]),
        Route("/journalists/unsubscribe", unsubscribe_page, methods=["GET"]),
        Route("/journalists/unsubscribe", unsubscribe, methods=["POST"]),
    ]
