"""The email fan-out engine: claim a batch from the ledger, personalise, send, mark. No Prefect here.

:func:`send_batch` is one unit of work (a Prefect task in ``flows/email.py``; a loop in the CLI,
tests and benchmarks). Inside a batch, ``transport.connections`` senders work in parallel on
small chunks; each chunk is marked ``sending`` in one statement right before its messages go
out and marked with the outcomes right after, so a crash leaves at most one chunk per
connection ambiguous and never causes a resend.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

from pressroom.audience import Audience, preferences_url, unsubscribe_url
from pressroom.errors import ConfigError, PermanentError, TransientError
from pressroom.ledger import Delivery, Ledger, Outcome
from pressroom.mail.transports import RecipientRejected, Transport, transport_for
from pressroom.settings import Settings

__all__ = ["BatchResult", "Render", "digest_personaliser", "drain", "personaliser", "send_batch"]

log = logging.getLogger("pressroom.delivery")

Render = Callable[[Delivery], bytes]
CHUNK = 25  # rows marked `sending` together: the most a crash can leave ambiguous per connection


@dataclass
class BatchResult:
    """What one batch (or several, added up) did."""

    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    bounced: int = 0
    suppressed: int = 0

    def __add__(self, other: BatchResult) -> BatchResult:
        return BatchResult(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})


def personaliser(*, composed, settings: Settings) -> Render:
    """A :data:`Render` for a composed email: the recipient's name and signed links into ready bytes."""
    from pressroom.mail import Recipient

    def render(delivery: Delivery) -> bytes:
        sid = delivery.subscriber_id
        return composed.message(
            Recipient(
                address=delivery.recipient,
                name=delivery.name,
                unsubscribe_url=unsubscribe_url(settings=settings, subscriber_id=sid) if sid is not None else "",
                preferences_url=preferences_url(settings=settings, subscriber_id=sid) if sid is not None else "",
            )
        )

    return render


def digest_personaliser(*, releases: list, settings: Settings, ledger: Ledger, key: str,
                        period: tuple[datetime, datetime]) -> Render:
    """A :data:`Render` for digest ``key``: each reader's own selection, composed once per distinct selection."""
    from pressroom.mail import compose_digest

    by_slug = {release.slug: release for release in releases}
    composed: dict[tuple[str, ...], Render] = {}
    lock = threading.Lock()

    def render(delivery: Delivery) -> bytes:
        slugs = ledger.digest_contents(digest=key, recipients=[delivery.recipient]).get(delivery.recipient, ())
        with lock:
            if slugs not in composed:
                # Selections follow topics, so there are few of them; personalising is per reader.
                chosen = [by_slug[slug] for slug in slugs]
                composed[slugs] = personaliser(
                    composed=compose_digest(releases=chosen, settings=settings, period_start=period[0], period_end=period[1]),
                    settings=settings,
                )
            personal = composed[slugs]
        return personal(delivery)

    return render


def _now() -> datetime:
    return datetime.now(UTC)


def _backoff(settings: Settings, attempts: int) -> timedelta:
    base = settings.email.retry_backoff_seconds * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(base, 3600.0) * random.uniform(0.8, 1.2))


def send_batch(
    *,
    settings: Settings,
    ledger: Ledger,
    audience: Audience,
    release: str,
    render: Render,
    channel: str = "email",
    transport: Transport | None = None,
    limit: int | None = None,
) -> BatchResult:
    """Claim up to ``limit`` (default ``email.batch_size``) due rows of (release, channel) and send them.

    One failing recipient never stops the batch: its row is deferred (4xx, drops, timeouts),
    failed (5xx; a refused address is also suppressed) or failed with the render error.
    Raises :class:`ConfigError` (e.g. SMTP login refused) after recording every row it touched.
    """
    transport = transport or transport_for(settings=settings)
    token, rows = ledger.claim(
        release=release,
        channel=channel,
        limit=limit or settings.email.batch_size,
        now=_now(),
        lease=timedelta(seconds=settings.email.claim_lease_seconds),
    )
    if not rows:
        return BatchResult()
    return _run(_send(settings=settings, ledger=ledger, audience=audience, rows=rows, token=token,
                      render=render, transport=transport))


