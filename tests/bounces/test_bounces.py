"""Bounces from a Maildir and a webhook: hard bounces and complaints suppress, delays do not."""

from __future__ import annotations

import json
import mailbox

import pytest

from pressroom.audience import Audience
from pressroom.bounces import handle_webhook, parse_report, scan_maildir, webhook_token
from pressroom.ledger import Ledger, Outcome
from tests.conftest import DATA, NOW

BOUNCES = DATA / "bounces"


@pytest.fixture
def sent(db_url):
    audience, ledger = Audience(url=db_url), Ledger(url=db_url)
    for address in ("gone@example.org", "busy@example.org", "annoyed@example.com", "fine@example.org"):
        audience.add(address=address, now=NOW, source="test")
    ledger.plan_audience(release="news", channel="email", tags=[], cadence="per-release", now=NOW)
    token, rows = ledger.claim(release="news", channel="email", limit=10, now=NOW)
    ledger.advance(worker=token, outcomes=[], begin=[r.id for r in rows], now=NOW)
    ledger.advance(worker=token, outcomes=[Outcome(id=r.id, state="sent", response="250 ok") for r in rows], begin=[], now=NOW)
    return audience, ledger


def test_postfix_dsn_is_read_per_recipient() -> None:
    bounces = parse_report((BOUNCES / "postfix-dsn.eml").read_bytes())
    assert [(b.recipient, b.action, b.status, b.hard) for b in bounces] == [
        ("gone@example.org", "failed", "5.1.1", True),
        ("busy@example.org", "delayed", "4.2.2", False),
    ]
    assert "User unknown in local recipient table" in bounces[0].diagnostic
    assert bounces[0].message_id == "<news.5d41402abc4b2a76b971@example.org>"
    assert parse_report(b"Subject: hello\r\n\r\nnot a bounce\r\n") == []


def test_maildir_scan_suppresses_hard_bounces_and_complaints_once(tmp_path, sent) -> None:
    audience, ledger = sent
    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    for name in ("postfix-dsn.eml", "arf-complaint.eml"):
        box.add((BOUNCES / name).read_bytes())
    box.add(b"Subject: out of office\r\n\r\nI am away.\r\n")
    report = scan_maildir(path=tmp_path / "bounces", audience=audience, ledger=ledger, now=NOW)
    assert sorted(report.suppressed) == ["annoyed@example.com", "gone@example.org"]
    assert report.soft == ["busy@example.org"]
    assert len(report.problems) == 1 and "out of office" in report.problems[0]
    assert audience.is_suppressed(address="gone@example.org") and audience.is_suppressed(address="annoyed@example.com")
    assert not audience.is_suppressed(address="busy@example.org")
    news = ledger.report(release="news", channel="email")
    # The complained-about email arrived: its row stays sent and counts toward the release's complaint rate.
    assert (news.sent, news.failed) == (3, 1)
    assert ledger.complaint_rates(release="news") == [("news", 1, 3)]
    assert any(r[1] == "gone@example.org" and "5.1.1" in r[3] for r in news.problems)
    again = scan_maildir(path=tmp_path / "bounces", audience=audience, ledger=ledger, now=NOW)
    assert again.suppressed == [] and len(again.problems) == 1


def test_webhook_needs_its_token_and_takes_json_or_a_dsn(project, sent) -> None:
    audience, ledger = sent
    settings = project.settings()
    token = webhook_token(settings=settings)
    common = {"settings": settings, "audience": audience, "ledger": ledger, "now": NOW}
    status, body = handle_webhook(token="forged", body=b"{}", content_type="application/json", **common)
    assert status == 403
    payload = json.dumps([{"recipient": "Fine@example.org", "status": "5.1.1", "action": "failed", "diagnostic": "550 no such user"}])
    status, body = handle_webhook(token=token, body=payload.encode(), content_type="application/json", **common)
    assert (status, body["suppressed"]) == (200, ["fine@example.org"])
    status, body = handle_webhook(token=token, body=(BOUNCES / "postfix-dsn.eml").read_bytes(), content_type="message/rfc822", **common)
    assert (status, body["suppressed"], body["soft"]) == (200, ["gone@example.org"], ["busy@example.org"])
    status, body = handle_webhook(token=token, body=b"hello", content_type="text/plain", **common)
    assert status == 400
    assert audience.is_suppressed(address="fine@example.org")


def test_bounces_command(project, tmp_path) -> None:
    from typer.testing import CliRunner

    from pressroom.cli import app

    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    box.add((BOUNCES / "postfix-dsn.eml").read_bytes())
    result = CliRunner().invoke(app, ["deliveries", "bounces", str(tmp_path / "bounces"), "--settings", str(project.root / "pressroom.toml")])
    assert result.exit_code == 0
    assert "suppressed  gone@example.org" in result.output
    assert "bounces: 1 suppressed, 1 soft (not suppressed), 0 unreadable" in result.output
    assert Audience.from_settings(project.settings()).is_suppressed(address="gone@example.org")


def test_the_web_app_takes_the_providers_bounce_webhook(project) -> None:
    from starlette.testclient import TestClient

    from pressroom.web import create_app

    settings = project.settings()
    audience = Audience.from_settings(settings)
    audience.add(address="gone@example.org", now=NOW, source="test")
    with TestClient(create_app(settings=settings)) as client:
        forged = client.post("/bounces?token=forged", content=b"{}", headers={"content-type": "application/json"})
        assert forged.status_code == 403 and not audience.is_suppressed(address="gone@example.org")
        report = (BOUNCES / "postfix-dsn.eml").read_bytes()
        answer = client.post(f"/bounces?token={webhook_token(settings=settings)}", content=report,
                             headers={"content-type": "message/rfc822"})
    assert answer.status_code == 200 and answer.json()["suppressed"] == ["gone@example.org"]
    assert audience.is_suppressed(address="gone@example.org")
