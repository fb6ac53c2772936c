"""Email channels: a release, a weekly digest, subscription emails and staff emails, one transport each.

They differ only in whom they reach (planned in the ledger) and how one delivery renders;
pushing, pacing and the retry policy are the same :class:`EmailChannel`. Each has its
:class:`~pressroom.dispatch.deliver.Send` (:class:`ReleaseEmail`, :class:`Digest`,
:class:`SubscriptionEmails`, :class:`Staff`), sent by :func:`~pressroom.dispatch.deliver.deliver`.

- ``email``: a release (compiled once, personalised per reader) or a digest (composed once per
  distinct selection of releases).
- ``transactional``: confirm, welcome and unsubscribed emails of the web app. Each is one row
  carrying what it renders from (its kind and link), enqueued by the request and delivered off
  the request path by :class:`TransactionalSender` or any worker.
- ``staff``: proofs to editors and failure alerts: the message bytes are in the row.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pressroom.audience import Audience, preferences_url, unsubscribe_url
from pressroom.dispatch.decide import (
    SEND,
    Decision,
    digest_period,
    digest_releases,
    email_decision,
)
from pressroom.dispatch.deliver import (
    Ask,
    Drain,
    Due,
    Pacing,
    Send,
    Workers,
    deliver,
    drive,
)
from pressroom.dispatch.engine import Channel, DispatchResult, Pushed, backoff, dispatch, wall_clock
from pressroom.errors import PermanentError, PressroomError
from pressroom.ledger import Delivery, DeliveryReport, Ledger
from pressroom.mail.transports import Envelope, Transport, transport_for
from pressroom.releases import Release, load_releases, public_releases
from pressroom.settings import Settings

__all__ = [
    "Digest",
    "EmailChannel",
    "ReleaseEmail",
    "Staff",
    "SubscriptionEmails",
    "TransactionalSender",
    "digest_due",
    "digest_email",
    "email_due",
    "enqueue_transactional",
    "per_language",
    "release_email",
    "send_digest",
    "send_email",
    "send_release_emails",
    "send_staff",
    "staff_email",
    "transactional_email",
    "transactional_payload",
]

log = logging.getLogger("pressroom.dispatch")

#: One delivery's message, or the message and what makes its SMTP DATA form (:meth:`~pressroom.mail.Composed.message_and_data`).
Rendered = bytes | tuple[bytes, Callable[[], bytes] | None]
Render = Callable[[Delivery], Rendered]


def _now() -> datetime:
    return datetime.now(UTC)


class _MailPusher:
    def __init__(self, sender: Any, channel: EmailChannel) -> None:
        self.sender, self.channel = sender, channel

    async def push(self, items: Sequence[tuple[Delivery, Rendered]]) -> list[Pushed]:
        envelopes = [self._envelope(d, rendered) for d, rendered in items]
        return [Pushed(id=r.id, status=r.status, response=r.response) for r in await self.sender.send(envelopes)]

    def _envelope(self, delivery: Delivery, rendered: Rendered) -> Envelope:
        message, data = (rendered, None) if isinstance(rendered, bytes) else rendered
        return Envelope(id=delivery.id, sender=self.channel.envelope_from, recipient=delivery.recipient, message=message,
                        key=self.channel.key(delivery), data=data)

    async def close(self) -> None:
        await self.sender.close()


class EmailChannel:
    """One kind of email through the configured transport (outbox, SMTP, discard)."""

    resolves_ambiguous = False  # nobody can ask an SMTP server whether it delivered

    def __init__(self, *, name: str, settings: Settings, render: Render, key: Callable[[Delivery], str] | None = None,
                 transport: Transport | None = None) -> None:
        self.name = name
        self.settings = settings
        self.render = render
        self.key = key or (lambda d: f"{d.release}/{d.recipient}")
        self.transport = transport or transport_for(settings=settings)
        self.connections = self.transport.connections
        self.window = self.transport.window
        self.max_attempts = settings.email.max_attempts
        self.give_up_after = settings.email.give_up_after
        self.envelope_from = settings.email.return_path or settings.email.sender
        self._limiter = getattr(self.transport, "limiter", None)

    async def connect(self) -> _MailPusher:
        return _MailPusher(await self.transport.connect(), self)

    async def pace(self, count: int) -> None:
        # Waited for before the window is marked sending, so an unsubscribe during the wait still wins.
        if self._limiter is not None:
            for _ in range(count):
                await self._limiter.wait()

    def rejected(self, *, address: str, response: str) -> None:
        Audience.from_settings(self.settings).suppress(address=address, reason="hard-bounce", detail=response, now=_now())

    def backoff(self, attempts: int) -> timedelta:
        return backoff(base_seconds=self.settings.email.retry_backoff_seconds, attempts=attempts)


def send_email(*, channel: EmailChannel, ledger: Ledger, release: str | None, run_id: str | None = None,
               wait: bool = True) -> DispatchResult:
    """The engine's loop on rows planned before, with the email settings (batch size, lease, retry window)."""
    pacing = Pacing.email(channel.settings, wait=wait)
    return dispatch(channel=channel, ledger=ledger, release=release, run_id=run_id,
                    batch_size=pacing.batch_size, lease=pacing.lease, retry_window=pacing.retry_window)


