"""The drop folder in the publish flow: files in content/inbox/ become drafts, and the editors hear of it once.

The import is :func:`pressroom.importer.inbox.import_inbox`; this task adds the run's artifact and the
editors' one email, sent through the staff channel of the ledger like proofs and alerts.
"""

from __future__ import annotations

from datetime import datetime

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from pressroom.dispatch import email_staff
from pressroom.importer.inbox import InboxReport, import_inbox
from pressroom.settings import Settings


@task(name="import the inbox", cache_policy=NO_CACHE)
def import_inbox_step(*, settings: Settings, now: datetime) -> InboxReport:
    """Import content/inbox/ into drafts (never published: their status is draft) and email the editors one list."""
    logger = get_run_logger()
    try:
        report = import_inbox(settings=settings, now=now)
    except OSError as exc:  # an inbox that cannot be read or written must not keep the releases from going out
        logger.error("inbox: not imported this run: %s", exc)
        return InboxReport()
    if report.waiting:
        logger.info("inbox: still being written, imported on a later run: %s", ", ".join(report.waiting))
    if report.empty:
        return report
    text = report.as_text(settings.root)
    create_markdown_artifact(key="inbox", markdown=f"# {report.subject()}\n\n```\n{text}\n```", description="drafts from the inbox")
    editors = list(settings.email.editors)
    if not editors:
        logger.warning("inbox: %s; no [email] editors to tell (set them in pressroom.toml)", report.subject())
        return report
    email_staff(settings=settings, key=report.key, to=editors, subject=report.subject(), text=text)
    return report
