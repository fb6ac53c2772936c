"""The subscriber a link is for, and the one seam through which the app sends a subscription email."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from pressroom.audience import Subscriber, TokenError, verify_token
from pressroom.errors import PressroomError
from pressroom.i18n import N_
from pressroom.web.core import Web, language_label
from pressroom.web.pages import bad_link

__all__ = ["linked_subscriber", "send_subscription_email", "subscriber_for"]

log = logging.getLogger("pressroom.web")


def subscriber_for(web: Web, token: str, action: str) -> Subscriber | str:
    """The subscriber a link token is for, or the reason it cannot be used."""
    try:
        subscriber_id = verify_token(settings=web.settings, token=token, action=action, now=web.clock())
    except TokenError as exc:
        return exc.message
    subscriber = web.audience.get(subscriber_id=subscriber_id)
    if subscriber is None:
        return N_("the subscription it belongs to no longer exists (erased, or never confirmed in time)")
    return subscriber


async def linked_subscriber(web: Web, request: Request, action: str) -> tuple[Subscriber, str] | Response:
    """(subscriber, token) of the link's ``token`` for ``action``; the bad-link page when it cannot be used."""
    token = request.query_params.get("token", "")
    subscriber = await run_in_threadpool(subscriber_for, web, token, action)
    if isinstance(subscriber, str):
        return bad_link(web, request, subscriber)
    return subscriber, token


async def send_subscription_email(web: Web, *, kind: str, subscriber_id: int, action_url: str, key: str) -> None:
    """Record one subscription email (``confirm``, ``welcome``, ``unsubscribed``) in the ledger: the one place the app sends.

    Runs after the answer has gone (a background task); the app's sender (:attr:`mail`) delivers
    it within a second, retries it with backoff while the mail server is away, and any worker
    can deliver it too. ``key`` names the email once: the same key is never sent twice.
    """
    from pressroom.dispatch import enqueue_transactional

    def enqueue() -> bool:
        subscriber = web.audience.get(subscriber_id=subscriber_id)
        if subscriber is None:
            return False
        names = dict(web.choices().topics)
        # The reader's choices in words, as the welcome email states them.
        return enqueue_transactional(
            settings=web.settings, kind=kind, subscriber_id=subscriber_id, address=subscriber.address,
            action_url=action_url, key=key, now=web.clock(),
            topics=[names.get(slug, slug) for slug in subscriber.topics], language=language_label(subscriber.language),
        )

    try:
        if await run_in_threadpool(enqueue):
            web.mail.wake()
    except PressroomError as exc:
        log.error("could not queue the %s email to subscriber %s: %s", kind, subscriber_id, exc)
