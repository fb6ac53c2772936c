"""Two clocks, never mixed: a send that starts late in its run, or with ``--now`` in the past, looks alive.

The run's ``now`` decides what is due; leases and heartbeats are on the wall clock, which is what an
operator's `pressroom deliveries retry --ambiguous` compares them with. Counted at aiosmtpd, on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from pressroom.audience import Audience
from pressroom.cli import app
from pressroom.dispatch import EmailChannel
from pressroom.dispatch.decide import SEND
from pressroom.dispatch.deliver import Due, Send, drive
from pressroom.ledger import Ledger
from tests._delivery import FaultyHandler, Received, SmtpServer, simple_render
from tests.conftest import NOW


@dataclass(frozen=True)
class News(Send):
    """A release's email to every reader, rendered plainly (the engine and the ledger are what is tested)."""

    key: str
    channel = "email"

    def plan(self, ledger: Ledger, now: datetime) -> int | None:
        return ledger.plan_audience(release=self.key, channel=self.channel, tags=[], cadence="per-release", now=now)

    def open(self, settings, ledger: Ledger) -> EmailChannel:
        return EmailChannel(name=self.channel, settings=settings, render=simple_render)


class Slow(FaultyHandler):
    """A relay that takes a while over each message, so a send lasts longer than its leases."""

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(0.04)
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.parametrize("when", ["an hour ago", "start of a two-release run"])
def test_retrying_ambiguous_during_a_late_send_makes_no_duplicate(project, db_url: str, when: str) -> None:
    received = Received()
    with SmtpServer(Slow(received)) as server:
        env = {"PRESSROOM_DATABASE_URL": db_url, "PRESSROOM_EMAIL__CLAIM_LEASE_SECONDS": "3",
               "PRESSROOM_EMAIL__BATCH_SIZE": "100", "PRESSROOM_SMTP__CONNECTIONS": "4", **server.env()}
        settings = project.settings(**env)
        rows = "".join(f"reader{i}@example.org\n" for i in range(400))
        Audience.from_settings(settings).import_csv(file=io.StringIO("address\n" + rows), now=NOW)
        # The first release's send takes about four seconds, longer than a lease: the second one begins
        # that much later than the run's now; --now an hour ago puts every lease an hour behind.
        run_now = datetime.now(UTC) - (timedelta(hours=1) if when == "an hour ago" else timedelta(0))
        sends = [Due(send=News(key="first"), decision=SEND), Due(send=News(key="second"), decision=SEND)]
        sender = threading.Thread(target=drive, args=(sends,), kwargs={"settings": settings, "now": run_now})
        sender.start()
        runner, toml, in_flight, retries = CliRunner(), str(project.root / "pressroom.toml"), 0, 0
        while sender.is_alive():
            result = runner.invoke(app, ["deliveries", "retry", "--ambiguous", "--yes", "--settings", toml], env=env)
            assert result.exit_code == 0, result.output
            assert "0 ambiguous deliveries will be sent again" in result.output, result.output
            in_flight += "in flight in a sender that is still running" in result.output
            retries += 1
            time.sleep(0.05)
        sender.join()
    assert in_flight > 0, "no retry met a message in flight; the test proved nothing"
    assert sum(received.counts.values()) == 800 and set(received.counts.values()) == {1}, "a reader got a release twice"
    ledger = Ledger.from_settings(settings)
    for release in ("first", "second"):
        report = ledger.report(release=release)
        assert (report.sent, report.ambiguous, report.conflicts) == (400, 0, 0)