# --------------------------------------------------------------------------- releases and digests


def _personaliser(*, composed: Any, settings: Settings) -> Render:
    from pressroom.mail import Recipient

    def render(delivery: Delivery) -> Rendered:
        sid = delivery.subscriber_id
        return composed.message_and_data(
            Recipient(
                address=delivery.recipient,
                name=delivery.name,
                unsubscribe_url=unsubscribe_url(settings=settings, subscriber_id=sid) if sid is not None else "",
                preferences_url=preferences_url(settings=settings, subscriber_id=sid) if sid is not None else "",
            )
        )

    return render


def release_email(*, release: Any, settings: Settings, transport: Transport | None = None) -> EmailChannel:
    """The email of one release: MJML rendered once per language version, the site language's
    here; each reader costs a few byte joins. A reader gets the version in their language (else
    the site language's), still one email: the ledger row is the reader's, whatever the language."""
    from pressroom.mail import compose_release

    render = per_language(release=release, settings=settings,
                           compose=lambda language: compose_release(release=release, settings=settings, language=language))
    return EmailChannel(name="email", settings=settings, render=render, transport=transport)


def per_language(*, release: Any, settings: Settings, compose: Callable[[str], Any]) -> Render:
    """Each delivery in its reader's version of ``release``: ``compose(language)`` runs once per
    language (the site language's at once, so a broken template stops the send before anything goes)."""
    renders = {release.language: _personaliser(composed=compose(release.language), settings=settings)}
    lock = threading.Lock()

    def render(delivery: Delivery) -> Rendered:
        language = release.version(delivery.language).language
        personal = renders.get(language)
        if personal is None:
            with lock:
                if language not in renders:
                    renders[language] = _personaliser(composed=compose(language), settings=settings)
                personal = renders[language]
        return personal(delivery)

    return render


def digest_email(*, releases: Sequence[Any], settings: Settings, ledger: Ledger, key: str,
                 period: tuple[datetime, datetime], transport: Transport | None = None) -> EmailChannel:
    """The digest ``key``: each reader's own selection, composed once per distinct selection."""
    from pressroom.mail import compose_digest

    by_slug = {release.slug: release for release in releases}
    composed: dict[tuple[tuple[str, ...], str], Render] = {}
    lock = threading.Lock()
    offered = {*settings.site.all_languages, *(code for release in releases for code in release.translations)}

    def render(delivery: Delivery) -> Rendered:
        slugs = ledger.digest_contents(digest=key, recipients=[delivery.recipient]).get(delivery.recipient, ())
        # The reader's language when the site speaks it (else the site's); each release in its version in it.
        asked = delivery.language or ""
        language = next((code for code in (asked, asked.split("-")[0]) if code in offered), settings.site.language)
        with lock:
            if (slugs, language) not in composed:
                chosen = [by_slug[slug].version(language) for slug in slugs]
                composed[slugs, language] = _personaliser(
                    composed=compose_digest(
                        releases=chosen, settings=settings, period_start=period[0], period_end=period[1], language=language
                    ),
                    settings=settings,
                )
            personal = composed[slugs, language]
        return personal(delivery)

    return EmailChannel(name="email", settings=settings, render=render, transport=transport)


