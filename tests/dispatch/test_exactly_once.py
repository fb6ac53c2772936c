"""Exactly once under the faults that break it: counted at an SMTP server written for this test.

The server below is not the project's code nor aiosmtpd: it speaks just enough ESMTP (with
PIPELINING) to count, per recipient, every message whose final dot it read, and it can stall
or hang up right after that dot, the moment where a client cannot know whether it delivered.
Each test runs on SQLite and PostgreSQL through the engine production uses
(:func:`pressroom.dispatch.send_email`).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from pressroom.dispatch import EmailChannel, send_email
from pressroom.ledger import Ledger
from pressroom.mail.transports import transport_for
from tests._delivery import planned_readers
from tests.conftest import NOW, REPO


class CountingSmtp:
    """A loopback ESMTP server in a thread that counts deliveries per recipient.

    ``fault_every=n``: every n-th message, right after its final dot, the server either never
    answers (``fault="stall"``) or closes the connection (``fault="drop"``). The message counts
    as delivered all the same: that is the case where a resend would be a duplicate.
    ``full``: addresses answered ``552 5.2.2`` (mailbox full) at RCPT. ``reply_delay``: seconds
    before each answer to the end of data (a slow server keeps messages in flight). While
    ``silent`` is set, the server accepts connections and never says a word.
    """

    def __init__(self, *, fault_every: int = 0, fault: str = "stall", full: frozenset[str] = frozenset(),
                 reply_delay: float = 0.0) -> None:
        self.fault_every, self.fault, self.full, self.reply_delay = fault_every, fault, full, reply_delay
        self.silent = threading.Event()
        self.lock = threading.Lock()
        self.delivered: list[tuple[str, float]] = []  # (recipient, monotonic time of the final dot)
        self.faulted: list[str] = []
        self.messages = 0
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(recipient for recipient, _ in self.delivered)

    def total(self) -> int:
        with self.lock:
            return len(self.delivered)

    def __enter__(self) -> CountingSmtp:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def env(self) -> dict[str, str]:
        return {"PRESSROOM_EMAIL__TRANSPORT": "smtp", "PRESSROOM_SMTP__HOST": "127.0.0.1",
                "PRESSROOM_SMTP__PORT": str(self.port), "PRESSROOM_SMTP__SECURITY": "none"}

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._session, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def say(text: str) -> None:
            writer.write(text.encode() + b"\r\n")

        if self.silent.is_set():
            await reader.read()  # until the client gives up
            return
        say("220 counting ESMTP")
        recipients: list[str] = []
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                command = line.decode("ascii", "replace").strip()
                upper = command.upper()
                if upper.startswith("EHLO"):
                    writer.write(b"250-counting\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n")
                elif upper.startswith("HELO"):
                    say("250 counting")
                elif upper.startswith("MAIL FROM:"):
                    recipients = []
                    say("250 2.1.0 Ok")
                elif upper.startswith("RCPT TO:"):
                    address = command[8:].split(">")[0].strip(" <").lower()
                    if address in self.full:
                        say("552 5.2.2 Mailbox full")
                    else:
                        recipients.append(address)
                        say("250 2.1.5 Ok")
                elif upper == "DATA":
                    if not recipients:
                        say("554 5.5.1 No valid recipients")
                        continue
                    say("354 End data with <CR><LF>.<CR><LF>")
                    await writer.drain()
                    while (await reader.readline()) not in (b".\r\n", b""):
                        pass
                    arrived = time.monotonic()
                    with self.lock:
                        self.messages += 1
                        number = self.messages
                        self.delivered.extend((r, arrived) for r in recipients)
                    if self.fault_every and number % self.fault_every == 0:
                        with self.lock:
                            self.faulted.extend(recipients)
                        if self.fault == "drop":
                            writer.close()
                            return
                        await reader.read()  # stall: never answer; wait until the client gives up
                        return
                    if self.reply_delay:
                        await asyncio.sleep(self.reply_delay)
                    say(f"250 2.0.0 Ok: queued as {number}")
                elif upper == "RSET" or upper == "NOOP":
                    say("250 2.0.0 Ok")
                elif upper == "QUIT":
                    say("221 2.0.0 Bye")
                    await writer.drain()
                    writer.close()
                    return
                else:
                    say("502 5.5.2 Command not recognised")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return


def render(delivery) -> bytes:
    return (f"From: press@example.org\r\nTo: {delivery.recipient}\r\nSubject: news\r\n"
            f"Message-ID: <news.{delivery.id}@example.org>\r\n\r\nHello.\r\n.starts with a dot\r\n").encode()


def _send(settings, ledger: Ledger, run_id: str | None = None):
    return send_email(channel=EmailChannel(name="email", settings=settings, render=render), ledger=ledger,
                      release="news", run_id=run_id)


BASE = {
    "PRESSROOM_EMAIL__RETRY_BACKOFF_SECONDS": "0.01",
    "PRESSROOM_EMAIL__RETRY_WINDOW_SECONDS": "30",
    "PRESSROOM_SMTP__CONNECTIONS": "4",
}


@pytest.mark.parametrize("fault", ["stall", "drop"])
def test_a_lost_answer_after_the_final_dot_is_ambiguous_never_resent(project, db_url: str, fault: str) -> None:
    with CountingSmtp(fault_every=100, fault=fault) as server:
        settings = project.settings(PRESSROOM_DATABASE_URL=db_url, PRESSROOM_SMTP__TIMEOUT="1", **BASE, **server.env())
        _, ledger = planned_readers(settings, 2000, now=NOW)
        _send(settings, ledger)
        _send(settings, ledger)  # a rerun resends nothing
        counts = server.counts()
    assert len(server.faulted) == 20
    assert max(counts.values()) == 1, "somebody received the release twice"
    assert len(counts) == 2000
    report = ledger.report(release="news", problems=100)
    assert (report.sent, report.ambiguous, report.deferred, report.pending) == (1980, 20, 0, 0)
    assert sorted(r for _, r, state, _ in report.problems if state == "ambiguous") == sorted(server.faulted)


SENDER = """
import sys
from pressroom.dispatch import EmailChannel, send_email
from pressroom.ledger import Ledger
from pressroom.settings import load_settings
from tests.dispatch.test_exactly_once import render

