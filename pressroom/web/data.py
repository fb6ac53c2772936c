"""My data: what we keep, a JSON download (GDPR art. 15 and 20) and erasure (art. 17).

Erasure is :func:`pressroom.audience.erase`, the one erase function the CLI uses too.
"""

from __future__ import annotations

import contextlib
import functools
import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pressroom.audience import Subscriber, erase
from pressroom.web import links, pages
from pressroom.web.core import Web
from pressroom.web.preferences import token_post


async def data_view(web: Web, request: Request, subscriber: Subscriber, token: str, *, error: str = "", status: int = 200) -> Response:
    events = await run_in_threadpool(lambda: web.audience.events(address=subscriber.address))
    names = dict(web.choices().topics)
    return pages.page(
        web,
        request,
        "web/data.html.j2",
        status=status,
        language=web.language(request, subscriber),
        subscriber=subscriber,
        token=token,
        events=events,
        topic_names=[names.get(slug, slug) for slug in subscriber.topics],
        error=error,
    )

async def data_page(web: Web, request: Request) -> Response:
    linked = await links.linked_subscriber(web, request, "preferences")
    if isinstance(linked, Response):
        return linked
    subscriber, token = linked
    return await data_view(web, request, subscriber, token)

async def data(web: Web, request: Request) -> Response:
    checks = await token_post(web, request)
    if isinstance(checks, Response):
        return checks
    subscriber, token, form = checks
    language = web.language(request, subscriber)
    _ = web.translations(language).gettext
    if web.csrf_verdict(request, form) != "ok":
        return await data_view(web, request, subscriber, token, error=_("This form had expired. Please try again."), status=403)
    action = form.get("action")
    if action == "export":
        document = await run_in_threadpool(export, web, subscriber)
        body = json.dumps(document, ensure_ascii=False, indent=2, default=str) + "\n"
        return Response(
            body,
            media_type="application/json; charset=utf-8",
            headers={
                "Content-Disposition": 'attachment; filename="my-subscription-data.json"',
                "Cache-Control": "no-store",
            },
        )
    if action == "erase":
        if form.get("confirm") != "yes":
            return await data_view(
                web, request, subscriber, token, error=_("Tick the box to confirm that everything should be erased."), status=400
            )

        def forget() -> None:
            with web.writes:
                erase(settings=web.settings, subscriber_id=subscriber.id)

        await run_in_threadpool(forget)
        return pages.message(
            web,
            request,
            language=language,
            eyebrow=_("Erased"),
            heading=_("Your data is erased"),
            paragraphs=[
                _("We deleted your subscription, your address, your name, your choices and the record of your consent. "
                  "You will receive nothing more from us, and the links in our earlier emails no longer work.")
            ],
            links=[(_("Read the press releases"), "/")],
        )
    return await data_view(web, request, subscriber, token, error=_("Choose download or erase."), status=400)


def export(web: Web, subscriber: Subscriber) -> dict[str, Any]:
    """Everything kept about one subscriber, as a JSON-ready document."""
    events = []
    for event in web.audience.events(address=subscriber.address):
        detail: Any = event.detail
        with contextlib.suppress(ValueError):
            detail = json.loads(event.detail) if event.detail.startswith("{") else event.detail
        events.append({"kind": event.kind, "at": event.at.isoformat(), "source": event.source, "detail": detail})
    settings = web.settings
    return {
        "exported_at": web.clock().isoformat(),
        "controller": {"name": settings.site.name, "address": settings.site.postal_address, "site": settings.site.base_url},
        "subscriber": {
            "address": subscriber.address,
            "name": subscriber.name,
            "language": subscriber.language,
            "status": subscriber.status,
            "cadence": subscriber.cadence,
            "topics": list(subscriber.topics),
            "created_at": subscriber.created_at.isoformat(),
            "updated_at": subscriber.updated_at.isoformat(),
            "confirmed_at": subscriber.confirmed_at.isoformat() if subscriber.confirmed_at else None,
            "unsubscribed_at": subscriber.unsubscribed_at.isoformat() if subscriber.unsubscribed_at else None,
        },
        "suppressed": web.audience.is_suppressed(address=subscriber.address),
        "consent_events": events,
    }


def routes(web: Web) -> list[Route]:
    return [
        Route("/data", functools.partial(data_page, web), methods=["GET"]),
        Route("/data", functools.partial(data, web), methods=["POST"]),
    ]
