"""The social step of the publish flow: post each public release on every account, once.

The lead's publish flow calls :func:`post_release` (or :func:`post_social` for several
releases at once, sharing one HTTP client per network) after the release page is live,
because the networks fetch the card from it. Everything else lives in ``pressroom.social``.
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

__all__ = ["post_release", "post_social"]


# No Prefect retries: a failed post is recorded in the ledger as deferred (with the network's
# reset time) and the next scheduled run takes it up; a retry here would ignore that time.
@task(name="social posts", cache_policy=NO_CACHE, retries=0)
def post_social(*, releases: Sequence[Release], settings: Settings, ledger: Ledger, now: datetime) -> SocialReport:
    """Post every release in ``releases`` on every enabled account; a table artifact lists the post URLs."""
    report = post_releases(releases=releases, settings=settings, ledger=ledger, now=now)
    rows = report.as_rows()
    if rows:
        create_table_artifact(key="social-posts", table=rows, description=report.as_text())
    return report


def post_release(*, release: Release, settings: Settings, ledger: Ledger, now: datetime) -> SocialReport:
    """Post one release (call it after the release page is live)."""
    return post_social(releases=[release], settings=settings, ledger=ledger, now=now)
