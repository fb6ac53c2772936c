"""Correction and withdrawal emails: to everyone who received the release, once, across reruns and kill -9
(the kill on SQLite and PostgreSQL).

Counted at a real SMTP server on loopback (aiosmtpd), sent by the one dispatch loop.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.header import decode_header, make_header

from pressroom.audience import Audience
from pressroom.dispatch import release_email, send_email
from pressroom.dispatch.after import send_follow_ups
from pressroom.ledger import Ledger
from tests._delivery import FaultyHandler, Received, SmtpServer
from tests.conftest import NOW, REPO, loaded_release
from tests.dispatch.test_exactly_once import CountingSmtp

READERS = [f"reader{i}@example.org" for i in range(6)]
FIRST_SEEN = NOW
LATER = NOW + timedelta(days=2)
NOTE = "The recovery rate is 91%, not 95%."
FAST = {"PRESSROOM_EMAIL__RETRY_BACKOFF_SECONDS": "0.01", "PRESSROOM_EMAIL__RETRY_WINDOW_SECONDS": "10"}


def _write(project, *, extra: str = "", status: str = "approved") -> None:
    project.write_release("record", title="Lithium recovery record", date="2024-07-30 09:00", status=status,
                          body="Recovery reached 95 %.", extra="email: {corrections: true, withdrawal_notice: true}\n" + extra)


def _sent_original(settings, readers: list[str]) -> Ledger:
    """The release emailed to ``readers`` (all confirmed) plus one reader who subscribed only later."""
    audience, ledger = Audience.from_settings(settings), Ledger.from_settings(settings)
    audience.import_csv(file=io.StringIO("address\n" + "".join(f"{r}\n" for r in readers)), now=NOW)
    release = loaded_release(settings)
    ledger.plan_audience(release=release.slug, channel="email", tags=[], cadence="per-release", now=NOW)
    send_email(channel=release_email(release=release, settings=settings), ledger=ledger, release=release.slug)
    audience.import_csv(file=io.StringIO("address\nlatecomer@example.org\n"), now=LATER)
    return ledger


def _subjects(received: Received) -> list[str]:
    return [str(make_header(decode_header(message_from_bytes(m, policy=policy.default)["Subject"]))) for m in received.messages]


def test_a_correction_goes_once_to_those_who_received_the_release_and_a_withdrawal_notice_once_too(project):
    received = Received()
    with SmtpServer(FaultyHandler(received)) as server:
        # Every message kept: the handler's add() is patched per instance to keep the bytes.
        original_add = received.add
        received.add = lambda rcpts, data, keep=True: original_add(rcpts, data, keep=keep)  # type: ignore[method-assign]
        settings = project.settings(**server.env(), **FAST)
        _write(project)
        ledger = _sent_original(settings, READERS)
        assert received.by_recipient() == dict.fromkeys(READERS, 1)

        # An edit with no note sends nothing; a note dated after the first publication goes once, however often the run repeats.
        assert send_follow_ups(release=loaded_release(settings), settings=settings, ledger=ledger, now=LATER, first_seen=FIRST_SEEN) == []
        _write(project, extra=f'corrections:\n  - {{date: 2024-08-02 10:00, note: "{NOTE}"}}\n')
        for _ in range(3):
            (report,) = send_follow_ups(release=loaded_release(settings), settings=settings, ledger=ledger, now=LATER, first_seen=FIRST_SEEN)
        assert report.channel == "email:correction:1" and report.sent == len(READERS)
        assert received.by_recipient() == dict.fromkeys(READERS, 2)  # the release, then its correction; not the latecomer
        correction = message_from_bytes(received.messages[-1], policy=policy.default)
        assert _subjects(received)[-1] == "Correction: Lithium recovery record"
        body = correction.get_body(("plain",)).get_content()
        assert NOTE in body and "2 August 2024" in body and "https://press.example.org/releases/record/" in body
        assert correction["List-Unsubscribe"]

        # Withdrawn: one short notice each, again only to those who received it; the correction is not sent again.
        _write(project, status="withdrawn", extra=f'corrections:\n  - {{date: 2024-08-02 10:00, note: "{NOTE}"}}\n'
               'withdrawn: {date: 2024-08-03 09:00, reason: "Published before the partners agreed."}\n')
        for _ in range(2):
            reports = send_follow_ups(release=loaded_release(settings), settings=settings, ledger=ledger, now=LATER, first_seen=FIRST_SEEN)
        assert [r.channel for r in reports] == ["email:correction:1", "email:withdrawal"]
        assert received.by_recipient() == dict.fromkeys(READERS, 3)
        assert _subjects(received)[-1] == "Withdrawn: Lithium recovery record"
        assert "Published before the partners agreed." in message_from_bytes(received.messages[-1], policy=policy.default).get_body(("plain",)).get_content()


def test_a_note_already_there_at_first_publication_is_not_mailed_and_no_option_means_no_email(project):
    received = Received()
    with SmtpServer(FaultyHandler(received)) as server:
        settings = project.settings(**server.env(), **FAST)
        _write(project, extra=f'corrections:\n  - {{date: 2024-07-30 10:00, note: "{NOTE}"}}\n')
        ledger = _sent_original(settings, READERS)
        first_seen = datetime(2024, 7, 30, 12, 0, tzinfo=UTC)  # the note was written before the run that published it
        assert send_follow_ups(release=loaded_release(settings), settings=settings, ledger=ledger, now=LATER, first_seen=first_seen) == []
        project.write_release("record", title="Lithium recovery record", date="2024-07-30 09:00", body="Recovery reached 95 %.",
                              extra=f'corrections:\n  - {{date: 2024-08-02 10:00, note: "{NOTE}"}}\n')
        assert send_follow_ups(release=loaded_release(settings), settings=settings, ledger=ledger, now=LATER, first_seen=first_seen) == []
        assert received.by_recipient() == dict.fromkeys(READERS, 1)


SENDER = """
import sys
from datetime import datetime, timedelta, UTC
from pressroom.settings import load_settings
from pressroom.ledger import Ledger
from pressroom.releases import load_releases
from pressroom.dispatch.after import send_follow_ups
settings = load_settings(sys.argv[1])
(release,) = load_releases(settings).releases
now = datetime(2024, 8, 3, 12, 0, tzinfo=UTC)
send_follow_ups(release=release, settings=settings, ledger=Ledger.from_settings(settings), now=now,
                first_seen=datetime(2024, 8, 1, 12, 0, tzinfo=UTC))
