"""Journalists and embargo: the media list, the embargo front matter, and nothing public before ``date``."""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from typer.testing import CliRunner

from pressroom.audience import Audience, MediaList, journalist_unsubscribe_url, preview_url
from pressroom.cli import app
from pressroom.dispatch.decide import NOT_APPROVED, SEND
from pressroom.dispatch.embargo import run_embargo
from pressroom.ledger import Ledger
from pressroom.mail.transports import OutboxTransport
from pressroom.releases import load_releases
from tests.conftest import REPO, SITE_TOML, Project
from tests.embargo_support import publish_once, seed
from tests.site_support import png

DATE = "2026-12-02 09:00"  # Europe/Brussels: 08:00 UTC
BEFORE_NOTIFY = datetime(2026, 11, 30, 7, 59, tzinfo=UTC)
AFTER_NOTIFY = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
AFTER_DATE = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


class CountingOutbox(OutboxTransport):
    """The outbox, counting every message it was handed, by outbox key (``<channel>-<slug>/<address>``)."""

    def __init__(self, *, settings) -> None:
        super().__init__(settings=settings)
        self.sent: Counter[str] = Counter()

    async def connect(self):
        inner, counts = await super().connect(), self.sent

        class Sender:
            async def send(self, envelopes):
                results = await inner.send(envelopes)
                counts.update(e.key for e, r in zip(envelopes, results) if r.status == "sent")
                return results

            async def close(self) -> None:
                await inner.close()

        return Sender()


def _embargoed(project: Project, slug: str = "big-news", *, date: str = DATE, notify: str = "48h", status: str = "approved",
               extra: str = "") -> Path:
    return project.write_release(
        slug, title="Big news from the lab", date=date, status=status, body="A **secret** result.",
        extra=f"tags: [Energy]\nembargo: {{notify: {notify}}}\ncontacts:\n  - name: Ana Example\n    email: ana@example.org\n" + extra,
    )


def _messages(settings, group: str) -> dict[str, email.message.EmailMessage]:
    folder = settings.path("var") / "outbox" / "email" / group
    return {path.stem: email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in sorted(folder.glob("*.eml"))}


# --------------------------------------------------------------------------- front matter


@pytest.mark.parametrize(("notify", "expected"), [
    ("48h", datetime(2026, 11, 30, 8, 0, tzinfo=UTC)),
    ("2d", datetime(2026, 11, 30, 8, 0, tzinfo=UTC)),
    ("90m", datetime(2026, 12, 2, 6, 30, tzinfo=UTC)),
    ("2026-11-30T09:00:00+00:00", datetime(2026, 11, 30, 9, 0, tzinfo=UTC)),
    ("'2026-11-30 09:00'", datetime(2026, 11, 30, 8, 0, tzinfo=UTC)),  # no offset: the site's time zone (CET)
])
def test_notify_is_a_duration_before_date_or_an_instant(project: Project, notify: str, expected: datetime) -> None:
    _embargoed(project, notify=notify)
    (release,) = load_releases(project.settings()).releases
    assert release.embargo is not None and release.embargo.notify == expected
    assert release.embargo.topics == ()


def test_notify_after_date_is_refused_with_file_line_field_and_hint(project: Project) -> None:
    path = _embargoed(project, notify="2026-12-03T09:00:00+01:00")
    project.write_release("other", title="Other", date="2026-12-02 09:00")
    result = load_releases(project.settings())
    assert [r.slug for r in result.releases] == ["other"]  # one bad release never stops the others
    (problem,) = result.problems
    assert (problem.path, problem.field) == (path, "embargo.notify")
    assert problem.line == 6  # title, date, status, tags, embargo
    assert "after its date" in problem.message and "before 'date'" in problem.hint


def test_embargo_topics_are_beats_and_unknown_fields_are_errors(project: Project) -> None:
    project.write_release("a", date=DATE, extra="embargo: {notify: 1d, topics: [Climate Policy, energy]}\n")
    project.write_release("b", date=DATE, extra="embargo: {notify: 1d, topic: energy}\n")
    result = load_releases(project.settings())
    assert result.releases[0].embargo.topics == ("climate-policy", "energy")
    assert [p.field for p in result.problems] == ["embargo.topic"]


