"""Exactly once through the ledger: outbox posts, reruns, crashes, rate limits and validation errors."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr

from pressroom.errors import ConfigError
from pressroom.ledger import Ledger
from pressroom.releases import ChannelOptions
from pressroom.settings import Settings, SocialAccount
from pressroom.dispatch import post_releases
from pressroom.social import preview_posts
from tests.conftest import NOW
from tests.social_helpers import make_release
from tests.social.test_mastodon import INSTANCE, TOKEN, FakeMastodon, rate_limited


@pytest.fixture
def settings(project) -> Settings:
    return project.settings()


@pytest.fixture
def ledger(settings) -> Ledger:
    return Ledger.from_settings(settings)


def mastodon_settings(settings: Settings) -> Settings:
    account = SocialAccount(network="mastodon", base_url=INSTANCE, token=SecretStr(TOKEN), handle="@press@mastodon.example")
    return settings.model_copy(update={"social": [account]})


def test_outbox_writes_every_networks_post_once_and_a_rerun_posts_nothing(settings, ledger):
    release = make_release()
    report = post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW)
    assert [(r.channel, r.state) for r in report.results] == [("social:outbox:default", "sent")]
    folder = settings.path("var") / "outbox" / "social" / release.slug
    files = sorted(path.name for path in folder.iterdir())
    assert files == ["default-bluesky.json", "default-linkedin.json", "default-mastodon.json"]
    bluesky = json.loads((folder / "default-bluesky.json").read_text())
    assert bluesky["parts"][0]["count"] <= 300 and release.url in bluesky["parts"][0]["text"]
    assert bluesky["card"] == {
        "url": release.url, "title": release.title, "description": release.summary,
        "image": release.hero.src, "image_alt": release.hero.alt,
    }
    before = {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}

    again = post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW + timedelta(minutes=5))
    assert [(r.state) for r in again.results] == ["already sent"]
    assert {path.name: path.stat().st_mtime_ns for path in folder.iterdir()} == before
    assert ledger.report(release=release.slug).sent == 1


def test_a_network_disabled_in_front_matter_is_not_written(settings, ledger):
    release = make_release(social={"linkedin": ChannelOptions(enabled=False)})
    post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW)
    folder = settings.path("var") / "outbox" / "social" / release.slug
    assert sorted(path.name for path in folder.iterdir()) == ["default-bluesky.json", "default-mastodon.json"]


def test_a_crash_after_posting_is_resolved_by_asking_the_network_not_by_posting_again(settings, ledger, engine_clock):
    settings = mastodon_settings(settings)
    server = FakeMastodon()
    release = make_release()

    class Crash(BaseException):
        """The process dies after Mastodon made the status, before the ledger heard of it."""

    def crash_after_create(request: httpx.Request):
        if request.method == "GET" and request.url.path.startswith("/api/v1/statuses/"):
            raise Crash
        return None

    server.fail = [lambda r: None, lambda r: None, crash_after_create]  # instance, create, then the read-back dies
    with pytest.raises(Crash):
        post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW, transport=httpx.MockTransport(server))
    assert len(server.statuses) == 1
    # In flight until the dead worker's lease runs out on the send loop's clock, whatever the runs' now.
    assert ledger.report(release=release.slug, now=engine_clock()).in_flight == 1
    engine_clock.after(timedelta(minutes=2))
    assert ledger.report(release=release.slug, now=engine_clock()).ambiguous == 1

    report = post_releases(
        releases=[release], settings=settings, ledger=ledger, now=NOW + timedelta(minutes=2), transport=httpx.MockTransport(server)
    )
    assert len(server.statuses) == 1  # found, not posted again
    assert report.results[0].state == "sent" and report.results[0].detail == server.statuses[0]["url"]
    assert ledger.report(release=release.slug).sent == 1


def test_rate_limited_post_waits_for_the_reset_then_goes_out(settings, ledger, engine_clock):
    settings = mastodon_settings(settings)
    server = FakeMastodon()
    release = make_release()
    server.fail = [lambda r: None, rate_limited]
    report = post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW, transport=httpx.MockTransport(server))
    assert report.results[0].state == "deferred" and "Too many requests" in report.results[0].detail
    assert report.problems
    # Before the reset time nothing is tried.
    requests = len(server.requests)
    engine_clock.after(timedelta(minutes=1))
    early = post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW + timedelta(minutes=1),
                          transport=httpx.MockTransport(server))
    assert early.results[0].state == "waiting" and len(server.requests) == requests
    _, retry_at = ledger.outstanding(release=release.slug, channel="social:mastodon:default", now=engine_clock())
    engine_clock.now = retry_at + timedelta(seconds=1)  # the network's reset is an instant of the real clock
    later = post_releases(releases=[release], settings=settings, ledger=ledger, now=retry_at + timedelta(seconds=1),
                          transport=httpx.MockTransport(server))
    assert later.results[0].state == "sent" and len(server.statuses) == 1


def _refused(request: httpx.Request) -> None:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def test_a_network_down_longer_than_its_attempts_last_is_waited_out_and_the_post_goes_out_once(settings, ledger, engine_clock):
    settings = mastodon_settings(settings)
    server = FakeMastodon()
    release = make_release()
    down = True
    transport = httpx.MockTransport(lambda request: (_refused(request) if down else None) or server(request))
    report = None
    # Ten tries, two more than a post's attempts, against an instance that refuses every connection.
    for _ in range(10):
        report = post_releases(releases=[release], settings=settings, ledger=ledger, now=engine_clock(), transport=transport)
        assert report.results[0].state == "deferred" and "cannot connect" in report.results[0].detail
        _, retry_at = ledger.outstanding(release=release.slug, channel="social:mastodon:default", now=engine_clock())
        engine_clock.now = retry_at + timedelta(seconds=1)
    assert server.statuses == [] and ledger.report(release=release.slug).failed == 0
    down = False
    back = post_releases(releases=[release], settings=settings, ledger=ledger, now=engine_clock(), transport=transport)
    assert back.results[0].state == "sent" and len(server.statuses) == 1
    assert back.results[0].detail == server.statuses[0]["url"]


def test_a_post_made_just_before_the_network_went_away_is_found_not_made_again(settings, ledger, engine_clock):
    settings = mastodon_settings(settings)
    server = FakeMastodon()
    release = make_release()
    server.fail = [lambda r: None, lambda r: None, _refused]  # instance, the status is made, then its read-back is refused
    first = post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW, transport=httpx.MockTransport(server))
    assert first.results[0].state == "deferred" and len(server.statuses) == 1
    # Mastodon keeps an Idempotency-Key for an hour: after a longer outage only looking first prevents a second post.
    _found_not_made_again(release, settings, ledger, server, engine_clock, later=timedelta(hours=2))


def test_a_failed_post_sent_again_on_the_operators_word_is_looked_for_before_it_is_posted(settings, ledger, engine_clock):
    settings = mastodon_settings(settings)
    server = FakeMastodon()
    release = make_release()
    revoked = httpx.Response(401, json={"error": "The access token is invalid"})
    server.fail = [lambda r: None, lambda r: None, lambda r: revoked]  # instance, the status is made, its read-back refused
    first = post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW, transport=httpx.MockTransport(server))
    assert first.results[0].state == "failed" and len(server.statuses) == 1
    # The operator renews the token and sends it again, hours later: Mastodon has forgotten the Idempotency-Key.
    assert ledger.retry(states=["failed"], now=NOW + timedelta(hours=3), release=release.slug) == 1
    _found_not_made_again(release, settings, ledger, server, engine_clock, later=timedelta(hours=3))


def _found_not_made_again(release, settings, ledger, server: FakeMastodon, engine_clock, *, later: timedelta) -> None:
    """A run ``later`` (over an hour: Mastodon has forgotten the Idempotency-Key) finds the post made before."""
    engine_clock.after(later)
    server.by_key.clear()
    again = post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW + later,
                          transport=httpx.MockTransport(server))
    assert again.results[0].state == "sent" and len(server.statuses) == 1
    assert again.results[0].detail == server.statuses[0]["url"]


def test_a_validation_error_fails_once_with_the_networks_message_and_is_not_retried(settings, ledger):
    settings = mastodon_settings(settings)
    server = FakeMastodon()
    release = make_release()
    server.fail = [lambda r: None, lambda r: httpx.Response(422, json={"error": "Validation failed: Text can't be blank"})]
    report = post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW, transport=httpx.MockTransport(server))
    assert report.results[0].state == "failed" and "Text can't be blank" in report.results[0].detail
    requests = len(server.requests)
    again = post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW + timedelta(days=1),
                          transport=httpx.MockTransport(server))
    assert again.results[0].state == "failed earlier" and "Text can't be blank" in again.results[0].detail
    assert len(server.requests) == requests and server.statuses == []
    assert TOKEN not in json.dumps(again.as_rows())


def test_an_unknown_network_fails_before_the_ledger_is_touched(settings, ledger):
    bad = settings.model_copy(update={"social": [SocialAccount(network="outbox"), SocialAccount(network="friendster")]})
    with pytest.raises(ConfigError, match="friendster"):
        post_releases(releases=[make_release()], settings=bad, ledger=ledger, now=NOW)
    assert ledger.report().total == 0
    assert not (settings.path("var") / "outbox" / "social").exists()


def test_preview_lists_every_post_with_its_count(settings):
    previews = preview_posts(release=make_release(), settings=settings)
    assert [post.network for _, post in previews] == ["mastodon", "bluesky", "linkedin"]
    assert all(post.parts[0].count <= post.limits.chars for _, post in previews)


def test_preview_social_command_shows_each_post_with_its_count(project):
    from typer.testing import CliRunner

    from pressroom.cli import app

    project.write_release("pilot", title="Pilot plant opens", extra="summary: Lithium from old batteries.\ntags: [recycling]\n")
    result = CliRunner().invoke(app, ["preview", "pilot", "--social", "--settings", str(project.root / "pressroom.toml")])
    assert result.exit_code == 0, result.output
    assert "== bluesky (social:outbox:default): 1 post" in result.output
    assert "graphemes, " in result.output and "/300 graphemes" in result.output
    assert "#Recycling" in result.output and "https://press.example.org/" in result.output
    missing = CliRunner().invoke(app, ["preview", "nope", "--social", "--settings", str(project.root / "pressroom.toml")])
    assert missing.exit_code == 2


def test_flow_step_posts_and_leaves_a_table_artifact_of_post_urls(prefect_harness, settings, ledger):
    from prefect import flow
    from prefect.artifacts import Artifact

    from flows.social import post_social

    release = make_release(slug="flow-release")

    @flow
    def run() -> str:
        return post_social(releases=[release], settings=settings, now=NOW).as_text()

    assert run() == "social: sent 1"
    artifact = Artifact.get("social-posts")
    assert artifact is not None and "flow-release" in str(artifact.data) and "file://" in str(artifact.data)


def test_credentials_come_from_the_environment_and_never_show(project):
    settings = project.settings(
        PRESSROOM_SOCIAL__MASTODON__BASE_URL=INSTANCE,
        PRESSROOM_SOCIAL__MASTODON__TOKEN="123456",  # all digits: still text
        PRESSROOM_SOCIAL__BLUESKY_PRESS__HANDLE="press.bsky.social",
        PRESSROOM_SOCIAL__BLUESKY_PRESS__PASSWORD="app-pass-word",
    )
    accounts = {(a.network, a.account): a for a in settings.social}
    # Accounts configured only in the environment replace the embedded outbox default.
    assert set(accounts) == {("mastodon", "default"), ("bluesky", "press")}
    assert accounts[("mastodon", "default")].token.get_secret_value() == "123456"
    assert accounts[("bluesky", "press")].password.get_secret_value() == "app-pass-word"
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    assert "123456" not in shown and "app-pass-word" not in shown


def test_an_account_with_max_age_does_not_post_the_archive(settings, ledger):
    settings = settings.model_copy(update={"social": [SocialAccount(network="outbox", max_age_days=7)]})
    old = make_release(slug="old-news", date=NOW - timedelta(days=30))
    fresh = make_release(slug="fresh-news", date=NOW - timedelta(days=1))
    report = post_releases(releases=[old, fresh], settings=settings, ledger=ledger, now=NOW)
    assert [(r.release, r.state) for r in report.results] == [("old-news", "skipped"), ("fresh-news", "sent")]
    assert "older than 7 days" in report.results[0].detail
    assert ledger.report(release="old-news").total == 0
    assert not (settings.path("var") / "outbox" / "social" / "old-news").exists()


def test_a_broken_template_is_reported_and_retried_after_the_fix_not_lost(settings, ledger, tmp_path, engine_clock):
    release = make_release()
    empty = tmp_path / "empty-templates"
    (empty / "social").mkdir(parents=True)
    broken = settings.model_copy(update={"paths": settings.paths.model_copy(update={"templates": empty})})
    report = post_releases(releases=[release], settings=broken, ledger=ledger, now=NOW)
    assert report.results[0].state == "deferred" and "templates/social/mastodon.txt.j2 is missing" in report.results[0].detail
    assert ledger.report(release=release.slug).sent == 0 and ledger.report(release=release.slug).ambiguous == 0
    engine_clock.after(timedelta(minutes=5))
    fixed = post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW + timedelta(minutes=5))
    assert fixed.results[0].state == "sent"


def test_an_unreadable_answer_is_deferred_and_the_network_asked_before_a_retry(settings, ledger, engine_clock):
    settings = mastodon_settings(settings)
    server = FakeMastodon()
    release = make_release()
    server.fail = [lambda r: None, lambda r: httpx.Response(200, text="<html>maintenance</html>")]
    report = post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW, transport=httpx.MockTransport(server))
    assert report.results[0].state == "deferred" and "unexpected" in report.results[0].detail
    engine_clock.after(timedelta(minutes=2))
    later = post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW + timedelta(minutes=2),
                          transport=httpx.MockTransport(server))
    assert later.results[0].state == "sent" and len(server.statuses) == 1
    assert any(r.url.path == "/api/v1/accounts/14715/statuses" for r in server.requests)  # looked first
