"""Golden files: the text part and the headers of each kind of email, volatile values masked.

Regenerate after an intended change with ``REGEN_GOLDEN=1 pytest tests/mail/test_golden.py``
and review the diff like any other change.
"""

from __future__ import annotations

import pytest

from pressroom.mail import compose_transactional
from tests.mail_support import check_golden, sample_emails


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
