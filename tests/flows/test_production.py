"""The production set-up on one machine: `prefect server start` on PostgreSQL, the Pressroom database on
PostgreSQL, `prefect deploy --all` from prefect.yaml, two process workers, a real SMTP server on loopback.

One release goes to many subscribers; a helper run on the second worker shares the send through the
ledger's claims; the first worker is killed mid-send and the second finishes. No recipient gets the
email twice. Then the digest deployment runs, and an approval is resumed through the API.

`OPS_TEST_SUBSCRIBERS` sets the audience (default 20,000).
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests._delivery import PG_ADMIN, Received
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(900)]

SUBSCRIBERS = int(os.environ.get("OPS_TEST_SUBSCRIBERS", "20000"))
BIN = Path(sys.executable).parent
EDITOR = "editor@press.example.org"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(condition: Callable[[], Any], *, timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the worker's flow-run processes run in their own sessions)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_tree(process: subprocess.Popen) -> None:
    for pid in [process.pid, *_descendants(process.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)


def _create_database(prefix: str) -> str:
    import psycopg

    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN.replace("postgresql+psycopg://", "postgresql://"), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def _drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Stack:
    root: Path
    env: dict[str, str]
    api: str
    pressroom_db: str
    received: Received
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

    def prefect(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(BIN / "prefect"), *args], cwd=self.root, env=self.env, capture_output=True, text=True, timeout=300
        )
        if check and result.returncode:
            raise AssertionError(f"prefect {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def start_worker(self, name: str) -> None:
        log = open(self.root / f"worker-{name}.log", "wb")  # closed with the process
        self.workers[name] = subprocess.Popen(
            [str(BIN / "prefect"), "worker", "start", "--pool", "pressroom", "--type", "process", "--name", name, "--limit", "1"],
            cwd=self.root,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ensure_worker(self, name: str) -> None:
        """Start worker ``name`` unless it is running (an earlier test may have started or killed it)."""
        if self.workers.get(name) is None or self.workers[name].poll() is not None:
            self.start_worker(name)

    def run(self, deployment: str, **parameters: Any) -> Any:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            target = client.read_deployment_by_name(deployment)
            return client.create_flow_run_from_deployment(target.id, parameters=parameters or None).id

    def flow_run(self, run_id: Any) -> Any:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            return client.read_flow_run(run_id)

    def wait_final(self, run_id: Any, timeout: float = 300) -> Any:
        return _wait(lambda: (run := self.flow_run(run_id)).state.is_final() and run, timeout=timeout, what=f"run {run_id} to finish")

    def sql(self, query: str, *args: Any) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.pressroom_db.replace("postgresql+psycopg://", "postgresql://")) as conn:
            return conn.execute(query, args).fetchall()


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    import tempfile

    from aiosmtpd.controller import Controller

    # Not pytest's tmp_path: parallel pytest sessions on the machine prune each other's old
    # basetemps, and workers run for minutes inside this folder.
    root = Path(tempfile.mkdtemp(prefix="pressroom-ops-server-"))
    prefect_db = _create_database("pressroom_ops_prefect")
    pressroom_name = _create_database("pressroom_ops_data")
    pressroom_db = PG_ADMIN.rsplit("/", 1)[0] + f"/{pressroom_name}"
    received = Received()

    class Sink:
        async def handle_DATA(self, server, session, envelope):  # aiosmtpd's callback shape
            received.add(envelope.rcpt_tos, envelope.content, keep=EDITOR in envelope.rcpt_tos)
            return "250 OK"

    smtp_port = _free_port()
    sink = Controller(Sink(), hostname="127.0.0.1", port=smtp_port)
    sink.start()

    # A project folder as an operator has it: prefect.yaml, flows/, templates/, settings, content.
    shutil.copy(REPO / "prefect.yaml", root / "prefect.yaml")
    (root / "flows").symlink_to(REPO / "flows")
    (root / "templates").symlink_to(REPO / "templates")
    (root / "content" / "releases").mkdir(parents=True)
    common = f"""
        database_url = "{pressroom_db}"
        secret_key = "integration-test-signing-key"

        [site]
        name = "Scale Hub"
        base_url = "https://press.example.org"
        timezone = "Europe/Brussels"

        [smtp]
        host = "127.0.0.1"
        port = {smtp_port}
        connections = 4
        """
    email = """
        [email]
        transport = "smtp"
        sender = "press@press.example.org"
        batch_size = 250
        claim_lease_seconds = 5
        """
    (root / "pressroom.toml").write_text(textwrap.dedent(common + email + "\n[ops]\nsend_helpers = 1\n"))
    approval_db = f"sqlite:///{root / 'approval.db'}"
    (root / "approval.toml").write_text(
        textwrap.dedent(common.replace(pressroom_db, approval_db) + email + f'approval_required = true\neditors = ["{EDITOR}"]\n'
                        "\n[ops]\napproval_timeout_minutes = 30\nsend_helpers = 0\n"
                        '\n[paths]\ncontent = "content-approval"\npublic = "public-approval"\nvar = "var-approval"\n')
    )

    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PRESSROOM_"))}
    server_env = base | {
        "PREFECT_HOME": str(root / "prefect-server-home"),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{prefect_db}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        # Runs are started by the test, not by the five-minute schedule.
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    }
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        cwd=root,
        env=server_env,
        stdout=open(root / "server.log", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    env = base | {
        "PREFECT_HOME": str(root / "prefect-client-home"),
        "PREFECT_API_URL": api,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    stack = Stack(root=root, env=env, api=api, pressroom_db=pressroom_db, received=received)
    saved = {k: os.environ.get(k) for k in ("PREFECT_API_URL",)}
    try:
        import httpx

        _wait(lambda: _healthy(httpx, api), timeout=180, what="prefect server start on PostgreSQL")
        stack.prefect("work-pool", "create", "pressroom", "--type", "process", "--overwrite")
        deployed = stack.prefect("--no-prompt", "deploy", "--all", "--prefect-file", "prefect.yaml")
        assert "publish" in deployed.stdout and "digest" in deployed.stdout, deployed.stdout
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: api}):
            yield stack
    finally:
        for worker in stack.workers.values():
            if worker.poll() is None:
                _kill_tree(worker)
        _kill_tree(server)
        sink.stop()
        from pressroom.db import dispose_all

        dispose_all()
        _drop_database(pressroom_name)
        _drop_database(prefect_db)
        if not os.environ.get("OPS_TEST_KEEP"):
            shutil.rmtree(root, ignore_errors=True)
        for key, value in saved.items():
            if value is not None:
                os.environ[key] = value


def _healthy(httpx: Any, api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _subscribe(settings_file: Path, count: int, prefix: str) -> None:
    from pressroom.audience import Audience
    from pressroom.settings import load_settings

    settings = load_settings(settings_file, environ={})
    listing = settings_file.parent / f"{prefix}.csv"
    with listing.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["address", "name"])
        writer.writerows([f"{prefix}{i:05d}@subscribers.example.org", f"Reader {i}"] for i in range(count))
    report = Audience.from_settings(settings).import_csv(file=listing, now=datetime.now(UTC))
    assert report.added == count, report


def _write_release(stack: Stack, slug: str, *, content: str = "content", ago: timedelta = timedelta(minutes=1)) -> None:
    when = (datetime.now(UTC) - ago).astimezone().isoformat(timespec="minutes")
    folder = stack.root / content / "releases"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{slug}.md").write_text(
        f'---\ntitle: "{slug.replace("-", " ").title()}"\ndate: {when}\nstatus: approved\n---\n\nBig **news** for everyone.\n'
    )


def test_two_workers_share_one_send_and_survive_a_killed_worker(stack: Stack) -> None:
    _subscribe(stack.root / "pressroom.toml", SUBSCRIBERS, "reader")
    _write_release(stack, "big-news")
    stack.start_worker("alpha")
    publish = stack.run("publish/publish")
    _wait(lambda: stack.flow_run(publish).state.is_running(), timeout=120, what="alpha to start the publish run")
    stack.start_worker("beta")
    # The publish run starts a helper run of the `send` deployment; alpha is busy (limit 1), so beta takes it.
    helper_id = _wait(lambda: [run.id for run in _runs_of(stack, "send-share") if run.state.is_running()],
                      timeout=180, what="beta to start the helper run")[0]
    _wait(lambda: len(stack.received.counts) >= SUBSCRIBERS // 4, timeout=300, what="a quarter of the send")
    before_kill = len(stack.received.counts)
    _kill_tree(stack.workers["alpha"])  # the machine dies mid-send: worker and its flow run
    assert before_kill < SUBSCRIBERS, "the send finished before the kill; the test proved nothing"

    # Nobody will report alpha's publish run again: it looks Running and holds publish's one
    # concurrency slot. In production the zombie automation of docs/operations.md marks it Crashed
    # after missed heartbeats; here the operator does it through the API, as the UI would.
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(publish, Crashed(message="worker alpha died"), force=True)

    helper = stack.wait_final(helper_id, timeout=600)
    assert helper.state.is_completed(), helper.state
    with get_client(sync_client=True) as client:
        [share] = [a for a in client.read_latest_artifacts(limit=200) if a.key == "send-share-big-news"]
    rows = share.data if isinstance(share.data, list) else json.loads(share.data)
    helper_sent = int(rows[0]["sent by this helper"])
    assert 0 < helper_sent < SUBSCRIBERS  # beta did a share, and alpha did the rest before it died

    from pressroom.ledger import Ledger

    ledger = Ledger(url=stack.pressroom_db)
    report = ledger.report(release="big-news", channel="email")
    counts = stack.received.counts
    duplicates = {key: n for key, n in counts.items() if n > 1}
    assert duplicates == {}, f"{len(duplicates)} recipients got the email twice"
    delivered = {rcpt for rcpt, _ in counts if rcpt.startswith("reader")}
    # A row marked `sending` when alpha died may or may not have reached the server: the ledger
    # lists it as ambiguous for a person to decide and never sends it again by itself.
    ambiguous = {recipient for _, _, recipient in ledger.ambiguous(release="big-news")}
    everyone = {f"reader{i:05d}@subscribers.example.org" for i in range(SUBSCRIBERS)}
    assert report.sent + report.ambiguous == SUBSCRIBERS, report.as_text()
    assert (report.pending, report.deferred, report.failed) == (0, 0, 0), report.as_text()
    assert everyone - ambiguous <= delivered and delivered <= everyone
    from pressroom.mail.transports import transport_for
    from pressroom.settings import load_settings

    settings = load_settings(stack.root / "pressroom.toml", environ={})
    # At most the messages in flight: one window per SMTP connection of each send task of the dead worker.
    assert report.ambiguous <= settings.email.workers * settings.smtp.connections * transport_for(settings=settings).window


def _runs_of(stack: Stack, flow_name: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))


def test_digest_deployment_runs_on_a_worker(stack: Stack) -> None:
    stack.ensure_worker("beta")
    run = stack.wait_final(stack.run("digest/digest"), timeout=300)
    assert run.state.is_completed(), run.state


def test_approval_is_resumed_through_the_api_and_then_the_email_goes_out(stack: Stack) -> None:
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run

    stack.ensure_worker("beta")
    _subscribe(stack.root / "approval.toml", 3, "careful")
    _write_release(stack, "needs-a-yes", content="content-approval")
    run_id = stack.run("publish/publish", settings_file="approval.toml")
    # 30 minutes of patience is a long wait: the run suspends and frees the worker.
    _wait(lambda: stack.flow_run(run_id).state.is_paused(), timeout=180, what="the run to wait for approval")
    assert stack.flow_run(run_id).state.name == "Suspended"  # not holding a worker while it waits
    proof = _wait(lambda: [m for m in stack.received.messages if b"Needs A Yes" in m], timeout=30, what="the proof")
    assert proof
    assert not any(r.startswith("careful") for r, _ in stack.received.counts), "nothing goes out before approval"
    with get_client(sync_client=True) as client:
        [artifact] = [a for a in client.read_latest_artifacts(limit=100) if a.key == "approval-needs-a-yes"]
    assert "up to **3** confirmed subscriber(s)" in str(artifact.data)

    resume_flow_run(run_id, run_input={"approve": True, "note": "checked the figures"})
    run = stack.wait_final(run_id, timeout=300)
    assert run.state.is_completed(), run.state
    careful = sorted(r for r, _ in stack.received.counts if r.startswith("careful"))
    assert careful == [f"careful{i:05d}@subscribers.example.org" for i in range(3)]
    # The resumed run started again from the top and did not send a second proof.
    assert stack.received.by_recipient()[EDITOR] == 1


def test_a_suspended_run_is_approved_from_the_proofs_link(stack: Stack) -> None:
    """The editor's Approve link, served by the web app's routes, resumes a run that freed its worker."""
    import email
    import email.policy
    import re

    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from pressroom.cli.gate import prefect_gate
    from pressroom.settings import load_settings
    from pressroom.web.approval import approval_routes

    stack.ensure_worker("beta")
    _subscribe(stack.root / "approval.toml", 2, "linked")
    _write_release(stack, "yes-by-link", content="content-approval")
    run_id = stack.run("publish/publish", settings_file="approval.toml")
    _wait(lambda: stack.flow_run(run_id).state.is_paused(), timeout=180, what="the run to wait for approval")
    assert stack.flow_run(run_id).state.name == "Suspended"
    [proof] = _wait(lambda: [m for m in stack.received.messages if b"Yes By Link" in m], timeout=30, what="the proof")
    message = email.message_from_bytes(proof, policy=email.policy.default)
    assert message["Subject"] == "[PROOF] Yes By Link"
    text = message.get_body(preferencelist=("plain",)).get_content()
    [approve] = re.findall(r"^Approve: https://press\.example\.org(/approval/\S+)", text, flags=re.MULTILINE)

    client = TestClient(Starlette(routes=approval_routes(settings=load_settings(stack.root / "approval.toml", environ={}), gate=prefect_gate())))
    assert client.get(approve).status_code == 200 and stack.flow_run(run_id).state.name == "Suspended"
    assert client.post(approve).status_code == 200
    run = stack.wait_final(run_id, timeout=300)
    assert run.state.is_completed(), run.state
    linked = sorted(r for r, _ in stack.received.counts if r.startswith("linked"))
    assert linked == ["linked00000@subscribers.example.org", "linked00001@subscribers.example.org"]
    assert client.post(approve).status_code == 400  # once only
    assert len([m for m in stack.received.messages if b"Yes By Link" in m]) == 1  # the restarted run sent no second proof
