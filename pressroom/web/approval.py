"""The editors' pages for a proof's Approve and Reject links: ``GET /approval/<token>`` shows one button, its ``POST`` decides.

Only the POST decides. A GET (and the HEAD that link checkers and mail scanners send, and an
OPTIONS) shows the question and changes nothing. A used, expired, forged or
no-longer-an-editor's link gets a 400 page and changes nothing. The answer resumes the run that
waits for it; when none waits (the question was asked from the terminal) it is kept, and the next
publish run acts on it.

The pages know nothing of Prefect: the shell that serves them (``pressroom serve``) passes a
:class:`Gate`, whose ``question`` reads what the waiting run asked and whose ``answer`` records
the link as used and resumes that run. A link is "used" under the fingerprint of its decoded
payload (:attr:`pressroom.tokens.ApprovalLink.fingerprint`), never under the text of its signature.
"""

from __future__ import annotations

import asyncio
import functools
import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from pressroom.errors import TokenError
from pressroom.settings import Settings
from pressroom.tokens import ApprovalLink, open_approval
from pressroom.web.security import CSP

__all__ = ["Answered", "Gate", "Question", "approval_routes"]


@dataclass(frozen=True)
class Question:
    """What a run waiting for an editor asked: this version of the release, and how it stands."""

    slug: str
    digest: str  # the release version's digest
    state: str  # pending, approved, rejected, timed-out
    title: str
    at: str  # when it was asked or decided (ISO 8601, UTC)
    used: frozenset[str]  # fingerprints of the links already used


@dataclass(frozen=True)
class Answered:
    """What became of an editor's answer."""

    failed: str = ""  # why it could not be taken; empty when it was
    later: bool = False  # no run waited (it asked from the terminal): the next publish run acts on it


@dataclass(frozen=True)
class Gate:
    """The shell's side of the question: how to read it, and how to answer it."""

    #: The question open for release ``slug``, or None.
    question: Callable[[str], Awaitable[Question | None]]
    #: Record the link ``used`` and give the answer (approve, note) to the run that waits, or keep it for the next run.
    answer: Callable[[Question, bool, str, str], Awaitable[Answered]]


@dataclass(frozen=True)
class _Desk:
    settings: Settings
    gate: Gate
    clock: Callable[[], datetime]
    decide: asyncio.Lock  # one answer at a time in this process: a double click is one click


def approval_routes(*, settings: Settings, gate: Gate, clock: Callable[[], datetime] | None = None) -> list[Route]:
    """The routes of the proof's links, for ``extra_routes`` of :func:`pressroom.web.create_app`."""
    desk = _Desk(settings=settings, gate=gate, clock=clock or (lambda: datetime.now(UTC)), decide=asyncio.Lock())
    return [
        Route("/approval/{token}", functools.partial(show, desk), methods=["GET"]),  # HEAD too, answered as GET
        Route("/approval/{token}", functools.partial(decide, desk), methods=["POST"]),
    ]


def _page(title: str, body: str, *, status: int = 200) -> HTMLResponse:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font:17px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1f2933}"
        "button{font:inherit;font-weight:bold;padding:.7rem 1.6rem;border:0;border-radius:4px;background:#0b5d7a;color:#fff;cursor:pointer}"
        "</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    # The token is in the URL: never cached, never sent on as a referrer, never indexed.
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex",
               "Content-Security-Policy": CSP}
    return HTMLResponse(document, status_code=status, headers=headers)


def _refused(reason: str) -> HTMLResponse:
    return _page("This link cannot be used", f"<p>{html.escape(reason)}</p>", status=400)


async def _open(desk: _Desk, token: str) -> tuple[ApprovalLink, Question] | HTMLResponse:
    """The link and the open question it answers, or the page that says why it cannot be used."""
    try:
        link = open_approval(settings=desk.settings, token=token, now=desk.clock())
    except TokenError as exc:
        return _refused(exc.message)
    if link.editor.lower() not in {address.lower() for address in desk.settings.email.editors}:
        return _refused(f"{link.editor} is no longer among the editors of this site ([email] editors).")
    question = await desk.gate.question(link.slug)
    if question is None or question.digest[:16] != link.digest:
        return _refused("No question is open for this version of the release (edited since the proof?): try again in a minute.")
    if link.fingerprint in question.used:
        return _refused("This link was already used.")
    if question.state != "pending":
        return _refused(f"The email of this release was already {question.state} ({question.at[:16].replace('T', ' ')} UTC).")
    return link, question


async def show(desk: _Desk, request: Request) -> HTMLResponse:
    """GET (and HEAD): the question and one button; nothing is decided."""
    opened = await _open(desk, request.path_params["token"])
    if isinstance(opened, HTMLResponse):
        return opened
    link, question = opened
    verb = "approve" if link.approve else "reject"
    what = "goes to the subscribers now" if link.approve else "is not sent to anyone"
    return _page(
        f"{verb.capitalize()} this email?",
        f"<p>The email of <strong>{html.escape(question.title or link.slug)}</strong> {what} when you press the button.</p>"
        f'<form method="post"><button type="submit">{verb.capitalize()} the email</button></form>'
        f"<p><small>This link is {html.escape(link.editor)}'s, from the proof email.</small></p>",
    )


async def decide(desk: _Desk, request: Request) -> HTMLResponse:
    """POST: the editor's answer, once; the waiting run resumes with it."""
    async with desk.decide:
        opened = await _open(desk, request.path_params["token"])
        if isinstance(opened, HTMLResponse):
            return opened
        link, question = opened
        verb = "approve" if link.approve else "reject"
        answered = await desk.gate.answer(question, link.approve, f"{verb}d by {link.editor} from the proof's link",
                                          link.fingerprint)
        if answered.failed:
            return _page("Not waiting for an answer", f"<p>{html.escape(answered.failed)}</p>", status=409)
    when = "with the next publish run" if answered.later else "now"
    done = f"It goes to the subscribers {when}." if link.approve else "Nothing is sent."
    title = html.escape(question.title or link.slug)
    return _page(f"Email {verb}d", f"<p>The email of <strong>{title}</strong> is {verb}d. {done}</p>")
