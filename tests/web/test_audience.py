"""The audience functions of the subscription flow (request_subscription, confirm_request, erase, expire_pending), on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from tests.conftest import NOW

from pressroom.audience import (
    Audience, AddressError, SubscribeRequest, TokenError, confirm_request, erase, expire_pending, request_subscription,
    request_subscriptions,
)


@pytest.fixture
def audience(settings) -> Audience:
    return Audience.from_settings(settings)


def ask(audience: Audience, address: str, *, now=NOW, limit: int = 3, may_confirm: bool = True, **fields) -> int | None:
    """The subscriber id a confirmation email should go to, or None."""
    requested = request(audience, address, now=now, limit=limit, may_confirm=may_confirm, **fields)
    return requested.subscriber_id if requested else None


def request(audience: Audience, address: str, *, now=NOW, limit: int = 3, may_confirm: bool = True, **fields):
    return request_subscription(
        audience=audience, address=address, now=now, source="web:subscribe", evidence='{"form": "test"}',
        confirmations_since=now - timedelta(days=1), max_confirmations=limit, may_confirm=may_confirm, **fields,
    )


def test_a_request_creates_a_pending_subscriber_and_counts_confirmations(audience: Audience) -> None:
    first = ask(audience, "New@Example.org", name="Ann", topics=["Recycling"], cadence="weekly")
    sub = audience.get(address="new@example.org")
    assert first == sub.id and (sub.status, sub.name, sub.topics, sub.cadence) == ("pending", "Ann", ("recycling",), "weekly")
    assert [e.kind for e in audience.events(address="new@example.org")] == ["requested", "confirmation-sent"]
    # A second request may send again, up to the limit per day, and leaves the choices alone until confirmed.
    assert ask(audience, "new@example.org", topics=["policy"], limit=2) == sub.id
    assert audience.get(address="new@example.org").topics == ("recycling",)
    assert ask(audience, "new@example.org", limit=2) is None
    assert ask(audience, "New+tag@Example.org.", limit=2) is None  # one mailbox, counted once
    assert ask(audience, "new@example.org", limit=2, now=NOW + timedelta(days=1, seconds=1)) == sub.id
    assert ask(audience, "other@example.org", may_confirm=False) is None  # recorded, but no email
    assert audience.get(address="other@example.org").status == "pending"


def test_requests_written_together_answer_each_for_itself(audience: Audience) -> None:
    audience.add(address="in@example.org", now=NOW, source="cli")
    queued: list[str] = []

    def confirmation(requested):
        queued.append(f"confirm-{requested.request_id}")
        return queued[-1], "transactional", "{}"

    batch = [SubscribeRequest(address=address, evidence="{}", confirmation=confirmation)
             for address in ["a@example.org", "a@example.org", "bad address", "in@example.org", "b@example.org"]]
    results = request_subscriptions(audience=audience, requests=batch, now=NOW, source="web:subscribe",
                                    confirmations_since=NOW - timedelta(days=1), max_confirmations=1)
    first, second, bad, confirmed, other = results
    # The second request for a@ sees the first (one subscriber, and the per-day limit of 1 is spent).
    assert first.subscriber_id == audience.get(address="a@example.org").id and second is None
    assert isinstance(bad, AddressError) and confirmed is None
    assert other.subscriber_id == audience.get(address="b@example.org").id
    assert len(queued) == 2 and audience.count(status="pending") == 2


def test_confirmed_and_bounced_addresses_get_no_confirmation(audience: Audience) -> None:
    audience.add(address="in@example.org", now=NOW, source="cli")
    assert ask(audience, "in@example.org", cadence="weekly") is None
    assert audience.get(address="in@example.org").cadence == "per-release"  # left alone
    ask(audience, "bounced@example.org")
    audience.suppress(address="bounced@example.org", reason="bounce", now=NOW)
    assert ask(audience, "bounced@example.org") is None
    # Someone who unsubscribed may ask again (and must confirm again).
    sub = audience.add(address="left@example.org", now=NOW, source="cli")
    audience.unsubscribe(subscriber_id=sub.id, now=NOW, source="web")
    assert ask(audience, "left@example.org") == sub.id
    assert audience.get(address="left@example.org").status == "unsubscribed"


def test_concurrent_requests_for_one_address_make_one_subscriber(audience: Audience) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: ask(audience, "race@example.org", limit=100), range(16)))
    assert len(set(results)) == 1 and results[0] is not None
    assert audience.count() == 1


def test_what_is_confirmed_is_what_the_clicked_link_asked(audience: Audience) -> None:
    first = request(audience, "two@example.org", name="Ann", topics=["recycling"], cadence="weekly")
    second = request(audience, "two@example.org", name="Someone Else", topics=["policy"])
    pending = audience.get(address="two@example.org")
    assert (pending.name, pending.topics, pending.cadence) == ("Ann", ("recycling",), "weekly")
    sub = confirm_request(audience=audience, request_id=first.request_id, now=NOW, source="web:confirm", evidence='{"form": "t"}')
    assert (sub.status, sub.name, sub.topics, sub.cadence) == ("confirmed", "Ann", ("recycling",), "weekly")
    confirmed = audience.events(address="two@example.org")[-1]
    assert confirmed.kind == "confirmed" and '"topics": ["recycling"]' in confirmed.detail
    # The link is used up, and the other request's link died with the status change.
    for used in (first, second):
        with pytest.raises(TokenError):
            confirm_request(audience=audience, request_id=used.request_id, now=NOW, source="web:confirm", evidence="")


def test_a_link_sent_before_an_unsubscribe_never_resubscribes(audience: Audience) -> None:
    sub = audience.add(address="gone@example.org", now=NOW, source="cli")
    audience.unsubscribe(subscriber_id=sub.id, now=NOW, source="web")
    old = request(audience, "gone@example.org")
    sub = confirm_request(audience=audience, request_id=old.request_id, now=NOW, source="web:confirm", evidence="")
    audience.unsubscribe(subscriber_id=sub.id, now=NOW + timedelta(hours=1), source="web")
    with pytest.raises(TokenError):
        confirm_request(audience=audience, request_id=old.request_id, now=NOW, source="web:confirm", evidence="")
    assert audience.get(address="gone@example.org").status == "unsubscribed"


def test_the_site_wide_cap_on_confirmation_emails(audience: Audience) -> None:
    def capped(address: str):
        return request_subscription(
            audience=audience, address=address, now=NOW, source="web", evidence="", confirmations_since=NOW - timedelta(days=1),
            max_confirmations=3, site_since=NOW - timedelta(hours=1), site_max_confirmations=2,
        )

    assert [capped(f"s{n}@example.org") is not None for n in range(4)] == [True, True, False, False]


def test_erase_removes_subscriber_events_and_suppression(settings, audience: Audience) -> None:
    sub = audience.add(address="bye@example.org", now=NOW, source="cli")
    audience.unsubscribe(subscriber_id=sub.id, now=NOW, source="web")
    assert audience.is_suppressed(address="bye@example.org")
    assert erase(settings=settings, subscriber_id=sub.id) is True
    assert audience.get(address="bye@example.org") is None
    assert audience.events(address="bye@example.org") == []
    assert not audience.is_suppressed(address="bye@example.org")
    assert erase(settings=settings, subscriber_id=sub.id) is False


def test_expire_pending_removes_only_old_unconfirmed_requests(audience: Audience) -> None:
    ask(audience, "old@example.org", now=NOW - timedelta(days=8))
    ask(audience, "recent@example.org", now=NOW - timedelta(days=1))
    audience.add(address="kept@example.org", now=NOW - timedelta(days=30), source="cli")
    assert expire_pending(audience=audience, before=NOW - timedelta(days=7)) == 1
    assert audience.get(address="old@example.org") is None and audience.events(address="old@example.org") == []
    assert audience.get(address="recent@example.org").status == "pending"
    assert audience.get(address="kept@example.org").status == "confirmed"


def test_an_erased_subscribers_id_is_never_given_to_someone_else(settings, audience: Audience) -> None:
    # Old emails hold links signed for the erased id: they must not open a newcomer's data.
    first = audience.add(address="first@example.org", now=NOW, source="cli")
    erase(settings=settings, subscriber_id=first.id)
    second = audience.add(address="second@example.org", now=NOW, source="cli")
    assert second.id != first.id
    ask(audience, "pending@example.org", now=NOW - timedelta(days=9))
    expired = audience.get(address="pending@example.org").id
    expire_pending(audience=audience, before=NOW - timedelta(days=7))
    assert audience.add(address="third@example.org", now=NOW, source="cli").id not in {first.id, expired}
