"""What `pressroom --help` tells a user, and command output that stays whole in an 80-column terminal."""

from __future__ import annotations

import os
import subprocess
import sys

from typer.testing import CliRunner

from pressroom.cli import app
from pressroom.settings import WebSettings
from tests.conftest import REPO, Project

WIDE = {"COLUMNS": "80", "TERMINAL_WIDTH": "80"}


def _help(*command: str) -> str:
    outcome = CliRunner().invoke(app, [*command, "--help"], env=WIDE)
    assert outcome.exit_code == 0, outcome.output
    return " ".join(line.strip(" │╭╮╰╯─") for line in outcome.output.splitlines())  # the text, unboxed


def test_the_main_help_speaks_to_people_who_publish_releases() -> None:
    text = " ".join(_help().split())
    assert "Pressroom puts your press releases out" in text
    assert "`pressroom import FILE` makes a draft of it" in text
    assert "docs/writing.md" in text
    for command in ("import", "check", "preview", "publish", "serve"):
        assert f" {command} " in text


def test_serve_help_shows_the_real_defaults() -> None:
    text = " ".join(_help("serve").split())
    web = WebSettings()
    assert f"address to listen on (default: {web.host}, or [web] host in pressroom.toml)" in text
    assert f"port to listen on (default: {web.port}, or [web] port in pressroom.toml)" in text


def _run(project: Project, *command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **WIDE, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", "from pressroom.cli import main; main()", *command,
                           "--settings", str(project.root / "pressroom.toml")],
                          cwd=project.root, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_output_lines_are_printed_whole_at_80_columns(project: Project) -> None:
    """A terminal wraps a long line where it must; Pressroom itself never cuts one in the middle of a phrase."""
    project.write_release("tabbed", extra="tags:\n\t- recycling\n")
    checked = _run(project, "check")
    assert checked.returncode == 1
    [line] = [line for line in checked.stdout.splitlines() if "tabbed.md" in line]
    assert line.startswith("content/releases/tabbed.md:6: front-matter: a tab in the indentation (hint: ")
    assert line.endswith(")") and len(line) > 80
    project.write_release("tabbed", title="A release with a title long enough to make the build line long")
    built = _run(project, "build")
    assert built.returncode == 0, built.stderr
    [line] = built.stdout.splitlines()
    assert line.startswith("public/: ") and line.endswith(f"({project.root / 'public'})")
