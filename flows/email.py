"""The email step of the publish flow: each public release to its subscribers, once.

The publish flow calls :func:`send_release_email` for each public release after the site
is built. It plans the audience once (a task), then sends in batches of
``email.batch_size`` recipients per task, at most ``email.workers`` tasks at a time, with a
progress artifact while it runs and a table artifact at the end. The work itself lives in
:mod:`pressroom.delivery` and :mod:`pressroom.ledger`.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prefect import task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from pressroom.audience import Audience
from pressroom.delivery import BatchResult, Render, digest_personaliser, personaliser, send_batch
from pressroom.errors import PressroomError, TransientError
from pressroom.ledger import DeliveryReport, Ledger
from pressroom.mail.transports import Transport, transport_for
from pressroom.releases import Release
from pressroom.settings import Settings

__all__ = ["SendJob", "fan_out", "send_release_email"]

CHANNEL = "email"


def only_transient(task, task_run, state) -> bool:  # noqa: ANN001 - Prefect's retry_condition_fn signature
    """Retry a task only when it failed with a TransientError (a database hiccup, a server away)."""
    try:
        state.result()
    except TransientError:
        return True
    except Exception:  # noqa: BLE001 - anything else is not worth a retry
        return False
    return False


@task(name="plan email audience", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 20],
      retry_condition_fn=only_transient)
def plan_audience(*, ledger: Ledger, release: Release, now: datetime) -> int | None:
    """Plan the per-release audience of ``release`` once; ``None`` when it was planned before."""
    return ledger.plan_audience(release=release.slug, channel=CHANNEL, tags=release.tag_slugs,
                                cadence="per-release", now=now)


@dataclass(frozen=True)
class SendJob:
    """Everything a batch task needs, picklable, so batches can run in threads or in worker processes.

    ``releases`` is the one release of a release email, or the releases of digest ``key``
    (then ``period`` is set).
    """

    settings: Settings
    key: str
    releases: tuple[Release, ...]
    period: tuple[datetime, datetime] | None = None


_senders: dict[str, tuple[Ledger, Audience, Transport, Render]] = {}
_senders_lock = threading.Lock()


def _sender(job: SendJob) -> tuple[Ledger, Audience, Transport, Render]:
    """Per process, once per job: database handles, the transport and the composed email (MJML runs once)."""
    cache_key = f"{job.key}\n{job.settings.model_dump_json()}"
    with _senders_lock:
        if cache_key not in _senders:
            settings = job.settings
            ledger, audience = Ledger.from_settings(settings), Audience.from_settings(settings)
            if job.period is None:
                from pressroom.mail import compose_release

                render = personaliser(composed=compose_release(release=job.releases[0], settings=settings), settings=settings)
            else:
                render = digest_personaliser(releases=list(job.releases), settings=settings, ledger=ledger,
                                             key=job.key, period=job.period)
            _senders[cache_key] = (ledger, audience, transport_for(settings=settings), render)
        return _senders[cache_key]


@task(name="send email batch", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10],
      retry_condition_fn=only_transient)
def send_email_batch(job: SendJob) -> BatchResult:
    """Claim one batch of due recipients of ``job`` and send it."""
    ledger, audience, transport, render = _sender(job)
    return send_batch(settings=job.settings, ledger=ledger, audience=audience, release=job.key, render=render,
                      channel=CHANNEL, transport=transport)


def send_release_email(*, release: Release, settings: Settings, ledger: Ledger, now: datetime) -> DeliveryReport:
    """Email ``release`` to every confirmed per-release subscriber who chose it, exactly once.

    Call it for every public release on every run: a release already sent costs two queries
    and starts no task. Skipped (and said so in the report) when email is off, the release
    says ``email: {enabled: false}``, or it was older than ``email.max_age_days`` when
    Pressroom first saw it public. Weekly subscribers get it in the digest instead.
    """
    reason = _skip_reason(release=release, settings=settings, ledger=ledger, now=now)
    if reason:
        return DeliveryReport(release=release.slug, channel=CHANNEL, skipped=reason)
    transport_for(settings=settings)  # an unknown transport fails here, before anything is sent
    if not ledger.is_planned(release=release.slug, channel=CHANNEL):
        _seed_sample_audience(settings=settings, now=now)
        plan_audience(ledger=ledger, release=release, now=now)
    if ledger.outstanding(release=release.slug, channel=CHANNEL)[0] == 0:
        report = ledger.report(release=release.slug, channel=CHANNEL)
        report.sent_now = 0
        return report
    try:
        return fan_out(job=SendJob(settings=settings, key=release.slug, releases=(release,)), ledger=ledger)
    except PressroomError as exc:
        # One release that cannot be composed or sent (a broken template, a refused SMTP login)
        # must not stop the other releases and channels; its rows stay due for the next run.
        report = ledger.report(release=release.slug, channel=CHANNEL)
        report.error = str(exc)
        return report


def fan_out(*, job: SendJob, ledger: Ledger) -> DeliveryReport:
    """Send every due row of (job.key, email) in batch tasks; artifacts on the way.

    ``email.workers`` batches run at once: threads, or worker processes when
    ``email.processes`` is set (sending is CPU-bound, so processes use more than one core).
    Deferred rows are retried while they come due within ``email.retry_window_seconds``;
    later ones stay deferred for the next run.
    """
    settings, key = job.settings, job.key
    before = ledger.report(release=key, channel=CHANNEL, problems=0)
    planned = before.total
    slug = "".join(ch if ch.isalnum() else "-" for ch in key.lower()).strip("-")
    progress = create_progress_artifact(progress=0.0, description=f"email {key}: 0 of {planned} sent")
    deadline = time.monotonic() + settings.email.retry_window_seconds
    workers = settings.email.workers
    runner_type = ProcessPoolTaskRunner if settings.email.processes else ThreadPoolTaskRunner
    with runner_type(max_workers=workers) as runner:
        while True:
            remaining, due = ledger.outstanding(release=key, channel=CHANNEL)
            if not remaining:
                break
            wait = 0.0 if due is None else (due - datetime.now(UTC)).total_seconds()
            if wait > 0:
                if time.monotonic() + wait > deadline:
                    break  # the rest is deferred past this run's patience; the next run takes it up
                time.sleep(min(wait, 5.0))
                continue
            # Waves of a few batches per worker, so the progress artifact moves while a big send runs.
            wave = min(math.ceil(remaining / settings.email.batch_size), workers * 4)
            futures = [
                runner.submit(send_email_batch, parameters={"job": job}) for _ in range(wave)
            ]
            claimed = sum(future.result().claimed for future in futures)
            sent = ledger.report(release=key, channel=CHANNEL, problems=0).sent
            update_progress_artifact(artifact_id=progress, progress=100.0 * sent / max(planned, 1),
                                     description=f"email {key}: {sent} of {planned} sent")
            if not claimed and time.monotonic() > deadline:
                break
    report = ledger.report(release=key, channel=CHANNEL)
    report.sent_now = report.sent - before.sent
    update_progress_artifact(artifact_id=progress, progress=100.0, description=f"email {key}: {report.as_text()}")
    create_table_artifact(key=f"email-{slug}"[:100], table=report.as_rows(), description=report.as_text())
    if report.problems:
        create_table_artifact(
            key=f"email-{slug}-problems"[:100],
            table=[{"recipient": r, "state": "ambiguous" if s == "sending" else s, "server answer": a[:300]}
                   for _, r, s, a in report.problems],
            description=f"email {key}: recipients not (yet) sent",
        )
    return report


def _skip_reason(*, release: Release, settings: Settings, ledger: Ledger, now: datetime) -> str:
    if not settings.email.enabled:
        return "email is turned off in settings (email.enabled = false)"
    if not release.channel("email").enabled:
        return "the release says email: {enabled: false}"
    if settings.email.max_age_days is not None:
        first_seen = ledger.first_published().get(release.slug, now)
        if first_seen - release.date > timedelta(days=settings.email.max_age_days):
            return f"it was already {(first_seen - release.date).days} days old when first seen public (email.max_age_days)"
    return ""


def _seed_sample_audience(*, settings: Settings, now: datetime) -> None:
    # The sample list of a fresh clone (audience.seed_csv) goes in only while there is no subscriber at all.
    if settings.audience.seed_csv is not None:
        path = settings.audience.seed_csv
        Audience.from_settings(settings).seed_if_empty(file=path if path.is_absolute() else settings.root / path, now=now)
