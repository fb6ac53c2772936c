"""Shared fixtures: a throw-away project folder with settings and a release writer."""

from __future__ import annotations

import os
import tempfile
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pressroom.settings import Settings, load_settings

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
