"""End to end in headless Chromium: subscribe on an archive page, confirm from the email, receive a release, unsubscribe.

Real parts on loopback: uvicorn serving the app and public/, an aiosmtpd SMTP server receiving
everything Pressroom sends (smtp transport), Debian's Chromium driven by Playwright, SQLite, and
the publish flow (Prefect test harness) for the releases.
"""

from __future__ import annotations

import email
import email.policy
import re
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pressroom.audience import Audience
from pressroom.mail.preview import CHROMIUM, CHROMIUM_ARGS
from tests._delivery import free_port, serving
from tests.conftest import NOW, Project

pytestmark = [pytest.mark.browser, pytest.mark.slow]



class Mailbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's hook signature
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(([r.lower() for r in envelope.rcpt_tos], message))
        return "250 2.0.0 OK"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        with self.lock:
            return [message for rcpts, message in self.messages if address in rcpts]

    def wait_for(self, address: str, subject: str, timeout: float = 60.0) -> email.message.EmailMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.to(address):
                if subject in message["Subject"]:
                    return message
            time.sleep(0.1)
        got = [m["Subject"] for m in self.to(address)]
        raise AssertionError(f"no email with {subject!r} reached {address} in {timeout} s; got {got}")


def _text(message: email.message.EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    from aiosmtpd.controller import Controller

    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def site(tmp_path: Path, mailbox: tuple[Mailbox, int]) -> Iterator[tuple[Project, str]]:
    """A project whose site is served by `pressroom.web` on loopback and whose email goes to the aiosmtpd server."""
    import uvicorn

    from pressroom.web import create_app

    _, smtp_port = mailbox
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    toml = textwrap.dedent(
        f"""
        [site]
        name = "Test Hub"
        base_url = "{base}"
        timezone = "Europe/Brussels"

        [email]
        transport = "smtp"
        sender = "press@example.org"
        sender_name = "Test Hub"

        [smtp]
        host = "127.0.0.1"
        port = {smtp_port}
        security = "none"

        [[social]]
        network = "outbox"
        enabled = false
        """
    )
    project = Project(tmp_path, toml)
    project.write_release("battery-passport", title="Battery passport pilot", date="2024-07-30 09:00",
                          extra="tags: [Recycling, Policy]\n")
    settings = project.settings()
    server = uvicorn.Server(uvicorn.Config(create_app(settings=settings), host="127.0.0.1", port=port, log_level="warning"))
    with serving(server):
        yield project, base


def test_subscribe_confirm_receive_and_unsubscribe_in_a_real_browser(
    site: tuple[Project, str], mailbox: tuple[Mailbox, int], publish: Callable[..., object]
) -> None:
    from playwright.sync_api import sync_playwright

    project, base = site
    box, _ = mailbox
    reader = "reader@example.org"
    # The first run publishes the site (and plans the first release for nobody: no subscriber yet).
    publish(settings_file=str(project.root / "pressroom.toml"), now=NOW)
    assert (project.root / "public" / "releases" / "battery-passport" / "index.html").is_file()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            # 1. Subscribe through the form embedded in an archive page (a static file served by the app).
            page.goto(f"{base}/releases/battery-passport/")
            form = page.locator("form.subscribe-form")
            form.get_by_label("Email address").fill(reader)
            form.get_by_label("Name").fill("Ada Reader")
            form.get_by_label("Recycling").check()
            form.get_by_role("button", name="Subscribe").click()
            page.wait_for_load_state()
            assert page.url == f"{base}/subscribe"
            assert page.get_by_role("heading", name="Check your inbox").is_visible()

            audience = Audience.from_settings(project.settings())
            assert audience.get(address=reader).status == "pending"

            # 2. The confirmation email arrives over SMTP; its link opens a page whose button confirms.
            confirmation = box.wait_for(reader, "Confirm your subscription")
            link = re.search(re.escape(base) + r"/confirm\?token=\S+", _text(confirmation)).group(0)
            page.goto(link)
            assert audience.get(address=reader).status == "pending"  # opening the link alone confirms nothing
            page.get_by_role("button", name="Confirm my subscription").click()
            page.wait_for_load_state()
            assert page.get_by_role("heading", name="You are subscribed").is_visible()
            subscriber = audience.get(address=reader)
            assert subscriber.status == "confirmed" and subscriber.topics == ("recycling",)
            box.wait_for(reader, "Welcome")

            # 3. A new release on the subscribed topic reaches the reader through the publish flow.
            project.write_release("recycling-plant", title="Recycling plant opens", date="2024-08-02 09:00",
                                  extra="tags: [Recycling]\n")
            publish(settings_file=str(project.root / "pressroom.toml"), now=NOW + timedelta(days=2))
            release_mail = box.wait_for(reader, "Recycling plant opens")
            assert release_mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            unsubscribe = re.search(r"<(https?://[^>]+/unsubscribe\?token=[^>]+)>", release_mail["List-Unsubscribe"]).group(1)
            assert unsubscribe.startswith(base)

            # 4a. The link as a page: it shows a button and changes nothing by itself.
            page.goto(unsubscribe)
            assert page.get_by_role("button", name="Unsubscribe").is_visible()
            assert audience.get(address=reader).status == "confirmed"
            # 4b. The same URL as an RFC 8058 one-click POST, as a mailbox provider sends it: no cookies, no page.
            one_click = playwright.request.new_context()
            answer = one_click.post(
                unsubscribe,
                data="List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert answer.status == 200
            one_click.dispose()
            assert audience.get(address=reader).status == "unsubscribed"
            page.goto(unsubscribe)
            assert page.get_by_role("heading", name="You are unsubscribed").is_visible()
        finally:
            browser.close()

    # 5. The next release does not reach them, though it does reach a reader who stayed.
    audience.add(address="stays@example.org", now=NOW, source="test", topics=["recycling"])
    project.write_release("second-plant", title="Second recycling plant", date="2024-08-05 09:00",
                          extra="tags: [Recycling]\n")
    publish(settings_file=str(project.root / "pressroom.toml"), now=NOW + timedelta(days=5))
    box.wait_for("stays@example.org", "Second recycling plant")
    assert [m["Subject"] for m in box.to(reader) if "Second recycling plant" in m["Subject"]] == []
