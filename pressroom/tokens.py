"""Every signed link: subscribers', journalists' previews, editors' approvals, CSRF forms, link counts.

A token is ``<payload>.<mac>``, both canonical unpadded base64url. The rules, one home each:

* **Strict decoding** (:func:`decode`): only the base64url alphabet, no padding, no stray
  character, and the text must be exactly what encoding the decoded bytes gives back. A token
  with ``!``, ``.`` or ``==`` slipped in, or with other trailing bits, is refused before any MAC
  is computed (Python's own decoder silently drops characters outside the alphabet).
* **Key rotation**: the first of ``settings.signing_keys()`` signs; every key verifies, so links
  in emails sent before a rotation keep working while the old key is listed in
  ``[web] previous_secret_keys``.
* **One key per kind** (a :class:`Kind`), derived from the secret: a subscriber's token can
  never pass for an editor's decision, nor a CSRF token for a link.
* **Constant-time comparison** of MACs (:func:`hmac.compare_digest`).
* **Used once** is decided on the decoded payload (:attr:`Opened.fingerprint`), never on the
  text of the signature: two spellings of one token are one token.

Link-count tokens (:func:`link_count_token`) name a release, a link, a channel and a language,
never a recipient: counting reach never tracks a person. Report tokens (:func:`report_url`) let
editors read the reach report of a period until they expire.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pressroom.errors import TokenError
from pressroom.i18n import N_
from pressroom.settings import Settings

__all__ = [
    "APPROVAL",
    "CONFIRM_ACTION",
    "CSRF",
    "JOURNALIST_UNSUBSCRIBE",
    "LINK_COUNT",
    "REPORT",
    "SUBSCRIBER",
    "ApprovalLink",
    "Kind",
    "LinkCount",
    "Opened",
    "TokenError",
    "approval_url",
    "csrf_token",
    "csrf_valid",
    "decode",
    "encode",
    "journalist_unsubscribe_url",
    "link_count_token",
    "link_count_url",
    "open_approval",
    "open_link_count",
    "open_report",
    "open_token",
    "preferences_url",
    "preview_action",
    "preview_url",
    "report_url",
    "sign",
    "sign_token",
    "unsubscribe_url",
    "verify_token",
]

#: A token longer than this is refused unread: no genuine link comes near it.
MAX_TOKEN = 1024
_MAC_BYTES = 18
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")
_ACTION = re.compile(r"[a-z0-9][a-z0-9-]{0,249}")
_SUBSCRIBER_PAYLOAD = re.compile(r"([a-z0-9][a-z0-9-]{0,249}):(0|[1-9][0-9]{0,18}):((?:[1-9][0-9]{0,11})?)")
_CSRF = re.compile(r"([A-Za-z0-9_-]{16,64})\.([1-9][0-9]{0,11})\.([0-9a-f]{32})")

#: The action of the token in a confirmation link; its number is a subscription request's id.
CONFIRM_ACTION = "confirm-request"
#: The action of a journalist's one-click opt-out link.
JOURNALIST_UNSUBSCRIBE = "journalist-unsubscribe"
#: How long a form's CSRF token is good for: a form left open over lunch still works.
CSRF_MAX_AGE = 12 * 3600


@dataclass(frozen=True)
class Kind:
    """A kind of token: its own key, derived from each secret under ``domain``."""

    domain: bytes


SUBSCRIBER = Kind(b"pressroom-token")  # subscribers' and journalists' links, the bounce webhook
APPROVAL = Kind(b"pressroom-approval")  # an editor's Approve or Reject link
CSRF = Kind(b"pressroom-csrf")  # the forms' double-submit tokens
LINK_COUNT = Kind(b"pressroom-link")  # a tracked link of a sent email or post (no recipient in it)
REPORT = Kind(b"pressroom-report")  # an editors' link to the reach report of a period


# --------------------------------------------------------------------------- encoding


def encode(data: bytes) -> str:
    """Canonical unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode(text: str) -> bytes:
    """The bytes of canonical unpadded base64url ``text``; :class:`TokenError` for anything else."""
    if not _ALPHABET.fullmatch(text) or len(text) % 4 == 1:
        raise TokenError(N_("the link token is damaged"))
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if encode(data) != text:  # other trailing bits: a second spelling of the same bytes
        raise TokenError(N_("the link token is damaged"))
    return data


