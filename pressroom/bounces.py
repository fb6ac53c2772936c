"""Bounces: RFC 3464 delivery status notifications (and ARF complaints) -> suppression list + ledger.

Two doors, one parser:

- :func:`scan_maildir` reads a Maildir that the return-path mailbox delivers to (for example
  with fetchmail or the provider's IMAP-to-Maildir sync) and moves every message it understood
  to ``cur/`` marked seen; anything it cannot read stays and is reported.
- :func:`handle_webhook` is the body of an HTTP endpoint the web app mounts
  (``POST /bounces?token=...``): it takes a raw DSN (``message/rfc822`` or
  ``multipart/report``) or JSON ``{"recipient", "status", "action", "diagnostic"}`` (one object
  or a list), as mail providers post them.

A hard bounce (``Action: failed`` with a 5.x.x status) or a complaint suppresses the address
for good and turns its ledger row into ``failed`` with the server's diagnostic, so the report
counts it as bounced. Delays and 4.x.x statuses are only reported: the address may recover.
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

from pressroom.audience import AddressError, Audience, TokenError, sign_token, verify_token
from pressroom.ledger import Ledger
from pressroom.settings import Settings

__all__ = ["Bounce", "BounceReport", "handle_webhook", "parse_report", "scan_maildir", "webhook_token"]


@dataclass(frozen=True)
class Bounce:
    """One recipient's fate as a report states it."""

    recipient: str
    action: str  # failed, delayed, delivered, relayed, expanded, complaint
    status: str  # e.g. 5.1.1
    diagnostic: str
    message_id: str = ""

    @property
    def hard(self) -> bool:
        return self.action == "complaint" or (self.action == "failed" and self.status.startswith("5"))


@dataclass
class BounceReport:
    """What a scan or a webhook call did."""

    suppressed: list[str] = field(default_factory=list)
    soft: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_text(self) -> str:
        return f"bounces: {len(self.suppressed)} suppressed, {len(self.soft)} soft (not suppressed), {len(self.problems)} unreadable"


def _fields(block: str) -> dict[str, str]:
    """``Name: value`` lines (with folded continuations) -> lower-case name -> value."""
    result: dict[str, str] = {}
    name = ""
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and name:
            result[name] += " " + line.strip()
        elif ":" in line:
            name, value = line.split(":", 1)
            name = name.strip().lower()
            result[name] = value.strip()
    return result


def _address(value: str) -> str:
    # "rfc822; jane@example.org" -> jane@example.org
    return value.split(";", 1)[-1].strip().strip("<>")


def _original_message_id(report: Message) -> str:
    for part in report.walk():
        if part.get_content_type() in ("text/rfc822-headers", "message/rfc822"):
            payload = part.get_payload(decode=True)
            if payload is None and part.is_multipart():
                inner = part.get_payload()[0]
                return str(inner.get("Message-ID", "")).strip()
            found = re.search(rb"^Message-ID:\s*(<[^>]+>)", payload or b"", re.I | re.M)
            if found:
                return found.group(1).decode("ascii", "replace")
    return ""


def parse_report(raw: bytes) -> list[Bounce]:
    """The bounces stated by one DSN (RFC 3464) or ARF complaint (RFC 5965); ``[]`` if it is neither."""
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
            payload = part.get_payload()
            text = "\n".join(p.as_string() for p in payload) if isinstance(payload, list) else str(payload)
            block = _fields(text)
            recipient = block.get("original-rcpt-to", "")
            if not recipient:
                for inner in message.walk():
                    if inner.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
                        body = inner.get_payload(decode=True) or b""
                        found = re.search(rb"^To:.*?([\w.+'-]+@[\w.-]+)", body, re.I | re.M)
                        if found:
                            recipient = found.group(1).decode()
            if recipient:
                bounces.append(Bounce(recipient=_address(recipient).lower(), action="complaint",
                                      status="", diagnostic=f"complaint: {block.get('feedback-type', 'abuse')}",
                                      message_id=message_id))
    return bounces


