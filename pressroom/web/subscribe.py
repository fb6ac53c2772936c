"""Subscribe (double opt-in) and confirm.

* ``POST /subscribe`` gives the same page, status and headers for every well-formed address
  (new, pending, confirmed, unsubscribed, rate-limited, bounced or erased), does the same
  database work for each (one short transaction), and sends mail only after the answer has gone,
  so neither body nor timing tells whether an address is known.
* Every request is kept with its own choices; its confirmation link names that request, so a
  second request cannot change what the first link confirms.
* ``GET``/``HEAD /confirm`` only show a button: mail scanners that open or prefetch links
  confirm nothing. Its ``POST`` confirms, once: the link then stops working, as do links of
  earlier requests, and any link issued before a later unsubscribe.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from markupsafe import escape
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pressroom.audience import (
    Requested,
    SubscribeRequest,
    TokenError,
    check_request,
    confirm_request,
    request_subscriptions,
    sign_token,
    verify_token,
)
from pressroom.dispatch.email import TRANSACTIONAL, transactional_payload
from pressroom.tokens import CONFIRM_ACTION
from pressroom.web import forms, links, pages
from pressroom.web.core import GroupCommit, Web, duration
from pressroom.web.security import client, read_form

log = logging.getLogger("pressroom.web")
ADDRESS_SLOT = "\ue000"  # a private-use character: no address or template text holds it


@dataclass
class _Room:
    """What the subscribe and confirm pages keep per app: the group commit, and the answer page rendered once per language."""

    web: Web
    subscriptions: GroupCommit
    inbox_pages: dict[tuple[str, str], tuple[str, list[tuple[bytes, bytes]]]] = field(default_factory=dict)


def subscribe_form(
    web: Web,
    request: Request,
    *,
    values: dict[str, Any] | None,
    errors: dict[str, str],
    topics: tuple[tuple[str, str], ...] | list[tuple[str, str]],
    status: int = 200,
    notice: dict[str, str] | None = None,
    language: str,
) -> Response:
    values = values or {"email": "", "name": "", "topics": (), "cadence": "per-release", "language": language}
    first_error = next(iter(errors), "email" if not values.get("email") else "")
    return pages.page(
        web,
        request,
        "web/subscribe.html.j2",
        status=status,
        language=language,
        values=values,
        errors=errors,
        topics=topics,
        languages=web.choices().languages,
        autofocus=first_error,
        notice=notice,
        consent_text=web.consent(language),
    )

async def subscribe_page(room: _Room, request: Request) -> Response:
    web = room.web
    choices = await run_in_threadpool(web.choices)
    return subscribe_form(web, request, values=None, errors={}, topics=choices.topics, language=web.language(request))

def check_your_inbox(room: _Room, request: Request, address: str, language: str) -> Response:
    web, inbox_pages = room.web, room.inbox_pages
    """The answer to every well-formed POST: rendered once per language, then only the address changes (the busiest page)."""
    key = (request.scope["path"], language)
    if key not in inbox_pages:
        translations = web.translations(language)
        _ = translations.gettext
        wait = duration(int(web.web.confirm_token_hours * 3600), translations)
        page = pages.message(
            web,
            request,
            language=language,
            eyebrow=_("Almost done"),
            heading=_("Check your inbox"),
            paragraphs=[
                _("If %(address)s can receive our emails, a message with a confirmation link is on its way to it.")
                % {"address": ADDRESS_SLOT},
                _("Open it and click the link within %(wait)s. Until you do, we send you nothing else.") % {"wait": wait},
            ],
            links=[(_("Back to the press releases"), "/")],
        )
        # The page has no form: no CSRF cookie to carry over.
        headers = [(k, v) for k, v in page.raw_headers if k not in (b"content-length", b"set-cookie")]
        inbox_pages[key] = (page.body.decode(), headers)
    html, headers = inbox_pages[key]
    response = Response(html.replace(ADDRESS_SLOT, str(escape(address))))
    response.raw_headers = [*headers, *response.raw_headers]  # its content-length, after the page's headers as made once
    return response

async def subscribe(room: _Room, request: Request) -> Response:
    web = room.web
    who = client(request)
    if not web.posts.allow(who):
        return pages.too_many(web, request, web.posts)
    form = await read_form(request)
    if isinstance(form, str):
        return pages.bad_form(web, request, form)
    # The language of the page the form was on: its consent sentence is the one agreed to.
    shown = str(form.get("lang") or "")
    language = shown if shown in web.settings.site.all_languages else web.language(request)
    _ = web.translations(language).gettext
    checked = forms.read_form(web, form, current_language=language, with_email=True)
    sent = check_your_inbox(room, request, checked.email, language)
    # A bot that fills the hidden field gets the page a person gets, and nothing happens.
    if str(form.get("website") or "").strip():
        log.info("honeypot field filled from %s: ignored", web.ip_hash(request))
        return sent
    verdict = web.csrf_verdict(request, form)
    if verdict != "ok" or checked.errors:
        topics = forms.topic_choices(web, checked.topics)
        if verdict == "ok":
            return subscribe_form(web, request, values=checked.values(), errors=checked.errors, topics=topics, status=400, language=language
            )
        notice = (
            {"tone": "error", "text": _("This form had expired or came from another site. Please check it and press Subscribe again.")}
            if verdict == "bad"
            else {"tone": "info", "text": _("Please check your details and press Subscribe to continue.")}
        )
        return subscribe_form(web, request, values=checked.values(), errors={}, topics=topics, notice=notice, status=403 if verdict == "bad" else 200,
            language=language,
        )
    form_kind = "subscribe-page" if form.get("form") == "subscribe-page" else "archive-page"
    evidence = web.evidence(
        request, form=form_kind, text=web.consent(language), topics=list(checked.topics), cadence=checked.cadence,
        language=checked.language,
    )
    client_ok = web.confirmations.allow(who)
    now = web.clock()

    def confirmation(requested: Requested) -> tuple[str, str, str]:
        # The link names the request, so a later request cannot change what this one confirms.
        expires = now + timedelta(hours=web.web.confirm_token_hours)
        token = sign_token(settings=web.settings, action=CONFIRM_ACTION, subscriber_id=requested.request_id, expires_at=expires)
        # The confirm page speaks the language the reader chose.
        link = web.link("confirm", token) + f"&lang={checked.language}"
        payload = transactional_payload(kind="confirm", subscriber_id=requested.subscriber_id, action_url=link)
        return f"confirm-{requested.request_id}", TRANSACTIONAL, payload

    requested = await room.subscriptions.submit(SubscribeRequest(
        address=checked.email, evidence=evidence, name=checked.name, language=checked.language,
        topics=tuple(checked.topics), cadence=checked.cadence, may_confirm=client_ok, confirmation=confirmation,
    ))
    if requested is not None:
        sent.background = BackgroundTask(wake_sender, web)
    return sent

async def wake_sender(web: Web) -> None:  # a coroutine: a byte down a pipe needs no worker thread
    web.mail.wake()

def register(web: Web, batch: list[SubscribeRequest]) -> list[Requested | Exception | None]:
    with web.writes:
        now = web.clock()
        return request_subscriptions(
            audience=web.audience,
            requests=batch,
            now=now,
            source="web:subscribe",
            confirmations_since=now - timedelta(days=1),
            max_confirmations=web.web.confirmations_per_address_per_day,
            site_since=now - timedelta(hours=1),
            site_max_confirmations=web.web.confirmations_per_hour,
        )

def request_id(web: Web, token: str) -> int | str:
    try:
        return verify_token(settings=web.settings, token=token, action=CONFIRM_ACTION, now=web.clock())
    except TokenError as exc:
        return exc.message

def usable(web: Web, token: str) -> int | str:
    checked = request_id(web, token)
    if isinstance(checked, int):
        try:
            check_request(audience=web.audience, request_id=checked)
        except TokenError as exc:
            return exc.message
    return checked

async def confirm_page(room: _Room, request: Request) -> Response:
    web = room.web
    token = request.query_params.get("token", "")
    checked = await run_in_threadpool(usable, web, token)
    if isinstance(checked, str):
        return pages.bad_link(web, request, checked)
    # A language asked for in the link goes on to the button's POST; without one, the subscriber's decides there.
    asked = request.query_params.get("lang", "")
    return pages.page(web, request, "web/confirm.html.j2", token=token, asked=asked if asked in web.settings.site.all_languages else "")

async def confirm(room: _Room, request: Request) -> Response:
    web = room.web
    token = request.query_params.get("token", "")
    checked = request_id(web, token)
    if isinstance(checked, str):
        return pages.bad_link(web, request, checked)
    evidence = web.evidence(request, form="confirm-button", text=web.consent(web.language(request)))

    def apply():
        with web.writes:
            return confirm_request(audience=web.audience, request_id=checked, now=web.clock(), source="web:confirm", evidence=evidence)

    try:
        subscriber = await run_in_threadpool(apply)
    except TokenError as exc:
        return pages.bad_link(web, request, exc.message)
    preferences = "/preferences?token=" + sign_token(settings=web.settings, action="preferences", subscriber_id=subscriber.id)
    language = web.language(request, subscriber)
    _ = web.translations(language).gettext
    if subscriber.cadence == "weekly":
        what = _("%(address)s will receive a weekly digest of our press releases on the topics you chose.") if subscriber.topics \
            else _("%(address)s will receive a weekly digest of our press releases.")
    else:
        what = _("%(address)s will receive our press releases as they are published, on the topics you chose.") \
            if subscriber.topics else _("%(address)s will receive our press releases as they are published.")
    return pages.message(
        web,
        request,
        language=language,
        eyebrow=_("Subscribed"),
        heading=_("You are subscribed"),
        paragraphs=[
            what % {"address": subscriber.address},
            _("Every email has a link to change your preferences or unsubscribe."),
        ],
        links=[(_("Change your preferences"), preferences), (_("Read the press releases"), "/")],
        background=BackgroundTask(
            links.send_subscription_email,
            web,
            kind="welcome",
            subscriber_id=subscriber.id,
            action_url="",
            key=f"welcome-{checked}",
        ),
    )


def routes(web: Web) -> list[Route]:
    room = _Room(web=web, subscriptions=GroupCommit(functools.partial(register, web)))
    bound = functools.partial
    return [
        Route("/subscribe", bound(subscribe_page, room), methods=["GET"]),
        Route("/subscribe", bound(subscribe, room), methods=["POST"]),
        Route("/confirm", bound(confirm_page, room), methods=["GET"]),  # HEAD too: Starlette answers HEAD for GET routes
        Route("/confirm", bound(confirm, room), methods=["POST"]),
    ]
