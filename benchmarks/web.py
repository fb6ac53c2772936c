"""Load on the subscription web app: 200 concurrent connections on GET and on POST /subscribe, 30 s each.

Starts ``pressroom serve`` (one uvicorn process, as in production) on a free loopback port for a
temporary project (SQLite under its var/, the sample release for topics), then drives it with
wrk from Debian: first GET /subscribe, then POST /subscribe with a new address in every request,
posted the way the archive pages' form posts (no token, the site's Origin). Every POST records a
pending subscriber, two consent events and composes a confirmation email; the email transport is
``discard`` so the figure is the web app's, not the disk's or an SMTP server's.

Every request comes from 127.0.0.1, so the per-client limits ([web] posts_per_ip_per_minute,
confirmations_per_ip_per_hour) are raised for this run: they exist to stop one client doing exactly
this. ``errors`` counts wrk's socket errors (connect, read, write, timeout) and every answer that
is not 2xx/3xx (a 429 would count), over both runs.

Last line: ``web: get_rps=<n> post_rps=<n> p99_ms=<n> errors=<n>`` (p99 is the worse of the two runs).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

POST_SCRIPT = r"""
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
local counter = 0
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Origin"] = "ORIGIN"
request = function()
  counter = counter + 1
  local body = "email=load-" .. tid .. "-" .. counter .. "%40example.org&name=Load+Reader"
    .. "&topics=recycling&cadence=per-release&website=&csrf_token="
  return wrk.format("POST", "/subscribe", nil, body)
end
"""

TOML = """
[site]
name = "Benchmark Hub"
base_url = "ORIGIN"
timezone = "Europe/Brussels"

[email]
transport = "discard"
sender = "press@example.org"

[web]
posts_per_ip_per_minute = 100000000
confirmations_per_ip_per_hour = 100000000
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(port: int, server: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"pressroom serve exited with {server.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit("pressroom serve did not start listening in time")


def _milliseconds(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def _wrk(url: str, *, connections: int, duration: int, script: Path | None = None) -> dict[str, float]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "--latency", url]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    print(result.stdout, flush=True)
    out = result.stdout
    socket_errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p99_ms": _milliseconds(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1)),
        "errors": socket_errors + non_2xx,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--duration", type=int, default=30, help="seconds per run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: run scripts/system-deps (Debian package wrk)")

    port = _free_port()
    origin = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="pressroom-web-bench-") as folder:
        root = Path(folder)
        (root / "pressroom.toml").write_text(TOML.replace("ORIGIN", origin), encoding="utf-8")
        (root / "templates").symlink_to(REPO / "templates")
        shutil.copytree(REPO / "content", root / "content")
        script = root / "post.lua"
        script.write_text(POST_SCRIPT.replace("ORIGIN", origin), encoding="utf-8")
        environ = {k: v for k, v in os.environ.items() if not k.startswith("PRESSROOM_")}
        server = subprocess.Popen(
            [sys.executable, "-c", "from pressroom.cli import main; main()", "serve", "-s", str(root / "pressroom.toml"),
             "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
            cwd=root,
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_for(port, server)
            print(f"GET /subscribe: {args.connections} connections, {args.duration} s", flush=True)
            get = _wrk(f"{origin}/subscribe", connections=args.connections, duration=args.duration)
            print(f"POST /subscribe (a new address each): {args.connections} connections, {args.duration} s", flush=True)
            post = _wrk(f"{origin}/subscribe", connections=args.connections, duration=args.duration, script=script)
        finally:
            server.terminate()
            try:
                _, stderr = server.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                _, stderr = server.communicate()
        problems = [line for line in stderr.splitlines() if "ERROR" in line or "Traceback" in line]
        if problems:
            print("server errors:\n" + "\n".join(problems[:20]), flush=True)

        sys.path.insert(0, str(REPO))
        from pressroom.audience import Audience
        from pressroom.settings import load_settings

        settings = load_settings(root / "pressroom.toml", environ=environ)
        recorded = Audience.from_settings(settings).count(status="pending")
        print(f"pending subscribers recorded by the POST run: {recorded}")

    errors = int(get["errors"] + post["errors"]) + len(problems)
    p99 = max(get["p99_ms"], post["p99_ms"])
    print(f"web: get_rps={get['rps']:.0f} post_rps={post['rps']:.0f} p99_ms={p99:.0f} errors={errors}")


if __name__ == "__main__":
    main()