@dataclass(frozen=True)
class ReleaseEmail(Send):
    """A release's email to its subscribers: those of its topics who take every release."""

    release: Release
    channel = "email"

    @property
    def key(self) -> str:
        return self.release.slug

    @property
    def keep(self) -> str:
        return f"email\n{self.release.slug}\n{self.release.digest}"

    def check(self, settings: Settings) -> None:
        transport_for(settings=settings)  # an unknown transport fails here, before anything is planned

    def plan(self, ledger: Ledger, now: datetime) -> int | None:
        return ledger.plan_audience(release=self.release.slug, channel=self.channel, tags=self.release.topics,
                                    cadence="per-release", now=now)

    def open(self, settings: Settings, ledger: Ledger) -> Channel:
        return release_email(release=self.release, settings=settings)

    def workers(self, settings: Settings) -> int:
        return settings.email.workers


@dataclass(frozen=True)
class Digest(Send):
    """The weekly digest ``key``: each weekly reader gets the ``releases`` of ``period`` they have not had."""

    key: str
    releases: tuple[Release, ...]
    period: tuple[datetime, datetime]
    channel = "email"

    @property
    def keep(self) -> str:
        return "\n".join(["digest", self.key, *(release.digest for release in self.releases)])

    def check(self, settings: Settings) -> None:
        transport_for(settings=settings)

    def plan(self, ledger: Ledger, now: datetime) -> int | None:
        return ledger.plan_digest(digest=self.key, items=[(r.slug, r.topics) for r in self.releases], now=now)

    def open(self, settings: Settings, ledger: Ledger) -> Channel:
        return digest_email(releases=self.releases, settings=settings, key=self.key, period=self.period, ledger=ledger)

    def workers(self, settings: Settings) -> int:
        return settings.email.workers


def email_due(*, settings: Settings, releases: Sequence[Release], now: datetime, ledger: Ledger | None = None) -> list[Due]:
    """The email of every public release at ``now``, with its decision; a release sent before is settled."""
    ledger = ledger or Ledger.from_settings(settings)
    first_seen = ledger.first_published()
    subscribers: int | None = None
    due = []
    for release in public_releases(releases, now):
        send = ReleaseEmail(release)
        planned = ledger.is_planned(release=send.key, channel=send.channel)
        decision = email_decision(release=release, settings=settings, first_seen=first_seen.get(release.slug, now),
                                  planned=planned)
        settled = None
        if planned and not ledger.outstanding(release=send.key, channel=send.channel, now=wall_clock())[0]:
            settled = ledger.report(release=send.key, channel=send.channel)
            settled.sent_now = 0
        if decision.action == "approve" and subscribers is None:
            # An upper bound (topics and cadence narrow it) the editor sees before anything is
            # planned, so a rejected release leaves nothing queued.
            subscribers = Audience.from_settings(settings).count(status="confirmed")
        due.append(Due(send=send, decision=decision, release=release, audience=subscribers or 0, settled=settled))
    return due


def send_release_emails(*, settings: Settings, releases: Sequence[Release], now: datetime, run_id: str | None = None,
                        ask: Ask | None = None, workers: Workers | None = None) -> list[DeliveryReport]:
    """Every public release's email that may go out at ``now``, once: decided, asked (``ask``), delivered."""
    return drive(email_due(settings=settings, releases=releases, now=now), settings=settings, now=now, run_id=run_id,
                 ask=ask, workers=workers)


