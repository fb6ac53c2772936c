"""Shared fixtures: a throw-away project folder with settings and a release writer; a database on
SQLite and PostgreSQL and the audience on it; one headless Chromium per module; the publish flow's
email step under Prefect. Every test module finds them here, none imports one."""

from __future__ import annotations

import os
import tempfile
import textwrap
from datetime import UTC, datetime
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pressroom.audience import Audience
from pressroom.releases import Release, load_releases
from pressroom.settings import Settings, load_settings
from tests._delivery import PG_ADMIN, Clock
from tests.pds import Pds

# Before anything imports prefect: a fresh Prefect home per test session, so cached results
# and task-run history never leak between runs or between engineers on one machine.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="pressroom-prefect-home-")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"

# A fixed "now" well after the sample release, so tests never depend on the real clock.
NOW = datetime(2024, 8, 1, 12, 0, tzinfo=UTC)

SITE_TOML = """
[site]
name = "Test Hub"
base_url = "https://press.example.org"
timezone = "Europe/Brussels"
language = "en"
about = "**About us.** We test things."

[email]
sender = "press@example.org"
sender_name = "Test Hub"
"""


def loaded_release(settings: Settings, slug: str | None = None) -> Release:
    """The release ``slug`` as every channel loads it (without ``slug``: the project's only release)."""
    releases = load_releases(settings).releases
    if slug is None:
        (release,) = releases
        return release
    return next(release for release in releases if release.slug == slug)


class Project:
    """A temporary Pressroom project: pressroom.toml, content/releases/, templates from the repo."""

    def __init__(self, root: Path, toml: str = SITE_TOML) -> None:
        self.root = root
        (root / "content" / "releases").mkdir(parents=True, exist_ok=True)
        (root / "pressroom.toml").write_text(textwrap.dedent(toml), encoding="utf-8")
        # The repo's templates, so a test sees exactly what ships.
        (root / "templates").symlink_to(REPO / "templates")

    @property
    def releases(self) -> Path:
        return self.root / "content" / "releases"

    def settings(self, **env: str) -> Settings:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("PRESSROOM_")}
        environ.update(env)
        return load_settings(self.root / "pressroom.toml", environ=environ)

    def write_release(
        self,
        slug: str,
        *,
        title: str = "A release",
        date: str = "2024-07-30 09:00",
        status: str = "approved",
        body: str = "Some **news**.",
        extra: str = "",
        bundle: bool = False,
    ) -> Path:
        """Write a release file; ``extra`` is raw front-matter lines appended as they are."""
        front = f'title: "{title}"\ndate: {date}\nstatus: {status}\n' + textwrap.dedent(extra)
        text = f"---\n{front}---\n\n{body}\n"
        if bundle:
            folder = self.releases / slug
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "index.md"
        else:
            path = self.releases / f"{slug}.md"
        path.write_text(text, encoding="utf-8")
        return path

    def release(self, slug: str, **fields: str) -> Release:
        """Write the release ``slug`` (the fields of :meth:`write_release`) and load it back."""
        self.write_release(slug, **fields)
        return loaded_release(self.settings(), slug)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server for the whole session (it takes 10-15 s to start)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    # Heartbeats add about a second to every flow run's exit and prove nothing here.
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        with prefect_test_harness(server_startup_timeout=120):
            yield


@pytest.fixture
def publish(prefect_harness: None) -> Callable[..., object]:
    """The publish flow, as `pressroom publish` and the deployment run it (one way to publish in the tests;
    tests/embargo_support.publish_once makes the same core calls without Prefect)."""
    from flows.publish import publish as publish_flow

    return publish_flow


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database for this test session; dropped afterwards."""
    import secrets

    import psycopg

    admin = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")
    name = f"pressroom_delivery_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:  # pragma: no cover - depends on the machine
        pytest.fail(f"PostgreSQL at {admin} is not reachable: {exc}; start it (see .ci/run)")
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    yield url
    from pressroom.db import dispose_all

    dispose_all()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'pressroom.db'}"
        return
    url = request.getfixturevalue("pg_server_url")
    from sqlalchemy import text

    from pressroom.db import engine_for_url

    engine = engine_for_url(url)
    with engine.begin() as conn:
        conn.execute(text(
            "TRUNCATE subscribers, subscriber_topics, consent_events, consent_chain, suppressions, publications, plans, deliveries, delivery_conflicts, delivery_history, subscription_requests, journalists, preview_opens, complaints, link_clicks, post_counts RESTART IDENTITY CASCADE"
        ))
    yield url


@pytest.fixture
def settings(project: Project, db_url: str) -> Settings:
    """The project's settings on ``db_url``."""
    return project.settings(PRESSROOM_DATABASE_URL=db_url)


@pytest.fixture(scope="module")
def pds() -> Iterator[Pds]:
    """A real Bluesky PDS on loopback (the npm package), one per test module."""
    from tests.pds import running_pds

    with running_pds() as server:
        yield server


@pytest.fixture
def audience(db_url: str) -> Audience:
    """The audience store on ``db_url``."""
    return Audience(url=db_url)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium per test module (Debian's, driven by Playwright)."""
    from pressroom.mail.preview import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run scripts/system-deps (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def email_step(prefect_harness: None) -> Callable[..., object]:
    """The publish flow's email step for one release, as the flow calls it: the core sends, Prefect tasks work."""
    from prefect import flow

    from flows.approval import editor
    from flows.send import TaskWorkers, run_id
    from pressroom.dispatch import record_public, send_release_emails
    from pressroom.releases import load_releases

    @flow(name="test-email-step")
    def step(settings_file: str, slug: str, now: datetime):
        settings = load_settings(settings_file)
        release = next(r for r in load_releases(settings).releases if r.slug == slug)
        record_public(settings=settings, releases=[release], now=now)
        [report] = send_release_emails(settings=settings, releases=[release], now=now, run_id=run_id(),
                                       ask=editor(settings, wait=True),
                                       workers=TaskWorkers(settings=settings, settings_file=settings_file))
        return report

    return step


@pytest.fixture
def engine_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The send loop's clock (leases, retry times), moved by the test instead of slept through."""
    from pressroom.dispatch import engine

    clock = Clock()
    monkeypatch.setattr(engine, "wall_clock", clock)
    return clock
