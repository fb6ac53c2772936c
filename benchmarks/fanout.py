"""Fan-out benchmark: how close Pressroom's email send comes to what this machine's loopback SMTP can take.

Starts postfix's ``smtp-sink`` on 127.0.0.1 and measures, in one run:

(a) ``smtp-source`` sending messages of the sample release's size over ``--connections``
    sessions: the ceiling of this machine;
(b) Pressroom sending the sample release to ``--subscribers`` readers through the engine: plan,
    then ``--senders`` processes (default: one per core) sharing the send, as the flow's sender
    tasks do with ``email.processes``, each running the dispatch loop (claim, mark a window
    sending, push, record; the ledger on SQLite, personalisation per reader) over
    ``--connections`` SMTP connections handed ``--window`` messages at a time: the ``pressroom``
    figure; and, to tell the engine's
    share from the client's, the transport alone driven the same way with ready bytes (``transport``,
    on stderr). (a) and (b) alternate for ``--rounds`` rounds; each figure is the median of the rounds,
    and each ratio the median of the rounds' own ratios (against the ceiling of the same round). (b) runs
    again on PostgreSQL (``PRESSROOM_BENCH_PG``, the tests' server by default; a new database each
    round) with two senders, the scale path: the ``postgres`` figure, skipped with a note without a server;
(c) a naive loop: smtplib on one connection, the same bytes to every recipient;
(d) the peak RSS of a 1,000,000-subscriber send in a fresh process (after importing them in
    another): plan, then send through the engine (:func:`engine_send`) with the ``discard``
    transport (every message rendered and accepted, nothing written), because a million
    messages through smtp-sink would only measure the sink again. ``--rss-subscribers 0`` skips it;
(e) the exactly-once bound: a send to ``--subscribers`` readers through the engine in a child
    process, killed with SIGKILL at ``--kills`` random points and restarted; after each kill, the
    rows the kill left ambiguous (their fate unknown). The largest is ``ambiguous_max``, beside
    the bound it must not exceed: ``connections x window`` (the messages one worker has in flight).

Usage: ``python benchmarks/fanout.py [--subscribers 20000] [--senders 2] [--connections 8] [--window 2]
[--rss-subscribers 1000000]``.
The last line is ``fanout: pressroom=<msgs/s> ceiling=<msgs/s> naive=<msgs/s> ratio=<x> postgres=<msgs/s>
postgres_ratio=<x> peak_rss_mb_1m=<n> ambiguous_max=<n> ambiguous_bound=<n>``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import secrets
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_SENDERS = 2  # the scale path: two sender processes on one PostgreSQL ledger
SINK = "/usr/sbin/smtp-sink"
SOURCE = "/usr/sbin/smtp-source"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_project(root: Path) -> Path:
    """A copy of the repo's sample project (content, settings, templates) with no sample subscribers."""
    shutil.copytree(REPO / "content" / "releases", root / "content" / "releases")
    shutil.copytree(REPO / "content" / "organisations", root / "content" / "organisations")  # the sample's co-issuers
    shutil.copy(REPO / "pressroom.toml", root / "pressroom.toml")
    (root / "templates").symlink_to(REPO / "templates")
    return root / "pressroom.toml"


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


def pressroom_rate(settings_file: Path, port: int, *, count: int, message: bytes, connections: int, window: int) -> float:
    """(b), the transport alone: messages per second, ``connections`` senders x ``window`` envelopes of ready bytes."""
    import asyncio
    from collections import deque

    from pressroom.mail.transports import Envelope, transport_for
    from pressroom.settings import load_settings

    settings = load_settings(settings_file, environ=_smtp_env(port, connections=connections, window=window))
    batch = [Envelope(id=i, sender="press@example.org", recipient=f"reader{i}@example.org", message=message,
                      key=f"news/reader{i}@example.org") for i in range(count)]

    async def send_all() -> int:
        transport = transport_for(settings=settings)
        windows = deque(batch[i : i + transport.window] for i in range(0, count, transport.window))
        outcomes: Counter[str] = Counter()

        async def connection() -> None:
            sender = await transport.connect()
            try:
                while windows:
                    outcomes.update(f"{r.status}: {r.response}" for r in await sender.send(windows.popleft()))
            finally:
                await sender.close()

        await asyncio.gather(*(connection() for _ in range(transport.connections)))
        return outcomes

    started = time.perf_counter()
    outcomes = asyncio.run(send_all())
    elapsed = time.perf_counter() - started
    sent = sum(n for outcome, n in outcomes.items() if outcome.startswith("sent"))
    if sent != count:
        raise SystemExit(f"smtp-sink took {sent} of {count} messages: {outcomes.most_common(5)}")
    return sent / elapsed


