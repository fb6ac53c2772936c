"""The one way anything is sent: :func:`deliver` plans a (release, channel) once and drains it.

    decide (decide.py, pure) ─▶ an editor, where asked ─▶ deliver: check ─▶ plan ─▶ drain ─▶ report
                                (the flows' gate)                              │        │
                                                                        Send.plan   the engine's loop over Send.open()

A :class:`Send` is one (release, channel) of the ledger: whom it reaches (``plan``), the channel
adapter that renders and pushes one delivery (``open``, the engine's :class:`Channel`), and how
the loop paces it. Each channel module defines its own: ``email.py`` (a release, the digest,
subscription and staff emails), ``embargo.py`` (the media list), ``after.py`` (corrections and
withdrawal notices), ``social.py`` (posts, replies, deletions).

What the core must not know comes in as arguments: :class:`Workers` share one drain among
tasks or processes (the flows pass Prefect's task runners), and ``ask`` is the editor's gate
between a decision of ``approve`` and the call (the flows pause a run there).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Protocol

from pressroom.dispatch.decide import NOT_APPROVED, Decision
from pressroom.dispatch.engine import Channel, DispatchResult, dispatch, wall_clock
from pressroom.errors import PressroomError
from pressroom.ledger import DeliveryReport, Ledger
from pressroom.settings import Settings

if TYPE_CHECKING:
    from pressroom.releases import Release

__all__ = [
    "Ask",
    "Delivered",
    "Drain",
    "Due",
    "Pacing",
    "Send",
    "Workers",
    "deliver",
    "drive",
    "record_public",
    "share",
]


@dataclass(frozen=True)
class Pacing:
    """How the loop takes a send: rows per claim, the lease on them, how long one drain waits for retries."""

    batch_size: int
    lease: timedelta
    retry_window: float = 0.0

    @classmethod
    def email(cls, settings: Settings, *, wait: bool = True) -> Pacing:
        """The email settings; ``wait``: this run waits ``retry_window_seconds`` for deferred rows to come due."""
        return cls(batch_size=settings.email.batch_size, lease=timedelta(seconds=settings.email.claim_lease_seconds),
                   retry_window=settings.email.retry_window_seconds if wait else 0.0)


class Send:
    """One (release, channel) of the ledger. Subclasses are frozen dataclasses, picklable: a drain may
    run in another process."""

    #: The ledger's release: a slug, a digest key, ``slug@date``; ``None``: every row of the channel.
    key: str | None
    #: The ledger's channel: ``email``, ``embargo``, ``social:mastodon:default``, ...
    channel: str
    #: Its far end can be asked whether a delivery arrived (a social network): always drained, so the
    #: loop looks up what a crash left unknown.
    resolves_ambiguous = False
    #: Rows that need a look, listed in the report.
    problems = 100

    def check(self, settings: Settings) -> None:
        """Raise ConfigError before anything is planned (an unknown transport)."""

    def plan(self, ledger: Ledger, now: datetime) -> int | None:
        """Write whom it reaches, once: the rows planned now, or ``None`` when it was planned before."""
        raise NotImplementedError

    def open(self, settings: Settings, ledger: Ledger) -> Channel:
        """The channel adapter that renders and pushes one delivery."""
        raise NotImplementedError

    def pacing(self, settings: Settings) -> Pacing:
        return Pacing.email(settings)

    def workers(self, settings: Settings) -> int:
        """How many drains share it at once (when the caller brings :class:`Workers`)."""
        return 1

    @property
    def keep(self) -> str | None:
        """A name under which the adapter is kept for the next drain of this process (a composed
        email: MJML runs once however many workers share the send); ``None``: opened per drain."""
        return None


_KEPT = 8  # a long-lived worker process keeps the adapters of its last few sends
_adapters: OrderedDict[str, Channel] = OrderedDict()
_adapters_lock = threading.Lock()


def _adapter(send: Send, settings: Settings, ledger: Ledger) -> Channel:
    if send.keep is None:
        return send.open(settings, ledger)
    name = f"{send.keep}\n{settings.model_dump_json()}"
    with _adapters_lock:
        if name not in _adapters:
            _adapters[name] = send.open(settings, ledger)
            while len(_adapters) > _KEPT:
                _adapters.popitem(last=False)
        _adapters.move_to_end(name)
        return _adapters[name]


@dataclass(frozen=True)
class Drain:
    """One worker's share of a planned send: the engine's loop on it until nothing is due. Picklable."""

    send: Send
    settings: Settings
    run_id: str | None = None

    def __call__(self, ledger: Ledger | None = None) -> DispatchResult:
        ledger = ledger or Ledger.from_settings(self.settings)
        pacing = self.send.pacing(self.settings)
        return dispatch(channel=_adapter(self.send, self.settings, ledger), ledger=ledger, release=self.send.key,
                        run_id=self.run_id, batch_size=pacing.batch_size, lease=pacing.lease,
                        retry_window=pacing.retry_window)


Progress = Callable[[], tuple[int, int]]


class Workers(Protocol):
    """Shares one drain among workers (the flows: Prefect tasks in threads or processes)."""

    def run(self, drain: Drain, *, count: int, planned: int | None,
            progress: Progress) -> Sequence[DispatchResult | PressroomError]:
        """Run ``count`` copies of ``drain`` at once; what each did, or the PressroomError that stopped it.

        ``planned``: the rows this call planned (``None``: planned before), so a big first send can be
        shared further; ``progress()``: (sent, total) so far."""
        ...

    def finished(self, report: DeliveryReport) -> None:
        """The send's report once its drains are done (a run's table artifact)."""
        ...


@dataclass
class Delivered:
    """What one :func:`deliver` call found and did."""

    report: DeliveryReport  # the ledger's counts for (key, channel), all time; ``sent_now``: by this call
    done: DispatchResult  # what this call's drains did themselves


def _inline(drain: Drain, ledger: Ledger) -> DispatchResult | PressroomError:
    try:
        return drain(ledger)
    except PressroomError as exc:
        return exc


def _progress(ledger: Ledger, send: Send) -> tuple[int, int]:
    report = ledger.report(release=send.key, channel=send.channel, problems=0)
    return report.sent, report.total


def deliver(send: Send, *, settings: Settings, now: datetime, run_id: str | None = None,
            ledger: Ledger | None = None, workers: Workers | None = None) -> Delivered:
    """Plan ``send`` once and drain it: the one way anything is sent. Safe to call as often as wanted.

    Call it once the decision (and an editor, where asked) said send. A send planned before only
    finishes what is due; one with nothing due costs two queries and opens no channel. A send that
    cannot go on (a refused SMTP login) stops with its rows due for the next run and says why in
    ``report.error``; the caller goes on with the other sends. ``now`` is the run's clock: it plans
    (what is due, when it was planned); leases and retry times are on the wall clock.
    """
    send.check(settings)
    ledger = ledger or Ledger.from_settings(settings)
    planned = send.plan(ledger, now)
    if not (send.resolves_ambiguous or ledger.outstanding(release=send.key, channel=send.channel, now=wall_clock())[0]):
        report = ledger.report(release=send.key, channel=send.channel, problems=send.problems)
        report.sent_now = 0
        return Delivered(report=report, done=DispatchResult())
    drain = Drain(send=send, settings=settings, run_id=run_id)
    if workers is None:
        results: Sequence[DispatchResult | PressroomError] = [_inline(drain, ledger)]
    else:
        results = workers.run(drain, count=send.workers(settings), planned=planned, progress=partial(_progress, ledger, send))
    done = DispatchResult()
    errors = [str(result) for result in results if isinstance(result, PressroomError)]
    for result in results:
        if isinstance(result, DispatchResult):
            done = done + result
    report = ledger.report(release=send.key, channel=send.channel, problems=send.problems)
    report.sent_now, report.error = done.sent, errors[0] if errors else ""
    if workers is not None:
        workers.finished(report)
    return Delivered(report=report, done=done)


def share(send: Send, *, settings: Settings, now: datetime, run_id: str | None = None, wait_seconds: float = 120.0,
          workers: Workers | None = None, poll: float = 1.0) -> Delivered | None:
    """Take a share of a send another run plans: wait up to ``wait_seconds`` for its plan, then drain it.

    ``None`` when it was never planned: only the run that decided plans (and an editor may have said no).
    """
    ledger = Ledger.from_settings(settings)
    deadline = time.monotonic() + wait_seconds
    while not ledger.is_planned(release=send.key or "", channel=send.channel):
        if time.monotonic() > deadline:
            return None
        time.sleep(poll)
    return deliver(send, settings=settings, now=now, run_id=run_id, ledger=ledger, workers=workers)


# --------------------------------------------------------------------------- decided sends


@dataclass(frozen=True)
class Due:
    """One send at ``now`` with what the core decided about it (decide.py).

    ``release`` and ``audience`` are what an editor is shown when the decision is ``approve``;
    ``settled`` is the report of a send that has nothing left to do (it was sent before).
    """

    send: Send
    decision: Decision
    release: Release | None = None
    audience: int = 0
    settled: DeliveryReport | None = None

    def unsent(self, decision: Decision) -> DeliveryReport:
        """The report of a send that does not go out in this run, saying why."""
        return DeliveryReport(release=self.send.key, channel=self.send.channel, skipped=decision.reason)


#: The editor's gate: asked with a :class:`Due` whose decision is ``approve``, it answers send, skip or wait.
Ask = Callable[[Due], Decision]


def drive(dues: Iterable[Due], *, settings: Settings, now: datetime, run_id: str | None = None,
          ask: Ask | None = None, workers: Workers | None = None, ledger: Ledger | None = None) -> list[DeliveryReport]:
    """Each due send: ask the editor where the decision says so, then :func:`deliver` what may go.

    Without ``ask`` nothing that needs an editor goes out. A report per send, in order: delivered,
    skipped (why) or waiting for an editor (``skipped`` says so: :data:`~pressroom.dispatch.decide.WAIT`).
    """
    reports = []
    for due in dues:
        decision = due.decision
        if decision.action == "approve":
            decision = ask(due) if ask is not None else NOT_APPROVED
        if decision.action != "send":
            reports.append(due.unsent(decision))
        elif due.settled is not None:
            reports.append(due.settled)
        else:
            reports.append(deliver(due.send, settings=settings, now=now, run_id=run_id, ledger=ledger,
                                   workers=workers).report)
    return reports


def record_public(*, settings: Settings, releases: Iterable[Release], now: datetime) -> list[str]:
    """Record when each release was first seen public (what "first seen" means to every channel);
    returns the slugs public for the first time."""
    return Ledger.from_settings(settings).record_public(releases=releases, now=now)
