"""The app: routes of every page flow, ``public/`` for the rest, middleware, lifespan, and uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from pressroom.audience import expire_pending
from pressroom.errors import PressroomError, TransientError
from pressroom.feeds import FEED_MEDIA_TYPES
from pressroom.settings import Settings
from pressroom.web import (
    bounces,
    data,
    pages,
    preferences,
    preview,
    redirect,
    reports,
    subscribe,
    unsubscribe,
)
from pressroom.web.core import Web
from pressroom.web.security import BodyLimit, SecurityHeaders, redact_access_log

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("pressroom.web")

_TOPICS_TTL = 300.0  # seconds between readings of the topics: releases change a few times a day
_EXPIRY_INTERVAL = 3600.0  # seconds between sweeps of unconfirmed addresses
_SENDER_CHECK = 60.0  # seconds between wake-ups of the subscription-email sender when no request wakes it


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _PublicFiles(StaticFiles):
    """public/ with validators (StaticFiles sends ETag and Last-Modified and answers 304) and cache policy."""

    def __init__(self, *, base_url: str, **options: Any) -> None:
        super().__init__(**options)
        self.base_url = base_url.rstrip("/")

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if isinstance(response, RedirectResponse):
            # StaticFiles builds a folder's redirect from the Host header, which the client chooses.
            target = urlsplit(response.headers["location"])
            response.headers["location"] = self.base_url + target.path + (f"?{target.query}" if target.query else "")
        return response

    def file_response(self, full_path: Any, stat_result: Any, scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        # A feed as the type the pages announce it (guessed from its name, it would be application/xml or json).
        feed_type = FEED_MEDIA_TYPES.get(os.path.basename(full_path))
        if feed_type is not None:
            response.headers["content-type"] = feed_type
        # Pages change on every publish and keep their URL: revalidate each time (a cheap 304).
        # Other files (CSS, images) may be reused for an hour.
        if str(full_path).endswith((".html", ".xml", ".json")):
            response.headers["Cache-Control"] = "no-cache"
        else:
            response.headers["Cache-Control"] = "public, max-age=3600"
        return response


def _expire(web: Web) -> int:
    cutoff = web.clock() - timedelta(days=web.web.pending_expiry_days)
    removed = expire_pending(audience=web.audience, before=cutoff)
    if removed:
        log.info("removed %d unconfirmed subscriptions older than %s", removed, cutoff.isoformat())
    return removed


def _lifespan(web: Web) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Before the first request: connect (and migrate), sweep, read the topics. Then again and again,
        # off the event loop, so no request ever waits for the releases to be read.
        await run_in_threadpool(_expire, web)
        await run_in_threadpool(web.reload_choices)
        web.mail.start()  # subscription emails, off the request path; also those queued before a restart

        async def every(seconds: float, work: Callable[[], object], what: str) -> None:
            while True:
                await asyncio.sleep(seconds)
                try:
                    await run_in_threadpool(work)
                except PressroomError as exc:
                    log.error("could not %s: %s", what, exc)

        async def watch_sender() -> None:
            # A wake-up starts a sender that died again; this one comes even when no reader does.
            while True:
                await asyncio.sleep(_SENDER_CHECK)
                web.mail.wake()

        tasks = [
            asyncio.create_task(watch_sender()),
            asyncio.create_task(every(_EXPIRY_INTERVAL, lambda: _expire(web), "expire unconfirmed subscriptions")),
            asyncio.create_task(every(_TOPICS_TTL, web.reload_choices, "reload the topics")),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await run_in_threadpool(web.mail.stop)

    return lifespan


def create_app(
    *,
    settings: Settings,
    clock: Callable[[], datetime] = _utcnow,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The ASGI app for ``settings``: the subscription pages, ``extra_routes``, then ``public/`` for every other path."""
    web = Web(settings, clock)
    public = settings.path("public")
    public.mkdir(parents=True, exist_ok=True)
    redact_access_log()

    async def stylesheet(request: Request) -> Response:
        response = FileResponse(web.stylesheet, media_type="text/css")
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response

    async def unavailable(request: Request, exc: Exception) -> Response:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return pages.unavailable(web, request)

    routes: list[BaseRoute] = [
        *subscribe.routes(web),
        *unsubscribe.routes(web),
        *preferences.routes(web),
        *data.routes(web),
        *bounces.routes(web),
        *preview.routes(web),
        *redirect.routes(web),
        *reports.routes(web),
        Route("/_pressroom/web.css", stylesheet, methods=["GET"]),
        *extra_routes,
        Mount("/", app=_PublicFiles(base_url=settings.site.base_url, directory=public, html=True, check_dir=False)),
    ]
    app = Starlette(routes=routes, lifespan=_lifespan(web), exception_handlers={TransientError: unavailable})
    app.add_middleware(BodyLimit, max_bytes=settings.web.max_body_bytes)
    app.add_middleware(SecurityHeaders, https=settings.site.base_url.startswith("https://"))
    app.state.web = web
    return app


def server(*, settings: Settings, host: str | None = None, port: int | None = None, access_log: bool = True,
           extra_routes: Sequence[BaseRoute] = ()) -> uvicorn.Server:
    """The uvicorn server ``pressroom serve`` runs (tests run the same one on loopback).

    ``X-Forwarded-For`` is believed only from the proxies in ``[web] forwarded_allow_ips``
    (none by default): otherwise any client could pick the address its limits are counted under.
    """
    import uvicorn

    proxies = settings.web.forwarded_allow_ips.strip()
    config = uvicorn.Config(
        create_app(settings=settings, extra_routes=extra_routes),
        host=host or settings.web.host,
        port=port or settings.web.port,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        server_header=False,
        access_log=access_log,
        log_level="info",
    )
    return uvicorn.Server(config)


def serve(*, settings: Settings, host: str | None = None, port: int | None = None, access_log: bool = True,
          extra_routes: Sequence[BaseRoute] = ()) -> None:
    """Run the app with uvicorn until interrupted."""
    server(settings=settings, host=host, port=port, access_log=access_log, extra_routes=extra_routes).run()
