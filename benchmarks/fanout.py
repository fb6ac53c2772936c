"""Fan-out benchmark: how close Pressroom's email send comes to what this machine's loopback SMTP can take.

Starts postfix's ``smtp-sink`` on 127.0.0.1 and measures, in one run:

(a) ``smtp-source`` sending messages of the sample release's size: the ceiling of this machine;
(b) Pressroom sending the sample release to 20,000 subscribers through the real path: the
    Prefect email step (plan task, batch tasks on a bounded thread pool), the ledger on SQLite,
    personalisation per recipient, the SMTP transport's connection pool;
(c) a naive loop: smtplib on one connection, the same bytes to every recipient, no ledger;
(d) the peak RSS of a 1,000,000-subscriber send in a fresh process (after importing them in
    another): plan, then drain through the same engine with the ``discard`` transport (every message rendered and
    accepted, nothing written), because a million messages through smtp-sink would only
    measure the sink again; and the number of Prefect task runs per 100,000 recipients,
    counted from the API after (b).

Usage: ``python benchmarks/fanout.py [--subscribers 20000] [--rss-subscribers 1000000]``.
The last line is ``fanout: pressroom=<msgs/s> ceiling=<msgs/s> naive=<msgs/s> ratio=<x> peak_rss_mb_1m=<n>``.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SINK = "/usr/sbin/smtp-sink"
SOURCE = "/usr/sbin/smtp-source"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_project(root: Path) -> Path:
    """A copy of the repo's sample project (content, settings, templates) with no sample subscribers."""
    shutil.copytree(REPO / "content" / "releases", root / "content" / "releases")
    shutil.copy(REPO / "pressroom.toml", root / "pressroom.toml")
    (root / "templates").symlink_to(REPO / "templates")
    return root / "pressroom.toml"


def subscribers_csv(count: int) -> io.StringIO:
    return io.StringIO("address,name\n" + "".join(f"reader{i}@example.org,Reader {i}\n" for i in range(count)))


def start_sink(port: int) -> subprocess.Popen:
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    sink = subprocess.Popen([SINK, *user, f"127.0.0.1:{port}", "1024"], stdout=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return sink
        except OSError:
            time.sleep(0.02)
    raise SystemExit("smtp-sink did not start; install postfix (scripts/system-deps)")


def ceiling(port: int, *, count: int, size: int, sessions: int) -> float:
    started = time.perf_counter()
    subprocess.run(
        [SOURCE, "-d", "-s", str(sessions), "-m", str(count), "-l", str(size), "-f", "press@example.org",
         "-t", "reader@example.org", f"127.0.0.1:{port}"],
        check=True, stdout=subprocess.DEVNULL,
    )
    return count / (time.perf_counter() - started)


def sample_message(settings_file: Path) -> bytes:
    from pressroom.mail import Recipient, compose_release
    from pressroom.releases import load_releases
    from pressroom.settings import load_settings

    settings = load_settings(settings_file)
    release = load_releases(settings).releases[0]
    composed = compose_release(release=release, settings=settings)
    return composed.message(Recipient(address="reader0@example.org", name="Reader 0",
                                      unsubscribe_url=f"{settings.site.base_url}/unsubscribe?token=x",
                                      preferences_url=f"{settings.site.base_url}/preferences?token=x"))


def naive(port: int, *, count: int, message: bytes) -> float:
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as client:
        for i in range(count):
            client.sendmail("press@example.org", [f"reader{i}@example.org"], message)
    return count / (time.perf_counter() - started)


def pressroom_send(settings_file: Path, *, count: int) -> tuple[float, int, str]:
    """(messages per second, Prefect task runs of the send, report) for one release to ``count`` subscribers."""
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="fanout-prefect-"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry calls (and no lock noise)
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.context import get_run_context
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from flows.email import send_release_email
    from pressroom.audience import Audience
    from pressroom.ledger import Ledger
    from pressroom.releases import load_releases
    from pressroom.settings import load_settings

    settings = load_settings(settings_file)
    Audience.from_settings(settings).import_csv(file=subscribers_csv(count), now=datetime.now(UTC))
    release = load_releases(settings).releases[0]

    @flow(name="fanout-benchmark")
    def send() -> tuple[float, str, str]:
        ledger = Ledger.from_settings(settings)
        now = datetime.now(UTC)
        ledger.record_public(releases=[release], now=now)
        started = time.perf_counter()
        report = send_release_email(release=release, settings=settings, ledger=ledger, now=now)
        elapsed = time.perf_counter() - started
        return report.sent / elapsed, report.as_text(), str(get_run_context().flow_run.id)

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}), prefect_test_harness(server_startup_timeout=120):
        rate, text, run_id = send()

        async def count_tasks() -> int:
            total = 0
            async with get_client() as client:
                while True:  # the API pages at 200
                    page = await client.read_task_runs(
                        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])), limit=200, offset=total)
                    total += len(page)
                    if len(page) < 200:
                        return total

        import asyncio

        tasks = asyncio.run(count_tasks())
    return rate, tasks, text


