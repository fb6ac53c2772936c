"""Load on the web app against a reference Starlette app, and the timing of known and unknown addresses.

In one run, with the same server settings (one uvicorn process each, no access log, loopback):

- ``pressroom serve`` for a temporary project (SQLite under its var/, the sample content, built
  into public/ first), with the ``discard`` email transport so the figure is the web app's;
- a reference app: plain Starlette, a form handler that parses the same form and does one SQLite
  insert, and a plain ``StaticFiles`` mount of the same public/.

wrk (Debian) drives each with 200 concurrent connections: POST /subscribe with a new address in
every request (posted as the archive pages' form posts: no token, the site's Origin), then GET
of a static page (``/index.html``). ``errors`` counts wrk's socket errors and non-2xx answers
of Pressroom's runs; ``lost`` is how many accepted POSTs are not in the database (each address
is unique, so none can be there twice).

Every request comes from 127.0.0.1, so the per-client limits are raised for this run: they
exist to stop one client doing exactly this.

Then, on the quiet server, it times POST /subscribe one at a time for a known (confirmed),
an unknown (new each time), a pending and a suppressed address, interleaved, and prints their
medians (issue 10: the answer must not tell them apart).

Last lines:
``web_enumeration: known_ms=<x> unknown_ms=<x> pending_ms=<x> suppressed_ms=<x> samples=<n>``
``web: post_rps=<n> post_ref_rps=<n> post_ratio=<x> post_p99_ms=<n> get_rps=<n> get_ref_rps=<n> get_ratio=<x> errors=<n> lost=<n>
confirmations_drain_s=<s>`` (the last: how long after the POST run the server was still sending the
confirmations it queued; the GET run starts once they are all sent)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
  local body = "email=PREFIX-" .. tid .. "-" .. counter .. "%40example.org&name=Load+Reader"
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
confirmations_per_hour = 100000000
"""