def test_check_shows_both_instants_in_utc_and_the_site_time_zone(project: Project) -> None:
    _embargoed(project)
    result = CliRunner().invoke(app, ["check", "--settings", str(project.root / "pressroom.toml"),
                                      "--now", "2026-11-01T00:00+00:00"])
    assert result.exit_code == 0, result.output
    assert "big-news  scheduled  2026-12-02 08:00 UTC = 2026-12-02 09:00 CET" in result.output
    assert "embargo: journalists hear of it at 2026-11-30 08:00 UTC = 2026-11-30 09:00 CET" in result.output


# --------------------------------------------------------------------------- the media list


def test_media_list_import_export_remove_with_per_line_errors(project: Project, tmp_path: Path) -> None:
    toml = ["--settings", str(project.root / "pressroom.toml")]
    runner = CliRunner()
    result = runner.invoke(app, ["journalists", "import", str(REPO / "content" / "journalists.sample.csv"), *toml])
    assert result.exit_code == 0 and "imported 3; skipped 0" in result.output, result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("address,name,beats,country\nnot-an-address,X,,\nlena.vogt@example.com,Lena,,\nnew@example.org,New,,Belgium\n"
                   "ok@example.org,Ok,Energy|Research,be\n", encoding="utf-8")
    result = runner.invoke(app, ["journalists", "import", str(bad), *toml])
    assert result.exit_code == 1
    assert f"{bad}:2: 'not-an-address' must contain exactly one @" in result.output
    assert f"{bad}:3: lena.vogt@example.com is already on the media list" in result.output
    assert f"{bad}:4: new@example.org: country 'Belgium' is not a two-letter code" in result.output
    assert "imported 1; skipped 3 (1 duplicates)" in result.output
    exported = runner.invoke(app, ["journalists", "export", "-", *toml]).output
    assert "ok@example.org,Ok,,energy;research,en,BE" in exported
    assert runner.invoke(app, ["journalists", "remove", "ok@example.org", *toml]).exit_code == 0
    assert runner.invoke(app, ["journalists", "remove", "ok@example.org", *toml]).exit_code == 1
    listed = runner.invoke(app, ["journalists", "list", *toml]).output
    assert "sara.lindqvist@example.net\tExample Wire (fictional)\t*\ten\tSE\tSara Lindqvist" in listed
    assert "ok@example.org" not in listed


# --------------------------------------------------------------------------- the journalist email


def test_at_notify_each_matching_journalist_gets_one_embargoed_email_and_nothing_is_public(project: Project) -> None:
    settings = project.settings()
    seed(settings, BEFORE_NOTIFY)
    _embargoed(project)
    publish_once(settings, BEFORE_NOTIFY)
    assert not _messages(settings, "embargo-big-news")
    for _ in range(3):  # the scheduled flow runs every few minutes
        publish_once(settings, AFTER_NOTIFY)
    got = _messages(settings, "embargo-big-news")
    assert sorted(got) == ["energy@example.com", "everything@example.com"]  # not the sports desk
    message = got["energy@example.com"]
    assert message["Subject"].strip() == "EMBARGOED UNTIL 2 December 2026, 09:00 CET (08:00 UTC): Big news from the lab"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert text.splitlines()[0] == "EMBARGOED UNTIL 2 December 2026, 09:00 CET (08:00 UTC)"
    assert "A secret result." in text and "Ana Example" in text and "ana@example.org" in text
    journalist = MediaList.from_settings(settings).get(address="energy@example.com")
    assert preview_url(settings=settings, journalist_id=journalist.id, slug="big-news") in text
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert journalist_unsubscribe_url(settings=settings, journalist_id=journalist.id) in message["List-Unsubscribe"]
    public = settings.path("public")
    assert not any(b"secret result" in p.read_bytes() or b"big-news" in p.read_bytes() for p in public.rglob("*") if p.is_file())
    assert not (settings.path("var") / "outbox" / "email" / "big-news").exists()  # no subscriber email yet
    # At date: the public channels as today; journalists are not emailed again.
    publish_once(settings, AFTER_DATE)
    assert (public / "releases" / "big-news" / "index.html").exists()
    assert sorted(_messages(settings, "big-news")) == ["reader@example.org"]
    assert sorted(_messages(settings, "embargo-big-news")) == ["energy@example.com", "everything@example.com"]


