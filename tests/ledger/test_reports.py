"""`pressroom deliveries report | list | find` and `journalists report`, read as the comms office reads them.

Emails go to a real SMTP server (aiosmtpd) on loopback, the ledger is SQLite and PostgreSQL;
the other states are made the way a sender leaves them (a live one, one that died, a lost answer).
"""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from pressroom.audience import Audience, MediaList
from pressroom.cli import app
from pressroom.ledger import Ledger, Outcome, sender_name
from tests._delivery import FaultyHandler, Received, SmtpServer, drain

READERS = {"ann@example.org": "en", "bob@example.org": "en", "gone@example.org": "en", "chloe@example.org": "fr",
           "denis@example.org": "fr"}
LATER = ["eve@example.org", "fay@example.org", "gus@example.org", "hal@example.org", "ivy@example.org", "jo@example.org"]
KEY = "a-test-key-that-is-long-enough-for-hmac"


def cli(project, db: str, *args: str):
    """Run ``pressroom`` as the operator would; a question (send them again?) is answered yes."""
    env = {"PRESSROOM_DATABASE_URL": db, "PRESSROOM_SECRET_KEY": KEY}
    return CliRunner().invoke(app, [*args, "--settings", str(project.root / "pressroom.toml")], env=env, input="y\n")


def line_of(output: str, start: str) -> str:
    [line] = [line for line in output.splitlines() if line.startswith(start)]
    return line


