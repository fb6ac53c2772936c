"""The weekly digest flow (entrypoint ``flows/digest.py:digest``): last week's releases, once, to weekly readers.

The period and the selection are the core's (:func:`pressroom.dispatch.digest_period`,
:func:`pressroom.dispatch.digest_releases`), so ``pressroom preview --digest`` shows exactly
what this sends: the previous week in the site time zone, Monday 00:00 to Monday 00:00; a
release belongs to the week in which Pressroom first saw it public. Each weekly subscriber
gets one email with the releases of that week that match their topics and that they have
not had yet in any cadence; the ledger keeps it once per (release, subscriber).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from pressroom.dispatch import digest_period, digest_releases
from pressroom.ledger import DeliveryReport, Ledger
from pressroom.mail.transports import transport_for
from pressroom.releases import Release, load_releases
from pressroom.settings import load_settings

from flows.approval import email_approved
from flows.email import CHANNEL, SendJob, fan_out, only_transient, run_id
from flows.ops import notify_failure, resolve_secrets

__all__ = ["digest"]


@task(name="plan digest audience", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 20],
      retry_condition_fn=only_transient)
def plan_digest(*, ledger: Ledger, key: str, releases: list[Release], now: datetime) -> int | None:
    """Plan the digest once: which weekly subscriber gets which of ``releases``."""
    return ledger.plan_digest(digest=key, items=[(r.slug, r.topics) for r in releases], now=now)


@flow(name="digest", log_prints=False, on_failure=[notify_failure], on_crashed=[notify_failure])
def digest(settings_file: str | None = None, now: datetime | None = None) -> DeliveryReport:
    """Send last week's digest to weekly subscribers; a rerun sends only what is still due."""
    settings = resolve_secrets(load_settings(Path(settings_file) if settings_file else None))
    now = now or datetime.now(UTC)
    start, end = digest_period(now=now, settings=settings)
    if not (settings.email.enabled and settings.digest.enabled):
        return DeliveryReport(release=None, channel=CHANNEL, skipped="email or digest is turned off in settings")
    transport_for(settings=settings)  # an unknown transport fails before anything is planned
    ledger = Ledger.from_settings(settings)
    releases = digest_releases(
        releases=load_releases(settings).releases, settings=settings, now=now, first_seen=ledger.first_published(),
        approved=lambda release: email_approved(release=release, settings=settings),
    )
    if not releases:
        return DeliveryReport(release=None, channel=CHANNEL, skipped=f"no release first published {start:%Y-%m-%d} to {end:%Y-%m-%d}")
    from pressroom.mail import digest_key

    key = digest_key(period_start=start, settings=settings)
    plan_digest(ledger=ledger, key=key, releases=releases, now=now)
    job = SendJob(settings=settings, key=key, releases=tuple(releases), period=(start, end), run=run_id(), now=now)
    report = fan_out(job=job, ledger=ledger)
    report.release = key
    return report
