"""Operator alerts: a failed or crashed run emails the operators and calls a Prefect notification block.

The email is an ordinary message through the configured transport and the ledger's staff channel
(:func:`pressroom.dispatch.email_staff`), built by the one MIME builder (:mod:`pressroom.mail.message`).
"""

from __future__ import annotations

from typing import Any

from flows.credentials import settings_from
from pressroom.dispatch import email_staff

__all__ = ["notify_failure"]


def notify_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """``on_failure``/``on_crashed`` hook: tell the operators that a run failed.

    By email through the configured transport to ``[ops] notify`` (the editors when empty), and
    through the Prefect notification block ``[ops] notify_block`` (``<block-type>/<name>``, e.g.
    ``slack-webhook/pressroom-operators``) when one is set. Settings come from the run's
    ``settings_file`` parameter. A failure to notify is logged; it never hides the run's own failure.
    """
    from prefect.logging import get_logger

    logger = get_logger("pressroom.ops")
    subject = f"[pressroom] {flow.name} run {flow_run.name} {state.name.lower()}"
    body = _failure_text(flow_run=flow_run, state=state)
    try:
        settings = settings_from((flow_run.parameters or {}).get("settings_file"))
    except Exception as exc:  # the settings may be what failed
        logger.warning("cannot notify operators about %s: settings: %s", flow_run.name, exc)
        return
    if settings.ops.notify_block:
        try:
            from prefect.blocks.core import Block

            Block.load(settings.ops.notify_block).notify(body=body, subject=subject)  # type: ignore[attr-defined]
        except Exception as exc:  # a broken webhook must not stop the email
            logger.warning("notification block %s failed: %s", settings.ops.notify_block, exc)
    operators = settings.ops.notify or settings.email.editors
    key = f"ops-failure-{flow_run.id}"
    try:
        sent = email_staff(settings=settings, key=key, to=operators, subject=subject, text=body)
    except Exception as exc:
        logger.warning("could not email operators about %s: %s", flow_run.name, exc)
        return
    logger.info("failure of %s reported by email to %d of %d operator(s)", flow_run.name, len(sent), len(operators))


def _failure_text(*, flow_run: Any, state: Any) -> str:
    from prefect.settings import PREFECT_UI_URL

    lines = [f"Flow run {flow_run.name} ({flow_run.id}) ended {state.name}.", "", str(state.message or "")]
    if ui := PREFECT_UI_URL.value():
        lines += ["", f"Details: {ui}/runs/flow-run/{flow_run.id}"]
    return "\n".join(lines)
