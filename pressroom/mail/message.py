"""MIME: one composed email becomes ready RFC 5322 bytes per recipient.

The skeleton (headers, multipart/alternative, both bodies quoted-printable) is built ONCE
with the ``email`` package. The few personal values sit in the encoded bodies as slot
tokens, each alone on a quoted-printable line between two soft line breaks (``=\\r\\n``),
so a recipient's value can be QP-encoded on its own and joined in without re-encoding
(or re-wrapping) the 40 kB around it. Per recipient the work is: check the inputs, build
its own header lines (To, Message-ID, Date, List-Unsubscribe), encode a few short strings,
join byte strings, and (when configured) DKIM-sign, which is the one inherently per-message cost.
"""

from __future__ import annotations

import binascii
import hashlib
import html
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from functools import cached_property, partial
from typing import Literal

from pressroom.errors import ConfigError, PermanentError
from pressroom.mail.transports import dot_stuffed, end_of_data
from pressroom.settings import Settings

__all__ = ["Composed", "DkimKey", "Recipient", "SLOTS", "build_composed", "feedback_campaign", "message_id_hash", "new_tokens"]

#: Personal values a template may use; compose passes a token for each into the templates.
SLOTS: tuple[str, ...] = ("unsubscribe_url", "preferences_url", "greeting", "action_url")

# Headers DKIM covers. RFC 8058 requires List-Unsubscribe and List-Unsubscribe-Post to be signed;
# RFC 9477 requires CFBL-Address (and CFBL-Feedback-ID) to be, and Gmail trusts a Feedback-ID only when signed.
_DKIM_HEADERS = (
    "from", "to", "subject", "date", "message-id", "reply-to", "mime-version", "content-type",
    "list-id", "list-unsubscribe", "list-unsubscribe-post", "feedback-id", "cfbl-address", "cfbl-feedback-id",
)
# Message keys of the kinds of bulk mail: (prefix or suffix pattern, mail type). The campaign of
# each is the release it is about, so complaint statistics group by release.
_MAIL_TYPES = (
    (re.compile(r"^(digest-.+)$"), "digest"),
    (re.compile(r"^(?:embargo|moved)-(.+)-\d+$"), "embargo"),
    (re.compile(r"^withdrawn-(.+)$"), "withdrawn"),
    (re.compile(r"^(.+)-correction-\d+$"), "correction"),
    (re.compile(r"^(.+)-withdrawal$"), "withdrawal"),
    (re.compile(r"^(welcome)-.+$"), "welcome"),
)
_FEEDBACK_FIELD = re.compile(r"[^A-Za-z0-9._-]")
_MAX_URL = 900  # an SMTP line may hold 998 octets; the List-Unsubscribe line must fit
# Controls (C0, DEL, C1) and the Unicode line/paragraph separators: none belongs in a header or a greeting.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_URL = re.compile(r"^https?://[^\s<>\"'\\\x00-\x1f\x7f]+$")
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9 !#$%&'*+/=?^_`{|}~-]*$")
# A Message-ID root: dot-atom text that bounces.py can split back off at the last dot.
_MESSAGE_KEY = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$")
_MAX_MESSAGE_KEY = 200
# The Date header is a segment of its own, filled per message like a slot.
_DATE = ("head", "date")
_PLACEHOLDER_DATE = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Recipient:
    """One person an email goes to; the URLs are signed by the caller (audience tokens).

    ``action_url`` is this reader's button link in a subscription email (the signed confirm
    link); empty takes the composition's own. ``message_key`` names this one email (its ledger
    key): the Message-ID derives from it and the address, so one composition can serve many
    emails to the same address, each with its own Message-ID; empty takes the composition's key.
    """

    address: str
    name: str = ""
    unsubscribe_url: str = ""
    preferences_url: str = ""
    action_url: str = ""
    message_key: str = ""


