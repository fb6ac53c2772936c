"""Reach without tracking people: counted links in real emails, followed over real HTTP, and the reports."""

from __future__ import annotations

import base64
import csv
import email
import io
import json
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from email.policy import default

import httpx
import pytest
from typer.testing import CliRunner

from pressroom.audience import Audience
from pressroom.cli import app
from pressroom.dispatch import ReleaseEmail, deliver
from pressroom.ledger import Ledger
from pressroom.mail import compose_release
from pressroom.reach import (
    ClickCounter,
    Period,
    as_csv,
    as_markdown,
    build_report,
    eu_rows,
)
from pressroom.releases import load_releases
from pressroom.tokens import LinkCount, link_count_url
from pressroom.web.app import server
from tests._delivery import SmtpServer, free_port, serving
from tests.conftest import NOW

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
READERS = ("ada@example.org", "ben@example.org", "cleo@example.org")


class Keep:
    """An aiosmtpd handler that keeps every message."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=default))
        return "250 OK"


def _payload(url: str) -> list[str]:
    token = url.rsplit("/r/", 1)[1]
    body = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def test_links_followed_from_a_real_email_are_counted_people_and_machines_apart_and_name_no_one(project, tmp_path) -> None:
    port = free_port()
    project.write_release("reach-news", title="Reach news", body="Read [the study](https://study.example.net/paper).")
    keep = Keep()
    with SmtpServer(keep) as smtp:
        settings = project.settings(**smtp.env(), PRESSROOM_ANALYTICS__LINKS="true",
                                    PRESSROOM_SITE__BASE_URL=f"http://127.0.0.1:{port}",
                                    PRESSROOM_WEB__FORWARDED_ALLOW_IPS="127.0.0.1")
        Audience.from_settings(settings).import_csv(file=io.StringIO("address\n" + "\n".join(READERS) + "\n"), now=NOW)
        [release] = load_releases(settings).releases
        assert deliver(ReleaseEmail(release), settings=settings, now=NOW).report.sent == 3
    audience = Audience.from_settings(settings)
    audience.unsubscribe(subscriber_id=audience.get(address=READERS[2]).id, now=NOW + timedelta(days=1), source="test")
    audience.unsubscribe(subscriber_id=audience.get(address=READERS[1]).id, now=NOW + timedelta(days=9), source="test")
    pages = {message["To"]: message.get_body(("html",)).get_content() for message in keep.messages}
    links = {address: re.findall(rf'href="(http://127\.0\.0\.1:{port}/r/[^"]+)"', page) for address, page in pages.items()}
    assert sorted(links) == sorted(READERS) and all(links.values())
    # Every reader's copy carries the same counted links: no link can say whose copy it came from.
    assert len({tuple(found) for found in links.values()}) == 1
    study = next(url for url in links[READERS[0]] if "study.example.net" in _payload(url)[1])
    assert _payload(study) == ["reach-news", "https://study.example.net/paper", "email", "en"]
    assert not any(reader in url or reader.split("@")[0] in json.dumps(_payload(url)) for url in links[READERS[0]] for reader in READERS)

    log_file = tmp_path / "access.log"
    with serving(server(settings=settings, port=port)):
        handler = logging.FileHandler(log_file)
        for name in ("uvicorn.access", "uvicorn.error", "pressroom.web"):
            logging.getLogger(name).addHandler(handler)
        try:
            with httpx.Client(follow_redirects=False, timeout=10) as client:
                for person in range(100):
                    for _ in range(2):  # the same person twice: folded into one
                        answer = client.get(study, headers={"User-Agent": BROWSER, "X-Forwarded-For": f"10.9.{person // 200}.{person % 200 + 1}"})
                        assert (answer.status_code, answer.headers["location"]) == (302, "https://study.example.net/paper")
                for scan in range(10):
                    assert client.head(study, headers={"User-Agent": BROWSER, "X-Forwarded-For": f"10.8.0.{scan + 1}"}).status_code == 302
                    assert client.get(study, headers={"User-Agent": "Mozilla/5.0 (compatible; Barracuda Sentinel)",
                                                      "X-Forwarded-For": f"10.8.1.{scan + 1}"}).status_code == 302
                forged = study[:-3] + ("AAA" if not study.endswith("AAA") else "BBB")
                refused = client.get(forged, headers={"User-Agent": BROWSER})
                assert refused.status_code == 404 and "location" not in refused.headers
                assert client.get(f"http://127.0.0.1:{port}/r/not-a-token").status_code == 404
        finally:
            for name in ("uvicorn.access", "uvicorn.error", "pressroom.web"):
                logging.getLogger(name).removeHandler(handler)
            handler.close()

    made = build_report(settings=settings, releases=load_releases(settings).releases, period=None, now=datetime.now(UTC))
    [reach] = made.releases
    assert (reach.people, reach.machines) == (100, 20)
    assert reach.unsubscribes == 1  # within 7 days of the release; the later one is not its doing
    [link] = [link for link in reach.links if link.link == "https://study.example.net/paper"]
    assert (link.channel, link.language, link.people, link.machines) == ("email", "en", 100, 20)
    # The report's email totals are the ledger's.
    ledger = Ledger.from_settings(settings).report(release="reach-news", channel="email")
    [email] = reach.emails  # the three readers read English
    assert (email.channel, email.language) == ("email", "en")
    assert email.counts == {"sent": ledger.sent, "deferred": ledger.deferred, "ambiguous": ledger.ambiguous,
                            "failed": ledger.failed} == {"sent": 3, "deferred": 0, "ambiguous": 0, "failed": 0}
    rows = list(csv.DictReader(io.StringIO(as_csv(made))))
    assert sum(int(r["value"]) for r in rows if r["metric"] == "clicks by people") == 100
    assert sum(int(r["value"]) for r in rows if r["metric"] == "emails sent") == ledger.sent

    # Nothing of the clients reached the database or the logs: no address, no user agent.
    logged = log_file.read_text()
    assert "/r/" in logged  # the access log did see the clicks
    stored = b"".join(path.read_bytes() for path in settings.path("var").glob("pressroom.db*"))
    for trace in ("10.9.", "10.8.", "Firefox", "Barracuda"):
        assert trace not in logged and trace.encode() not in stored, trace


def test_a_client_that_follows_every_link_of_a_message_within_seconds_is_a_machine() -> None:
    counter = ClickCounter(burst=timedelta(seconds=10))
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    links = [LinkCount(release="r", link=f"https://example.org/{n}", channel="email", language="en") for n in range(4)]
    first = counter.click(link=links[0], client="gw", user_agent=BROWSER, head=False, now=at)
    second = counter.click(link=links[1], client="gw", user_agent=BROWSER, head=False, now=at + timedelta(seconds=1))
    assert [(c.people, c.machines) for c in first + second] == [(1, 0), (1, 0)]  # two links: could be a reader
    third = counter.click(link=links[2], client="gw", user_agent=BROWSER, head=False, now=at + timedelta(seconds=2))
    # The third link within seconds shows a scanner: its earlier two move to the machines.
    assert sorted((c.link.link[-1], c.people, c.machines) for c in third) == [("0", -1, 1), ("1", -1, 1), ("2", 0, 1)]
    # A reader elsewhere, clicking slowly, stays a person.
    slow = [counter.click(link=link, client="reader", user_agent=BROWSER, head=False, now=at + timedelta(minutes=n))
            for n, link in enumerate(links)]
    assert [[(c.people, c.machines) for c in clicks] for clicks in slow] == [[(1, 0)]] * 4


def test_links_off_sends_plain_links_and_proofs_are_never_counted(project) -> None:
    project.write_release("plain", title="Plain", body="See [the study](https://study.example.net/paper).")
    counted = project.settings(PRESSROOM_ANALYTICS__LINKS="true")
    [release] = load_releases(counted).releases
    on = compose_release(release=release, settings=counted).html
    off = compose_release(release=release, settings=project.settings()).html
    proof = compose_release(release=release, settings=counted, proof={"Approve": "https://press.example.org/approval/x"}).html
    assert "/r/" in on and "https://study.example.net/paper" not in on
    assert "/r/" not in off and "https://study.example.net/paper" in off
    assert "/r/" not in proof
    assert link_count_url(settings=counted, release="plain", link="https://study.example.net/paper", channel="email",
                          language="en") in on


ORG = """name: "{name}"
logo: {id}.png
website: https://{id}.example.eu
eu_funding:
  programme: Horizon Europe
  grant: "{grant}"
