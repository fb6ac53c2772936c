"""Scale-out: more workers take a share of one big email send, through the ledger's claims.

A publish run sends a release's email itself. When the audience is larger than a few batches
and the run belongs to a deployment, :func:`share_send` also starts ``[ops] send_helpers`` runs
of the ``send`` deployment; other workers pick them up and drain the same (release, email)
queue. The ledger hands each batch to exactly one claimer (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL) and a batch whose worker died is taken over when its lease expires, so the helpers
add speed and never a duplicate.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.context import FlowRunContext

from pressroom.releases import Release
from pressroom.settings import Settings, load_settings

__all__ = ["send_share", "share_send"]

SEND_DEPLOYMENT = "send-share/send"


def share_send(*, release: Release, settings: Settings, audience_size: int, settings_file: str | None = None) -> int:
    """Start helper runs for ``release``'s email when it is big enough to share; returns how many started.

    Does nothing outside a deployment run (``pressroom publish``, tests) or for an audience of a
    few batches; a missing ``send`` deployment is logged, never fatal: the run sends alone.
    """
    context = FlowRunContext.get()
    helpers = settings.ops.send_helpers
    if not helpers or context is None or context.flow_run is None or context.flow_run.deployment_id is None:
        return 0
    if audience_size <= 2 * settings.email.batch_size:
        return 0
    from prefect.deployments import run_deployment

    logger = get_run_logger()
    started = 0
    for _ in range(helpers):
        try:
            run_deployment(
                SEND_DEPLOYMENT,
                parameters={"release": release.slug, "settings_file": settings_file},
                timeout=0,  # fire and forget: the helper and this run drain the same queue
                as_subflow=False,
            )
        except Exception as exc:  # noqa: BLE001 - sharing is an optimisation; sending alone still works
            logger.warning("could not start a helper for %s: %s", release.slug, exc)
            break
        started += 1
    logger.info("%d helper run(s) share the email of %s (%d recipients)", started, release.slug, audience_size)
    return started


@flow(name="send-share", log_prints=False)
def send_share(release: str, settings_file: str | None = None, wait_seconds: float = 120.0) -> dict[str, int]:
    """Take a share of one release's planned email deliveries until none is left to claim.

    Waits up to ``wait_seconds`` for the publish run to plan the deliveries, then runs the
    same fan-out as the publish run's email step (batch tasks, progress and table artifacts).
    """
    from flows.email import SendJob, fan_out, run_id
    from flows.ops import resolve_secrets
    from pressroom.ledger import Ledger
    from pressroom.releases import load_releases

    logger = get_run_logger()
    settings = resolve_secrets(load_settings(Path(settings_file) if settings_file else None))
    subject = next((r for r in load_releases(settings).releases if r.slug == release), None)
    if subject is None or not subject.is_public(datetime.now(UTC)):
        logger.warning("release %s is not public here: nothing to share", release)
        return {"sent": 0}
    ledger = Ledger.from_settings(settings)
    deadline = time.monotonic() + wait_seconds
    while not ledger.is_planned(release=release, channel="email"):
        if time.monotonic() > deadline:
            logger.warning("the email of %s was never planned: nothing to share", release)
            return {"sent": 0}
        time.sleep(1.0)
    job = SendJob(settings=settings, key=release, releases=(subject,), run=run_id(), now=datetime.now(UTC))
    report = fan_out(job=job, ledger=ledger)
    logger.info("this helper sent %d of %s's emails; %s", report.sent_now, release, report.as_text())
    # What this run added, for the UI next to the publish run's own table.
    create_table_artifact(
        key=f"send-share-{release}"[:100],
        table=[{"release": release, "sent by this helper": report.sent_now, "sent in all": report.sent}],
        description=f"helper share of {release}: {report.sent_now} sent",
    )
    return {"sent": report.sent_now}
