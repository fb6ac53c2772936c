"""Bounces and complaints: RFC 3464 delivery status notifications and RFC 5965 (ARF) reports -> suppression.

Two doors, one parser:

- :func:`scan_maildir` reads a Maildir that the return-path mailbox delivers to (for example
  with fetchmail or the provider's IMAP-to-Maildir sync) and moves every message it understood
  to ``cur/`` marked seen; anything it cannot read stays and is reported.
- :func:`handle_webhook` is the body of an HTTP endpoint the web app mounts
  (``POST /bounces?token=...``): it takes a raw report (``message/rfc822`` or
  ``multipart/report``) or JSON ``{"recipient", "status", "action", "diagnostic"}`` (one object
  or a list), as mail providers post them.

A hard bounce (``Action: failed`` with a 5.x.x status) suppresses the address for good and turns
its ledger row into ``failed`` with the server's diagnostic, so the report counts it as bounced.
A spam complaint suppresses the address for every channel (subscribers and journalists share the
list), records the consent event ``complained`` and counts toward its release's complaint rate;
its row stays ``sent``: the email arrived, the reader did not want it. A complaint is believed
only about an address Pressroom has sent to; when a provider redacts the address (Microsoft
does), the Message-ID finds it. Delays and 4.x.x statuses are only reported.
"""

from __future__ import annotations

import json
import mailbox
import re
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path

from pressroom.audience import AddressError, Audience, TokenError, normalise_address, sign_token, verify_token
from pressroom.ledger import Ledger
from pressroom.mail.answers import explain
from pressroom.settings import Settings

__all__ = [
    "Bounce", "BounceReport", "COMPLAINT_ADVISED", "COMPLAINT_LIMIT", "complaint_rate_line", "handle_webhook",
    "parse_report", "scan_maildir", "webhook_token",
]

# Gmail's and Yahoo's bulk-sender rules (2024), Outlook.com's (2025): keep spam complaints under
# 0.3% of delivered mail (past it they junk or reject), and under 0.1% to stay clear.
COMPLAINT_LIMIT = 0.003
COMPLAINT_ADVISED = 0.001

# No report is this large (a DSN or ARF report quotes at most one message); larger files are not read.
MAX_REPORT_BYTES = 5 * 1024 * 1024
# RFC 5965 feedback types a reader's complaint comes as; "not-spam" and "auth-failure" (a DMARC
# failure report) are not complaints about the sender.
_COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus", "other"})
_ADDRESS_IN = re.compile(r"[\w.+'=-]+@[\w-]+(?:\.[\w-]+)+")
_MESSAGE_ID = re.compile(r"<?([A-Za-z0-9_.-]+)\.([0-9a-f]{20})@[^>\s]+>?")


@dataclass(frozen=True)
class Bounce:
    """One recipient's fate as a report states it."""

    recipient: str
    action: str  # failed, delayed, delivered, relayed, expanded, complaint
    status: str  # e.g. 5.1.1; for a complaint, its feedback type
    diagnostic: str
    message_id: str = ""
    reporter: str = ""  # who sent the report (a complaint's User-Agent or Reporting-MTA)

    @property
    def hard(self) -> bool:
        return self.action == "complaint" or (self.action == "failed" and self.status.startswith("5"))


@dataclass
class BounceReport:
    """What a scan or a webhook call did."""

    suppressed: list[str] = field(default_factory=list)
    soft: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    complaints: list[str] = field(default_factory=list)  # complainers (also in ``suppressed`` when new)

    def as_text(self) -> str:
        return (f"bounces: {len(self.suppressed)} suppressed, {len(self.soft)} soft (not suppressed), {len(self.problems)} unreadable"
                + (f", {len(self.complaints)} spam complaint(s)" if self.complaints else ""))


class MalformedReport(ValueError):
    """A report that says it is one but breaks its RFC: named, never acted on."""


def _fields(block: str) -> dict[str, str]:
    """``Name: value`` lines (with folded continuations) -> lower-case name -> value (the first of a repeated name)."""
    return {name: values[0] for name, values in _all_fields(block).items()}


def _all_fields(block: str) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    name = ""
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and name:
            result[name][-1] += " " + line.strip()
        elif ":" in line:
            name, value = line.split(":", 1)
            name = name.strip().lower()
            result.setdefault(name, []).append(value.strip())
    return result


def _address(value: str) -> str:
    # "rfc822; jane@example.org" -> jane@example.org
    return value.split(";", 1)[-1].strip().strip("<>")