def engine_rate(root: Path, port: int, *, count: int, connections: int, window: int, senders: int,
                database_url: str | None = None) -> float:
    """(b): messages per second of one release to ``count`` new subscribers through the engine into smtp-sink:
    plan, then ``senders`` processes sharing the send, as the flow's sender tasks do with ``email.processes``.
    Timed from the moment every sender has started (imports, settings, the release read). The ledger is
    SQLite's file in the project, or the empty database at ``database_url``."""
    from pressroom.audience import Audience
    from pressroom.ledger import Ledger
    from pressroom.releases import load_releases
    from pressroom.settings import load_settings

    settings_file = make_project(root)
    env = _smtp_env(port, connections=connections, window=window)
    if database_url is not None:
        env["PRESSROOM_DATABASE_URL"] = database_url
    settings = load_settings(settings_file, environ=env)
    readers = "".join(f"reader{i}@example.org,Reader {i}\n" for i in range(count))
    Audience.from_settings(settings).import_csv(file=io.StringIO("address,name\n" + readers), now=datetime.now(UTC))
    release = load_releases(settings).releases[0]
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("PRESSROOM_")} | env
    children = [
        subprocess.Popen([sys.executable, __file__, "--send-child", str(settings_file), "--on-cue"], env=child_env, cwd=REPO,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(senders)
    ]
    for child in children:
        if child.stdout.readline().strip() != "ready":
            raise SystemExit("a sender did not start")
    started = time.perf_counter()
    ledger = Ledger.from_settings(settings)
    ledger.plan_audience(release=release.slug, channel="email", tags=release.tag_slugs, cadence="per-release",
                         now=datetime.now(UTC))
    for child in children:
        child.stdin.write("go\n")
        child.stdin.close()
    if any(child.wait() for child in children):
        raise SystemExit("a sender failed")
    elapsed = time.perf_counter() - started
    sent = ledger.report(release=release.slug, problems=0).sent
    if sent != count:
        raise SystemExit(f"the engine sent {sent} of {count} messages")
    return sent / elapsed


@contextlib.contextmanager
def postgres_database() -> Iterator[str | None]:
    """A new, empty PostgreSQL database on ``PRESSROOM_BENCH_PG`` (the tests' server by default), dropped
    afterwards; None, with a note, when there is no server to reach."""
    import psycopg

    admin = os.environ.get("PRESSROOM_BENCH_PG", PG_ADMIN)
    plain = admin.replace("postgresql+psycopg://", "postgresql://")
    name = f"pressroom_fanout_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(plain, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL at {plain} is not reachable ({exc}): no PostgreSQL figure", file=sys.stderr)
        yield None
        return
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def engine_send(*, settings, release) -> int:
    """Plan ``release`` for every subscriber and send it through the dispatch engine in this process; the number sent."""
    from pressroom.dispatch import release_email, send_email
    from pressroom.ledger import Ledger

    ledger = Ledger.from_settings(settings)
    ledger.plan_audience(release=release.slug, channel="email", tags=release.tag_slugs, cadence="per-release",
                         now=datetime.now(UTC))
    return send_email(channel=release_email(release=release, settings=settings), ledger=ledger, release=release.slug).sent


