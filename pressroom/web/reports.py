"""``/reports/<token>``: the reach report of a period, for the editors who were given its signed link."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from pressroom.errors import TokenError
from pressroom.tokens import open_report
from pressroom.web import pages
from pressroom.web.core import Web

__all__ = ["routes"]


def _page(web: Web, period: str) -> str:
    from pressroom.reach import Period, as_html, build_report
    from pressroom.releases import load_releases

    now = web.clock()
    chosen = None if period == "all" else Period.parse(period, tz=web.settings.site.tz)
    return as_html(build_report(settings=web.settings, releases=load_releases(web.settings).releases, period=chosen, now=now))


def routes(web: Web) -> list[BaseRoute]:
    """The editors' report route of the app."""

    async def report(request: Request) -> Response:
        try:
            period = open_report(settings=web.settings, token=request.path_params["token"], now=web.clock())
        except TokenError as exc:
            return pages.bad_link(web, request, exc.message)
        response = HTMLResponse(await run_in_threadpool(_page, web, period))
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"  # the token is in the URL
        response.headers["X-Robots-Tag"] = "noindex"
        return response

    return [Route("/reports/{token}", report, methods=["GET"])]