def _apply(bounces: list[Bounce], *, audience: Audience, ledger: Ledger, now: datetime, report: BounceReport) -> None:
    for bounce in bounces:
        if not bounce.hard:
            report.soft.append(bounce.recipient)
            continue
        detail = " ".join(part for part in (bounce.status, bounce.diagnostic) if part) or bounce.action
        try:
            audience.suppress(address=bounce.recipient, reason="complaint" if bounce.action == "complaint" else "hard-bounce",
                              detail=detail, now=now)
        except AddressError as exc:
            report.problems.append(f"{bounce.recipient}: {exc.message}")
            continue
        report.suppressed.append(bounce.recipient)
        # Message-IDs are <key.hash@domain>; the key is the release slug or digest key of the ledger row.
        key = bounce.message_id.strip("<>").split("@", 1)[0].rsplit(".", 1)[0]
        if key:
            ledger.mark_bounced(release=key, recipient=bounce.recipient, response=f"bounced: {detail}", now=now)


def scan_maildir(*, path: Path, audience: Audience, ledger: Ledger, now: datetime) -> BounceReport:
    """Process every new message in the Maildir at ``path``; understood ones are moved to cur/ as seen."""
    report = BounceReport()
    box = mailbox.Maildir(path, factory=None, create=False)
    for key in list(box.iterkeys()):
        message = box.get_message(key)
        if message.get_subdir() == "cur" and "S" in message.get_flags():
            continue
        raw = box.get_bytes(key)
        bounces = parse_report(raw)
        if not bounces:
            subject = message.get("Subject", "(no subject)")
            report.problems.append(f"{path}/{message.get_subdir()}/{key}: not a delivery report ({subject})")
            continue
        _apply(bounces, audience=audience, ledger=ledger, now=now, report=report)
        message.set_subdir("cur")
        message.add_flag("S")
        box[key] = message
    return report


def webhook_token(*, settings: Settings) -> str:
    """The secret to put in the provider's webhook URL: ``/bounces?token=<this>``."""
    return sign_token(settings=settings, action="bounces", subscriber_id=0)


def handle_webhook(
    *, settings: Settings, token: str, body: bytes, content_type: str, audience: Audience, ledger: Ledger, now: datetime
) -> tuple[int, dict]:
    """Handle ``POST /bounces``; returns (HTTP status, JSON body). Framework-free so any app can mount it."""
    try:
        verify_token(settings=settings, token=token, action="bounces")
    except TokenError as exc:
        return 403, {"error": exc.message}
    report = BounceReport()
    if content_type.split(";")[0].strip().lower() == "application/json":
        try:
            data = json.loads(body)
            items = data if isinstance(data, list) else [data]
            if not items or not all(isinstance(item, dict) and isinstance(item.get("recipient"), str) for item in items):
                raise ValueError("each item must be an object whose recipient is a string")
            bounces = [
                Bounce(recipient=item["recipient"].lower(), action=str(item.get("action", "failed")).lower(),
                       status=str(item.get("status", "")), diagnostic=str(item.get("diagnostic", ""))[:2000],
                       message_id=str(item.get("message_id", ""))[:998])
                for item in items
            ]
        except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested deeper than the parser goes
            return 400, {"error": f"expected JSON objects with recipient, status, action: {str(exc)[:200]}"}
    else:
        try:
            bounces = parse_report(body)
        except (LookupError, ValueError, TypeError, AttributeError) as exc:  # the email package on hostile bytes
            return 400, {"error": f"unreadable report: {str(exc)[:200]}"}
        if not bounces:
            return 400, {"error": "not a delivery status notification (RFC 3464) or complaint (RFC 5965)"}
    _apply(bounces, audience=audience, ledger=ledger, now=now, report=report)
    return 200, {"suppressed": report.suppressed, "soft": report.soft, "problems": report.problems}
