"""A mail server that goes away, and comes back: nothing lost, nothing twice, no reader blamed.

Counted at a real SMTP server (aiosmtpd) on loopback, on SQLite and PostgreSQL. The minutes of an
outage are played on a clock the test moves (the engine's ``clock``), not slept.
"""

from __future__ import annotations

import socketserver
import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from pressroom.audience import Audience
from pressroom.cli import app
from pressroom.db import deliveries, engine_for_url
from pressroom.dispatch import EmailChannel, enqueue_transactional, transactional_email
from pressroom.dispatch.engine import LONGEST_WAIT, dispatch
from pressroom.ledger import Ledger
from tests._delivery import Clock, FaultyHandler, Received, SmtpServer, planned_readers, simple_render
from tests.conftest import NOW


class _Greeting421(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"421 4.3.2 Service not available, closing transmission channel\r\n")


class Refusing:
    """A server that answers every connection 421 at the greeting and hangs up (a relay in maintenance)."""

    def __init__(self, port: int) -> None:
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", port), _Greeting421)
        self.server.daemon_threads = True

    def __enter__(self) -> Refusing:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _drain(channel, ledger: Ledger, clock: Clock, *, release: str | None):
    settings = channel.settings
    return dispatch(channel=channel, ledger=ledger, release=release, batch_size=settings.email.batch_size,
                    lease=timedelta(seconds=settings.email.claim_lease_seconds), clock=clock)


def _attempts(url: str) -> Counter[int]:
    with engine_for_url(url).connect() as conn:
        return Counter(conn.execute(select(deliveries.c.attempts)).scalars())


