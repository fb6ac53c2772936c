"""Subscription emails leave the request path: a mail server that hangs never makes the reader wait,
and the confirmation arrives once the server answers."""

from __future__ import annotations

import re
import time

from starlette.testclient import TestClient

from pressroom.ledger import Ledger
from pressroom.web import create_app
from tests._delivery import free_port, serving
from tests.dispatch.test_exactly_once import CountingSmtp

BASE = "https://press.example.org"


def test_a_subscription_answers_while_smtp_hangs_and_the_confirmation_follows(project, db_url: str) -> None:
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
            assert any(recipient == "reader@example.org" for _, recipient, _, _ in report.problems)
            server.silent.clear()  # the server is back
            deadline = time.monotonic() + 20
            while not server.counts() and time.monotonic() < deadline:
                time.sleep(0.05)
        assert server.counts() == {"reader@example.org": 1}
        assert ledger.report(channel="transactional").sent == 1


def test_subscribe_posts_that_arrive_together_each_get_one_confirmation(project, db_url: str) -> None:
    """Requests written in one batch still answer each for itself: one bad address spoils none of the others."""
    import asyncio

    import httpx

    from pressroom.audience import Audience
    from pressroom.web import server

    with CountingSmtp() as smtp:
        settings = project.settings(**smtp.env(), PRESSROOM_DATABASE_URL=db_url,
                                    PRESSROOM_WEB__POSTS_PER_IP_PER_MINUTE="100000",
                                    PRESSROOM_WEB__CONFIRMATIONS_PER_IP_PER_HOUR="100000")
        port = free_port()
        addresses = [f"reader{n}@example.org" for n in range(60)] + ["reader7@example.org", "not an address"]

        async def post_all() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Origin": settings.site.base_url},
                                         timeout=30) as client:
                return await asyncio.gather(*(client.post("/subscribe", data={"email": a, "cadence": "per-release"})
                                              for a in addresses))

        with serving(server(settings=settings, host="127.0.0.1", port=port)):
            answers = asyncio.run(post_all())
            deadline = time.monotonic() + 30
            while smtp.total() < 60 and time.monotonic() < deadline:
                time.sleep(0.05)
    assert [a.status_code for a in answers] == [200] * 61 + [400]
    # reader7 asked twice: each request has its own link (within the per-mailbox daily limit).
    assert smtp.counts() == {address: 2 if address == "reader7@example.org" else 1 for address in addresses[:60]}
    pending = {s.address for s in Audience.from_settings(settings).list(status="pending")}
    assert pending == set(addresses[:60])


def test_a_sender_process_that_dies_is_replaced_and_the_app_stops_it_on_shutdown(project, db_url: str,
                                                                                 monkeypatch) -> None:
    import multiprocessing
    import os
    import signal

    from pressroom.dispatch import TransactionalSender

    def senders() -> list[multiprocessing.process.BaseProcess]:
        return [p for p in multiprocessing.active_children() if p.name == "pressroom-transactional"]

    monkeypatch.setattr(TransactionalSender, "RESTART_PAUSE", 0.0)
    with CountingSmtp() as smtp:
        settings = project.settings(**smtp.env(), PRESSROOM_DATABASE_URL=db_url)
        with TestClient(create_app(settings=settings), base_url=BASE, headers={"Origin": BASE}) as client:
            def subscribe(address: str) -> None:
                answer = client.post("/subscribe", data={"email": address, "cadence": "per-release", "csrf_token": ""})
                assert answer.status_code == 200
                deadline = time.monotonic() + 20
                while address not in smtp.counts() and time.monotonic() < deadline:
                    time.sleep(0.05)

            subscribe("first@example.org")
            [sender] = senders()
            os.kill(sender.pid, signal.SIGKILL)
            sender.join()
            subscribe("second@example.org")
            assert [p.pid for p in senders()] != [sender.pid]
        assert not senders()
    assert smtp.counts() == {"first@example.org": 1, "second@example.org": 1}


def test_a_sender_process_that_dies_while_no_reader_comes_is_replaced_all_the_same(project, monkeypatch) -> None:
    import multiprocessing
    import os
    import signal

    from pressroom.dispatch import TransactionalSender
    from pressroom.web import app as web_app

    def senders() -> list[int]:
        return [p.pid for p in multiprocessing.active_children() if p.name == "pressroom-transactional"]

    monkeypatch.setattr(TransactionalSender, "RESTART_PAUSE", 0.0)
    monkeypatch.setattr(web_app, "_SENDER_CHECK", 0.1)
    with TestClient(create_app(settings=project.settings()), base_url=BASE):
        [first] = senders()
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while senders() in ([], [first]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(senders()) == 1 and senders() != [first]
    assert not senders()