# --------------------------------------------------------------------------- signing and opening


@functools.lru_cache(maxsize=32)
def _kind_key(domain: bytes, key: bytes) -> bytes:
    return hashlib.sha256(domain + b"\x00" + key).digest()


def _mac(kind: Kind, key: bytes, payload: bytes) -> bytes:
    # One call into OpenSSL's one-shot HMAC: a fan-out signs two links per recipient, and copying
    # a keyed hmac.HMAC object cost about as much again as the hashing.
    return hmac.digest(_kind_key(kind.domain, key), payload, "sha256")[:_MAC_BYTES]


@dataclass(frozen=True)
class Opened:
    """A genuine token: its payload, and which key signed it (0: the current one)."""

    kind: Kind
    payload: bytes
    key_index: int

    @property
    def fingerprint(self) -> str:
        """What "used once" is recorded under: the kind and the decoded payload, whatever the spelling."""
        return hashlib.sha256(self.kind.domain + b"\x00" + self.payload).hexdigest()[:32]


def sign(kind: Kind, keys: Sequence[bytes], payload: bytes) -> str:
    """``payload`` signed with the first of ``keys``."""
    return f"{encode(payload)}.{encode(_mac(kind, keys[0], payload))}"


def open_token(kind: Kind, keys: Sequence[bytes], token: str) -> Opened:
    """The payload of a genuine ``token`` of ``kind`` signed with any of ``keys``; :class:`TokenError` otherwise."""
    if len(token) > MAX_TOKEN or token.count(".") != 1:
        raise TokenError(N_("the link token is damaged"))
    payload_text, mac_text = token.split(".")
    payload, mac = decode(payload_text), decode(mac_text)
    if len(mac) != _MAC_BYTES:
        raise TokenError(N_("the link token is damaged"))
    # Every key is tried, so the time taken does not say which one matched.
    matched = [index for index, key in enumerate(keys) if hmac.compare_digest(mac, _mac(kind, key, payload))]
    if not matched:
        raise TokenError(N_("the link token is not genuine"))
    return Opened(kind=kind, payload=payload, key_index=matched[0])


# --------------------------------------------------------------------------- subscribers' and journalists' links


def sign_token(*, settings: Settings, action: str, subscriber_id: int, expires_at: datetime | None = None) -> str:
    """A URL-safe token that lets its bearer do ``action`` for one subscriber (or journalist, or request) until ``expires_at``."""
    if not _ACTION.fullmatch(action):
        raise ValueError(f"action {action!r}: lower-case letters, digits and hyphens only")
    if subscriber_id < 0:
        raise ValueError("a token names a non-negative id")
    expiry = "" if expires_at is None else str(int(expires_at.timestamp()))
    return sign(SUBSCRIBER, settings.signing_keys(), f"{action}:{subscriber_id}:{expiry}".encode())


def verify_token(*, settings: Settings, token: str, action: str, now: datetime | None = None) -> int:
    """The id inside a genuine, unexpired token for ``action``; :class:`TokenError` otherwise."""
    opened = open_token(SUBSCRIBER, settings.signing_keys(), token)
    parsed = _SUBSCRIBER_PAYLOAD.fullmatch(opened.payload.decode("ascii", errors="replace"))
    if parsed is None:
        raise TokenError(N_("the link token is damaged"))
    token_action, number, expiry = parsed.groups()
    if token_action != action:
        raise TokenError(f"this link is for {token_action!r}, not {action!r}")
    moment = time.time() if now is None else now.timestamp()
    if expiry and moment >= int(expiry):
        raise TokenError(N_("the link has expired"))
    return int(number)


