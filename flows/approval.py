"""The approval gate: an editor approves or rejects a release's email before it goes to the audience.

With ``[email] approval_required = true`` (or ``email: {approval: true}`` in one release's front
matter) the core's decision (:mod:`pressroom.dispatch.decide`) is "approve" for a release whose
email was never planned, and only then is :func:`approve_email` asked. The gate sends each of
``[email] editors`` a proof ("[PROOF]" subject, a band saying it is not sent yet, no subscriber
footer) with two signed links of their own, Approve and Reject, and posts a markdown artifact
(preview link, audience size). Then:

- a run from the terminal (``pressroom publish``) does not wait: the answer is "waiting for an
  editor", the run sends everything else and ends, and the editor's link records the answer, which
  the next scheduled or manual run picks up and sends;
- a deployment run waits: it pauses (or, for a long wait, suspends and frees its worker) until an
  editor answers through a link (served by the web app, :mod:`pressroom.web.approval`), the
  Approve/Reject form in the Prefect UI, or ``resume_flow_run`` through the API.

The decision is kept per release version in a Prefect Variable (``pressroom-approval-<slug>``), so
the runs that follow every five minutes neither ask again nor send a second proof: an approved
release goes out, a rejected or timed-out one stays unsent, a pending one waits. Editing the
release (a new digest) asks again. Reject or timeout sends nothing and says so in the artifact.
The same Variable remembers the links already used: each works once, until the wait ends.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from prefect.variables import Variable
from pydantic import Field

from pressroom.dispatch import SEND, WAIT, Decision, Due
from pressroom.releases import Release
from pressroom.settings import Settings
from pressroom.tokens import approval_url

__all__ = ["Approval", "approval_url", "approve_email", "editor", "email_approved", "keep_answer", "waits"]

# A wait longer than this, in a run that belongs to a deployment, suspends the run instead of
# blocking a worker slot; the run starts again from the top when an editor answers.
SUSPEND_AFTER = timedelta(minutes=10)


class Approval(RunInput):
    """The form an editor fills in: approve sends the email to the audience, reject sends nothing."""

    approve: bool = Field(description="Send this release's email to the audience")
    note: str = Field("", description="Optional: why (shown in the run's artifact)")


@dataclass(frozen=True)
class _Decision:
    digest: str
    state: Literal["pending", "approved", "rejected", "timed-out"]
    flow_run_id: str
    at: str
    expires: str = ""
    note: str = ""
    title: str = ""
    used: tuple[str, ...] = ()  # the links already used (fingerprints of their payloads): each works once
    told: bool = True  # False: an answer kept for the next run, which says it in its artifact


def _variable_name(slug: str) -> str:
    return f"pressroom-approval-{slug}"


def _parse(raw: str | None) -> _Decision | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return _Decision(**{**data, "used": tuple(data.get("used", ()))})
    except (TypeError, ValueError):
        return None


def _read(release: Release) -> _Decision | None:
    decision = _parse(Variable.get(_variable_name(release.slug), default=None))
    return decision if decision is not None and decision.digest == release.digest else None


def _write(release: Release, decision: _Decision) -> None:
    Variable.set(_variable_name(release.slug), json.dumps(asdict(decision)), tags=["pressroom", "approval"], overwrite=True)


def email_approved(*, release: Release, settings: Settings) -> bool:
    """For the weekly digest: False while a release that needs approval has no "approved" decision.

    A rejected or never-answered release must not reach weekly readers by the back door.
    """
    if not release.needs_approval(settings):
        return True
    decision = _read(release)
    return decision is not None and decision.state == "approved"


def waits(requested: bool | None) -> bool:
    """Whether this run waits for an editor: as ``requested``, else only a run of a deployment does."""
    if requested is not None:
        return requested
    context = FlowRunContext.get()
    return context is not None and context.flow_run is not None and context.flow_run.deployment_id is not None


def editor(settings: Settings, *, wait: bool) -> Callable[[Due], Decision]:
    """The gate as the core asks it (:func:`pressroom.dispatch.drive`): one question per release version."""
    def ask(due: Due) -> Decision:
        assert due.release is not None, "only a release's send asks an editor"
        return approve_email(release=due.release, settings=settings, audience_size=due.audience, wait=wait)

    return ask


def _answered(release: Release, decision: _Decision) -> Decision:
    if decision.state == "approved":
        return SEND
    return Decision("skip", f"not approved by an editor ({decision.state}; see the approval-{release.slug} artifact)")


def _settled(release: Release, settings: Settings, decision: _Decision) -> Decision:
    """The answer recorded earlier; one an editor gave while no run waited is said in this run's artifact."""
    if not decision.told:
        return _finish(release, settings, decision, state=decision.state, note=decision.note)
    get_run_logger().info("email of %s was %s earlier (%s); not asking again", release.slug, decision.state, decision.at)
    return _answered(release, decision)


