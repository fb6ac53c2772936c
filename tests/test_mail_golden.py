"""Golden files: the text part and the headers of each kind of email, volatile values masked.

Regenerate after an intended change with ``REGEN_GOLDEN=1 pytest tests/test_mail_golden.py``
and review the diff like any other change.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
from pathlib import Path

import pytest

from pressroom.mail import Composed, compose_transactional
from tests.conftest import DATA
from tests.mail_support import READER, sample_emails

REGENERATE = os.environ.get("REGEN_GOLDEN") == "1"
MASKS = [
    (re.compile(r"^Date: .*$", re.M), "Date: <masked>"),
    (re.compile(r"={15}\d+=="), "<boundary>"),
    (re.compile(r"(confirm|welcome|unsubscribed)-\d{8}T\d{6}-[0-9a-f]{8}\.[0-9a-f]{20}"), r"\1-<time>-<nonce>.<hash>"),
]


def masked(text: str) -> str:
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


def check_golden(case: str, composed: Composed) -> None:
    data = composed.message(READER)
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii").replace("\r\n", "\n") + "\n"
    text = email.message_from_bytes(data, policy=email.policy.default).get_body(("plain",)).get_content()
    actual = {"headers.txt": masked(head), "text.txt": masked(text.replace("\r\n", "\n"))}
    folder: Path = DATA / case
    if REGENERATE:
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in actual.items():
            (folder / name).write_text(content, encoding="utf-8")
    for name, content in actual.items():
        expected = (folder / name).read_text(encoding="utf-8")
        assert content == expected, f"{folder / name} differs; REGEN_GOLDEN=1 rewrites it after an intended change"


@pytest.mark.parametrize("kind", ["release", "digest"])
def test_release_and_digest_match_golden_files(project, kind) -> None:
    check_golden(f"mail-{kind}-sample", sample_emails(project)[kind])


def test_confirm_email_matches_golden_files(project) -> None:
    composed = compose_transactional(
        kind="confirm", settings=project.settings(), action_url="https://press.example.org/confirm?token=abc.def"
    )
    check_golden("mail-confirm", composed)
