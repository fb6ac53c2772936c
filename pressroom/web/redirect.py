"""``/r/<token>``: a counted link. Adds one click to the aggregate counts and redirects (302) to its target.

A token that is not ours (forged, damaged, signed with a retired key) gets 404 and no redirect
anywhere: the route is never an open redirect. Nothing about the client is stored or logged: the
address and user agent are hashed in memory only (:mod:`pressroom.reach`), and the access log line
of a counted link carries no client address.
"""

from __future__ import annotations

import logging
from datetime import UTC, timedelta

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from pressroom.errors import TokenError
from pressroom.ledger.counts import ClickRow, Counts
from pressroom.reach import Click, ClickCounter
from pressroom.tokens import open_link_count
from pressroom.web import pages
from pressroom.web.core import GroupCommit, Web
from pressroom.web.security import client

__all__ = ["routes"]

log = logging.getLogger("pressroom.web")

PREFIX = "/r/"


class _NoClientAddress(logging.Filter):
    """On uvicorn's access logger: a counted link's line says which link and what answer, not who asked."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and args[2].startswith(PREFIX):
            record.args = ("-", *args[1:])
        return True


def _quiet_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(existing, _NoClientAddress) for existing in access.filters):
        access.addFilter(_NoClientAddress())


def routes(web: Web) -> list[BaseRoute]:
    """The counted-link route of the app."""
    _quiet_access_log()
    counter = ClickCounter(burst=timedelta(seconds=web.settings.analytics.burst_seconds))
    store: list[Counts] = []  # connected on the first click: an app that never counts never opens it

    def record(batches: list[list[Click]]) -> list[None]:
        if not store:
            store.append(Counts(settings=web.settings))
        store[0].add([ClickRow(release=c.link.release, channel=c.link.channel, language=c.link.language, link=c.link.link,
                               hour=c.hour, people=c.people, machines=c.machines) for clicks in batches for c in clicks])
        return [None] * len(batches)

    # The clicks that arrive while one batch is written go in the next one: a scanner opening
    # every link of a large mailing costs a few transactions, not one per click.
    writes = GroupCommit(record)

    async def follow(request: Request) -> Response:
        try:
            link = open_link_count(settings=web.settings, token=request.path_params["token"])
        except TokenError:
            link = None
        if link is None or not link.link.startswith(("https://", "http://")):
            _ = web.translations(web.language(request)).gettext
            return pages.message(web, request, status=404, tone="error", eyebrow=_("Sorry"),
                                 heading=_("This link does not work"),
                                 paragraphs=[_("It was not made by this site, or it was changed on the way.")])
        clicks = counter.click(link=link, client=client(request), user_agent=request.headers.get("user-agent", ""),
                               head=request.method == "HEAD", now=web.clock().astimezone(UTC))
        if clicks:
            await writes.submit(clicks)
        response = RedirectResponse(link.link, status_code=302)
        response.headers["Cache-Control"] = "no-store"  # every click reaches the count, none is served from a cache
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    return [Route(PREFIX + "{token}", follow, methods=["GET", "HEAD"])]