"""


def test_after_kill_9_the_rerun_sends_each_correction_once_and_only_in_flight_ones_are_left_ambiguous(project, db_url):
    readers = [f"reader{i}@example.org" for i in range(400)]
    with CountingSmtp(reply_delay=0.005) as server:
        env = {**server.env(), **FAST, "PRESSROOM_DATABASE_URL": db_url,
               "PRESSROOM_EMAIL__CLAIM_LEASE_SECONDS": "0.5", "PRESSROOM_EMAIL__BATCH_SIZE": "50",
               "PRESSROOM_SMTP__CONNECTIONS": "2"}
        settings = project.settings(**env)
        _write(project)
        ledger = _sent_original(settings, readers)
        _write(project, extra=f'corrections:\n  - {{date: 2024-08-02 10:00, note: "{NOTE}"}}\n')
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PRESSROOM_")} | env
        command = [sys.executable, "-c", SENDER, str(project.root / "pressroom.toml")]
        process = subprocess.Popen(command, env=environment, cwd=REPO)
        while process.poll() is None and server.total() < len(readers) + 100:
            time.sleep(0.002)
        killed = process.poll() is None
        if killed:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
        time.sleep(0.7)  # the dead sender's leases run out
        assert subprocess.run(command, env=environment, cwd=REPO, timeout=300).returncode == 0
        counts = server.counts()
    assert killed, "the sender finished before the kill; the test proved little"
    report = ledger.report(release="record", channel="email:correction:1", problems=len(readers))
    ambiguous = {r for _, r, state, _ in report.problems if state == "ambiguous"}
    assert len(ambiguous) <= settings.smtp.connections * 50  # at most what was in flight at the kill
    assert max(counts.values()) == 2, "somebody received the correction twice"
    assert all(counts[r] == 2 for r in readers if r not in ambiguous)
    assert report.sent == len(readers) - len(ambiguous)