def _original_headers(report: Message) -> str:
    """The header block of the reported message (``text/rfc822-headers`` or ``message/rfc822``), as text."""
    for part in report.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return "".join(f"{name}: {value}\n" for name, value in payload[0].items())
        elif kind == "text/rfc822-headers":
            raw = part.get_payload(decode=True) or b""
            return raw.decode("utf-8", "replace").replace("\r\n", "\n").split("\n\n", 1)[0]
    return ""


def _original_message_id(report: Message) -> str:
    found = _all_fields(_original_headers(report)).get("message-id")
    return found[0] if found else ""


def _payload_text(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):
        return "\n".join(p.as_string() for p in payload)
    return str(payload)


def _complaint(report: Message, part: Message, message_id: str) -> list[Bounce]:
    """The complaint of one ARF report (RFC 5965 §3.1: Feedback-Type, User-Agent and Version are required)."""
    fields = _all_fields(_payload_text(part))
    kind = (fields.get("feedback-type") or [""])[0].lower().split()
    if not kind:
        raise MalformedReport("an ARF report without Feedback-Type (RFC 5965 section 3.1)")
    reporter = (fields.get("user-agent") or fields.get("reporting-mta") or [""])[0][:200]
    if kind[0] not in _COMPLAINT_TYPES:
        return [Bounce(recipient="", action=kind[0], status=kind[0], diagnostic=f"{kind[0]} report", message_id=message_id,
                       reporter=reporter)]
    original = _all_fields(_original_headers(report))
    # Where a provider puts the complainer: Original-Rcpt-To (RFC 5965), Hotmail's own header, the To of the copy.
    candidates = fields.get("original-rcpt-to", []) + original.get("x-hmxmroriginalrecipient", []) + original.get("to", [])
    recipients = []
    for value in candidates:
        found = _ADDRESS_IN.search(_address(value))
        if found:
            recipients.append(found.group().lower())
    recipient = recipients[0] if recipients else ""
    return [Bounce(recipient=recipient, action="complaint", status=kind[0], diagnostic=f"spam complaint ({kind[0]})",
                   message_id=message_id, reporter=reporter)]


def parse_report(raw: bytes) -> list[Bounce]:
    """The bounces stated by one DSN (RFC 3464) or ARF report (RFC 5965); ``[]`` if it is neither.

    A complaint whose provider redacted the address has ``recipient == ""``: the Message-ID
    (``message_id``) still names the email, and :func:`_apply` finds its recipient in the ledger.
    Raises :class:`MalformedReport` for an ARF report that lacks what RFC 5965 requires.
    """
    if len(raw) > MAX_REPORT_BYTES:
        raise MalformedReport(f"{len(raw)} bytes: larger than any delivery report ({MAX_REPORT_BYTES} at most)")
    message = message_from_bytes(raw, policy=policy.compat32)
    message_id = _original_message_id(message)
    bounces: list[Bounce] = []
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            # The body is one per-message block then one block per recipient, separated by blank lines.
            payload = part.get_payload()
            text = "\n\n".join(p.as_string() for p in payload) if isinstance(payload, list) else str(payload)
            blocks = [_fields(block) for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if block.strip()]
            for block in blocks:
                recipient = block.get("final-recipient") or block.get("original-recipient")
                # A report with empty fields states nothing: skipped, so it ends as "not a report" (400).
                if not recipient or not _address(recipient) or not block.get("action", "").split():
                    continue
                bounces.append(Bounce(
                    recipient=_address(recipient).lower(),
                    action=block["action"].lower().split()[0],
                    status=(block.get("status", "").split() or [""])[0],
                    diagnostic=block.get("diagnostic-code", "").split(";", 1)[-1].strip(),
                    message_id=message_id,
                ))
        elif kind == "message/feedback-report":
            bounces += _complaint(message, part, message_id)
    return bounces


def _key(message_id: str) -> tuple[str, str]:
    """``<key.hash@domain>`` -> (key, hash): the key is the release slug or digest key of the ledger row."""
    found = _MESSAGE_ID.fullmatch(message_id.strip())
    if found:
        return found.group(1), found.group(2)
    return message_id.strip("<> ").split("@", 1)[0].rsplit(".", 1)[0], ""


