"""Helpers for the mail tests: the shipped sample release inside a throw-away project; an email against its golden files."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
from datetime import UTC, datetime, timedelta

from pressroom.mail import Composed, Recipient, compose_digest, compose_release
from pressroom.releases import Release, load_releases
from pressroom.settings import Settings
from tests.conftest import DATA, REPO, Project
from tests.golden import assert_golden

SAMPLE_SLUG = "international-day-of-friendship-cluster-hub"
# The Monday-to-Monday week (Europe/Brussels) that holds the sample release.
WEEK_START = datetime(2024, 7, 28, 22, 0, tzinfo=UTC)
WEEK_END = WEEK_START + timedelta(days=7)

READER = Recipient(
    address="zoe.martin@example.net",
    name="Zoë Martin",
    unsubscribe_url="https://press.example.org/unsubscribe?token=eyJzIjoxMjN9.c2lnbmF0dXJl",
    preferences_url="https://press.example.org/preferences?token=eyJzIjoxMjN9.c2lnbmF0dXJl",
)


def sample_project(project: Project) -> tuple[Settings, list[Release]]:
    """The repo's sample release (with its hero image and co-issuers) plus a second, shorter one for the digest."""
    shutil.copytree(REPO / "content" / "releases" / SAMPLE_SLUG, project.releases / SAMPLE_SLUG)
    shutil.copytree(REPO / "content" / "organisations", project.root / "content" / "organisations")  # its co-issuers
    project.write_release(
        "pilot-plant-recovers-lithium",
        title="Pilot plant recovers its first tonne of battery-grade lithium",
        date="2024-08-01 10:00",
        extra="summary: Partners in Ghent report a first tonne of lithium carbonate from recycled cells.\n",
        body="The pilot line in Ghent has produced **one tonne** of lithium carbonate.\n",
    )
    settings = project.settings()
    result = load_releases(settings)
    assert not result.problems, result.problems
    return settings, result.releases


def sample_emails(project: Project) -> dict[str, Composed]:
    settings, releases = sample_project(project)
    sample = next(r for r in releases if r.slug == SAMPLE_SLUG)
    return {
        "release": compose_release(release=sample, settings=settings),
        "digest": compose_digest(releases=releases, settings=settings, period_start=WEEK_START, period_end=WEEK_END),
    }


# What changes from run to run in an email, masked so its golden files change only when the email does.
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
    """The email's headers and text part, as READER gets it, against tests/data/<case>/."""
    data = composed.message(READER)
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii").replace("\r\n", "\n") + "\n"
    text = email.message_from_bytes(data, policy=email.policy.default).get_body(("plain",)).get_content()
    assert_golden(DATA / case, {"headers.txt": masked(head), "text.txt": masked(text.replace("\r\n", "\n"))})
