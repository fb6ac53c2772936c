"""The email step and the digest flow under Prefect, through the outbox: who gets what, once."""

from __future__ import annotations

import email
import email.policy
import io
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from pressroom.audience import Audience, verify_token
from pressroom.ledger import Ledger
from tests.conftest import NOW

READERS = """address,name,topics,cadence,status
all@example.org,All Reader,,per-release,confirmed
lithium@example.org,Li Reader,lithium,per-release,confirmed
hydrogen@example.org,H Reader,hydrogen,per-release,confirmed
weekly@example.org,Weekly Reader,,weekly,confirmed
pending@example.org,Pending Reader,,per-release,pending
bounced@example.org,Bounced Reader,,per-release,confirmed
"""


def _readers(project) -> Audience:
    audience = Audience.from_settings(project.settings())
    audience.import_csv(file=io.StringIO(READERS), now=NOW)
    audience.suppress(address="bounced@example.org", reason="hard-bounce", now=NOW, detail="550 5.1.1")
    return audience


def _text(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    return "\n".join(part.get_content() for part in message.walk() if part.get_content_maintype() == "text")


def _outbox(project, key: str) -> dict[str, bytes]:
    folder = project.root / "var" / "outbox" / "email" / key
    return {path.stem: path.read_bytes() for path in sorted(folder.glob("*.eml"))}


def test_release_reaches_its_audience_once_with_working_links(project, email_step) -> None:
    project.write_release("lithium-news", title="Lithium news", extra="tags: [Lithium, Recycling]\n")
    audience = _readers(project)
    settings_file = str(project.root / "pressroom.toml")
    report = email_step(settings_file=settings_file, slug="lithium-news", now=NOW)
    assert (report.sent, report.sent_now, report.failed, report.ambiguous) == (2, 2, 0, 0)
    sent = _outbox(project, "lithium-news")
    assert sorted(sent) == ["all@example.org", "lithium@example.org"]
    message = email.message_from_bytes(sent["lithium@example.org"], policy=email.policy.default)
    assert message["To"].addresses[0].addr_spec == "lithium@example.org"
    assert b"\r\n" in sent["lithium@example.org"]
    link = message["List-Unsubscribe"].strip("<>").split(">")[0]
    token = parse_qs(urlsplit(link).query)["token"][0]
    settings = project.settings()
    assert verify_token(settings=settings, token=token, action="unsubscribe") == audience.get(address="lithium@example.org").id

    mtimes = {path: path.stat().st_mtime_ns for path in (project.root / "var" / "outbox").rglob("*.eml")}
    again = email_step(settings_file=settings_file, slug="lithium-news", now=NOW + timedelta(minutes=5))
    assert (again.sent, again.sent_now) == (2, 0)
    assert {path: path.stat().st_mtime_ns for path in (project.root / "var" / "outbox").rglob("*.eml")} == mtimes


def test_release_with_email_off_or_too_old_is_not_sent(project, email_step) -> None:
    project.write_release("quiet", extra="email: {enabled: false}\n")
    project.write_release("old-news", date="2024-01-02 09:00")
    _readers(project)
    settings_file = str(project.root / "pressroom.toml")
    quiet = email_step(settings_file=settings_file, slug="quiet", now=NOW)
    assert "enabled: false" in quiet.skipped
    with (project.root / "pressroom.toml").open("a") as handle:
        handle.write("max_age_days = 30\n")  # appended to the [email] section of the test settings
    old = email_step(settings_file=settings_file, slug="old-news", now=NOW)
    assert "email.max_age_days" in old.skipped
    assert not (project.root / "var" / "outbox" / "email").exists()


def test_unknown_transport_fails_before_planning(project, email_step) -> None:
    project.write_release("news")
    _readers(project)
    with (project.root / "pressroom.toml").open("a") as handle:
        handle.write('transport = "pigeon"\n')
    with pytest.raises(Exception, match="pigeon"):
        email_step(settings_file=str(project.root / "pressroom.toml"), slug="news", now=NOW)
    assert not Ledger.from_settings(project.settings()).is_planned(release="news", channel="email")


def test_weekly_readers_get_one_digest_and_nobody_gets_a_release_twice(project, email_step) -> None:
    from flows.digest import digest

    project.write_release("monday-news", title="Monday news", date="2024-07-29 09:00", extra="tags: [lithium]\n")
    project.write_release("friday-news", title="Friday news", date="2024-08-02 09:00")
    audience = _readers(project)
    settings_file = str(project.root / "pressroom.toml")
    monday = datetime(2024, 7, 29, 8, 0, tzinfo=UTC)
    email_step(settings_file=settings_file, slug="monday-news", now=monday)
    # The lithium reader switches to weekly after Monday's email; Friday's goes to them in the digest only.
    lithium = audience.get(address="lithium@example.org")
    audience.set_preferences(subscriber_id=lithium.id, cadence="weekly", topics=[], now=monday, source="web")
    friday = datetime(2024, 8, 2, 8, 0, tzinfo=UTC)
    email_step(settings_file=settings_file, slug="friday-news", now=friday)
    report = digest(settings_file=settings_file, now=datetime(2024, 8, 5, 9, 0, tzinfo=UTC))
    assert report.release == "digest-2024-W31"
    assert (report.sent, report.failed, report.ambiguous) == (2, 0, 0)
    digests = _outbox(project, "digest-2024-W31")
    assert sorted(digests) == ["lithium@example.org", "weekly@example.org"]
    weekly_text, lithium_text = _text(digests["weekly@example.org"]), _text(digests["lithium@example.org"])
    assert "Monday news" in weekly_text and "Friday news" in weekly_text
    assert "Friday news" in lithium_text and "Monday news" not in lithium_text
    assert "weekly@example.org" not in _outbox(project, "monday-news")
    again = digest(settings_file=settings_file, now=datetime(2024, 8, 5, 10, 0, tzinfo=UTC))
    assert (again.sent, again.sent_now) == (2, 0) and _outbox(project, "digest-2024-W31") == digests


@pytest.mark.slow
def test_sender_processes_share_a_send_without_overlap(project, email_step) -> None:
    project.write_release("big-news", title="Big news")
    audience = Audience.from_settings(project.settings())
    audience.import_csv(file=io.StringIO("address\n" + "".join(f"r{i}@example.org\n" for i in range(600))), now=NOW)
    with (project.root / "pressroom.toml").open("a") as handle:
        handle.write("processes = true\nworkers = 2\nbatch_size = 50\n")  # the [email] section
    report = email_step(settings_file=str(project.root / "pressroom.toml"), slug="big-news", now=NOW)
    assert (report.sent, report.ambiguous, report.failed) == (600, 0, 0)
    assert len(_outbox(project, "big-news")) == 600


def test_a_release_that_cannot_be_sent_reports_why_and_stays_due(project, email_step) -> None:
    from tests._delivery import FaultyHandler, Received, SmtpServer

    project.write_release("news")
    _readers(project)
    with SmtpServer(FaultyHandler(Received())) as server:
        with (project.root / "pressroom.toml").open("a") as handle:  # the [email] section, then [smtp]
            handle.write(f'transport = "smtp"\n[smtp]\nport = {server.port}\nusername = "press"\npassword = "x"\n')
        report = email_step(settings_file=str(project.root / "pressroom.toml"), slug="news", now=NOW)
    assert "cannot log in" in report.error and "smtp.security" in report.error
    assert (report.sent, report.ambiguous, report.pending + report.deferred) == (0, 0, 1)  # all@ only: no tags
