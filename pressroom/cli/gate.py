"""The Prefect side of the editors' Approve/Reject links, handed to the web app by ``pressroom serve``.

The pages (:mod:`pressroom.web.approval`) know nothing of Prefect; this is the shell's half: the
question the approval gate (:mod:`flows.approval`) keeps in a Prefect Variable, and the resume of
the run that waits for it, through the Prefect API as the UI's Resume form does (or, when no run
waits, the answer kept for the next run). Prefect and the
flows are imported inside the functions only: the CLI's one door to them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from uuid import UUID

from pressroom.web.approval import Answered, Gate, Question

__all__ = ["prefect_gate"]


async def _question(slug: str) -> Question | None:
    from prefect.variables import Variable

    from flows.approval import _parse, _variable_name

    decision = _parse(await Variable.aget(_variable_name(slug), default=None))
    if decision is None:
        return None
    return Question(slug=slug, digest=decision.digest, state=decision.state, title=decision.title, at=decision.at,
                    used=frozenset(decision.used))


async def _answer(question: Question, approve: bool, note: str, used: str) -> Answered:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import FlowPauseTimeout, NotPausedError, ObjectNotFound
    from prefect.flow_runs import aresume_flow_run
    from prefect.variables import Variable

    from flows.approval import _parse, _variable_name, keep_answer

    name = _variable_name(question.slug)
    decision = _parse(await Variable.aget(name, default=None))
    if decision is None or decision.digest != question.digest:
        return Answered(failed="No question is open for this version of the release any more.")
    run_id = UUID(decision.flow_run_id)
    try:
        async with get_client() as client:
            run = await client.read_flow_run(run_id)
    except ObjectNotFound:
        run = None
    if run is None or run.state is None or not run.state.is_paused():
        # Asked by a run that did not wait (from the terminal): the next run sends it.
        await keep_answer(question.slug, decision, approve=approve, note=note, link=used)
        return Answered(later=True)
    marked = replace(decision, used=(*decision.used, used))
    await Variable.aset(name, json.dumps(asdict(marked)), tags=["pressroom", "approval"], overwrite=True)
    try:
        await aresume_flow_run(run_id, run_input={"approve": approve, "note": note})
    except (NotPausedError, FlowPauseTimeout, RuntimeError) as exc:
        return Answered(failed=str(exc))
    return Answered()


def prefect_gate() -> Gate:
    """The :class:`~pressroom.web.approval.Gate` of runs paused by :func:`flows.approval.approve_email`."""
    return Gate(question=_question, answer=_answer)