def digest_due(*, settings: Settings, now: datetime, approved: Callable[[Release], bool],
               ledger: Ledger | None = None) -> Due:
    """The weekly digest due at ``now`` (the week before, :func:`~pressroom.dispatch.decide.digest_period`).

    ``approved`` says whether an editor approved a release that needs it: one waiting for an
    answer, or rejected, must not reach weekly readers by the back door.
    """
    from pressroom.mail import digest_key

    start, end = digest_period(now=now, settings=settings)
    send = Digest(key=digest_key(period_start=start, settings=settings), releases=(), period=(start, end))
    if not (settings.email.enabled and settings.digest.enabled):
        return Due(send=send, decision=Decision("skip", "email or digest is turned off in settings"))
    send.check(settings)  # before the releases are read and the editors' answers asked
    ledger = ledger or Ledger.from_settings(settings)
    chosen = digest_releases(releases=load_releases(settings).releases, settings=settings, now=now,
                             first_seen=ledger.first_published(), approved=approved)
    if not chosen:
        return Due(send=send, decision=Decision("skip", f"no release first published {start:%Y-%m-%d} to {end:%Y-%m-%d}"))
    return Due(send=Digest(key=send.key, releases=tuple(chosen), period=(start, end)), decision=SEND)


def send_digest(*, settings: Settings, now: datetime, approved: Callable[[Release], bool], run_id: str | None = None,
                workers: Workers | None = None) -> DeliveryReport:
    """Send the digest due at ``now`` to the weekly readers; a rerun sends only what is still due."""
    [report] = drive([digest_due(settings=settings, now=now, approved=approved)], settings=settings, now=now,
                     run_id=run_id, workers=workers)
    return report


# --------------------------------------------------------------------------- subscription emails

TRANSACTIONAL = "transactional"


def enqueue_transactional(*, settings: Settings, kind: str, subscriber_id: int, address: str, action_url: str,
                          key: str, now: datetime, topics: Sequence[str] = (), language: str = "",
                          ledger: Ledger | None = None) -> bool:
    """Record one subscription email (``confirm``, ``welcome``, ``unsubscribed``) for delivery; False if ``key`` exists.

    ``topics`` (names) and ``language`` (its label) are the reader's choices in words, for the
    welcome email. The row carries no subscriber id of its own (a confirmation goes to a reader
    who is not confirmed yet); suppression still holds it back.
    """
    return (ledger or Ledger.from_settings(settings)).enqueue(
        release=key, channel=TRANSACTIONAL, recipient=address, subscriber_id=None, now=now,
        payload=transactional_payload(kind=kind, subscriber_id=subscriber_id, action_url=action_url, topics=topics,
                                      language=language),
    )


def transactional_payload(*, kind: str, subscriber_id: int, action_url: str, topics: Sequence[str] = (),
                          language: str = "") -> str:
    """What a subscription email's row carries: it renders from this and the reader's current data."""
    return json.dumps({"kind": kind, "action_url": action_url, "subscriber_id": subscriber_id,
                       "topics": list(topics), "language": language})


def transactional_email(*, settings: Settings, transport: Transport | None = None) -> EmailChannel:
    """Renders each subscription email from its row when it goes out, with the reader's current data.

    MJML runs once per distinct (kind, cadence, topics, language), kept in a bounded cache for
    the channel's life (the web app's sender keeps one channel); the link, the name and the
    Message-ID are each email's own.
    """
    from functools import lru_cache

    from pressroom.mail import Composed, Recipient, compose_transactional

    audience = Audience.from_settings(settings)

    # Readers share a few choices; the bound keeps a long-lived web process small whatever they pick.
    offered = settings.site.all_languages

    @lru_cache(maxsize=128)
    def composition(kind: str, cadence: str | None, topics: tuple[str, ...], language: str, lang: str) -> Composed:
        return compose_transactional(kind=kind, settings=settings, cadence=cadence, topics=topics, language=language,
                                     lang=lang)

    def render(delivery: Delivery) -> bytes:
        payload = json.loads(delivery.payload or "{}")
        sid = payload.get("subscriber_id")
        subscriber = audience.get(subscriber_id=sid) if sid is not None else None
        if subscriber is None:
            raise PermanentError(f"{delivery.release}: the subscriber is gone (erased or expired)")
        kind = payload["kind"]
        # Written in the reader's language when the site speaks it.
        lang = next((c for c in (subscriber.language, subscriber.language.split("-")[0]) if c in offered), "")
        composed = composition(kind, subscriber.cadence, tuple(payload.get("topics", ())), payload.get("language", ""), lang)
        return composed.message(Recipient(
            address=delivery.recipient,
            # Text typed by the requester never reaches an address that has not confirmed it.
            name="" if kind == "confirm" else subscriber.name,
            unsubscribe_url=unsubscribe_url(settings=settings, subscriber_id=sid),
            preferences_url=preferences_url(settings=settings, subscriber_id=sid),
            action_url=payload.get("action_url", ""),
            message_key=delivery.release,  # the row's key: unique per email, the same on a rerun
        ))

    return EmailChannel(name=TRANSACTIONAL, settings=settings, render=render, key=lambda d: f"subscriptions/{d.release}",
                        transport=transport)


