"""Issue 24.4, the holes an attack pass found in the web app: each one's case, asserting what a user (or attacker) would see.

The approval pages are driven here with a recording gate (the seam ``pressroom serve`` fills with
Prefect); tests/flows/test_approval.py drives the same pages against real paused flow runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from pressroom.audience import MediaList, preview_url
from pressroom.settings import Settings
from pressroom.tokens import approval_url
from pressroom.web import create_app
from pressroom.web.approval import Answered, Gate, Question, approval_routes
from pressroom.web.security import CSP
from tests.conftest import Project
from tests.embargo_support import publish_once, seed

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
OLD_KEY = "the-old-key-" + "o" * 32
NEW_KEY = "the-new-key-" + "n" * 32
RELEASE = SimpleNamespace(slug="big-news", digest="0123456789abcdef" * 4)


class RecordingGate:
    """A run waiting for an answer, as the gate's Variable and the Prefect API would say."""

    def __init__(self) -> None:
        self.question = Question(slug="big-news", digest=RELEASE.digest, state="pending", title="Big news", at=NOW.isoformat(),
                                 used=frozenset())
        self.answers: list[tuple[bool, str, str]] = []

    async def read(self, slug: str) -> Question | None:
        return self.question if slug == self.question.slug else None

    async def answer(self, question: Question, approve: bool, note: str, used: str) -> Answered:
        self.answers.append((approve, note, used))
        self.question = Question(**{**question.__dict__, "used": question.used | {used}})
        return Answered()

    def gate(self) -> Gate:
        return Gate(question=self.read, answer=self.answer)


@pytest.fixture
def desk(project: Project) -> tuple[TestClient, RecordingGate, dict[str, str]]:
    text = (project.root / "pressroom.toml").read_text() + '\neditors = ["editor@example.org"]\n'
    (project.root / "pressroom.toml").write_text(text)
    old = project.settings(PRESSROOM_SECRET_KEY=OLD_KEY)
    settings = project.settings(PRESSROOM_SECRET_KEY=NEW_KEY, PRESSROOM_WEB__PREVIOUS_SECRET_KEYS=f'["{OLD_KEY}"]')
    gate = RecordingGate()
    client = TestClient(Starlette(routes=approval_routes(settings=settings, gate=gate.gate(), clock=lambda: NOW)))
    expires = NOW + timedelta(hours=1)

    def path(signer: Settings, approve: bool, editor: str = "editor@example.org") -> str:
        url = approval_url(settings=signer, release=RELEASE, editor=editor, approve=approve, expires=expires)
        return url.removeprefix("https://press.example.org")

    links = {"approve": path(settings, True), "reject": path(settings, False), "old-approve": path(old, True),
             "intern": path(settings, True, "intern@example.org")}
    return client, gate, links


def test_head_get_and_options_on_approve_and_reject_decide_nothing(desk: tuple) -> None:
    client, gate, links = desk
    for link in (links["approve"], links["reject"]):
        for _ in range(3):  # a link checker, a mail scanner, a prefetch
            assert client.head(link).status_code == 200
            assert client.get(link).status_code == 200
            assert client.options(link).status_code == 405
    assert gate.answers == []
    page = client.get(links["approve"])
    assert '<form method="post">' in page.text and page.headers["content-security-policy"] == CSP


def test_only_a_post_decides_once_and_a_link_signed_with_the_previous_key_works(desk: tuple) -> None:
    client, gate, links = desk
    done = client.post(links["old-approve"])  # mailed before the key rotation
    assert done.status_code == 200 and "approved" in done.text
    assert [(approve, note) for approve, note, _ in gate.answers] == [(True, "approved by editor@example.org from the proof's link")]
    again = client.post(links["approve"])  # the same decision, signed with the new key: one link
    assert again.status_code == 400 and "already used" in again.text
    assert len(gate.answers) == 1


def test_forged_damaged_oversized_and_misdirected_links_decide_nothing(desk: tuple) -> None:
    client, gate, links = desk
    token = links["approve"].rsplit("/", 1)[1]
    payload, mac = token.split(".")
    forged = [f"{payload}.{mac[:4]}!{mac[4:]}", f"{payload}.{mac[:4]}.{mac[4:]}", f"{payload}.{mac}==", f"{payload}.{mac[:-2]}AA",
              "not-a-token", "A" * 5000, f"{links['reject'].rsplit('/', 1)[1].split('.')[0]}.{mac}", "%00.%00"]
    for bad in forged:
        for send in (client.get, client.post):
            assert send(f"/approval/{bad}").status_code in (400, 404), bad
    intern = client.post(links["intern"])
    assert intern.status_code == 400 and "no longer among the editors" in intern.text
    assert gate.answers == []


