"""kill -9 the sending process at random points of a 5,000-recipient send, then rerun.

Counted at a real SMTP server on loopback: nobody receives the release twice, and every
recipient is either delivered or listed as ambiguous (and then resent only on the operator's word).
"""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from pressroom.audience import Audience
from pressroom.ledger import Ledger
from tests._delivery import FaultyHandler, Received, SmtpServer, db_url, pg_server_url  # noqa: F401
from tests.conftest import NOW, REPO

RECIPIENTS = 5_000
SENDER = """
import sys
from pressroom.audience import Audience
from pressroom.delivery import drain
from pressroom.ledger import Ledger
from pressroom.settings import load_settings

def render(d):
    return (f"From: press@example.org\\r\\nTo: {d.recipient}\\r\\nSubject: news\\r\\n"
            f"Message-ID: <news.{d.id}@example.org>\\r\\n\\r\\nHello {d.name}.\\r\\n" + ("x" * 76 + "\\r\\n") * 26).encode()

settings = load_settings(sys.argv[1])
drain(settings=settings, ledger=Ledger.from_settings(settings), audience=Audience.from_settings(settings),
      release="news", render=render)
"""


def _sender(project, env: dict[str, str]) -> subprocess.Popen:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PRESSROOM_")} | env
    return subprocess.Popen([sys.executable, "-c", SENDER, str(project.root / "pressroom.toml")], env=environment, cwd=REPO)


@pytest.mark.slow
def test_kill_9_mid_send_never_sends_twice(project, db_url: str) -> None:  # noqa: F811
    received = Received()
    rng = random.Random()
    kill_points = sorted(rng.sample(range(200, RECIPIENTS - 500), 3))
    with SmtpServer(FaultyHandler(received)) as server:
        env = {
            "PRESSROOM_DATABASE_URL": db_url,
            "PRESSROOM_EMAIL__CLAIM_LEASE_SECONDS": "0.5",  # a dead sender's unused claims come back quickly
            "PRESSROOM_EMAIL__BATCH_SIZE": "200",
            "PRESSROOM_SMTP__CONNECTIONS": "4",
            **server.env(),
        }
        settings = project.settings(**env)
        audience, ledger = Audience.from_settings(settings), Ledger.from_settings(settings)
        rows = "".join(f"reader{i}@example.org,Reader {i}\n" for i in range(RECIPIENTS))
        audience.import_csv(file=io.StringIO("address,name\n" + rows), now=NOW)
        ledger.plan_audience(release="news", channel="email", tags=[], cadence="per-release", now=NOW)

        killed = 0
        for point in kill_points:
            process = _sender(project, env)
            while process.poll() is None and sum(received.counts.values()) < point:
                time.sleep(0.002)
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                killed += 1
            process.wait()
            time.sleep(0.6)
        assert killed >= 1, "the sender finished before any kill point; the test proved nothing"
        final = _sender(project, env)
        assert final.wait(timeout=300) == 0

        counts = received.by_recipient()
        assert max(counts.values()) == 1, "somebody received the release twice"
        report = ledger.report(release="news", channel="email", problems=RECIPIENTS)
        assert report.sent + report.ambiguous == RECIPIENTS
        assert (report.pending, report.deferred, report.failed) == (0, 0, 0)
        ambiguous = {recipient for _, _, recipient in ledger.ambiguous(release="news")}
        delivered = set(counts)
        everyone = {f"reader{i}@example.org" for i in range(RECIPIENTS)}
        # Sent in the ledger means received exactly once; the rest are listed as ambiguous.
        assert everyone - ambiguous <= delivered
        assert everyone == delivered | ambiguous

        # The operator's word: resend the ambiguous ones. Then everybody has it; only those
        # whose message did arrive before the crash get a second copy.
        ledger.retry_ambiguous(now=NOW, release="news")
        assert _sender(project, env).wait(timeout=300) == 0
        after = received.by_recipient()
        assert set(after) == everyone
        twice = {address for address, n in after.items() if n > 1}
        assert twice <= ambiguous & delivered
        assert ledger.report(release="news", channel="email").sent == RECIPIENTS
