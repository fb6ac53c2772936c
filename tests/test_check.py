"""`pressroom check` on a corpus of broken releases: one clear line per problem, the good ones still valid."""

from __future__ import annotations

import os
import re

from typer.testing import CliRunner

from pressroom.cli import app
from tests.conftest import DATA, REPO

CORPUS = DATA / "broken"
GOLDEN = CORPUS / "expected-check.txt"


def run_check(*args: str) -> tuple[int, str]:
    runner = CliRunner()
    cwd = os.getcwd()
    os.chdir(DATA)  # so paths print as broken/<file>, the same on every machine
    try:
        result = runner.invoke(app, ["check", *args, "--settings", str(REPO / "pressroom.toml"), "--now", "2024-08-01T00:00:00+00:00"])
    finally:
        os.chdir(cwd)
    return result.exit_code, result.output


def test_broken_corpus_is_reported_line_by_line_against_golden_output():
    code, output = run_check("broken")
    if os.environ.get("REGEN_GOLDEN") == "1":
        GOLDEN.write_text(output, encoding="utf-8")
    assert code == 1
    assert output == GOLDEN.read_text(encoding="utf-8")


def test_every_problem_line_names_file_line_field_and_a_hint():
    code, output = run_check("broken")
    problems = [line for line in output.splitlines() if line.startswith("broken/")]
    broken_files = {path.name for path in CORPUS.glob("*.md")} - {
        "valid.md", "script-injection.md", "crlf-title.md", "control-characters.md", "duplicate-slug-a.md"
    }
    assert {line.split(":")[0].removeprefix("broken/") for line in problems} == broken_files
    for line in problems:
        assert re.match(r"^broken/[\w.-]+\.md:\d+: [\w.-]+: .+ \(hint: .+\)$", line), line
    assert "Traceback" not in output


def test_valid_releases_show_status_and_the_instant_in_utc_and_local_time():
    _, output = run_check("broken")
    assert "ok  valid  public     2024-07-29 08:00 UTC = 2024-07-29 10:00 CEST (Europe/Brussels)" in output


def test_scheduled_release_shows_as_scheduled(project):
    project.write_release("later", date="2030-01-01 09:00")
    runner = CliRunner()
    result = runner.invoke(app, ["check", "--settings", str(project.root / "pressroom.toml")])
    assert result.exit_code == 0
    assert "later  scheduled  2030-01-01 08:00 UTC = 2030-01-01 09:00 CET (Europe/Brussels)" in result.output


def test_check_of_a_fresh_project_creates_no_database(project):
    project.write_release("fresh")
    result = CliRunner().invoke(app, ["check", "--settings", str(project.root / "pressroom.toml")])
    assert result.exit_code == 0, result.output
    assert "fresh" in result.output
    assert not (project.root / "var" / "pressroom.db").exists()


def test_a_warning_is_listed_but_the_release_still_loads_and_check_passes(project):
    project.write_release("midnight", date="2024-07-29")
    runner = CliRunner()
    result = runner.invoke(app, ["check", "--settings", str(project.root / "pressroom.toml"), "--now", "2024-08-01T00:00:00+00:00"])
    assert result.exit_code == 0, result.output
    assert "midnight.md:3: date: warning: 2024-07-29 has no time: it means 00:00 in Europe/Brussels" in result.output
    assert "ok  midnight  public     2024-07-28 22:00 UTC = 2024-07-29 00:00 CEST (Europe/Brussels)" in result.output
    assert "1 of 1 releases valid" in result.output


def test_a_cached_release_keeps_its_warning(project):
    project.write_release("midnight", date="2024-07-29")
    settings = project.settings()
    from pressroom.releases import load_releases

    first, second = load_releases(settings), load_releases(settings)  # the second comes from var/cache/
    assert [w.message for w in first.warnings] == [w.message for w in second.warnings] != []
    assert [r.slug for r in second.releases] == ["midnight"]
