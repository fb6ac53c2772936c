"""The social step of the publish flow: post each public release on every account, once.

The publish flow calls :func:`post_social` after the release pages are live, because the
networks fetch the card from them. Deciding and sending live in :mod:`pressroom.dispatch.social`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from pressroom.dispatch import SocialReport, post_releases
from pressroom.releases import Release, public_releases
from pressroom.settings import Settings

from flows.send import run_id

__all__ = ["post_social"]


# No Prefect retries: a failed post is recorded in the ledger as deferred (with the network's
# reset time) and the next scheduled run takes it up; a retry here would ignore that time.
@task(name="social posts", cache_policy=NO_CACHE, retries=0)
def post_social(*, releases: Sequence[Release], settings: Settings, now: datetime) -> SocialReport:
    """Post every release of ``releases`` public at ``now`` on every enabled account; a table artifact lists the post URLs."""
    report = post_releases(releases=public_releases(list(releases), now), settings=settings, now=now, run_id=run_id())
    rows = report.as_rows()
    if rows:
        create_table_artifact(key="social-posts", table=rows, description=report.as_text())
    return report
