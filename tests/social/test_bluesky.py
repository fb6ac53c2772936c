"""Bluesky against a real PDS on loopback (@atproto/dev-env): facets, cards, images, threads, limits, crashes, rate limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from pressroom.errors import PermanentError
from pressroom.ledger import Ledger
from pressroom.releases import ChannelOptions
from pressroom.settings import Settings, SocialAccount
from pressroom.dispatch import post_releases
from pressroom.social.bluesky import Bluesky, release_tid
from pressroom.social.compose import BLUESKY, Part, compose_post
from pressroom.errors import RetryLater
from tests.conftest import NOW
from tests.pds import running_pds
from tests.social_helpers import SAMPLE_HERO, TEMPLATES, make_release

TID_RE = r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$"


@pytest.fixture
def account(pds):
    handle, password, did = pds.create_account("press")
    return SocialAccount(network="bluesky", base_url=pds.url, handle=handle, password=SecretStr(password)), did


def network_for(account: SocialAccount, transport: httpx.BaseTransport | None = None) -> Bluesky:
    return Bluesky(account=account, settings=Settings(), transport=transport)


def post_for(**release_args):
    return compose_post(release=make_release(**release_args), network="bluesky", limits=BLUESKY, templates=TEMPLATES)


def test_release_tid_is_a_valid_stable_tid():
    import re

    first = release_tid(slug="a", account="default", published=datetime(2024, 7, 30, 7, tzinfo=UTC))
    assert re.match(TID_RE, first)
    assert first == release_tid(slug="a", account="default", published=datetime(2024, 7, 30, 7, tzinfo=UTC))
    assert first != release_tid(slug="b", account="default", published=datetime(2024, 7, 30, 7, tzinfo=UTC))
    assert first < release_tid(slug="a", account="default", published=datetime(2024, 7, 30, 7, tzinfo=UTC), part=1)


def test_a_post_has_exact_facets_a_card_with_the_hero_thumb_and_a_deterministic_key(pds, account):
    settings_account, did = account
    post = post_for(title="Électricité: 电池回收 👨‍👩‍👧‍👦 pilot opens", tags=("circular economy", "電池"))
    network = network_for(settings_account)
    published = network.publish(post, key="k")
    network.close()

    [record] = pds.records(did)
    rkey = record["uri"].rsplit("/", 1)[-1]
    assert rkey == network.rkeys(post)[0]
    assert published.url == f"https://bsky.app/profile/{settings_account.handle}/post/{rkey}"
    value = record["value"]
    assert value["text"] == post.text and value["langs"] == ["en"]
    data = value["text"].encode("utf-8")
    covered = {data[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode(): f["features"][0] for f in value["facets"]}
    assert covered["https://press.example.org/releases/battery-news/"] == {
        "$type": "app.bsky.richtext.facet#link", "uri": "https://press.example.org/releases/battery-news/"}
    assert covered["#CircularEconomy"]["tag"] == "CircularEconomy"
    assert covered["#電池"]["tag"] == "電池"
    external = value["embed"]["external"]
    assert value["embed"]["$type"] == "app.bsky.embed.external"
    assert external["uri"] == post.card.url and external["title"] == post.card.title
    thumb = external["thumb"]
    assert thumb["mimeType"] == "image/png" and thumb["size"] == SAMPLE_HERO.stat().st_size
    assert pds.blob(did, thumb["ref"]["$link"]) == SAMPLE_HERO.read_bytes()


def test_image_embed_carries_the_alt_text(pds, account):
    settings_account, did = account
    network = network_for(settings_account.model_copy(update={"embed": "image"}))
    network.publish(post_for(), key="k")
    network.close()
    [record] = pds.records(did)
    image = record["value"]["embed"]["images"][0]
    assert record["value"]["embed"]["$type"] == "app.bsky.embed.images"
    assert image["alt"] == "Workers at the recycling pilot plant" and image["image"]["size"] == SAMPLE_HERO.stat().st_size


def test_a_long_override_is_posted_as_a_thread_of_replies(pds, account):
    settings_account, did = account
    text = " ".join(f"Step {n} of the pilot turns used cells into new cathode material." for n in range(1, 20))
    post = post_for(social={"bluesky": ChannelOptions(text=text)})
    assert len(post.parts) >= 3
    network = network_for(settings_account)
    published = network.publish(post, key="k")
    network.close()
    records = {r["uri"]: r for r in pds.records(did)}
    assert len(records) == len(post.parts) == len(published.ids)
    root = records[published.ids[0]]
    assert "reply" not in root["value"]
    for parent_uri, child_uri in zip(published.ids, published.ids[1:]):
        reply = records[child_uri]["value"]["reply"]
        assert reply["root"] == {"uri": root["uri"], "cid": root["cid"]}
        assert reply["parent"] == {"uri": parent_uri, "cid": records[parent_uri]["cid"]}


def test_the_servers_own_300_grapheme_limit(pds, account):
    settings_account, did = account
    network = network_for(settings_account)
    ok = "e\u0301" * 300  # 300 graphemes, 600 code points: within the limit
    too_long = "e\u0301" * 301
    network.publish(_with_text(post_for(slug="at-limit", hero_file=None), ok), key="a")
    with pytest.raises(PermanentError, match=r"grapheme too big \(maximum 300, got 301\)") as caught:
        network.publish(_with_text(post_for(slug="over-limit", hero_file=None), too_long), key="b")
    assert not isinstance(caught.value, RetryLater)
    network.close()
    assert [r["value"]["text"] for r in pds.records(did)] == [ok]


def test_the_servers_own_1mb_thumb_limit_and_ours(pds, account, tmp_path: Path):
    import io
    import os

    from PIL import Image

    settings_account, did = account
    big = tmp_path / "big.png"
    Image.frombytes("RGB", (1000, 700), os.urandom(1000 * 700 * 3)).save(big)  # noise: about 2 MB as PNG
    assert big.stat().st_size > 1_000_000
    post = post_for(slug="big-hero", hero_file=big)
    network = network_for(settings_account)
    network.max_thumb_bytes = 5_000_000  # pretend we had no guard: the PDS itself refuses
    with pytest.raises(PermanentError, match=r"blob too big \(maximum 1000000, got \d+\)") as caught:
        network.publish(post, key="k")
    assert not isinstance(caught.value, RetryLater)
    assert pds.records(did) == []
    network.max_thumb_bytes = 1_000_000  # our guard: the thumb is made smaller, never dropped
    network.publish(post, key="k")
    network.close()
    [record] = pds.records(did)
    thumb = record["value"]["embed"]["external"]["thumb"]
    assert thumb["mimeType"] == "image/jpeg" and thumb["size"] <= 1_000_000
    with Image.open(io.BytesIO(pds.blob(did, thumb["ref"]["$link"]))) as image:
        assert image.format == "JPEG" and image.width >= 500  # still a picture worth showing


class LoseResponses(httpx.BaseTransport):
    """The PDS writes the record, then the answer is lost (a timeout), or the process dies."""

    def __init__(self, *, fault: type[BaseException] | None = None, after: int = 1) -> None:
        self.inner = httpx.HTTPTransport()
        self.fault = fault
        self.after = after  # the fault strikes on this create
        self.creates = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("com.atproto.repo.createRecord"):
            self.creates += 1
            if self.fault is not None and self.creates == self.after:
                response.read()
                fault, self.fault = self.fault, None
                raise fault("timed out", request=request) if issubclass(fault, httpx.TimeoutException) else fault()
        return response

    def close(self) -> None:
        self.inner.close()


def test_a_timeout_after_the_write_is_checked_with_get_record_not_posted_twice(pds, account):
    settings_account, did = account
    transport = LoseResponses(fault=httpx.ReadTimeout)
    network = network_for(settings_account, transport=transport)
    published = network.publish(post_for(), key="k")
    network.close()
    assert transport.creates == 1
    assert [r["uri"] for r in pds.records(did)] == list(published.ids)


def test_no_duplicate_after_a_simulated_crash(pds, account, project, engine_clock):
    settings_account, did = account
    settings = project.settings().model_copy(update={"social": [settings_account]})
    ledger = Ledger.from_settings(settings)
    release = make_release()

    class Crash(BaseException):
        """The worker dies after the PDS wrote the record, before the ledger heard of it."""

    with pytest.raises(Crash):
        post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW, transport=LoseResponses(fault=Crash))
    assert len(pds.records(did)) == 1
    assert ledger.report(release=release.slug, now=engine_clock()).in_flight == 1

    transport = LoseResponses()
    # The next scheduled run, after the dead worker's lease ran out.
    engine_clock.after(timedelta(minutes=5))
    assert ledger.report(release=release.slug, now=engine_clock()).ambiguous == 1
    report = post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW + timedelta(minutes=5), transport=transport)
    assert transport.creates == 0
    assert report.results[0].state == "sent"
    [record] = pds.records(did)
    assert report.results[0].detail.endswith(record["uri"].rsplit("/", 1)[-1])
    engine_clock.after(timedelta(minutes=10))
    again = post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW + timedelta(minutes=10))
    assert again.results[0].state == "already sent" and len(pds.records(did)) == 1


def test_a_crash_in_the_middle_of_a_thread_is_completed_not_restarted(pds, account, project, engine_clock):
    settings_account, did = account
    settings = project.settings().model_copy(update={"social": [settings_account]})
    ledger = Ledger.from_settings(settings)
    text = " ".join(f"Step {n} of the pilot turns used cells into new cathode material." for n in range(1, 20))
    release = make_release(social={"bluesky": ChannelOptions(text=text)})

    class Crash(BaseException):
        """The worker dies after the second post of the thread was written."""

    with pytest.raises(Crash):
        post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW, transport=LoseResponses(fault=Crash, after=2))
    assert len(pds.records(did)) == 2
    engine_clock.after(timedelta(minutes=5))
    report = post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW + timedelta(minutes=5))
    assert report.results[0].state == "sent"
    records = pds.records(did)
    texts = [r["value"]["text"] for r in records]
    assert len(texts) == len(set(texts))  # no part twice
    root = next(r for r in records if "reply" not in r["value"])
    assert sum(1 for r in records if "reply" not in r["value"]) == 1
    assert all(r["value"]["reply"]["root"]["uri"] == root["uri"] for r in records if r is not root)
    assert " ".join(texts).count("Step 19 of") == 1


def test_rate_limits_on_the_post_waits_until_ratelimit_reset(project):
    with running_pds(rate_limits=True) as pds:
        handle, password, did = pds.create_account("limited")
        # Use up the login budget of this account (30 per 5 minutes).
        for _ in range(40):
            answer = httpx.post(f"{pds.url}/xrpc/com.atproto.server.createSession",
                                json={"identifier": handle, "password": password}, timeout=30)
            if answer.status_code == 429:
                break
        assert answer.status_code == 429
        reset = datetime.fromtimestamp(int(answer.headers["RateLimit-Reset"]), UTC)

        account = SocialAccount(network="bluesky", base_url=pds.url, handle=handle, password=SecretStr(password))
        settings = project.settings().model_copy(update={"social": [account]})
        ledger = Ledger.from_settings(settings)
        release = make_release()
        report = post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW)
        assert report.results[0].state == "deferred" and "rate limit" in report.results[0].detail
        _, retry_at = ledger.outstanding(release=release.slug, channel="social:bluesky:default", now=NOW)
        assert abs((retry_at - reset).total_seconds()) <= 2  # the PDS's own reset time, not a guess
        assert pds.records(did) == []
        assert password not in report.as_text() and password not in str(report.as_rows())


def _with_text(post, text: str):
    from dataclasses import replace

    return replace(post, parts=(Part(text=text, count=0, bytes=len(text.encode())),))


def test_the_hero_is_fetched_from_the_public_site_without_the_session_token():
    """Without a local file the hero is fetched from its public URL; the PDS token must not go there."""
    seen: dict[str, httpx.Request] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        seen[request.url.host + path] = request
        if path.endswith("createSession"):
            return httpx.Response(200, json={"did": "did:plc:abc", "handle": "press.test", "accessJwt": "jwt-secret", "refreshJwt": "r"})
        if path.endswith("getRecord"):
            if "createRecord" in str(list(seen)):
                return httpx.Response(200, json={"uri": "at://did:plc:abc/app.bsky.feed.post/x", "cid": "c", "value": {}})
            return httpx.Response(400, json={"error": "RecordNotFound", "message": "Could not locate record"})
        if path.endswith("uploadBlob"):
            return httpx.Response(200, json={"blob": {"$type": "blob", "ref": {"$link": "bafk"}, "mimeType": "image/png", "size": 3}})
        if path.endswith("createRecord"):
            return httpx.Response(200, json={"uri": "at://did:plc:abc/app.bsky.feed.post/x", "cid": "c"})
        if request.url.host == "press.example.org":
            return httpx.Response(200, content=b"png", headers={"Content-Type": "image/png"})
        return httpx.Response(404)

    account = SocialAccount(network="bluesky", base_url="https://pds.example", handle="press.test", password=SecretStr("pw"))
    network = Bluesky(account=account, settings=Settings(), transport=httpx.MockTransport(handler))
    network.publish(post_for(hero_file=None), key="k")
    network.close()
    image = seen["press.example.org/releases/battery-news/hero.png"]
    assert "Authorization" not in image.headers
    assert seen["pds.example/xrpc/com.atproto.repo.uploadBlob"].headers["Authorization"] == "Bearer jwt-secret"


def test_verify_logs_in_without_posting(pds, account):
    settings_account, did = account
    network = network_for(settings_account)
    assert network.verify().startswith(f"{settings_account.handle} ({did})")
    network.close()
    assert pds.records(did) == []
    wrong = network_for(settings_account.model_copy(update={"password": SecretStr("wrong")}))
    with pytest.raises(PermanentError, match="(?i)invalid identifier or password"):
        wrong.verify()
    wrong.close()


def test_a_co_issuer_is_mentioned_with_a_facet_naming_its_did_resolved_once(pds, account, project):
    """A second account on the PDS is a co-issuer: the post's facet covers exactly "@handle" and names its DID."""
    import json
    import shutil

    from pressroom.organisations import Organisation

    settings_account, did = account
    partner_handle, _, partner_did = pds.create_account("partner")
    folder = project.root / "content" / "organisations"
    folder.mkdir(parents=True)
    shutil.copy(SAMPLE_HERO, folder / "logo.png")
    partner = Organisation.model_validate(
        {"id": "partner", "name": "Partner project", "logo": "logo.png", "website": "https://partner.example.eu",
         "social": {"bluesky": partner_handle}, "source": folder / "partner.yaml"},
        context=folder / "partner.yaml",
    )
    release = make_release(title="Électricité: 电池回收 pilot opens 👨‍👩‍👧‍👦").model_copy(update={"issuers": (partner,)})
    post = compose_post(release=release, network="bluesky", limits=BLUESKY, templates=TEMPLATES)
    network = Bluesky(account=settings_account, settings=project.settings())
    network.publish(post, key="k")
    network.close()

    [record] = pds.records(did)
    text = record["value"]["text"].encode("utf-8")
    [mention] = [f for f in record["value"]["facets"] if f["features"][0]["$type"] == "app.bsky.richtext.facet#mention"]
    assert text[mention["index"]["byteStart"] : mention["index"]["byteEnd"]].decode() == f"@{partner_handle}"
    assert mention["features"][0]["did"] == partner_did
    cache = project.root / "var" / "cache" / "bluesky-dids.json"
    assert json.loads(cache.read_text())[partner_handle][0] == partner_did

    # Resolved once: a later post finds the DID in the cache, even with the resolver unreachable.
    class NoResolver(httpx.BaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.HTTPTransport()

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if "resolveHandle" in request.url.path:
                raise httpx.ConnectError("the resolver is not asked twice")
            return self.inner.handle_request(request)

    second = compose_post(release=release.model_copy(update={"slug": "second-news"}), network="bluesky", limits=BLUESKY,
                          templates=TEMPLATES)
    network = Bluesky(account=settings_account, settings=project.settings(), transport=NoResolver())
    network.publish(second, key="k2")
    network.close()
    newest = next(r for r in pds.records(did) if r["uri"] != record["uri"])
    assert [f["features"][0].get("did") for f in newest["value"]["facets"] if "did" in f["features"][0]] == [partner_did]


def test_an_unknown_handle_stays_plain_text_without_a_facet(pds, account, project):
    settings_account, _did = account
    network = Bluesky(account=settings_account, settings=project.settings())
    assert network.did_of("nobody-here.test") is None
    network.close()
