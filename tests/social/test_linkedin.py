"""LinkedIn against httpx.MockTransport shaped from the Posts and Images API docs (201 + x-restli-id, finder by author)."""

from __future__ import annotations

import json
from urllib.parse import unquote

import httpx
import pytest
from pydantic import SecretStr

from pressroom.errors import PermanentError, TransientError
from pressroom.settings import Settings, SocialAccount
from pressroom.social.compose import LINKEDIN, compose_post
from pressroom.social.linkedin import LinkedIn, little_text
from pressroom.errors import RetryLater
from tests.social_helpers import TEMPLATES, make_release

TOKEN = "linkedin-oauth-secret-456"
AUTHOR = "urn:li:organization:2414183"


class FakeLinkedIn:
    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.images: dict[str, bytes] = {}
        self.requests: list[httpx.Request] = []
        self.fail: list = []
        self.error_after_create: httpx.Response | None = None
        self.deleted: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host == "api.linkedin.com":
            assert request.headers["Authorization"] == f"Bearer {TOKEN}"
            assert request.headers["X-Restli-Protocol-Version"] == "2.0.0"
            assert request.headers["LinkedIn-Version"].isdigit()
        if self.fail:
            answer = self.fail.pop(0)(request)
            if answer is not None:
                return answer
        path = request.url.path
        if path == "/rest/images" and request.url.params.get("action") == "initializeUpload":
            urn = f"urn:li:image:C4E10AQFoyyAjHPMQuQ{len(self.images)}"
            self.images[urn] = b""
            return httpx.Response(200, json={"value": {
                "uploadUrlExpiresAt": 1650567510704,
                "uploadUrl": f"https://www.linkedin.com/dms-uploads/upload/{len(self.images)}",
                "image": urn,
            }})
        if request.url.host == "www.linkedin.com" and request.method == "PUT":
            urn = list(self.images)[int(path.rsplit("/", 1)[-1]) - 1]
            self.images[urn] = request.content
            return httpx.Response(201)
        if path == "/rest/posts" and request.method == "POST":
            body = json.loads(request.content)
            urn = f"urn:li:share:68447855235931340{len(self.posts)}"
            self.posts.append({"id": urn, **body})
            if self.error_after_create is not None:
                answer, self.error_after_create = self.error_after_create, None
                return answer
            return httpx.Response(201, headers={"x-restli-id": urn})
        if path == "/rest/posts" and request.method == "GET":
            assert request.url.params["q"] == "author" and request.url.params["author"] == AUTHOR
            return httpx.Response(200, json={"paging": {"start": 0, "count": 10}, "elements": list(reversed(self.posts))})
        if path.startswith("/rest/posts/") and request.method == "DELETE":
            # DELETE /rest/posts/{encoded urn} with X-RestLi-Method: DELETE answers 204.
            assert request.headers["X-RestLi-Method"] == "DELETE"
            urn = unquote(path.removeprefix("/rest/posts/"))
            for post in self.posts:
                if post["id"] == urn:
                    self.posts.remove(post)
                    self.deleted.append(urn)
                    return httpx.Response(204)
            return httpx.Response(404, json={"status": 404, "code": "NOT_FOUND", "message": "Not Found"})
        if path.startswith("/rest/posts/"):
            urn = unquote(path.removeprefix("/rest/posts/"))
            for post in self.posts:
                if post["id"] == urn:
                    return httpx.Response(200, json=post)
            return httpx.Response(404, json={"status": 404, "code": "NOT_FOUND", "message": "Not Found"})
        return httpx.Response(404, json={"status": 404, "message": "Not Found"})


@pytest.fixture
def server() -> FakeLinkedIn:
    return FakeLinkedIn()


@pytest.fixture
def linkedin(server):
    account = SocialAccount(network="linkedin", author_urn=AUTHOR, token=SecretStr(TOKEN))
    network = LinkedIn(account=account, settings=Settings(), transport=httpx.MockTransport(server))
    yield network
    network.close()