def rss_child(root: Path, count: int, phase: str) -> None:
    """Runs in its own process, once per phase: ``import`` the subscribers, or ``send`` to them all.

    Prints the phase's peak RSS in MB. The send is what must stream; the import keeps the
    file's addresses in a set to report duplicates by line, so it is measured on its own.
    """
    os.environ.update({"PRESSROOM_EMAIL__TRANSPORT": "discard", "PRESSROOM_AUDIENCE__SEED_CSV": ""})
    from pressroom.audience import Audience
    from pressroom.releases import load_releases
    from pressroom.settings import load_settings

    settings_file = root / "pressroom.toml" if phase == "send" else make_project(root)
    settings = load_settings(settings_file)
    started = time.perf_counter()
    if phase == "import":
        path = root / "subscribers.csv"
        with path.open("w") as handle:
            handle.write("address,name\n")
            for i in range(count):
                handle.write(f"reader{i}@example.org,Reader {i}\n")
        done = Audience.from_settings(settings).import_csv(file=path, now=datetime.now(UTC)).added
        what = f"{done} subscribers imported"
    else:
        done = engine_send(settings=settings, release=load_releases(settings).releases[0])
        what = f"{done} sent"
    elapsed = time.perf_counter() - started
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so it would report the parent's peak.
    status = Path("/proc/self/status").read_text()
    peak = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024
    print(f"rss-child {phase}: {what} in {elapsed:.1f} s ({done / elapsed:.0f}/s), peak RSS {peak:.0f} MB", file=sys.stderr)
    print(f"{peak:.0f}")


def _smtp_env(port: int, *, connections: int, window: int) -> dict[str, str]:
    return {"PRESSROOM_EMAIL__TRANSPORT": "smtp", "PRESSROOM_SMTP__HOST": "127.0.0.1", "PRESSROOM_SMTP__PORT": str(port),
            "PRESSROOM_SMTP__CONNECTIONS": str(connections), "PRESSROOM_SMTP__WINDOW": str(window),
            "PRESSROOM_AUDIENCE__SEED_CSV": ""}


def send_child(settings_file: Path, *, on_cue: bool) -> None:
    """A sender of (b) and (e): the engine's send of the sample release, settings from the environment;
    ``on_cue``: once ready, it says so and waits for a line on stdin."""
    from pressroom.dispatch import release_email, send_email
    from pressroom.ledger import Ledger
    from pressroom.releases import load_releases
    from pressroom.settings import load_settings

    settings = load_settings(settings_file)
    release = load_releases(settings).releases[0]
    if on_cue:
        print("ready", flush=True)
        sys.stdin.readline()
    send_email(channel=release_email(release=release, settings=settings), ledger=Ledger.from_settings(settings),
               release=release.slug)