def approve_email(*, release: Release, settings: Settings, audience_size: int, wait: bool) -> Decision:
    """Whether ``release``'s email may go to its ``audience_size`` recipients now: send, skip (why) or wait.

    Send at once when neither the release (``email: {approval: ...}``) nor the site requires
    approval. Otherwise the first ask sends the proof and records the question; later asks for the
    same version of the release return the recorded answer, or wait while the question is open.
    With ``wait`` the asking run pauses for the answer (at most ``[ops] approval_timeout_minutes``);
    without, it answers wait at once, and a later run sends the email once an editor approved.
    Must be called inside a flow run.
    """
    if not release.needs_approval(settings):
        return SEND
    context = FlowRunContext.get()
    assert context is not None and context.flow_run is not None, "approve_email runs inside a flow run"
    run_id = str(context.flow_run.id)
    decision = _read(release)
    if decision is not None and decision.state != "pending":
        return _settled(release, settings, decision)
    if decision is not None and decision.flow_run_id != run_id:
        if datetime.now(UTC) < datetime.fromisoformat(decision.expires):
            get_run_logger().info("email of %s is waiting for an editor (asked by flow run %s)", release.slug,
                                  decision.flow_run_id)
            return WAIT
        # Nobody answered in time (the run that asked ended, or was suspended): the timeout stands.
        return _finish(release, settings, decision, state="timed-out", note="nobody answered in time")
    if decision is None:
        decision = _ask(release=release, settings=settings, audience_size=audience_size, run_id=run_id)
    return _pause(release, settings, decision, deployment=context.flow_run.deployment_id is not None) if wait else WAIT


def _ask(*, release: Release, settings: Settings, audience_size: int, run_id: str) -> _Decision:
    """Send the proof, then record the open question (a send that raises leaves none: the next run asks)."""
    now = datetime.now(UTC)
    timeout = timedelta(minutes=settings.ops.approval_timeout_minutes)
    sent_to = _send_proof(release=release, settings=settings, expires=now + timeout)
    decision = _Decision(digest=release.digest, state="pending", flow_run_id=run_id, at=now.isoformat(),
                         expires=(now + timeout).isoformat(), title=release.title)
    _write(release, decision)
    _request_artifact(release=release, settings=settings, audience_size=audience_size, proof_to=sent_to, timeout=timeout)
    return decision


def _pause(release: Release, settings: Settings, decision: _Decision, *, deployment: bool) -> Decision:
    """Hold this run until an editor answers, or the question expires."""
    # A run re-started after a suspension reaches this line again; the same key makes Prefect
    # hand back the answer it already has instead of pausing twice.
    key = f"approval-{release.slug}-{release.digest[:16]}"
    current = _read(release)
    if current is not None and current.state != "pending":
        return _settled(release, settings, current)  # a link answered before this run was paused
    seconds = max(1, int((datetime.fromisoformat(decision.expires) - datetime.now(UTC)).total_seconds()))
    try:
        if deployment and timedelta(minutes=settings.ops.approval_timeout_minutes) > SUSPEND_AFTER:
            answer = suspend_flow_run(wait_for_input=Approval, timeout=seconds, key=key)
        else:
            answer = pause_flow_run(wait_for_input=Approval, timeout=seconds, poll_interval=_poll(seconds), key=key)
    except FlowPauseTimeout:
        current = _read(release)
        if current is not None and current.state in ("approved", "rejected"):
            return _settled(release, settings, current)  # a link answered before this run was paused
        return _finish(release, settings, decision, state="timed-out", note="nobody answered in time")
    return _finish(release, settings, decision, state="approved" if answer.approve else "rejected", note=answer.note)


def _poll(seconds: int) -> int:
    # Short waits (tests, a desk editor) answer within a second; long ones poll every 10 s.
    return 1 if seconds <= 600 else 10


