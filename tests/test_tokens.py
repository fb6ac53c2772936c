"""pressroom.tokens: strict decoding, every previous key, one key per kind, used-once on the decoded payload."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from pressroom.errors import TokenError
from pressroom.tokens import (
    APPROVAL,
    SUBSCRIBER,
    approval_url,
    csrf_token,
    csrf_valid,
    decode,
    link_count_token,
    open_approval,
    open_link_count,
    open_token,
    sign,
    sign_token,
    verify_token,
)
from tests.conftest import Project

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
def old_and_new(project: Project) -> tuple:
    old = project.settings(PRESSROOM_SECRET_KEY="the-old-key-" + "o" * 32)
    new = project.settings(PRESSROOM_SECRET_KEY="the-new-key-" + "n" * 32,
                           PRESSROOM_WEB__PREVIOUS_SECRET_KEYS='["the-old-key-' + "o" * 32 + '"]')
    alone = project.settings(PRESSROOM_SECRET_KEY="the-new-key-" + "n" * 32)
    return old, new, alone


def _spellings(token: str) -> list[str]:
    """The same token with a character slipped in, padding added, or other trailing bits."""
    payload, mac = token.split(".")
    spellings = [f"{payload}.{mac[:5]}!{mac[5:]}", f"{payload}.{mac[:5]}.{mac[5:]}", f"{payload}.{mac}==", f"{payload}==.{mac}",
                 f" {token}", f"{token}\n", f"{payload}.{mac}.", f"{payload}+.{mac}", f"{payload[:3]}!{payload[3:]}.{mac}"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    if len(payload) % 4:  # the last character carries unused bits: another one decodes to the same bytes
        spellings += [f"{payload[:-1]}{c}.{mac}" for c in alphabet
                      if c != payload[-1] and decode_loose(payload[:-1] + c) == decode_loose(payload)]
        assert len(spellings) > 9
    return spellings


def decode_loose(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_canonical_base64url_only() -> None:
    assert decode("aGk") == b"hi"
    for bad in ["aGk=", "aG!k", "aG.k", "aGl", "a", "", "aGk\n", "aG+k", "aG/k"]:
        with pytest.raises(TokenError):
            decode(bad)


def test_every_other_spelling_of_a_genuine_subscriber_token_is_refused(old_and_new: tuple) -> None:
    _, settings, _ = old_and_new
    token = sign_token(settings=settings, action="unsubscribe", subscriber_id=42)
    assert verify_token(settings=settings, token=token, action="unsubscribe") == 42
    for spelling in _spellings(token):
        with pytest.raises(TokenError):
            verify_token(settings=settings, token=spelling, action="unsubscribe")


def test_every_other_spelling_of_a_genuine_approval_link_is_refused(old_and_new: tuple) -> None:
    _, settings, _ = old_and_new
    release = SimpleNamespace(slug="news", digest="0123456789abcdef" * 2)
    token = approval_url(settings=settings, release=release, editor="ed@example.org", approve=True,
                         expires=NOW + timedelta(hours=1)).rsplit("/", 1)[1]
    assert open_approval(settings=settings, token=token, now=NOW).approve is True
    for spelling in _spellings(token):
        with pytest.raises(TokenError):
            open_approval(settings=settings, token=spelling, now=NOW)


def test_previous_keys_verify_every_kind_and_only_while_listed(old_and_new: tuple) -> None:
    old, new, alone = old_and_new
    release = SimpleNamespace(slug="news", digest="f" * 32)
    subscriber = sign_token(settings=old, action="preferences", subscriber_id=7)
    approval = approval_url(settings=old, release=release, editor="ed@example.org", approve=False,
                            expires=NOW + timedelta(hours=1)).rsplit("/", 1)[1]
    counted = link_count_token(settings=old, release="news", link="https://example.org/x", channel="email", language="en")
    form = csrf_token(keys=old.signing_keys(), nonce="n" * 20, now=NOW.timestamp())
    assert verify_token(settings=new, token=subscriber, action="preferences") == 7
    assert open_approval(settings=new, token=approval, now=NOW).approve is False
    assert open_link_count(settings=new, token=counted).link == "https://example.org/x"
    assert csrf_valid(keys=new.signing_keys(), token=form, cookie_nonce="n" * 20, now=NOW.timestamp())
    # Once the old key is dropped from previous_secret_keys, its links stop working.
    with pytest.raises(TokenError):
        verify_token(settings=alone, token=subscriber, action="preferences")
    with pytest.raises(TokenError):
        open_approval(settings=alone, token=approval, now=NOW)
    with pytest.raises(TokenError):
        open_link_count(settings=alone, token=counted)
    assert not csrf_valid(keys=alone.signing_keys(), token=form, cookie_nonce="n" * 20, now=NOW.timestamp())


def test_used_once_is_keyed_on_the_payload_not_on_the_signature(old_and_new: tuple) -> None:
    old, new, _ = old_and_new
    release = SimpleNamespace(slug="news", digest="a" * 32)
    expires = NOW + timedelta(hours=1)
    by_old = approval_url(settings=old, release=release, editor="ed@example.org", approve=True, expires=expires).rsplit("/", 1)[1]
    by_new = approval_url(settings=new, release=release, editor="ed@example.org", approve=True, expires=expires).rsplit("/", 1)[1]
    assert by_old != by_new  # two signatures of one decision...
    first, second = (open_approval(settings=new, token=t, now=NOW) for t in (by_old, by_new))
    assert first.fingerprint == second.fingerprint  # ...are one link for "used once"
    other = approval_url(settings=new, release=release, editor="ed@example.org", approve=False, expires=expires).rsplit("/", 1)[1]
    assert open_approval(settings=new, token=other, now=NOW).fingerprint != first.fingerprint


def test_one_kind_never_passes_for_another(old_and_new: tuple) -> None:
    _, settings, _ = old_and_new
    keys = settings.signing_keys()
    payload = b'["news","ffffffffffffffff","ed@example.org",true,4102444800]'
    as_subscriber = sign(SUBSCRIBER, keys, payload)
    with pytest.raises(TokenError):
        open_approval(settings=settings, token=as_subscriber, now=NOW)
    assert open_token(APPROVAL, keys, sign(APPROVAL, keys, payload)).payload == payload
    with pytest.raises(TokenError):
        verify_token(settings=settings, token=sign_token(settings=settings, action="preferences", subscriber_id=1), action="unsubscribe")


def test_expired_oversized_and_garbage_tokens_are_refused(old_and_new: tuple) -> None:
    _, settings, _ = old_and_new
    expiring = sign_token(settings=settings, action="confirm-request", subscriber_id=3, expires_at=NOW)
    with pytest.raises(TokenError, match="expired"):
        verify_token(settings=settings, token=expiring, action="confirm-request", now=NOW)
    assert verify_token(settings=settings, token=expiring, action="confirm-request", now=NOW - timedelta(seconds=1)) == 3
    for garbage in ["", ".", "x" * 5000, "a.b.c", "\x00.\x00", "é.é", "AAAA.AAAA"]:
        with pytest.raises(TokenError):
            verify_token(settings=settings, token=garbage, action="unsubscribe")
        with pytest.raises(TokenError):
            open_approval(settings=settings, token=garbage, now=NOW)
        assert not csrf_valid(keys=settings.signing_keys(), token=garbage, cookie_nonce="n" * 20)


def test_a_link_count_token_names_no_recipient(old_and_new: tuple) -> None:
    _, settings, _ = old_and_new
    tokens = {link_count_token(settings=settings, release="news", link="https://example.org/a", channel="email", language="fr")
              for _recipient in ("a@example.org", "b@example.org")}
    assert len(tokens) == 1  # the same for every reader: nothing in it can tell them apart
    opened = open_link_count(settings=settings, token=tokens.pop())
    assert (opened.release, opened.link, opened.channel, opened.language) == ("news", "https://example.org/a", "email", "fr")
