"""The journalist email exactly once across a kill -9 and reruns, counted at a real aiosmtpd server on loopback,
on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from pressroom.audience import MediaList
from pressroom.dispatch.embargo import CHANNEL
from pressroom.ledger import Ledger
from pressroom.mail.transports import transport_for
from tests._delivery import FaultyHandler, Received, SmtpServer
from tests.conftest import REPO, Project

pytestmark = pytest.mark.slow

NOW = "2026-11-30T09:00:00+00:00"  # between the notify instant and the date
SENDER = """
import sys
from datetime import datetime
from pressroom.dispatch.embargo import run_embargo
from pressroom.ledger import Ledger
from pressroom.releases import load_releases
from pressroom.settings import load_settings

settings = load_settings(sys.argv[1])
run_embargo(releases=load_releases(settings).releases, settings=settings, ledger=Ledger.from_settings(settings),
            now=datetime.fromisoformat(sys.argv[2]))
"""


class SlowHandler(FaultyHandler):
    """Accepts everything, a little slowly, so a kill lands in the middle of the send."""

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(0.003)
        return await super().handle_DATA(server, session, envelope)


def _run(project: Project, env: dict[str, str]) -> subprocess.Popen:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PRESSROOM_")} | env
    return subprocess.Popen([sys.executable, "-c", SENDER, str(project.root / "pressroom.toml"), NOW], env=environment, cwd=REPO)


def test_kill_9_mid_send_then_reruns_give_each_journalist_the_embargoed_email_once(project: Project, db_url: str) -> None:
    count = 1500
    project.write_release("big-news", title="Big news", date="2026-12-02 09:00", extra="embargo: {notify: 48h}\n")
    received = Received()
    with SmtpServer(SlowHandler(received)) as server:
        env = {**server.env(), "PRESSROOM_DATABASE_URL": db_url, "PRESSROOM_EMAIL__CLAIM_LEASE_SECONDS": "0.5"}
        settings = project.settings(**env)
        rows = "".join(f"j{i}@example.com,Journalist {i},,,en,\n" for i in range(count))
        media = MediaList.from_settings(settings)
        assert media.import_csv(file=io.StringIO("address,name,outlet,beats,language,country\n" + rows),
                                now=datetime.now(UTC)).added == count
        process = _run(project, env)
        while process.poll() is None and sum(received.by_recipient().values()) < count // 4:
            time.sleep(0.002)
        assert process.poll() is None, "the sender finished before the kill; the test proved nothing"
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        at_kill = sum(received.by_recipient().values())
        time.sleep(0.7)  # the dead sender's leases run out
        for _ in range(2):  # the next scheduled run, and one more
            assert _run(project, env).wait(timeout=300) == 0
        counts = received.by_recipient()
    ledger = Ledger.from_settings(settings)
    report = ledger.report(release="big-news", channel=CHANNEL, problems=count)
    ambiguous = {recipient for _, recipient, state, _ in report.problems if state == "ambiguous"}
    bound = settings.smtp.connections * transport_for(settings=settings).window
    assert count // 4 <= at_kill < count
    assert max(counts.values()) == 1, "a journalist received the embargoed email twice"
    assert len(ambiguous) <= bound  # at most what was in flight at the kill, never resent on its own
    everyone = {f"j{i}@example.com" for i in range(count)}
    assert all(counts[address] == 1 for address in everyone - ambiguous), "a journalist never got it"
    assert (report.sent, report.pending, report.deferred, report.failed) == (count - len(ambiguous), 0, 0, 0)
