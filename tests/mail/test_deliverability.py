"""Deliverability with the real tools: SpamAssassin (local rules) and DKIM (dkimpy) verification."""

from __future__ import annotations

import base64
import email
import email.policy
import re
import shutil
import subprocess
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pressroom.errors import ConfigError
from pressroom.mail import compose_release, compose_transactional
from pressroom.releases import load_releases
from tests.mail_support import READER, sample_emails

needs_spamassassin = pytest.mark.skipif(shutil.which("spamassassin") is None, reason="scripts/system-deps installs spamassassin")


def spam_score(message: bytes, home: Path) -> tuple[float, str]:
    """Score with ``spamassassin -L -t`` (local tests only); returns the score and the rule names."""
    home.mkdir(exist_ok=True)
    result = subprocess.run(
        ["spamassassin", "-L", "-t"], input=message, capture_output=True, timeout=120, check=True, env={"HOME": str(home), "PATH": "/usr/bin:/bin"}
    )
    report = result.stdout.decode("utf-8", "replace")
    status = re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+) .*?tests=(.*?)(?:autolearn|version)", report, re.M | re.S)
    assert status, report[:2000]
    return float(status.group(1)), " ".join(status.group(2).split())


@needs_spamassassin
@pytest.mark.parametrize("kind", ["release", "digest", "confirm"])
def test_spamassassin_scores_release_digest_and_confirm_at_most_half_a_point(project, tmp_path, kind) -> None:
    if kind == "confirm":
        composed = compose_transactional(kind="confirm", settings=project.settings(), action_url="https://press.example.org/confirm?token=abc")
    else:
        composed = sample_emails(project)[kind]
    message = composed.message(READER)
    score, rules = spam_score(message, tmp_path / "home")
    assert score <= 0.5, f"{kind} email scored {score}: {rules}"
    assert "HTML_FONT_LOW_CONTRAST" not in rules


@needs_spamassassin
def test_spamassassin_does_notice_a_white_on_white_preheader(project, tmp_path) -> None:
    """The check above can fail: the usual white-on-white preheader trick is penalised."""
    composed = sample_emails(project)["release"]
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"], msg["From"], msg["To"] = composed.subject, "press@example.org", READER.address
    msg.set_content(composed.text)
    hidden = '<div style="color:#ffffff;background:#ffffff;font-size:1px;">Preheader text you cannot see</div>'
    msg.add_alternative(composed.html.replace('<div class="pr-preheader"', hidden + '<div class="pr-preheader"', 1), subtype="html")
    _score, rules = spam_score(msg.as_bytes(), tmp_path / "home")
    assert "HTML_FONT_LOW_CONTRAST" in rules, rules


@pytest.fixture
def dkim_key(tmp_path: Path) -> tuple[Path, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "dkim.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    )
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return path, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def test_dkim_signature_verifies_and_covers_the_unsubscribe_headers(project, dkim_key) -> None:
    key_file, record = dkim_key
    project.write_release("signed", title="Signed news")
    settings = project.settings(
        PRESSROOM_DKIM__DOMAIN="example.org", PRESSROOM_DKIM__SELECTOR="press", PRESSROOM_DKIM__KEY_FILE=str(key_file)
    )
    (release,) = load_releases(settings).releases
    message = compose_release(release=release, settings=settings).message(READER)
    assert message.startswith(b"DKIM-Signature: ")

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"press._domainkey.example.org."
        return record

    assert dkim.verify(message, dnsfunc=dns)
    signed = email.message_from_bytes(message, policy=email.policy.default)["DKIM-Signature"]
    tags = dict(part.strip().split("=", 1) for part in signed.split(";") if "=" in part)
    covered = {name.strip().lower() for name in tags["h"].split(":")}
    assert {"from", "to", "subject", "list-unsubscribe", "list-unsubscribe-post", "message-id"} <= covered
    # A changed body (an altered unsubscribe link) no longer verifies.
    tampered = message.replace(b"token=3DeyJzIjoxMjN9", b"token=3DeyJzIjoxMjN8", 1)
    assert tampered != message and not dkim.verify(tampered, dnsfunc=dns)


def test_incomplete_dkim_settings_are_refused(project) -> None:
    project.write_release("x", title="X")
    settings = project.settings(PRESSROOM_DKIM__DOMAIN="example.org")
    (release,) = load_releases(settings).releases
    with pytest.raises(ConfigError, match="domain, selector and key_file"):
        compose_release(release=release, settings=settings)
