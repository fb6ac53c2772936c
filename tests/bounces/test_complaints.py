"""Spam complaints (ARF, RFC 5965) from Yahoo, Microsoft and a generic feedback loop suppress at once.

The samples in tests/data/bounces are written from RFC 5965 and the providers' documentation:
Yahoo's CFL states the recipient in Original-Rcpt-To; Microsoft's JMRP (ARF format) hides it,
so the quoted Message-ID finds it; a generic FBL quotes the headers only (text/rfc822-headers).
"""

from __future__ import annotations

import json
import mailbox
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from pressroom.audience import Audience, MediaList
from pressroom.bounces import complaint_rate_line, handle_webhook, parse_report, scan_maildir, webhook_token
from pressroom.cli import app
from pressroom.ledger import Ledger, Outcome
from tests._delivery import FaultyHandler, Received, SmtpServer, drain
from tests.conftest import DATA, NOW

BOUNCES = DATA / "bounces"
SAMPLES = {"arf-yahoo.eml": "lena@example.net", "arf-microsoft-jmrp.eml": "omar@example.com", "arf-generic-fbl.eml": "paul@example.org"}
READERS = ["lena@example.net", "paul@example.org", "fine@example.org"]
JOURNALIST = "omar@example.com"


def _send(ledger: Ledger, release: str, channel: str) -> None:
    worker, rows = ledger.claim(release=release, channel=channel, limit=100, now=NOW)
    ledger.advance(worker=worker, outcomes=[], begin=[r.id for r in rows], now=NOW)
    ledger.advance(worker=worker, outcomes=[Outcome(id=r.id, state="sent", response="250 ok") for r in rows], begin=[], now=NOW)


@pytest.fixture
def sent(db_url):
    """"news" went to three subscribers and, on the media list's channel, to one journalist."""
    audience, ledger = Audience(url=db_url), Ledger(url=db_url)
    for address in READERS:
        audience.add(address=address, now=NOW, source="test")
    MediaList(audience=audience).add(address=JOURNALIST, now=NOW, name="Omar", outlet="Daily")
    ledger.plan_audience(release="news", channel="email", tags=[], cadence="per-release", now=NOW)
    ledger.plan(release="news", channel="journalists", recipients=[JOURNALIST], now=NOW)
    _send(ledger, "news", "email")
    _send(ledger, "news", "journalists")
    return audience, ledger


def test_the_providers_reports_are_read() -> None:
    found = {name: parse_report((BOUNCES / name).read_bytes()) for name in SAMPLES}
    assert [(b.action, b.status, b.recipient) for b in found["arf-yahoo.eml"]] == [("complaint", "abuse", "lena@example.net")]
    assert found["arf-yahoo.eml"][0].reporter == "Yahoo!-Mail-Feedback/2.0"
    assert found["arf-generic-fbl.eml"][0].message_id == "<news.d55940a5dbf94c584205@example.org>"
    # Microsoft hides the complainer: what To says is a placeholder, the Message-ID is what counts.
    [jmrp] = found["arf-microsoft-jmrp.eml"]
    assert jmrp.action == "complaint" and jmrp.message_id == "<news.d960a3bcb8ebf366ce3f@example.org>"


def test_complaints_suppress_everyone_on_every_channel_once(tmp_path, sent) -> None:
    audience, ledger = sent
    box = mailbox.Maildir(tmp_path / "fbl", create=True)
    for name in SAMPLES:
        box.add((BOUNCES / name).read_bytes())
    report = scan_maildir(path=tmp_path / "fbl", audience=audience, ledger=ledger, now=NOW)
    assert sorted(report.complaints) == sorted(SAMPLES.values()) == sorted(report.suppressed)
    assert report.problems == [] and "3 spam complaint(s)" in report.as_text()
    for address in SAMPLES.values():
        assert audience.is_suppressed(address=address)
        [event] = [e for e in audience.events(address=address) if e.kind == "complained"]
        assert "spam complaint (abuse) about news" in event.detail
    assert not audience.is_suppressed(address="fine@example.org")
    assert [j.address for j in MediaList(audience=audience).reachable()] == []  # the journalist, too
    # The complained-about emails arrived: their rows stay sent, and count toward the release's rate.
    assert ledger.states(release="news", channel="email")["lena@example.net"] == "sent"
    assert ledger.complaint_rates(release="news") == [("news", 3, 4)]
    # The same reports again (a provider resends, or the webhook gets them too): nothing counts twice.
    token = webhook_token(settings=_settings_for(tmp_path, ledger))
    status, body = handle_webhook(settings=_settings_for(tmp_path, ledger), token=token,
                                  body=(BOUNCES / "arf-yahoo.eml").read_bytes(), content_type="message/rfc822",
                                  audience=audience, ledger=ledger, now=NOW)
    assert (status, body["suppressed"], body["complaints"]) == (200, [], [])
    assert ledger.complaint_rates(release="news") == [("news", 3, 4)]
    assert len([e for e in audience.events(address="lena@example.net") if e.kind == "complained"]) == 1