_OUTCOMES = {
    "approved": "approved: the email goes to the audience now",
    "rejected": "rejected: **no email was sent**",
    "timed-out": "not answered in time: **no email was sent**",
}


def _outcome_lines(*, title: str, state: str, note: str, at: datetime, settings: Settings, outcome: str) -> list[str]:
    lines = [f"# Email approval for {title}", "", f"- {outcome}", f"- decided {at.astimezone(settings.site.tz):%Y-%m-%d %H:%M %Z}"]
    if note:
        lines.append(f"- note: {note}")
    if state != "approved":
        lines.append("- to send it after all, edit the release (a new version asks again)")
    return lines


def _finish(release: Release, settings: Settings, decision: _Decision, *, state: str, note: str) -> Decision:
    current = _read(release) or decision  # the web app may have recorded a used link meanwhile
    at = current.at if not current.told else datetime.now(UTC).isoformat()
    decided = _Decision(**{**asdict(current), "state": state, "at": at, "note": note, "told": True})
    _write(release, decided)
    outcome = _OUTCOMES[state]
    get_run_logger().info("email of %s %s", release.slug, outcome.replace("**", ""))
    create_markdown_artifact(key=f"approval-{release.slug}", description=f"approval {state}",
                             markdown="\n".join(_outcome_lines(title=release.title, state=state, note=note,
                                                               at=datetime.fromisoformat(at), settings=settings,
                                                               outcome=outcome)))
    return _answered(release, decided)


async def keep_answer(slug: str, decision: _Decision, *, approve: bool, note: str, link: str) -> None:
    """An answer to a question no run waits on (it was asked from the terminal): kept for the next run,
    which sends the email (approved) and says so in its artifact. What the approval page does when the
    run that asked is not paused; a paused run is resumed instead."""
    decided = _Decision(**{**asdict(decision), "state": "approved" if approve else "rejected",
                           "at": datetime.now(UTC).isoformat(), "note": note, "used": (*decision.used, link), "told": False})
    await Variable.aset(_variable_name(slug), json.dumps(asdict(decided)), tags=["pressroom", "approval"], overwrite=True)


def _request_artifact(
    *, release: Release, settings: Settings, audience_size: int, proof_to: list[str], timeout: timedelta
) -> None:
    until = (datetime.now(UTC) + timeout).astimezone(settings.site.tz)
    lines = [
        f"# Approval needed: {release.title}",
        "",
        f"- audience: up to **{audience_size}** confirmed subscriber(s)",
        f"- preview: [{release.url}]({release.url}) (the release page is already public; the email links to it)"
        if release.date <= datetime.now(UTC) else
        f"- embargoed: public at {release.date.astimezone(settings.site.tz):%Y-%m-%d %H:%M %Z}; the proofs show the"
        " journalists' email and the subscribers' one, and one answer covers both",
        f"- proof sent to: {', '.join(proof_to) if proof_to else 'nobody (no editors configured)'}",
        f"- answer by {until:%Y-%m-%d %H:%M %Z}: with the Approve or Reject link of the proof email, or, while a"
        " run waits, open it and choose **Resume**, then approve or reject",
        "- no answer by then sends nothing",
    ]
    create_markdown_artifact(key=f"approval-{release.slug}", markdown="\n".join(lines), description="approval requested")


def _send_proof(*, release: Release, settings: Settings, expires: datetime) -> list[str]:
    """Send each editor the proof with their own Approve and Reject links; returns who accepted it."""
    from pressroom.dispatch import send_staff
    from pressroom.mail import Recipient, compose_release

    editors = list(settings.email.editors)

    def links(address: str) -> dict[str, str]:
        return {
            label: approval_url(settings=settings, release=release, editor=address, approve=approve, expires=expires)
            for label, approve in (("Approve", True), ("Reject", False))
        }

    if release.embargo is not None:
        from pressroom.mail import compose_embargo

        # The editor approves both emails with one answer, so the proof shows the journalists' one too.
        send_staff(settings=settings, key=f"proof-embargo-{release.slug}-{release.digest[:8]}", messages={
            address: compose_embargo(release=release, settings=settings, proof=links(address)).message(Recipient(address=address))
            for address in editors
        })
    # Sent once per key: one proof per version of the release (an edited release asks again).
    return send_staff(settings=settings, key=f"proof-{release.slug}-{release.digest[:8]}", messages={
        address: compose_release(release=release, settings=settings, proof=links(address)).message(Recipient(address=address))
        for address in editors
    })