@pytest.mark.parametrize("outage", ["refused", "421-greeting"])
def test_a_nine_minute_outage_during_a_2000_reader_send_loses_nothing_and_blames_no_reader(
        project, db_url: str, outage: str) -> None:
    received = Received()
    server = SmtpServer(FaultyHandler(received))
    # Default retry settings: before, five refused connections (about 7.5 minutes) failed every row for good.
    settings = project.settings(PRESSROOM_DATABASE_URL=db_url, PRESSROOM_SMTP__CONNECTIONS="4", **server.env())
    audience, ledger = planned_readers(settings, 2000, now=NOW)
    channel = EmailChannel(name="email", settings=settings, render=simple_render)
    clock = Clock()
    down = Refusing(server.port) if outage == "421-greeting" else None
    if down is not None:
        down.__enter__()
    for _ in range(18):  # nine minutes, a run every 30 s as a busy schedule would
        _drain(channel, ledger, clock, release="news")
        report = ledger.report(release="news")
        assert (report.sent, report.failed, report.deferred) == (0, 0, 2000)
        clock.advance(seconds=30)
    if down is not None:
        down.__exit__()
    assert _attempts(db_url) == Counter({0: 2000}), "the outage spent readers' attempts"
    reason = ledger.report(release="news", problems=1).problems[0][3]
    assert ("421 4.3.2" if outage == "421-greeting" else "cannot connect") in reason

    with server:
        for _ in range(int(LONGEST_WAIT.total_seconds() // 30) + 2):  # the mail comes back by itself
            _drain(channel, ledger, clock, release="news")
            if ledger.report(release="news").sent == 2000:
                break
            clock.advance(seconds=30)
    report = ledger.report(release="news")
    assert (report.sent, report.failed, report.deferred, report.ambiguous) == (2000, 0, 0, 0)
    counts = received.by_recipient()
    assert len(counts) == 2000 and set(counts.values()) == {1}, "not every reader got the release exactly once"
    assert _attempts(db_url) == Counter({1: 2000})
    assert not any(audience.is_suppressed(address=f"reader{i}@example.org") for i in range(0, 2000, 97))


def test_subscribers_during_an_outage_each_get_their_confirmation_once(project, db_url: str) -> None:
    received = Received()
    server = SmtpServer(FaultyHandler(received))
    settings = project.settings(PRESSROOM_DATABASE_URL=db_url, **server.env())
    audience, ledger = Audience.from_settings(settings), Ledger.from_settings(settings)
    channel = transactional_email(settings=settings)
    clock = Clock()
    for i in range(30):  # one request every 18 s, each emailed at once by the web app's sender, for nine minutes
        who = audience.add(address=f"new{i}@example.net", status="pending", now=clock.now, source="web:subscribe")
        assert enqueue_transactional(settings=settings, kind="confirm", subscriber_id=who.id, address=who.address,
                                     action_url=f"https://press.example.org/confirm/{i}?t=x", key=f"confirm-{i}",
                                     now=clock.now, ledger=ledger)
        _drain(channel, ledger, clock, release=None)
        clock.advance(seconds=18)
    report = ledger.report(channel="transactional")
    assert (report.sent, report.failed, report.deferred) == (0, 0, 30)
    with server:
        for _ in range(int(LONGEST_WAIT.total_seconds() // 20) + 2):
            _drain(channel, ledger, clock, release=None)
            if ledger.report(channel="transactional").sent == 30:
                break
            clock.advance(seconds=20)
    assert ledger.report(channel="transactional").sent == 30
    counts = received.by_recipient()
    assert counts == Counter({f"new{i}@example.net": 1 for i in range(30)})


class _Throttling(FaultyHandler):
    """Outlook.com's answer to a sender going too fast, to every RCPT until ``busy`` is cleared."""

    def __init__(self, received: Received) -> None:
        super().__init__(received)
        self.busy = True

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.busy:
            return "451 4.7.500 Server busy. Please try again later from [192.0.2.25]. (S77719)"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


def test_a_rate_limit_defers_without_spending_the_readers_attempts(project, db_url: str) -> None:
    received = Received()
    handler = _Throttling(received)
    with SmtpServer(handler) as server:
        settings = project.settings(PRESSROOM_DATABASE_URL=db_url, PRESSROOM_EMAIL__MAX_ATTEMPTS="2", **server.env())
        _, ledger = planned_readers(settings, 20, now=NOW)
        channel = EmailChannel(name="email", settings=settings, render=simple_render)
        clock = Clock()
        for _ in range(6):  # three times max_attempts
            _drain(channel, ledger, clock, release="news")
            clock.advance(minutes=2)
        report = ledger.report(release="news", problems=1)
        assert (report.sent, report.failed, report.deferred) == (0, 0, 20)
        assert "4.7.500" in report.problems[0][3]
        assert _attempts(db_url) == Counter({0: 20})
        handler.busy = False
        for _ in range(10):
            _drain(channel, ledger, clock, release="news")
            if ledger.report(release="news").sent == 20:
                break
            clock.advance(minutes=2)
    assert ledger.report(release="news").sent == 20
    assert set(received.by_recipient().values()) == {1} and len(received.by_recipient()) == 20


def test_past_give_up_after_mail_expires_and_the_operator_sends_it_again(project, db_url: str) -> None:
    received = Received()
    server = SmtpServer(FaultyHandler(received))
    env = {"PRESSROOM_DATABASE_URL": db_url, "PRESSROOM_EMAIL__GIVE_UP_AFTER": "9m", **server.env()}
    settings = project.settings(**env)
    _, ledger = planned_readers(settings, 40, now=NOW)
    channel = EmailChannel(name="email", settings=settings, render=simple_render)
    clock = Clock()
    for _ in range(12):  # an hour of outage, tried ever less often
        _drain(channel, ledger, clock, release="news")
        clock.advance(minutes=5)
    report = ledger.report(release="news", problems=100)
    assert (report.sent, report.failed, report.deferred, report.counts.get("expired")) == (0, 0, 0, 40)
    assert "expired 40 (the server was unavailable too long)" in report.as_text()
    assert "bounced" not in report.as_text()
    assert {"state": "expired (server unavailable)", "count": 40} in report.as_rows()

    runner, toml = CliRunner(), str(project.root / "pressroom.toml")
    refused = runner.invoke(app, ["deliveries", "retry", "--expired", "--release", "news", "--settings", toml],
                            env=env, input="n\n")
    assert "40 expired deliveries of news will be queued again" in refused.output
    assert "nothing changed" in refused.output and refused.exit_code == 1
    assert ledger.report(release="news").counts.get("expired") == 40
    assert "0 expired deliveries" in runner.invoke(
        app, ["deliveries", "retry", "--expired", "--since", "2000-01-01T00:00+00:00", "--release", "other", "--yes",
              "--settings", toml], env=env).output
    done = runner.invoke(app, ["deliveries", "retry", "--expired", "--since", "2h", "--yes", "--settings", toml], env=env)
    assert done.exit_code == 0 and "40 expired deliveries will be sent again on the next run" in done.output
    assert ledger.report(release="news").pending == 40
    with server:
        _drain(channel, ledger, clock, release="news")
    assert ledger.report(release="news").sent == 40
    assert len(received.by_recipient()) == 40 and set(received.by_recipient().values()) == {1}
