"""The whole publish pipeline without Prefect, for the embargo tests: the core calls the flows wrap."""

from __future__ import annotations

import io
from datetime import datetime

from pressroom.audience import Audience, MediaList
from pressroom.dispatch import digest_releases, post_releases, record_public, send_release_emails
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


def publish_once(settings: Settings, now: datetime, *, transport=None) -> list:
    """One run of the publish flow without Prefect: the same core calls in its order (flows/publish.py), plus the
    weekly digest's choice."""
    loaded = load_releases(settings)
    build_site(settings=settings, releases=loaded.releases, now=now)
    record_public(settings=settings, releases=loaded.releases, now=now)
    post_releases(releases=public_releases(loaded.releases, now), settings=settings, now=now)
    run_embargo(releases=loaded.releases, settings=settings, now=now, transport=transport)
    send_release_emails(releases=loaded.releases, settings=settings, now=now)
    return digest_releases(releases=loaded.releases, settings=settings, now=now,
                           first_seen=Ledger.from_settings(settings).first_published(), approved=lambda release: True)