def rss_child(root: Path, count: int, phase: str) -> None:
    """Runs in its own process, once per phase: ``import`` the subscribers, or ``send`` to them all.

    Prints the phase's peak RSS in MB. The send is what must stream; the import keeps the
    file's addresses in a set to report duplicates by line, so it is measured on its own.
    """
    os.environ.update({"PRESSROOM_EMAIL__TRANSPORT": "discard", "PRESSROOM_AUDIENCE__SEED_CSV": ""})
    from pressroom.audience import Audience
    from pressroom.delivery import drain, personaliser
    from pressroom.ledger import Ledger
    from pressroom.mail import compose_release
    from pressroom.releases import load_releases
    from pressroom.settings import load_settings

    settings_file = root / "pressroom.toml" if phase == "send" else make_project(root)
    settings = load_settings(settings_file)
    audience, ledger = Audience.from_settings(settings), Ledger.from_settings(settings)
    started = time.perf_counter()
    if phase == "import":
        path = root / "subscribers.csv"
        with path.open("w") as handle:
            handle.write("address,name\n")
            for i in range(count):
                handle.write(f"reader{i}@example.org,Reader {i}\n")
        done = audience.import_csv(file=path, now=datetime.now(UTC)).added
        what = f"{done} subscribers imported"
    else:
        release = load_releases(settings).releases[0]
        ledger.plan_audience(release=release.slug, channel="email", tags=release.tag_slugs, cadence="per-release",
                             now=datetime.now(UTC))
        render = personaliser(composed=compose_release(release=release, settings=settings), settings=settings)
        done = drain(settings=settings, ledger=ledger, audience=audience, release=release.slug, render=render).sent
        what = f"{done} sent"
    elapsed = time.perf_counter() - started
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so it would report the parent's peak.
    status = Path("/proc/self/status").read_text()
    peak = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024
    print(f"rss-child {phase}: {what} in {elapsed:.1f} s ({done / elapsed:.0f}/s), peak RSS {peak:.0f} MB", file=sys.stderr)
    print(f"{peak:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--rss-subscribers", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=["import", "send"], default="send", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.rss_subscribers, args.phase)
        return

    work = Path(tempfile.mkdtemp(prefix="fanout-"))
    port = free_port()
    sink = start_sink(port)
    try:
        settings_file = make_project(work / "project")
        os.environ.update({
            "PRESSROOM_EMAIL__TRANSPORT": "smtp", "PRESSROOM_SMTP__HOST": "127.0.0.1", "PRESSROOM_SMTP__PORT": str(port),
            "PRESSROOM_SMTP__CONNECTIONS": str(args.connections), "PRESSROOM_EMAIL__WORKERS": str(args.workers),
            "PRESSROOM_AUDIENCE__SEED_CSV": "",
        })
        message = sample_message(settings_file)
        size = len(message)
        print(f"message size: {size} bytes (the sample release, personalised)", file=sys.stderr)
        top = ceiling(port, count=args.subscribers, size=size, sessions=args.connections)
        print(f"(a) smtp-source ceiling: {top:.0f} msgs/s ({args.connections} sessions)", file=sys.stderr)
        slow = naive(port, count=args.subscribers, message=message)
        print(f"(c) naive smtplib loop: {slow:.0f} msgs/s", file=sys.stderr)
        rate, task_runs, text = pressroom_send(settings_file, count=args.subscribers)
        per_100k = task_runs * 100_000 / args.subscribers
        print(f"(b) pressroom: {rate:.0f} msgs/s; {text}", file=sys.stderr)
        print(f"    Prefect task runs: {task_runs} for {args.subscribers} recipients = {per_100k:.0f} per 100,000", file=sys.stderr)
    finally:
        sink.terminate()
        sink.wait()
    for phase in ("import", "send"):
        child = subprocess.run(
            [sys.executable, __file__, "--rss-child", str(work / "rss"), "--rss-subscribers", str(args.rss_subscribers),
             "--phase", phase],
            check=True, stdout=subprocess.PIPE, text=True,
        )
    peak = int(child.stdout.split()[-1])
    shutil.rmtree(work, ignore_errors=True)
    print(f"fanout: pressroom={rate:.0f} ceiling={top:.0f} naive={slow:.0f} ratio={rate / top:.2f} peak_rss_mb_1m={peak}")


if __name__ == "__main__":
    main()
