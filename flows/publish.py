"""The publish flow: content/ -> validated releases -> public/ site and feeds -> each channel, once.

Run it once with ``pressroom publish``; deploy it every few minutes with prefect.yaml. Each step
is one core call: loading, building, recording, previews and the after-publication step are tasks;
the journalists' and the subscribers' emails are not, because an editor's gate may pause the run
there (their sends are tasks). Invalid releases are reported in a markdown artifact and skipped:
the good ones still publish.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from pressroom.dispatch import AfterPublication, after_publication, record_public, run_embargo, send_release_emails
from pressroom.releases import LoadResult, Release, load_releases
from pressroom.settings import Settings
from pressroom.site import BuildReport, build_site

from flows.alerts import notify_failure
from flows.approval import editor, waits
from flows.inbox import import_inbox_step
from flows.credentials import settings_from
from flows.send import TaskWorkers, run_id
from flows.social import post_social
from flows.summary import PublishSummary

__all__ = ["PublishSummary", "publish"]

# The releases whose reach each run shows: their posts are read back up to 7 days, their links clicked for weeks.
REACH_WINDOW = timedelta(days=31)


@task(name="load releases", cache_policy=NO_CACHE)
def load_task(settings: Settings) -> LoadResult:
    return load_releases(settings)


@task(name="build site", cache_policy=NO_CACHE)
def build_task(settings: Settings, releases: list[Release], now: datetime) -> BuildReport:
    return build_site(settings=settings, releases=releases, now=now)


@task(name="record publications", cache_policy=NO_CACHE)
def record_task(settings: Settings, releases: list[Release], now: datetime) -> list[str]:
    return record_public(settings=settings, releases=releases, now=now)


@task(name="email preview", cache_policy=NO_CACHE)
def preview_task(settings: Settings, releases: list[Release], slugs: list[str]) -> None:
    """Write the email preview of each release of ``slugs`` to var/preview/ and link it in an artifact."""
    from pressroom.mail import compose_release
    from pressroom.mail.preview import CHROMIUM, write_files

    # Pictures when this worker has Chromium; HTML, text and .eml in any case.
    shots = Path(CHROMIUM).exists()
    lines = ["# Email previews", ""]
    for release in (release for release in releases if release.slug in slugs and release.channel("email").enabled):
        files = write_files(composed=compose_release(release=release, settings=settings), settings=settings,
                            releases=[release], shots=shots)
        links = ", ".join(f"[{path.name}]({path.as_uri()})" for path in files.all())
        lines.append(f"- **{release.title}**: {links}")
    if len(lines) > 2:
        create_markdown_artifact(key="email-preview", markdown="\n".join(lines), description="email previews")


@task(name="reach", cache_policy=NO_CACHE)
def reach_task(settings: Settings, releases: list[Release], now: datetime) -> None:
    """Read back the social posts' counts that are due, and show the reach of the last month's releases."""
    from pressroom.reach import as_markdown, build_report, read_back, write_html

    recent = [release for release in releases if release.date >= now - REACH_WINDOW]
    read_back(settings=settings, releases=recent, now=now)
    made = build_report(settings=settings, releases=recent, period=None, now=now)
    write_html(made, settings=settings)
    create_markdown_artifact(key="reach", markdown=as_markdown(made), description="reach (aggregate counts, no one tracked)")


@task(name="after publication", cache_policy=NO_CACHE)
def after_task(settings: Settings, loaded: LoadResult, now: datetime) -> AfterPublication:
    return after_publication(loaded=loaded, settings=settings, now=now, run_id=run_id())


@flow(name="publish", log_prints=False, on_failure=[notify_failure], on_crashed=[notify_failure])
def publish(settings_file: str | None = None, now: datetime | None = None,
            wait_for_editor: bool | None = None) -> PublishSummary:
    """Publish every approved, due release: site and feeds first, then each channel once.

    ``wait_for_editor``: whether an email that needs an editor's approval holds the run until the
    answer. By default a deployment run waits; a run from the terminal says the email waits for an
    editor and ends, and a later run sends it once approved.
    """
    settings = settings_from(settings_file)
    now = now or datetime.now(UTC)
    import_inbox_step(settings=settings, now=now)  # drafts only: nothing of them is published until approved
    run, ask = run_id(), editor(settings, wait=waits(wait_for_editor))
    loaded = load_task(settings)
    summary = PublishSummary.start(loaded=loaded, settings=settings, now=now)
    # The site goes first: email buttons and social cards link to pages that must already exist.
    summary.build = build_task(settings, loaded.releases, now)
    summary.newly_public = record_task(settings, loaded.releases, now)
    preview_task(settings, loaded.releases, summary.newly_public)
    # Every public release, not only the new ones: a crash between two steps must not leave a
    # channel undone. The ledger makes each send happen once, however often this runs.
    # Social before email: an editor's approval holds back only the emails.
    summary.social = post_social(releases=loaded.releases, settings=settings, now=now)
    summary.email += run_embargo(releases=loaded.releases, settings=settings, now=now, ask=ask, run_id=run)
    summary.email += send_release_emails(releases=loaded.releases, settings=settings, now=now, ask=ask, run_id=run,
                                         workers=TaskWorkers(settings=settings, settings_file=settings_file))
    summary.after = after_task(settings, loaded, now)
    reach_task(settings, loaded.releases, now)
    create_markdown_artifact(key="publish-summary", markdown=summary.as_markdown(settings), description="publish run")
    return summary
