"""Golden files: the text part and the headers of each kind of email, volatile values masked.

Regenerate after an intended change with ``REGEN_GOLDEN=1 pytest tests/mail/test_golden.py``
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


def test_a_table_in_the_text_part_is_laid_out_in_aligned_columns(project) -> None:
    from pressroom.mail import compose_release
    from pressroom.releases import load_releases

    project.write_release(
        "figures",
        title="Quarterly figures",
        body=(
            "The results by quarter:\n\n"
            "| Quarter | Revenue (EUR) | Change |\n|:---|---:|:---:|\n"
            "| Q1 2023 | 1,200,000 | +4 % |\n| Q2 2023 | 980,000 | −18 % |\n\n"
            "And by site, too wide for 72 columns, so one record per row:\n\n"
            "| Site | Recovered lithium in tonnes | Partners in the consortium |\n|---|---:|---|\n"
            "| Ghent | 12.5 | Umicore, Ghent University and the regional development agency |\n"
        ),
    )
    settings = project.settings()
    (release,) = load_releases(settings).releases
    check_golden("mail-release-table", compose_release(release=release, settings=settings))
