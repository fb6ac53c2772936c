"""The publish flow: content/ -> validated releases -> public/ site and feeds -> ledger -> channels.

Run it once with ``pressroom publish``; deploy it every few minutes with prefect.yaml.
Invalid releases are reported in a markdown artifact and skipped: the good ones still publish.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from pressroom.dispatch import email_decision
from pressroom.ledger import DeliveryReport, Ledger
from pressroom.releases import LoadResult, Release, load_releases, public_releases
from pressroom.settings import Settings, load_settings
from pressroom.social import SocialReport
from pressroom.site import BuildReport, build_site

from flows.approval import approve_email
from flows.email import run_id, send_release
from flows.inbox import import_inbox_step
from flows.ops import notify_failure, resolve_secrets
from flows.social import post_social


@dataclass
class PublishSummary:
    """What one publish run did, for the CLI and the run's artifact."""

    now: datetime
    public: list[str] = field(default_factory=list)
    newly_public: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    build: BuildReport | None = None
    next_release: tuple[str, datetime] | None = None
    social: SocialReport | None = None
    email: list[DeliveryReport] = field(default_factory=list)
    after: list[DeliveryReport] = field(default_factory=list)  # corrections and withdrawal notices
    after_social: SocialReport | None = None  # correction replies, deletions of withdrawn releases' posts
    reminders: list[str] = field(default_factory=list)

    def as_markdown(self, settings: Settings) -> str:
        zone = settings.site.tz
        lines = [f"# Publish run at {self.now.astimezone(zone):%Y-%m-%d %H:%M %Z}", ""]
        lines.append(f"- public releases: **{len(self.public)}**; newly public this run: **{len(self.newly_public)}**")
        for slug in self.newly_public:
            lines.append(f"  - [{slug}]({settings.site.base_url}/releases/{slug}/)")
        if self.build is not None:
            lines.append(
                f"- site: {self.build.pages} pages; wrote {len(self.build.written)}, "
                f"unchanged {self.build.unchanged}, removed {len(self.build.removed)}"
            )
        for report in self.email:
            lines.append(f"- email {report.as_text()}")
        if self.social is not None:
            lines.append(f"- {self.social.as_text()}")
        for report in self.after:
            lines.append(f"- {report.channel} of {report.release}: {report.as_text()}")
        for result in self.after_social.results if self.after_social else []:
            lines.append(f"- {result.channel} of {result.release}: {result.state} ({result.detail})")
        lines += [f"- reminder: `{reminder}`" for reminder in self.reminders]
        if self.next_release:
            slug, when = self.next_release
            lines.append(f"- next scheduled publication: `{slug}` at {when.astimezone(zone):%Y-%m-%d %H:%M %Z}")
        if self.problems:
            lines += ["", f"## {len(self.problems)} release(s) skipped", "", "| problem |", "|---|"]
            lines += [f"| `{problem}` |" for problem in self.problems]
        return "\n".join(lines)

    def as_text(self) -> str:
        parts = [f"{len(self.public)} public, {len(self.newly_public)} newly public"]
        if self.build is not None:
            parts.append(f"site: wrote {len(self.build.written)}, unchanged {self.build.unchanged}")
        if self.email:
            parts.append("email: " + ", ".join(report.as_text() for report in self.email))
        if self.social is not None:
            parts.append(self.social.as_text())
        parts += [f"{report.channel} of {report.release}: {report.as_text()}" for report in self.after]
        parts += [f"{r.channel} of {r.release}: {r.state} ({r.detail})" for r in (self.after_social.results if self.after_social else [])]
        if self.next_release:
            parts.append(f"next: {self.next_release[0]} at {self.next_release[1].isoformat()}")
        text = "; ".join(parts)
        if self.problems:
            text += "\n" + "\n".join(f"skipped: {problem}" for problem in self.problems)
        text += "".join(f"\nreminder: {reminder}" for reminder in self.reminders)
        return text


@task(name="load releases", cache_policy=NO_CACHE)
def load_task(settings: Settings) -> LoadResult:
    return load_releases(settings)


@task(name="build site", cache_policy=NO_CACHE)
def build_task(settings: Settings, releases: list[Release], now: datetime) -> BuildReport:
    return build_site(settings=settings, releases=releases, now=now)


@task(name="record publications", cache_policy=NO_CACHE)
def record_task(ledger: Ledger, releases: list[Release], now: datetime) -> list[str]:
    return ledger.record_public(releases=releases, now=now)


@task(name="email preview", cache_policy=NO_CACHE)
def preview_task(settings: Settings, releases: list[Release]) -> None:
    """Write each newly public release's email preview to var/preview/ and link it in an artifact."""
    from pressroom.mail import compose_release
    from pressroom.mail.preview import CHROMIUM, write_files

    # Pictures when this worker has Chromium; HTML, text and .eml in any case.
    shots = Path(CHROMIUM).exists()
    lines = ["# Email previews", ""]
    for release in releases:
        if not release.channel("email").enabled:
            continue
        files = write_files(composed=compose_release(release=release, settings=settings), settings=settings,
                            releases=[release], shots=shots)
        links = ", ".join(f"[{path.name}]({path.as_uri()})" for path in files.all())
        lines.append(f"- **{release.title}**: {links}")
    if len(lines) > 2:
        create_markdown_artifact(key="email-preview", markdown="\n".join(lines), description="email previews")