def clean_name(name: str, *, links: bool = False) -> str:
    """A display name safe for a header and a greeting (the audience's one name rule).

    A recipient's name that reads as a link is left out rather than refused: the email still
    goes, greeting no one by name. ``links`` is for operator-written names (site, sender).
    """
    from pressroom.audience import AddressError, clean_name as audience_clean_name

    try:
        return audience_clean_name(name, links=links)
    except AddressError:
        return ""


def clean_address(address: str) -> str:
    """``local@domain`` normalised by the audience's one address rule; PermanentError when unusable."""
    from pressroom.audience import AddressError, normalise_address

    try:
        return normalise_address(address)
    except AddressError as exc:
        raise PermanentError(
            f"recipient address {address!r} is not valid: {exc.message}",
            hint="correct or remove the subscriber; nothing was sent to this address",
        ) from None


def _checked_url(value: str, what: str) -> str:
    if len(value) > _MAX_URL or not _URL.fullmatch(value):
        raise PermanentError(
            f"{what} {value[:80]!r} is not a usable http(s) URL",
            hint=f"build the {what} with audience tokens: an absolute https URL without spaces, at most {_MAX_URL} characters",
        )
    return value


def _qp(value: str) -> bytes:
    """Quoted-printable for one slot value, ending with a soft line break so the next line starts clean."""
    if value.isascii():
        # The common case (URLs, ASCII names): printable ASCII already, only "=" needs escaping.
        encoded = value.replace("=", "=3D")
        if len(encoded) <= 75 and encoded.isprintable() and not encoded.endswith(" "):
            return (encoded + "=\r\n").encode("ascii")
    encoded = _leave_room(binascii.b2a_qp(value.encode("utf-8"), header=False, istext=False).decode("ascii"))
    return (encoded.replace("\n", "\r\n") + "=\r\n").encode("ascii")


def _qp_body(text: str, tokens: Mapping[str, str]) -> str:
    """QP-encode ``text``; every token ends up alone on its own line between soft line breaks."""
    pattern = re.compile("|".join(re.escape(token) for token in tokens.values()))
    pieces: list[str] = []
    position = 0
    for match in pattern.finditer(text):
        pieces.append(_leave_room(_qp_static(text[position : match.start()])))
        pieces.append(f"=\n{match.group()}\n")
        position = match.end()
    pieces.append(_qp_static(text[position:]))
    return "".join(pieces)


def _leave_room(encoded: str) -> str:
    """Split a last line of 76 characters so the soft break's "=" still fits (RFC 2045 limit)."""
    head, newline, last = encoded.rpartition("\n")
    if len(last) <= 75:
        return encoded
    cut = 72
    while "=" in last[cut - 2 : cut]:  # never split an =XX escape
        cut -= 1
    return f"{head}{newline}{last[:cut]}=\n{last[cut:]}"


def _qp_static(text: str) -> str:
    return binascii.b2a_qp(text.encode("utf-8"), header=False, istext=True).decode("ascii")


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def message_id_hash(key: str, address: str) -> str:
    """The hash part of ``<key.hash@domain>``: bounces.py recomputes it to find who a redacted report is about."""
    return hashlib.blake2b(f"{key}\n{address.lower()}".encode(), digest_size=10).hexdigest()


def feedback_campaign(key: str) -> tuple[str, str]:
    """(campaign, mail type) of a composition key: the release (or digest) and which kind of bulk mail it is."""
    for pattern, kind in _MAIL_TYPES:
        found = pattern.match(key)
        if found:
            return found.group(1), kind
    return key, "release"


def _feedback_id(key: str, settings: Settings) -> str:
    """``Feedback-ID: campaign:type:sender`` as Gmail reads it (the last field identifies the sender).

    A colon would shift the fields, so anything but letters, digits, ``.``, ``_`` and ``-`` becomes ``_``.
    """
    campaign, kind = feedback_campaign(key)
    email = settings.email
    sender = email.feedback_id or email.list_id or f"releases.{_domain(email.sender)}"
    return ":".join(_FEEDBACK_FIELD.sub("_", field) for field in (campaign[:100], kind, sender))


