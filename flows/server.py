"""The quick local loop: a Prefect server for this project, started once under var/prefect/ and found
again by every later command.

Without a server every process starts a temporary Prefect API (7-19 s on an idle machine, over a
minute on a busy one). A server started once cuts a run to what Prefect itself costs. Starting
may be slow: every command waits up to ``[prefect] start_timeout`` for it (and gives Prefect's
temporary server as long), and says what to do next when that is not enough. These helpers import
nothing from Prefect: they run before Prefect reads its settings.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pressroom.errors import ConfigError, TransientError
from pressroom.settings import Settings

__all__ = ["start_local_server", "stop_local_server", "use_local_server"]

#: Prefect's own setting: how long a process waits for the temporary server it starts.
EPHEMERAL_TIMEOUT = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


def _server_file(settings: Settings) -> Path:
    return settings.path("var") / "prefect" / "server.json"


def _healthy(url: str, timeout: float = 3.0) -> bool:
    from urllib.error import URLError
    from urllib.request import urlopen

    try:
        with urlopen(f"{url}/health", timeout=timeout) as response:  # loopback URL we wrote
            return response.status == 200
    except (URLError, OSError):
        return False


def _ours(pid: int, port: int) -> bool:
    """Whether ``pid`` is (still) the Prefect server this project started on ``port``."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"prefect" in b" ".join(command) and b"server" in command and str(port).encode() in command


def _record(settings: Settings) -> tuple[str, int, int] | None:
    try:
        record = json.loads(_server_file(settings).read_text(encoding="utf-8"))
        url, pid = str(record["url"]), int(record["pid"])
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    except (OSError, ValueError, KeyError, IndexError):
        return None
    return url, pid, port


def _wait(url: str, *, alive: Callable[[], bool], timeout: float, log: Path) -> None:
    """Until ``url`` answers; TransientError (one line, with the next step) when it stopped or is still starting."""
    deadline = time.monotonic() + timeout
    while not _healthy(url):
        if not alive():
            raise TransientError(f"the local Prefect server stopped while starting (its log: {log})",
                                 hint="read the end of that log, then run the command again")
        if time.monotonic() > deadline:
            raise TransientError(
                f"the local Prefect server did not answer within {timeout:g} s; it is still starting (its log: {log})",
                hint="run the command again in a minute: it finds the server once it answers; on a busy machine "
                     "raise [prefect] start_timeout; `pressroom prefect-server --stop` ends it",
            )
        time.sleep(0.5)


def use_local_server(settings: Settings) -> str | None:
    """Point this process at the project's local Prefect server, if there is one; waits for one still starting.

    ``PREFECT_API_URL`` set by the operator always wins. Returns the API URL in use, or None when
    Prefect will start its temporary server (given ``[prefect] start_timeout`` to start, unless the
    operator set Prefect's own limit). Call it before anything imports prefect.
    """
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    record = _record(settings)
    if record is not None:
        url, pid, port = record
        if _healthy(url) or _ours(pid, port):
            _wait(url, alive=lambda: _ours(pid, port), timeout=settings.prefect.start_timeout,
                  log=_server_file(settings).parent / "server.log")
            os.environ["PREFECT_API_URL"] = url
            return url
    os.environ.setdefault(EPHEMERAL_TIMEOUT, str(max(1, round(settings.prefect.start_timeout))))
    return None


def _port(settings: Settings) -> int:
    wanted = settings.prefect.port
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", wanted or 0))
        except OSError:
            raise ConfigError(f"[prefect] port {wanted}: 127.0.0.1:{wanted} is taken by another program",
                              hint="stop that program, or set another [prefect] port (none: a free one each start)") from None
        return sock.getsockname()[1]


def start_local_server(settings: Settings) -> str:
    """Start (or find) a Prefect server for this project on loopback; returns its API URL.

    The port is ``[prefect] port``, or a free one. It runs detached with its database under
    ``var/prefect/``, so runs and artifacts survive between commands and show in its UI;
    :func:`stop_local_server` ends it. It is recorded as soon as it is started, so a command that
    gives up waiting leaves it starting and the next command finds it.
    """
    if url := use_local_server(settings):
        return url
    home = _server_file(settings).parent
    home.mkdir(parents=True, exist_ok=True)
    port = _port(settings)
    url = f"http://127.0.0.1:{port}/api"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(home)
    # flows/__init__ decided this for every Prefect process; the server gets the same answer.
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"]
    log = open(home / "server.log", "ab")  # handed to the detached process
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    _server_file(settings).write_text(json.dumps({"pid": process.pid, "url": url}), encoding="utf-8")
    try:
        _wait(url, alive=lambda: process.poll() is None, timeout=settings.prefect.start_timeout, log=home / "server.log")
    except TransientError:
        if process.poll() is not None:
            _server_file(settings).unlink(missing_ok=True)
        raise
    return url


def stop_local_server(settings: Settings) -> bool:
    """Stop the server :func:`start_local_server` started; False when none was running."""
    file = _server_file(settings)
    record = _record(settings)
    file.unlink(missing_ok=True)
    if record is None:
        return False
    try:
        os.killpg(record[1], signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    return True