@task(name="after publication", cache_policy=NO_CACHE)
def after_step(*, loaded: LoadResult, settings: Settings, ledger: Ledger,
               now: datetime) -> tuple[list[DeliveryReport], SocialReport, list[str]]:
    """Corrections and withdrawals to those who received a release (emails, replies, deleted posts);
    reminders of silent edits and deleted files; then what each public release says now, for the next run."""
    from flows.email import run_id
    from pressroom.dispatch.after import reminders, send_follow_ups
    from pressroom.social import follow_up_releases

    notes = reminders(loaded=loaded, ledger=ledger, now=now, root=settings.root)
    first_seen = ledger.first_published()
    published = [r for r in loaded.releases if r.slug in first_seen and (r.is_public(now) or r.shows_notice(now))]
    run = run_id()
    social = follow_up_releases(releases=published, settings=settings, ledger=ledger, now=now, first_seen=first_seen, run_id=run)
    reports = [
        report
        for release in published
        for report in send_follow_ups(release=release, settings=settings, ledger=ledger, now=now,
                                      first_seen=first_seen[release.slug], run_id=run)
    ]
    ledger.remember_texts(releases=public_releases(loaded.releases, now))
    return reports, social, notes


def _next_release(releases: list[Release], now: datetime) -> tuple[str, datetime] | None:
    upcoming = [r for r in releases if r.status == "approved" and r.date > now]
    if not upcoming:
        return None
    soonest = min(upcoming, key=lambda r: r.date)
    return soonest.slug, soonest.date


def email_step(*, release: Release, settings: Settings, ledger: Ledger, now: datetime, first_seen: datetime,
               settings_file: str | None) -> DeliveryReport:
    """The core decides (send, skip and why, or ask an editor) before anything is gated, planned or sent."""
    decision = email_decision(release=release, settings=settings, first_seen=first_seen,
                              planned=ledger.is_planned(release=release.slug, channel="email"))
    if decision.action == "approve":
        from pressroom.audience import Audience

        # Confirmed subscribers: an upper bound (topics and cadence narrow it) the editor sees
        # before anything is planned, so a rejected release leaves nothing queued.
        audience = Audience.from_settings(settings).count(status="confirmed")
        if not approve_email(release=release, settings=settings, audience_size=audience):
            return DeliveryReport(release=release.slug, channel="email",
                                  skipped=f"not approved by an editor (see the approval-{release.slug} artifact)")
    elif decision.skipped:
        return DeliveryReport(release=release.slug, channel="email", skipped=decision.reason)
    return send_release(release=release, settings=settings, ledger=ledger, now=now, settings_file=settings_file)


def embargo_step(*, releases: list[Release], settings: Settings, ledger: Ledger, now: datetime) -> list[DeliveryReport]:
    """The media list's emails due now (embargoed at the notify instant, moved, withdrawn); every run, so the
    scheduled flow sends at the notify instant. An editor approves first where approval is needed (the gate pauses
    the flow run, so this is no task)."""
    from pressroom.audience import MediaList
    from pressroom.dispatch.embargo import run_embargo

    def approved(release: Release) -> bool:
        return approve_email(release=release, settings=settings, audience_size=len(MediaList.from_settings(settings).reachable()))

    return run_embargo(releases=releases, settings=settings, ledger=ledger, now=now, approved=approved, run_id=run_id())


@flow(name="publish", log_prints=False, on_failure=[notify_failure], on_crashed=[notify_failure])
def publish(settings_file: str | None = None, now: datetime | None = None) -> PublishSummary:
    """Publish every approved, due release: site and feeds first, then each channel once."""
    settings = resolve_secrets(load_settings(Path(settings_file) if settings_file else None))
    now = now or datetime.now(UTC)
    import_inbox_step(settings=settings, now=now)  # drafts only: nothing of them is published until approved
    loaded = load_task(settings)
    public = public_releases(loaded.releases, now)
    summary = PublishSummary(
        now=now,
        public=[release.slug for release in public],
        problems=[problem.line_for_humans(settings.root) for problem in loaded.problems],
        next_release=_next_release(loaded.releases, now),
    )
    # The site goes first: email buttons and social cards link to pages that must already exist.
    summary.build = build_task(settings, loaded.releases, now)
    ledger = Ledger.from_settings(settings)
    summary.newly_public = record_task(ledger, public, now)
    preview_task(settings, [release for release in public if release.slug in summary.newly_public])
    # Every public release, not only the new ones: a crash between two steps must not leave a
    # channel undone. The ledger makes each send happen once, however often this runs.
    # Social before email: an editor's approval (flows/approval.py) holds back only the email.
    summary.social = post_social(releases=public, settings=settings, ledger=ledger, now=now)
    summary.email += embargo_step(releases=loaded.releases, settings=settings, ledger=ledger, now=now)
    first_seen = ledger.first_published()
    for release in public:
        summary.email.append(email_step(release=release, settings=settings, ledger=ledger, now=now,
                                        first_seen=first_seen.get(release.slug, now), settings_file=settings_file))
    summary.after, summary.after_social, summary.reminders = after_step(loaded=loaded, settings=settings, ledger=ledger, now=now)
    create_markdown_artifact(key="publish-summary", markdown=summary.as_markdown(settings), description="publish run")
    return summary