def _feedback_lines(key: str, settings: Settings) -> bytes:
    """Feedback-ID, and with a complaints address CFBL-Address and CFBL-Feedback-ID (RFC 9477), as raw lines:
    the email package would fold a long field without spaces into encoded words no provider reads."""
    value = _feedback_id(key, settings)
    lines = [f"Feedback-ID: {value}\r\n"]
    if settings.email.complaints_address:
        lines += [f"CFBL-Address: {settings.email.complaints_address}; report=arf\r\n", f"CFBL-Feedback-ID: {value}\r\n"]
    return "".join(lines).encode("ascii")


@dataclass(frozen=True, slots=True)
class DkimKey:
    """A loaded DKIM key; built once per Composed from settings.dkim."""

    domain: bytes
    selector: bytes
    private_key: bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> DkimKey | None:
        dkim = settings.dkim
        if not (dkim.domain or dkim.selector or dkim.key_file or dkim.key):
            return None
        if not (dkim.domain and dkim.selector and (dkim.key_file or dkim.key)):
            raise ConfigError(
                "[dkim] needs domain, selector and key_file (or key) together",
                hint="set all three in pressroom.toml / PRESSROOM_DKIM__* or remove the [dkim] section",
            )
        if dkim.key is not None:
            pem = dkim.key.get_secret_value().encode()
        else:
            path = dkim.key_file if dkim.key_file.is_absolute() else settings.root / dkim.key_file
            try:
                pem = path.read_bytes()
            except OSError as exc:
                raise ConfigError(f"[dkim] key_file {path}: {exc.strerror}", hint="point key_file at the PEM private key") from None
        import dkim as dkimpy

        try:
            dkimpy.crypto.parse_pem_private_key(pem)
        except dkimpy.crypto.UnparsableKeyError as exc:
            raise ConfigError(f"[dkim] the private key cannot be read: {exc}", hint="use an RSA key in PEM format") from None
        return cls(domain=dkim.domain.encode(), selector=dkim.selector.encode(), private_key=pem)

    def sign(self, message: bytes) -> bytes:
        import dkim as dkimpy

        return dkimpy.sign(
            message,
            self.selector,
            self.domain,
            self.private_key,
            include_headers=[name.encode() for name in _DKIM_HEADERS],
            linesep=b"\r\n",
        )


