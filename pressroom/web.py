"""The small public web app: subscribe (double opt-in), confirm, unsubscribe (RFC 8058), preferences, data.

``pressroom serve`` runs it with uvicorn. It also serves ``public/`` (ETag, Last-Modified,
304s), so one process is the whole public site.

=====================  ==========================================================================
GET  /subscribe        the form (also embedded, without a token, in every archive page)
POST /subscribe        records a pending subscriber and emails a confirmation link
GET  /confirm          ``?token=`` pending -> confirmed, with consent evidence
GET  /unsubscribe      ``?token=`` a page with one button
POST /unsubscribe      ``?token=`` RFC 8058 one-click: no login, no CSRF token (the link's token
                       authenticates), no further page; answers 200
GET  /preferences      ``?token=`` topics, cadence, language, name; POST saves them
GET  /data             ``?token=`` what we keep; POST ``action=export`` (JSON) or ``action=erase``
=====================  ==========================================================================

Abuse and privacy, and why each is built the way it is:

* CSRF. The app's own forms carry a signed token bound to a random cookie (double submit), so a
  token scraped by another site is useless without the victim's cookie. The subscribe form
  embedded in the *static* archive pages cannot carry a per-visitor token, so a POST without a
  token is accepted only when its ``Origin`` (or, failing that, ``Referer``) is this site;
  browsers set ``Origin`` on every cross-site POST and scripts cannot forge it. A POST with
  neither header gets the form back, filled in, with a fresh token: nothing happens until the
  person presses Subscribe once more. A wrong token or a foreign origin gets 403 and the same
  filled-in form.
* Rate limits (``[web]`` settings) are counted in this process: one ``pressroom serve`` per site
  is the supported setup, and a restart forgets the counts. Confirmation emails per address are
  counted in the database (consent events), so they survive restarts.
* Enumeration. ``POST /subscribe`` gives the same page for every well-formed address (new,
  pending, confirmed, unsubscribed, rate-limited or bounced) and sends mail only after the
  answer has gone, so neither body nor timing tells whether an address is known.
* Consent evidence: every request, confirmation, change and unsubscribe is an append-only
  consent event with the time, a keyed hash of the client address (an IPv4 space is too small
  for a plain hash to hide anything), the form and its version, and the exact text agreed to.
* Pages behind links carry their token in the URL, so every page of the app says
  ``Referrer-Policy: no-referrer`` and ``Cache-Control: no-store``; no page has any script.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
import unicodedata
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pressroom.audience import (
    AddressError,
    Audience,
    Subscriber,
    TokenError,
    erase,
    expire_pending,
    normalise_address,
    preferences_url,
    request_subscription,
    sign_token,
    unsubscribe_url,
    verify_token,
)
from pressroom.errors import PressroomError, TemplateError, TransientError
from pressroom.settings import Settings

__all__ = ["create_app", "serve"]

log = logging.getLogger("pressroom.web")

CADENCES = ("per-release", "weekly")
_CSRF_COOKIE = "pressroom_csrf"
_CSRF_MAX_AGE = 12 * 3600  # a form left open over lunch still works
_MAX_BODY = 32 * 1024  # every form here is a few hundred bytes
_TOPICS_TTL = 300.0  # seconds between readings of the topics: releases change a few times a day
_EXPIRY_INTERVAL = 3600.0  # seconds between sweeps of unconfirmed addresses
_SEND_RETRIES = (0.0, 2.0, 10.0)  # pauses before each attempt at a subscription email
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")
_HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{3,8}$")
_LINK_IN_NAME = re.compile(r"://|www\.|@|\.(?:com|net|org|info|biz|io|co|ru|cn|xyz|top|site|online|link|click)\b", re.IGNORECASE)
# Names end up in headers and greetings: drop controls, format characters and line separators.
_UNSAFE_IN_NAME = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}
_LANGUAGE_NAMES = {
    "bg": "Български", "cs": "Čeština", "da": "Dansk", "de": "Deutsch", "el": "Ελληνικά", "en": "English",
    "es": "Español", "et": "Eesti", "fi": "Suomi", "fr": "Français", "ga": "Gaeilge", "hr": "Hrvatski",
    "hu": "Magyar", "it": "Italiano", "lt": "Lietuvių", "lv": "Latviešu", "mt": "Malti", "nl": "Nederlands",
    "pl": "Polski", "pt": "Português", "ro": "Română", "sk": "Slovenčina", "sl": "Slovenščina", "sv": "Svenska",
}
# A strict policy is possible because no page has script; inline style only for the brand colour.
_CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def clean_name(value: str) -> str:
    """A name as we store it: one line, no control or invisible format characters, at most 100 characters."""
    kept = "".join(" " if unicodedata.category(ch) in _UNSAFE_IN_NAME else ch for ch in value)
    return " ".join(kept.split())[:100]


# --------------------------------------------------------------------------- building blocks


class _Limiter:
    """Token buckets per key: ``limit`` events per ``period`` seconds, refilled smoothly.

    Thread-safe (handlers run in a thread pool); in memory, for this process only.
    """

    def __init__(self, *, limit: int, period: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = float(limit)
        self.rate = limit / period
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Take one token for ``key``; False when its bucket is empty."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.limit, now))
            tokens = min(self.limit, tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            if len(self._buckets) > 100_000:
                # Full buckets carry no information: drop them so the table cannot grow without bound.
                self._buckets = {
                    k: (t, at) for k, (t, at) in self._buckets.items() if t + (now - at) * self.rate < self.limit
                }
            return allowed

    def retry_after(self) -> int:
        """Seconds until one token is back, for the Retry-After header."""
        return max(1, int(1.0 / self.rate + 0.999))


class _Csrf:
    """Signed form tokens bound to a random cookie (``nonce.issued.mac``)."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"pressroom-csrf\x00" + secret.encode()).digest()

    def _mac(self, nonce: str, issued: int) -> str:
        return hmac.new(self._key, f"{nonce}.{issued}".encode(), hashlib.sha256).hexdigest()[:32]

    def token(self, nonce: str) -> str:
        issued = int(time.time())
        return f"{nonce}.{issued}.{self._mac(nonce, issued)}"

    def valid(self, token: str, cookie_nonce: str | None) -> bool:
        parts = token.split(".")
        if len(parts) != 3 or not cookie_nonce or not parts[1].isdigit():
            return False
        nonce, issued, mac = parts[0], int(parts[1]), parts[2]
        fresh = 0 <= time.time() - issued <= _CSRF_MAX_AGE
        return fresh and hmac.compare_digest(nonce, cookie_nonce) and hmac.compare_digest(mac, self._mac(nonce, issued))