def _recipient_of(bounce: Bounce, ledger: Ledger) -> str:
    """The address a complaint is about. The Message-ID of ours it quotes decides: a provider that hides
    the complainer (Microsoft writes a placeholder in To) still quotes it. Else the address stated."""
    from pressroom.mail.message import message_id_hash

    key, digest = _key(bounce.message_id)
    if not (key and digest) or (bounce.recipient and message_id_hash(key, bounce.recipient) == digest):
        return bounce.recipient
    for channel in ledger.channels(release=key):
        for recipient in ledger.states(release=key, channel=channel):
            if message_id_hash(key, recipient) == digest:
                return recipient
    return bounce.recipient


def _apply(bounces: list[Bounce], *, audience: Audience, ledger: Ledger, now: datetime, report: BounceReport) -> None:
    for bounce in bounces:
        if bounce.action == "complaint":
            _apply_complaint(bounce, audience=audience, ledger=ledger, now=now, report=report)
        elif bounce.action == "auth-failure":
            report.problems.append(f"a DMARC failure report from {bounce.reporter or 'a receiver'}: mail in your name did"
                                   " not pass SPF or DKIM (run pressroom doctor --dns); nobody suppressed")
        elif bounce.action != "not-spam":  # not-spam: a reader took one of ours out of the spam folder, nothing to do
            _apply_status(bounce, audience=audience, ledger=ledger, now=now, report=report)


def _apply_status(bounce: Bounce, *, audience: Audience, ledger: Ledger, now: datetime, report: BounceReport) -> None:
    """A delivery status notification: a refusal of the sender, a soft bounce, or a hard one that suppresses."""
    detail = " ".join(part for part in (bounce.status, bounce.diagnostic) if part) or bounce.action
    key = _key(bounce.message_id)[0]
    why = explain(detail)
    if why is not None and why.about_sender and bounce.action == "failed":
        # The provider refused the sender (its DMARC, its IP, its rate), not this reader: no suppression.
        report.problems.append(f"{bounce.recipient}: {why.line()}")
        if key and not why.rate_limit:
            ledger.mark_bounced(release=key, recipient=bounce.recipient, response=f"refused: {detail}", now=now)
        return
    if not bounce.hard:
        report.soft.append(bounce.recipient)
        return
    try:
        audience.suppress(address=bounce.recipient, reason="hard-bounce", detail=detail, now=now)
    except AddressError as exc:
        report.problems.append(f"{bounce.recipient}: {exc.message}")
        return
    report.suppressed.append(bounce.recipient)
    if key:
        ledger.mark_bounced(release=key, recipient=bounce.recipient, response=f"bounced: {detail}", now=now)


def _apply_complaint(bounce: Bounce, *, audience: Audience, ledger: Ledger, now: datetime, report: BounceReport) -> None:
    recipient = _recipient_of(bounce, ledger)
    if not recipient:
        report.problems.append(f"a spam complaint ({bounce.status}) names no address and quotes no Message-ID of ours"
                               f" ({bounce.message_id[:200] or 'none'}): nobody suppressed")
        return
    try:
        recipient = normalise_address(recipient)
    except AddressError as exc:
        report.problems.append(f"a spam complaint about {recipient[:80]!r}: {exc.message}")
        return
    key = _key(bounce.message_id)[0]
    # Anyone can mail the bounce address: a complaint about an address Pressroom never emailed changes nothing.
    kind = bounce.status or "abuse"  # a provider's JSON event may name no feedback type
    counted, new = ledger.record_complaint(release=key, recipient=recipient, feedback_type=kind,
                                           reporter=bounce.reporter or "feedback loop", now=now)
    if counted is None:
        report.problems.append(f"a spam complaint about {recipient}, to whom Pressroom sent nothing: nobody suppressed")
        return
    detail = f"spam complaint ({kind}) about {counted}; suppressed for every channel"
    if audience.suppress(address=recipient, reason="complaint", detail=detail, now=now,
                         event="complained" if new else "", source=bounce.reporter or "feedback loop"):
        report.suppressed.append(recipient)
    if new:
        report.complaints.append(recipient)