@dataclass(eq=False)
class Composed:
    """One email rendered once; :meth:`message` personalises it for a recipient.

    ``html`` and ``text`` are the parts with neutral values in the personal slots
    (for previews, archives and tests); :meth:`message` holds the real ones.
    """

    key: str
    subject: str
    html: str = field(repr=False)
    text: str = field(repr=False)
    bulk: bool
    _settings: Settings = field(repr=False)
    _segments: tuple[bytes | tuple[str, str], ...] = field(repr=False)
    _list_unsubscribe_mailto: str = field(repr=False, default="")
    _dkim: DkimKey | None = field(repr=False, default=None)
    _action_url: str = field(repr=False, default="")
    _needs_action: bool = field(repr=False, default=False)
    # The greeting in the email's language: with a name ("{name}" stands for it) and without.
    _greeting: tuple[str, str] = field(repr=False, default=("Hello {name},", "Hello,"))

    @cached_property
    def _message_id_domain(self) -> str:
        return _domain(self._settings.email.sender)

    def message_id(self, address: str, *, message_key: str = "") -> str:
        """``<key.hash@sender-domain>``: the same for the same email and address on every run.

        The key is ``message_key`` (one email's ledger key) when given, else the composition's;
        bounces.py reads it back to find the ledger row.
        """
        if message_key and (len(message_key) > _MAX_MESSAGE_KEY or not _MESSAGE_KEY.fullmatch(message_key)):
            raise PermanentError(
                f"message key {message_key[:80]!r} cannot root a Message-ID",
                hint=f"use letters, digits, '-', '_' and inner dots only, at most {_MAX_MESSAGE_KEY} characters",
            )
        key = message_key or self.key
        return f"<{key}.{message_id_hash(key, address)}@{self._message_id_domain}>"

    def personal_values(self, recipient: Recipient, *, name: str | None = None) -> dict[str, str]:
        """The slot values for one recipient, checked (raises PermanentError for unusable input).

        ``name`` is the recipient's name already cleaned, when the caller has it.
        """
        name = clean_name(recipient.name) if name is None else name
        unsubscribe = recipient.unsubscribe_url
        if self.bulk and not unsubscribe:
            raise PermanentError(
                f"no unsubscribe URL for {recipient.address!r}",
                hint="every newsletter email needs the recipient's signed unsubscribe URL (audience tokens)",
            )
        unsubscribe = _checked_url(unsubscribe, "unsubscribe URL") if unsubscribe else ""
        preferences = _checked_url(recipient.preferences_url, "preferences URL") if recipient.preferences_url else ""
        action = _checked_url(recipient.action_url, "action link") if recipient.action_url else self._action_url
        if self._needs_action and not action:
            raise PermanentError(
                f"no action link for {recipient.address!r}",
                hint="a confirm email needs the recipient's signed confirmation link (Recipient.action_url)",
            )
        base = self._settings.site.base_url
        return {
            "unsubscribe_url": unsubscribe or preferences or base + "/",
            "preferences_url": preferences or unsubscribe or base + "/",
            "greeting": self._greeting[0].replace("{name}", name) if name else self._greeting[1],
            "action_url": action or base + "/",
        }

    def message(self, recipient: Recipient) -> bytes:
        """The complete RFC 5322 message for ``recipient``: CRLF line ends, ready for SMTP DATA or an .eml file.

        Raises :class:`~pressroom.errors.PermanentError` when the address or a URL is unusable;
        no other recipient is affected.
        """
        head, encoded = self._personal(recipient)
        data = b"".join([head, *[segment if segment.__class__ is bytes else encoded[segment] for segment in self._segments]])
        return self._dkim.sign(data) + data if self._dkim is not None else data

    def message_and_data(self, recipient: Recipient) -> tuple[bytes, Callable[[], bytes] | None]:
        """:meth:`message`, and what makes the same as SMTP DATA carries it (dot-stuffed, ended by the
        lone dot): the composition's shared bytes are stuffed once, not for every recipient, and joined
        only for a transport that sends DATA (an .eml file or BDAT takes the message as it is)."""
        head, encoded = self._personal(recipient)
        message = b"".join([head, *[segment if segment.__class__ is bytes else encoded[segment] for segment in self._segments]])
        signature = self._dkim.sign(message) if self._dkim is not None else b""
        stuffed = self._stuffed_segments
        if stuffed is None:
            return signature + message, None
        pieces = [dot_stuffed(signature + head),
                  *[segment if segment.__class__ is bytes else _stuffed_value(encoded[segment]) for segment in stuffed],
                  end_of_data(message)]
        return signature + message, partial(b"".join, pieces)

    @cached_property
    def _slots(self) -> tuple[str, ...]:
        # Only the slots this email's templates use are encoded for each recipient.
        return tuple(dict.fromkeys(segment[1] for segment in self._segments if segment.__class__ is tuple and segment != _DATE))

    @cached_property
    def _stuffed_segments(self) -> tuple[bytes | tuple[str, str], ...] | None:
        # Stuffed piece by piece, each must start a line: every piece ends one (a slot's value too).
        if any(segment.__class__ is bytes and not segment.endswith(b"\n") for segment in self._segments):
            return None
        return tuple(dot_stuffed(segment) if segment.__class__ is bytes else segment for segment in self._segments)

    def _personal(self, recipient: Recipient) -> tuple[bytes, dict[tuple[str, str], bytes]]:
        """This recipient's own header lines, and the encoded values of the slots."""
        address = clean_address(recipient.address)
        name = clean_name(recipient.name)
        values = self.personal_values(recipient, name=name)
        if not name:
            to = address
        elif _PLAIN_NAME.fullmatch(name):
            to = f"{name} <{address}>"
        else:
            # Quoted-string for ASCII, one RFC 2047 encoded word otherwise. One word, even past the
            # 75 characters RFC 2047 suggests for 100-character names: parsers (Python's among them)
            # put a space between adjacent encoded words of a display name.
            to = formataddr((name, address), charset="utf-8")
        head = [
            f"To: {to}\r\n",
            f"Message-ID: {self.message_id(address, message_key=recipient.message_key)}\r\n",
        ]
        if self.bulk:
            targets = [f"<{values['unsubscribe_url']}>"]
            if self._list_unsubscribe_mailto:
                targets.append(f"<{self._list_unsubscribe_mailto}>")
            head.append("List-Unsubscribe: " + ",\r\n ".join(targets) + "\r\n")
        encoded: dict[tuple[str, str], bytes] = {}
        for slot in self._slots:
            value = values[slot]
            encoded["text", slot] = text = _qp(value)
            escaped = html.escape(value)
            encoded["html", slot] = text if escaped == value else _qp(escaped)
        # When this message was made, not its composition: a subscription email's composition serves for days.
        encoded[_DATE] = _date_header()
        return "".join(head).encode("ascii"), encoded


