"""What a mail server's answer means: the one table the SMTP client, the bounce reader and the report share.

    classify(stage, code, text)  ─▶ what the send loop does with the message (send, wait, retry, fail, suppress)
    explain(text)                ─▶ a provider's policy refusal in words: cause, hint, rate limit or not

The line that matters to a reader: an answer about the **server** (no connection, no greeting,
a 421, TLS, the login, the sender refused at MAIL FROM, a rate limit) says nothing about the
recipient, so it never spends the recipient's attempts: the mail waits until the server takes it
again (``held``, ``throttled``). Only an answer to RCPT TO or to the message data counts against
the recipient (``retry``, ``mailbox``, ``rejected``, ``failed``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["Explanation", "Stage", "Status", "classify", "explain"]

#: ``sent``; ``retry`` (a 4xx about the recipient: spends an attempt); ``mailbox`` (full, disabled:
#: retried, never suppressed); ``rejected`` (the address does not exist: suppressed); ``failed``;
#: ``ambiguous`` (the data went out and no answer came); ``held`` (the server or the session is
#: unavailable: waits, spending no attempt); ``throttled`` (a rate limit: waits, spending no attempt).
Status = Literal["sent", "retry", "mailbox", "failed", "rejected", "ambiguous", "held", "throttled"]

#: The command answered: MAIL FROM, RCPT TO, DATA, or the end of the message data (the final dot
#: or the last BDAT chunk).
Stage = Literal["mail", "rcpt", "data", "end"]

_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.\d{1,3}\b")


@dataclass(frozen=True)
class Explanation:
    """What a provider's refusal means for the sender, and what to do about it."""

    provider: str
    cause: str
    hint: str
    rate_limit: bool = False  # the server asks to slow down: retry later, spending none of the recipient's attempts
    about_sender: bool = True  # the domain, the IP or the rate is refused, not the address: never suppress it

    def line(self) -> str:
        return f"{self.provider}: {self.cause} (hint: {self.hint})"


_DOCTOR = "the domain's DMARC does not pass: run pressroom doctor --dns"
# The big providers' policy answers (their postmaster pages), most specific first; matched on the
# enhanced status code and the text. Each is about the sender, so none ever suppresses a reader.
_PROVIDERS: tuple[tuple[re.Pattern[str], Explanation], ...] = tuple((re.compile(pattern, re.I | re.S), explanation) for pattern, explanation in (
    (r"\b5\.7\.515\b", Explanation("Outlook.com", "the sending domain does not meet the required authentication level"
                                   " (SPF, DKIM and an aligned DMARC for bulk senders, since May 2025)", _DOCTOR)),
    (r"\b5\.7\.26\b", Explanation("Gmail", "the message failed DMARC: neither SPF nor DKIM passed aligned with the From domain",
                                  _DOCTOR)),
    (r"\b5\.7\.27\b", Explanation("Gmail", "SPF failed for the bounce domain", "the domain's SPF does not allow the relay:"
                                  " run pressroom doctor --dns")),
    (r"\b5\.7\.25\b", Explanation("Gmail", "the sending IP address has no reverse DNS (PTR) name",
                                  "ask the relay's provider for a PTR record; pressroom doctor --dns checks it")),
    (r"\b5\.7\.1\b.*\b(unauthenticated|not authenticated|authentication)", Explanation(
        "Gmail", "the message is unauthenticated: Gmail requires SPF or DKIM, and DMARC for bulk senders", _DOCTOR)),
    (r"\b[45]\.7\.28\b", Explanation("Gmail", "an unusual rate of mail, or of complaints, from this sender: Gmail is"
                                      " slowing it down", "send more slowly ([smtp] rate_per_second) and check the complaint"
                                      " rate in pressroom deliveries report", rate_limit=True)),
    (r"\b4\.7\.0\b.*\bTS(S)?0[14]\b|\[TSS04\]", Explanation(
        "Yahoo", "messages deferred for unexpected volume or user complaints", "send more slowly and check the complaint rate;"
        " Yahoo's sender hub explains the codes", rate_limit=True)),
    (r"\[TSS09\]|\b5\.7\.9\b", Explanation("Yahoo", "mail refused for policy reasons (authentication or reputation)",
                                           _DOCTOR)),
    (r"\b4\.7\.[5-6]\d\d\b", Explanation("Outlook.com", "server busy: Outlook.com limits how fast this IP may send",
                                          "send more slowly ([smtp] rate_per_second); the mail is retried", rate_limit=True)),
    (r"\bS3140\b|\bS3150\b", Explanation("Outlook.com", "the sending IP address is on Microsoft's block list",
                                         "ask the relay's provider to request delisting (Microsoft's sender support form)")),
    (r"^4\d\d\b.*\b4\.7\.\d{1,3}\b|^4\.7\.\d{1,3}\b", Explanation(
        "the receiving server", "a temporary policy refusal (4.7.x), usually a rate limit", "the mail is retried; send more"
        " slowly if it persists ([smtp] rate_per_second)", rate_limit=True)),
    (r"^4\d\d\b.*\b(rate limit|too many (messages|connections|recipients)|slow down|throttl)", Explanation(
        "the receiving server", "a rate limit: the server takes no more mail from this sender for now",
        "the mail is retried; send more slowly if it persists ([smtp] rate_per_second)", rate_limit=True)),
))


