"""The whole publish pipeline without Prefect, for the embargo tests: the core calls the flows wrap."""

from __future__ import annotations

import io
from datetime import datetime

from pressroom.audience import Audience, MediaList
from pressroom.dispatch import digest_releases, post_releases, release_email, send_email
from pressroom.dispatch.embargo import run_embargo
from pressroom.ledger import Ledger
from pressroom.releases import load_releases, public_releases
from pressroom.settings import Settings
from pressroom.site import build_site

JOURNALISTS = """address,name,outlet,beats,language,country
energy@example.com,Erin Energy,Example Daily,energy,en,BE
sport@example.com,Sam Sport,Example Sports,sport,en,DE
everything@example.com,Evi Every,Example Wire,,en,SE
"""


def seed(settings: Settings, now: datetime) -> None:
    """Three journalists (energy, sport, every beat) and two subscribers."""
    assert MediaList.from_settings(settings).import_csv(file=io.StringIO(JOURNALISTS), now=now).added == 3
    audience = Audience.from_settings(settings)
    audience.add(address="reader@example.org", now=now, source="test")
    audience.add(address="weekly@example.org", now=now, source="test", cadence="weekly")


def publish_once(settings: Settings, now: datetime, *, transport=None) -> list:  # noqa: ANN001
    """What one run of the publish flow does, in its order, plus the weekly digest's choice."""
    loaded = load_releases(settings)
    public = public_releases(loaded.releases, now)
    build_site(settings=settings, releases=loaded.releases, now=now)
    ledger = Ledger.from_settings(settings)
    ledger.record_public(releases=public, now=now)
    post_releases(releases=public, settings=settings, ledger=ledger, now=now)
    run_embargo(releases=loaded.releases, settings=settings, ledger=ledger, now=now, transport=transport)
    for release in public:
        ledger.plan_audience(release=release.slug, channel="email", tags=release.tag_slugs, cadence="per-release", now=now)
        send_email(channel=release_email(release=release, settings=settings), ledger=ledger, release=release.slug)
    return digest_releases(releases=loaded.releases, settings=settings, now=now, first_seen=ledger.first_published(),
                           approved=lambda release: True)