def _stuffed_value(value: bytes) -> bytes:
    return dot_stuffed(value) if value.startswith(b".") or b"\n." in value else value


def _date_header() -> bytes:
    """``Date:`` of a message made now; formatted once a second (the header counts whole seconds),
    not for each of the thousands of messages a fan-out makes in it."""
    global _dated
    now = datetime.now(UTC).replace(microsecond=0)
    if _dated[0] != now:
        _dated = (now, f"Date: {format_datetime(now)}\r\n".encode("ascii"))
    return _dated[1]


_dated: tuple[datetime | None, bytes] = (None, b"")


def _fill(text: str, tokens: Mapping[str, str], values: Mapping[str, str]) -> str:
    for slot, token in tokens.items():
        text = text.replace(token, values[slot])
    return text


def build_composed(
    *,
    key: str,
    subject: str,
    html_body: str,
    text_body: str,
    tokens: Mapping[tuple[Literal["html", "text"], str], str],
    settings: Settings,
    bulk: bool,
    action_url: str = "",
    greeting: tuple[str, str] = ("Hello {name},", "Hello,"),
    headers: Mapping[str, str] | None = None,
) -> Composed:
    """Build the MIME skeleton once from parts that carry slot tokens (see :func:`new_tokens`).

    ``action_url`` is the action link of every recipient who brings none; without it, a
    recipient of an email that has an action link must bring their own (Recipient.action_url).
    ``greeting`` is the email's "Hello {name}," and "Hello," in its language. ``headers`` are
    further header fields of every message (an alert's ``Auto-Submitted``).
    """
    html_tokens = {slot: token for (part, slot), token in tokens.items() if part == "html"}
    text_tokens = {slot: token for (part, slot), token in tokens.items() if part == "text"}
    msg = _headers(subject=subject, settings=settings, headers=headers or {})
    mailto = _list_headers(msg, settings=settings) if bulk else ""
    skeleton = _with_bodies(msg, text_body=text_body, html_body=html_body, text_tokens=text_tokens, html_tokens=html_tokens)
    if bulk:
        post = b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        at = skeleton.index(post) + len(post)
        skeleton = skeleton[:at] + _feedback_lines(key, settings) + skeleton[at:]
    segments = _segments(skeleton, tokens)
    if sum(1 for s in segments if isinstance(s, tuple) and s != _DATE) != _count_tokens((text_body, html_body), tokens):
        raise AssertionError("a slot token was split while encoding")  # a bug, never bad input

    neutral = {
        "unsubscribe_url": f"{settings.site.base_url}/",
        "preferences_url": f"{settings.site.base_url}/",
        "greeting": greeting[1],
        "action_url": action_url or f"{settings.site.base_url}/",
    }
    return Composed(
        key=key,
        subject=subject,
        html=_fill(html_body, html_tokens, neutral),
        text=_fill(text_body, text_tokens, neutral),
        bulk=bulk,
        _settings=settings,
        _segments=tuple(segments),
        _list_unsubscribe_mailto=mailto,
        _dkim=DkimKey.from_settings(settings),
        _action_url=action_url,
        _needs_action=any(segment[1] == "action_url" for segment in segments if isinstance(segment, tuple)),
        _greeting=greeting,
    )


