"""The one send loop. Every email and post Pressroom sends goes through :func:`dispatch`.

    claim a batch ─▶ render a window ─▶ advance (outcomes of the last window + this window `sending`, one commit)
          ▲                                   │
          └────── record ◀── push the window ◀┘

The next batch is claimed while the last windows of one go out, so the connections never wait
for a claim. A :class:`Channel` says how one delivery renders and how a window of them is pushed; the loop
and the ledger decide everything else. Each of ``channel.connections`` pushers holds at most
``channel.window`` rows in ``sending``, and the commit that begins a window also records the
outcomes of the one before, so a crash leaves at most ``connections × window`` rows per worker
whose fate is unknown. Commits of concurrent pushers are grouped (one transaction for all that
are waiting), so small windows do not cost one transaction each. A heartbeat renews the
worker's leases, so an operator's retry can tell a live send from a dead one.

Two clocks, never mixed: the run's ``now`` decided what to plan before this loop started; the
loop itself reads the wall clock (:func:`wall_clock`) at every write, so a lease, a heartbeat or
a retry time means the same to this worker, to another one and to the operator's retry,
however late in its run (or however far in the past its ``--now``) the send began.

An answer about the far end rather than the recipient (``held``: the server is down or refuses
the session; ``throttled``: a rate limit) spends none of the recipient's attempts: the row
waits, the wait doubling with the time already waited up to :data:`LONGEST_WAIT`, and expires
after the channel's ``give_up_after``. A window that finds the server down defers the rest of
the batch without trying it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from pressroom.errors import ConfigError, PermanentError, PressroomError, TransientError
from pressroom.ledger import Delivery, Ledger, Outcome, sender_name

__all__ = ["Channel", "DispatchResult", "LONGEST_WAIT", "Pushed", "Pusher", "backoff", "dispatch", "wall_clock"]

log = logging.getLogger("pressroom.dispatch")

Status = Literal["sent", "retry", "mailbox", "failed", "rejected", "ambiguous", "held", "throttled"]

#: The longest a row waits between two tries of a server that is unavailable: it comes back by
#: itself within this much of the server's return.
LONGEST_WAIT = timedelta(minutes=15)


@dataclass(frozen=True)
class Pushed:
    """What the far end said about one delivery of a window.

    ``retry`` and ``mailbox`` are tried again later (``retry_at``, or the channel's backoff);
    ``held`` (the far end is unavailable) and ``throttled`` (it asks to slow down) too, without
    spending an attempt; ``rejected`` means the address itself was refused (failed, and the
    address suppressed); ``ambiguous`` means it went out and no answer came back: never retried
    automatically.
    """

    id: int
    status: Status
    response: str
    retry_at: datetime | None = None


class Pusher(Protocol):
    """One connection to the far end (an SMTP session, a network's HTTP client)."""

    async def push(self, items: Sequence[tuple[Delivery, Any]]) -> list[Pushed]:
        """Push rendered deliveries; one :class:`Pushed` per item. May raise ConfigError (nothing sent)."""
        ...

    async def close(self) -> None: ...


class Channel(Protocol):
    """Whom a channel reaches is planned in the ledger; this says how one delivery renders and goes out."""

    name: str  # the ledger channel: "email", "transactional", "staff", "social:mastodon:default"
    connections: int  # pushers working at once
    window: int  # deliveries one pusher has in flight
    max_attempts: int
    give_up_after: timedelta  # how long a row waits for a far end that is unavailable before it expires
    resolves_ambiguous: bool  # the far end can be asked whether a delivery arrived (social networks)

    def render(self, delivery: Delivery) -> Any:
        """The bytes or post of one delivery; PermanentError fails it, TransientError defers it."""
        ...

    async def connect(self) -> Pusher: ...

    async def pace(self, count: int) -> None:
        """Wait until ``count`` more deliveries may go out (a rate limit), before they are marked."""
        ...

    def rejected(self, *, address: str, response: str) -> None:
        """The far end refused the address itself."""
        ...

    def backoff(self, attempts: int) -> timedelta: ...


@dataclass
class DispatchResult:
    """What one :func:`dispatch` call (one worker) did itself."""

    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    bounced: int = 0
    suppressed: int = 0
    ambiguous: int = 0

    def __add__(self, other: DispatchResult) -> DispatchResult:
        return DispatchResult(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def count(self, outcomes: Sequence[Outcome]) -> None:
        for outcome in outcomes:
            setattr(self, outcome.state, getattr(self, outcome.state) + 1)


def backoff(*, base_seconds: float, attempts: int) -> timedelta:
    """The one retry policy: ``base_seconds`` doubling per attempt, at most an hour, with ±20% jitter."""
    seconds = base_seconds * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, 3600.0) * random.uniform(0.8, 1.2))


Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    """The clock of leases, heartbeats and retry times: read at each write, never the run's ``now``."""
    return datetime.now(UTC)


def _waiting(channel: Channel, delivery: Delivery, now: datetime, response: str, retry_at: datetime | None = None) -> Outcome:
    """The retry of a row whose far end was unavailable: as long again as it has waited (at least the
    channel's first backoff, at most :data:`LONGEST_WAIT`), so a long outage is probed ever less often."""
    if retry_at is None:
        waited = now - (delivery.waiting_since or now)
        retry_at = now + min(max(channel.backoff(1), waited), LONGEST_WAIT)
    return Outcome(id=delivery.id, state="deferred", response=response, retry_at=retry_at, spent=False)


def dispatch(
    *,
    channel: Channel,
    ledger: Ledger,
    release: str | None,
    batch_size: int,
    lease: timedelta,
    retry_window: float = 0.0,
    run_id: str | None = None,
    clock: Clock | None = None,
) -> DispatchResult:
    """Send every due delivery of (``release``, ``channel``) as one worker; returns what this worker did.

    ``release=None`` serves every release of the channel (subscription emails). Deferred rows
    that come due within ``retry_window`` seconds are waited for; later ones stay for the next
    run. Rows other workers hold are left to them. Raises ConfigError (a refused SMTP login)
    after recording every row it touched; its unused claims are given back.

    ``clock`` is :func:`wall_clock` (read when the call starts, so a test may move it for the
    whole path, as it may pass another to play an outage of minutes without waiting for it).
    Nothing here reads the run's ``now``: what is planned is due.
    """
    clock = clock or wall_clock
    worker = sender_name()  # its host and pid: a report says who holds a row, and whether it still runs
    if channel.resolves_ambiguous:
        ledger.requeue_dead(channel=channel.name, release=release, now=clock())
    try:
        return _run(_dispatch(channel=channel, ledger=ledger, release=release, batch_size=batch_size, lease=lease,
                              deadline=time.monotonic() + retry_window, run_id=run_id, worker=worker, clock=clock))
    finally:
        ledger.release_claims(worker=worker, now=clock())


async def _dispatch(*, channel: Channel, ledger: Ledger, release: str | None, batch_size: int, lease: timedelta,
                    deadline: float, run_id: str | None, worker: str, clock: Clock) -> DispatchResult:
    """:func:`dispatch`'s loop, on one event loop: the connections serve batch after batch."""
    total = DispatchResult()
    idle = _Idle(channel)
    try:
        while True:
            def claim() -> list[Delivery]:
                return ledger.claim(release=release, channel=channel.name, limit=batch_size, now=clock(), worker=worker,
                                    run_id=run_id, lease=lease)[1]

            rows = claim()
            if rows:
                total = total + await _send(channel=channel, ledger=ledger, worker=worker, rows=rows, lease=lease,
                                            clock=clock, idle=idle, claim=claim)
                continue
            remaining, due = ledger.outstanding(release=release, channel=channel.name, now=clock())
            if not remaining:
                return total
            wait = 0.05 if due is None else (due - clock()).total_seconds()  # None: due, but another worker's claim was in progress
            if time.monotonic() + wait > deadline:
                return total  # what is left is retried after this run's patience (or held by a live worker)
            await asyncio.sleep(min(max(wait, 0.01), 5.0))
    finally:
        await idle.close()


class _Idle:
    """The pushers between two batches: a batch takes its connections here and gives them back, so
    a send of many batches opens each once (a session's greeting costs as much as a few messages)."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.pushers: list[Pusher] = []

    async def take(self) -> Pusher:
        return self.pushers.pop() if self.pushers else await self.channel.connect()

    def give(self, pusher: Pusher) -> None:
        self.pushers.append(pusher)

    async def close(self) -> None:
        while self.pushers:
            await self.pushers.pop().close()


def _run(coroutine: Any) -> Any:
    """Run a coroutine from sync code, also when the calling thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


_GATHER_SECONDS = 0.002


class _Marks:
    """Group commit: every pusher waiting to advance is served by one ledger transaction.

    The worker's transactions (advances and lease renewals) run one at a time: two of them
    updating the same rows in different orders would deadlock on PostgreSQL.
    """

    def __init__(self, ledger: Ledger, *, worker: str, lease: timedelta, channel: Channel, clock: Clock) -> None:
        self.ledger, self.worker, self.lease, self.clock = ledger, worker, lease, clock
        self.max_attempts, self.give_up_after = channel.max_attempts, channel.give_up_after
        self.waiting: list[tuple[Sequence[Outcome], Sequence[int], asyncio.Future]] = []
        self.flushing = False
        self.one_at_a_time = asyncio.Lock()
        self.pushers = 0  # pushers at work: a commit waits briefly for all of them to have their window ready
        self.gathered = asyncio.Event()

    async def _call(self, method: Callable[..., Any], **arguments: Any) -> Any:
        # Off the loop, on SQLite too: another sender process holding the write lock makes a commit
        # wait, and the loop keeps reading answers and rendering meanwhile (about a sixth more
        # messages a second with two senders than a commit made in place, for 0.1 ms a hop).
        return await asyncio.to_thread(method, **arguments)

    async def claim(self, claim: Callable[[], list[Delivery]]) -> list[Delivery]:
        async with self.one_at_a_time:
            return await asyncio.to_thread(claim)

    async def renew(self) -> None:
        async with self.one_at_a_time:
            await self._call(self.ledger.renew, worker=self.worker, now=self.clock(), lease=self.lease)

    async def advance(self, outcomes: Sequence[Outcome], begin: Sequence[int]) -> set[int]:
        if not outcomes and not begin:
            return set()
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.waiting.append((outcomes, begin, future))
        if len(self.waiting) >= self.pushers:
            self.gathered.set()
        if not self.flushing:
            self.flushing = True
            try:
                while self.waiting:
                    if len(self.waiting) < self.pushers:
                        # The others are mid-push and arrive within their round trip: one commit for
                        # all of them, not one for this window and another for theirs.
                        self.gathered.clear()
                        try:
                            await asyncio.wait_for(self.gathered.wait(), _GATHER_SECONDS)
                        except TimeoutError:
                            pass
                    batch, self.waiting = self.waiting, []
                    try:
                        async with self.one_at_a_time:
                            ok = set(await self._call(
                                self.ledger.advance, worker=self.worker, now=self.clock(), lease=self.lease,
                                max_attempts=self.max_attempts, give_up_after=self.give_up_after,
                                outcomes=[o for outs, _, _ in batch for o in outs],
                                begin=[i for _, ids, _ in batch for i in ids],
                            ))
                    except BaseException as exc:  # handed to every waiting pusher
                        for _, _, waiter in batch:
                            waiter.set_exception(exc)
                        continue
                    for _, ids, waiter in batch:
                        waiter.set_result(ok.intersection(ids))
            finally:
                self.flushing = False
        return await future


def _outcome(pushed: Pushed, delivery: Delivery, channel: Channel, now: datetime) -> Outcome:
    if pushed.status == "sent":
        return Outcome(id=pushed.id, state="sent", response=pushed.response)
    if pushed.status in ("retry", "mailbox"):
        retry_at = pushed.retry_at or now + channel.backoff(delivery.attempts + 1)
        return Outcome(id=pushed.id, state="deferred", response=pushed.response, retry_at=retry_at)
    if pushed.status in ("held", "throttled"):
        return _waiting(channel, delivery, now, pushed.response, pushed.retry_at)
    if pushed.status == "ambiguous":
        return Outcome(id=pushed.id, state="ambiguous", response=pushed.response)
    return Outcome(id=pushed.id, state="failed", response=pushed.response)


def _render(channel: Channel, delivery: Delivery, now: datetime) -> tuple[Any, Outcome | None]:
    try:
        return channel.render(delivery), None
    except TransientError as exc:
        retry_at = getattr(exc, "retry_at", None) or now + channel.backoff(delivery.attempts + 1)
        return None, Outcome(id=delivery.id, state="deferred", response=f"not rendered: {exc}", retry_at=retry_at)
    except PermanentError as exc:
        return None, Outcome(id=delivery.id, state="failed", response=f"not sent: {exc}")
    except PressroomError as exc:
        # A broken template or setting: the operator fixes it, and the delivery goes out after that.
        return None, Outcome(id=delivery.id, state="deferred", response=f"not rendered: {exc}",
                             retry_at=now + channel.backoff(delivery.attempts + 1))
    except Exception as exc:  # one recipient's bad data never stops the others
        log.exception("rendering %s for %s failed", delivery.release, delivery.recipient)
        return None, Outcome(id=delivery.id, state="failed", response=f"not sent: {type(exc).__name__}: {exc}")


async def _heartbeat(marks: _Marks) -> None:
    while True:
        await asyncio.sleep(max(marks.lease.total_seconds() / 3, 0.05))
        try:
            await marks.renew()
        except TransientError as exc:
            log.warning("could not renew the leases of worker %s: %s", marks.worker, exc)


async def _send(*, channel: Channel, ledger: Ledger, worker: str, rows: list[Delivery], lease: timedelta,
                clock: Clock, idle: _Idle, claim: Callable[[], list[Delivery]]) -> DispatchResult:
    """Send ``rows`` and, while they go out, the batches ``claim`` takes after them, until one comes back
    empty: the connections never wait for a claim (a claim is as slow as a few windows' commits)."""
    queue = deque(rows)
    marks = _Marks(ledger, worker=worker, lease=lease, channel=channel, clock=clock)
    result = DispatchResult(claimed=len(rows))
    errors: list[BaseException] = []
    # The next batch is claimed when this many rows are left: a few rounds of windows go out meanwhile.
    low = channel.connections * channel.window * 8
    feed: dict[str, Any] = {"more": True, "claiming": None}

    async def fetch() -> None:
        try:
            more = await marks.claim(claim)
            queue.extend(more)
            result.claimed += len(more)
            feed["more"] = feed["more"] and bool(more)
        finally:
            feed["claiming"] = None

    async def topped_up() -> None:
        if feed["more"] and feed["claiming"] is None and len(queue) <= low and not errors:
            feed["claiming"] = asyncio.create_task(fetch())
        if not queue and feed["claiming"] is not None:
            await feed["claiming"]

    async def unreachable(response: str) -> None:
        # The far end is unavailable: what is left waits for it, never marked sending, no attempt spent;
        # the next batch is claimed by dispatch's loop, and its first window probes the server again.
        feed["more"] = False
        while queue and not errors:
            chunk = [queue.popleft() for _ in range(min(100, len(queue)))]
            now = clock()
            outcomes = [_waiting(channel, d, now, response) for d in chunk]
            await marks.advance(outcomes, [])
            result.count(outcomes)

    async def pusher() -> None:
        try:
            connection = await idle.take()
        except TransientError as exc:
            await unreachable(f"not sent: {exc}")
            return
        marks.pushers += 1
        pending: list[Outcome] = []
        reusable = False
        try:
            while not errors:
                await topped_up()
                if not queue:
                    break
                window = [queue.popleft() for _ in range(min(channel.window, len(queue)))]
                rendered: list[tuple[Delivery, Any]] = []
                for delivery in window:
                    item, failure = _render(channel, delivery, clock())
                    if failure is None:
                        rendered.append((delivery, item))
                    else:
                        pending.append(failure)
                await channel.pace(len(rendered))
                ok = await marks.advance(pending, [delivery.id for delivery, _ in rendered])
                result.count(pending)
                pending = []
                result.suppressed += len(rendered) - len(ok)
                items = [(delivery, item) for delivery, item in rendered if delivery.id in ok]
                if not items:
                    continue
                try:
                    pushed = await connection.push(items)
                except ConfigError as exc:
                    # A setting that cannot work (a refused login) is the sender's, not the readers': the
                    # window waits for the operator's fix without spending their attempts.
                    errors.append(exc)
                    now = clock()
                    pending = [_waiting(channel, d, now, f"not sent: {exc.message}") for d, _ in items]
                    break
                by_id = {delivery.id: delivery for delivery, _ in items}
                answered = clock()
                pending = [_outcome(p, by_id[p.id], channel, answered) for p in pushed]
                result.bounced += sum(p.status == "rejected" for p in pushed)
                for p in pushed:
                    if p.status == "rejected":
                        await asyncio.to_thread(channel.rejected, address=by_id[p.id].recipient, response=p.response)
                if all(p.status == "held" for p in pushed):
                    # The server is down or refuses the session: the rest of the batch would only find it so.
                    result.count(pending)
                    await marks.advance(pending, [])
                    pending = []
                    await unreachable(pushed[0].response)
            reusable = not errors
        finally:
            marks.pushers -= 1
            try:
                if pending:
                    await marks.advance(pending, [])
                    result.count(pending)
            finally:
                if reusable:
                    idle.give(connection)
                else:
                    await connection.close()

    async def guarded() -> None:
        try:
            await pusher()
        except BaseException as exc:  # the first error stops every pusher, then is raised
            errors.append(exc)

    beat = asyncio.create_task(_heartbeat(marks))
    try:
        await asyncio.gather(*(guarded() for _ in range(max(1, min(channel.connections, len(rows))))))
    finally:
        beat.cancel()
        if feed["claiming"] is not None:  # stopped by an error: what it claims is given back with the rest
            await asyncio.gather(feed["claiming"], return_exceptions=True)
    if errors:
        raise errors[0]
    return result
