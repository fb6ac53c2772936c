"""The social step of the publish flow: post each public release on every account, once.

The publish flow calls :func:`post_social` after the release pages are live, because the
networks fetch the card from them. Deciding and sending live in ``pressroom.social`` and
``pressroom.dispatch``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from pressroom.ledger import Ledger
from pressroom.releases import Release
from pressroom.settings import Settings
from pressroom.social import SocialReport, post_releases

__all__ = ["post_social"]


# No Prefect retries: a failed post is recorded in the ledger as deferred (with the network's
# reset time) and the next scheduled run takes it up; a retry here would ignore that time.
@task(name="social posts", cache_policy=NO_CACHE, retries=0)
def post_social(*, releases: Sequence[Release], settings: Settings, ledger: Ledger, now: datetime) -> SocialReport:
    """Post every release in ``releases`` on every enabled account; a table artifact lists the post URLs."""
    from flows.email import run_id

    report = post_releases(releases=releases, settings=settings, ledger=ledger, now=now, run_id=run_id())
    rows = report.as_rows()
    if rows:
        create_table_artifact(key="social-posts", table=rows, description=report.as_text())
    return report
