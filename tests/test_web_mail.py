"""Subscription emails leave the request path: a mail server that hangs never makes the reader wait,
and the confirmation arrives once the server answers."""

from __future__ import annotations

import re
import time

from starlette.testclient import TestClient

from pressroom.ledger import Ledger
from pressroom.web import create_app
from tests._delivery import db_url, pg_server_url  # noqa: F401  (fixtures)
from tests.test_exactly_once import CountingSmtp

BASE = "https://press.example.org"


def test_a_subscription_answers_while_smtp_hangs_and_the_confirmation_follows(project, db_url: str) -> None:  # noqa: F811
    with CountingSmtp() as server:
        server.silent.set()
        settings = project.settings(**server.env(), PRESSROOM_DATABASE_URL=db_url, PRESSROOM_SMTP__TIMEOUT="1",
                                    PRESSROOM_EMAIL__RETRY_BACKOFF_SECONDS="0.5")
        ledger = Ledger.from_settings(settings)
        with TestClient(create_app(settings=settings), base_url=BASE) as client:
            page = client.get("/subscribe")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            answer = client.post("/subscribe", data={"email": "reader@example.org", "csrf_token": token,
                                                     "form": "subscribe-page", "cadence": "per-release"})
            assert answer.status_code == 200 and "reader@example.org" not in server.counts()
            # The server accepts and says nothing: the email is deferred and listed, not lost.
            deadline = time.monotonic() + 20
            while ledger.report(channel="transactional").deferred == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            report = ledger.report(channel="transactional")
            assert report.deferred == 1 and report.sent == 0, report.as_text()
            assert any("reader@example.org" == recipient for _, recipient, _, _ in report.problems)
            server.silent.clear()  # the server is back
            deadline = time.monotonic() + 20
            while not server.counts() and time.monotonic() < deadline:
                time.sleep(0.05)
        assert server.counts() == {"reader@example.org": 1}
        assert ledger.report(channel="transactional").sent == 1