def unsubscribe_url(*, settings: Settings, subscriber_id: int) -> str:
    """The one-click unsubscribe link of a subscriber (never expires, as RFC 8058 expects)."""
    token = sign_token(settings=settings, action="unsubscribe", subscriber_id=subscriber_id)
    return f"{settings.site.base_url}/unsubscribe?token={token}"  # tokens are URL-safe as they are


def preferences_url(*, settings: Settings, subscriber_id: int) -> str:
    """The link to a subscriber's preferences page (topics, cadence, language)."""
    token = sign_token(settings=settings, action="preferences", subscriber_id=subscriber_id)
    return f"{settings.site.base_url}/preferences?token={token}"


def preview_action(slug: str) -> str:
    """The token action of a journalist's preview link of release ``slug``: a link opens one release only."""
    return f"preview-{slug}"


def preview_url(*, settings: Settings, journalist_id: int, slug: str) -> str:
    """A journalist's personal link to the embargoed preview of release ``slug``."""
    token = sign_token(settings=settings, action=preview_action(slug), subscriber_id=journalist_id)
    return f"{settings.site.base_url}/preview/{slug}?token={token}"


def journalist_unsubscribe_url(*, settings: Settings, journalist_id: int) -> str:
    """The one-click opt-out link of a journalist (RFC 8058; never expires)."""
    token = sign_token(settings=settings, action=JOURNALIST_UNSUBSCRIBE, subscriber_id=journalist_id)
    return f"{settings.site.base_url}/journalists/unsubscribe?token={token}"


# --------------------------------------------------------------------------- editors' approval links


class _Version(Protocol):
    slug: str
    digest: str


@dataclass(frozen=True)
class ApprovalLink:
    """What an editor's link says: this version of the release, this editor, approve or reject, until when."""

    slug: str
    digest: str  # the first 16 hex digits of the release version's digest
    editor: str
    approve: bool
    expires: int
    fingerprint: str  # "used once" is recorded under this


def approval_url(*, settings: Settings, release: _Version, editor: str, approve: bool, expires: datetime) -> str:
    """The signed link that lets ``editor`` approve (or reject) this version of ``release`` once, until ``expires``."""
    payload = json.dumps([release.slug, release.digest[:16], editor, approve, int(expires.timestamp())], separators=(",", ":"))
    return f"{settings.site.base_url}/approval/{sign(APPROVAL, settings.signing_keys(), payload.encode())}"


def open_approval(*, settings: Settings, token: str, now: datetime) -> ApprovalLink:
    """The link inside a genuine, unexpired approval ``token``; :class:`TokenError` saying why not."""
    try:
        opened = open_token(APPROVAL, settings.signing_keys(), token)
    except TokenError as exc:
        damaged = exc.message != "the link token is not genuine"
        raise TokenError("This link is damaged: open it from the proof email again." if damaged
                         else "This link was not made by Pressroom for this site.") from None
    try:
        slug, digest, editor, approve, expires = json.loads(opened.payload)
        if not (isinstance(slug, str) and isinstance(digest, str) and isinstance(editor, str)
                and isinstance(approve, bool) and isinstance(expires, int)):
            raise ValueError
    except ValueError:  # signed by us, so never; but a payload is data, not code
        raise TokenError("This link is damaged: open it from the proof email again.") from None
    if now.timestamp() >= expires:
        raise TokenError("This link has expired: the wait for an answer is over, and nothing was sent.")
    return ApprovalLink(slug=slug, digest=digest, editor=editor, approve=approve, expires=expires, fingerprint=opened.fingerprint)


# --------------------------------------------------------------------------- link counts


@dataclass(frozen=True)
class LinkCount:
    """What a counted link names: never a person."""

    release: str
    link: str
    channel: str
    language: str