@dataclass(frozen=True)
class SubscriptionEmails(Send):
    """Every subscription email not sent yet. Each request plans its own row (:func:`enqueue_transactional`)."""

    key = None
    channel = TRANSACTIONAL
    keep = "transactional"  # its bounded cache of compositions outlives a round

    def plan(self, ledger: Ledger, now: datetime) -> None:
        return None

    def open(self, settings: Settings, ledger: Ledger) -> Channel:
        return transactional_email(settings=settings)

    def pacing(self, settings: Settings) -> Pacing:
        return Pacing.email(settings, wait=False)


class TransactionalSender:
    """Delivers subscription emails within a second, from a process of its own beside the web app's.

    Composing and sending a confirmation costs as much CPU as answering the request that asked
    for it: in a thread of the web process, the two would take turns at one interpreter lock.

    :meth:`wake` after enqueuing starts a round at once; otherwise a round runs every
    ``interval`` seconds, which also picks up rows queued before a restart and deferred ones
    when their retry comes due. The rows are the ledger's: a sender that dies loses nothing and,
    started again, sends nothing twice.
    """

    RESTART_PAUSE = 10.0  # seconds: a sender that dies as it starts is not started again on every request

    def __init__(self, *, settings: Settings, interval: float = 1.0) -> None:
        self.settings, self.interval = settings, interval
        self._process: Any = None
        self._wakeups: Any = None  # the write end of the pipe the sender waits on
        self._started = -self.RESTART_PAUSE

    def start(self) -> None:
        import multiprocessing

        # Not a fork of the web process (its threads and event loop would come along half-held):
        # a fork of the forkserver, which has imported this module once for every later start.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        reader, self._wakeups = context.Pipe(duplex=False)
        self._process = context.Process(target=TransactionalSender._run, args=(self.settings, self.interval, reader),
                                        name="pressroom-transactional", daemon=True)
        self._started = time.monotonic()
        self._process.start()
        reader.close()  # the sender holds the only read end: a write fails once it is gone
        os.set_blocking(self._wakeups.fileno(), False)

    def wake(self) -> None:
        if self._wakeups is None:
            return
        try:
            os.write(self._wakeups.fileno(), b"\0")
        except BlockingIOError:
            pass  # wake-ups not read yet fill the pipe: a round is coming anyway
        except BrokenPipeError:
            self._restart()

    def _restart(self) -> None:
        if time.monotonic() - self._started < self.RESTART_PAUSE:
            return
        log.error("subscription emails: the sender process stopped (exit code %s); starting another",
                  self._process.exitcode)
        self._wakeups.close()
        self._process.join()
        self.start()

    def stop(self) -> None:
        if self._process is None:
            return
        self._wakeups.close()  # the end of the pipe tells the sender to stop after its round
        self._process.join(timeout=30)
        if self._process.is_alive():
            log.error("subscription emails: the sender did not stop within 30 s; ending it")
            self._process.terminate()
            self._process.join()
        self._process = self._wakeups = None

    @staticmethod
    def _run(settings: Settings, interval: float, wakeups: Any) -> None:
        """The sender process: a round on each wake-up or after ``interval`` s, until the web app closes its end."""
        import select
        import signal

        # Ctrl-C reaches the whole process group; the web app stops this process itself, after the round.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # When the cores are all busy, the requests come first: the confirmations catch up after.
        os.nice(10)
        logging.basicConfig(format="%(levelname)s:     %(name)s: %(message)s")
        # The requests planned the rows (enqueue_transactional): a round only drains them.
        drain = Drain(send=SubscriptionEmails(), settings=settings)
        fd = wakeups.fileno()
        while True:  # a round first: what was queued before this sender started goes out at once
            try:
                drain()
            except PressroomError as exc:
                log.warning("subscription emails: %s", exc)
            except Exception:  # the sender keeps going; the rows stay due
                log.exception("subscription emails: unexpected failure; they stay queued")
            ready, _, _ = select.select([fd], [], [], interval)
            if ready and not os.read(fd, 4096):  # the end of the pipe: the web app stopped, or died
                return


