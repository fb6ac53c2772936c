"""The approval gate: an editor approves or rejects a release's email before it goes to the audience.

With ``[email] approval_required = true`` (or ``email: {approval: true}`` in one release's front
matter) :func:`pressroom.dispatch.email_decision` answers "approve" for a release whose email was
never planned, and only then does the publish flow call :func:`approve_email`. The gate sends each of ``[email] editors``
a proof ("[PROOF]" subject, a band saying it is not sent yet, no subscriber footer) with two signed
links of their own, Approve and Reject; posts a markdown artifact (preview link, audience size);
and pauses the run until an editor answers: through a link (served by the web app,
:mod:`pressroom.web.approval`), the Approve/Reject form in the Prefect UI, or ``resume_flow_run`` through the API.

The decision is kept per release version in a Prefect Variable (``pressroom-approval-<slug>``), so
the runs that follow every five minutes neither ask again nor send a second proof: an approved
release goes out, a rejected or timed-out one stays unsent, a pending one waits. Editing the
release (a new digest) asks again. Reject or timeout sends nothing and says so in the artifact.
The same Variable remembers the links already used: each works once, until the wait ends.
"""

from __future__ import annotations

import json
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

from pressroom.releases import Release
from pressroom.settings import Settings
from pressroom.tokens import approval_url

__all__ = ["Approval", "approval_url", "approve_email"]

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


def approve_email(*, release: Release, settings: Settings, audience_size: int) -> bool:
    """True when ``release``'s email may go to its ``audience_size`` subscribers now.

    Always True when neither the release (``email: {approval: ...}``) nor the site requires approval. Otherwise: the first call sends the
    proof and waits for an editor (at most ``[ops] approval_timeout_minutes``); later calls
    for the same version of the release return the recorded decision, or False while another
    run is still waiting. Must be called inside a flow run.
    """
    if not release.needs_approval(settings):
        return True
    logger = get_run_logger()
    context = FlowRunContext.get()
    assert context is not None and context.flow_run is not None, "approve_email runs inside a flow run"
    run_id = str(context.flow_run.id)
    now = datetime.now(UTC)
    timeout = timedelta(minutes=settings.ops.approval_timeout_minutes)

    decision = _read(release)
    if decision is not None and decision.state != "pending":
        logger.info("email of %s was %s earlier (%s); not asking again", release.slug, decision.state, decision.at)
        return decision.state == "approved"
    if decision is not None and decision.flow_run_id != run_id:
        if now < datetime.fromisoformat(decision.expires):
            logger.info("email of %s is waiting for approval in flow run %s", release.slug, decision.flow_run_id)
            return False
        # The run that asked was suspended and nobody answered in time: the timeout stands.
        _finish(release, settings, decision, state="timed-out", note="nobody answered in time")
        return False
    if decision is None:
        # Recorded once the proof went out: a send that raises leaves no question, the next run asks.
        sent_to = _send_proof(release=release, settings=settings, expires=now + timeout)
        decision = _Decision(
            digest=release.digest, state="pending", flow_run_id=run_id, at=now.isoformat(),
            expires=(now + timeout).isoformat(), title=release.title,
        )
        _write(release, decision)
        _request_artifact(release=release, settings=settings, audience_size=audience_size, proof_to=sent_to, timeout=timeout)

    # A run re-started after a suspension reaches this line again; the same key makes Prefect
    # hand back the answer it already has instead of pausing twice.
    key = f"approval-{release.slug}-{release.digest[:16]}"
    seconds = max(1, int((datetime.fromisoformat(decision.expires) - now).total_seconds()))
    try:
        if context.flow_run.deployment_id is not None and timeout > SUSPEND_AFTER:
            answer = suspend_flow_run(wait_for_input=Approval, timeout=seconds, key=key)
        else:
            answer = pause_flow_run(wait_for_input=Approval, timeout=seconds, poll_interval=_poll(seconds), key=key)
    except FlowPauseTimeout:
        _finish(release, settings, decision, state="timed-out", note="nobody answered in time")
        return False
    _finish(release, settings, decision, state="approved" if answer.approve else "rejected", note=answer.note)
    return answer.approve


def _poll(seconds: int) -> int:
    # Short waits (tests, a desk editor) answer within a second; long ones poll every 10 s.
    return 1 if seconds <= 600 else 10


def _finish(release: Release, settings: Settings, decision: _Decision, *, state: str, note: str) -> None:
    now = datetime.now(UTC)
    current = _read(release) or decision  # the web app may have recorded a used link meanwhile
    _write(release, _Decision(**{**asdict(current), "state": state, "at": now.isoformat(), "note": note}))
    outcome = {
        "approved": "approved: the email goes to the audience now",
        "rejected": "rejected: **no email was sent**",
        "timed-out": "not answered in time: **no email was sent**",
    }[state]
    lines = [f"# Email approval for {release.title}", "", f"- {outcome}", f"- decided {now.astimezone(settings.site.tz):%Y-%m-%d %H:%M %Z}"]
    if note:
        lines.append(f"- note: {note}")
    if state != "approved":
        lines.append("- to send it after all, edit the release (a new version asks again)")
    get_run_logger().info("email of %s %s", release.slug, outcome.replace("**", ""))
    create_markdown_artifact(key=f"approval-{release.slug}", markdown="\n".join(lines), description=f"approval {state}")


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
        f"- answer by {until:%Y-%m-%d %H:%M %Z}: with the Approve or Reject link of the proof email, or open this"
        " flow run and choose **Resume**, then approve or reject",
        "- no answer by then sends nothing",
    ]
    create_markdown_artifact(key=f"approval-{release.slug}", markdown="\n".join(lines), description="approval requested")


def _send_proof(*, release: Release, settings: Settings, expires: datetime) -> list[str]:
    """Send each editor the proof with their own Approve and Reject links; returns who accepted it."""
    from flows.ops import send_to_people
    from pressroom.mail import Recipient, compose_release

    def links(address: str) -> dict[str, str]:
        return {
            label: approval_url(settings=settings, release=release, editor=address, approve=approve, expires=expires)
            for label, approve in (("Approve", True), ("Reject", False))
        }

    def proof(address: str) -> bytes:
        return compose_release(release=release, settings=settings, proof=links(address)).message(Recipient(address=address))

    if release.embargo is not None:
        from pressroom.mail import compose_embargo

        # The editor approves both emails with one answer, so the proof shows the journalists' one too.
        send_to_people(
            settings=settings, addresses=list(settings.email.editors), key=f"proof-embargo-{release.slug}-{release.digest[:8]}",
            message=lambda address: compose_embargo(release=release, settings=settings, proof=links(address))
            .message(Recipient(address=address)),
        )
    return send_to_people(
        # Sent once per key: one proof per version of the release (an edited release asks again).
        settings=settings, addresses=list(settings.email.editors), key=f"proof-{release.slug}-{release.digest[:8]}",
        message=proof,
    )