def test_every_response_has_a_content_security_policy_and_folder_redirects_use_base_url(project: Project) -> None:
    settings = project.settings()
    public = settings.path("public")
    (public / "releases").mkdir(parents=True)
    (public / "releases" / "index.html").write_text("<!doctype html><title>Releases</title>")
    (public / "index.html").write_text("<!doctype html><title>Home</title>")
    with TestClient(create_app(settings=settings)) as client:
        for path in ("/", "/releases/", "/nowhere", "/subscribe", "/_pressroom/web.css", "/confirm?token=x"):
            assert client.get(path).headers["content-security-policy"] == CSP, path
        moved = client.get("/releases", headers={"host": "evil.example"}, follow_redirects=False)
        assert moved.status_code in (301, 307) and moved.headers["location"] == "https://press.example.org/releases/"


def test_a_leaked_preview_link_counts_one_open_per_few_minutes_and_reads_the_release_once(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from pressroom.releases import load_releases
    from pressroom.web import preview

    settings = project.settings()
    notify, date = datetime(2026, 11, 30, 8, 0, tzinfo=UTC), "2026-12-02 09:00"
    seed(settings, notify - timedelta(minutes=1))
    project.write_release("big-news", title="Big news", date=date, body="A **secret** result.",
                          extra="tags: [Energy]\nembargo: {notify: 48h}\n")
    publish_once(settings, notify)
    media = MediaList.from_settings(settings)
    journalist = media.get(address="energy@example.com")
    link = preview_url(settings=settings, journalist_id=journalist.id, slug="big-news")
    loads: list = []
    monkeypatch.setattr(preview, "load_releases", lambda s, *, path=None: loads.append(path) or load_releases(s, path=path))
    clock = [notify]
    with TestClient(create_app(settings=settings, clock=lambda: clock[0])) as client:
        for second in range(60):  # one leaked link, opened again and again
            clock[0] = notify + timedelta(seconds=second)
            answer = client.get(link)
            assert answer.status_code == 200 and answer.headers["content-security-policy"] == CSP
        clock[0] = notify + timedelta(minutes=6)
        assert client.get(link).status_code == 200
    [(_, opens, first, last)] = media.opens(release="big-news")
    assert (opens, first, last) == (2, notify, notify + timedelta(minutes=6))
    assert loads == [None]  # the release was read once: its file did not change


def test_forged_oversized_and_garbage_preview_links_get_one_400_and_count_nothing(project: Project) -> None:
    settings = project.settings()
    notify = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    seed(settings, notify - timedelta(minutes=1))
    project.write_release("big-news", title="Big news", date="2026-12-02 09:00", extra="tags: [Energy]\nembargo: {notify: 48h}\n")
    publish_once(settings, notify)
    media = MediaList.from_settings(settings)
    energy, sport = media.get(address="energy@example.com"), media.get(address="sport@example.com")
    token = preview_url(settings=settings, journalist_id=energy.id, slug="big-news").split("token=")[1]
    payload, mac = token.split(".")
    bad = [f"{payload}.{mac[:3]}!{mac[3:]}", f"{payload}.{mac}==", f"{payload}.{mac[:3]}.{mac[3:]}", "x" * 5000, "%ff%fe", "",
           preview_url(settings=settings, journalist_id=sport.id, slug="big-news").split("token=")[1]]  # sport was never sent it
    with TestClient(create_app(settings=settings, clock=lambda: notify)) as client:
        for forged in bad:
            for path in ("/preview/big-news", "/preview/big-news/files/lab.png", "/preview/big-news/files/x.pdf", "/journalists/unsubscribe"):
                answer = client.get(path, params={"token": forged})
                assert answer.status_code == 400 and answer.headers["cache-control"] == "private, no-store", (path, forged)
            assert client.post("/journalists/unsubscribe", params={"token": forged}).status_code == 400
    assert media.opens(release="big-news") == []
    assert [j.address for j in media.reachable()] == ["energy@example.com", "everything@example.com", "sport@example.com"]
