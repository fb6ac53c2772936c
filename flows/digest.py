"""The weekly digest flow (entrypoint ``flows/digest.py:digest``): last week's releases, once, to weekly readers.

The period and the selection are the core's (:func:`pressroom.dispatch.digest_due`), so
``pressroom preview --digest`` shows exactly what this sends: the previous week in the site time
zone, Monday 00:00 to Monday 00:00; a release belongs to the week in which Pressroom first saw it
public. Each weekly subscriber gets one email with the releases of that week that match their
topics and that they have not had yet in any cadence; the ledger keeps it once per (release,
subscriber). A release that needs an editor's approval goes only once approved.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow

from pressroom.dispatch import DeliveryReport, send_digest

from flows.alerts import notify_failure
from flows.approval import email_approved
from flows.credentials import settings_from
from flows.send import TaskWorkers, run_id

__all__ = ["digest"]


@flow(name="digest", log_prints=False, on_failure=[notify_failure], on_crashed=[notify_failure])
def digest(settings_file: str | None = None, now: datetime | None = None) -> DeliveryReport:
    """Send last week's digest to weekly subscribers; a rerun sends only what is still due."""
    settings = settings_from(settings_file)
    return send_digest(settings=settings, now=now or datetime.now(UTC), run_id=run_id(),
                       approved=lambda release: email_approved(release=release, settings=settings),
                       workers=TaskWorkers(settings=settings, settings_file=settings_file))
