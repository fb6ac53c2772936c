"""A real Bluesky PDS (+ PLC) on loopback for the tests, started from tests/pds/start.mjs.

``scripts/system-deps`` installs ``@atproto/dev-env`` into ``$PRESSROOM_PDS_DIR``
(default /var/cache/pressroom-pds as root, ~/.cache/pressroom-pds otherwise), outside the checkout.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

START = Path(__file__).with_name("start.mjs")


@dataclass(frozen=True)
class Pds:
    url: str

    def create_account(self, name: str) -> tuple[str, str, str]:
        """A new account: (handle, password, did)."""
        handle, password = f"{name}-{secrets.token_hex(3)}.test", secrets.token_urlsafe(12)
        response = httpx.post(
            f"{self.url}/xrpc/com.atproto.server.createAccount",
            json={"email": f"{handle}@example.org", "handle": handle, "password": password},
            timeout=30,
        )
        response.raise_for_status()
        return handle, password, response.json()["did"]

    def records(self, did: str) -> list[dict]:
        """Every app.bsky.feed.post record in the repo, oldest key first."""
        response = httpx.get(
            f"{self.url}/xrpc/com.atproto.repo.listRecords",
            params={"repo": did, "collection": "app.bsky.feed.post", "limit": 100, "reverse": "true"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["records"]

    def like(self, *, handle: str, password: str, did: str, uri: str, cid: str, kind: str = "like") -> None:
        """The account ``handle`` likes (or, with ``kind="repost"``, reposts) the post ``uri``."""
        session = httpx.post(f"{self.url}/xrpc/com.atproto.server.createSession",
                             json={"identifier": handle, "password": password}, timeout=30)
        session.raise_for_status()
        response = httpx.post(
            f"{self.url}/xrpc/com.atproto.repo.createRecord",
            headers={"Authorization": f"Bearer {session.json()['accessJwt']}"},
            json={"repo": did, "collection": f"app.bsky.feed.{kind}",
                  "record": {"$type": f"app.bsky.feed.{kind}", "subject": {"uri": uri, "cid": cid},
                             "createdAt": "2026-12-07T10:00:00.000Z"}},
            timeout=30,
        )
        response.raise_for_status()

    def blob(self, did: str, cid: str) -> bytes:
        response = httpx.get(f"{self.url}/xrpc/com.atproto.sync.getBlob", params={"did": did, "cid": cid}, timeout=30)
        response.raise_for_status()
        return response.content


@contextmanager
def running_pds(*, rate_limits: bool = False, appview: bool = False, timeout: float = 180.0) -> Iterator[Pds]:
    """Start a PDS, yield it once it answers, stop it afterwards (closing stdin ends the script).

    ``appview``: with Bluesky's AppView behind it, which counts likes, reposts and replies; it keeps its
    index in the tests' PostgreSQL and needs the machine's Redis on loopback."""
    command = ["node", str(START)] + (["--rate-limits"] if rate_limits else []) + (["--appview"] if appview else [])
    errors = tempfile.TemporaryFile(mode="w+")
    pg = os.environ.get("PRESSROOM_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test").replace("+psycopg", "")
    schema = "appview" + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8))  # letters only, as it asks
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True,
        env={"REDIS_HOST": "127.0.0.1:6379", "PRESSROOM_APPVIEW_DB": pg, "PRESSROOM_APPVIEW_SCHEMA": schema,
             **os.environ, "NODE_ENV": "test", "LOG_ENABLED": "false"},
    )
    ready: dict = {}
    started = threading.Event()
    output: list[str] = []

    def read() -> None:
        # Keeps reading after the ready line so the PDS never blocks on a full pipe.
        assert process.stdout is not None
        for line in process.stdout:
            if not started.is_set():
                output.append(line)
            if line.startswith("PDS_READY "):
                ready.update(json.loads(line.removeprefix("PDS_READY ")))
                started.set()
        started.set()

    threading.Thread(target=read, daemon=True).start()
    started.wait(timeout)
    try:
        if not ready:
            process.kill()
            errors.seek(0)
            raise RuntimeError(f"the PDS did not start: {''.join(output)}{errors.read()[-3000:]} (run scripts/system-deps)")
        yield Pds(url=ready["url"])
    finally:
        if process.poll() is None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        errors.close()
        if appview:
            _drop_schema(pg, schema)


def _drop_schema(url: str, schema: str) -> None:
    """The AppView's (and its moderation service's) tables are the test's alone: dropped with it, so the
    database does not grow run after run. dev-env names them ``appview_<schema>`` and ``ozone_<schema>``."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for prefix in ("appview", "ozone"):
            conn.execute(f'DROP SCHEMA IF EXISTS "{prefix}_{schema}" CASCADE')