def link_count_token(*, settings: Settings, release: str, link: str, channel: str, language: str) -> str:
    """A token for counting clicks on ``link`` of ``release`` sent on ``channel`` in ``language``: the same for every recipient."""
    payload = json.dumps([release, link, channel, language], separators=(",", ":"), ensure_ascii=False)
    return sign(LINK_COUNT, settings.signing_keys(), payload.encode())


def link_count_url(*, settings: Settings, release: str, link: str, channel: str, language: str) -> str:
    """The site's counting redirect (``/r/<token>``) to ``link``: the same URL in every recipient's copy."""
    token = link_count_token(settings=settings, release=release, link=link, channel=channel, language=language)
    return f"{settings.site.base_url}/r/{token}"


def open_link_count(*, settings: Settings, token: str) -> LinkCount:
    """The (release, link, channel, language) of a genuine link-count token; :class:`TokenError` otherwise."""
    opened = open_token(LINK_COUNT, settings.signing_keys(), token)
    try:
        fields = json.loads(opened.payload)
        if not (isinstance(fields, list) and len(fields) == 4 and all(isinstance(f, str) for f in fields)):
            raise ValueError
    except ValueError:
        raise TokenError(N_("the link token is damaged")) from None
    return LinkCount(*fields)


# --------------------------------------------------------------------------- editors' reach report


_PERIOD_TEXT = re.compile(r"all|\d{4}(?:-Q[1-4]|-(?:0[1-9]|1[0-2]))?")


def report_url(*, settings: Settings, period: str, expires: datetime) -> str:
    """The editors' link to the reach report of ``period`` (``all``, ``2026``, ``2026-Q4``, ``2026-11``) until ``expires``."""
    if not _PERIOD_TEXT.fullmatch(period):
        raise ValueError(f"period {period!r}: all, a year, a quarter (2026-Q4) or a month (2026-11)")
    payload = f"{period}:{int(expires.timestamp())}".encode()
    return f"{settings.site.base_url}/reports/{sign(REPORT, settings.signing_keys(), payload)}"


def open_report(*, settings: Settings, token: str, now: datetime) -> str:
    """The period of a genuine, unexpired report ``token``; :class:`TokenError` otherwise."""
    opened = open_token(REPORT, settings.signing_keys(), token)
    period, _, expires = opened.payload.decode("ascii", errors="replace").partition(":")
    if not (_PERIOD_TEXT.fullmatch(period) and expires.isdigit()):
        raise TokenError(N_("the link token is damaged"))
    if now.timestamp() >= int(expires):
        raise TokenError(N_("the link has expired"))
    return period


# --------------------------------------------------------------------------- CSRF


def _csrf_mac(key: bytes, nonce: str, issued: int) -> str:
    return hmac.digest(_kind_key(CSRF.domain, key), f"{nonce}.{issued}".encode(), "sha256").hex()[:32]


def csrf_token(*, keys: Sequence[bytes], nonce: str, now: float | None = None) -> str:
    """A form's token bound to the random ``nonce`` of its cookie (``nonce.issued.mac``)."""
    issued = int(time.time() if now is None else now)
    return f"{nonce}.{issued}.{_csrf_mac(keys[0], nonce, issued)}"


def csrf_valid(*, keys: Sequence[bytes], token: str, cookie_nonce: str | None, now: float | None = None) -> bool:
    """Whether ``token`` is a fresh form token of ours for the cookie's nonce (any key, strict format)."""
    parsed = _CSRF.fullmatch(token)
    if parsed is None or not cookie_nonce:
        return False
    nonce, issued, mac = parsed.group(1), int(parsed.group(2)), parsed.group(3)
    fresh = 0 <= (time.time() if now is None else now) - issued <= CSRF_MAX_AGE
    genuine = [hmac.compare_digest(mac, _csrf_mac(key, nonce, issued)) for key in keys]
    return fresh and hmac.compare_digest(nonce, cookie_nonce) and any(genuine)
