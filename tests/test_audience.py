"""Subscribers, CSV import/export, consent evidence, suppression and signed tokens, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from tests._delivery import db_url, pg_server_url  # noqa: F401  (fixtures)
from tests.conftest import NOW

from pressroom.audience import (
    AddressError,
    Audience,
    TokenError,
    normalise_address,
    preferences_url,
    sign_token,
    unsubscribe_url,
    verify_token,
)


@pytest.fixture
def audience(db_url: str) -> Audience:  # noqa: F811
    return Audience(url=db_url)


@pytest.mark.parametrize(
    "bad",
    ["", "plainaddress", "two@@example.org", "a@b@example.org", "jane doe@example.org", "jane@localhost",
     ".jane@example.org", "jane..doe@example.org", "jane@-example.org", "jane@example.123", "x" * 65 + "@example.org"],
)
def test_malformed_addresses_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(AddressError) as info:
        normalise_address(bad)
    assert info.value.message and info.value.hint


def test_addresses_are_normalised() -> None:
    assert normalise_address("  Jane.Doe@Example.ORG ") == "jane.doe@example.org"


def test_add_then_duplicate_is_a_clear_error(audience: Audience) -> None:
    sub = audience.add(address="Jane@Example.org", name="Jane  Doe", topics=["Recycling", "lithium"], now=NOW, source="cli")
    assert (sub.address, sub.name, sub.status, sub.cadence, sub.topics) == (
        "jane@example.org", "Jane Doe", "confirmed", "per-release", ("lithium", "recycling"))
    with pytest.raises(AddressError, match="jane@example.org is already a subscriber"):
        audience.add(address="JANE@example.org", now=NOW, source="cli")
    assert audience.count() == 1


def test_import_reports_each_bad_row_and_duplicate_by_line_and_imports_the_rest(audience: Audience) -> None:
    audience.add(address="old@example.org", now=NOW, source="cli")
    csv_text = (
        "address,name,topics,cadence,consent\n"
        "ann@example.org,Ann,recycling;lithium,weekly,web form 2024-01-02\n"
        "not-an-address,Bob,,,\n"
        "ann@example.org,Ann again,,,\n"
        "old@example.org,Old,,,\n"
        "cy@example.com,Cy,,monthly,\n"
        "dee@example.test,Dee,,,\n"
    )
    report = audience.import_csv(file=io.StringIO(csv_text), now=NOW, source="import:test.csv")
    assert report.added == 2
    assert report.duplicates == 2
    lines = dict(report.problems)
    assert set(lines) == {3, 4, 5, 6}
    assert "not-an-address" in lines[3]
    assert "appears earlier in the file" in lines[4]
    assert "already a subscriber" in lines[5]
    assert "monthly" in lines[6]
    ann = audience.get(address="ann@example.org")
    assert ann is not None and ann.cadence == "weekly" and ann.topics == ("lithium", "recycling")
    events = audience.events(address="ann@example.org")
    assert [(e.kind, e.source, e.detail) for e in events] == [("subscribed", "import:test.csv:2", "web form 2024-01-02")]


def test_import_refuses_a_file_without_an_address_column(audience: Audience) -> None:
    with pytest.raises(AddressError, match="address"):
        audience.import_csv(file=io.StringIO("mail,name\nx@example.org,X\n"), now=NOW)


def test_export_round_trips_through_import(audience: Audience, tmp_path) -> None:
    audience.add(address="a@example.org", name="A, the first", topics=["x-ray"], cadence="weekly", now=NOW, source="cli")
    audience.add(address="b@example.org", now=NOW, source="cli", status="pending")
    out = io.StringIO()
    assert audience.export_csv(file=out) == 2
    other = Audience(url=f"sqlite:///{tmp_path / 'copy.db'}")
    report = other.import_csv(file=io.StringIO(out.getvalue()), now=NOW)
    assert report.added == 2 and not report.problems
    assert [(s.address, s.name, s.cadence, s.status, s.topics) for s in other.list()] == [
        (s.address, s.name, s.cadence, s.status, s.topics) for s in audience.list()
    ]


@pytest.mark.slow
def test_import_of_100000_rows(audience: Audience, tmp_path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w") as handle:
        handle.write("address,name,topics\n")
        for i in range(100_000):
            handle.write(f"reader{i}@example.org,Reader {i},{'recycling' if i % 3 == 0 else ''}\n")
    report = audience.import_csv(file=path, now=NOW)
    assert report.added == 100_000 and not report.problems
    assert audience.count(status="confirmed") == 100_000
    last = audience.get(address="reader99998@example.org")
    assert (last.name, last.topics) == ("Reader 99998", ())
    assert audience.get(address="reader3@example.org").topics == ("recycling",)


def test_unsubscribe_suppresses_and_keeps_the_evidence(audience: Audience) -> None:
    sub = audience.add(address="ann@example.org", now=NOW, source="web", status="pending", evidence="form from 192.0.2.1")
    audience.confirm(subscriber_id=sub.id, now=NOW + timedelta(minutes=5), source="web:confirm")
    audience.unsubscribe(subscriber_id=sub.id, now=NOW + timedelta(days=1), source="web:one-click")
    assert audience.get(address="ann@example.org").status == "unsubscribed"
    assert audience.is_suppressed(address="ann@example.org")
    assert [e.kind for e in audience.events(address="ann@example.org")] == ["requested", "confirmed", "unsubscribed"]
    # Subscribing again (double opt-in) lifts the unsubscribe, never a hard bounce.
    audience.confirm(subscriber_id=sub.id, now=NOW + timedelta(days=2), source="web:confirm")
    assert not audience.is_suppressed(address="ann@example.org")
    audience.suppress(address="ann@example.org", reason="hard-bounce", now=NOW, detail="550 5.1.1")
    audience.unsubscribe(subscriber_id=sub.id, now=NOW + timedelta(days=3), source="web")
    audience.confirm(subscriber_id=sub.id, now=NOW + timedelta(days=4), source="web:confirm")
    assert audience.is_suppressed(address="ann@example.org")


def test_remove_unsubscribes_and_erase_forgets(audience: Audience) -> None:
    audience.add(address="a@example.org", now=NOW, source="cli")
    audience.add(address="b@example.org", now=NOW, source="cli")
    assert audience.remove(address="a@example.org", now=NOW, source="cli")
    assert audience.get(address="a@example.org").status == "unsubscribed"
    assert audience.remove(address="b@example.org", now=NOW, source="cli", erase=True)
    assert audience.get(address="b@example.org") is None and audience.events(address="b@example.org") == []
    assert not audience.remove(address="nobody@example.org", now=NOW, source="cli")


def test_preferences_change_topics_and_cadence(audience: Audience) -> None:
    sub = audience.add(address="a@example.org", topics=["lithium"], now=NOW, source="cli")
    changed = audience.set_preferences(subscriber_id=sub.id, topics=[], cadence="weekly", now=NOW, source="web")
    assert (changed.topics, changed.cadence) == ((), "weekly")
    assert audience.events(address="a@example.org")[-1].kind == "preferences"


def test_seed_only_while_empty(audience: Audience, tmp_path) -> None:
    seed = tmp_path / "seed.csv"
    seed.write_text("address,name\nx@example.org,X\n")
    assert audience.seed_if_empty(file=seed, now=NOW).added == 1
    assert audience.seed_if_empty(file=seed, now=NOW) is None
    assert audience.count() == 1


def test_tokens_are_scoped_signed_and_expire(project) -> None:
    settings = project.settings()
    token = sign_token(settings=settings, action="unsubscribe", subscriber_id=42)
    assert verify_token(settings=settings, token=token, action="unsubscribe") == 42
    with pytest.raises(TokenError, match="not 'preferences'"):
        verify_token(settings=settings, token=token, action="preferences")
    payload, mac = token.split(".")
    forged = sign_token(settings=settings, action="unsubscribe", subscriber_id=43).split(".")[0] + "." + mac
    with pytest.raises(TokenError, match="not genuine"):
        verify_token(settings=settings, token=forged, action="unsubscribe")
    with pytest.raises(TokenError, match="damaged"):
        verify_token(settings=settings, token="garbage", action="unsubscribe")
    other = project.settings(PRESSROOM_SECRET_KEY="another-secret")
    with pytest.raises(TokenError):
        verify_token(settings=other, token=token, action="unsubscribe")
    short = sign_token(settings=settings, action="confirm", subscriber_id=1, expires_at=NOW + timedelta(hours=1))
    assert verify_token(settings=settings, token=short, action="confirm", now=NOW) == 1
    with pytest.raises(TokenError, match="expired"):
        verify_token(settings=settings, token=short, action="confirm", now=NOW + timedelta(hours=2))
    url = unsubscribe_url(settings=settings, subscriber_id=7)
    assert url.startswith("https://press.example.org/unsubscribe?token=")
    assert preferences_url(settings=settings, subscriber_id=7).startswith("https://press.example.org/preferences?token=")