"""


def test_the_eu_csv_of_a_two_project_release_has_one_row_per_project_with_its_grant(project) -> None:
    from tests.conftest import REPO

    folder = project.root / "content" / "organisations"
    folder.mkdir(parents=True)
    for org_id, name, grant in (("alpha", "ALPHA project", "101111111"), ("beta", "BETA project", "101222222")):
        (folder / f"{org_id}.yaml").write_text(ORG.format(id=org_id, name=name, grant=grant), encoding="utf-8")
        (folder / f"{org_id}.png").write_bytes((REPO / "content" / "organisations" / "example-project.png").read_bytes())
    project.write_release("joint", title="Joint results", date="2026-11-03 10:00", extra="issuers: [alpha, beta]\n")
    settings = project.settings()
    loaded = load_releases(settings)
    assert not loaded.problems, loaded.problems
    result = CliRunner().invoke(app, ["report", "--eu", "--period", "2026-Q4", "--settings", str(project.root / "pressroom.toml")])
    assert result.exit_code == 0, result.output
    assert "ALPHA project (grant 101111111" in result.output and "BETA project (grant 101222222" in result.output
    rows = list(csv.DictReader((settings.path("var") / "reports" / "eu-2026-Q4.csv").open(encoding="utf-8")))
    assert [(r["project"], r["grant"], r["activity_type"], r["title"], r["date"]) for r in rows] == [
        ("ALPHA project", "101111111", "Press release", "Joint results", "2026-11-03"),
        ("BETA project", "101222222", "Press release", "Joint results", "2026-11-03"),
    ]
    as_json = CliRunner().invoke(app, ["report", "--format", "json", "--period", "2026-Q4", "--settings", str(project.root / "pressroom.toml")])
    assert as_json.exit_code == 0, as_json.output
    [joint] = json.loads(as_json.stdout)["releases"]
    assert (joint["slug"], [p[3] for p in joint["projects"]]) == ("joint", ["101111111", "101222222"])
    made = build_report(settings=settings, releases=loaded.releases, period=Period.parse("2026-Q4"), now=datetime(2026, 12, 1, tzinfo=UTC))
    assert [r["grant"] for r in eu_rows(made, project="beta")] == ["101222222"]
    assert build_report(settings=settings, releases=loaded.releases, period=Period.parse("2026-Q3"),
                        now=datetime(2026, 12, 1, tzinfo=UTC)).releases == ()


def test_a_mastodon_post_links_through_the_count_and_its_favourites_boosts_replies_are_read_back_at_each_age(project) -> None:
    from pydantic import SecretStr

    from pressroom.dispatch import post_releases
    from pressroom.reach import read_back
    from pressroom.settings import SocialAccount
    from tests.social_helpers import make_release
    from tests.social.test_mastodon import INSTANCE, TOKEN, FakeMastodon

    account = SocialAccount(network="mastodon", base_url=INSTANCE, token=SecretStr(TOKEN), handle="@press@mastodon.example")
    settings = project.settings(PRESSROOM_ANALYTICS__LINKS="true").model_copy(update={"social": [account]})
    release, fake = make_release(), FakeMastodon()
    ledger = Ledger.from_settings(settings)
    ledger.record_public(releases=[release], now=NOW)
    post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW, transport=httpx.MockTransport(fake))
    [status] = fake.statuses
    sent = json.loads(next(r for r in fake.requests if r.method == "POST").content)["status"]
    [counted] = re.findall(r"https://press\.example\.org/r/\S+", sent)
    assert _payload(counted) == ["battery-news", release.url, "mastodon", "en"]

    def read(at: datetime, favourites: int, boosts: int, replies: int) -> list[tuple[str, int, int, int]]:
        # The Status entity of docs.joinmastodon.org carries its counts.
        status.update(favourites_count=favourites, reblogs_count=boosts, replies_count=replies)
        made = read_back(settings=settings, releases=[release], now=at, transport=httpx.MockTransport(fake))
        return [(c.age, c.likes, c.reposts, c.replies) for c in made]

    assert read(NOW + timedelta(minutes=30), 1, 0, 0) == []  # not an hour old yet
    assert read(NOW + timedelta(hours=2), 4, 2, 1) == [("1h", 4, 2, 1)]
    assert read(NOW + timedelta(hours=3), 5, 2, 1) == []  # the 1 h reading stands
    assert read(NOW + timedelta(hours=30), 9, 3, 2) == [("24h", 9, 3, 2)]
    assert read(NOW + timedelta(days=8), 12, 4, 2) == [("7d", 12, 4, 2)]
    made = build_report(settings=settings, releases=[release], period=None, now=NOW + timedelta(days=8))
    [post] = made.releases[0].posts
    assert (post.url, post.counts) == (status["url"], {"1h": (4, 2, 1), "24h": (9, 3, 2), "7d": (12, 4, 2)})
    assert "| [mastodon:default](" in as_markdown(made) and "12/4/2" in as_markdown(made)


def test_bluesky_counts_are_read_from_get_posts_as_its_docs_shape_them(project) -> None:
    from pydantic import SecretStr

    from pressroom.settings import SocialAccount
    from pressroom.social.bluesky import Bluesky

    did = "did:plc:ppio5h5xjqwisj6xdfelmn2y"
    asked: list[str] = []

    def appview(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("createSession"):
            return httpx.Response(200, json={"did": did, "handle": "press.test", "accessJwt": "a", "refreshJwt": "r"})
        asked.append(request.url.params["uris"])
        return httpx.Response(200, json={"posts": [{"uri": request.url.params["uris"], "cid": "bafy", "likeCount": 7,
                                                    "repostCount": 3, "replyCount": 1, "quoteCount": 0}]})

    account = SocialAccount(network="bluesky", base_url="https://pds.example", handle="press.test", password=SecretStr("pw"))
    network = Bluesky(account=account, settings=project.settings(), transport=httpx.MockTransport(appview))
    assert network.engagement("https://bsky.app/profile/press.test/post/3n43ib4bl6s2k") == (7, 3, 1)
    assert asked == [f"at://{did}/app.bsky.feed.post/3n43ib4bl6s2k"]


def test_editors_read_the_report_page_with_its_signed_link_until_it_expires(project) -> None:
    from starlette.testclient import TestClient

    from pressroom.tokens import report_url
    from pressroom.web.app import create_app

    project.write_release("shown", title="Shown in the report", date="2026-11-03 10:00")
    settings = project.settings()
    now = datetime.now(UTC)
    url = report_url(settings=settings, period="2026-Q4", expires=now + timedelta(days=1))
    path = url.removeprefix(settings.site.base_url)
    with TestClient(create_app(settings=settings), base_url=settings.site.base_url) as client:
        page = client.get(path)
        assert page.status_code == 200 and "Shown in the report" in page.text and "<svg" in page.text
        assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
        late = report_url(settings=settings, period="2026-Q4", expires=now - timedelta(seconds=1))
        assert client.get(late.removeprefix(settings.site.base_url)).status_code == 400
        assert client.get(path[:-2] + "xx").status_code == 400
    result = CliRunner().invoke(app, ["report", "--link", "--period", "2026-Q4", "--settings", str(project.root / "pressroom.toml")])
    assert result.exit_code == 0 and result.output.startswith("https://press.example.org/reports/")


def test_counts_add_up_and_move_on_sqlite_and_postgresql(project, db_url: str) -> None:
    from pressroom.ledger.counts import ClickRow, Counts, PostCount

    counts = Counts(settings=project.settings(PRESSROOM_DATABASE_URL=db_url))
    hour = datetime(2026, 12, 1, 9, tzinfo=UTC)
    def row(language: str, people: int, machines: int) -> ClickRow:
        return ClickRow(release="r", channel="email", language=language, link="https://example.org/a", hour=hour,
                        people=people, machines=machines)

    counts.add([row("en", 1, 0), row("en", 1, 0)])
    counts.add([row("en", -1, 1), row("en", 0, 1), row("de", 1, 0)])  # one of the two was a burst
    assert [(row.language, row.people, row.machines) for row in counts.clicks(releases=["r"])] == [("de", 1, 0), ("en", 1, 2)]
    reading = PostCount(release="r", channel="social:mastodon:default", url="https://m.example/@p/1", age="1h",
                        likes=1, reposts=2, replies=3, read_at=hour)
    assert counts.record_post(reading) and not counts.record_post(reading)
    assert counts.posts(releases=["r"]) == [reading]


def test_a_bluesky_post_on_a_real_pds_and_appview_links_through_the_count_and_its_likes_and_reposts_are_read_back(project) -> None:
    from pydantic import SecretStr

    from pressroom.dispatch import post_releases
    from pressroom.reach import read_back
    from pressroom.settings import SocialAccount
    from pressroom.social.bluesky import Bluesky
    from pressroom.social.network import channel_name
    from tests.pds import running_pds
    from tests.social_helpers import make_release

    release = make_release(hero_file=None)
    with running_pds(appview=True) as pds:
        handle, password, did = pds.create_account("press")
        account = SocialAccount(network="bluesky", base_url=pds.url, handle=handle, password=SecretStr(password))
        settings = project.settings(PRESSROOM_ANALYTICS__LINKS="true").model_copy(update={"social": [account]})
        ledger = Ledger.from_settings(settings)
        ledger.record_public(releases=[release], now=NOW)
        assert post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW).as_rows()
        [record] = pds.records(did)
        # The text keeps the plain URL (a counted one would cost a 300-grapheme post its words); the card counts.
        assert release.url in record["value"]["text"]
        assert _payload(record["value"]["embed"]["external"]["uri"]) == ["battery-news", release.url, "bluesky", "en"]
        fans = [pds.create_account(name) for name in ("ada", "ben", "cleo")]
        for fan_handle, fan_password, fan_did in fans:
            pds.like(handle=fan_handle, password=fan_password, did=fan_did, uri=record["uri"], cid=record["cid"])
        pds.like(handle=fans[0][0], password=fans[0][1], did=fans[0][2], uri=record["uri"], cid=record["cid"], kind="repost")
        # The AppView counts from the PDS's firehose, a moment later: wait for it as a reader's app would.
        [url] = [answer.split()[0] for answer in ledger.responses(release=release.slug, channel=channel_name(account)).values()]
        client = Bluesky(account=account, settings=settings)
        deadline = time.monotonic() + 60
        while client.engagement(url) != (3, 1, 0) and time.monotonic() < deadline:
            time.sleep(0.5)
        client.close()
        [reading] = read_back(settings=settings, releases=[release], now=NOW + timedelta(hours=2))
    assert (reading.age, reading.likes, reading.reposts, reading.replies) == ("1h", 3, 1, 0)
    [post] = build_report(settings=settings, releases=[release], period=None, now=NOW + timedelta(hours=2)).releases[0].posts
    assert post.counts == {"1h": (3, 1, 0)}


@pytest.mark.parametrize(("user_agent", "machine"), [
    (BROWSER, False),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", False),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [LinkedInApp]/9.29", False),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36", False),
    ("", True),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", True),
    ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", True),
    ("http.rb/5.1.1 (Mastodon/4.2.10; +https://mastodon.social/) Bot", True),
    ("LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)", True),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0 Safari/537.36", True),
    ("python-httpx/0.27.0", True),
    ("curl/8.5.0", True),
])
def test_known_scanners_and_previews_are_machines_and_apps_browsers_people(user_agent: str, machine: bool) -> None:
    from pressroom.reach import is_scanner

    assert is_scanner(user_agent) is machine


def test_a_counted_link_signed_before_a_key_rotation_still_counts_and_stops_once_the_old_key_is_dropped(project) -> None:
    from starlette.testclient import TestClient

    from pressroom.web.app import create_app

    old_key, new_key = "the-old-key-" + "o" * 32, "the-new-key-" + "n" * 32
    sent = link_count_url(settings=project.settings(PRESSROOM_SECRET_KEY=old_key), release="r",
                          link="https://example.org/a", channel="email", language="en")
    rotated = project.settings(PRESSROOM_SECRET_KEY=new_key, PRESSROOM_WEB__PREVIOUS_SECRET_KEYS=f'["{old_key}"]')
    dropped = project.settings(PRESSROOM_SECRET_KEY=new_key)
    path = sent.removeprefix(rotated.site.base_url)
    with TestClient(create_app(settings=rotated), base_url=rotated.site.base_url, follow_redirects=False) as client:
        assert client.get(path, headers={"User-Agent": BROWSER}).headers["location"] == "https://example.org/a"
    with TestClient(create_app(settings=dropped), base_url=dropped.site.base_url, follow_redirects=False) as client:
        gone = client.get(path, headers={"User-Agent": BROWSER})
        assert gone.status_code == 404 and "location" not in gone.headers


def test_an_old_release_clicked_today_is_charted_from_its_first_click_not_squeezed_against_the_edge() -> None:
    from pressroom.reach.forms import as_html
    from pressroom.reach.report import ReachReport, ReleaseReach

    clicked = datetime(2026, 12, 7, 14, tzinfo=UTC)
    old = ReleaseReach(slug="old", title="An old release", date=datetime(2024, 7, 30, 7, tzinfo=UTC), url="https://example.org/old/",
                       languages=("en",), status="published", projects=(), emails=(), unsubscribes=0, journalists_emailed=0,
                       preview_opens=0, journalists_opened=0, links=(), posts=(), timeline=((clicked, 3, 1),))
    page = as_html(ReachReport(period="all", made_at=clicked + timedelta(hours=2), releases=(old,)))
    assert "since 2026-12-07 14:00 UTC" in page and "since 2024-07-30" not in page