def _headers(*, subject: str, settings: Settings, headers: Mapping[str, str]) -> EmailMessage:
    """The header fields every message of a composition shares (the Date is a placeholder, set per message)."""
    email = settings.email
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = subject
    msg["From"] = Address(display_name=clean_name(email.sender_name, links=True), addr_spec=email.sender)
    if email.reply_to:
        msg["Reply-To"] = email.reply_to
    for name, value in headers.items():
        msg[name] = value
    msg["Date"] = format_datetime(_PLACEHOLDER_DATE)
    return msg


def _list_headers(msg: EmailMessage, *, settings: Settings) -> str:
    """A bulk email's List-Id and one-click unsubscribe; returns the List-Unsubscribe mailto it offers."""
    email = settings.email
    list_id = email.list_id or f"releases.{_domain(email.sender)}"
    msg["List-Id"] = f"{clean_name(settings.site.name, links=True)} <{list_id}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mailto = email.unsubscribe_mailto or f"{email.reply_to or email.sender}"
    return mailto if mailto.startswith("mailto:") else f"mailto:{mailto}?subject=unsubscribe"


def _with_bodies(msg: EmailMessage, *, text_body: str, html_body: str, text_tokens: Mapping[str, str],
                 html_tokens: Mapping[str, str]) -> bytes:
    """The message with its text and HTML alternatives, as bytes: our own QP, in which each token sits alone on its line."""
    msg.set_content("placeholder", cte="quoted-printable")  # also adds MIME-Version
    msg.add_alternative("<p>placeholder</p>", subtype="html", cte="quoted-printable")
    text_part, html_part = msg.get_payload()
    for part in (text_part, html_part):
        del part["MIME-Version"]  # belongs on the top level only
    text_part.set_payload(_qp_body(text_body.replace("\r\n", "\n"), text_tokens))
    html_part.set_payload(_qp_body(html_body.replace("\r\n", "\n"), html_tokens))
    return msg.as_bytes(policy=SMTP)


def _count_tokens(bodies: tuple[str, ...], tokens: Mapping[tuple[Literal["html", "text"], str], str]) -> int:
    return sum(body.count(token) for body in bodies for token in tokens.values())


def _segments(skeleton: bytes, tokens: Mapping[tuple[Literal["html", "text"], str], str]) -> list[bytes | tuple[str, str]]:
    """The skeleton cut at its Date line and at each slot token: bytes, and (part, slot) where a value goes."""
    date_line = f"Date: {format_datetime(_PLACEHOLDER_DATE)}\r\n".encode("ascii")
    date_at = skeleton.index(date_line, 0, skeleton.index(b"\r\n\r\n"))
    segments: list[bytes | tuple[str, str]] = [skeleton[:date_at], _DATE]
    position = date_at + len(date_line)
    lookup = {token.encode("ascii"): key for key, token in tokens.items()}
    pattern = re.compile(b"=\r\n(" + b"|".join(re.escape(t) for t in lookup) + b")\r\n")
    for match in pattern.finditer(skeleton, position):
        segments.append(skeleton[position : match.start()] + b"=\r\n")
        segments.append(lookup[match.group(1)])
        position = match.end()
    segments.append(skeleton[position:])
    return segments


def new_tokens() -> dict[tuple[Literal["html", "text"], str], str]:
    """Random slot tokens for one composition: letters and digits only, so templates, MJML,
    HTML escaping and QP leave them alone, and no release text can contain them by chance."""
    nonce = secrets.token_hex(6).upper()
    return {
        (part, slot): f"PRSLOT{nonce}{part.upper()}{index}Z"
        for part in ("html", "text")
        for index, slot in enumerate(SLOTS)
    }
