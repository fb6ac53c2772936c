"""Subscribers, CSV import/export, consent evidence, suppression and signed tokens, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import stat
from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from tests.conftest import NOW

from pressroom.audience import (
    AddressError,
    Audience,
    TokenError,
    clean_name,
    eligible,
    erase,
    mailbox,
    normalise_address,
    preferences_url,
    sign_token,
    unsubscribe_url,
    verify_token,
)
from pressroom.db import engine_for_url
from pressroom.errors import ConfigError
from pressroom.settings import PUBLIC_SECRET


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


def test_remove_unsubscribes_and_erase_forgets(project, db_url: str) -> None:
    settings = project.settings(PRESSROOM_DATABASE_URL=db_url)
    audience = Audience.from_settings(settings)
    audience.add(address="a@example.org", now=NOW, source="cli")
    audience.add(address="b@example.org", now=NOW, source="cli")
    assert audience.remove(address="a@example.org", now=NOW, source="cli")
    assert audience.get(address="a@example.org").status == "unsubscribed"
    assert erase(settings=settings, address="B@example.org")
    assert audience.get(address="b@example.org") is None and audience.events(address="b@example.org") == []
    assert not audience.remove(address="nobody@example.org", now=NOW, source="cli")
    assert not erase(settings=settings, address="nobody@example.org")


def test_a_bounced_address_stays_suppressed_after_erasure_as_a_hash_only(project, db_url: str) -> None:
    settings = project.settings(PRESSROOM_DATABASE_URL=db_url)
    audience = Audience.from_settings(settings)
    audience.add(address="bounced@example.org", now=NOW, source="cli")
    audience.suppress(address="bounced@example.org", reason="hard-bounce", now=NOW, detail="550 5.1.1 <bounced@example.org> unknown")
    assert erase(settings=settings, address="bounced@example.org")
    engine = engine_for_url(db_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT address, reason, detail FROM suppressions")).all()
    assert len(rows) == 1 and rows[0].address.startswith("h:") and rows[0].reason == "hard-bounce"
    assert "bounced@example.org" not in rows[0].detail
    assert audience.is_suppressed(address="Bounced@Example.org")
    # Added again (an import, say), it is suppressed at once and never planned.
    audience.add(address="bounced@example.org", now=NOW, source="cli")
    with engine.connect() as conn:
        assert conn.execute(eligible(cadence="per-release", tags=[])).all() == []


def test_consent_events_cannot_be_updated_even_in_sql(audience: Audience, db_url: str) -> None:
    audience.add(address="ev@example.org", now=NOW, source="cli", evidence="signed form")
    engine = engine_for_url(db_url)
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text("UPDATE consent_events SET detail = 'rewritten'"))
    assert audience.events(address="ev@example.org")[0].detail == "signed form"


@pytest.mark.parametrize(
    "name",
    ["visit spam.example", "spam\uff0eexample", "spam\u3002example", "=?utf-8?b?c3BhbS5leGFtcGxl?=", "=?utf-8?q?www=2Espam?=",
     "mail me@spam.example", "https://spam.example", "spam [dot] example", "\uff57\uff57\uff57 spam"],
)
def test_names_that_read_as_links_are_refused_everywhere(audience: Audience, name: str) -> None:
    with pytest.raises(AddressError, match="reads as a web or email address"):
        clean_name(name)
    with pytest.raises(AddressError):
        audience.add(address="n@example.org", name=name, now=NOW, source="cli")
    report = audience.import_csv(file=io.StringIO(f"address,name\nm@example.org,{name}\n"), now=NOW)
    assert report.added == 0 and "reads as a web or email address" in report.problems[0][1]


def test_ordinary_names_are_cleaned_not_refused() -> None:
    assert clean_name("J.R.R. Tolkien") == "J.R.R. Tolkien"
    assert clean_name("=?utf-8?q?Ana_M=C3=BCller?=") == "Ana Müller"
    assert clean_name("Eve\r\nBcc: x\u202e\x00") == "Eve Bcc: x"
    assert clean_name("example.org press office", links=True) == "example.org press office"


def test_one_mailbox_is_one_mailbox() -> None:
    assert mailbox("Jane+News@Example.ORG.") == mailbox("jane@example.org") == "jane@example.org"
    assert mailbox("+x@example.org") == "+x@example.org"


def test_the_public_secret_is_refused_and_a_generated_one_is_kept(project) -> None:
    with pytest.raises(ConfigError, match="public development secret"):
        project.settings(PRESSROOM_SECRET_KEY=PUBLIC_SECRET)
    settings = project.settings()
    key = settings.signing_keys()[0]
    path = settings.path("var") / "secret_key"
    assert len(key) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert project.settings().signing_keys()[0] == key  # the same one from then on
    # From a Secret block (applied without validation) it is refused at first use.
    forged = settings.model_copy(update={"secret_key": SecretStr(PUBLIC_SECRET)})
    with pytest.raises(ConfigError, match="public development secret"):
        sign_token(settings=forged, action="unsubscribe", subscriber_id=1)


def test_previous_keys_verify_but_never_sign(project) -> None:
    old = project.settings(PRESSROOM_SECRET_KEY="the-old-key-rotated-away")
    link = sign_token(settings=old, action="unsubscribe", subscriber_id=5)
    rotated = project.settings(PRESSROOM_SECRET_KEY="the-new-key", PRESSROOM_WEB__PREVIOUS_SECRET_KEYS='["the-old-key-rotated-away"]')
    assert verify_token(settings=rotated, token=link, action="unsubscribe") == 5
    assert sign_token(settings=rotated, action="unsubscribe", subscriber_id=5) != link
    with pytest.raises(TokenError):
        verify_token(settings=project.settings(PRESSROOM_SECRET_KEY="the-new-key"), token=link, action="unsubscribe")


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
    _payload, mac = token.split(".")
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