def ambiguous_max(root: Path, port: int, *, count: int, connections: int, window: int, kills: int) -> int:
    """(e): the largest number of rows one SIGKILL left ambiguous, over ``kills`` kills of one send."""
    from pressroom.audience import Audience
    from pressroom.ledger import Ledger
    from pressroom.releases import load_releases
    from pressroom.settings import load_settings

    settings_file = make_project(root)
    # A short lease, so a dead sender's unused claims come back within the pause after each kill.
    env = _smtp_env(port, connections=connections, window=window) | {"PRESSROOM_EMAIL__CLAIM_LEASE_SECONDS": "0.5"}
    settings = load_settings(settings_file, environ=env)
    readers = "".join(f"reader{i}@example.org\n" for i in range(count))
    Audience.from_settings(settings).import_csv(file=io.StringIO("address\n" + readers), now=datetime.now(UTC))
    release = load_releases(settings).releases[0]
    ledger = Ledger.from_settings(settings)
    ledger.plan_audience(release=release.slug, channel="email", tags=release.tag_slugs, cadence="per-release",
                         now=datetime.now(UTC))
    rng, largest, before, done = random.Random(), 0, 0, 0
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("PRESSROOM_")} | env
    command = [sys.executable, __file__, "--send-child", str(settings_file)]
    for _ in range(kills):
        target = done + rng.randrange(count // (3 * kills), count // kills)
        child = subprocess.Popen(command, env=child_env, cwd=REPO)
        while child.poll() is None and ledger.report(release=release.slug, problems=0).sent < target:
            time.sleep(0.01)
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait()
        time.sleep(0.7)  # the dead sender's leases run out
        report = ledger.report(release=release.slug, problems=0)
        largest, before, done = max(largest, report.ambiguous - before), report.ambiguous, report.sent
    subprocess.run(command, env=child_env, cwd=REPO, check=True)
    report = ledger.report(release=release.slug, problems=0)
    print(f"(e) {kills} kills: {report.ambiguous} ambiguous in all, at most {largest} per kill; "
          f"{report.sent} sent, {report.pending} pending", file=sys.stderr)
    return largest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--rss-subscribers", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--window", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--senders", type=int, default=os.cpu_count() or 1, help="sender processes in (b)")
    parser.add_argument("--send-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--on-cue", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=["import", "send"], default="send", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.rss_subscribers, args.phase)
        return
    if args.send_child:
        send_child(args.send_child, on_cue=args.on_cue)
        return

    work = Path(tempfile.mkdtemp(prefix="fanout-"))
    try:
        port = free_port()
        sink = start_sink(port)
        try:
            os.environ["PRESSROOM_AUDIENCE__SEED_CSV"] = ""
            settings_file = make_project(work / "project")
            message = sample_message(settings_file)
            size = len(message)
            print(f"message size: {size} bytes (the sample release, personalised)", file=sys.stderr)
            print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the start", file=sys.stderr)
            tops, rates, alone, postgres = [], [], [], []
            for round_ in range(1, args.rounds + 1):
                tops.append(ceiling(port, count=args.subscribers, size=size, sessions=args.connections))
                alone.append(pressroom_rate(settings_file, port, count=args.subscribers, message=message,
                                            connections=args.connections, window=args.window))
                rates.append(engine_rate(work / f"engine{round_}", port, count=args.subscribers,
                                         connections=args.connections, window=args.window, senders=args.senders))
                with postgres_database() as database_url:
                    if database_url is not None:
                        postgres.append(engine_rate(
                            work / f"postgres{round_}", port, count=args.subscribers, connections=args.connections,
                            window=args.window, senders=PG_SENDERS, database_url=database_url,
                        ))
                print(f"round {round_}: (a) smtp-source {tops[-1]:.0f} msgs/s ({args.connections} sessions); "
                      f"(b) pressroom {rates[-1]:.0f} msgs/s, transport alone {alone[-1]:.0f} msgs/s "
                      f"({args.senders} senders x {args.connections} connections x window {args.window})"
                      + (f"; on PostgreSQL ({PG_SENDERS} senders) {postgres[-1]:.0f} msgs/s" if len(postgres) == round_ else ""),
                      file=sys.stderr)
            # Each round's rates against its own ceiling (a shared machine's load changes between rounds); medians.
            top, rate = statistics.median(tops), statistics.median(rates)
            ratio = statistics.median(r / t for r, t in zip(rates, tops))
            pg_ratio = statistics.median(r / t for r, t in zip(postgres, tops)) if len(postgres) == len(tops) else None
            print(f"transport: {statistics.median(alone):.0f} msgs/s, "
                  f"{statistics.median(a / t for a, t in zip(alone, tops)):.2f} of the ceiling", file=sys.stderr)
            slow = naive(port, count=args.subscribers, message=message)
            print(f"(c) naive smtplib loop: {slow:.0f} msgs/s", file=sys.stderr)
            worst = ambiguous_max(work / "kills", port, count=args.subscribers, connections=args.connections,
                                  window=args.window, kills=args.kills)
        finally:
            sink.terminate()
            sink.wait()
        peak = "skipped"
        if args.rss_subscribers:
            for phase in ("import", "send"):
                child = subprocess.run(
                    [sys.executable, __file__, "--rss-child", str(work / "rss"), "--rss-subscribers", str(args.rss_subscribers),
                     "--phase", phase],
                    check=True, stdout=subprocess.PIPE, text=True,
                )
            peak = child.stdout.split()[-1]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    postgres_figures = f"postgres={statistics.median(postgres):.0f} postgres_ratio={pg_ratio:.2f} " if pg_ratio else ""
    print(f"load average {os.getloadavg()[0]:.1f} at the end; each figure the median of {args.rounds} rounds", file=sys.stderr)
    print(f"fanout: pressroom={rate:.0f} ceiling={top:.0f} naive={slow:.0f} ratio={ratio:.2f} {postgres_figures}"
          f"peak_rss_mb_1m={peak} ambiguous_max={worst} ambiguous_bound={args.connections * args.window}")


if __name__ == "__main__":
    main()
