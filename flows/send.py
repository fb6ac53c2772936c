"""Sending from the flows: Prefect tasks as the workers of one send, and helper runs on other workers.

The core plans and drains (:func:`pressroom.dispatch.deliver`). Here a big send is shared:
``email.workers`` tasks drain it at once (threads, or worker processes with ``email.processes``),
each a worker of the same ledger queue, with a progress artifact while they run and a table
artifact at the end. When a publish run of a deployment first plans a release's email for more
than a few batches, ``[ops] send_helpers`` runs of the ``send`` deployment (:func:`send_share`)
take a share too, on other workers: the ledger hands each batch to exactly one claimer
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and a batch whose worker died is taken over when its
lease expires, so helpers add speed and never a duplicate.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from pressroom.dispatch import DeliveryReport, DispatchResult, Drain, ReleaseEmail, share
from pressroom.errors import PressroomError, TransientError
from pressroom.releases import load_releases, slugify
from pressroom.settings import Settings

from flows.credentials import settings_from

__all__ = ["TaskWorkers", "only_transient", "run_id", "send_share", "start_helpers"]

SEND_DEPLOYMENT = "send-share/send"


def only_transient(task, task_run, state) -> bool:  # Prefect's retry_condition_fn signature
    """Retry a task only when it failed with a TransientError (a database hiccup, a server away)."""
    try:
        state.result()
    except TransientError:
        return True
    except Exception:  # anything else is not worth a retry
        return False
    return False


def run_id() -> str:
    """This flow run's id (the ledger attributes sends to it), or a fresh one outside Prefect."""
    context = FlowRunContext.get()
    if context is not None and context.flow_run is not None:
        return str(context.flow_run.id)
    return uuid.uuid4().hex


@task(name="send", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=only_transient)
def drain_task(drain: Drain) -> DispatchResult:
    """One worker of the send loop on one (release, channel) until nothing is due."""
    return drain()


@dataclass
class TaskWorkers:
    """:class:`pressroom.dispatch.Workers` as Prefect tasks: a drain shared by ``email.workers`` tasks
    at once, never more threads or processes than that."""

    settings: Settings
    settings_file: str | None = None  # what helper runs read, as this run did

    def run(self, drain: Drain, *, count: int, planned: int | None,
            progress: Callable[[], tuple[int, int]]) -> list[DispatchResult | PressroomError]:
        if planned and isinstance(drain.send, ReleaseEmail):
            start_helpers(slug=drain.send.key, settings=self.settings, settings_file=self.settings_file, planned=planned)
        label = f"{drain.send.channel} {drain.send.key}"
        sent, total = progress()
        artifact = create_progress_artifact(progress=0.0, description=f"{label}: {sent} of {total} sent")
        runner_type = ProcessPoolTaskRunner if self.settings.email.processes else ThreadPoolTaskRunner
        with runner_type(max_workers=count) as runner:
            futures = [runner.submit(drain_task, parameters={"drain": drain}) for _ in range(count)]
            running = list(futures)
            while running:
                running[0].wait(timeout=1.0)
                running = [future for future in running if not future.state.is_final()]
                sent, _ = progress()
                update_progress_artifact(artifact_id=artifact, progress=100.0 * sent / max(total, 1),
                                         description=f"{label}: {sent} of {total} sent")
            results: list[DispatchResult | PressroomError] = []
            for future in futures:
                try:
                    results.append(future.result())
                except PressroomError as exc:  # the core reports it; the other sends go on
                    results.append(exc)
        update_progress_artifact(artifact_id=artifact, progress=100.0, description=f"{label}: done")
        return results

    def finished(self, report: DeliveryReport) -> None:
        key = f"{report.channel}-{slugify(report.release or '')}"[:100]
        create_table_artifact(key=key, table=report.as_rows(), description=report.as_text())
        if report.problems:
            create_table_artifact(
                key=f"{key}-problems"[:100],
                table=[{"recipient": r, "state": s, "server answer": a[:300]} for _, r, s, a in report.problems],
                description=f"{report.channel} {report.release}: recipients not (yet) sent",
            )


def start_helpers(*, slug: str, settings: Settings, settings_file: str | None, planned: int) -> int:
    """Start helper runs for ``slug``'s email when it is big enough to share; returns how many started.

    Does nothing outside a deployment run (``pressroom publish``, tests) or for an audience of a
    few batches; a missing ``send`` deployment is logged, never fatal: the run sends alone.
    """
    context = FlowRunContext.get()
    helpers = settings.ops.send_helpers
    if not helpers or context is None or context.flow_run is None or context.flow_run.deployment_id is None:
        return 0
    if planned <= 2 * settings.email.batch_size:
        return 0
    from prefect.deployments import run_deployment

    logger = get_run_logger()
    started = 0
    for _ in range(helpers):
        try:
            run_deployment(
                SEND_DEPLOYMENT,
                parameters={"release": slug, "settings_file": settings_file},
                timeout=0,  # fire and forget: the helper and this run drain the same queue
                as_subflow=False,
            )
        except Exception as exc:  # sharing is an optimisation; sending alone still works
            logger.warning("could not start a helper for %s: %s", slug, exc)
            break
        started += 1
    logger.info("%d helper run(s) share the email of %s (%d recipients)", started, slug, planned)
    return started


@flow(name="send-share", log_prints=False)
def send_share(release: str, settings_file: str | None = None, wait_seconds: float = 120.0) -> dict[str, int]:
    """Take a share of one release's planned email deliveries until none is left to claim.

    Waits up to ``wait_seconds`` for the publish run to plan them (only the run that decided plans),
    then drains the same queue with the same workers as the publish run's email step.
    """
    logger = get_run_logger()
    settings = settings_from(settings_file)
    now = datetime.now(UTC)
    subject = next((r for r in load_releases(settings).releases if r.slug == release), None)
    if subject is None or not subject.is_public(now):
        logger.warning("release %s is not public here: nothing to share", release)
        return {"sent": 0}
    delivered = share(ReleaseEmail(subject), settings=settings, now=now, run_id=run_id(), wait_seconds=wait_seconds,
                      workers=TaskWorkers(settings=settings, settings_file=settings_file))
    if delivered is None:
        logger.warning("the email of %s was never planned: nothing to share", release)
        return {"sent": 0}
    report = delivered.report
    logger.info("this helper sent %d of %s's emails; %s", report.sent_now, release, report.as_text())
    # What this run added, for the UI next to the publish run's own table.
    create_table_artifact(
        key=f"send-share-{release}"[:100],
        table=[{"release": release, "sent by this helper": report.sent_now, "sent in all": report.sent}],
        description=f"helper share of {release}: {report.sent_now} sent",
    )
    return {"sent": report.sent_now or 0}
