"""The subscription web app, route by route, through Starlette's TestClient (real app, real SQLite, outbox mail).

What a person or an attacker would notice: pages and their status codes, the emails in the
outbox, and the subscriber's state in the database.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from pressroom.audience import Audience, sign_token, unsubscribe_url, preferences_url
from pressroom.settings import Settings
from pressroom.web import create_app
from tests._delivery import settle_subscription_emails
from tests.conftest import NOW, Project

BASE = "https://press.example.org"


class Clock:
    """The app's clock, moved by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Web:
    """A running app on a temp project, with helpers to read what it did."""

    project: Project
    settings: Settings
    clock: Clock
    client: TestClient
    audience: Audience
    _seen: set[Path] = field(default_factory=set)

    def outbox(self) -> list[Path]:
        settle_subscription_emails(self.settings)
        folder = self.settings.path("var") / "outbox" / "email"
        return sorted(folder.rglob("*.eml"), key=lambda p: p.stat().st_mtime_ns) if folder.exists() else []

    def new_mail(self) -> list[email.message.EmailMessage]:
        """Messages written since the last call."""
        fresh = [path for path in self.outbox() if path not in self._seen]
        self._seen.update(fresh)
        return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default) for path in fresh]

    def subscribe_form(self) -> str:
        """GET /subscribe; returns the CSRF token of the form (the cookie stays in the client)."""
        page = self.client.get("/subscribe")
        assert page.status_code == 200
        return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)

    def subscribe(self, address: str, **fields: object) -> object:
        data = {"email": address, "csrf_token": self.subscribe_form(), "form": "subscribe-page", "cadence": "per-release", **fields}
        return self.client.post("/subscribe", data=data)

    def subscriber(self, address: str):
        return self.audience.get(address=address)


