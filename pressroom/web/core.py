"""What every page flow shares: settings, the clock, the audience, limits, templates by language, the consent record."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from gettext import NullTranslations
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import jinja2
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request

from pressroom import i18n, templating
from pressroom.colours import site_brand
from pressroom.audience import (
    Audience,
    Subscriber,
)
from pressroom.releases import LANGUAGE_RE
from pressroom.settings import Settings
from pressroom.web.security import (
    Csrf,
    Limiter,
    client,
    csrf_verdict,
    origin_of,
)

log = logging.getLogger("pressroom.web")



@dataclass(frozen=True)
class Choices:
    """What a person may choose: topics (slug, name) and languages (code, label)."""

    topics: tuple[tuple[str, str], ...]
    languages: tuple[tuple[str, str], ...]


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
                except Exception as exc:  # each waiting request answers with it (a 503 for a lost database)
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._writer = None


class Lazy:
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


def _kept(kept: dict[str, T], language: str, make: Callable[[], T]) -> T:
    """``kept[language]``, made on first use; at most 64 languages are kept (a subscriber's language is any tag)."""
    found = kept.get(language)
    if found is None:
        found = make()
        if len(kept) < 64:
            kept[language] = found
    return found


class Web:
    """The state every page flow shares; one instance per app."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime]) -> None:
        from pressroom.dispatch import TransactionalSender
        from pressroom.feeds import FEED_FILES

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
        self.template_folders = (folder, folder / "site")
        self.stylesheet = folder / "web" / "web.css"
        site = settings.site
        self.common = {
            "site": site,
            "root": "/",
            "brand": site_brand(site.brand_color),
            "feeds": FEED_FILES,
            "subscribe": Markup(""),
            "home": "",
            "alternates": (),
            "switcher": (),
        }
        # Per language, made on first use: the settings do not change while the app runs.
        self._translations: dict[str, NullTranslations] = {}
        self._consents: dict[str, str] = {}
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
        # Templates are read once per process: a stat of each on every page cost more than its render.
        return templating.environment(self.template_folders, translations=self.translations(language),
                                      autoescape=True, trailing_newline=False, auto_reload=False)

    def translations(self, language: str) -> NullTranslations:
        return _kept(self._translations, language, lambda: i18n.translations(language=language, settings=self.settings))

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
        return _kept(self._consents, language, lambda: i18n.consent(language=language, settings=self.settings))

    def ip_hash(self, request: Request) -> str:
        # Not hmac.digest: that one lets go of the GIL, and the event loop would wait to get it back.
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