def post_for(**release_args):
    return compose_post(release=make_release(**release_args), network="linkedin", limits=LINKEDIN, templates=TEMPLATES)


def test_little_format_escapes_reserved_characters_and_templates_hashtags():
    text = "Pilot (phase 1) [EU] uses <Li> & *new* tech_x ~ {a|b} @home \\ #ClusterHUB #电池 C#"
    assert little_text(text) == (
        "Pilot \\(phase 1\\) \\[EU\\] uses \\<Li\\> & \\*new\\* tech\\_x \\~ \\{a\\|b\\} \\@home \\\\ "
        "{hashtag|\\#|ClusterHUB} {hashtag|\\#|电池} C\\#"
    )


def test_a_post_is_an_article_card_with_escaped_commentary_and_a_thumbnail(server, linkedin):
    post = post_for(title="Pilot plant (phase 1) opens [EU project]", tags=("circular economy",))
    published = linkedin.publish(post, key="k")
    body = server.posts[0]
    assert body["author"] == AUTHOR and body["visibility"] == "PUBLIC" and body["lifecycleState"] == "PUBLISHED"
    assert body["commentary"].startswith("Pilot plant \\(phase 1\\) opens \\[EU project\\]")
    assert "{hashtag|\\#|CircularEconomy}" in body["commentary"]
    article = body["content"]["article"]
    assert article["source"] == "https://press.example.org/releases/battery-news/"
    assert article["title"] == post.card.title and article["description"] == post.card.description
    assert server.images[article["thumbnail"]] == post.card.image_file.read_bytes()
    assert published.url == f"https://www.linkedin.com/feed/update/{body['id']}/"
    # Read back once after creating.
    assert server.requests[-1].method == "GET" and unquote(server.requests[-1].url.path).endswith(body["id"])


def test_an_ambiguous_500_is_found_by_reading_back_not_posted_twice(server, linkedin):
    post = post_for()
    server.error_after_create = httpx.Response(504, json={"status": 504, "message": "Gateway Timeout"})
    with pytest.raises(RetryLater):
        linkedin.publish(post, key="k")
    assert len(server.posts) == 1  # LinkedIn made it despite the error
    found = linkedin.find(post, key="k")
    assert found is not None and found.ids == (server.posts[0]["id"],)


def test_422_is_permanent_with_linkedins_message(server, linkedin):
    post = post_for(hero_file=None)
    server.fail.append(lambda _: httpx.Response(
        422, json={"status": 422, "code": "UNPROCESSABLE_ENTITY",
                   "message": "ERROR :: /commentary :: string is too long, 3500 > 3000"}))
    with pytest.raises(PermanentError, match="string is too long") as caught:
        linkedin.publish(post, key="k")
    assert not isinstance(caught.value, RetryLater)


def test_429_and_timeouts_are_transient(server, linkedin):
    post = post_for(hero_file=None)
    server.fail.append(lambda _: httpx.Response(
        429, json={"status": 429, "message": "Resource level throttle APPLICATION DAY limit for calls to this resource is reached."}))
    with pytest.raises(RetryLater, match="throttle"):
        linkedin.publish(post, key="k")

    def timeout(request):
        raise httpx.ConnectTimeout("timed out", request=request)

    server.fail.append(timeout)
    with pytest.raises(TransientError, match="ConnectTimeout"):
        linkedin.publish(post, key="k")
    assert server.posts == []


def test_the_token_is_never_in_errors_or_reprs(server, linkedin):
    server.fail.append(lambda _: httpx.Response(401, json={"status": 401, "serviceErrorCode": 65600, "message": "Invalid access token"}))
    with pytest.raises(PermanentError) as caught:
        linkedin.publish(post_for(hero_file=None), key="k")
    assert "Invalid access token" in str(caught.value)
    assert TOKEN not in str(caught.value) and TOKEN not in repr(linkedin)


def test_verify_reads_without_posting(server, linkedin):
    assert linkedin.verify() == AUTHOR and server.posts == []
