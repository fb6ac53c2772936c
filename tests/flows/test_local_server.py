"""The project's local Prefect server and Prefect's temporary one: slow starts, a fixed port, one-line errors.

Each runs the `pressroom` command as an operator does, in an environment without the test
session's Prefect settings, against real Prefect servers.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, Project

BIN = Path(sys.executable).parent


def _clean_environ(**extra: str) -> dict[str, str]:
    """This environment without the test session's Prefect and Pressroom choices, as an operator's shell."""
    keep = {key: value for key, value in os.environ.items()
            if not key.startswith(("PREFECT_", "PRESSROOM_")) and key != "DO_NOT_TRACK"}
    return keep | {"PYTHONPATH": str(REPO)} | extra


def _pressroom(project: Project, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "pressroom"), *args, "--settings", str(project.root / "pressroom.toml")],
        env=_clean_environ(PREFECT_HOME=str(project.root / "prefect-home"), **env),
        cwd=project.root, capture_output=True, text=True, timeout=timeout, check=False,
    )


def _prefect_section(project: Project, text: str) -> None:
    with (project.root / "pressroom.toml").open("a") as handle:
        handle.write(f"\n[prefect]\n{text}\n")


def _errors(result: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_fixed_port_another_program_holds_is_one_line_and_starts_nothing(project: Project) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _prefect_section(project, f"port = {port}")
        result = _pressroom(project, "prefect-server", timeout=120)
    assert result.returncode == 2
    [line] = _errors(result)
    assert f"[prefect] port {port}" in line and "taken by another program" in line and "hint:" in line
    assert not (project.root / "var" / "prefect" / "server.json").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_slow_start_says_what_to_do_and_the_next_command_finds_the_same_server_on_its_port(project: Project) -> None:
    port = _free_port()
    _prefect_section(project, f"port = {port}\nstart_timeout = 1")  # no Prefect server starts in a second
    record = project.root / "var" / "prefect" / "server.json"
    try:
        impatient = _pressroom(project, "prefect-server")
        assert impatient.returncode == 1
        [line] = _errors(impatient)
        assert "did not answer within 1 s; it is still starting" in line and "run the command again" in line
        assert "[prefect] start_timeout" in line
        started = json.loads(record.read_text())

        # The next command waits for the server that is still starting instead of starting a second one.
        patient = _pressroom(project, "prefect-server", PRESSROOM_PREFECT__START_TIMEOUT="600")
        assert patient.returncode == 0, patient.stderr
        assert f"Prefect API: http://127.0.0.1:{port}/api" in patient.stdout
        assert json.loads(record.read_text()) == started
    finally:
        stopped = _pressroom(project, "prefect-server", "--stop", timeout=120)
    assert stopped.stdout.strip() == "stopped" and not record.exists()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_run_whose_temporary_server_does_not_start_in_time_says_so_in_one_line(project: Project) -> None:
    project.write_release("news")
    _prefect_section(project, "start_timeout = 1")
    result = _pressroom(project, "publish", timeout=240)
    assert result.returncode == 1
    [line] = _errors(result)
    assert "Prefect's temporary server did not start within 1 s" in line
    assert "`pressroom prefect-server`" in line and "[prefect] start_timeout" in line
    assert not (project.root / "public" / "releases" / "news").exists()  # nothing ran
