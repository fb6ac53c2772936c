"""A failed run tells the operators: an email through the configured transport and a webhook block."""

from __future__ import annotations

import json
import threading
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from prefect import flow

from flows.alerts import notify_failure
from tests.conftest import Project

pytestmark = pytest.mark.usefixtures("prefect_harness")


@flow(name="doomed", on_failure=[notify_failure])
def doomed(settings_file: str) -> None:
    raise RuntimeError("the SMTP relay is on fire")


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # http.server's name
        Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_failed_run_emails_the_operators_and_calls_the_webhook(project: Project) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        CustomWebhookNotificationBlock(
            name="ops", url=f"http://127.0.0.1:{server.server_port}/hook", json_data={"text": "{{subject}}: {{body}}"}
        ).save("pressroom-ops-test", overwrite=True)
        toml = project.root / "pressroom.toml"
        toml.write_text(
            toml.read_text()
            + '\n[ops]\nnotify = ["ops@example.org", "oncall@example.org"]\nnotify_block = "custom-webhook/pressroom-ops-test"\n'
        )
        state = doomed(str(toml), return_state=True)
    finally:
        server.shutdown()
    assert state.is_failed()

    outbox = project.settings().path("var") / "outbox" / "email"
    mails = sorted(outbox.glob("ops-failure-*/*.eml"))
    assert [m.name for m in mails] == ["oncall@example.org.eml", "ops@example.org.eml"]
    mail = message_from_bytes(mails[1].read_bytes(), policy=policy.default)
    assert mail["To"] == "ops@example.org"
    assert mail["Subject"].startswith("[pressroom] doomed run ") and mail["Subject"].endswith(" failed")
    assert mail["Auto-Submitted"] == "auto-generated"  # RFC 3834: no vacation replies to an alert
    assert "the SMTP relay is on fire" in mail.get_body(preferencelist=("plain",)).get_content()
    [call] = Hook.received
    assert "doomed run" in call["text"] and "the SMTP relay is on fire" in call["text"]


def test_a_broken_webhook_still_lets_the_email_go(project: Project) -> None:
    toml = project.root / "pressroom.toml"
    toml.write_text(toml.read_text() + '\n[ops]\nnotify = ["ops@example.org"]\nnotify_block = "custom-webhook/does-not-exist"\n')
    assert doomed(str(toml), return_state=True).is_failed()
    outbox = project.settings().path("var") / "outbox" / "email"
    assert [m.name for m in outbox.glob("ops-failure-*/*.eml")] == ["ops@example.org.eml"]
