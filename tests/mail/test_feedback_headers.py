"""Feedback-ID (Gmail) and CFBL-Address / CFBL-Feedback-ID (RFC 9477) on bulk mail, signed by DKIM; doctor checks them."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta

import dkim
import pytest

from pressroom.doctor import check_message_headers, message_findings
from pressroom.mail import compose_digest, compose_release
from pressroom.mail.message import feedback_campaign
from pressroom.releases import load_releases
from tests.conftest import Project
from tests.dns_support import ZONES
from tests.mail_support import READER

KEY = ZONES / "dkim-press.pem"
RECORD = (ZONES / "dkim-press.txt").read_text().strip().replace('" "', "").strip('"').encode()
SIGNED = {"PRESSROOM_DKIM__DOMAIN": "example.org", "PRESSROOM_DKIM__SELECTOR": "press", "PRESSROOM_DKIM__KEY_FILE": str(KEY)}


def _dns(name: bytes, timeout: int = 5) -> bytes:
    assert name == b"press._domainkey.example.org."
    return RECORD


def _signed_headers(message: bytes) -> set[str]:
    signature = email.message_from_bytes(message, policy=email.policy.default)["DKIM-Signature"]
    tags = dict(part.strip().split("=", 1) for part in str(signature).split(";") if "=" in part)
    return {name.strip().lower() for name in "".join(tags["h"].split()).split(":")}


def test_release_email_carries_signed_feedback_headers(project: Project) -> None:
    project.write_release("signed", title="Signed news")
    settings = project.settings(**SIGNED, PRESSROOM_EMAIL__COMPLAINTS_ADDRESS="fbl@example.org")
    (release,) = load_releases(settings).releases
    message = compose_release(release=release, settings=settings).message(READER)
    parsed = email.message_from_bytes(message)
    assert parsed["Feedback-ID"] == "signed:release:releases.example.org"
    assert parsed["CFBL-Address"] == "fbl@example.org; report=arf"
    assert parsed["CFBL-Feedback-ID"] == parsed["Feedback-ID"]
    assert dkim.verify(message, dnsfunc=_dns)
    assert {"feedback-id", "cfbl-address", "cfbl-feedback-id"} <= _signed_headers(message)
    # A changed Feedback-ID breaks the signature: a receiver can trust the one it reads.
    forged = message.replace(b"Feedback-ID: signed:release", b"Feedback-ID: forged:release", 1)
    assert forged != message and not dkim.verify(forged, dnsfunc=_dns)


def test_digest_feedback_id_names_the_digest_and_no_cfbl_without_an_address(project: Project) -> None:
    project.write_release("weekly-one", title="One", date="2024-08-01 10:00")
    settings = project.settings(**SIGNED)
    releases = load_releases(settings).releases
    start = datetime(2024, 7, 28, 22, 0, tzinfo=UTC)
    message = compose_digest(releases=releases, settings=settings, period_start=start,
                             period_end=start + timedelta(days=7)).message(READER)
    parsed = email.message_from_bytes(message)
    assert parsed["Feedback-ID"] == "digest-2024-W31:digest:releases.example.org"
    assert "CFBL-Address" not in parsed
    assert dkim.verify(message, dnsfunc=_dns) and "feedback-id" in _signed_headers(message)


@pytest.mark.parametrize(("key", "expected"), [
    ("news", ("news", "release")),
    ("digest-2026-W49", ("digest-2026-W49", "digest")),
    ("embargo-news-1796630400", ("news", "embargo")),
    ("news-correction-2", ("news", "correction")),
    ("welcome-20261207T101010-ab12cd34", ("welcome", "welcome")),
])
def test_the_campaign_is_the_release(key: str, expected: tuple[str, str]) -> None:
    assert feedback_campaign(key) == expected


def test_a_complaints_address_that_is_not_an_address_is_refused(project: Project) -> None:
    from pressroom.errors import ConfigError

    with pytest.raises(ConfigError, match="complaints_address"):
        project.settings(PRESSROOM_EMAIL__COMPLAINTS_ADDRESS="fbl@example.org\r\nBcc: everyone@example.org")


def test_doctor_checks_a_composed_message(project: Project) -> None:
    project.write_release("signed", title="Signed news")
    [first, *rest] = check_message_headers(project.settings(**SIGNED, PRESSROOM_EMAIL__COMPLAINTS_ADDRESS="fbl@example.org"))
    assert first.ok and not rest, [f.line() for f in (first, *rest)]
    assert "carries Feedback-ID, CFBL-Address, CFBL-Feedback-ID under its DKIM signature" in first.message
    unsigned = check_message_headers(project.settings())
    assert all(f.ok for f in unsigned)
    assert any(f.advice and "not DKIM-signed" in f.message for f in unsigned)
    assert any(f.advice and "complaints_address" in f.hint for f in unsigned)


def test_doctor_names_a_feedback_header_left_out_of_the_signature(project: Project) -> None:
    project.write_release("signed", title="Signed news")
    settings = project.settings(**SIGNED, PRESSROOM_EMAIL__COMPLAINTS_ADDRESS="fbl@example.org")
    (release,) = load_releases(settings).releases
    message = compose_release(release=release, settings=settings).message(READER)
    # The signature as a builder that forgot CFBL-Address in h= would have made it.
    unsigned_cfbl = message.replace(b"feedback-id :\r\n cfbl-address : cfbl-feedback-id;", b"feedback-id : cfbl-feedback-id;", 1)
    assert unsigned_cfbl != message
    found = message_findings(unsigned_cfbl, settings=settings)
    assert [f.message for f in found if not f.ok] == ["CFBL-Address is not covered by the DKIM signature: providers ignore it"]
    stripped = message.replace(b"Feedback-ID: signed:release:releases.example.org\r\n", b"", 1)
    assert any(not f.ok and "has no Feedback-ID header" in f.message for f in message_findings(stripped, settings=settings))