def drain(
    *,
    settings: Settings,
    ledger: Ledger,
    audience: Audience,
    release: str,
    render: Render,
    channel: str = "email",
    transport: Transport | None = None,
    on_progress: Callable[[BatchResult], None] | None = None,
) -> BatchResult:
    """Send batches until nothing is due, waiting for deferred retries up to ``email.retry_window_seconds``."""
    transport = transport or transport_for(settings=settings)
    total = BatchResult()
    deadline = time.monotonic() + settings.email.retry_window_seconds
    while True:
        result = send_batch(settings=settings, ledger=ledger, audience=audience, release=release,
                            render=render, channel=channel, transport=transport)
        total = total + result
        if result.claimed and on_progress:
            on_progress(total)
        remaining, due = ledger.outstanding(release=release, channel=channel)
        if not remaining:
            return total
        if due is None:
            continue  # rows are due now: keep sending, however long the send takes
        wait = max((due - _now()).total_seconds(), 0.0)
        if time.monotonic() + wait > deadline:
            return total  # only retries are left, due after this run's patience: the next run takes them
        if not result.claimed:
            time.sleep(min(max(wait, 0.01), 5.0))


def _run(coroutine):
    """Run a coroutine from sync code, also when the calling thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


async def _send(
    *,
    settings: Settings,
    ledger: Ledger,
    audience: Audience,
    rows: list[Delivery],
    token: str,
    render: Render,
    transport: Transport,
) -> BatchResult:
    chunks = deque(rows[i : i + CHUNK] for i in range(0, len(rows), CHUNK))
    result = BatchResult(claimed=len(rows))
    envelope_from = settings.email.return_path or settings.email.sender
    errors: list[BaseException] = []

    async def worker() -> None:
        sender = await transport.connect()
        try:
            while chunks and not errors:
                chunk = chunks.popleft()
                ok = set(await asyncio.to_thread(ledger.begin_sending, ids=[d.id for d in chunk], worker=token, now=_now()))
                result.suppressed += len(chunk) - len(ok)
                outcomes: list[Outcome] = []
                bounced: list[tuple[str, str]] = []
                try:
                    for delivery in (d for d in chunk if d.id in ok):
                        outcomes.append(await _one(delivery, sender, envelope_from, render, settings, bounced))
                except ConfigError as exc:
                    errors.append(exc)
                    done = {o.id for o in outcomes}
                    outcomes += [Outcome(id=d.id, state="deferred", response=f"not sent: {exc.message}", retry_at=_now())
                                 for d in chunk if d.id in ok and d.id not in done]
                await asyncio.to_thread(ledger.finish, outcomes=outcomes, now=_now(), max_attempts=settings.email.max_attempts)
                for address, why in bounced:
                    await asyncio.to_thread(audience.suppress, address=address, reason="hard-bounce", detail=why, now=_now())
                for outcome in outcomes:
                    setattr(result, outcome.state, getattr(result, outcome.state) + 1)
                result.bounced += len(bounced)
        finally:
            await sender.close()

    workers = max(1, min(transport.connections, len(chunks)))
    await asyncio.gather(*(worker() for _ in range(workers)))
    if errors:
        raise errors[0]
    return result


async def _one(delivery: Delivery, sender, envelope_from: str, render: Render, settings: Settings,
               bounced: list[tuple[str, str]]) -> Outcome:
    try:
        message = render(delivery)
    except PermanentError as exc:
        return Outcome(id=delivery.id, state="failed", response=f"not sent: {exc}")
    except Exception as exc:  # noqa: BLE001 - one recipient's bad data never stops the others
        log.exception("composing the email for %s failed", delivery.recipient)
        return Outcome(id=delivery.id, state="failed", response=f"not sent: {type(exc).__name__}: {exc}")
    key = f"{delivery.release}/{delivery.recipient}"
    try:
        response = await sender.send(envelope_from=envelope_from, recipient=delivery.recipient, message=message, key=key)
    except RecipientRejected as exc:
        bounced.append((delivery.recipient, exc.message))
        return Outcome(id=delivery.id, state="failed", response=exc.message)
    except PermanentError as exc:
        return Outcome(id=delivery.id, state="failed", response=exc.message)
    except TransientError as exc:
        retry_at = _now() + _backoff(settings, delivery.attempts + 1)
        return Outcome(id=delivery.id, state="deferred", response=exc.message, retry_at=retry_at)
    return Outcome(id=delivery.id, state="sent", response=response)