def complaint_rate_line(*, release: str, complaints: int, delivered: int) -> tuple[str, bool]:
    """One line on a release's spam complaints beside the providers' thresholds; ``True`` when it needs a look."""
    if not delivered:
        return f"{release}: {complaints} spam complaint(s), nothing delivered to count them against", complaints > 0
    rate = complaints / delivered
    line = (f"{release}: {complaints} spam complaint(s) of {delivered} delivered = {rate:.2%}"
            f" (Gmail, Yahoo and Outlook.com: under {COMPLAINT_LIMIT:.1%}, {COMPLAINT_ADVISED:.1%} advised)")
    if rate >= COMPLAINT_LIMIT:
        return (line + ": WARNING above the providers' limit; they junk or reject bulk mail from this domain now."
                " Send only to people who asked, make the unsubscribe link obvious, and check the list before the next release"), True
    if rate >= COMPLAINT_ADVISED:
        return (line + ": WARNING above the advised 0.1%; remove readers who never open, say in the first line why"
                " they receive this email"), True
    return line, False


def scan_maildir(*, path: Path, audience: Audience, ledger: Ledger, now: datetime) -> BounceReport:
    """Process every new message in the Maildir at ``path``; understood ones are moved to cur/ as seen."""
    report = BounceReport()
    box = mailbox.Maildir(path, factory=None, create=False)
    for key in list(box.iterkeys()):
        message = box.get_message(key)
        if message.get_subdir() == "cur" and "S" in message.get_flags():
            continue
        where = f"{path}/{message.get_subdir()}/{key}"
        with box.get_file(key) as handle:
            handle.seek(0, 2)
            size = handle.tell()
        if size > MAX_REPORT_BYTES:
            report.problems.append(f"{where}: {size} bytes, larger than any delivery report: left unread")
            continue
        raw = box.get_bytes(key)
        try:
            bounces = parse_report(raw)
        except (MalformedReport, LookupError, ValueError, TypeError, AttributeError) as exc:
            report.problems.append(f"{where}: unreadable report: {str(exc)[:200]}")
            continue
        if not bounces:
            subject = message.get("Subject", "(no subject)")
            report.problems.append(f"{where}: not a delivery report ({subject})")
            continue
        _apply(bounces, audience=audience, ledger=ledger, now=now, report=report)
        message.set_subdir("cur")
        message.add_flag("S")
        box[key] = message
    return report


def webhook_token(*, settings: Settings) -> str:
    """The secret to put in the provider's webhook URL: ``/bounces?token=<this>``."""
    return sign_token(settings=settings, action="bounces", subscriber_id=0)


def _webhook_json(body: bytes) -> list[Bounce] | str:
    """A provider's JSON events as bounces, or what is wrong with them."""
    try:
        data = json.loads(body)
        items = data if isinstance(data, list) else [data]
        if not items or not all(isinstance(item, dict) and isinstance(item.get("recipient"), str) for item in items):
            raise ValueError("each item must be an object whose recipient is a string")
        return [
            Bounce(recipient=item["recipient"].lower(), action=str(item.get("action", "failed")).lower(),
                   status=str(item.get("status", "")), diagnostic=str(item.get("diagnostic", ""))[:2000],
                   message_id=str(item.get("message_id", ""))[:998])
            for item in items
        ]
    except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested deeper than the parser goes
        return f"expected JSON objects with recipient, status, action: {str(exc)[:200]}"


def _webhook_report(body: bytes) -> list[Bounce] | str:
    """A DSN or ARF report as bounces, or what is wrong with it."""
    try:
        bounces = parse_report(body)
    except (MalformedReport, LookupError, ValueError, TypeError, AttributeError) as exc:  # the email package on hostile bytes
        return f"unreadable report: {str(exc)[:200]}"
    return bounces or "not a delivery status notification (RFC 3464) or complaint (RFC 5965)"


def handle_webhook(
    *, settings: Settings, token: str, body: bytes, content_type: str, audience: Audience, ledger: Ledger, now: datetime
) -> tuple[int, dict]:
    """Handle ``POST /bounces``; returns (HTTP status, JSON body). Framework-free so any app can mount it."""
    try:
        verify_token(settings=settings, token=token, action="bounces")
    except TokenError as exc:
        return 403, {"error": exc.message}
    report = BounceReport()
    json_body = content_type.split(";")[0].strip().lower() == "application/json"
    bounces = _webhook_json(body) if json_body else _webhook_report(body)
    if isinstance(bounces, str):
        return 400, {"error": bounces}
    _apply(bounces, audience=audience, ledger=ledger, now=now, report=report)
    if not (report.suppressed or report.soft or report.complaints) and report.problems:
        return 422, {"error": "; ".join(report.problems)[:1000], "suppressed": [], "soft": [], "problems": report.problems}
    return 200, {"suppressed": report.suppressed, "soft": report.soft, "complaints": report.complaints, "problems": report.problems}