class _SecurityHeaders:
    """Headers every response gets, static files included."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.headers = [
            (b"x-content-type-options", b"nosniff"),
            # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on the
            # archive form's POST, and the Origin is what vouches for that form (see CSRF above).
            # Pages whose URL holds a token set no-referrer themselves.
            (b"referrer-policy", b"same-origin"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
        ]
        if https:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    header for header in self.headers if header[0] not in present
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


class _PublicFiles(StaticFiles):
    """public/ with validators (StaticFiles sends ETag and Last-Modified and answers 304) and cache policy."""

    def file_response(self, full_path: Any, stat_result: Any, scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        # Pages change on every publish and keep their URL: revalidate each time (a cheap 304).
        # Other files (CSS, images) may be reused for an hour.
        if str(full_path).endswith((".html", ".xml", ".json")):
            response.headers["Cache-Control"] = "no-cache"
        else:
            response.headers["Cache-Control"] = "public, max-age=3600"
        return response


@dataclass(frozen=True)
class _Choices:
    """What a person may choose: topics (slug, name) and languages (code, label)."""

    topics: tuple[tuple[str, str], ...]
    languages: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Form:
    """A submitted subscribe or preferences form, cleaned, with one message per wrong field."""

    email: str
    name: str
    topics: tuple[str, ...]
    cadence: str
    language: str
    errors: dict[str, str]

    def values(self) -> dict[str, Any]:
        return {"email": self.email, "name": self.name, "topics": self.topics, "cadence": self.cadence, "language": self.language}


# --------------------------------------------------------------------------- the app


class _Web:
    """The handlers and their shared state; one instance per app."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime]) -> None:
        self.settings = settings
        self.clock = clock
        self.web = settings.web
        secret = settings.secret_key.get_secret_value()
        self.csrf = _Csrf(secret)
        self._ip_key = hashlib.sha256(b"pressroom-ip\x00" + secret.encode()).digest()
        self.posts = _Limiter(limit=self.web.posts_per_ip_per_minute, period=60.0)
        self.confirmations = _Limiter(limit=self.web.confirmations_per_ip_per_hour, period=3600.0)
        self._audience: Audience | None = None
        # One subscription write at a time from this process: SQLite takes one writer anyway, and
        # threads queued here wait their turn instead of in SQLite's busy loop, whose growing
        # sleeps starve an unlucky request for seconds under load.
        self.writes = threading.Lock()
        self._choices: _Choices | None = None
        folder = settings.path("templates")
        self.env = jinja2.Environment(
            # templates/ first ("web/x", "site/base.html.j2"), then templates/site/ for the names the site's
            # own templates use among themselves ("base.html.j2", "_card.html.j2").
            loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(folder), jinja2.FileSystemLoader(folder / "site")]),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.stylesheet = folder / "web" / "web.css"
        site = settings.site
        self.common = {
            "site": site,
            "lang": site.language,
            "root": "/",
            "brand": site.brand_color if _HEX_COLOUR.match(site.brand_color) else "#0b5d7a",
            "feeds": _feed_files(),
            "subscribe": Markup(""),
            "description": site.description or f"Press releases of {site.name}",
        }
        self.consent_text = self.web.consent(site.name)
        self.form_version = "c" + hashlib.blake2b(self.consent_text.encode(), digest_size=5).hexdigest()
        self.site_origin = _origin(site.base_url)

    # ----------------------------------------------------------------- plumbing

    @property
    def audience(self) -> Audience:
        if self._audience is None:
            self._audience = Audience.from_settings(self.settings)
        return self._audience

    def choices(self) -> _Choices:
        """Topics and languages from the public releases (reloaded every few minutes by the app's lifespan)."""
        return self._choices or self.reload_choices()

    def reload_choices(self) -> _Choices:
        self._choices = _load_choices(self.settings, now=self.clock())
        return self._choices

    def ip(self, request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def ip_hash(self, request: Request) -> str:
        return hmac.new(self._ip_key, self.ip(request).encode(), hashlib.sha256).hexdigest()[:24]

    def evidence(self, request: Request, *, form: str, **extra: Any) -> str:
        """The consent record: JSON with the client hash, the form, its version and the exact text shown."""
        record = {
            "ip_hash": self.ip_hash(request),
            "form": form,
            "form_version": self.form_version,
            "text": self.consent_text,
            **extra,
        }
        return json.dumps(record, ensure_ascii=False, sort_keys=True)

    def page(
        self,
        request: Request,
        template: str,
        *,
        status: int = 200,
        background: BackgroundTask | None = None,
        **context: Any,
    ) -> Response:
        """Render a page with the site layout; issues the CSRF cookie when the page has a form."""
        nonce = request.cookies.get(_CSRF_COOKIE) or ""
        fresh = not re.fullmatch(r"[A-Za-z0-9_-]{16,64}", nonce)
        if fresh:
            nonce = secrets.token_urlsafe(18)
        try:
            html = self.env.get_template(template).render(
                **self.common,
                canonical=f"{self.settings.site.base_url}{request.url.path}",
                csrf_token=self.csrf.token(nonce),
                **context,
            )
        except jinja2.TemplateError as exc:
            raise TemplateError(f"templates/{template}: {exc}") from exc
        response = Response(html, status_code=status, media_type="text/html; charset=utf-8", background=background)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["Referrer-Policy"] = "no-referrer"
        if fresh and "csrf_token" in html:
            response.set_cookie(
                _CSRF_COOKIE,
                nonce,
                max_age=_CSRF_MAX_AGE,
                path="/",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
        return response

    def message(
        self,
        request: Request,
        *,
        heading: str,
        paragraphs: list[str],
        status: int = 200,
        tone: str = "ok",
        eyebrow: str = "Your subscription",
        links: list[tuple[str, str]] | None = None,
        background: BackgroundTask | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        response = self.page(
            request,
            "web/message.html.j2",
            status=status,
            background=background,
            heading=heading,
            paragraphs=paragraphs,
            tone=tone,
            eyebrow=eyebrow,
            links=links or [],
        )
        response.headers.update(headers or {})
        return response

    def bad_link(self, request: Request, reason: str) -> Response:
        return self.message(
            request,
            status=400,
            tone="error",
            heading="This link does not work",
            paragraphs=[
                f"We could not use this link: {reason}. Nothing was changed.",
                "Links in our emails must be opened exactly as they arrived. If the link has expired, subscribe "
                "again and we will send a new one; every email we send also has working links at its end.",
            ],
            links=[("Subscribe again", "/subscribe"), ("Press releases", "/")],
        )

    def too_many(self, request: Request, limiter: _Limiter) -> Response:
        wait = limiter.retry_after()
        return self.message(
            request,
            status=429,
            tone="error",
            eyebrow="Please wait",
            heading="Too many attempts",
            paragraphs=[f"We received many requests from your network. Please try again in {_duration(wait)}."],
            headers={"Retry-After": str(wait)},
        )

    async def form_data(self, request: Request) -> FormData | None:
        """The posted form, or None when it is too large to be one of ours."""
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > _MAX_BODY):
            return None
        body = await request.body()
        if len(body) > _MAX_BODY:
            return None
        return await request.form(max_files=0, max_fields=200, max_part_size=_MAX_BODY)

    def csrf_verdict(self, request: Request, form: FormData) -> str:
        """``ok``, ``missing`` (no token and no origin to judge by) or ``bad``."""
        token = str(form.get("csrf_token") or "")
        if token:
            return "ok" if self.csrf.valid(token, request.cookies.get(_CSRF_COOKIE)) else "bad"
        # The static archive pages cannot hold a per-visitor token: judge by where the POST comes from.
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            referer = request.headers.get("referer")
            origin = _origin(referer) if referer else None
        if origin is None:
            return "missing"
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        return "ok" if origin in (self.site_origin, own) else "bad"

    def read_form(self, form: FormData, *, current_language: str = "") -> _Form:
        """Clean and check the fields shared by the subscribe and preferences forms."""
        errors: dict[str, str] = {}
        raw_email = str(form.get("email") or "").strip()[:320]
        email = raw_email
        if "email" in form:
            if not raw_email:
                errors["email"] = "Enter your email address."
            else:
                try:
                    email = normalise_address(raw_email)
                except AddressError:
                    errors["email"] = "Enter an email address in the form name@example.org."
        name = clean_name(str(form.get("name") or ""))
        if _LINK_IN_NAME.search(name):
            # Confirmation emails greet by name and go to any address typed in: a name holding a
            # link would let anyone send that link to anyone, from us.
            errors["name"] = "A name cannot contain a web or email address."
        topics = tuple(dict.fromkeys(str(value) for value in form.getlist("topics")))
        if len(topics) > 100 or not all(_SLUG.match(slug) for slug in topics):
            errors["topics"] = "Choose topics from the list."
            topics = tuple(slug for slug in topics if _SLUG.match(slug))[:100]
        cadence = str(form.get("cadence") or "per-release")
        if cadence not in CADENCES:
            errors["cadence"] = "Choose how often: every release or a weekly digest."
            cadence = "per-release"
        language = str(form.get("language") or current_language or self.settings.site.language)
        if "language" in form and language not in {code for code, _ in self.choices().languages}:
            errors["language"] = "Choose a language from the list."
            language = current_language or self.settings.site.language
        return _Form(email=email, name=name, topics=topics, cadence=cadence, language=language, errors=errors)

    def topic_choices(self, chosen: tuple[str, ...] = ()) -> list[tuple[str, str]]:
        """The known topics, plus any the person chose that no public release carries any more."""
        known = list(self.choices().topics)
        slugs = {slug for slug, _ in known}
        return known + [(slug, slug) for slug in chosen if slug not in slugs]

    def subscriber_for(self, token: str, action: str) -> Subscriber | str:
        """The subscriber a link token is for, or the reason it cannot be used."""
        try:
            subscriber_id = verify_token(settings=self.settings, token=token, action=action, now=self.clock())
        except TokenError as exc:
            return exc.message
        subscriber = self.audience.get(subscriber_id=subscriber_id)
        if subscriber is None:
            return "the subscription it belongs to no longer exists (erased, or never confirmed in time)"
        return subscriber

    # ----------------------------------------------------------------- email

    async def send(self, *, kind: str, subscriber_id: int, action_url: str = "", to: tuple[str, str] | None = None) -> None:
        """Compose and send one subscription email; runs after the answer has gone (a background task).

        A transient failure (server busy, connection dropped) is retried twice; a failure that
        remains is logged for the operator: the person can ask again from the subscribe form.
        """
        from pressroom.mail.transports import transport_for

        try:
            composed = await run_in_threadpool(self.compose, kind, subscriber_id, action_url, to)
            if composed is None:
                return
            address, data, key = composed
            transport = transport_for(settings=self.settings)
            for attempt, pause in enumerate(_SEND_RETRIES):
                await asyncio.sleep(pause)
                sender = await transport.connect()
                try:
                    await sender.send(envelope_from=self.settings.email.sender, recipient=address, message=data, key=key)
                    break
                except TransientError:
                    if attempt == len(_SEND_RETRIES) - 1:
                        raise
                finally:
                    await sender.close()
        except PressroomError as exc:
            log.error("could not send the %s email to subscriber %s: %s", kind, subscriber_id, exc)
            return
        log.info("sent the %s email to subscriber %s", kind, subscriber_id)

    def compose(self, kind: str, subscriber_id: int, action_url: str, to: tuple[str, str] | None) -> tuple[str, bytes, str] | None:
        """(address, message bytes, outbox key) of one subscription email, or None if the subscriber is gone.

        ``to`` (address, name) saves reading the subscriber back when the caller has just written them.
        """
        from pressroom.mail import Recipient, compose_transactional

        if to is None:
            subscriber = self.audience.get(subscriber_id=subscriber_id)
            if subscriber is None:
                return None
            to = (subscriber.address, subscriber.name)
        composed = compose_transactional(kind=kind, settings=self.settings, action_url=action_url)  # type: ignore[arg-type]
        data = composed.message(
            Recipient(
                address=to[0],
                name=to[1],
                unsubscribe_url=unsubscribe_url(settings=self.settings, subscriber_id=subscriber_id),
                preferences_url=preferences_url(settings=self.settings, subscriber_id=subscriber_id),
            )
        )
        return to[0], data, f"subscriptions/{composed.key}-{subscriber_id}"

    # ----------------------------------------------------------------- subscribe

    async def subscribe_page(self, request: Request) -> Response:
        choices = await run_in_threadpool(self.choices)
        return self.subscribe_form(request, values=None, errors={}, topics=choices.topics)

    def subscribe_form(
        self,
        request: Request,
        *,
        values: dict[str, Any] | None,
        errors: dict[str, str],
        topics: tuple[tuple[str, str], ...] | list[tuple[str, str]],
        status: int = 200,
        notice: dict[str, str] | None = None,
    ) -> Response:
        values = values or {"email": "", "name": "", "topics": (), "cadence": "per-release"}
        first_error = next(iter(errors), "email" if not values.get("email") else "")
        return self.page(
            request,
            "web/subscribe.html.j2",
            status=status,
            values=values,
            errors=errors,
            topics=topics,
            autofocus=first_error,
            notice=notice,
            consent_text=self.consent_text,
        )

    async def subscribe(self, request: Request) -> Response:
        if not self.posts.allow(self.ip(request)):
            return self.too_many(request, self.posts)
        form = await self.form_data(request)
        if form is None:
            return PlainTextResponse("This form is too large.", status_code=413)
        checked = self.read_form(form)
        sent = self.message(
            request,
            eyebrow="Almost done",
            heading="Check your inbox",
            paragraphs=[
                f"If {checked.email} can receive our emails, a message with a confirmation link is on its way to it.",
                f"Open it and click the link within {_duration(int(self.web.confirm_token_hours * 3600))}. "
                "Until you do, we send you nothing else.",
            ],
            links=[("Back to the press releases", "/")],
        )
        # A bot that fills the hidden field gets the page a person gets, and nothing happens.
        if str(form.get("website") or "").strip():
            log.info("honeypot field filled from %s: ignored", self.ip_hash(request))
            return sent
        verdict = self.csrf_verdict(request, form)
        if verdict != "ok" or checked.errors:
            topics = self.topic_choices(checked.topics)
            if verdict == "ok":
                return self.subscribe_form(request, values=checked.values(), errors=checked.errors, topics=topics, status=400)
            notice = (
                {"tone": "error", "text": "This form had expired or came from another site. Please check it and press Subscribe again."}
                if verdict == "bad"
                else {"tone": "info", "text": "Please check your details and press Subscribe to continue."}
            )
            return self.subscribe_form(
                request, values=checked.values(), errors={}, topics=topics, notice=notice, status=403 if verdict == "bad" else 200
            )
        form_kind = "subscribe-page" if form.get("form") == "subscribe-page" else "archive-page"
        evidence = self.evidence(request, form=form_kind, topics=list(checked.topics), cadence=checked.cadence)
        client_ok = self.confirmations.allow(self.ip(request))
        try:
            subscriber_id = await run_in_threadpool(self.register, checked, evidence, client_ok)
        except PressroomError as exc:
            log.error("could not record a subscription: %s", exc)
            return self.message(
                request,
                status=503,
                tone="error",
                eyebrow="Sorry",
                heading="Please try again later",
                paragraphs=["We could not record your subscription just now. Nothing was saved; please try again in a few minutes."],
                headers={"Retry-After": "120"},
            )
        if subscriber_id is not None:
            # The request just stored this address and name for this subscriber.
            sent.background = BackgroundTask(self.send_confirmation, subscriber_id, (checked.email, checked.name))
        return sent

    def register(self, checked: _Form, evidence: str, client_ok: bool) -> int | None:
        """Record the request; the id of a subscriber who should get a confirmation email now, else None."""
        with self.writes:
            now = self.clock()
            return request_subscription(
                audience=self.audience,
                address=checked.email,
                now=now,
                source="web:subscribe",
                evidence=evidence,
                name=checked.name,
                language=self.settings.site.language,
                topics=checked.topics,
                cadence=checked.cadence,
                confirmations_since=now - timedelta(days=1),
                max_confirmations=self.web.confirmations_per_address_per_day,
                may_confirm=client_ok,
            )

    async def send_confirmation(self, subscriber_id: int, to: tuple[str, str]) -> None:
        expires = self.clock() + timedelta(hours=self.web.confirm_token_hours)
        token = sign_token(settings=self.settings, action="confirm", subscriber_id=subscriber_id, expires_at=expires)
        await self.send(kind="confirm", subscriber_id=subscriber_id, action_url=self.link("confirm", token), to=to)

    def link(self, path: str, token: str) -> str:
        return f"{self.settings.site.base_url}/{path}?token={quote(token)}"

    # ----------------------------------------------------------------- confirm

    async def confirm(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        outcome = await run_in_threadpool(self.transition, token, "confirm", self.evidence(request, form="confirm-link"))
        if isinstance(outcome, str):
            return self.bad_link(request, outcome)
        subscriber, changed = outcome
        preferences = preferences_url(settings=self.settings, subscriber_id=subscriber.id)
        return self.message(
            request,
            eyebrow="Subscribed",
            heading="You are subscribed" if changed else "You were already subscribed",
            paragraphs=[
                f"{subscriber.address} will receive "
                + ("a weekly digest of our press releases" if subscriber.cadence == "weekly" else "our press releases as they are published")
                + ("" if not subscriber.topics else " on the topics you chose")
                + ".",
                "Every email has a link to change your preferences or unsubscribe.",
            ],
            links=[("Change your preferences", preferences), ("Read the press releases", "/")],
            background=BackgroundTask(self.send, kind="welcome", subscriber_id=subscriber.id) if changed else None,
        )

    def transition(self, token: str, action: str, evidence: str) -> tuple[Subscriber, bool] | str:
        """Confirm or unsubscribe the subscriber of a link: (subscriber, whether it changed), or why the link is unusable."""
        subscriber = self.subscriber_for(token, action)
        if isinstance(subscriber, str):
            return subscriber
        if subscriber.status == ("confirmed" if action == "confirm" else "unsubscribed"):
            return subscriber, False
        change = self.audience.confirm if action == "confirm" else self.audience.unsubscribe
        return change(subscriber_id=subscriber.id, now=self.clock(), source=f"web:{action}", evidence=evidence), True

    # ----------------------------------------------------------------- unsubscribe

    async def unsubscribe_page(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        subscriber = await run_in_threadpool(self.subscriber_for, token, "unsubscribe")
        if isinstance(subscriber, str):
            return self.bad_link(request, subscriber)
        preferences = preferences_url(settings=self.settings, subscriber_id=subscriber.id)
        if subscriber.status == "unsubscribed":
            return self.message(
                request,
                heading="You are unsubscribed",
                paragraphs=[f"{subscriber.address} receives no press releases from us."],
                links=[("Subscribe again", "/subscribe"), ("Read the press releases", "/")],
            )
        return self.page(request, "web/unsubscribe.html.j2", subscriber=subscriber, token=token, preferences_href=preferences)

    async def unsubscribe(self, request: Request) -> Response:
        # RFC 8058: the mail client POSTs "List-Unsubscribe=One-Click" to the URL from the header.
        # The signed token in that URL is the only credential; the body is not needed to act.
        # Not rate-limited per client: mailbox providers send these from a few shared addresses.
        token = request.query_params.get("token", "")
        if not token:
            form = await self.form_data(request)
            token = str(form.get("token") or "") if form is not None else ""
        outcome = await run_in_threadpool(self.transition, token, "unsubscribe", self.evidence(request, form="unsubscribe"))
        if isinstance(outcome, str):
            return self.bad_link(request, outcome)
        subscriber, changed = outcome
        return self.message(
            request,
            heading="You are unsubscribed",
            paragraphs=[f"We will send no more press releases to {subscriber.address}."],
            links=[("Subscribe again", "/subscribe"), ("Read the press releases", "/")],
            background=BackgroundTask(
                self.send, kind="unsubscribed", subscriber_id=subscriber.id, action_url=f"{self.settings.site.base_url}/subscribe"
            )
            if changed
            else None,
        )

    # ----------------------------------------------------------------- bounces

    async def bounces(self, request: Request) -> Response:
        """The mail provider's bounce webhook: an RFC 3464 report or JSON; hard bounces are suppressed.

        The URL's signed token (`pressroom.bounces.webhook_token`) is the credential, so no CSRF.
        """
        from pressroom.bounces import handle_webhook
        from pressroom.ledger import Ledger

        body = await request.body()

        def handle() -> tuple[int, dict]:
            with self.writes:
                return handle_webhook(
                    settings=self.settings,
                    token=request.query_params.get("token", ""),
                    body=body,
                    content_type=request.headers.get("content-type", ""),
                    audience=self.audience,
                    ledger=Ledger.from_settings(self.settings),
                    now=self.clock(),
                )

        status, payload = await run_in_threadpool(handle)
        return JSONResponse(payload, status_code=status)

    # ----------------------------------------------------------------- preferences

    async def preferences_page(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        subscriber = await run_in_threadpool(self.subscriber_for, token, "preferences")
        if isinstance(subscriber, str):
            return self.bad_link(request, subscriber)
        notice = {"tone": "ok", "text": "Your preferences are saved."} if request.query_params.get("saved") else None
        values = {"name": subscriber.name, "topics": subscriber.topics, "cadence": subscriber.cadence, "language": subscriber.language}
        return self.preferences_form(request, subscriber, token, values=values, errors={}, notice=notice)

    def preferences_form(
        self,
        request: Request,
        subscriber: Subscriber,
        token: str,
        *,
        values: dict[str, Any],
        errors: dict[str, str],
        notice: dict[str, str] | None = None,
        status: int = 200,
    ) -> Response:
        languages = list(self.choices().languages)
        if subscriber.language not in {code for code, _ in languages}:
            languages.append((subscriber.language, _language_label(subscriber.language)))
        unsubscribe = sign_token(settings=self.settings, action="unsubscribe", subscriber_id=subscriber.id)
        return self.page(
            request,
            "web/preferences.html.j2",
            status=status,
            subscriber=subscriber,
            token=token,
            values=values,
            errors=errors,
            notice=notice,
            topics=self.topic_choices(tuple(values["topics"])),
            languages=languages,
            autofocus=next(iter(errors), ""),
            unsubscribe_href=f"/unsubscribe?token={quote(unsubscribe)}",
        )

    async def token_post(self, request: Request) -> tuple[Subscriber, str, FormData] | Response:
        """The checks every POST behind a preferences link starts with: rate, token, size.

        Returns (subscriber, token, form), or the response that ends the request.
        """
        if not self.posts.allow(self.ip(request)):
            return self.too_many(request, self.posts)
        token = request.query_params.get("token", "")
        subscriber = await run_in_threadpool(self.subscriber_for, token, "preferences")
        if isinstance(subscriber, str):
            return self.bad_link(request, subscriber)
        form = await self.form_data(request)
        if form is None:
            return PlainTextResponse("This form is too large.", status_code=413)
        return subscriber, token, form

    async def preferences(self, request: Request) -> Response:
        checks = await self.token_post(request)
        if isinstance(checks, Response):
            return checks
        subscriber, token, form = checks
        checked = self.read_form(form, current_language=subscriber.language)
        values = checked.values()
        if self.csrf_verdict(request, form) != "ok":
            notice = {"tone": "error", "text": "This form had expired. Nothing was saved: please check it and save again."}
            return self.preferences_form(request, subscriber, token, values=values, errors={}, notice=notice, status=403)
        if checked.errors:
            return self.preferences_form(request, subscriber, token, values=values, errors=checked.errors, status=400)
        await run_in_threadpool(
            lambda: self.audience.set_preferences(
                subscriber_id=subscriber.id,
                now=self.clock(),
                source="web:preferences",
                topics=checked.topics,
                cadence=checked.cadence,
                language=checked.language,
                name=checked.name,
            )
        )
        # Post/redirect/get: reloading the page after saving does not post again.
        return RedirectResponse(f"/preferences?token={quote(token)}&saved=1", status_code=303)

    # ----------------------------------------------------------------- data

    async def data_page(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        subscriber = await run_in_threadpool(self.subscriber_for, token, "preferences")
        if isinstance(subscriber, str):
            return self.bad_link(request, subscriber)
        return await self.data_view(request, subscriber, token)

    async def data_view(self, request: Request, subscriber: Subscriber, token: str, *, error: str = "", status: int = 200) -> Response:
        events = await run_in_threadpool(lambda: self.audience.events(address=subscriber.address))
        names = dict(self.choices().topics)
        return self.page(
            request,
            "web/data.html.j2",
            status=status,
            subscriber=subscriber,
            token=token,
            events=events,
            topic_names=[names.get(slug, slug) for slug in subscriber.topics],
            error=error,
        )

    async def data(self, request: Request) -> Response:
        checks = await self.token_post(request)
        if isinstance(checks, Response):
            return checks
        subscriber, token, form = checks
        if self.csrf_verdict(request, form) != "ok":
            return await self.data_view(request, subscriber, token, error="This form had expired. Please try again.", status=403)
        action = form.get("action")
        if action == "export":
            document = await run_in_threadpool(self.export, subscriber)
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
                return await self.data_view(
                    request, subscriber, token, error="Tick the box to confirm that everything should be erased.", status=400
                )
            await run_in_threadpool(lambda: erase(audience=self.audience, subscriber_id=subscriber.id))
            return self.message(
                request,
                eyebrow="Erased",
                heading="Your data is erased",
                paragraphs=[
                    "We deleted your subscription, your address, your name, your choices and the record of your consent. "
                    "You will receive nothing more from us, and the links in our earlier emails no longer work."
                ],
                links=[("Read the press releases", "/")],
            )
        return await self.data_view(request, subscriber, token, error="Choose download or erase.", status=400)

    def export(self, subscriber: Subscriber) -> dict[str, Any]:
        """Everything kept about one subscriber, as a JSON-ready document (GDPR art. 15 and 20)."""
        events = []
        for event in self.audience.events(address=subscriber.address):
            detail: Any = event.detail
            with contextlib.suppress(ValueError):
                detail = json.loads(event.detail) if event.detail.startswith("{") else event.detail
            events.append({"kind": event.kind, "at": event.at.isoformat(), "source": event.source, "detail": detail})
        return {
            "exported_at": self.clock().isoformat(),
            "controller": {"name": self.settings.site.name, "address": self.settings.site.postal_address, "site": self.settings.site.base_url},
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
            "suppressed": self.audience.is_suppressed(address=subscriber.address),
            "consent_events": events,
        }

    # ----------------------------------------------------------------- housekeeping

    async def stylesheet_file(self, request: Request) -> Response:
        response = FileResponse(self.stylesheet, media_type="text/css")
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response

    def expire_pending(self) -> int:
        cutoff = self.clock() - timedelta(days=self.web.pending_expiry_days)
        removed = expire_pending(audience=self.audience, before=cutoff)
        if removed:
            log.info("removed %d unconfirmed subscriptions older than %s", removed, cutoff.isoformat())
        return removed

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        # Before the first request: connect (and migrate), sweep, read the topics. Then again and again,
        # off the event loop, so no request ever waits for the releases to be read.
        await run_in_threadpool(self.expire_pending)
        await run_in_threadpool(self.reload_choices)

        async def every(seconds: float, work: Callable[[], object], what: str) -> None:
            while True:
                await asyncio.sleep(seconds)
                try:
                    await run_in_threadpool(work)
                except PressroomError as exc:
                    log.error("could not %s: %s", what, exc)

        tasks = [
            asyncio.create_task(every(_EXPIRY_INTERVAL, self.expire_pending, "expire unconfirmed subscriptions")),
            asyncio.create_task(every(_TOPICS_TTL, self.reload_choices, "reload the topics")),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconds"
    if seconds < 7200:
        return f"{round(seconds / 60)} minutes"
    return f"{round(seconds / 3600)} hours"


def _language_label(code: str) -> str:
    name = _LANGUAGE_NAMES.get(code.split("-")[0].lower())
    return f"{name} ({code})" if name else code


def _feed_files() -> Mapping[str, str]:
    from pressroom.feeds import FEED_FILES

    return FEED_FILES


def _load_choices(settings: Settings, *, now: datetime) -> _Choices:
    """Topics (tag slug and name) and languages of the releases that are public now."""
    from pressroom.releases import load_releases

    topics: dict[str, str] = {}
    languages = {settings.site.language}
    for release in load_releases(settings).releases:
        if not release.is_public(now):
            continue
        languages.add(release.language)
        for name, slug in zip(release.tags, release.tag_slugs, strict=True):
            if slug:
                topics.setdefault(slug, name)
    return _Choices(
        topics=tuple(sorted(topics.items(), key=lambda item: item[1].casefold())),
        languages=tuple((code, _language_label(code)) for code in sorted(languages) if _LANGUAGE.match(code)),
    )


def create_app(*, settings: Settings, clock: Callable[[], datetime] = _utcnow) -> Starlette:
    """The ASGI app for ``settings``: the subscription pages, then ``public/`` for every other path."""
    web = _Web(settings, clock)
    public = settings.path("public")
    public.mkdir(parents=True, exist_ok=True)
    routes = [
        Route("/subscribe", web.subscribe_page, methods=["GET"]),
        Route("/subscribe", web.subscribe, methods=["POST"]),
        Route("/confirm", web.confirm, methods=["GET"]),
        Route("/unsubscribe", web.unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe", web.unsubscribe, methods=["POST"]),
        Route("/preferences", web.preferences_page, methods=["GET"]),
        Route("/preferences", web.preferences, methods=["POST"]),
        Route("/data", web.data_page, methods=["GET"]),
        Route("/data", web.data, methods=["POST"]),
        Route("/bounces", web.bounces, methods=["POST"]),
        Route("/_pressroom/web.css", web.stylesheet_file, methods=["GET"]),
        Mount("/", app=_PublicFiles(directory=public, html=True, check_dir=False)),
    ]
    app = Starlette(routes=routes, lifespan=web.lifespan)
    app.add_middleware(_SecurityHeaders, https=settings.site.base_url.startswith("https://"))
    app.state.web = web
    return app


def serve(*, settings: Settings, host: str | None = None, port: int | None = None, access_log: bool = True) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(
        create_app(settings=settings),
        host=host or settings.web.host,
        port=port or settings.web.port,
        proxy_headers=True,
        forwarded_allow_ips=settings.web.forwarded_allow_ips,
        server_header=False,
        access_log=access_log,
        log_level="info",
    )