settings = load_settings(sys.argv[1])
send_email(channel=EmailChannel(name="email", settings=settings, render=render), ledger=Ledger.from_settings(settings),
           release="news")
"""


def _sender(project, env: dict[str, str]) -> subprocess.Popen:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PRESSROOM_")} | env
    return subprocess.Popen([sys.executable, "-c", SENDER, str(project.root / "pressroom.toml")], env=environment, cwd=REPO)


@pytest.mark.slow
def test_kill_9_leaves_no_more_ambiguous_than_in_flight_and_nothing_twice_or_lost(project, db_url: str) -> None:
    recipients = 5000
    with CountingSmtp() as server:
        env = {"PRESSROOM_DATABASE_URL": db_url, "PRESSROOM_EMAIL__CLAIM_LEASE_SECONDS": "0.5",
               "PRESSROOM_EMAIL__BATCH_SIZE": "200", **BASE, **server.env()}
        settings = project.settings(**env)
        _, ledger = planned_readers(settings, recipients, now=NOW)
        bound = settings.smtp.connections * transport_for(settings=settings).window
        kill_points = sorted(random.Random().sample(range(200, recipients - 400), 10))
        ambiguous_before, kills, largest = 0, 0, 0
        for point in kill_points:
            process = _sender(project, env)
            while process.poll() is None and server.total() < point:
                time.sleep(0.002)
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                kills += 1
            process.wait()
            time.sleep(0.7)  # the dead sender's leases run out
            ambiguous = ledger.report(release="news").ambiguous
            assert ambiguous - ambiguous_before <= bound, f"one kill left {ambiguous - ambiguous_before} ambiguous (bound {bound})"
            largest = max(largest, ambiguous - ambiguous_before)
            ambiguous_before = ambiguous
        assert kills >= 5, "the sender finished before most kill points; the test proved little"
        assert _sender(project, env).wait(timeout=300) == 0
        counts = server.counts()
    everyone = {f"reader{i}@example.org" for i in range(recipients)}
    report = ledger.report(release="news", problems=recipients)
    ambiguous = {r for _, r, state, _ in report.problems if state == "ambiguous"}
    sent = everyone - ambiguous
    assert max(counts.values()) == 1, "somebody received the release twice"
    assert (report.sent, report.pending, report.deferred, report.failed) == (recipients - len(ambiguous), 0, 0, 0)
    assert all(counts[address] == 1 for address in sent), "a row marked sent never arrived"
    assert set(counts) >= sent  # no silent loss: everyone not ambiguous has it

    # The operator's word: resend the ambiguous ones. Then everybody has it; only those whose
    # message had arrived before the kill get a second copy.
    assert ledger.retry_ambiguous(now=datetime.now(UTC), release="news") == (len(ambiguous), 0)
    with CountingSmtp() as again:
        env.update(again.env())
        assert _sender(project, env).wait(timeout=300) == 0
        resent = again.counts()
    assert set(resent) == ambiguous and max(resent.values()) == 1
    assert ledger.report(release="news").sent == recipients


def test_retry_ambiguous_during_a_live_send_makes_no_duplicate(project, db_url: str) -> None:
    from typer.testing import CliRunner

    from pressroom.cli import app

    with CountingSmtp(reply_delay=0.01) as server:
        env = {"PRESSROOM_DATABASE_URL": db_url, "PRESSROOM_EMAIL__CLAIM_LEASE_SECONDS": "5", **BASE, **server.env()}
        settings = project.settings(**env)
        _, ledger = planned_readers(settings, 600, now=NOW)
        sender = threading.Thread(target=_send, args=(settings, ledger))
        sender.start()
        runner, skipped = CliRunner(), 0
        toml = str(project.root / "pressroom.toml")
        while sender.is_alive():
            result = runner.invoke(app, ["deliveries", "retry", "--ambiguous", "--settings", toml], env=env)
            assert result.exit_code == 0, result.output
            assert "0 ambiguous deliveries will be sent again" in result.output
            if "in flight in a sender that is still running" in result.output:
                skipped += 1
            time.sleep(0.02)
        sender.join()
        counts = server.counts()
    assert skipped > 0, "no retry ever met a message in flight; the test proved nothing"
    assert len(counts) == 600 and max(counts.values()) == 1
    assert ledger.report(release="news").sent == 600


def test_an_unsubscribe_stops_every_message_not_yet_on_the_wire(project, db_url: str) -> None:
    with CountingSmtp() as server:
        settings = project.settings(PRESSROOM_DATABASE_URL=db_url, PRESSROOM_SMTP__RATE_PER_SECOND="150",
                                    PRESSROOM_EMAIL__BATCH_SIZE="500", **BASE, **server.env())
        audience, ledger = planned_readers(settings, 900, now=NOW)
        sender = threading.Thread(target=_send, args=(settings, ledger))
        sender.start()
        removed: dict[str, float] = {}
        rng = random.Random(7)
        bound = settings.smtp.connections * transport_for(settings=settings).window
        while len(removed) < 100 and sender.is_alive():
            time.sleep(rng.uniform(0.005, 0.03))
            # A reader not reached yet (past the messages that may be in flight), often in a claimed batch.
            reached = max((int(r[6:].split("@")[0]) for r in server.counts()), default=-1)
            index = rng.randrange(reached + bound + 2, 900) if reached + bound + 2 < 900 else None
            if index is None:
                break
            address = f"reader{index}@example.org"
            if address in removed:
                continue
            subscriber = audience.get(address=address)
            audience.unsubscribe(subscriber_id=subscriber.id, now=NOW, source="web:one-click")
            removed[address] = time.monotonic()  # the unsubscribe is committed
        sender.join()
        with server.lock:
            late = [(r, t) for r, t in server.delivered if r in removed and t > removed[r]]
    assert len(removed) >= 50, "the send ended before the test could unsubscribe enough readers"
    assert late == [], f"{len(late)} message(s) went out after the reader's unsubscribe was committed"
    report = ledger.report(release="news")
    assert report.suppressed == sum(1 for r in removed if server.counts()[r] == 0)


def test_two_workers_sharing_one_send_each_report_their_own_share(project, db_url: str) -> None:
    with CountingSmtp(reply_delay=0.002) as server:
        settings = project.settings(PRESSROOM_DATABASE_URL=db_url, PRESSROOM_EMAIL__BATCH_SIZE="50", **BASE, **server.env())
        _, ledger = planned_readers(settings, 1000, now=NOW)
        results = {}
        workers = [threading.Thread(target=lambda run=run: results.setdefault(run, _send(settings, ledger, run_id=run)))
                   for run in ("run-a", "run-b")]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        counts = server.counts()
    own = {run: ledger.report(release="news", run_id=run).sent_now for run in ("run-a", "run-b")}
    assert own["run-a"] > 0 and own["run-b"] > 0
    assert own["run-a"] + own["run-b"] == 1000 == len(counts)
    assert {run: results[run].sent for run in own} == own
    assert max(counts.values()) == 1


def test_a_full_mailbox_is_retried_then_failed_but_never_suppressed(project, db_url: str) -> None:
    full = "reader3@example.org"
    with CountingSmtp(full=frozenset({full})) as server:
        settings = project.settings(PRESSROOM_DATABASE_URL=db_url, PRESSROOM_EMAIL__MAX_ATTEMPTS="3", **BASE, **server.env())
        audience, ledger = planned_readers(settings, 10, now=NOW)
        _send(settings, ledger)
    report = ledger.report(release="news")
    assert (report.sent, report.failed, report.deferred) == (9, 1, 0)
    assert [(r, state) for _, r, state, _ in report.problems] == [(full, "failed")]
    assert "5.2.2" in report.problems[0][3]
    assert not audience.is_suppressed(address=full)
