"""Mastodon against httpx.MockTransport shaped from docs.joinmastodon.org (statuses, instance, rate limits)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from pressroom.errors import ConfigError, PermanentError, TransientError
from pressroom.releases import ChannelOptions
from pressroom.settings import Settings, SocialAccount
from pressroom.social.compose import compose_post
from pressroom.social.mastodon import Mastodon
from pressroom.errors import RetryLater
from pressroom.social.accounts import open_networks
from tests.social_helpers import TEMPLATES, make_release

TOKEN = "mastodon-secret-token-123"
INSTANCE = "https://mastodon.example"


class FakeMastodon:
    """Statuses in memory; honours Idempotency-Key like Mastodon (same key -> the same status)."""

    def __init__(self, *, max_characters: int = 500) -> None:
        self.statuses: list[dict] = []
        self.by_key: dict[str, dict] = {}
        self.requests: list[httpx.Request] = []
        self.max_characters = max_characters
        # Scripted failures: called before handling; returns a response or raises, or None to go on.
        self.fail: list[Callable[[httpx.Request], httpx.Response | None]] = []
        self.lose_response_after_create = 0  # the status is made, then the connection times out
        self.deleted: list[str] = []  # ids, in the order DELETE removed them

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        if self.fail:
            answer = self.fail.pop(0)(request)
            if answer is not None:
                return answer
        path = request.url.path
        if path == "/api/v2/instance":
            return httpx.Response(200, json={
                "domain": "mastodon.example",
                "configuration": {"statuses": {"max_characters": self.max_characters, "max_media_attachments": 4,
                                               "characters_reserved_per_url": 23}},
            })
        if path == "/api/v1/statuses" and request.method == "POST":
            data = json.loads(request.content)
            key = request.headers.get("Idempotency-Key")
            if key in self.by_key:
                return httpx.Response(200, json=self.by_key[key])
            if len(data["status"]) > self.max_characters + 200:  # the server's own check (URLs aside)
                return httpx.Response(422, json={"error": f"Validation failed: Text character limit of {self.max_characters} exceeded"})
            status_id = str(103270115826048975 + len(self.statuses))
            status = {
                "id": status_id,
                "created_at": "2024-08-01T12:00:00.000Z",
                "in_reply_to_id": data.get("in_reply_to_id"),
                "visibility": data["visibility"],
                "language": data["language"],
                "uri": f"{INSTANCE}/users/press/statuses/{status_id}",
                "url": f"{INSTANCE}/@press/{status_id}",
                "content": "<p>" + data["status"].replace("\n", "<br />") + "</p>",
                "card": None,
                "account": {"id": "14715", "username": "press", "acct": "press"},
            }
            self.statuses.append(status)
            if key:
                self.by_key[key] = status
            if self.lose_response_after_create:
                self.lose_response_after_create -= 1
                raise httpx.ReadTimeout("timed out", request=request)
            return httpx.Response(200, json=status)
        if path.startswith("/api/v1/statuses/") and path.endswith("/context"):
            # GET /api/v1/statuses/:id/context: {ancestors, descendants}, descendants in thread order.
            status_id = path.split("/")[-2]
            if not any(status["id"] == status_id for status in self.statuses):
                return httpx.Response(404, json={"error": "Record not found"})
            descendants, parents = [], {status_id}
            for status in self.statuses:
                if status["in_reply_to_id"] in parents:
                    descendants.append(status)
                    parents.add(status["id"])
            return httpx.Response(200, json={"ancestors": [], "descendants": descendants})
        if path.startswith("/api/v1/statuses/") and request.method == "DELETE":
            # DELETE /api/v1/statuses/:id answers with the deleted status (its text as source).
            status_id = path.rsplit("/", 1)[-1]
            for status in self.statuses:
                if status["id"] == status_id:
                    self.statuses.remove(status)
                    self.deleted.append(status_id)
                    return httpx.Response(200, json={**status, "text": status["content"]})
            return httpx.Response(404, json={"error": "Record not found"})
        if path.startswith("/api/v1/statuses/"):
            status_id = path.rsplit("/", 1)[-1]
            for status in self.statuses:
                if status["id"] == status_id:
                    return httpx.Response(200, json=status)
            return httpx.Response(404, json={"error": "Record not found"})
        if path == "/api/v1/accounts/verify_credentials":
            return httpx.Response(200, json={"id": "14715", "username": "press", "acct": "press"})
        if path == "/api/v1/accounts/14715/statuses":
            return httpx.Response(200, json=list(reversed(self.statuses)))
        return httpx.Response(404, json={"error": "Record not found"})


# Far in the future, not "now + 5 min": the suite may reach this test long after import,
# and a reset time in the past is (rightly) clamped to now.
RESET = datetime(2099, 1, 1, 12, 5, 0, 123456, tzinfo=UTC)


def rate_limited(_: httpx.Request) -> httpx.Response:
    # Mastodon sends no Retry-After; the reset is an ISO 8601 time.
    return httpx.Response(
        429,
        json={"error": "Too many requests"},
        headers={"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0",
                 "X-RateLimit-Reset": RESET.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
    )


def server_error(_: httpx.Request) -> httpx.Response:
    return httpx.Response(503, text="<html><body>Service Unavailable</body></html>", headers={"Content-Type": "text/html"})


def account() -> SocialAccount:
    return SocialAccount(network="mastodon", base_url=INSTANCE, token=SecretStr(TOKEN), handle="@press@mastodon.example")


@pytest.fixture
def server() -> FakeMastodon:
    return FakeMastodon()


@pytest.fixture
def mastodon(server: FakeMastodon):
    network = Mastodon(account=account(), settings=Settings(), transport=httpx.MockTransport(server))
    yield network
    network.close()


def post_for(network: Mastodon, **release_args):
    release = make_release(**release_args)
    return compose_post(release=release, network="mastodon", limits=network.limits("mastodon"), templates=TEMPLATES)


def test_a_post_is_created_with_an_idempotency_key_and_read_back(server, mastodon):
    post = post_for(mastodon)
    published = mastodon.publish(post, key="pressroom-abc")
    assert published.url == f"{INSTANCE}/@press/103270115826048975"
    create = next(r for r in server.requests if r.method == "POST")
    assert create.headers["Idempotency-Key"] == "pressroom-abc-0"
    sent = json.loads(create.content)
    assert sent["status"] == post.text and sent["visibility"] == "public" and sent["language"] == "en"
    assert "https://press.example.org/releases/battery-news/" in sent["status"]
    # Read back once after creating.
    assert [r.url.path for r in server.requests if r.method == "GET"][-1] == "/api/v1/statuses/103270115826048975"


def test_the_instance_limit_is_used(server):
    server.max_characters = 200
    network = Mastodon(account=account(), settings=Settings(), transport=httpx.MockTransport(server))
    assert network.limits("mastodon").chars == 200
    post = post_for(network, summary="word " * 100)
    assert post.parts[0].count <= 200


def test_a_timeout_after_the_server_created_the_status_does_not_duplicate_it(server, mastodon):
    post = post_for(mastodon)
    server.lose_response_after_create = 1
    with pytest.raises(TransientError):
        mastodon.publish(post, key="pressroom-abc")
    assert len(server.statuses) == 1
    published = mastodon.publish(post, key="pressroom-abc")  # the retry: same key, same status
    assert len(server.statuses) == 1
    assert published.ids == ("103270115826048975",)


def test_429_retries_at_the_iso_reset_time(server, mastodon):
    post = post_for(mastodon)
    server.fail.append(rate_limited)
    with pytest.raises(RetryLater) as caught:
        mastodon.publish(post, key="k")
    assert caught.value.retry_at == RESET
    assert caught.value.retry_after(RESET - timedelta(minutes=5)) == 300
    assert "Too many requests" in str(caught.value)
    assert server.statuses == []


def test_5xx_is_transient(server, mastodon):
    post = post_for(mastodon)
    server.fail.append(server_error)
    with pytest.raises(RetryLater, match="server error 503"):
        mastodon.publish(post, key="k")


def test_422_is_permanent_with_mastodons_message(server, mastodon):
    post = post_for(mastodon)
    server.fail.append(lambda _: httpx.Response(422, json={"error": "Validation failed: Text character limit of 500 exceeded"}))
    with pytest.raises(PermanentError, match="Validation failed: Text character limit of 500 exceeded") as caught:
        mastodon.publish(post, key="k")
    assert not isinstance(caught.value, RetryLater)


def test_bad_token_is_permanent_and_the_token_never_shows(server, mastodon):
    post = post_for(mastodon)
    server.fail.append(lambda _: httpx.Response(401, json={"error": "The access token is invalid"}))
    with pytest.raises(PermanentError) as caught:
        mastodon.publish(post, key="k")
    assert "access token is invalid" in str(caught.value)
    assert TOKEN not in str(caught.value) and TOKEN not in caught.value.hint
    assert TOKEN not in repr(mastodon) and TOKEN not in repr(account())


def test_a_long_override_becomes_a_thread_of_replies(server, mastodon):
    text = " ".join(f"Paragraph {n} explains one more detail of the new recycling pilot plant." for n in range(1, 30))
    post = post_for(mastodon, social={"mastodon": ChannelOptions(text=text)})
    assert len(post.parts) >= 3
    published = mastodon.publish(post, key="t")
    assert len(published.ids) == len(post.parts) == len(server.statuses)
    assert server.statuses[0]["in_reply_to_id"] is None
    for parent, child in zip(server.statuses, server.statuses[1:]):
        assert child["in_reply_to_id"] == parent["id"]
    keys = [r.headers["Idempotency-Key"] for r in server.requests if r.method == "POST"]
    assert len(set(keys)) == len(keys)


def test_find_recognises_the_release_among_the_accounts_statuses(server, mastodon):
    post = post_for(mastodon)
    assert mastodon.find(post, key="k") is None
    mastodon.publish(post, key="k")
    assert mastodon.find(post, key="other").url == f"{INSTANCE}/@press/103270115826048975"


def test_unknown_network_fails_before_anything_is_sent():
    settings = Settings(social=[account(), SocialAccount(network="myspace")])
    seen: list[httpx.Request] = []
    with pytest.raises(ConfigError, match="unknown network 'myspace'"):
        open_networks(settings=settings, transport=httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(500)))
    assert seen == []


def test_missing_credentials_are_a_config_error():
    with pytest.raises(ConfigError, match="needs base_url and token"):
        Mastodon(account=SocialAccount(network="mastodon"), settings=Settings())


def test_verify_checks_the_token_without_posting(server, mastodon):
    assert mastodon.verify() == "@press on https://mastodon.example"
    assert server.statuses == []
    server.fail.append(lambda _: httpx.Response(401, json={"error": "The access token is invalid"}))
    with pytest.raises(PermanentError, match="credentials"):
        mastodon.verify()