def explain(answer: str) -> Explanation | None:
    """The cause and hint of a provider's policy refusal in ``answer`` (an SMTP reply or a DSN diagnostic), or None.

    Pure: :func:`classify` uses it to defer rate limits without spending the recipient's
    attempts, the report to say what a refusal means, and the bounce reader to never suppress
    a reader for what is the sender's fault.
    """
    text = answer.strip()[:2000]
    for pattern, explanation in _PROVIDERS:
        if pattern.search(text):
            return explanation
    return None


def _rate_limit(code: int, text: str) -> bool:
    why = explain(f"{code} {text}")
    return why is not None and why.rate_limit


def classify(stage: Stage, code: int | None, text: str = "", *, data_sent: bool = False) -> Status:
    """What the answer that decided a message (``code`` None: no answer came) means for it.

    - no answer: **ambiguous** once the final dot (or the last BDAT chunk) was written, since the
      server may have taken the message and sending it again could deliver it twice; before
      that, ``held``: the session failed (refused or dropped connection, DNS, TLS, a greeting
      other than 220, a 4xx to the login), the server's trouble and not the recipient's.
    - 2xx to the end of data: sent.
    - MAIL FROM (it refuses the sender, whoever the recipient) and any 421 (the server closes the
      channel): ``held``, or ``throttled`` when the text says rate limit. A setting that can
      never work (a refused login) is the caller's ConfigError, not a status.
    - 4xx to RCPT TO, DATA or the data: ``throttled`` for a rate limit (4.7.x and the providers'
      texts in :func:`explain`), else ``retry``.
    - 5.2.x (mailbox full, disabled, ...) at RCPT or after the data: mailbox, deferred and never
      suppressed; a bare 552 without an enhanced code means the same (RFC 5321's "storage allocation").
    - 5.1.x at RCPT or after the data, or a bare 550/551/553 to RCPT TO: rejected (suppress the
      address). A 550 with another enhanced code (5.7.1 relaying denied ...) is about the sender or
      the server's policy, not the address: failed, so a misconfigured relay never suppresses a list.
    - any other 5xx: failed.
    """
    if code is None:
        return "ambiguous" if data_sent else "held"
    if 200 <= code < 300:
        return "sent"
    if stage == "mail" or code == 421 or (code < 500 and _rate_limit(code, text)):
        return "throttled" if _rate_limit(code, text) else "held"
    if code < 500:
        return "retry"
    return _permanent(stage, code, text)


def _permanent(stage: Stage, code: int, text: str) -> Status:
    """What a 5xx about the recipient means: by the enhanced code's subject, else by the bare code."""
    enhanced = _ENHANCED.match(text)
    subject = enhanced.group(2) if enhanced and enhanced.group(1) == "5" else None
    if subject == "2" or (subject is None and code == 552):
        return "mailbox"
    if subject == "1" or (subject is None and stage == "rcpt" and code in (550, 551, 553)):
        return "rejected"
    return "failed"