def dead_pid() -> int:
    """The pid of a process of this host that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _take(ledger: Ledger, release: str, limit: int, *, worker: str | None = None, lease: float = 600,
          now: datetime | None = None) -> tuple[str, list[int]]:
    """Claim ``limit`` rows and begin sending them, as a sender does just before the wire."""
    now = now or datetime.now(UTC)
    worker, rows = ledger.claim(release=release, channel="email", limit=limit, now=now, worker=worker,
                                lease=timedelta(seconds=lease))
    return worker, ledger.advance(worker=worker, outcomes=[], begin=[r.id for r in rows], now=now,
                                  lease=timedelta(seconds=lease))


def _recipient(ledger: Ledger, delivery_id: int) -> str:
    return next(recipient for i, _, _, recipient, _, _ in ledger.rows_of(channels=("email",)) if i == delivery_id)


@pytest.fixture
def office(project, db_url):
    """"news" went out for real: an email in two languages (one address refused), its correction and a post;
    "later" is caught mid-send, with every state a sender can leave behind (who is in which: ``who``)."""
    received = Received()
    audience, ledger = Audience(url=db_url), Ledger(url=db_url)
    now = datetime.now(UTC)
    for address, language in READERS.items():
        audience.add(address=address, language=language, topics=["news"], now=now, source="test")
    with SmtpServer(FaultyHandler(received, reject=frozenset({"gone@example.org"}))) as server:
        settings = project.settings(**server.env(), PRESSROOM_DATABASE_URL=db_url)
        ledger.plan_audience(release="news", channel="email", tags=["news"], cadence="per-release", now=now)
        drain(settings=settings, ledger=ledger, release="news")
        ledger.plan_received(release="news", source="email", channel="email:correction:1", now=now)
        drain(settings=settings, ledger=ledger, release="news", channel="email:correction:1")
    ledger.plan(release="news", channel="social:mastodon:default", recipients=["press@example.social"], now=now)
    worker, [post] = ledger.claim(release="news", channel="social:mastodon:default", limit=1, now=now)
    ledger.advance(worker=worker, outcomes=[], begin=[post.id], now=now)
    ledger.advance(worker=worker, outcomes=[Outcome(id=post.id, state="sent", response="https://example.social/@press/1")],
                   begin=[], now=now)

    for address in LATER:
        audience.add(address=address, topics=["later"], now=now, source="test")
    ledger.plan_audience(release="later", channel="email", tags=["later"], cadence="per-release", now=now)
    who: dict[str, str] = {}
    # Its sender died while sending (its lease ran out); another's answer was lost after the final dot.
    who["died"] = _recipient(ledger, _take(ledger, "later", 1, now=now - timedelta(minutes=5), lease=60)[1][0])
    lost, [lost_id] = _take(ledger, "later", 1)
    ledger.advance(worker=lost, outcomes=[Outcome(id=lost_id, state="ambiguous", response="timed out after the final dot")],
                   begin=[], now=now)
    who["lost"] = _recipient(ledger, lost_id)
    # The server asked to try later.
    slow, [slow_id] = _take(ledger, "later", 1)
    ledger.advance(worker=slow, outcomes=[Outcome(id=slow_id, state="deferred", response="452 4.2.2 Mailbox full, try later",
                                                  retry_at=now + timedelta(minutes=10))], begin=[], now=now)
    who["deferred"] = _recipient(ledger, slow_id)
    # Held by this (live) process; claimed by a process that has ended, with 42 s of lease left.
    who["live"] = _recipient(ledger, _take(ledger, "later", 1, worker=sender_name())[1][0])
    _, [orphan] = ledger.claim(release="later", channel="email", limit=1, now=now, lease=timedelta(seconds=42),
                               worker=sender_name().replace(f"{os.getpid()}@", f"{dead_pid()}@", 1))
    who["orphan"] = orphan.recipient
    # The last one unsubscribed before anything went out to them.
    who["unsubscribed"] = next(recipient for _, release, _, recipient, state, _ in ledger.rows_of(channels=("email",))
                               if release == "later" and state == "planned")
    audience.remove(address=who["unsubscribed"], now=now, source="test")
    assert _take(ledger, "later", 1)[1] == []
    # Two subscription emails, each under a key of its own.
    for key in ("welcome-1", "welcome-2"):
        ledger.enqueue(release=key, channel="transactional", recipient="zoe@example.org", subscriber_id=None, payload="{}", now=now)
    return ledger, received, who


def test_the_report_counts_each_channel_and_language_apart_and_says_what_to_do(project, db_url, office) -> None:
    _, received, who = office
    assert sorted(received.by_recipient()) == ["ann@example.org", "bob@example.org", "chloe@example.org", "denis@example.org"]
    out = cli(project, db_url, "deliveries", "report").output

    # 4 emails + 4 corrections + 1 post are never "sent 9": each channel and reader language on its own line.
    assert re.search(r"^  email \(en\) +2 sent, 1 failed$", out, re.M)
    assert re.search(r"^  email \(fr\) +2 sent$", out, re.M)
    assert re.search(r"^  email:correction:1 \(en\) +2 sent$", out, re.M)
    assert re.search(r"^  email:correction:1 \(fr\) +2 sent$", out, re.M)
    assert re.search(r"^  social:mastodon:default +1 sent$", out, re.M)
    assert re.search(r"^  email \(en\) +1 in flight, 1 sender gone, 1 deferred, 2 ambiguous, 1 suppressed$", out, re.M)
    assert "emails of no release (subscriptions, staff)\n  transactional  2 pending\n" in out  # not one heading per email
    assert "welcome-1" not in out

    assert "ambiguous 2: the server may have it; retrying sends it again to those who got it: how many had arrived " \
           "is not known yet (no ambiguous row was resent before)" in out
    assert "  next: only if a second copy is better than none: pressroom deliveries retry --ambiguous" in out
    assert f"  later  email  {who['died']}  its sender stopped while sending it (no answer recorded)" in out
    assert f"  later  email  {who['lost']}  timed out after the final dot" in out

    host = re.escape(sender_name().split("@", 1)[1].split("#")[0])
    assert re.search(rf"^  later  email  {who['live']}  held by {host}, pid {os.getpid()}, lease until 20\d\d-", out, re.M)
    wait = re.search(r"^sender gone 1: in flight, but its sender is no longer running\n  next: run again after (\d+) s, "
                     r"when its lease runs out$", out, re.M)
    assert wait and 30 <= int(wait[1]) <= 42
    assert re.search(rf"^  later  email  {who['orphan']}  held by {host}, pid \d+, which is not running; due again in \d+ s$",
                     out, re.M)
    assert re.search(rf"^  later  email  {who['deferred']}  452 4\.2\.2 Mailbox full, try later; next try 20\S+ \S+ CES?T$",
                     out, re.M)
    assert "failed 1: refused, with the server's answer\n  next: fix the cause the answer names" in out
    assert re.search(r"^  news  email  gone@example\.org  550 5\.1\.1 No such user here", out, re.M)
    assert f"  later  email  {who['unsubscribed']}  not sent: unsubscribed or suppressed before sending" in out
    assert "history" not in out and not re.search(r"\d sending|^sending", out, re.M)  # never the raw ledger state


def test_resends_and_late_answers_stay_in_the_report_after_the_counts_settle(project, db_url, office) -> None:
    ledger, _, who = office
    retried = cli(project, db_url, "deliveries", "retry", "--ambiguous", "--release", "later")
    assert "2 ambiguous deliveries will be sent again" in retried.output
    now = datetime.now(UTC)
    worker, rows = ledger.claim(release="later", channel="email", limit=10, now=now)
    assert sorted(r.recipient for r in rows) == sorted([who["died"], who["lost"]])
    began = ledger.advance(worker=worker, outcomes=[], begin=[r.id for r in rows], now=now)
    ledger.advance(worker=worker, outcomes=[Outcome(id=i, state="sent", response="250 2.0.0 OK queued") for i in began],
                   begin=[], now=now)
    # The first sender of the lost answer hears its 250 after all: that first copy had arrived.
    lost_id = next(r.id for r in rows if r.recipient == who["lost"])
    ledger.advance(worker="the-first-sender", outcomes=[Outcome(id=lost_id, state="sent", response="250 2.0.0 OK late")],
                   begin=[], now=now)

    out = cli(project, db_url, "deliveries", "report", "--release", "later").output
    assert re.search(r"^  email \(en\) +2 sent, 1 in flight, 1 sender gone, 1 deferred, 1 suppressed$", out, re.M)
    assert "history (kept after the counts settle):" in out
    assert re.search(rf"later  email  {who['died']}  resent on the operator's word; it was ambiguous$", out, re.M)
    assert re.search(rf"later  email  {who['lost']}  resent on the operator's word; it was ambiguous "
                     r"\(timed out after the final dot\)$", out, re.M)
    assert re.search(rf"later  email  {who['lost']}  its earlier sender answered sent after it had lost the row "
                     r"\(250 2\.0\.0 OK late\); so the first copy had arrived$", out, re.M)

    # The next ambiguous row is said with what the last ones taught: 1 of 2 had arrived.
    ledger.plan(release="third", channel="email", recipients=["kay@example.org"], now=now)
    worker, [row] = ledger.claim(release="third", channel="email", limit=1, now=now - timedelta(minutes=5),
                                 lease=timedelta(seconds=60))
    ledger.advance(worker=worker, outcomes=[], begin=[row.id], now=now - timedelta(minutes=5), lease=timedelta(seconds=60))
    again = cli(project, db_url, "deliveries", "report", "--release", "third").output
    assert "ambiguous 1: the server may have it; retrying sends it again to those who got it: " \
           "1 of the last 2 such rows had arrived (known from a late answer; of the others nobody can tell)" in again


def test_who_got_it_list_and_find_and_erased_people_stay_erased(project, db_url, office) -> None:
    listed = cli(project, db_url, "deliveries", "list", "--release", "news", "--format", "csv")
    table = list(csv.DictReader(io.StringIO(listed.stdout)))
    assert listed.stderr == "10 deliveries\n"
    assert list(table[0]) == ["release", "channel", "language", "recipient", "state", "attempts", "updated", "answer"]
    states = {(r["channel"], r["recipient"]): (r["language"], r["state"]) for r in table}
    assert states[("email", "chloe@example.org")] == ("fr", "sent")
    assert states[("email", "gone@example.org")] == ("en", "failed")
    assert states[("email:correction:1", "ann@example.org")] == ("en", "sent")
    assert states[("social:mastodon:default", "press@example.social")] == ("", "sent")
    assert len(table) == 10

    failed = cli(project, db_url, "deliveries", "list", "--release", "news", "--state", "failed")
    [line] = failed.stdout.splitlines()
    assert line.startswith("news\temail\ten\tgone@example.org\tfailed\t1\t") and line.endswith("\t550 5.1.1 No such user here")
    flight = cli(project, db_url, "deliveries", "list", "--release", "later", "--state", "in flight").stdout
    assert [line.split("\t")[3:5] for line in flight.splitlines()] == [["hal@example.org", "in flight"]]
    assert cli(project, db_url, "deliveries", "list", "--release", "news", "--state", "sending").exit_code == 2

    found = cli(project, db_url, "deliveries", "find", "Ann@Example.org")
    assert found.exit_code == 0
    assert [line.split("\t")[:5] for line in found.output.splitlines()] == [
        ["news", "email", "en", "ann@example.org", "sent"],
        ["news", "email:correction:1", "en", "ann@example.org", "sent"],
    ]
    assert cli(project, db_url, "subscribers", "remove", "ann@example.org", "--erase").exit_code == 0
    gone = cli(project, db_url, "deliveries", "find", "ann@example.org")
    assert gone.exit_code == 1 and gone.stdout == ""
    assert gone.stderr == "nothing was sent to ann@example.org (or it was erased: the ledger keeps no address of an erased person)\n"
    assert "ann@example.org" not in cli(project, db_url, "deliveries", "list", "--release", "news").stdout
    assert "ann@example.org" not in cli(project, db_url, "deliveries", "report").output


def test_the_journalists_report_counts_from_the_same_states(project, db_url) -> None:
    from pressroom.dispatch.embargo import CHANNEL

    audience, ledger = Audience(url=db_url), Ledger(url=db_url)
    media, now = MediaList(audience=audience), datetime.now(UTC)
    reporters = ["kim@daily.example", "lou@weekly.example", "max@radio.example", "ned@wire.example"]
    for address in reporters:
        media.add(address=address, now=now, outlet="Daily")
    ledger.plan(release="pilot", channel=CHANNEL, recipients=reporters, now=now)
    worker, rows = ledger.claim(release="pilot", channel=CHANNEL, limit=4, now=now, lease=timedelta(minutes=10))
    began = ledger.advance(worker=worker, outcomes=[], begin=[r.id for r in rows], now=now, lease=timedelta(minutes=10))
    ledger.advance(worker=worker, begin=[], now=now, outcomes=[
        Outcome(id=began[0], state="sent", response="250 ok"), Outcome(id=began[1], state="sent", response="250 ok"),
        Outcome(id=began[2], state="failed", response="550 5.1.1 No such user here"),
    ])
    result = cli(project, db_url, "journalists", "report", "pilot")
    assert "kim@daily.example\tsent\tnot opened" in result.output
    assert "max@radio.example\tfailed\tnot opened" in result.output
    assert "ned@wire.example\tin flight\tnot opened" in result.output  # never the raw "sending"
    assert result.stderr.strip() == "2 sent, 1 in flight, 1 failed; 0 opened the preview"


class SlowHandler:
    """An aiosmtpd handler that takes its time over each message, so a send is still going when it is killed."""

    def __init__(self, received: Received, delay: float) -> None:
        self.received, self.delay = received, delay

    async def handle_DATA(self, server, session, envelope):
        import asyncio

        await asyncio.sleep(self.delay)
        self.received.add(envelope.rcpt_tos, envelope.content)
        return "250 2.0.0 OK queued"


SENDER = """
import sys
from pressroom.ledger import Ledger
from pressroom.settings import load_settings
from tests._delivery import drain

