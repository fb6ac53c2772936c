"""The email step of the publish and digest flows: Prefect tasks around :mod:`pressroom.dispatch`.

Whether a release is emailed is decided in the core (:func:`pressroom.dispatch.email_decision`)
before this runs. Here: the plan is one task; the send is ``email.workers`` tasks of the one
dispatch loop at once (threads, or worker processes with ``email.processes``), each a worker
of the same ledger queue, with a progress artifact while they run and a table artifact at the end.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import datetime

from prefect import task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from pressroom.dispatch import DispatchResult, EmailChannel, digest_email, release_email, send_email
from pressroom.errors import PressroomError, TransientError
from pressroom.ledger import DeliveryReport, Ledger
from pressroom.releases import Release
from pressroom.settings import Settings

__all__ = ["SendJob", "fan_out", "only_transient", "plan_audience", "run_id", "send_release"]

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


def run_id() -> str:
    """This flow run's id (the ledger attributes sends to it), or a fresh one outside Prefect."""
    context = FlowRunContext.get()
    if context is not None and context.flow_run is not None:
        return str(context.flow_run.id)
    return uuid.uuid4().hex


@task(name="plan email audience", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 20],
      retry_condition_fn=only_transient)
def plan_audience(*, ledger: Ledger, release: Release, now: datetime) -> int | None:
    """Plan the per-release audience of ``release`` once; ``None`` when it was planned before."""
    return ledger.plan_audience(release=release.slug, channel=CHANNEL, tags=release.topics,
                                cadence="per-release", now=now)


@dataclass(frozen=True)
class SendJob:
    """Everything a send task needs, picklable, so tasks can run in threads or in worker processes.

    ``releases`` is the one release of a release email, or the releases of digest ``key``
    (then ``period`` is set). ``run`` is the flow run the sends are attributed to.
    """

    settings: Settings
    key: str
    releases: tuple[Release, ...]
    run: str
    now: datetime
    period: tuple[datetime, datetime] | None = None


_channels: dict[str, EmailChannel] = {}
_channels_lock = threading.Lock()


def _channel(job: SendJob) -> EmailChannel:
    """Per process, once per job: the composed email (MJML runs once) and the transport."""
    cache_key = f"{job.key}\n{job.settings.model_dump_json()}"
    with _channels_lock:
        if cache_key not in _channels:
            if job.period is None:
                _channels[cache_key] = release_email(release=job.releases[0], settings=job.settings)
            else:
                _channels[cache_key] = digest_email(releases=job.releases, settings=job.settings, key=job.key,
                                                    period=job.period, ledger=Ledger.from_settings(job.settings))
        return _channels[cache_key]


@task(name="send email", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=only_transient)
def send_task(job: SendJob) -> DispatchResult:
    """One worker of the dispatch loop on (job.key, email) until nothing is due."""
    return send_email(channel=_channel(job), ledger=Ledger.from_settings(job.settings), release=job.key,
                      run_id=job.run, now=job.now)


def fan_out(*, job: SendJob, ledger: Ledger) -> DeliveryReport:
    """Send every due row of (job.key, email) with ``email.workers`` workers; artifacts on the way.

    Returns the ledger's report; ``sent_now`` counts what this run sent itself, so runs that
    share one send each report their own share.
    """
    settings, key = job.settings, job.key
    planned = ledger.report(release=key, channel=CHANNEL, problems=0).total
    slug = "".join(ch if ch.isalnum() else "-" for ch in key.lower()).strip("-")
    progress = create_progress_artifact(progress=0.0, description=f"email {key}: 0 of {planned} sent")
    runner_type = ProcessPoolTaskRunner if settings.email.processes else ThreadPoolTaskRunner
    error = ""
    with runner_type(max_workers=settings.email.workers) as runner:
        futures = [runner.submit(send_task, parameters={"job": job}) for _ in range(settings.email.workers)]
        running = list(futures)
        while running:
            running[0].wait(timeout=1.0)
            running = [future for future in running if not future.state.is_final()]
            sent = ledger.report(release=key, channel=CHANNEL, problems=0).sent
            update_progress_artifact(artifact_id=progress, progress=100.0 * sent / max(planned, 1),
                                     description=f"email {key}: {sent} of {planned} sent")
        for future in futures:
            try:
                future.result()
            except PressroomError as exc:
                # One release that cannot be sent (a refused SMTP login) must not stop the other
                # releases and channels; its rows stay due for the next run.
                error = error or str(exc)
    report = ledger.report(release=key, channel=CHANNEL, run_id=job.run)
    report.error = error
    update_progress_artifact(artifact_id=progress, progress=100.0, description=f"email {key}: {report.as_text()}")
    create_table_artifact(key=f"email-{slug}"[:100], table=report.as_rows(), description=report.as_text())
    if report.problems:
        create_table_artifact(
            key=f"email-{slug}-problems"[:100],
            table=[{"recipient": r, "state": s, "server answer": a[:300]} for _, r, s, a in report.problems],
            description=f"email {key}: recipients not (yet) sent",
        )
    return report


def send_release(*, release: Release, settings: Settings, ledger: Ledger, now: datetime,
                 settings_file: str | None = None) -> DeliveryReport:
    """Plan ``release``'s audience once and send what is due; a release sent before costs two queries.

    Call it only after :func:`pressroom.dispatch.email_decision` said send (and an editor
    approved, where asked). A big first send is shared with helper runs on other workers.
    """
    from flows.scale import share_send
    from pressroom.mail.transports import transport_for

    transport_for(settings=settings)  # an unknown transport fails here, before anything is planned
    if not ledger.is_planned(release=release.slug, channel=CHANNEL):
        planned = plan_audience(ledger=ledger, release=release, now=now)
        if planned:
            share_send(release=release, settings=settings, audience_size=planned, settings_file=settings_file)
    if ledger.outstanding(release=release.slug, channel=CHANNEL, now=now)[0] == 0:
        report = ledger.report(release=release.slug, channel=CHANNEL)
        report.sent_now = 0
        return report
    return fan_out(job=SendJob(settings=settings, key=release.slug, releases=(release,), run=run_id(), now=now), ledger=ledger)