def _settings_for(tmp_path, ledger):
    from pressroom.settings import load_settings

    return load_settings(environ={"PRESSROOM_SECRET_KEY": "a-test-key-that-is-long-enough", "PRESSROOM_PATHS__VAR": str(tmp_path)})


HOSTILE = {
    "no Feedback-Type": (
        b"Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: message/feedback-report\r\n\r\nUser-Agent: x\r\nVersion: 1\r\nOriginal-Rcpt-To: <fine@example.org>\r\n--b--\r\n",
        400, "Feedback-Type"),
    "about an address never mailed": (
        b"Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: x\r\nVersion: 1\r\n"
        b"Original-Rcpt-To: <stranger@example.org>\r\n--b--\r\n",
        422, "to whom Pressroom sent nothing"),
    "a forged Message-ID and no address": (
        b"Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: x\r\nVersion: 1\r\n--b\r\n"
        b"Content-Type: text/rfc822-headers\r\n\r\nMessage-ID: <news.00000000000000000000@example.org>\r\n--b--\r\n",
        422, "names no address"),
    "a DMARC failure report": (
        b"Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: message/feedback-report\r\n\r\nFeedback-Type: auth-failure\r\nUser-Agent: x\r\nVersion: 1\r\n"
        b"Original-Rcpt-To: <fine@example.org>\r\n--b--\r\n",
        422, "pressroom doctor --dns"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_or_malformed_reports_change_nothing(project, sent, case: str) -> None:
    audience, ledger = sent
    body, code, said = HOSTILE[case]
    settings = project.settings()
    status, answer = handle_webhook(settings=settings, token=webhook_token(settings=settings), body=body,
                                    content_type="multipart/report", audience=audience, ledger=ledger, now=NOW)
    assert status == code and said in answer["error"], answer
    for address in (*READERS, "stranger@example.org"):
        assert not audience.is_suppressed(address=address)
        assert not [e for e in audience.events(address=address) if e.kind == "complained"]
    assert ledger.complaint_rates(release="news") == [("news", 0, 4)]


def test_a_malformed_report_in_the_maildir_is_one_line_and_stays(tmp_path, sent) -> None:
    audience, ledger = sent
    box = mailbox.Maildir(tmp_path / "fbl", create=True)
    box.add(HOSTILE["no Feedback-Type"][0])
    big = tmp_path / "fbl" / "new" / "huge.eml"
    big.write_bytes(b"Subject: x\r\n\r\n" + b"x" * (6 * 1024 * 1024))
    report = scan_maildir(path=tmp_path / "fbl", audience=audience, ledger=ledger, now=NOW)
    assert report.suppressed == [] and len(report.problems) == 2
    assert any("unreadable report: an ARF report without Feedback-Type" in p for p in report.problems)
    assert any("larger than any delivery report: left unread" in p for p in report.problems)
    assert len(list((tmp_path / "fbl" / "new").iterdir())) == 2  # left where they were, for a person to look at
    assert not audience.is_suppressed(address="fine@example.org")


def test_an_oversized_webhook_body_is_refused_before_it_is_read(project) -> None:
    from starlette.testclient import TestClient

    from pressroom.web import create_app

    settings = project.settings()
    body = (BOUNCES / "arf-generic-fbl.eml").read_bytes() + b"x" * settings.web.max_body_bytes
    with TestClient(create_app(settings=settings)) as client:
        answer = client.post(f"/bounces?token={webhook_token(settings=settings)}", content=body,
                             headers={"content-type": "message/rfc822"})
    assert answer.status_code == 413
    assert not Audience.from_settings(settings).is_suppressed(address="paul@example.org")


def test_the_web_app_takes_complaints_by_the_bounce_webhook(project) -> None:
    from starlette.testclient import TestClient

    from pressroom.web import create_app

    settings = project.settings()
    audience, ledger = Audience.from_settings(settings), Ledger.from_settings(settings)
    audience.add(address="paul@example.org", now=NOW, source="test")
    ledger.plan_audience(release="news", channel="email", tags=[], cadence="per-release", now=NOW)
    _send(ledger, "news", "email")
    with TestClient(create_app(settings=settings)) as client:
        answer = client.post(f"/bounces?token={webhook_token(settings=settings)}",
                             content=(BOUNCES / "arf-generic-fbl.eml").read_bytes(), headers={"content-type": "message/rfc822"})
    assert answer.status_code == 200 and answer.json()["complaints"] == ["paul@example.org"]
    assert audience.is_suppressed(address="paul@example.org")


def test_a_following_send_skips_the_complainer(project, tmp_path) -> None:
    received = Received()
    with SmtpServer(FaultyHandler(received)) as server:
        settings = project.settings(**server.env())
        audience, ledger = Audience.from_settings(settings), Ledger.from_settings(settings)
        for address in READERS:
            audience.add(address=address, now=NOW, source="test")
        ledger.plan_audience(release="news", channel="email", tags=[], cadence="per-release", now=NOW)
        drain(settings=settings, ledger=ledger, release="news")
        assert received.by_recipient() == dict.fromkeys(READERS, 1)
        box = mailbox.Maildir(tmp_path / "fbl", create=True)
        box.add((BOUNCES / "arf-generic-fbl.eml").read_bytes())
        assert scan_maildir(path=tmp_path / "fbl", audience=audience, ledger=ledger, now=NOW).complaints == ["paul@example.org"]
        ledger.plan_audience(release="more-news", channel="email", tags=[], cadence="per-release", now=NOW + timedelta(days=1))
        drain(settings=settings, ledger=ledger, release="more-news")
    assert received.by_recipient() == {"lena@example.net": 2, "fine@example.org": 2, "paul@example.org": 1}


def test_a_complaint_during_a_run_stops_mail_to_its_sender_within_that_run(project) -> None:
    """The loop checks suppression when a window begins, not only when the run planned: a complaint
    processed while the run is sending (here: while the server takes the first email) holds back
    the complainer's email still queued in the same run."""
    received = Received()
    complained: list[int] = []
    armed: list[bool] = []

    class ComplaintMidRun(FaultyHandler):
        async def handle_DATA(self, server, session, envelope):
            answer = await super().handle_DATA(server, session, envelope)
            if armed and not complained:
                status, _body = handle_webhook(settings=settings, token=webhook_token(settings=settings),
                                              body=(BOUNCES / "arf-generic-fbl.eml").read_bytes(),
                                              content_type="message/rfc822", audience=audience, ledger=ledger, now=NOW)
                complained.append(status)
            return answer

    with SmtpServer(ComplaintMidRun(received)) as server:
        settings = project.settings(**server.env(), PRESSROOM_SMTP__CONNECTIONS="1", PRESSROOM_SMTP__WINDOW="1")
        audience, ledger = Audience.from_settings(settings), Ledger.from_settings(settings)
        audience.add(address="paul@example.org", now=NOW, source="test")
        ledger.plan_audience(release="news", channel="email", tags=[], cadence="per-release", now=NOW)
        drain(settings=settings, ledger=ledger, release="news")  # paul had "news" before
        others = [f"reader{n:02d}@example.org" for n in range(12)]
        for address in others:
            audience.add(address=address, now=NOW, source="test")
        # paul is the last of the run's queue; the complaint about "news" arrives with the run's first email.
        ledger.plan(release="second", channel="email", recipients=[*others, "paul@example.org"], now=NOW)
        armed.append(True)
        result = drain(settings=settings, ledger=ledger, release="second")
    assert complained == [200]
    assert ledger.states(release="second", channel="email")["paul@example.org"] == "suppressed"
    assert result.suppressed == 1 and result.sent == len(others)
    counts = received.counts
    assert sum(n for (rcpt, mid), n in counts.items() if rcpt == "paul@example.org") == 1  # "news" only


def test_the_complaint_rate_beside_the_providers_thresholds() -> None:
    line, alarming = complaint_rate_line(release="news", complaints=1, delivered=2000)
    assert "1 spam complaint(s) of 2000 delivered = 0.05%" in line and not alarming
    line, alarming = complaint_rate_line(release="news", complaints=3, delivered=2000)
    assert "0.15%" in line and "WARNING above the advised 0.1%" in line and alarming
    line, alarming = complaint_rate_line(release="news", complaints=7, delivered=2000)
    assert "0.35%" in line and "WARNING above the providers' limit" in line and alarming
    assert "under 0.3%, 0.1% advised" in line


def test_deliveries_report_shows_the_complaint_rate(project, tmp_path, monkeypatch) -> None:
    settings = project.settings()
    audience, ledger = Audience.from_settings(settings), Ledger.from_settings(settings)
    readers = ["paul@example.org", *[f"r{n:03d}@example.org" for n in range(399)]]
    for address in readers:
        audience.add(address=address, now=NOW, source="test")
    ledger.plan_audience(release="news", channel="email", tags=[], cadence="per-release", now=NOW)
    _send(ledger, "news", "email")
    _send(ledger, "news", "email")
    _send(ledger, "news", "email")
    _send(ledger, "news", "email")
    box = mailbox.Maildir(tmp_path / "fbl", create=True)
    box.add((BOUNCES / "arf-generic-fbl.eml").read_bytes())
    monkeypatch.chdir(project.root)
    result = CliRunner().invoke(app, ["deliveries", "bounces", str(tmp_path / "fbl")])
    assert "suppressed  paul@example.org  (spam complaint)" in result.output, result.output
    result = CliRunner().invoke(app, ["deliveries", "report", "--release", "news"])
    assert "complaints news: 1 spam complaint(s) of 400 delivered = 0.25%" in result.output, result.output
    assert "WARNING above the advised 0.1%" in result.output
    assert json.dumps  # the report is text; the webhook answers JSON