def _text(message: email.message.EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def link_in(message: email.message.EmailMessage, path: str) -> str:
    """The first link to ``path`` (e.g. /confirm) in the plain-text part, as a site-relative URL."""
    match = re.search(re.escape(BASE + path) + r"\?token=[A-Za-z0-9_.%-]+", _text(message))
    assert match, f"no {path} link in:\n{_text(message)}"
    parts = urlsplit(match.group(0))
    return f"{parts.path}?{parts.query}"


def make_web(project: Project, **env: str) -> Iterator[Web]:
    project.write_release(
        "cathode-recycling",
        title="Cathode recycling pilot opens",
        extra='tags: [Recycling, "Raw materials"]\n',
    )
    settings = project.settings(**env)
    clock = Clock(NOW)
    app = create_app(settings=settings, clock=clock)
    with TestClient(app, base_url=BASE) as client:
        yield Web(project, settings, clock, client, Audience.from_settings(settings))


@pytest.fixture
def web(project: Project) -> Iterator[Web]:
    yield from make_web(project)


def press_confirm(web: Web, link: str):
    """Open a confirmation link and press its button, as a person does; returns the answer to the POST."""
    page = web.client.get(link)
    assert page.status_code == 200 and "Confirm my subscription" in page.text
    action = re.search(r'<form[^>]+action="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    return web.client.post(action)


def confirmed(web: Web, address: str, **fields: object) -> str:
    """Subscribe and confirm ``address``; returns nothing but leaves the outbox read."""
    assert web.subscribe(address, **fields).status_code == 200
    (message,) = web.new_mail()
    assert press_confirm(web, link_in(message, "/confirm")).status_code == 200
    web.new_mail()
    return address


# --------------------------------------------------------------------------- subscribe


def test_subscribe_page_is_an_accessible_form_with_the_site_layout(web: Web) -> None:
    page = web.client.get("/subscribe")
    assert page.status_code == 200
    html = page.text
    assert '<html lang="en">' in html
    assert 'href="/static/style.css"' in html and "Test Hub" in html  # the archive's layout
    for field_id, label in [("field-email", "Email address"), ("field-name", "Name")]:
        assert re.search(rf'<label for="{field_id}">{label}', html)
        assert f'id="{field_id}"' in html
    # Topics come from the public releases' tags, as checkboxes with visible labels.
    assert 'value="recycling"> Recycling</label>' in html
    assert 'value="raw-materials"> Raw materials</label>' in html
    assert "<script" not in html
    assert "Test Hub by email" in html  # the consent text is shown next to the button
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    cookie = page.headers["set-cookie"]
    assert "pressroom_csrf=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_subscribing_sends_a_confirmation_and_confirming_subscribes(web: Web) -> None:
    answer = web.subscribe("Reader@Example.org", name="Ada Reader", topics=["recycling"], cadence="weekly")
    assert answer.status_code == 200
    assert "Check your inbox" in answer.text
    pending = web.subscriber("reader@example.org")
    assert (pending.status, pending.topics, pending.cadence, pending.name) == ("pending", ("recycling",), "weekly", "Ada Reader")

    (message,) = web.new_mail()
    # Nothing the requester typed goes to an address that has not confirmed: no name, anywhere.
    assert message["To"] == "reader@example.org"
    assert "Ada" not in message.as_string()
    assert "Confirm your subscription" in message["Subject"]
    confirm = link_in(message, "/confirm")

    page = press_confirm(web, confirm)
    assert page.status_code == 200 and "You are subscribed" in page.text
    now = web.subscriber("reader@example.org")
    assert now.status == "confirmed" and now.confirmed_at == NOW
    (welcome,) = web.new_mail()
    assert "Welcome" in welcome["Subject"] and welcome["To"] == "Ada Reader <reader@example.org>"
    # The welcome says what the reader chose (issue 16 item 3).
    text = " ".join(_text(welcome).split())
    assert "You chose a weekly digest of our press releases, on Recycling, in English (en)." in text
    html = " ".join(welcome.get_body(preferencelist=("html",)).get_content().split())
    assert "You chose a weekly digest of our press releases, on Recycling, in English (en)." in html

    # The link works once: opening it again changes nothing and sends nothing.
    again = web.client.get(confirm)
    assert again.status_code == 400 and "used already" in again.text
    assert web.client.post(confirm).status_code == 400
    assert web.new_mail() == []

    kinds = [event.kind for event in web.audience.events(address="reader@example.org")]
    assert kinds == ["requested", "confirmation-sent", "confirmed"]


def test_consent_evidence_holds_time_ip_hash_form_version_and_text(web: Web) -> None:
    confirmed(web, "evidence@example.org")
    events = web.audience.events(address="evidence@example.org")
    requested = json.loads(events[0].detail)
    confirmation = json.loads(events[-1].detail)
    for record in (requested, confirmation):
        assert re.fullmatch(r"[0-9a-f]{24}", record["ip_hash"])
        assert "testclient" not in json.dumps(record)  # the client address itself is never stored
        assert record["text"].startswith("I want to receive press releases from Test Hub by email")
        assert re.fullmatch(r"c[0-9a-f]{10}", record["form_version"])
    assert requested["form"] == "subscribe-page" and confirmation["form"] == "confirm-button"
    assert confirmation["choices"]["cadence"] == "per-release"
    assert all(event.at == NOW for event in events)


def test_the_archive_pages_form_without_token_is_accepted_from_the_site_origin(web: Web) -> None:
    # The static pages cannot carry a token; the browser's Origin header says where the POST comes from.
    data = {"email": "static@example.org", "csrf_token": "", "cadence": "per-release", "website": ""}
    answer = web.client.post("/subscribe", data=data, headers={"Origin": BASE})
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    assert web.subscriber("static@example.org").status == "pending"
    (_message,) = web.new_mail()
    assert json.loads(web.audience.events(address="static@example.org")[0].detail)["form"] == "archive-page"


def test_a_post_from_another_site_changes_nothing(web: Web) -> None:
    data = {"email": "victim@example.org", "csrf_token": "", "cadence": "per-release"}
    answer = web.client.post("/subscribe", data=data, headers={"Origin": "https://evil.example.net"})
    assert answer.status_code == 403
    assert "came from another site" in answer.text
    assert web.subscriber("victim@example.org") is None and web.new_mail() == []
    # Referer is the fallback when a browser sends no Origin.
    answer = web.client.post("/subscribe", data=data, headers={"Referer": "https://evil.example.net/page"})
    assert answer.status_code == 403 and web.subscriber("victim@example.org") is None


def test_a_post_without_token_or_origin_asks_the_person_to_press_subscribe_again(web: Web) -> None:
    data = {"email": "plain@example.org", "name": "Pat", "topics": ["recycling"], "cadence": "weekly"}
    answer = web.client.post("/subscribe", data=data)
    assert answer.status_code == 200
    assert "press Subscribe to continue" in answer.text
    assert web.subscriber("plain@example.org") is None and web.new_mail() == []
    # The form comes back filled in, with a fresh token: one more press subscribes.
    assert 'value="plain@example.org"' in answer.text and 'value="recycling" checked' in answer.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', answer.text).group(1)
    again = web.client.post("/subscribe", data={**data, "csrf_token": token})
    assert "Check your inbox" in again.text and web.subscriber("plain@example.org").cadence == "weekly"


def test_a_wrong_or_foreign_csrf_token_is_refused(web: Web) -> None:
    token = web.subscribe_form()
    nonce, issued, mac = token.split(".")
    for bad in [f"{nonce}.{issued}.{'0' * 32}", f"{nonce}.{int(issued) - 13 * 3600}.{mac}", "garbage"]:
        answer = web.client.post("/subscribe", data={"email": "x@example.org", "csrf_token": bad})
        assert answer.status_code == 403
    # A genuine token from someone else's session does not fit this browser's cookie.
    other = TestClient(web.client.app, base_url=BASE)
    foreign = re.search(r'name="csrf_token" value="([^"]+)"', other.get("/subscribe").text).group(1)
    answer = web.client.post("/subscribe", data={"email": "x@example.org", "csrf_token": foreign})
    assert answer.status_code == 403
    assert web.subscriber("x@example.org") is None and web.new_mail() == []


def test_the_honeypot_gets_the_normal_answer_and_nothing_happens(web: Web) -> None:
    answer = web.subscribe("bot@example.org", website="https://spam.example")
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    assert web.subscriber("bot@example.org") is None and web.new_mail() == []


def test_known_and_unknown_addresses_get_identical_answers(web: Web) -> None:
    # Addresses of one length, so that even Content-Length could not differ by content.
    confirmed(web, "known1@example.org")
    web.subscribe("pend01@example.org")
    web.new_mail()
    answers = {}
    for address in ["known1@example.org", "pend01@example.org", "unkno1@example.org"]:
        response = web.subscribe(address)
        headers = {k: v for k, v in response.headers.items() if k != "date"}
        answers[address] = (response.status_code, response.text.replace(address, "ADDRESS"), headers)
    assert answers["known1@example.org"] == answers["unkno1@example.org"] == answers["pend01@example.org"]
    # Only the addresses that still need it get a confirmation email.
    assert sorted(message["To"] for message in web.new_mail()) == ["pend01@example.org", "unkno1@example.org"]


def test_invalid_input_is_explained_next_to_the_field(web: Web) -> None:
    answer = web.subscribe("not an address", name="<b>Eve</b>", cadence="hourly")
    assert answer.status_code == 400
    html = answer.text
    assert 'role="alert"' in html and 'href="#field-email"' in html
    assert 'aria-invalid="true" aria-describedby="email-error"' in html and "autofocus" in html
    assert "Enter an email address in the form name@example.org." in html
    assert "Choose how often" in html
    assert "<b>Eve</b>" not in html and "&lt;b&gt;Eve&lt;/b&gt;" in html  # kept, escaped
    assert web.new_mail() == []


def test_names_cannot_inject_headers_or_html(web: Web) -> None:
    nasty = 'Eve\r\nBcc: victim\u2028X-Injected: yes<script>alert(1)</script>\x00'
    web.subscribe("eve@example.org", name=nasty)
    stored = web.subscriber("eve@example.org").name
    assert "\n" not in stored and "\r" not in stored and "\x00" not in stored and "\u2028" not in stored
    (message,) = web.new_mail()
    assert message["Bcc"] is None and message["X-Injected"] is None
    assert message["To"].addresses[0].addr_spec == "eve@example.org" and len(message["To"].addresses) == 1
    press_confirm(web, link_in(message, "/confirm"))
    (welcome,) = web.new_mail()  # the name goes into the header only once the address confirmed
    assert welcome["Bcc"] is None and welcome["X-Injected"] is None and len(welcome["To"].addresses) == 1
    token = sign_token(settings=web.settings, action="preferences", subscriber_id=web.subscriber("eve@example.org").id)
    page = web.client.get("/preferences", params={"token": token})
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text


@pytest.mark.parametrize("name", ["Win big at https://spam.example", "visit www.spam.example", "mail me@spam.example", "cheap.pills.com now"])
def test_names_cannot_carry_links_into_confirmation_emails(web: Web, name: str) -> None:
    answer = web.subscribe("target@example.org", name=name)
    assert answer.status_code == 400 and "A name cannot contain a web or email address." in answer.text
    assert web.subscriber("target@example.org") is None and web.new_mail() == []


def test_ordinary_names_are_kept(web: Web) -> None:
    for n, name in enumerate(["J.R.R. Tolkien", "Dr. Ana Müller-Lüdenscheidt", "O'Brien, Siobhán", "李小龍"]):
        assert web.subscribe(f"n{n}@example.org", name=name).status_code == 200
        assert web.subscriber(f"n{n}@example.org").name == name


def test_per_ip_rate_limit_answers_429(project: Project) -> None:
    for web in make_web(project, PRESSROOM_WEB__POSTS_PER_IP_PER_MINUTE="3"):
        statuses = [web.subscribe(f"r{n}@example.org").status_code for n in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        refused = web.subscribe("late@example.org")
        assert "Too many attempts" in refused.text and int(refused.headers["retry-after"]) >= 1
        assert web.subscriber("late@example.org") is None


def test_confirmation_emails_are_limited_per_address_without_telling(project: Project) -> None:
    for web in make_web(project, PRESSROOM_WEB__CONFIRMATIONS_PER_ADDRESS_PER_DAY="2"):
        answers = {web.subscribe("again@example.org").text for _ in range(4)}
        assert len(answers) == 1  # the same page every time
        assert len(web.new_mail()) == 2
        web.clock.now = NOW + timedelta(days=1, minutes=1)  # a day later the address may ask again
        web.subscribe("again@example.org")
        assert len(web.new_mail()) == 1


def test_confirmation_emails_are_limited_per_client(project: Project) -> None:
    for web in make_web(project, PRESSROOM_WEB__CONFIRMATIONS_PER_IP_PER_HOUR="2"):
        for n in range(4):
            assert "Check your inbox" in web.subscribe(f"c{n}@example.org").text
        assert len(web.new_mail()) == 2


# --------------------------------------------------------------------------- confirm


def test_forged_altered_expired_or_misused_confirm_tokens_get_400_and_change_nothing(web: Web) -> None:
    web.subscribe("careful@example.org")
    (message,) = web.new_mail()
    good = link_in(message, "/confirm")
    token = parse_qs(urlsplit(good).query)["token"][0]
    subscriber_id = web.subscriber("careful@example.org").id
    payload, mac = token.split(".")
    forged = sign_token(settings=web.settings.model_copy(update={"secret_key": SecretStr("not-the-secret")}), action="confirm-request", subscriber_id=1)
    unsubscribe_token = sign_token(settings=web.settings, action="unsubscribe", subscriber_id=subscriber_id)
    for bad in [f"{payload}.{mac[:-2]}xx", forged, unsubscribe_token, "", "%%%"]:
        for method in (web.client.get, web.client.post):
            page = method("/confirm", params={"token": bad})
            assert page.status_code == 400, bad
            assert "This link does not work" in page.text and "Nothing was changed" in page.text
    web.clock.now = NOW + timedelta(hours=48, seconds=1)
    expired = web.client.post(good)
    assert expired.status_code == 400 and "expired" in expired.text
    assert web.subscriber("careful@example.org").status == "pending"
    assert web.new_mail() == []


# --------------------------------------------------------------------------- unsubscribe


def test_unsubscribe_page_has_a_button_and_one_click_post_unsubscribes(web: Web) -> None:
    confirmed(web, "leaving@example.org")
    sub = web.subscriber("leaving@example.org")
    url = urlsplit(unsubscribe_url(settings=web.settings, subscriber_id=sub.id))
    path = f"{url.path}?{url.query}"
    page = web.client.get(path)
    assert page.status_code == 200 and "<button" in page.text and "Unsubscribe" in page.text
    assert web.subscriber("leaving@example.org").status == "confirmed"  # GET alone changes nothing

    # RFC 8058: a mail client's POST, no cookie, no CSRF token, no session.
    client = TestClient(web.client.app, base_url=BASE)
    answer = client.post(path, content=b"List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200 and "You are unsubscribed" in answer.text
    assert web.subscriber("leaving@example.org").status == "unsubscribed"
    assert web.audience.is_suppressed(address="leaving@example.org")
    (goodbye,) = web.new_mail()
    assert "unsubscribed" in goodbye["Subject"]
    # Repeating it is harmless and sends nothing more.
    assert client.post(path, content=b"List-Unsubscribe=One-Click").status_code == 200
    assert web.new_mail() == []
    assert "You are unsubscribed" in web.client.get(path).text


def test_forged_unsubscribe_post_is_refused(web: Web) -> None:
    confirmed(web, "stays@example.org")
    sub = web.subscriber("stays@example.org")
    wrong = sign_token(settings=web.settings, action="preferences", subscriber_id=sub.id)
    for token in [wrong, wrong[:-3] + "abc", "nothing"]:
        answer = web.client.post("/unsubscribe", params={"token": token}, content=b"List-Unsubscribe=One-Click")
        assert answer.status_code == 400
    assert web.subscriber("stays@example.org").status == "confirmed"


def test_unsubscribed_reader_can_subscribe_again_with_double_opt_in(web: Web) -> None:
    confirmed(web, "back@example.org")
    sub = web.subscriber("back@example.org")
    url = urlsplit(unsubscribe_url(settings=web.settings, subscriber_id=sub.id))
    web.client.post(f"{url.path}?{url.query}", content=b"List-Unsubscribe=One-Click")
    web.new_mail()
    web.subscribe("back@example.org", cadence="weekly")
    assert web.subscriber("back@example.org").status == "unsubscribed"  # not before confirming
    (message,) = web.new_mail()
    press_confirm(web, link_in(message, "/confirm"))
    back = web.subscriber("back@example.org")
    assert back.status == "confirmed" and back.cadence == "weekly"
    assert not web.audience.is_suppressed(address="back@example.org")


# --------------------------------------------------------------------------- preferences


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_preferences_change_topics_cadence_language_and_name(web: Web) -> None:
    confirmed(web, "prefs@example.org")
    sub = web.subscriber("prefs@example.org")
    path = _path(preferences_url(settings=web.settings, subscriber_id=sub.id))
    page = web.client.get(path)
    assert page.status_code == 200 and "prefs@example.org" in page.text
    assert '<label for="field-language">' in page.text and "English (en)" in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    saved = web.client.post(
        path,
        data={"csrf_token": csrf, "name": "Pref Erence", "topics": ["raw-materials"], "cadence": "weekly", "language": "en"},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    after = web.client.get(saved.headers["location"])
    assert "Your preferences are saved." in after.text and 'value="raw-materials" checked' in after.text
    now = web.subscriber("prefs@example.org")
    assert (now.topics, now.cadence, now.name) == (("raw-materials",), "weekly", "Pref Erence")
    assert web.audience.events(address="prefs@example.org")[-1].kind == "preferences"


def test_preferences_refuse_missing_csrf_unknown_language_and_forged_tokens(web: Web) -> None:
    confirmed(web, "p2@example.org")
    sub = web.subscriber("p2@example.org")
    path = _path(preferences_url(settings=web.settings, subscriber_id=sub.id))
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', web.client.get(path).text).group(1)
    assert web.client.post(path, data={"cadence": "weekly"}).status_code == 403
    wrong_language = web.client.post(path, data={"csrf_token": csrf, "cadence": "weekly", "language": "xx"})
    assert wrong_language.status_code == 400 and "Choose a language from the list." in wrong_language.text
    forged = web.client.post("/preferences", params={"token": "bad.token"}, data={"csrf_token": csrf, "cadence": "weekly"})
    assert forged.status_code == 400
    assert web.subscriber("p2@example.org").cadence == "per-release"


# --------------------------------------------------------------------------- data


def test_export_downloads_everything_kept_as_json(web: Web) -> None:
    confirmed(web, "mine@example.org", name="Mina", topics=["recycling"])
    sub = web.subscriber("mine@example.org")
    token = sign_token(settings=web.settings, action="preferences", subscriber_id=sub.id)
    page = web.client.get("/data", params={"token": token})
    assert page.status_code == 200 and "Download my data" in page.text and "confirmed" in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    download = web.client.post("/data", params={"token": token}, data={"csrf_token": csrf, "action": "export"})
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("application/json")
    assert "attachment" in download.headers["content-disposition"]
    document = download.json()
    assert document["subscriber"]["address"] == "mine@example.org"
    assert document["subscriber"]["name"] == "Mina" and document["subscriber"]["topics"] == ["recycling"]
    assert [event["kind"] for event in document["consent_events"]] == ["requested", "confirmation-sent", "confirmed"]
    assert document["consent_events"][0]["detail"]["text"].startswith("I want to receive")


def test_erase_deletes_the_subscriber_and_their_links_stop_working(web: Web) -> None:
    confirmed(web, "gone@example.org")
    sub = web.subscriber("gone@example.org")
    token = sign_token(settings=web.settings, action="preferences", subscriber_id=sub.id)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', web.client.get("/data", params={"token": token}).text).group(1)
    unticked = web.client.post("/data", params={"token": token}, data={"csrf_token": csrf, "action": "erase"})
    assert unticked.status_code == 400 and "Tick the box" in unticked.text
    assert web.subscriber("gone@example.org") is not None
    no_csrf = web.client.post("/data", params={"token": token}, data={"action": "erase", "confirm": "yes"})
    assert no_csrf.status_code == 403 and web.subscriber("gone@example.org") is not None

    erased = web.client.post("/data", params={"token": token}, data={"csrf_token": csrf, "action": "erase", "confirm": "yes"})
    assert erased.status_code == 200 and "Your data is erased" in erased.text
    assert web.subscriber("gone@example.org") is None
    assert web.audience.events(address="gone@example.org") == []
    assert not [p for p in web.outbox() if b"gone@example.org" in p.read_bytes()]
    assert not web.audience.is_suppressed(address="gone@example.org")
    assert web.client.get("/preferences", params={"token": token}).status_code == 400
    old_unsubscribe = _path(unsubscribe_url(settings=web.settings, subscriber_id=sub.id))
    assert web.client.post(old_unsubscribe, content=b"List-Unsubscribe=One-Click").status_code == 400


# --------------------------------------------------------------------------- housekeeping and static files


def test_unconfirmed_addresses_expire(project: Project) -> None:
    settings = None
    for web in make_web(project):
        web.subscribe("slow@example.org")
        web.new_mail()
        confirmed(web, "quick@example.org")
        settings = web.settings
    later = Clock(NOW + timedelta(days=7, minutes=1))
    with TestClient(create_app(settings=settings, clock=later), base_url=BASE):
        pass  # starting the app sweeps expired pendings
    audience = Audience.from_settings(settings)
    assert audience.get(address="slow@example.org") is None
    assert audience.events(address="slow@example.org") == []
    assert audience.get(address="quick@example.org").status == "confirmed"


def test_public_files_are_served_with_validators_and_cache_headers(web: Web) -> None:
    public = web.settings.path("public")
    (public / "releases" / "x").mkdir(parents=True)
    (public / "releases" / "x" / "index.html").write_text("<!doctype html><title>x</title>", encoding="utf-8")
    (public / "style.css").write_text("body{}", encoding="utf-8")
    page = web.client.get("/releases/x/")
    assert page.status_code == 200 and page.text.startswith("<!doctype html>")
    assert page.headers["etag"] and page.headers["last-modified"]
    assert page.headers["cache-control"] == "no-cache"
    assert page.headers["x-content-type-options"] == "nosniff"
    # Not no-referrer: a browser would then send "Origin: null" with the archive form's POST.
    assert page.headers["referrer-policy"] == "same-origin"
    cached = web.client.get("/releases/x/", headers={"If-None-Match": page.headers["etag"]})
    assert cached.status_code == 304
    assert web.client.get("/style.css").headers["cache-control"] == "public, max-age=3600"
    assert web.client.get("/nothing-here").status_code == 404
    css = web.client.get("/_pressroom/web.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
