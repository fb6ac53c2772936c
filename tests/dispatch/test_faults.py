"""Fan-out against misbehaving SMTP servers on loopback, on SQLite and PostgreSQL.

Every recipient ends sent exactly once (counted at the server) or failed, suppressed and reported.
"""

from __future__ import annotations

import io

import pytest

from pressroom.audience import Audience

from pressroom.errors import ConfigError, PermanentError
from pressroom.ledger import Ledger
from tests._delivery import FaultyHandler, Received, SmtpServer, drain, simple_render
from tests.conftest import NOW

FAST_RETRIES = {
    "PRESSROOM_EMAIL__RETRY_BACKOFF_SECONDS": "0.01",
    "PRESSROOM_EMAIL__RETRY_WINDOW_SECONDS": "60",
    "PRESSROOM_EMAIL__MAX_ATTEMPTS": "40",
    "PRESSROOM_EMAIL__BATCH_SIZE": "100",
    "PRESSROOM_SMTP__CONNECTIONS": "4",
    "PRESSROOM_SMTP__TIMEOUT": "5",
}


def _setup(project, db_url: str, n: int, **env: str):
    settings = project.settings(PRESSROOM_DATABASE_URL=db_url, **{**FAST_RETRIES, **env})
    audience, ledger = Audience.from_settings(settings), Ledger.from_settings(settings)
    rows = "".join(f"reader{i}@example.org,Reader {i}\n" for i in range(n))
    audience.import_csv(file=io.StringIO("address,name\n" + rows), now=NOW)
    ledger.plan_audience(release="news", channel="email", tags=[], cadence="per-release", now=NOW)
    return settings, audience, ledger


@pytest.mark.parametrize("seed", [1, 2])
def test_random_4xx_drops_and_550s_end_in_exactly_once_or_suppressed(project, db_url: str, seed: int) -> None:
    received = Received()
    rejected = frozenset({f"reader{i}@example.org" for i in (3, 77, 150)})
    handler = FaultyHandler(received, seed=seed, rate=0.06, reject=rejected)
    with SmtpServer(handler) as server:
        settings, audience, ledger = _setup(project, db_url, 240, **server.env())
        drain(settings=settings, ledger=ledger, audience=audience, release="news", render=simple_render)
        again = drain(settings=settings, ledger=ledger, audience=audience, release="news", render=simple_render)
    assert again.claimed == 0
    assert all(handler.faults[kind] > 0 for kind in ("421", "452", "451", "drop")), handler.faults
    counts = received.by_recipient()
    everyone = {f"reader{i}@example.org" for i in range(240)}
    report = ledger.report(release="news", channel="email", problems=1000)
    # A drop after the final dot leaves the message's fate unknown: listed as ambiguous, never resent.
    ambiguous = {recipient for _, recipient, state, _ in report.problems if state == "ambiguous"}
    assert len(ambiguous) == handler.faults["drop"]
    assert set(counts) == everyone - rejected - ambiguous
    assert set(counts.values()) == {1}, "somebody received the release twice"
    assert set(received.counts.values()) == {1}
    assert (report.sent, report.failed, report.pending, report.deferred) == (237 - len(ambiguous), 3, 0, 0)
    failed = [r for r in report.problems if r[2] == "failed"]
    assert sorted(r[1] for r in failed) == sorted(rejected)
    assert all("550" in r[3] for r in failed)
    assert all(audience.is_suppressed(address=a) for a in rejected)


def test_one_unrenderable_recipient_does_not_stop_the_send(project, db_url: str) -> None:
    received = Received()

    def render(delivery):
        if delivery.recipient == "reader5@example.org":
            raise PermanentError("the unsubscribe link cannot be built")
        return simple_render(delivery)

    with SmtpServer(FaultyHandler(received)) as server:
        settings, audience, ledger = _setup(project, db_url, 20, **server.env())
        drain(settings=settings, ledger=ledger, audience=audience, release="news", render=render)
    assert len(received.by_recipient()) == 19
    report = ledger.report(release="news", channel="email")
    assert report.failed == 1 and report.problems[0][1] == "reader5@example.org"
    assert "unsubscribe link" in report.problems[0][3]


def test_a_send_of_many_batches_greets_the_server_once_per_connection(project, db_url: str) -> None:
    """A session's greeting costs as much as a few messages: a sender keeps its connections from batch to batch."""
    received = Received()

    class Counting(FaultyHandler):
        greetings = 0

        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            Counting.greetings += 1
            session.host_name = hostname
            return responses

    with SmtpServer(Counting(received)) as server:
        settings, audience, ledger = _setup(project, db_url, 60, **server.env(), PRESSROOM_EMAIL__BATCH_SIZE="10",
                                            PRESSROOM_SMTP__CONNECTIONS="2")
        drain(settings=settings, ledger=ledger, audience=audience, release="news", render=simple_render)
    assert len(received.by_recipient()) == 60 and set(received.counts.values()) == {1}
    assert Counting.greetings == 2


def test_unsubscribing_mid_send_stops_that_email(project, db_url: str) -> None:
    received = Received()
    settings_holder = {}

    def render(delivery):
        if delivery.recipient == "reader10@example.org":
            target = settings_holder["audience"].get(address="reader150@example.org")
            settings_holder["audience"].unsubscribe(subscriber_id=target.id, now=NOW, source="web:one-click")
        return simple_render(delivery)

    with SmtpServer(FaultyHandler(received)) as server:
        settings, audience, ledger = _setup(project, db_url, 200, **server.env(), PRESSROOM_SMTP__CONNECTIONS="1")
        settings_holder["audience"] = audience
        drain(settings=settings, ledger=ledger, audience=audience, release="news", render=render)
    counts = received.by_recipient()
    assert "reader150@example.org" not in counts and len(counts) == 199
    report = ledger.report(release="news", channel="email")
    assert (report.sent, report.suppressed) == (199, 1)


def test_refused_login_stops_before_sending_and_leaves_nothing_ambiguous(project, db_url: str) -> None:
    from aiosmtpd.smtp import AuthResult

    received = Received()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"press" and auth_data.password == b"s3cret"
        return AuthResult(success=ok, handled=False)

    with SmtpServer(FaultyHandler(received), authenticator=authenticator, auth_require_tls=False) as server:
        settings, audience, ledger = _setup(project, db_url, 30, **server.env(),
                                            PRESSROOM_SMTP__USERNAME="press", PRESSROOM_SMTP__PASSWORD="wrong")
        with pytest.raises(ConfigError, match="login"):
            drain(settings=settings, ledger=ledger, audience=audience, release="news", render=simple_render)
        report = ledger.report(release="news", channel="email")
        assert report.sent == 0 and report.ambiguous == 0
        good = project.settings(PRESSROOM_DATABASE_URL=db_url, **FAST_RETRIES, **server.env(),
                                PRESSROOM_SMTP__USERNAME="press", PRESSROOM_SMTP__PASSWORD="s3cret")
        drain(settings=good, ledger=ledger, audience=audience, release="news", render=simple_render)
    assert len(received.by_recipient()) == 30 and set(received.counts.values()) == {1}
