"""Unsubscribe: a page with one button, and the RFC 8058 one-click POST.

The signed token in the URL is the only credential (no login, no CSRF token, no further page):
mail clients POST ``List-Unsubscribe=One-Click`` to the URL from the header. Unsubscribe links
work for ever, as RFC 8058 expects. Not rate-limited per client: mailbox providers send these
from a few shared addresses.
"""

from __future__ import annotations

import functools

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pressroom.audience import Subscriber, preferences_url
from pressroom.web import links, pages
from pressroom.web.core import Web


def _unsubscribed(
    web: Web, request: Request, *, language: str, paragraph: str, background: BackgroundTask | None = None
) -> Response:
    """The page that says an address gets nothing more, for a first unsubscribe and for a repeated one alike."""
    _ = web.translations(language).gettext
    return pages.message(
        web,
        request,
        language=language,
        heading=_("You are unsubscribed"),
        paragraphs=[paragraph],
        links=[(_("Subscribe again"), "/subscribe"), (_("Read the press releases"), "/")],
        background=background,
    )


async def unsubscribe_page(web: Web, request: Request) -> Response:
    linked = await links.linked_subscriber(web, request, "unsubscribe")
    if isinstance(linked, Response):
        return linked
    subscriber, token = linked
    preferences = preferences_url(settings=web.settings, subscriber_id=subscriber.id)
    language = web.language(request, subscriber)
    _ = web.translations(language).gettext
    if subscriber.status == "unsubscribed":
        return _unsubscribed(
            web,
            request,
            language=language,
            paragraph=_("%(address)s receives no press releases from us.") % {"address": subscriber.address},
        )
    return pages.page(
        web,
        request,
        "web/unsubscribe.html.j2",
        language=language,
        subscriber=subscriber,
        token=token,
        preferences_href=preferences,
    )


async def unsubscribe(web: Web, request: Request) -> Response:
    # The body is not needed to act (and is never read): the token is in the URL.
    token = request.query_params.get("token", "")
    evidence = web.evidence(request, form="unsubscribe", text="Unsubscribe")

    def apply() -> tuple[Subscriber, bool] | str:
        subscriber = links.subscriber_for(web, token, "unsubscribe")
        if isinstance(subscriber, str):
            return subscriber
        if subscriber.status == "unsubscribed":
            return subscriber, False
        with web.writes:
            changed = web.audience.unsubscribe(subscriber_id=subscriber.id, now=web.clock(), source="web:unsubscribe", evidence=evidence)
        return changed, True

    outcome = await run_in_threadpool(apply)
    if isinstance(outcome, str):
        return pages.bad_link(web, request, outcome)
    subscriber, changed = outcome
    language = web.language(request, subscriber)
    _ = web.translations(language).gettext
    return _unsubscribed(
        web,
        request,
        language=language,
        paragraph=_("We will send no more press releases to %(address)s.") % {"address": subscriber.address},
        background=BackgroundTask(
            links.send_subscription_email,
            web,
            kind="unsubscribed",
            subscriber_id=subscriber.id,
            action_url=f"{web.settings.site.base_url}/subscribe",
            key=f"unsubscribed-{subscriber.id}-{int(web.clock().timestamp())}",
        )
        if changed
        else None,
    )


def routes(web: Web) -> list[Route]:
    return [
        Route("/unsubscribe", functools.partial(unsubscribe_page, web), methods=["GET"]),
        Route("/unsubscribe", functools.partial(unsubscribe, web), methods=["POST"]),
    ]
