"""The subscription-request flow (double opt-in): request, confirm, and the expiry of requests nobody confirmed.

Every subscribe-form request is kept apart with its own choices (name, topics, cadence,
language); its confirmation link names that request, so confirming applies exactly those choices
and nothing of another's. A request is closed when its link is used or the subscriber's status
changes, so an old link never confirms (or re-subscribes) again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from pressroom.audience.addresses import mailbox
from pressroom.audience.consent import append_events, remove_events
from pressroom.audience.subscribers import (
    CHUNK,
    Audience,
    Subscriber,
    close_requests,
    lift_unsubscribe,
    set_topics,
    with_evidence,
)
from pressroom.db import (
    consent_events,
    queue_deliveries,
    subscriber_topics,
    subscribers,
    subscription_requests,
    suppressions,
)
from pressroom.errors import AddressError, TokenError
from pressroom.i18n import N_

__all__ = [
    "Requested", "SubscribeRequest", "check_request", "confirm_request", "expire_pending", "request_subscription",
    "request_subscriptions",
]


@dataclass(frozen=True)
class Requested:
    """A subscription request that should get a confirmation email now."""

    subscriber_id: int
    request_id: int


Confirmation = Callable[[Requested], tuple[str, str, str]]


@dataclass(frozen=True)
class SubscribeRequest:
    """One subscribe-form request: the address and the choices it came with.

    ``confirmation`` gives the (key, channel, payload) of its confirmation email's delivery,
    queued in the same transaction: the request and its email are recorded together or not at all.
    """

    address: str
    evidence: str
    name: str = ""
    language: str | None = None
    topics: tuple[str, ...] = ()
    cadence: str = "per-release"
    may_confirm: bool = True
    confirmation: Confirmation | None = None


@dataclass(frozen=True)
class _Limits:
    since: datetime
    limit: int
    site_since: datetime
    site_limit: int | None


def request_subscription(
    *, audience: Audience, address: str, now: datetime, source: str, evidence: str, name: str = "", language: str | None = None,
    topics: Iterable[str] = (), cadence: str = "per-release", confirmations_since: datetime, max_confirmations: int,
    site_since: datetime | None = None, site_max_confirmations: int | None = None, may_confirm: bool = True,
    confirmation: Confirmation | None = None,
) -> Requested | None:
    """Record a subscribe-form request (double opt-in) in one transaction.

    A new address becomes ``pending``. Until a link is used the subscriber's own choices are
    untouched. A confirmed address keeps its choices (the request is recorded, closed, with a
    ``requested`` event). Returns the request to email a confirmation link for, or ``None``:
    confirmed already, suppressed for another reason than its own unsubscribe (a bounce, a
    complaint, also after erasure), ``may_confirm`` false, ``max_confirmations`` sent to this
    mailbox (case and ``+tag`` aside) since ``confirmations_since``, or ``site_max_confirmations``
    sent by the whole site since ``site_since``. Raises :class:`AddressError` for a bad address or choice.
    """
    request = SubscribeRequest(address=address, evidence=evidence, name=name, language=language, topics=tuple(topics),
                               cadence=cadence, may_confirm=may_confirm, confirmation=confirmation)
    (result,) = request_subscriptions(
        audience=audience, requests=[request], now=now, source=source, confirmations_since=confirmations_since,
        max_confirmations=max_confirmations, site_since=site_since, site_max_confirmations=site_max_confirmations,
    )
    if isinstance(result, AddressError):
        raise result
    return result


def request_subscriptions(
    *, audience: Audience, requests: Sequence[SubscribeRequest], now: datetime, source: str, confirmations_since: datetime,
    max_confirmations: int, site_since: datetime | None = None, site_max_confirmations: int | None = None,
) -> list[Requested | AddressError | None]:
    """:func:`request_subscription` for several requests in one transaction (the web app's group commit).

    One answer per request, in order; a bad address is its own :class:`AddressError` and stops
    none of the others. The requests apply one after another, so each sees the ones before it.
    """
    checked: list[tuple[SubscribeRequest, dict | AddressError]] = []
    for request in requests:
        try:
            checked.append((request, audience.validated(
                address=request.address, name=request.name, language=request.language, topics=request.topics,
                cadence=request.cadence, status="pending",
            )))
        except AddressError as exc:
            checked.append((request, exc))
    valid = [(request, values) for request, values in checked if isinstance(values, dict)]
    limits = _Limits(confirmations_since, max_confirmations, site_since or now, site_max_confirmations)
    for attempt in (1, 2):
        try:
            with audience.engine.begin() as conn:
                answers = iter(_Batch(conn, audience, now, source[:200]).apply(valid, limits) if valid else [])
            return [values if isinstance(values, AddressError) else next(answers) for _, values in checked]
        except IntegrityError:
            if attempt == 2:  # another process inserted the same address: the retry sees it
                raise
    return []


# Built once: a subscribe POST is the web app's busiest write, and building statements was most of its cost.
_FIND_ADDRESSES = select(subscribers.c.address, subscribers.c.id, subscribers.c.status).where(
    subscribers.c.address.in_(bindparam("p_addresses", expanding=True))
)
# Rows come back by address, in any order: SQLite would write them one statement each to keep the order.
_NEW_SUBSCRIBERS = insert(subscribers).returning(subscribers.c.id, subscribers.c.address)
_TOUCH_UNCONFIRMED = (
    update(subscribers)
    .where(subscribers.c.id == bindparam("p_id"), subscribers.c.status != "confirmed")
    .values(updated_at=bindparam("p_now"))
)
_SUPPRESSED = select(suppressions.c.address, suppressions.c.reason).where(
    suppressions.c.address.in_(bindparam("p_addresses", expanding=True))
)
_EMAILED = select(func.count()).select_from(subscription_requests).where(subscription_requests.c.emailed.is_(True))
_SENT_TO_MAILBOXES = (
    select(subscription_requests.c.mailbox, func.count())
    .where(
        subscription_requests.c.emailed.is_(True),
        subscription_requests.c.mailbox.in_(bindparam("p_mailboxes", expanding=True)),
        subscription_requests.c.created_at >= bindparam("p_since"),
    )
    .group_by(subscription_requests.c.mailbox)
)
_SENT_BY_SITE = _EMAILED.where(subscription_requests.c.created_at >= bindparam("p_site_since"))
_NEW_REQUESTS = insert(subscription_requests).returning(subscription_requests.c.id, sort_by_parameter_order=True)
# SQLite keeps RETURNING's order only one row per statement. The batch holds the write lock (BEGIN
# IMMEDIATE), so its new ids ascend in the order of its rows: sorted, they are in the rows' order.
_NEW_REQUESTS_SQLITE = insert(subscription_requests).returning(subscription_requests.c.id)


@dataclass(frozen=True)
class _Decision:
    request: SubscribeRequest
    values: dict
    subscriber_id: int
    confirmed: bool
    emailed: bool


class _Batch:
    """Apply requests in order, each seeing the ones before it, with a fixed number of statements for the batch.

    Every kind of address takes the same statements (bar the insert of a new one, where a known
    address gets an update), so the time of the answer does not tell a confirmed address from an
    unknown one.
    """

    def __init__(self, conn: Connection, audience: Audience, now: datetime, source: str) -> None:
        self.conn, self.audience, self.now, self.source = conn, audience, now, source

    def apply(self, items: Sequence[tuple[SubscribeRequest, dict]], limits: _Limits) -> list[Requested | None]:
        addresses = list(dict.fromkeys(values["address"] for _, values in items))
        known = self._subscribers(addresses, items)
        reasons = self._suppressions(addresses)
        boxes = {a: mailbox(a) for a in addresses}
        decisions = self._decide(items, known, reasons, boxes, limits)
        request_ids = self._insert_requests([
            {"subscriber_id": d.subscriber_id, "mailbox": boxes[d.values["address"]], "name": d.values["name"],
             "language": d.values["language"], "cadence": d.values["cadence"], "topics": ";".join(d.values["topics"]),
             "evidence": d.request.evidence, "emailed": d.emailed, "created_at": self.now, "closed_at": self.now if d.confirmed else None}
            for d in decisions
        ])
        return self._record(decisions, request_ids)

    def _insert_requests(self, rows: list[dict]) -> list[int]:
        """The new requests' ids, in the order of ``rows``."""
        if self.conn.dialect.name == "sqlite":
            return sorted(self.conn.execute(_NEW_REQUESTS_SQLITE, rows).scalars().all())
        return list(self.conn.execute(_NEW_REQUESTS, rows).scalars().all())

    def _subscribers(self, addresses: list[str], items: Sequence[tuple[SubscribeRequest, dict]]) -> dict[str, tuple[int, str]]:
        """(id, status) by address; new addresses inserted as pending, known unconfirmed ones touched."""
        known = {row.address: (row.id, row.status) for row in self.conn.execute(_FIND_ADDRESSES, {"p_addresses": addresses})}
        fresh = {values["address"]: values for _, values in items if values["address"] not in known}
        if fresh:
            # No re-suppression look-up: the one in _suppressions finds a hashed suppression and
            # sends no link, so such a pending row can never be confirmed.
            created = self.conn.execute(_NEW_SUBSCRIBERS, [
                {"address": a, "name": v["name"], "language": v["language"], "status": "pending", "cadence": v["cadence"],
                 "created_at": self.now, "updated_at": self.now}
                for a, v in fresh.items()
            ]).all()
            known.update({row.address: (row.id, "pending") for row in created})
            topics = [{"subscriber_id": known[a][0], "topic": t} for a, v in fresh.items() for t in v["topics"]]
            if topics:
                self.conn.execute(insert(subscriber_topics), topics)
        touched = [{"p_id": known[a][0], "p_now": self.now} for a in addresses if a not in fresh]
        if touched:
            self.conn.execute(_TOUCH_UNCONFIRMED, touched)
        return known

    def _suppressions(self, addresses: list[str]) -> dict[str, set[str]]:
        """The reasons each address is suppressed for, as itself or as an erasure's hash."""
        hashes = {a: self.audience.hashes(a) for a in addresses}
        found: dict[str, set[str]] = {}
        for row in self.conn.execute(_SUPPRESSED, {"p_addresses": [h for a in addresses for h in (a, *hashes[a])]}):
            found.setdefault(row.address, set()).add(row.reason)
        return {a: set().union(*(found.get(h, set()) for h in (a, *hashes[a]))) for a in addresses}

    def _decide(self, items: Sequence[tuple[SubscribeRequest, dict]], known: dict[str, tuple[int, str]],
                reasons: dict[str, set[str]], boxes: dict[str, str], limits: _Limits) -> list[_Decision]:
        sent = dict(self.conn.execute(_SENT_TO_MAILBOXES, {"p_mailboxes": sorted(set(boxes.values())), "p_since": limits.since}).all())
        site_sent = self.conn.execute(_SENT_BY_SITE, {"p_site_since": limits.site_since}).scalar_one()
        decisions = []
        for request, values in items:
            subscriber_id, status = known[values["address"]]
            box = boxes[values["address"]]
            confirmed = status == "confirmed"
            emailed = (
                not confirmed and request.may_confirm and reasons[values["address"]] <= {"unsubscribed"}
                and sent.get(box, 0) < limits.limit and (limits.site_limit is None or site_sent < limits.site_limit)
            )
            if emailed:
                sent[box] = sent.get(box, 0) + 1
                site_sent += 1
            decisions.append(_Decision(request, values, subscriber_id, confirmed, emailed))
        return decisions

    def _record(self, decisions: list[_Decision], request_ids: Sequence[int]) -> list[Requested | None]:
        events, answers, queued = [], [], []
        for decision, request_id in zip(decisions, request_ids, strict=True):
            event = {"subscriber_id": decision.subscriber_id, "address": decision.values["address"], "at": self.now, "source": self.source}
            events.append({**event, "kind": "requested", "detail": decision.request.evidence})
            if not decision.emailed:
                answers.append(None)
                continue
            events.append({**event, "kind": "confirmation-sent", "detail": json.dumps({"request": request_id})})
            requested = Requested(subscriber_id=decision.subscriber_id, request_id=request_id)
            answers.append(requested)
            if decision.request.confirmation is not None:
                key, channel, payload = decision.request.confirmation(requested)
                queued.append({"release": key, "channel": channel, "recipient": decision.values["address"], "subscriber_id": None,
                               "payload": payload, "planned_at": self.now, "updated_at": self.now})
        append_events(self.conn, self.audience.keys, events)
        if queued:
            queue_deliveries(self.conn, queued)
        return answers


def check_request(*, audience: Audience, request_id: int) -> None:
    """Raise :class:`TokenError` unless the subscription request can still be confirmed."""
    with audience.reads.connect() as conn:
        _open_request(conn, request_id)


def _open_request(conn: Connection, request_id: int) -> RowMapping:
    request = conn.execute(select(subscription_requests).where(subscription_requests.c.id == request_id)).mappings().first()
    if request is None:
        raise TokenError(N_("the request it confirms no longer exists (erased, or not confirmed in time)"))
    if request["closed_at"] is not None:
        raise TokenError(N_("it has been used already, or a newer change of the subscription replaced it"))
    return request


def confirm_request(*, audience: Audience, request_id: int, now: datetime, source: str, evidence: str) -> Subscriber:
    """Confirm the subscription request a link was sent for, with that request's choices.

    The ``confirmed`` consent event records the choices and the request. Raises
    :class:`TokenError` when the request is unknown, expired away, already used, or voided by a
    later change of the subscriber's status.
    """
    with audience.engine.begin() as conn:
        request = _open_request(conn, request_id)
        subscriber_id = request["subscriber_id"]
        address = conn.execute(select(subscribers.c.address).where(subscribers.c.id == subscriber_id)).scalar_one()
        topics = tuple(t for t in request["topics"].split(";") if t)
        conn.execute(
            update(subscribers).where(subscribers.c.id == subscriber_id).values(
                status="confirmed", name=request["name"], cadence=request["cadence"], language=request["language"],
                updated_at=now, confirmed_at=now,
            )
        )
        set_topics(conn, subscriber_id, topics)
        close_requests(conn, subscriber_id, now)
        choices = {"request": request_id, "topics": list(topics), "cadence": request["cadence"], "language": request["language"],
                   "name": request["name"]}
        audience.event(conn, subscriber_id, address, "confirmed", now, source, with_evidence(evidence, choices=choices))
        lift_unsubscribe(conn, address)
    found = audience.get(subscriber_id=subscriber_id)
    assert found is not None
    return found


def expire_pending(*, audience: Audience, before: datetime) -> int:
    """Delete subscriptions still unconfirmed whose last request is older than ``before``; returns how many.

    They never consented, so nothing of them is kept: their requests go, and their events are
    removed as an erasure removes them (recorded in the consent chain). Old requests of other
    subscribers (names typed by anyone, never confirmed) go as well.
    """
    with audience.engine.begin() as conn:
        rows = conn.execute(
            select(subscribers.c.id, subscribers.c.address).where(subscribers.c.status == "pending", subscribers.c.updated_at < before)
        ).all()
        for start in range(0, len(rows), CHUNK):
            ids = [row.id for row in rows[start:start + CHUNK]]
            theirs = or_(consent_events.c.subscriber_id.in_(ids), consent_events.c.address.in_([row.address for row in rows[start:start + CHUNK]]))
            events = conn.execute(select(consent_events.c.id).where(theirs)).scalars().all()
            remove_events(conn, audience.keys, ids=events, now=datetime.now(UTC), reason="expired: never confirmed")
            conn.execute(delete(subscriber_topics).where(subscriber_topics.c.subscriber_id.in_(ids)))
            conn.execute(delete(subscription_requests).where(subscription_requests.c.subscriber_id.in_(ids)))
            conn.execute(delete(subscribers).where(subscribers.c.id.in_(ids)))
        conn.execute(delete(subscription_requests).where(subscription_requests.c.created_at < before))
        return len(rows)
