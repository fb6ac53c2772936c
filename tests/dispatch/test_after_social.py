"""Corrections as replies and withdrawals as deletions on the networks, once each, read back.

Bluesky against the real PDS on loopback; Mastodon and LinkedIn against their fakes (shaped from
their documentation) in tests/social/test_mastodon.py and tests/social/test_linkedin.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from pressroom.ledger import Ledger
from pressroom.releases import Correction, Withdrawal
from pressroom.settings import SocialAccount
from pressroom.dispatch import follow_up_releases, post_releases
from tests.conftest import NOW
from tests.social_helpers import make_release
from tests.social.test_bluesky import LoseResponses
from tests.social.test_linkedin import AUTHOR, FakeLinkedIn
from tests.social.test_linkedin import TOKEN as LINKEDIN_TOKEN
from tests.social.test_mastodon import INSTANCE, TOKEN, FakeMastodon

NOTE = "The recovery rate is 91%, not 95%."
CORRECTED = datetime(2024, 8, 2, 8, 0, tzinfo=UTC)
WITHDRAWN = datetime(2024, 8, 3, 8, 0, tzinfo=UTC)
FIRST_SEEN = {"battery-news": NOW}


def _corrected(release):
    return release.model_copy(update={"corrections": (Correction(date=CORRECTED, note=NOTE),)})


def _withdrawn(release):
    return release.model_copy(update={"status": "withdrawn", "withdrawn": Withdrawal(date=WITHDRAWN, reason="Published in error.")})


class Networks(httpx.BaseTransport):
    """Mastodon and LinkedIn fakes behind one transport, by host."""

    def __init__(self) -> None:
        self.mastodon, self.linkedin = FakeMastodon(), FakeLinkedIn()
        self.transports = {"mastodon.example": httpx.MockTransport(self.mastodon)}
        self.transports["api.linkedin.com"] = self.transports["www.linkedin.com"] = httpx.MockTransport(self.linkedin)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.transports[request.url.host].handle_request(request)


def test_mastodon_gets_the_correction_as_one_reply_linkedin_says_it_cannot_and_withdrawal_deletes_both_once(project, engine_clock):
    accounts = [
        SocialAccount(network="mastodon", base_url=INSTANCE, token=SecretStr(TOKEN), handle="@press@mastodon.example"),
        SocialAccount(network="linkedin", author_urn=AUTHOR, token=SecretStr(LINKEDIN_TOKEN)),
    ]
    settings = project.settings(PRESSROOM_EMAIL__SEND_CORRECTIONS="true").model_copy(update={"social": accounts})
    ledger, networks = Ledger.from_settings(settings), Networks()
    release = make_release()
    post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW, transport=networks)
    (original,) = networks.mastodon.statuses
    assert len(networks.linkedin.posts) == 1

    # The first reply is made but its answer lost; the retry comes after Mastodon has forgotten the
    # Idempotency-Key (it keeps one an hour) and finds the reply in the thread instead of making another.
    networks.mastodon.lose_response_after_create = 1
    for minutes in (0, 70, 75):  # reruns
        if minutes == 70:
            networks.mastodon.by_key.clear()
        engine_clock.after(timedelta(days=1, minutes=minutes))
        report = follow_up_releases(releases=[_corrected(release)], settings=settings, ledger=ledger,
                                    now=NOW + timedelta(days=1, minutes=minutes), first_seen=FIRST_SEEN, transport=networks)
    replies = [s for s in networks.mastodon.statuses if s["in_reply_to_id"] == original["id"]]
    assert len(replies) == 1 and "Correction, 2 August 2024: The recovery rate is 91%, not 95%." in replies[0]["content"]
    states = {r.channel: (r.state, r.detail) for r in report.results}
    assert states["social:mastodon:default:correction:1"][0] == "already sent"
    assert states["social:linkedin:default:correction:1"] == ("skipped", "linkedin has no thread to reply in: post the correction there by hand")
    assert len(networks.linkedin.posts) == 1  # LinkedIn untouched

    for minutes in (0, 5):
        engine_clock.after(timedelta(days=2, minutes=minutes))
        report = follow_up_releases(releases=[_withdrawn(_corrected(release))], settings=settings, ledger=ledger,
                                    now=NOW + timedelta(days=2, minutes=minutes), first_seen=FIRST_SEEN, transport=networks)
    assert networks.mastodon.statuses == [] and sorted(networks.mastodon.deleted) == sorted([original["id"], replies[0]["id"]])
    assert networks.linkedin.posts == [] and len(networks.linkedin.deleted) == 1
    assert {r.channel: r.state for r in report.results} == {
        "social:mastodon:default:delete": "already sent", "social:linkedin:default:delete": "already sent",
    }
    assert ledger.states(release=release.slug, channel="social:mastodon:default:delete") == {"@press@mastodon.example": "sent"}


def test_bluesky_gets_one_reply_even_after_a_crash_and_withdrawal_deletes_the_post_and_reply_on_the_pds(pds, project, engine_clock):
    handle, password, did = pds.create_account("press")
    account = SocialAccount(network="bluesky", base_url=pds.url, handle=handle, password=SecretStr(password))
    settings = project.settings(PRESSROOM_EMAIL__SEND_CORRECTIONS="true").model_copy(update={"social": [account]})
    ledger = Ledger.from_settings(settings)
    release = make_release()
    post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW)
    (post,) = pds.records(did)

    class Crash(BaseException):
        """The worker dies after the PDS wrote the reply, before the ledger heard of it."""

    with pytest.raises(Crash):
        follow_up_releases(releases=[_corrected(release)], settings=settings, ledger=ledger, now=NOW + timedelta(days=1),
                           first_seen=FIRST_SEEN, transport=LoseResponses(fault=Crash))
    # The next runs, after the dead worker's lease ran out: the reply is found, not written again.
    for minutes in (5, 10):
        engine_clock.after(timedelta(days=1, minutes=minutes))
        report = follow_up_releases(releases=[_corrected(release)], settings=settings, ledger=ledger,
                                    now=NOW + timedelta(days=1, minutes=minutes), first_seen=FIRST_SEEN)
    records = pds.records(did)
    assert len(records) == 2
    reply = next(r for r in records if r["uri"] != post["uri"])
    assert reply["value"]["reply"]["parent"]["uri"] == post["uri"] == reply["value"]["reply"]["root"]["uri"]
    assert reply["value"]["text"] == "Correction, 2 August 2024: The recovery rate is 91%, not 95%."
    assert ledger.states(release=release.slug, channel="social:bluesky:default:correction:1") == {handle: "sent"}
    assert report.results[0].state == "already sent"

    for minutes in (0, 5):
        engine_clock.after(timedelta(days=2, minutes=minutes))
        report = follow_up_releases(releases=[_withdrawn(_corrected(release))], settings=settings, ledger=ledger,
                                    now=NOW + timedelta(days=2, minutes=minutes), first_seen=FIRST_SEEN)
    assert pds.records(did) == []
    assert [r.state for r in report.results] == ["already sent"]
    assert ledger.states(release=release.slug, channel="social:bluesky:default:delete") == {handle: "sent"}


def test_the_outbox_writes_the_correction_reply_beside_the_post_and_a_withdrawal_removes_every_file(project):
    settings = project.settings(PRESSROOM_EMAIL__SEND_CORRECTIONS="true")
    ledger = Ledger.from_settings(settings)
    release = make_release()
    post_releases(releases=[release], settings=settings, ledger=ledger, now=NOW)
    folder = settings.path("var") / "outbox" / "social" / release.slug
    posts = sorted(path.name for path in folder.iterdir())
    for _ in range(2):
        follow_up_releases(releases=[_corrected(release)], settings=settings, ledger=ledger, now=NOW + timedelta(days=1), first_seen=FIRST_SEEN)
    (reply,) = [path for path in folder.iterdir() if path.name not in posts]
    assert NOTE in reply.read_text(encoding="utf-8")
    follow_up_releases(releases=[_withdrawn(_corrected(release))], settings=settings, ledger=ledger, now=NOW + timedelta(days=2),
                       first_seen=FIRST_SEEN)
    assert list(folder.iterdir()) == []
