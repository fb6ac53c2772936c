"""The big providers' policy refusals explained: a cause and a hint in `deliveries report`; never a suppressed reader."""

from __future__ import annotations

import mailbox

import pytest
from typer.testing import CliRunner

from pressroom.audience import Audience
from pressroom.bounces import scan_maildir
from pressroom.cli import app
from pressroom.ledger import Ledger, Outcome
from pressroom.mail.answers import classify, explain
from tests.conftest import NOW

DMARC_HINT = "the domain's DMARC does not pass: run pressroom doctor --dns"

# Answers as the providers' postmaster pages quote them.
ANSWERS = [
    ("550 5.7.515 Access denied, sending domain EXAMPLE.ORG doesn't meet the required authentication level.",
     "Outlook.com", "required authentication level", DMARC_HINT, False),
    ("550-5.7.26 Unauthenticated email from example.org is not accepted due to domain's DMARC policy.",
     "Gmail", "failed DMARC", DMARC_HINT, False),
    ("550-5.7.1 This mail has been blocked because the sender is unauthenticated. Gmail requires all senders to"
     " authenticate with either SPF or DKIM.", "Gmail", "unauthenticated", DMARC_HINT, False),
    ("421-4.7.28 [192.0.2.25] Our system has detected an unusual rate of unsolicited mail originating from your IP address.",
     "Gmail", "unusual rate", "rate_per_second", True),
    ("451 4.7.500 Server busy. Please try again later from [192.0.2.25]. (S77719)", "Outlook.com", "server busy",
     "rate_per_second", True),
    ("421 4.7.0 [TSS04] Messages from 192.0.2.25 temporarily deferred due to unexpected volume or user complaints",
     "Yahoo", "unexpected volume", "complaint rate", True),
    ("450 4.7.1 Client host rejected: try again later", "the receiving server", "temporary policy refusal", "retried", True),
]


@pytest.mark.parametrize(("answer", "provider", "cause", "hint", "rate_limit"), ANSWERS, ids=[a[0][:12] for a in ANSWERS])
def test_each_policy_refusal_has_a_cause_and_a_hint(answer: str, provider: str, cause: str, hint: str, rate_limit: bool) -> None:
    why = explain(answer)
    assert why is not None and why.provider == provider
    assert cause in why.cause and hint in why.hint
    assert why.rate_limit is rate_limit and why.about_sender


@pytest.mark.parametrize("answer", ["550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown",
                                    "552 5.2.2 Mailbox full", "250 2.0.0 OK queued", ""])
def test_answers_about_the_reader_are_not_explained_as_policy(answer: str) -> None:
    assert explain(answer) is None


def _dsn(recipient: str, status: str, diagnostic: str) -> bytes:
    return (
        "From: MAILER-DAEMON@relay.example.org\r\nTo: bounces@example.org\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n--b\r\n'
        "Content-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; relay.example.org\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\nDiagnostic-Code: smtp; {diagnostic}\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <news.0123456789abcdef0123@example.org>\r\n--b--\r\n"
    ).encode()


def test_a_policy_bounce_never_suppresses_the_reader_and_the_report_explains_it(project, tmp_path, monkeypatch) -> None:
    settings = project.settings()
    audience, ledger = Audience.from_settings(settings), Ledger.from_settings(settings)
    for address in ("ann@gmail.example", "bob@outlook.example", "gone@example.org"):
        audience.add(address=address, now=NOW, source="test")
    ledger.plan_audience(release="news", channel="email", tags=[], cadence="per-release", now=NOW)
    worker, rows = ledger.claim(release="news", channel="email", limit=10, now=NOW)
    ledger.advance(worker=worker, outcomes=[], begin=[r.id for r in rows], now=NOW)
    by_address = {r.recipient: r.id for r in rows}
    ledger.advance(worker=worker, now=NOW, begin=[], outcomes=[
        Outcome(id=by_address["ann@gmail.example"], state="sent", response="250 ok"),
        Outcome(id=by_address["gone@example.org"], state="sent", response="250 ok"),
        Outcome(id=by_address["bob@outlook.example"], state="failed",
                response="550 5.7.515 Access denied, sending domain EXAMPLE.ORG doesn't meet the required authentication level."),
    ])
    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    box.add(_dsn("ann@gmail.example", "5.7.26", "550-5.7.26 Unauthenticated email from example.org is not accepted due to"
                 " domain's DMARC policy."))
    box.add(_dsn("gone@example.org", "5.1.1", "550 5.1.1 User unknown"))
    report = scan_maildir(path=tmp_path / "bounces", audience=audience, ledger=ledger, now=NOW)
    assert report.suppressed == ["gone@example.org"]
    assert [p for p in report.problems if p.startswith("ann@gmail.example: Gmail: the message failed DMARC")]
    assert not audience.is_suppressed(address="ann@gmail.example")
    assert ledger.states(release="news", channel="email")["ann@gmail.example"] == "failed"

    monkeypatch.chdir(project.root)
    result = CliRunner().invoke(app, ["deliveries", "report", "--release", "news"])
    assert f"refused    1 x Gmail: the message failed DMARC: neither SPF nor DKIM passed aligned with the From domain (hint: {DMARC_HINT})" in result.output
    assert "refused    1 x Outlook.com: the sending domain does not meet the required authentication level" in result.output
    assert result.output.count("run pressroom doctor --dns") == 2


CLASSIFIED = [
    ("end", None, "", False, "held"),  # the connection failed before the data: the server's trouble
    ("end", None, "", True, "ambiguous"),  # the data went out and no answer came
    ("mail", 451, "4.3.0 Local error", False, "held"),  # MAIL FROM refused: the sender, whoever the reader
    ("mail", 553, "5.7.1 Sender address rejected", False, "held"),
    ("rcpt", 421, "4.3.2 Service shutting down", False, "held"),
    ("rcpt", 421, "4.7.28 Our system has detected an unusual rate of mail", False, "throttled"),
    ("rcpt", 451, "4.7.500 Server busy. Please try again later", False, "throttled"),
    ("end", 450, "4.7.1 Client host rejected: try again later", False, "throttled"),
    ("rcpt", 452, "4.2.2 Mailbox full, try later", False, "retry"),  # about this reader: spends an attempt
    ("end", 451, "4.3.0 Temporary local problem", False, "retry"),
    ("rcpt", 550, "5.1.1 No such user here", False, "rejected"),
    ("rcpt", 552, "5.2.2 Mailbox full", False, "mailbox"),
    ("end", 550, "5.7.26 Unauthenticated email is not accepted due to domain's DMARC policy", False, "failed"),
    ("end", 250, "2.0.0 OK", False, "sent"),
]


@pytest.mark.parametrize(("stage", "code", "text", "data_sent", "status"), CLASSIFIED, ids=[f"{c[0]}-{c[1]}-{c[4]}" for c in CLASSIFIED])
def test_an_answer_about_the_server_never_counts_against_the_reader(stage, code, text, data_sent, status) -> None:
    assert classify(stage, code, text, data_sent=data_sent) == status
