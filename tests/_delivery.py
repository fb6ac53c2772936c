"""Helpers for the delivery tests: SMTP servers on loopback that count (or refuse) what they get, a uvicorn
server in a thread, the one dispatch worker. The database fixtures they run on are in conftest.py."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pressroom.audience import Audience
    from pressroom.ledger import Ledger

PG_ADMIN = os.environ.get("PRESSROOM_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


class Clock:
    """A clock the test moves: minutes of retries and leases pass in no time."""

    def __init__(self) -> None:
        self.start = self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def after(self, offset: timedelta) -> None:
        """Where the clock is ``offset`` after it started (a test's runs step their ``now`` by the same)."""
        self.now = self.start + offset


class Received:
    """What an SMTP test server accepted: (recipient, Message-ID) pairs, counted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()
        self.messages: list[bytes] = []

    def add(self, recipients: list[str], data: bytes, *, keep: bool = False) -> None:
        message_id = message_from_bytes(data).get("Message-ID", "")
        with self.lock:
            for rcpt in recipients:
                self.counts[(rcpt.lower(), message_id)] += 1
            if keep:
                self.messages.append(data)

    def by_recipient(self) -> Counter[str]:
        with self.lock:
            result: Counter[str] = Counter()
            for (rcpt, _mid), n in self.counts.items():
                result[rcpt] += n
            return result


@contextmanager
def serving(server) -> Iterator[None]:  # a uvicorn.Server
    """Run a uvicorn server in a thread on loopback until the block ends (the web app, as `pressroom serve` runs it)."""
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FaultyHandler:
    """An aiosmtpd handler that misbehaves at random, like real servers on a bad day.

    421 to MAIL FROM then hangs up; 452 to RCPT TO; 451 to DATA; hangs up after the data
    without answering (the message is not kept); 550 for every address in ``reject``.
    A message counts as received only when it was answered 250.
    """

    def __init__(self, received: Received, *, seed: int = 0, rate: float = 0.0, reject: frozenset[str] = frozenset()) -> None:
        import random

        self.received = received
        self.random = random.Random(seed)
        self.rate = rate
        self.reject = reject
        self.faults: Counter[str] = Counter()

    def _roll(self, fault: str = "") -> bool:
        hit = self.rate > 0 and self.random.random() < self.rate
        if hit:
            self.faults[fault] += 1
        return hit

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self._roll("421"):
            import asyncio

            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.3.2 Service shutting down, closing the connection"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return "550 5.1.1 No such user here"
        if self._roll("452"):
            return "452 4.2.2 Mailbox full, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self._roll("451"):
            return "451 4.3.0 Temporary local problem, try later"
        if self._roll("drop"):
            server.transport.close()
            return "421 4.4.2 Connection dropped"  # never reaches the client
        self.received.add(envelope.rcpt_tos, envelope.content)
        return "250 2.0.0 OK queued"


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 in a background thread."""

    def __init__(self, handler, **kwargs) -> None:
        from aiosmtpd.controller import Controller

        self.port = free_port()
        self.controller = Controller(handler, hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def env(self) -> dict[str, str]:
        """Settings overrides that point Pressroom at this server."""
        return {
            "PRESSROOM_EMAIL__TRANSPORT": "smtp",
            "PRESSROOM_SMTP__HOST": "127.0.0.1",
            "PRESSROOM_SMTP__PORT": str(self.port),
        }


def simple_render(delivery) -> bytes:
    """A minimal complete message per delivery, with a stable Message-ID (used before composing is wired)."""
    return (
        f"From: press@example.org\r\nTo: {delivery.recipient}\r\nSubject: {delivery.release}\r\n"
        f"Message-ID: <{delivery.release}.{delivery.id}@example.org>\r\n\r\nHello {delivery.name or 'reader'}.\r\n"
    ).encode()


def planned_readers(settings, n: int, *, now: datetime) -> tuple[Audience, Ledger]:
    """``n`` readers (reader0@example.org and up) imported at ``now``, and release "news" planned to all of them by email."""
    import io

    from pressroom.audience import Audience
    from pressroom.ledger import Ledger

    audience, ledger = Audience.from_settings(settings), Ledger.from_settings(settings)
    rows = "".join(f"reader{i}@example.org\n" for i in range(n))
    audience.import_csv(file=io.StringIO("address\n" + rows), now=now)
    ledger.plan_audience(release="news", channel="email", tags=[], cadence="per-release", now=now)
    return audience, ledger


def drain(*, settings, ledger, audience=None, release: str, render=simple_render, channel: str = "email"):
    """Send every due row of (release, channel) the way production's send task does: one dispatch worker."""
    from pressroom.dispatch import EmailChannel, send_email

    del audience  # the engine reads the audience through the ledger
    return send_email(channel=EmailChannel(name=channel, settings=settings, render=render), ledger=ledger, release=release)


def settle_subscription_emails(settings, timeout: float = 15.0) -> None:
    """Wait until the web app's sender has delivered every subscription email that is due (it runs off the request path)."""
    import time
    from datetime import UTC, datetime

    from pressroom.ledger import Ledger

    ledger = Ledger.from_settings(settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = ledger.report(channel="transactional", problems=0)
        if not ledger.outstanding(release=None, channel="transactional", now=datetime.now(UTC))[0] \
                and not report.pending and not report.in_flight:
            return
        time.sleep(0.02)
    raise AssertionError(f"subscription emails still undelivered after {timeout} s: {report.as_text()}")