settings = load_settings(sys.argv[1])
drain(settings=settings, ledger=Ledger.from_settings(settings), release="news")
"""


@pytest.mark.slow
def test_after_a_kill_the_report_says_the_sender_is_gone_then_what_is_ambiguous_and_what_was_resent(
        project, db_url) -> None:
    import signal
    import time

    from tests.conftest import REPO

    readers, lease = 300, 8
    received = Received()
    with SmtpServer(SlowHandler(received, delay=0.02)) as server:
        env = {"PRESSROOM_DATABASE_URL": db_url, "PRESSROOM_EMAIL__CLAIM_LEASE_SECONDS": str(lease),
               "PRESSROOM_EMAIL__BATCH_SIZE": "50", "PRESSROOM_SMTP__CONNECTIONS": "2", **server.env()}
        audience, ledger = Audience(url=db_url), Ledger(url=db_url)
        now = datetime.now(UTC)
        audience.import_csv(file=io.StringIO("address\n" + "".join(f"reader{i}@example.org\n" for i in range(readers))), now=now)
        ledger.plan_audience(release="news", channel="email", tags=[], cadence="per-release", now=now)
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PRESSROOM_")} | env
        command = [sys.executable, "-c", SENDER, str(project.root / "pressroom.toml")]
        sender = subprocess.Popen(command, env=environment, cwd=REPO)
        while sender.poll() is None and sum(received.by_recipient().values()) < 60:
            time.sleep(0.005)
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait()
        killed_at = time.monotonic()

        # At once: the dead sender still holds its rows, and the report says so, with when to run again.
        gone = cli(project, db_url, "deliveries", "report", "--release", "news").output
        held = re.search(r"^sender gone (\d+): in flight, but its sender is no longer running\n"
                         r"  next: run again after (\d+) s, when its lease runs out(?: \((\d+) it was sending become ambiguous then)?",
                         gone, re.M)
        assert held, gone
        assert 0 < int(held[2]) <= lease
        assert int(held[3] or 0) <= 2 * 2  # connections x window: what may have been on the wire
        assert f"held by {re.escape(sender_name().split('@', 1)[1].split('#')[0])}, pid {sender.pid}, which is not running" \
            in gone.replace("\\", "")
        assert "in flight" not in line_of(gone, "  email (en)")

        # Once its lease ran out: what was on the wire is ambiguous, the rest waits for the next run.
        time.sleep(max(0.0, killed_at + lease + 0.5 - time.monotonic()))
        later = cli(project, db_url, "deliveries", "report", "--release", "news").output
        assert "sender gone" not in later
        ambiguous = len(ledger.ambiguous(release="news"))
        assert ambiguous == int(held[3] or 0)
        assert re.search(r"^  email \(en\) +\d+ sent, \d+ pending" + (rf", {ambiguous} ambiguous$" if ambiguous else "$"), later, re.M)

        assert cli(project, db_url, "deliveries", "retry", "--ambiguous").exit_code == 0
        assert subprocess.run(command, env=environment, cwd=REPO, timeout=300, check=False).returncode == 0
        counts = received.by_recipient()

    final = cli(project, db_url, "deliveries", "report", "--release", "news").output
    assert re.search(rf"^  email \(en\) +{readers} sent$", final, re.M), final
    assert len(counts) == readers and sum(counts.values()) - readers <= ambiguous  # a second copy only for a resent row
    assert final.count("resent on the operator's word; it was ambiguous") == ambiguous


def test_a_post_looked_up_after_a_crash_stays_in_the_history(project, db_url) -> None:
    ledger, channel, now = Ledger(url=db_url), "social:bluesky:default", datetime.now(UTC)
    ledger.plan(release="news", channel=channel, recipients=["press.example.org"], now=now)
    crashed = now - timedelta(minutes=5)
    worker, [post] = ledger.claim(release="news", channel=channel, limit=1, now=crashed, lease=timedelta(seconds=60))
    ledger.advance(worker=worker, outcomes=[], begin=[post.id], now=crashed, lease=timedelta(seconds=60))
    assert ledger.requeue_dead(channel=channel, now=now) == 1  # what a social channel does before it posts again
    worker, [post] = ledger.claim(release="news", channel=channel, limit=1, now=now)
    ledger.advance(worker=worker, outcomes=[], begin=[post.id], now=now)
    ledger.advance(worker=worker, outcomes=[Outcome(id=post.id, state="sent", response="at://press.example.org/post/1")],
                   begin=[], now=now)
    out = cli(project, db_url, "deliveries", "report", "--release", "news").output
    assert re.search(r"^  social:bluesky:default +1 sent$", out, re.M)
    assert re.search(r"news  social:bluesky:default  press\.example\.org  the network was asked whether it had the post "
                     r"before posting again; it was ambiguous$", out, re.M)