def test_a_preview_shows_its_file_as_it_is_now_reading_that_file_alone(project: Project, monkeypatch) -> None:
    from starlette.testclient import TestClient

    from pressroom.web import create_app, preview

    settings = project.settings()
    seed(settings, BEFORE_NOTIFY)
    path = _embargoed(project)
    project.write_release("older-news", date="2026-11-01 09:00")
    publish_once(settings, AFTER_NOTIFY)
    link = preview_url(settings=settings, journalist_id=MediaList.from_settings(settings).get(address="energy@example.com").id,
                       slug="big-news")
    loads: list[Path | None] = []

    def counted(settings, *, path=None):
        loads.append(path)
        return load_releases(settings, path=path)

    monkeypatch.setattr(preview, "load_releases", counted)
    with TestClient(create_app(settings=settings, clock=lambda: AFTER_NOTIFY)) as client:
        assert "Big news from the lab" in client.get(link).text
        path.write_text(path.read_text().replace("Big news from the lab", "Bigger news from the lab"))
        assert "Bigger news from the lab" in client.get(link).text  # an edit shows at once
        path.write_text(path.read_text().replace("status: approved", "status: draft"))
        assert client.get(link).status_code == 400  # set back to draft: the link stops at once
    assert loads == [None, path, path]  # one whole load of the folder, then only the release's own file


def test_date_moved_and_withdrawn_each_go_once_to_those_who_had_it(project: Project) -> None:
    settings = project.settings()
    seed(settings, BEFORE_NOTIFY)
    path = _embargoed(project)
    counting = CountingOutbox(settings=settings)
    publish_once(settings, AFTER_NOTIFY, transport=counting)
    # Joins after the email went; the moved date puts the notify instant (48h before) after these runs.
    MediaList.from_settings(settings).add(address="late@example.com", now=AFTER_NOTIFY)
    path.write_text(path.read_text().replace(DATE, "2026-12-04 09:00"))
    for minutes in (10, 20):
        publish_once(settings, AFTER_NOTIFY + timedelta(minutes=minutes), transport=counting)
    moved = _messages(settings, "embargo-moved-big-news")
    assert sorted(moved) == ["energy@example.com", "everything@example.com"]
    assert moved["energy@example.com"]["Subject"].strip().startswith("EMBARGO MOVED TO 4 December 2026, 09:00 CET (08:00 UTC)")
    path.write_text(path.read_text().replace("status: approved", "status: draft"))
    for minutes in (30, 40):
        publish_once(settings, AFTER_NOTIFY + timedelta(minutes=minutes), transport=counting)
    path.unlink()  # deleting the file after going back to draft withdraws nothing twice
    publish_once(settings, AFTER_NOTIFY + timedelta(minutes=50), transport=counting)
    withdrawn = _messages(settings, "embargo-withdrawn-big-news")
    assert sorted(withdrawn) == ["energy@example.com", "everything@example.com"]  # not the late one: they never had it
    assert withdrawn["energy@example.com"]["Subject"].strip() == "WITHDRAWN: please do not publish: Big news from the lab"
    assert set(counting.sent.values()) == {1}, counting.sent
    assert Counter(key.partition("/")[0] for key in counting.sent) == {
        "embargo-big-news": 2, "embargo-moved-big-news": 2, "embargo-withdrawn-big-news": 2}


def test_a_deleted_file_is_withdrawn_a_file_that_does_not_parse_is_not(project: Project) -> None:
    settings = project.settings()
    seed(settings, BEFORE_NOTIFY)
    path = _embargoed(project)
    publish_once(settings, AFTER_NOTIFY)
    path.write_text(path.read_text().replace("status: approved", "status: [broken"))
    publish_once(settings, AFTER_NOTIFY + timedelta(minutes=5))
    assert not _messages(settings, "embargo-withdrawn-big-news")
    path.unlink()
    publish_once(settings, AFTER_NOTIFY + timedelta(minutes=10))
    assert sorted(_messages(settings, "embargo-withdrawn-big-news")) == ["energy@example.com", "everything@example.com"]


