"""The ledger's exactly-once rules on SQLite and PostgreSQL: plan once, claim without overlap, ambiguity."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from pressroom.audience import Audience
from pressroom.ledger import Ledger, Outcome
from tests.conftest import NOW


@pytest.fixture
def ledger(db_url: str) -> Ledger:
    return Ledger(url=db_url)


def test_record_public_reports_each_release_once(project, ledger: Ledger) -> None:
    project.write_release("first", date="2024-07-30 09:00")
    project.write_release("later", date="2024-08-02 09:00")
    from pressroom.releases import load_releases

    releases = load_releases(project.settings()).releases
    assert ledger.record_public(releases=releases, now=NOW) == ["first"]
    assert ledger.record_public(releases=releases, now=NOW + timedelta(minutes=5)) == []
    assert ledger.record_public(releases=releases, now=NOW + timedelta(days=2)) == ["later"]
    seen = ledger.first_published()
    assert seen == {"first": NOW, "later": NOW + timedelta(days=2)}
    assert all(moment.tzinfo is not None for moment in seen.values())


def _subscribe(audience: Audience, address: str, **kw) -> int:
    return audience.add(address=address, now=NOW, source="test", **kw).id


def test_plan_selects_the_audience_once(audience: Audience, ledger: Ledger) -> None:
    _subscribe(audience, "all@example.org")
    _subscribe(audience, "recycling@example.org", topics=["recycling"])
    _subscribe(audience, "lithium@example.org", topics=["lithium"])
    _subscribe(audience, "weekly@example.org", cadence="weekly")
    _subscribe(audience, "pending@example.org", status="pending")
    _subscribe(audience, "bounced@example.org")
    audience.suppress(address="bounced@example.org", reason="hard-bounce", now=NOW)
    assert ledger.plan_audience(release="r1", channel="email", tags=["recycling", "cobalt"], cadence="per-release", now=NOW) == 2
    assert ledger.plan_audience(release="r1", channel="email", tags=["recycling"], cadence="per-release", now=NOW) is None
    _subscribe(audience, "late@example.org")
    assert ledger.plan_audience(release="r1", channel="email", tags=["recycling"], cadence="per-release", now=NOW) is None
    _, rows = ledger.claim(release="r1", channel="email", limit=100, now=NOW)
    assert sorted(r.recipient for r in rows) == ["all@example.org", "recycling@example.org"]
    assert ledger.plan_audience(release="untagged", channel="email", tags=[], cadence="per-release", now=NOW) == 2


def test_concurrent_planners_plan_once(audience: Audience, ledger: Ledger) -> None:
    audience.import_csv(file=_csv(300), now=NOW)
    results: list[int | None] = []
    barrier = threading.Barrier(6)

    def plan() -> None:
        barrier.wait()
        results.append(ledger.plan_audience(release="r", channel="email", tags=[], cadence="per-release", now=NOW))

    threads = [threading.Thread(target=plan) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=lambda r: r is None) == [300, None, None, None, None, None]
    assert ledger.report(release="r", channel="email").pending == 300


def _csv(n: int):
    import io

    return io.StringIO("address\n" + "".join(f"r{i}@example.org\n" for i in range(n)))


def test_concurrent_claims_never_overlap(audience: Audience, ledger: Ledger) -> None:
    audience.import_csv(file=_csv(1000), now=NOW)
    ledger.plan_audience(release="r", channel="email", tags=[], cadence="per-release", now=NOW)
    taken: list[list[str]] = [[] for _ in range(4)]

    def worker(index: int) -> None:
        while True:
            token, rows = ledger.claim(release="r", channel="email", limit=37, now=NOW)
            if not rows:
                return
            ok = ledger.advance(worker=token, outcomes=[], begin=[r.id for r in rows], now=NOW)
            taken[index].extend(r.recipient for r in rows if r.id in ok)
            ledger.advance(worker=token, outcomes=[Outcome(id=i, state="sent", response="250 ok") for i in ok], begin=[], now=NOW)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everyone = [r for part in taken for r in part]
    assert len(everyone) == len(set(everyone)) == 1000
    assert ledger.report(release="r", channel="email").sent == 1000


def test_unsubscribe_after_planning_is_not_sent(audience: Audience, ledger: Ledger) -> None:
    keep = _subscribe(audience, "keep@example.org")
    leave = _subscribe(audience, "leave@example.org")
    ledger.plan_audience(release="r", channel="email", tags=[], cadence="per-release", now=NOW)
    token, rows = ledger.claim(release="r", channel="email", limit=10, now=NOW)
    audience.unsubscribe(subscriber_id=leave, now=NOW, source="web")
    ok = ledger.advance(worker=token, outcomes=[], begin=[r.id for r in rows], now=NOW)
    assert [r.subscriber_id for r in rows if r.id in ok] == [keep]
    report = ledger.report(release="r", channel="email")
    assert (report.suppressed, report.ambiguous) == (1, 1)
    assert ("r", "leave@example.org", "suppressed", "not sent: unsubscribed or suppressed before sending") in report.problems


def test_deferred_rows_come_back_when_due_and_fail_after_max_attempts(audience: Audience, ledger: Ledger) -> None:
    _subscribe(audience, "slow@example.org")
    ledger.plan_audience(release="r", channel="email", tags=[], cadence="per-release", now=NOW)
    moment = NOW
    for attempt in range(1, 4):
        token, rows = ledger.claim(release="r", channel="email", limit=10, now=moment)
        assert len(rows) == 1 and rows[0].attempts == attempt - 1
        ledger.advance(worker=token, outcomes=[], begin=[rows[0].id], now=moment)
        ledger.advance(
            worker=token, begin=[],
            outcomes=[Outcome(id=rows[0].id, state="deferred", response="451 try later", retry_at=moment + timedelta(minutes=1))],
            now=moment, max_attempts=3,
        )
        assert ledger.claim(release="r", channel="email", limit=10, now=moment)[1] == []
        moment += timedelta(minutes=2)
    report = ledger.report(release="r", channel="email")
    assert report.failed == 1 and report.problems == [("r", "slow@example.org", "failed", "451 try later")]


def test_an_expired_claim_is_taken_over_and_the_old_worker_sends_nothing(audience: Audience, ledger: Ledger) -> None:
    _subscribe(audience, "a@example.org")
    ledger.plan_audience(release="r", channel="email", tags=[], cadence="per-release", now=NOW)
    old, rows = ledger.claim(release="r", channel="email", limit=10, now=NOW, lease=timedelta(seconds=30))
    assert ledger.claim(release="r", channel="email", limit=10, now=NOW + timedelta(seconds=10))[1] == []
    new, again = ledger.claim(release="r", channel="email", limit=10, now=NOW + timedelta(seconds=31))
    assert [r.id for r in again] == [r.id for r in rows]
    assert ledger.advance(worker=old, outcomes=[], begin=[r.id for r in rows], now=NOW) == []
    assert ledger.advance(worker=new, outcomes=[], begin=[r.id for r in rows], now=NOW) == [rows[0].id]


def test_rows_left_sending_are_ambiguous_until_the_operator_retries(audience: Audience, ledger: Ledger) -> None:
    for address in ("a@example.org", "b@example.org"):
        _subscribe(audience, address)
    ledger.plan_audience(release="r", channel="email", tags=[], cadence="per-release", now=NOW)
    token, rows = ledger.claim(release="r", channel="email", limit=10, now=NOW)
    ledger.advance(worker=token, outcomes=[], begin=[r.id for r in rows], now=NOW)
    ledger.advance(worker=token, outcomes=[Outcome(id=rows[0].id, state="sent", response="250 ok")], begin=[], now=NOW)
    # The process dies here. A later run must not resend b, however long it waits.
    assert ledger.claim(release="r", channel="email", limit=10, now=NOW + timedelta(days=1))[1] == []
    assert ledger.ambiguous() == [("r", "email", "b@example.org")]
    assert ledger.report(release="r").ambiguous == 1
    assert ledger.retry_ambiguous(now=NOW + timedelta(days=1), release="r") == (1, 0)
    _, again = ledger.claim(release="r", channel="email", limit=10, now=NOW)
    assert [r.recipient for r in again] == ["b@example.org"]


def test_digest_carries_each_release_once_whatever_the_cadence(audience: Audience, ledger: Ledger) -> None:
    weekly = _subscribe(audience, "weekly@example.org", cadence="weekly")
    _subscribe(audience, "lithium-weekly@example.org", cadence="weekly", topics=["lithium"])
    switcher = _subscribe(audience, "switcher@example.org")
    _subscribe(audience, "daily@example.org")
    # r1 went out per release to switcher, who then switched to weekly.
    ledger.plan_audience(release="r1", channel="email", tags=["lithium"], cadence="per-release", now=NOW)
    audience.set_preferences(subscriber_id=switcher, cadence="weekly", now=NOW, source="web")
    items = [("r1", ["lithium"]), ("r2", ["recycling"])]
    assert ledger.plan_digest(digest="digest-2024-w31", items=items, now=NOW) == 3
    assert ledger.plan_digest(digest="digest-2024-w31", items=items, now=NOW) is None
    contents = ledger.digest_contents(
        digest="digest-2024-w31", recipients=["weekly@example.org", "lithium-weekly@example.org", "switcher@example.org"]
    )
    assert contents == {
        "weekly@example.org": ("r1", "r2"),
        "lithium-weekly@example.org": ("r1",),
        "switcher@example.org": ("r2",),
    }
    # A later per-release plan of r2 (e.g. a rerun) cannot reach the weekly readers again.
    ledger.plan_audience(release="r2", channel="email", tags=["recycling"], cadence="weekly", now=NOW)
    assert ledger.report(release="r2", channel="email").in_digest == 2
    assert weekly


def test_social_channels_use_the_same_rules(ledger: Ledger) -> None:
    assert ledger.plan(release="r", channel="social:mastodon:default", recipients=["@press@social.example"], now=NOW) == 1
    assert ledger.plan(release="r", channel="social:mastodon:default", recipients=["@press@social.example"], now=NOW) is None
    token, rows = ledger.claim(release="r", channel="social:mastodon:default", limit=5, now=NOW)
    assert ledger.advance(worker=token, outcomes=[], begin=[rows[0].id], now=NOW) == [rows[0].id]
    ledger.advance(worker=token, outcomes=[Outcome(id=rows[0].id, state="sent", response="https://social.example/@press/1")],
                   begin=[], now=NOW)
    assert ledger.report(channel="social:").sent == 1
    assert ledger.channels(release="r") == ["social:mastodon:default"]


def test_retry_ambiguous_leaves_a_live_senders_rows_alone_and_a_late_outcome_is_a_conflict(audience: Audience, ledger: Ledger) -> None:
    for address in ("live@example.org", "lost@example.org", "dead@example.org"):
        _subscribe(audience, address)
    ledger.plan_audience(release="r", channel="email", tags=[], cadence="per-release", now=NOW)
    lease = timedelta(seconds=60)
    token, rows = ledger.claim(release="r", channel="email", limit=10, now=NOW, lease=lease)
    live, lost, dead = rows
    # "lost" went out and its answer never came; "dead" belongs to a sender whose lease ran out.
    ledger.advance(worker=token, outcomes=[], begin=[live.id, lost.id, dead.id], now=NOW, lease=lease)
    ledger.advance(worker=token, outcomes=[Outcome(id=lost.id, state="ambiguous", response="timeout after end of data")],
                   begin=[], now=NOW)
    ledger.renew(worker=token, now=NOW + timedelta(seconds=50), lease=lease)  # the heartbeat of a live sender...
    later = NOW + timedelta(seconds=70)  # ...whose lease on "live" and "dead" now ends at +110 s
    report = ledger.report(release="r", now=later)
    assert (report.ambiguous, report.in_flight) == (1, 2)
    assert ledger.retry_ambiguous(now=later, release="r") == (1, 2)  # only "lost"; the live sender's two stay
    # Past the lease, nobody renews: the sender is gone and its rows are ambiguous too.
    gone = NOW + timedelta(seconds=200)
    assert {r for _, _, r in ledger.ambiguous(release="r", now=gone)} == {"live@example.org", "dead@example.org"}
    assert ledger.retry_ambiguous(now=gone, release="r") == (2, 0)
    # The old sender wakes up and reports: never applied, kept as a conflict.
    ledger.advance(worker=token, outcomes=[Outcome(id=live.id, state="sent", response="250 late")], begin=[], now=gone)
    report = ledger.report(release="r", now=gone)
    assert report.sent == 0 and report.pending == 3 and report.conflicts == 1
    assert ledger.conflicts(release="r") == [("r", "live@example.org", "sent", "250 late")]


def test_reports_count_each_runs_own_sends(audience: Audience, ledger: Ledger) -> None:
    audience.import_csv(file=_csv(10), now=NOW)
    ledger.plan_audience(release="r", channel="email", tags=[], cadence="per-release", now=NOW)
    for run, limit in (("run-a", 3), ("run-b", 7)):
        token, rows = ledger.claim(release="r", channel="email", limit=limit, now=NOW, run_id=run)
        ok = ledger.advance(worker=token, outcomes=[], begin=[r.id for r in rows], now=NOW)
        ledger.advance(worker=token, outcomes=[Outcome(id=i, state="sent", response="250") for i in ok], begin=[], now=NOW)
    assert ledger.report(release="r", run_id="run-a").sent_now == 3
    assert ledger.report(release="r", run_id="run-b").sent_now == 7
    assert ledger.report(release="r").sent == 10


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_database_restart_between_runs_goes_unnoticed(db_url, monkeypatch):
    """The server ends every connection (a restart, a failover) while the pool holds them idle: the next run
    gets a new connection, not an error."""
    import time

    import psycopg
    from sqlalchemy import text

    from pressroom import db
    from tests._delivery import PG_ADMIN

    monkeypatch.setattr(db, "IDLE_BEFORE_PING", 0.05)
    engine = db.engine_for_url(db_url)
    with engine.connect() as conn:
        before = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    name = db_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                      (name,))
    time.sleep(0.1)  # idle past the threshold
    try:
        with engine.connect() as conn:
            after = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    finally:
        engine.dispose()  # no connection the server ended is left for the next test
    assert after != before