# The reference: what any Starlette app must do for the same requests, and nothing more.
REFERENCE = r'''
import sqlite3, sys, threading
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

database, public, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = sqlite3.connect(database, check_same_thread=False, isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("CREATE TABLE IF NOT EXISTS requests (address TEXT UNIQUE, name TEXT, topics TEXT, cadence TEXT)")
lock = threading.Lock()


async def subscribe(request):
    form = await request.form()
    row = (str(form.get("email", "")), str(form.get("name", "")), ";".join(form.getlist("topics")), str(form.get("cadence", "")))

    def insert():
        with lock:
            conn.execute("INSERT OR IGNORE INTO requests VALUES (?, ?, ?, ?)", row)

    await run_in_threadpool(insert)
    return HTMLResponse("<!doctype html><title>Check your inbox</title><p>Check your inbox.</p>")


app = Starlette(routes=[Route("/subscribe", subscribe, methods=["POST"]), Mount("/", StaticFiles(directory=public, html=True))])
uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, server_header=False, log_level="info")
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(port: int, server: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"a server exited with {server.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit("a server did not start listening in time")


def _stop(server: subprocess.Popen) -> str:
    server.terminate()
    try:
        _, stderr = server.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        _, stderr = server.communicate()
    return stderr or ""


def _milliseconds(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def _wrk(url: str, *, connections: int, duration: int, script: Path | None = None) -> dict[str, float]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "--latency", url]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=duration + 60)
    print(result.stdout, flush=True)
    out = result.stdout
    socket_errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p99_ms": _milliseconds(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1)),
        "errors": socket_errors + non_2xx,
        "accepted": requests - non_2xx,
    }


def _drain(ledger: Any, timeout: float = 600.0) -> float:
    """Seconds until the server has sent every confirmation the POST run queued (the reference has none to
    send: its GET run must not be compared with a server still busy with tens of thousands of emails)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        report = ledger.report(channel="transactional")
        if not report.pending and not report.in_flight:
            sent = report.sent
            print(f"pressroom: every confirmation sent ({sent} in all, {report.total - sent} not sent) "
                  f"{time.monotonic() - started:.1f} s after the POST run", flush=True)
            return time.monotonic() - started
        time.sleep(0.5)
    raise SystemExit(f"the confirmations were still being sent {timeout:.0f} s after the POST run")


def _enumeration(origin: str, *, samples: int) -> dict[str, float]:
    """Median ms of POST /subscribe for each kind of address, one request at a time, interleaved.

    Each request opens its own connection and meets an idle server: the confirmation email an
    unknown address gets is composed after its answer, and would otherwise slow the next request.
    """
    import httpx

    kinds = {"known": "known@example.org", "pending": "pending@example.org", "suppressed": "suppressed@example.org"}
    times: dict[str, list[float]] = {kind: [] for kind in [*kinds, "unknown"]}
    with httpx.Client(base_url=origin, headers={"Origin": origin}, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        for n in range(samples):
            for kind in times:
                address = kinds.get(kind) or f"unknown-{n}@example.org"
                started = time.perf_counter()
                answer = client.post("/subscribe", data={"email": address, "cadence": "per-release", "csrf_token": ""})
                times[kind].append((time.perf_counter() - started) * 1000)
                if answer.status_code != 200:
                    raise SystemExit(f"POST /subscribe for a {kind} address answered {answer.status_code}")
                time.sleep(0.15)
    return {kind: statistics.median(values) for kind, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--duration", type=int, default=30, help="seconds per run")
    parser.add_argument("--samples", type=int, default=50, help="requests per kind of address in the timing of the four cases")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: run scripts/system-deps (Debian package wrk)")

    port, ref_port = _free_port(), _free_port()
    origin, ref_origin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ref_port}"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PRESSROOM_")}
    sys.path.insert(0, str(REPO))
    from pressroom.audience import Audience
    from pressroom.ledger import Ledger
    from pressroom.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="pressroom-web-bench-") as folder:
        root = Path(folder)
        (root / "pressroom.toml").write_text(TOML.replace("ORIGIN", origin), encoding="utf-8")
        (root / "templates").symlink_to(REPO / "templates")
        shutil.copytree(REPO / "content", root / "content")
        cli = [sys.executable, "-c", "from pressroom.cli import main; main()"]
        subprocess.run([*cli, "build", "-s", str(root / "pressroom.toml")], cwd=root, env=environ, check=True,
                       stdout=subprocess.DEVNULL, timeout=300)
        settings = load_settings(root / "pressroom.toml", environ=environ)
        audience = Audience.from_settings(settings)
        now = datetime.now(UTC)
        audience.add(address="known@example.org", now=now, source="benchmark")
        audience.add(address="pending@example.org", now=now, source="benchmark", status="pending")
        audience.suppress(address="suppressed@example.org", reason="hard-bounce", now=now)
        public = settings.path("public")
        ledger = Ledger.from_settings(settings)

        pressroom = subprocess.Popen(
            [*cli, "serve", "-s", str(root / "pressroom.toml"), "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
            cwd=root, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        reference = subprocess.Popen(
            [sys.executable, "-c", REFERENCE, str(root / "reference.db"), str(public), str(ref_port)],
            cwd=root, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        stderr = ""
        try:
            _wait_for(port, pressroom)
            _wait_for(ref_port, reference)
            results = {}
            for name, base in [("pressroom", origin), ("reference", ref_origin)]:
                script = root / f"post-{name}.lua"
                script.write_text(POST_SCRIPT.replace("ORIGIN", base).replace("PREFIX", f"load-{name}"), encoding="utf-8")
                print(f"{name}: POST /subscribe (a new address each), {args.connections} connections, {args.duration} s", flush=True)
                post = _wrk(f"{base}/subscribe", connections=args.connections, duration=args.duration, script=script)
                if name == "pressroom":
                    drained = _drain(ledger)
                print(f"{name}: GET /index.html, {args.connections} connections, {args.duration} s", flush=True)
                get = _wrk(f"{base}/index.html", connections=args.connections, duration=args.duration)
                results[name] = (post, get)
            medians = _enumeration(origin, samples=args.samples)
        finally:
            stderr = _stop(pressroom)
            _stop(reference)
        problems = [line for line in stderr.splitlines() if "ERROR" in line or "Traceback" in line]
        if problems:
            print("server errors:\n" + "\n".join(problems[:20]), flush=True)
        recorded = sum(1 for sub in audience.list(status="pending") if sub.address.startswith("load-pressroom-"))
        with sqlite3.connect(root / "reference.db") as conn:
            print(f"reference rows: {conn.execute('SELECT count(*) FROM requests').fetchone()[0]}")

    (post, get), (ref_post, ref_get) = results["pressroom"], results["reference"]
    print(f"pending subscribers recorded by the POST run: {recorded} of {int(post['accepted'])} accepted")
    errors = int(post["errors"] + get["errors"]) + len(problems)
    lost = max(0, int(post["accepted"]) - recorded)
    print(
        "web_enumeration: "
        + " ".join(f"{kind}_ms={medians[kind]:.2f}" for kind in ("known", "unknown", "pending", "suppressed"))
        + f" samples={args.samples}"
    )
    print(
        f"web: post_rps={post['rps']:.0f} post_ref_rps={ref_post['rps']:.0f} post_ratio={post['rps'] / ref_post['rps']:.2f} "
        f"post_p99_ms={post['p99_ms']:.0f} get_rps={get['rps']:.0f} get_ref_rps={ref_get['rps']:.0f} "
        f"get_ratio={get['rps'] / ref_get['rps']:.2f} errors={errors} lost={lost} confirmations_drain_s={drained:.1f}"
    )


if __name__ == "__main__":
    main()
