"""What every page flow shares: settings, templates and the page frame, the subscription-email seam, form reading."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from gettext import NullTranslations
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import jinja2
from markupsafe import Markup, escape
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from pressroom.audience import (
    CADENCES,
    AddressError,
    Audience,
    Subscriber,
    TokenError,
    clean_name,
    normalise_address,
    verify_token,
)
from pressroom import i18n
from pressroom.i18n import N_
from pressroom.errors import PressroomError, TemplateError
from pressroom.releases import LANGUAGE_RE
from pressroom.settings import Settings
from pressroom.tokens import CONFIRM_ACTION, CSRF_MAX_AGE
from pressroom.web.security import CSP, CSRF_COOKIE, Csrf, Limiter, client, csrf_verdict, origin_of

log = logging.getLogger("pressroom.web")

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


@dataclass(frozen=True)
class Choices:
    """What a person may choose: topics (slug, name) and languages (code, label)."""

    topics: tuple[tuple[str, str], ...]
    languages: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Form:
    """A submitted subscribe or preferences form, cleaned, with one message per wrong field."""

    email: str
    name: str
    topics: tuple[str, ...]
    cadence: str
    language: str
    errors: dict[str, str]

    def values(self) -> dict[str, Any]:
        return {"email": self.email, "name": self.name, "topics": self.topics, "cadence": self.cadence, "language": self.language}


T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Hands the requests that arrive while a batch is being written to one call of ``run``: one transaction for all.

    Under load a subscribe POST's commit and thread hop cost more than its statements; one writer
    with the batch keeps SQLite's single writer busy instead of queueing threads on it.
    """

    def __init__(self, run: Callable[[list[T]], list[R | Exception]], *, limit: int = 256) -> None:
        self.run, self.limit = run, limit
        self._waiting: list[tuple[T, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None

    async def submit(self, item: T) -> R:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())
        result = await future
        if isinstance(result, Exception):
            raise result
        return result

    async def _write(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self.limit], self._waiting[self.limit :]
                try:
                    results = await run_in_threadpool(self.run, [item for item, _ in batch])
                except Exception as exc:  # noqa: BLE001 - each waiting request answers with it (a 503 for a lost database)
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._writer = None


class _Lazy:
    """A value computed when a template first prints it."""

    def __init__(self, make: Callable[[], str]) -> None:
        self._make = make

    @functools.cached_property
    def _value(self) -> str:
        return self._make()

    def __str__(self) -> str:
        return self._value

    def __html__(self) -> str:
        return str(escape(self._value))


def language_label(code: str) -> str:
    return i18n.language_name(code)


def duration(seconds: int, translations: NullTranslations | None = None) -> str:
    ngettext = (translations or NullTranslations()).ngettext
    if seconds < 120:
        return ngettext("%(num)d second", "%(num)d seconds", seconds) % {"num": seconds}
    if seconds < 7200:
        minutes = round(seconds / 60)
        return ngettext("%(num)d minute", "%(num)d minutes", minutes) % {"num": minutes}
    hours = round(seconds / 3600)
    return ngettext("%(num)d hour", "%(num)d hours", hours) % {"num": hours}


def _load_choices(settings: Settings, *, now: datetime) -> Choices:
    """Topics (tag slug and name) and languages of the releases that are public now."""
    from pressroom.releases import load_releases

    topics: dict[str, str] = {}
    languages = set(settings.site.all_languages)
    for release in load_releases(settings).releases:
        if not release.is_public(now):
            continue
        languages.update(version.language for version in release.versions)
        for name, slug in zip(release.tags, release.tag_slugs, strict=True):
            if slug:
                topics.setdefault(slug, name)
    return Choices(
        topics=tuple(sorted(topics.items(), key=lambda item: item[1].casefold())),
        languages=tuple((code, language_label(code)) for code in sorted(languages) if LANGUAGE_RE.match(code)),
    )


class Web:
    """The state every page flow shares; one instance per app."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime]) -> None:
        from pressroom.feeds import FEED_FILES

        from pressroom.dispatch import TransactionalSender

        self.settings = settings
        self.clock = clock
        self.web = settings.web
        self.mail = TransactionalSender(settings=settings)  # started and stopped by the app's lifespan
        key = settings.signing_keys()[0]
        self.csrf = Csrf(settings.signing_keys())
        self._ip_key = hashlib.sha256(b"pressroom-ip\x00" + key).digest()
        self.posts = Limiter(limit=self.web.posts_per_ip_per_minute, period=60.0)
        self.confirmations = Limiter(limit=self.web.confirmations_per_ip_per_hour, period=3600.0)
        self._audience: Audience | None = None
        # One subscription write at a time from this process: SQLite takes one writer anyway, and
        # threads queued here wait their turn instead of in SQLite's busy loop, whose growing
        # sleeps starve an unlucky request for seconds under load.
        self.writes = threading.Lock()
        self._choices: Choices | None = None
        folder = settings.path("templates")
        # templates/ first ("web/x", "site/base.html.j2"), then templates/site/ for the names the site's
        # own templates use among themselves ("base.html.j2", "_card.html.j2").
        self._loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(folder), jinja2.FileSystemLoader(folder / "site")])
        self._envs: dict[str, jinja2.Environment] = {}
        self.stylesheet = folder / "web" / "web.css"
        site = settings.site
        self.common = {
            "site": site,
            "root": "/",
            "brand": site.brand_color,
            "feeds": FEED_FILES,
            "subscribe": Markup(""),
            "home": "",
            "alternates": (),
            "switcher": (),
        }
        self.consent_text = i18n.consent(language=site.language, settings=settings)
        self.form_version = "c" + hashlib.blake2b(self.consent_text.encode(), digest_size=5).hexdigest()
        self.site_origin = origin_of(site.base_url)

    # ----------------------------------------------------------------- plumbing

    @property
    def audience(self) -> Audience:
        if self._audience is None:
            self._audience = Audience.from_settings(self.settings)
        return self._audience

    def choices(self) -> Choices:
        """Topics and languages from the public releases (reloaded every few minutes by the app's lifespan)."""
        return self._choices or self.reload_choices()

    def reload_choices(self) -> Choices:
        self._choices = _load_choices(self.settings, now=self.clock())
        return self._choices

    def env(self, language: str) -> jinja2.Environment:
        """The page templates with the words of ``language`` (one environment per language, made once)."""
        environment = self._envs.get(language)
        if environment is None:
            environment = jinja2.Environment(
                loader=self._loader, autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                auto_reload=False,  # templates are read once per process: a stat of each on every page cost more than its render
            )
            environment = self._envs[language] = i18n.install(environment, translations=self.translations(language))
        return environment

    def translations(self, language: str) -> NullTranslations:
        return i18n.translations(language=language, settings=self.settings)

    def language(self, request: Request, subscriber: Subscriber | None = None) -> str:
        """The language a page speaks: ``?lang=``, else the subscriber's, else the browser's
        (Accept-Language), among the site's languages; else the site language."""
        offered = self.settings.site.all_languages
        asked = request.query_params.get("lang", "")
        if asked in offered:
            return asked
        if subscriber is not None:
            for code in (subscriber.language, subscriber.language.split("-")[0]):
                if code in offered:
                    return code
        return i18n.negotiate(request.headers.get("accept-language", ""), offered) or self.settings.site.language

    def consent(self, language: str) -> str:
        """The consent sentence as the form in ``language`` shows it (stored as the consent evidence)."""
        return i18n.consent(language=language, settings=self.settings)

    def ip_hash(self, request: Request) -> str:
        return hmac.new(self._ip_key, client(request).encode(), hashlib.sha256).hexdigest()[:24]

    def evidence(self, request: Request, *, form: str, text: str | None = None, **extra: Any) -> str:
        """The consent record: JSON with the client hash, the form, its version and the exact text shown."""
        record = {
            "ip_hash": self.ip_hash(request),
            "form": form,
            "form_version": self.form_version,
            "text": self.consent_text if text is None else text,
            **extra,
        }
        return json.dumps(record, ensure_ascii=False, sort_keys=True)

    def csrf_verdict(self, request: Request, form: FormData) -> str:
        return csrf_verdict(request, form, csrf=self.csrf, site_origin=self.site_origin)

    def link(self, path: str, token: str) -> str:
        return f"{self.settings.site.base_url}/{path}?token={quote(token)}"

    # ----------------------------------------------------------------- pages

    def page(
        self,
        request: Request,
        template: str,
        *,
        status: int = 200,
        background: BackgroundTask | None = None,
        language: str | None = None,
        **context: Any,
    ) -> Response:
        """Render a page with the site layout in ``language`` (default: :meth:`language` of the
        request); issues the CSRF cookie when the page has a form."""
        language = language or self.language(request)
        nonce = request.cookies.get(CSRF_COOKIE) or ""
        fresh = not re.fullmatch(r"[A-Za-z0-9_-]{16,64}", nonce)
        if fresh:
            nonce = secrets.token_urlsafe(18)
        try:
            html = self.env(language).get_template(template).render(
                **self.common,
                lang=language,
                description=self.settings.site.description_in(language)
                or self.translations(language).gettext("Press releases of %(site)s") % {"site": self.settings.site.name},
                canonical=f"{self.settings.site.base_url}{request.url.path}",
                csrf_token=_Lazy(lambda: self.csrf.token(nonce)),  # signed only for pages with a form
                **context,
            )
        except jinja2.TemplateError as exc:
            raise TemplateError(f"templates/{template}: {exc}") from exc
        response = Response(html, status_code=status, media_type="text/html; charset=utf-8", background=background)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = CSP
        response.headers["Referrer-Policy"] = "no-referrer"
        if fresh and "csrf_token" in html:
            response.set_cookie(
                CSRF_COOKIE,
                nonce,
                max_age=CSRF_MAX_AGE,
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
        eyebrow: str | None = None,
        links: list[tuple[str, str]] | None = None,
        background: BackgroundTask | None = None,
        headers: Mapping[str, str] | None = None,
        language: str | None = None,
    ) -> Response:
        """A page of a few paragraphs; the texts come translated, in ``language`` (default: the request's)."""
        language = language or self.language(request)
        response = self.page(
            request,
            "web/message.html.j2",
            status=status,
            background=background,
            language=language,
            heading=heading,
            paragraphs=paragraphs,
            tone=tone,
            eyebrow=eyebrow or self.translations(language).gettext("Your subscription"),
            links=links or [],
        )
        response.headers.update(headers or {})
        return response

    def bad_link(self, request: Request, reason: str) -> Response:
        language = self.language(request)
        _ = self.translations(language).gettext
        return self.message(
            request,
            status=400,
            tone="error",
            language=language,
            heading=_("This link does not work"),
            paragraphs=[
                _("We could not use this link: %(reason)s. Nothing was changed.") % {"reason": _(reason)},
                _("Links in our emails must be opened exactly as they arrived. If the link has expired, subscribe "
                  "again and we will send a new one; every email we send also has working links at its end."),
            ],
            links=[(_("Subscribe again"), "/subscribe"), (_("Press releases"), "/")],
        )

    def bad_form(self, request: Request, reason: str) -> Response:
        language = self.language(request)
        _ = self.translations(language).gettext
        return self.message(
            request,
            status=400,
            tone="error",
            language=language,
            eyebrow=_("Sorry"),
            heading=_("This form could not be read"),
            paragraphs=[_("Nothing was changed: %(reason)s. Please go back and send the form again.") % {"reason": _(reason)}],
            links=[(_("Subscribe"), "/subscribe"), (_("Press releases"), "/")],
        )

    def too_many(self, request: Request, limiter: Limiter) -> Response:
        wait = limiter.retry_after()
        language = self.language(request)
        translations = self.translations(language)
        _ = translations.gettext
        return self.message(
            request,
            status=429,
            tone="error",
            language=language,
            eyebrow=_("Please wait"),
            heading=_("Too many attempts"),
            paragraphs=[
                _("We received many requests from your network. Please try again in %(wait)s.")
                % {"wait": duration(wait, translations)}
            ],
            headers={"Retry-After": str(wait)},
        )

    def unavailable(self, request: Request) -> Response:
        language = self.language(request)
        _ = self.translations(language).gettext
        return self.message(
            request,
            status=503,
            tone="error",
            language=language,
            eyebrow=_("Sorry"),
            heading=_("Please try again later"),
            paragraphs=[_("We could not do this just now. Nothing was saved; please try again in a few minutes.")],
            headers={"Retry-After": "120"},
        )

    # ----------------------------------------------------------------- forms and links

    def read_form(self, form: FormData, *, current_language: str = "", with_email: bool = False) -> Form:
        """Clean and check the fields shared by the subscribe (``with_email``) and preferences forms;
        the messages are in ``current_language`` (the page's)."""
        _ = self.translations(current_language or self.settings.site.language).gettext
        errors: dict[str, str] = {}
        raw_email = str(form.get("email") or "").strip()[:320]
        email = raw_email
        if with_email:
            if not raw_email:
                errors["email"] = _("Enter your email address.")
            else:
                try:
                    email = normalise_address(raw_email)
                except AddressError:
                    errors["email"] = _("Enter an email address in the form name@example.org.")
        raw_name = str(form.get("name") or "")
        try:
            name = clean_name(raw_name)
        except AddressError:
            name = clean_name(raw_name, links=True)
            errors["name"] = _("A name cannot contain a web or email address.")
        topics = tuple(dict.fromkeys(str(value) for value in form.getlist("topics")))
        if len(topics) > 100 or not all(_SLUG.match(slug) for slug in topics):
            errors["topics"] = _("Choose topics from the list.")
            topics = tuple(slug for slug in topics if _SLUG.match(slug))[:100]
        cadence = str(form.get("cadence") or "per-release")
        if cadence not in CADENCES:
            errors["cadence"] = _("Choose how often: every release or a weekly digest.")
            cadence = "per-release"
        language = str(form.get("language") or current_language or self.settings.site.language)
        if "language" in form and language not in {code for code, _ in self.choices().languages}:
            errors["language"] = _("Choose a language from the list.")
            language = current_language or self.settings.site.language
        return Form(email=email, name=name, topics=topics, cadence=cadence, language=language, errors=errors)

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
            return N_("the subscription it belongs to no longer exists (erased, or never confirmed in time)")
        return subscriber

    async def linked_subscriber(self, request: Request, action: str) -> tuple[Subscriber, str] | Response:
        """(subscriber, token) of the link's ``token`` for ``action``; the bad-link page when it cannot be used."""
        token = request.query_params.get("token", "")
        subscriber = await run_in_threadpool(self.subscriber_for, token, action)
        if isinstance(subscriber, str):
            return self.bad_link(request, subscriber)
        return subscriber, token

    # ----------------------------------------------------------------- the subscription-email seam

    async def send_subscription_email(self, *, kind: str, subscriber_id: int, action_url: str, key: str) -> None:
        """Record one subscription email (``confirm``, ``welcome``, ``unsubscribed``) in the ledger: the one place the app sends.

        Runs after the answer has gone (a background task); the app's sender (:attr:`mail`) delivers
        it within a second, retries it with backoff while the mail server is away, and any worker
        can deliver it too. ``key`` names the email once: the same key is never sent twice.
        """
        from pressroom.dispatch import enqueue_transactional

        def enqueue() -> bool:
            subscriber = self.audience.get(subscriber_id=subscriber_id)
            if subscriber is None:
                return False
            names = dict(self.choices().topics)
            # The reader's choices in words, as the welcome email states them.
            return enqueue_transactional(
                settings=self.settings, kind=kind, subscriber_id=subscriber_id, address=subscriber.address,
                action_url=action_url, key=key, now=self.clock(),
                topics=[names.get(slug, slug) for slug in subscriber.topics], language=language_label(subscriber.language),
            )

        try:
            if await run_in_threadpool(enqueue):
                self.mail.wake()
        except PressroomError as exc:
            log.error("could not queue the %s email to subscriber %s: %s", kind, subscriber_id, exc)