def test_an_opted_out_journalist_gets_nothing_more_and_the_suppression_is_shared(project: Project) -> None:
    from starlette.testclient import TestClient

    from pressroom.web.app import create_app

    settings = project.settings()
    seed(settings, BEFORE_NOTIFY)
    media = MediaList.from_settings(settings)
    journalist = media.get(address="everything@example.com")
    Audience.from_settings(settings).add(address="everything@example.com", now=BEFORE_NOTIFY, source="test")
    url = journalist_unsubscribe_url(settings=settings, journalist_id=journalist.id).removeprefix(settings.site.base_url)
    with TestClient(create_app(settings=settings), base_url=settings.site.base_url) as client:
        assert "Stop these emails" in client.get(url).text
        assert client.post(url + "x", data={"List-Unsubscribe": "One-Click"}).status_code == 400  # tampered: nothing changes
        assert not Audience.from_settings(settings).is_suppressed(address=journalist.address)
        answer = client.post(url, data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200 and "off our media list" in answer.text
    _embargoed(project)
    publish_once(settings, AFTER_NOTIFY)
    publish_once(settings, AFTER_DATE)
    assert sorted(_messages(settings, "embargo-big-news")) == ["energy@example.com"]
    assert sorted(_messages(settings, "big-news")) == ["reader@example.org"]  # the shared list holds the newsletter back too


def test_a_release_that_needs_approval_waits_for_the_editor(project: Project) -> None:
    settings = project.settings(PRESSROOM_EMAIL__APPROVAL_REQUIRED="true")
    seed(settings, BEFORE_NOTIFY)
    _embargoed(project)
    releases = load_releases(settings).releases
    ledger = Ledger.from_settings(settings)
    asked: list[str] = []
    (report,) = run_embargo(releases=releases, settings=settings, ledger=ledger, now=AFTER_NOTIFY)
    assert "not approved" in report.skipped and not _messages(settings, "embargo-big-news")
    run_embargo(releases=releases, settings=settings, ledger=ledger, now=AFTER_NOTIFY,
                ask=lambda due: asked.append(due.release.slug) or NOT_APPROVED)
    assert asked == ["big-news"] and not _messages(settings, "embargo-big-news")
    run_embargo(releases=releases, settings=settings, ledger=ledger, now=AFTER_NOTIFY, ask=lambda due: SEND)
    assert len(_messages(settings, "embargo-big-news")) == 2
    # Planned once approved: later runs finish sending without asking again.
    run_embargo(releases=releases, settings=settings, ledger=ledger, now=AFTER_NOTIFY, ask=lambda due: asked.append("again") or NOT_APPROVED)
    assert asked == ["big-news"]


def test_the_editors_proof_shows_the_journalist_email_too(project: Project) -> None:
    from flows.approval import _send_proof

    settings = project.settings(PRESSROOM_EMAIL__EDITORS='["editor@example.org"]', PRESSROOM_EMAIL__APPROVAL_REQUIRED="true")
    _embargoed(project)
    (release,) = load_releases(settings).releases
    assert _send_proof(release=release, settings=settings, expires=AFTER_NOTIFY + timedelta(hours=1)) == ["editor@example.org"]
    subjects = sorted(" ".join(email.message_from_bytes(p.read_bytes())["Subject"].split())
                      for p in (settings.path("var") / "outbox").rglob("*.eml"))
    assert subjects == ["[PROOF] Big news from the lab",
                        "[PROOF] EMBARGOED UNTIL 2 December 2026, 09:00 CET (08:00 UTC): Big news from the lab"]


# --------------------------------------------------------------------------- publish --now in the future


def test_publish_now_in_the_future_refuses_to_send_for_real(project: Project) -> None:
    _embargoed(project)
    result = CliRunner().invoke(app, ["publish", "--settings", str(project.root / "pressroom.toml"),
                                      "--now", "2099-01-01T00:00+00:00"], env={"PRESSROOM_EMAIL__TRANSPORT": "smtp"})
    assert result.exit_code == 2
    assert "is in the future and email.transport = smtp would send for real" in result.output
    assert "--dry-run" in result.output
    assert not (project.root / "public").exists() and not (project.root / "var" / "outbox").exists()


# --------------------------------------------------------------------------- the property


ZONES = ("Europe/Brussels", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC")
# Instants next to daylight-saving changes (EU, US, Lord Howe's half hour) and one far from any.
ANCHORS = (datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC), datetime(2026, 3, 8, 7, tzinfo=UTC),
           datetime(2026, 11, 1, 6, tzinfo=UTC), datetime(2026, 4, 4, 15, tzinfo=UTC), datetime(2026, 7, 1, 12, tzinfo=UTC))
BEATS = {"energy@example.com": {"energy"}, "sport@example.com": {"sport"}, "everything@example.com": set()}


@st.composite
def scenarios(draw):
    zone = draw(st.sampled_from(ZONES))
    anchor = draw(st.sampled_from(ANCHORS))
    releases = []
    for index in range(draw(st.integers(1, 3))):
        date = anchor + timedelta(minutes=draw(st.integers(-2 * 1440, 2 * 1440)))
        ahead = draw(st.integers(0, 3 * 1440))
        form = draw(st.sampled_from(("h", "d", "m", "instant", "wall")))
        notify = {"h": f"{ahead // 60}h", "d": f"{ahead // 1440}d", "m": f"{ahead}m",
                  "instant": (date - timedelta(minutes=ahead)).astimezone(ZoneInfo(zone)).isoformat(),
                  "wall": "'" + (date - timedelta(minutes=ahead)).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M") + "'"}[form]
        releases.append({
            "token": f"zq{index}{draw(st.text('abcdefghjkmnpqrstuvwxyz', min_size=6, max_size=6))}",
            # A wall-clock date (no offset) is read in the site time zone, gaps and folds included.
            "date": date.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M") if draw(st.booleans())
            else date.astimezone(ZoneInfo(zone)).isoformat(),
            "notify": notify,
            "status": draw(st.sampled_from(("approved", "approved", "draft"))),
            "tags": draw(st.lists(st.sampled_from(("Energy", "Sport", "Culture")), max_size=2, unique=True)),
            "topics": draw(st.none() | st.lists(st.sampled_from(("energy", "sport", "culture")), min_size=1, max_size=2, unique=True)),
        })
    # Run times near the releases' own dates (before, in and after the notify window), so most examples decide something.
    dates = [datetime.fromisoformat(r["date"]) if "T" in r["date"] else anchor for r in releases]
    runs = sorted({draw(st.sampled_from(dates)) + timedelta(minutes=draw(st.integers(-3 * 1440, 1440)))
                   for _ in range(draw(st.integers(1, 4)))})
    return zone, releases, runs


def _leaks(settings, token: str, digest: list) -> list[str]:
    """Where anything of the release ``token`` names can be seen by the public or by subscribers."""
    found = [str(p) for p in settings.path("public").rglob("*")
             if token in p.name or (p.is_file() and token.encode() in p.read_bytes())]  # the hero's name holds it too
    outbox = settings.path("var") / "outbox"
    for path in outbox.rglob("*") if outbox.exists() else ():
        parts = path.relative_to(outbox).parts
        journalists = len(parts) >= 2 and parts[0] == "email" and parts[1].startswith("embargo-")  # theirs, by design
        if not journalists and (token in path.name or (path.is_file() and token.encode() in path.read_bytes())):
            found.append(str(path))
    found += [f"digest: {r.slug}" for r in digest if token in r.slug]
    return found


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_nothing_of_an_embargoed_release_is_public_before_its_date_and_journalists_hear_once(scenario) -> None:
    zone, specs, runs = scenario
    root = Path(tempfile.mkdtemp(prefix="pressroom-embargo-"))
    try:
        project = Project(root, SITE_TOML.replace('timezone = "Europe/Brussels"', f'timezone = "{zone}"'))
        settings = project.settings()
        seed(settings, runs[0])
        for spec in specs:
            token = spec["token"]
            folder = project.releases / f"rel-{token}"
            folder.mkdir(parents=True)
            (folder / f"hero-{token}.png").write_bytes(png(40, 20))
            topics = "" if spec["topics"] is None else f", topics: [{', '.join(spec['topics'])}]"
            project.write_release(
                f"rel-{token}", title=f"Title {token}", date=spec["date"], status=spec["status"], body=f"Body {token}.",
                bundle=True,
                extra=f"tags: [{', '.join(spec['tags'])}]\nembargo: {{notify: {spec['notify']}{topics}}}\n"
                      f"hero: {{src: hero-{token}.png, alt: A picture}}\n",
            )
        loaded = {r.slug: r for r in load_releases(settings).releases}
        counting = CountingOutbox(settings=settings)
        notified: set[str] = set()
        for now in runs:
            digest = publish_once(settings, now, transport=counting)
            for spec in specs:
                release = loaded.get(f"rel-{spec['token']}")
                if release is None or not release.is_public(now):
                    assert not _leaks(settings, spec["token"], digest), (now, spec)
                if release is None or release.status != "approved":
                    continue
                if release.embargo.notify <= now < release.date:
                    notified.add(release.slug)
                topics = set(release.embargo.topics or release.tag_slugs)
                expected = {a for a, beats in BEATS.items() if not beats or beats & topics} if release.slug in notified else set()
                got = {key.partition("/")[2] for key in counting.sent if key.startswith(f"embargo-{release.slug}/")}
                assert got == expected, (now, release.embargo.notify, release.date)
        assert set(counting.sent.values()) <= {1}, counting.sent
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _publish_cli(project: Project, *args: str, **env: str) -> subprocess.CompletedProcess:
    from prefect.settings import PREFECT_API_URL

    environment = {k: v for k, v in os.environ.items() if not k.startswith("PRESSROOM_")} | env
    environment["PREFECT_API_URL"] = str(PREFECT_API_URL.value())  # the session's test server
    return subprocess.run([sys.executable, "-c", "from pressroom.cli import main; main()", "publish", "--settings",
                           str(project.root / "pressroom.toml"), *args], env=environment, cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_dry_run_writes_what_would_be_sent_and_touches_no_ledger_and_the_outbox_works_with_now(project, prefect_harness) -> None:
    settings = project.settings()
    seed(settings, BEFORE_NOTIFY)
    _embargoed(project, date="2099-06-02 09:00")
    result = _publish_cli(project, "--now", "2099-05-31T09:00+02:00", "--dry-run", PRESSROOM_EMAIL__TRANSPORT="smtp")
    assert result.returncode == 0, result.stderr
    dry = settings.path("var") / "dry-run"
    assert sorted(p.name for p in (dry / "var" / "outbox" / "email" / "embargo-big-news").glob("*.eml")) == [
        "energy@example.com.eml", "everything@example.com.eml"]
    assert Ledger.from_settings(settings).report().total == 0  # the real ledger never heard of it
    assert not (settings.path("var") / "outbox").exists() and not settings.path("public").exists()
    # The embedded outbox (the default) demonstrates a future instant for real, into var/outbox/.
    result = _publish_cli(project, "--now", "2099-05-31T09:00+02:00")
    assert result.returncode == 0, result.stderr
    assert sorted(_messages(settings, "embargo-big-news")) == ["energy@example.com", "everything@example.com"]


def test_erasure_forgets_a_journalist_too(project: Project) -> None:
    from pressroom.audience import erase

    settings = project.settings()
    seed(settings, BEFORE_NOTIFY)
    media = MediaList.from_settings(settings)
    media.record_open(journalist_id=media.get(address="sport@example.com").id, release="big-news", now=AFTER_NOTIFY)
    assert erase(settings=settings, address="sport@example.com")
    assert media.get(address="sport@example.com") is None and media.opens(release="big-news") == []
    assert not erase(settings=settings, address="sport@example.com")


@pytest.mark.parametrize(("status", "now", "approval", "planned", "approved", "action"), [
    ("approved", BEFORE_NOTIFY, "false", False, None, "skip"),
    ("approved", AFTER_NOTIFY, "false", False, None, "send"),
    ("approved", AFTER_DATE, "false", True, None, "skip"),  # at the date journalists hear with everyone
    ("draft", AFTER_NOTIFY, "false", False, None, "skip"),
    ("approved", AFTER_NOTIFY, "true", False, None, "approve"),
    ("approved", AFTER_NOTIFY, "true", False, False, "skip"),
    ("approved", AFTER_NOTIFY, "true", False, True, "send"),
    ("approved", AFTER_NOTIFY, "true", True, None, "send"),  # approved and planned before: it only finishes
])
def test_embargo_decision(project: Project, status: str, now: datetime, approval: str, planned: bool,
                          approved: bool | None, action: str) -> None:
    from pressroom.dispatch.decide import embargo_decision

    _embargoed(project, status=status)
    settings = project.settings(PRESSROOM_EMAIL__APPROVAL_REQUIRED=approval)
    (release,) = load_releases(settings).releases
    assert embargo_decision(release=release, settings=settings, now=now, planned=planned, approved=approved).action == action
