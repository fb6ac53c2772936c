"""One way a (release, channel) is sent: deliver plans once and drains; drive asks an editor first; share helps."""

from __future__ import annotations

import ast
import io
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pressroom.audience import Audience
from pressroom.dispatch import SEND, WAIT, Channel, DispatchResult, Drain, ReleaseEmail, deliver, drive, email_due, share
from pressroom.dispatch.email import Staff
from pressroom.ledger import DeliveryReport, Ledger
from pressroom.settings import Settings
from pressroom.releases import load_releases
from tests.conftest import NOW, REPO

ALERT = b"From: press@example.org\r\nTo: ops@example.org\r\nSubject: alert\r\n\r\nThe relay is down.\r\n"


@dataclass(frozen=True)
class CountedStaff(Staff):
    """Staff emails that count how often their channel is opened."""

    opened: list[str | None] = field(default_factory=list, compare=False)

    def open(self, settings: Settings, ledger: Ledger) -> Channel:
        self.opened.append(self.key)
        return super().open(settings, ledger)


class Threads:
    """Workers as plain threads, recording what deliver asked of them."""

    def __init__(self) -> None:
        self.runs: list[tuple[int, int | None]] = []
        self.finished_reports: list = []

    def run(self, drain: Drain, *, count: int, planned: int | None,
            progress: Callable[[], tuple[int, int]]) -> list[DispatchResult]:
        self.runs.append((count, planned))
        with ThreadPoolExecutor(max_workers=count) as pool:
            return list(pool.map(lambda _: drain(), range(count)))

    def finished(self, report: DeliveryReport) -> None:
        self.finished_reports.append(report)


def _outbox(settings: Settings, key: str) -> list[str]:
    return sorted(path.name for path in (settings.path("var") / "outbox" / "email" / key).glob("*.eml"))


def _readers(settings: Settings, count: int) -> None:
    rows = "".join(f"reader{i}@example.org\n" for i in range(count))
    Audience.from_settings(settings).import_csv(file=io.StringIO("address\n" + rows), now=NOW)


def test_deliver_sends_each_once_and_a_send_with_nothing_due_opens_no_channel(project) -> None:
    settings = project.settings()
    send = CountedStaff(key="alert-1", messages=(("ops@example.org", ALERT), ("oncall@example.org", ALERT)))
    first = deliver(send, settings=settings, now=NOW)
    assert (first.report.sent, first.report.sent_now, first.done.sent) == (2, 2, 2)
    assert _outbox(settings, "alert-1") == ["oncall@example.org.eml", "ops@example.org.eml"]
    mtimes = [path.stat().st_mtime_ns for path in (settings.path("var") / "outbox" / "email" / "alert-1").glob("*.eml")]
    again = deliver(send, settings=settings, now=NOW)
    assert (again.report.sent, again.report.sent_now) == (2, 0)
    assert send.opened == ["alert-1"]  # the second call found nothing due and opened nothing
    assert [path.stat().st_mtime_ns for path in (settings.path("var") / "outbox" / "email" / "alert-1").glob("*.eml")] == mtimes


def test_workers_share_a_first_send_and_hear_how_big_it_was(project) -> None:
    settings = project.settings(PRESSROOM_EMAIL__BATCH_SIZE="4", PRESSROOM_EMAIL__WORKERS="3")
    project.write_release("shared", title="Shared news")
    _readers(settings, 30)
    [release] = load_releases(settings).releases
    workers = Threads()
    delivered = deliver(ReleaseEmail(release), settings=settings, now=NOW, workers=workers)
    assert workers.runs == [(3, 30)]  # email.workers drains; the plan was made by this call
    assert (delivered.report.sent, delivered.report.sent_now, delivered.report.ambiguous) == (30, 30, 0)
    assert len(_outbox(settings, "shared")) == 30
    assert [report.sent for report in workers.finished_reports] == [30]
    again = deliver(ReleaseEmail(release), settings=settings, now=NOW, workers=workers)
    assert workers.runs == [(3, 30)] and again.report.sent_now == 0  # nothing due: no worker started


def test_drive_asks_the_editor_once_and_plans_nothing_before_a_yes(project) -> None:
    settings = project.settings(PRESSROOM_EMAIL__APPROVAL_REQUIRED="true")
    project.write_release("gated", title="Gated news")
    _readers(settings, 3)
    releases = load_releases(settings).releases
    ledger = Ledger.from_settings(settings)
    ledger.record_public(releases=releases, now=NOW)

    [due] = email_due(settings=settings, releases=releases, now=NOW)
    assert (due.decision.action, due.audience) == ("approve", 3)
    [unasked] = drive([due], settings=settings, now=NOW)
    assert "not approved by an editor" in unasked.skipped
    [waiting] = drive([due], settings=settings, now=NOW, ask=lambda d: WAIT)
    assert waiting.skipped == WAIT.reason == "waiting for an editor: the email goes out when approved"
    assert not ledger.is_planned(release="gated", channel="email") and not _outbox(settings, "gated")

    asked: list[str] = []
    [sent] = drive(email_due(settings=settings, releases=releases, now=NOW), settings=settings, now=NOW,
                   ask=lambda d: asked.append(d.release.slug) or SEND)
    assert asked == ["gated"] and (sent.sent, sent.sent_now) == (3, 3)
    # Planned once approved: later runs only finish it, and nobody is asked again.
    [later] = email_due(settings=settings, releases=releases, now=NOW)
    assert later.decision == SEND and later.settled is not None and later.settled.sent == 3
    [settled] = drive([later], settings=settings, now=NOW, ask=lambda d: pytest.fail("asked again"))
    assert (settled.sent, settled.sent_now) == (3, 0) and len(_outbox(settings, "gated")) == 3


def test_a_helper_shares_only_a_send_another_run_planned(project) -> None:
    settings = project.settings()
    project.write_release("helped", title="Helped news")
    _readers(settings, 5)
    [release] = load_releases(settings).releases
    send = ReleaseEmail(release)
    assert share(send, settings=settings, now=NOW, wait_seconds=0.3, poll=0.05) is None
    assert not _outbox(settings, "helped")  # a helper never plans: only the run that decided does

    ledger = Ledger.from_settings(settings)
    planner = threading.Timer(0.3, lambda: send.plan(ledger, NOW))
    planner.start()
    shared = share(send, settings=settings, now=NOW, wait_seconds=30, poll=0.05)
    planner.join()
    assert shared is not None and (shared.report.sent, shared.done.sent) == (5, 5)
    assert len(_outbox(settings, "helped")) == 5


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_flows_send_only_through_core_calls_and_social_does_not_reach_back_into_dispatch() -> None:
    for path in sorted((REPO / "flows").glob("*.py")):
        reached = {name for name in _imports(path) if name.startswith(("pressroom.ledger", "pressroom.audience"))}
        assert not reached, f"{path.name} imports {sorted(reached)}: the flows call pressroom.dispatch instead"
    for path in sorted((REPO / "pressroom" / "social").glob("*.py")):
        assert not {name for name in _imports(path) if name.startswith("pressroom.dispatch")}, path.name
    for path in sorted((REPO / "pressroom" / "dispatch").glob("*.py")):
        assert "httpx" not in _imports(path), f"{path.name}: httpx stays in pressroom/social/"
