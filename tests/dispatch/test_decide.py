"""The core decides before anything is gated, planned or sent; a database that is down is one line."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

from pressroom.dispatch import email_decision, social_decision
from pressroom.dispatch.decide import Decision
from pressroom.releases import load_releases
from pressroom.settings import SocialAccount
from tests.conftest import NOW, REPO

APPROVAL = """
approval_required = true
editors = ["editor@example.org"]
max_age_days = 30
"""


def _approval_project(project):
    with (project.root / "pressroom.toml").open("a") as handle:
        handle.write(APPROVAL)  # [email] is the last table of the test settings
    project.write_release("off", date="2024-07-30 09:00", extra="email: {enabled: false}\n")
    project.write_release("old", date="2024-05-01 09:00")
    project.write_release("fresh", date="2024-07-31 09:00")
    return project.settings()


def test_decisions_skip_before_asking_an_editor(project) -> None:
    settings = _approval_project(project)
    releases = {r.slug: r for r in load_releases(settings).releases}

    def decide(slug: str, planned: bool = False) -> Decision:
        return email_decision(release=releases[slug], settings=settings, first_seen=NOW, planned=planned)

    assert decide("off").action == "skip" and "enabled: false" in decide("off").reason
    assert decide("old").action == "skip" and "92 days old" in decide("old").reason
    assert decide("fresh").action == "approve"
    # A send that was planned (approved, or before the rule) only finishes; it is never gated again.
    assert decide("fresh", planned=True).action == "send" and decide("old", planned=True).action == "send"
    account = SocialAccount(network="outbox", max_age_days=30)
    assert social_decision(release=releases["old"], account=account, forms=("mastodon",), planned=False, now=NOW).reason \
        == "older than 30 days"
    assert social_decision(release=releases["fresh"], account=account, forms=("mastodon",), planned=False,
                           now=NOW + timedelta(days=1)).action == "send"


def test_a_release_that_will_not_be_emailed_sends_no_proof_and_never_pauses(project, prefect_harness) -> None:
    from flows.publish import publish

    settings = _approval_project(project)
    os.remove(project.releases / "fresh.md")  # only the two that must never reach an editor
    summary = publish(settings_file=str(project.root / "pressroom.toml"), now=NOW)
    skipped = {report.release: report.skipped for report in summary.email}
    assert "email: {enabled: false}" in skipped["off"]
    assert "email.max_age_days" in skipped["old"]
    outbox = settings.path("var") / "outbox" / "email"
    assert not any(outbox.rglob("*.eml")), "a proof or an email went out for a release that is not emailed"
    assert "skipped (the release says email: {enabled: false})" in summary.as_text()


def test_publish_with_the_database_down_prints_one_line(project) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESSROOM_")}
    env["PRESSROOM_DATABASE_URL"] = "postgresql+psycopg://postgres@127.0.0.1:9/pressroom"  # nothing listens on port 9
    result = subprocess.run(
        [sys.executable, "-c", "from pressroom.cli import main; main()", "publish", "--settings", str(project.root / "pressroom.toml")],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "127.0.0.1:9" in lines[0] and "running and reachable" in lines[0]