# --------------------------------------------------------------------------- staff emails

STAFF = "staff"


def staff_email(*, settings: Settings, transport: Transport | None = None) -> EmailChannel:
    """Proofs and alerts: a handful of ready messages, one per person, kept in their rows."""
    return EmailChannel(name=STAFF, settings=settings, transport=transport,
                        render=lambda d: base64.b64decode(d.payload or ""))


@dataclass(frozen=True)
class Staff(Send):
    """A handful of ready messages to staff under one ``key``, one per address (a proof, an alert)."""

    key: str
    messages: tuple[tuple[str, bytes], ...]
    transport: Transport | None = field(default=None, compare=False)
    channel = STAFF

    def plan(self, ledger: Ledger, now: datetime) -> int:
        return sum(ledger.enqueue(release=self.key, channel=STAFF, recipient=address, subscriber_id=None,
                                  payload=base64.b64encode(data).decode(), now=now)
                   for address, data in self.messages)

    def open(self, settings: Settings, ledger: Ledger) -> Channel:
        return staff_email(settings=settings, transport=self.transport)

    def pacing(self, settings: Settings) -> Pacing:
        return Pacing.email(settings, wait=False)


def send_staff(*, settings: Settings, key: str, messages: Mapping[str, bytes], now: datetime | None = None) -> list[str]:
    """Send each of ``messages`` (address -> bytes) once for ``key``; returns who has it.

    A second call with the same ``key`` sends nothing new (a proof is sent once per release
    version, an alert once per failed run). One failing address never stops the others; a
    refused login or a server away leaves the rows queued and the caller goes on.
    """
    if not messages:
        return []
    ledger = Ledger.from_settings(settings)
    delivered = deliver(Staff(key=key, messages=tuple(messages.items())), settings=settings, now=now or _now(), ledger=ledger)
    if delivered.report.error:
        log.warning("staff email %s: %s", key, delivered.report.error)
    states = ledger.states(release=key, channel=STAFF)
    for address in messages:
        if states.get(address) != "sent":
            log.warning("could not email %s (%s): %s", address, key, states.get(address, "not planned"))
    return [address for address in messages if states.get(address) == "sent"]



def email_staff(*, settings: Settings, key: str, to: Sequence[str], subject: str, text: str) -> list[str]:
    """One plain note to staff (an operator alert, the inbox's new drafts), sent once for ``key``
    through :func:`send_staff`; the same bytes for each but the To line. Returns who has it."""
    import html

    from pressroom.mail.message import Recipient, build_composed, new_tokens

    composed = build_composed(
        key=key, subject=subject, html_body=f"<pre>{html.escape(text)}</pre>", text_body=text, tokens=new_tokens(),
        settings=settings, bulk=False, headers={"Auto-Submitted": "auto-generated"},  # RFC 3834: no vacation replies
    )
    return send_staff(settings=settings, key=key, messages={address: composed.message(Recipient(address=address)) for address in to})
