"""Compose benchmark: render the sample release once, then personalise it for 100,000 recipients.

- compose: MJML -> HTML, text twin and MIME skeleton, once per release;
- per recipient: ``Composed.message(recipient)`` (checks, headers, slot values, join);
- naive: what the issue compares against, a full ``EmailMessage`` built per recipient from the
  already rendered HTML and text (set_content + add_alternative + as_bytes), timed on a sample;
- DKIM: ``message()`` with a 2048-bit RSA key configured (dkimpy), timed on a sample: the
  signature covers each recipient's own headers and body, so it cannot be shared.

Prints figures, asserts nothing. The last line is the one the issue asks for:
``compose: per_recipient_us=<n> naive_us=<n> speedup=<x>``
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pressroom.mail import Recipient, compose_release
from pressroom.releases import load_releases
from pressroom.settings import load_settings

REPO = Path(__file__).resolve().parent.parent

RECIPIENTS = 100_000
NAIVE_SAMPLE = 2_000
DKIM_SAMPLE = 500
NAMES = ["", "Ada Lovelace", "Zoë Martin", "O'Brien, Seán", "李雷", "Jean-Luc Picard"]


def recipients(count: int) -> list[Recipient]:
    return [
        Recipient(
            address=f"reader{i}@example{i % 97}.org",
            name=NAMES[i % len(NAMES)],
            unsubscribe_url=f"https://press.example.org/unsubscribe?token=r{i}.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
            preferences_url=f"https://press.example.org/preferences?token=r{i}.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
        )
        for i in range(count)
    ]


def naive_message(composed, recipient: Recipient, settings) -> bytes:
    """A full EmailMessage per recipient: the straightforward way, for comparison."""
    values = composed.personal_values(recipient)
    text = composed.text.replace("Hello,", values["greeting"])
    html = composed.html.replace("Hello,", values["greeting"])
    for slot in ("unsubscribe_url", "preferences_url"):
        text = text.replace(f"{settings.site.base_url}/", values[slot], 1)
        html = html.replace(f"{settings.site.base_url}/", values[slot], 1)
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = composed.subject
    msg["From"] = Address(display_name=settings.email.sender_name, addr_spec=settings.email.sender)
    msg["To"] = Address(display_name=recipient.name, addr_spec=recipient.address)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = composed.message_id(recipient.address)
    msg["List-Unsubscribe"] = f"<{values['unsubscribe_url']}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(text, cte="quoted-printable")
    msg.add_alternative(html, subtype="html", cte="quoted-printable")
    return msg.as_bytes()


def timed(function, items) -> float:
    start = time.perf_counter()
    for item in items:
        function(item)
    return (time.perf_counter() - start) / len(items) * 1e6


def main() -> None:
    settings = load_settings(REPO / "pressroom.toml", environ={})
    release = load_releases(settings).releases[0]
    start = time.perf_counter()
    composed = compose_release(release=release, settings=settings)
    cold_ms = (time.perf_counter() - start) * 1e3
    start = time.perf_counter()
    composed = compose_release(release=release, settings=settings)
    warm_ms = (time.perf_counter() - start) * 1e3
    size = len(composed.message(recipients(1)[0]))
    print(
        f"release {release.slug}: composed in {cold_ms:.1f} ms cold (templates compiled), {warm_ms:.1f} ms warm;"
        f" message {size / 1024:.1f} KiB"
    )
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (figures grow on a busy machine)")

    people = recipients(RECIPIENTS)
    per_recipient = timed(composed.message, people)
    print(f"personalise: {RECIPIENTS:,} recipients, {per_recipient:.1f} us each, {per_recipient * RECIPIENTS / 1e6:.2f} s in all")

    naive = timed(lambda r: naive_message(composed, r, settings), people[:NAIVE_SAMPLE])
    print(f"naive EmailMessage per recipient ({NAIVE_SAMPLE:,} sampled): {naive:.1f} us each")

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    with tempfile.TemporaryDirectory() as folder:
        key_file = Path(folder) / "dkim.pem"
        key_file.write_bytes(key)
        os.chmod(key_file, 0o600)
        signed_settings = load_settings(
            REPO / "pressroom.toml",
            environ={
                "PRESSROOM_DKIM__DOMAIN": "materialsforbatterieshub.eu",
                "PRESSROOM_DKIM__SELECTOR": "press",
                "PRESSROOM_DKIM__KEY_FILE": str(key_file),
            },
        )
        signed = compose_release(release=release, settings=signed_settings)
        dkim_us = timed(signed.message, people[:DKIM_SAMPLE])
    print(
        f"with DKIM (rsa-sha256, 2048-bit, dkimpy; {DKIM_SAMPLE} sampled): {dkim_us:.0f} us each"
        f" = {dkim_us / per_recipient:.0f}x unsigned; {dkim_us * RECIPIENTS / 1e6 / 60:.1f} min of one core per 100,000"
    )
    print(f"compose: per_recipient_us={per_recipient:.1f} naive_us={naive:.1f} speedup={naive / per_recipient:.1f}")


if __name__ == "__main__":
    main()
