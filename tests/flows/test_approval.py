"""The approval gate inside real flow runs: proof to the editors, artifact, pause, resume through the API."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from uuid import UUID

import pytest
from prefect import flow

from flows.approval import approve_email
from pressroom.releases import Release, load_releases
from tests.conftest import Project

pytestmark = pytest.mark.usefixtures("prefect_harness")

EDITORS = '["editor@example.org", "desk@example.org"]'


@flow(name="approval-probe")
def probe(release: Release, settings_toml: str, audience_size: int) -> bool:
    """A flow run that asks the gate once, as the publish flow does before its email step."""
    from pressroom.settings import load_settings

    return approve_email(release=release, settings=load_settings(settings_toml), audience_size=audience_size,
                         wait=True).action == "send"


def _project(project: Project, *, timeout_minutes: float = 5.0) -> Project:
    text = (project.root / "pressroom.toml").read_text()
    text += f"\napproval_required = true\neditors = {EDITORS}\n\n[ops]\napproval_timeout_minutes = {timeout_minutes}\n"
    (project.root / "pressroom.toml").write_text(text)
    return project


class Run:
    """One probe flow run on a thread, so the test can answer while it waits."""

    def __init__(self, project: Project, release: Release, audience: int = 20_000) -> None:
        self.result: bool | None = None
        self.thread = threading.Thread(
            target=lambda: setattr(self, "result", probe(release, str(project.root / "pressroom.toml"), audience))
        )
        self.thread.start()

    def join(self) -> bool | None:
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the flow run never finished"
        return self.result


def _paused_run(slug: str, timeout: float = 30.0) -> UUID:
    """The id of the run whose approval artifact for ``slug`` asks for an answer, once it is paused."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            artifact = client.read_latest_artifacts(limit=200)
            for item in artifact:
                if item.key == f"approval-{slug}" and item.flow_run_id and "Approval needed" in str(item.data):
                    run = client.read_flow_run(item.flow_run_id)
                    if run.state and run.state.is_paused():
                        return run.id
            time.sleep(0.2)
    raise AssertionError(f"no paused approval for {slug}")


def _artifact(slug: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        [latest] = client.read_latest_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"approval-{slug}"])))
    return str(latest.data)


def _proofs(project: Project, slug: str) -> list[Path]:
    return sorted((project.settings().path("var") / "outbox" / "email").glob(f"proof-{slug}-*/*.eml"))


def test_editor_approves_through_the_api(project: Project) -> None:
    from prefect.flow_runs import resume_flow_run

    _project(project)
    release = project.release("approve-me", title="News approve-me")
    run = Run(project, release, audience=20_000)
    paused = _paused_run("approve-me")
    asked = _artifact("approve-me")
    assert "up to **20000** confirmed subscriber(s)" in asked and release.url in asked
    assert "editor@example.org, desk@example.org" in asked
    proofs = _proofs(project, "approve-me")
    assert [p.name for p in proofs] == ["desk@example.org.eml", "editor@example.org.eml"]
    assert b"News approve-me" in proofs[0].read_bytes()

    resume_flow_run(paused, run_input={"approve": True, "note": "good to go"})
    assert run.join() is True
    assert "approved" in _artifact("approve-me") and "good to go" in _artifact("approve-me")

    # The next publish run (five minutes later) does not ask again and sends no second proof.
    for proof in proofs:
        proof.unlink()
    assert Run(project, release).join() is True
    assert _proofs(project, "approve-me") == []


def test_reject_sends_nothing_and_says_so(project: Project) -> None:
    from prefect.flow_runs import resume_flow_run

    _project(project)
    release = project.release("reject-me", title="News reject-me")
    run = Run(project, release)
    resume_flow_run(_paused_run("reject-me"), run_input={"approve": False, "note": "embargo moved"})
    assert run.join() is False
    said = _artifact("reject-me")
    assert "rejected: **no email was sent**" in said and "embargo moved" in said
    assert Run(project, release).join() is False  # stays rejected for this version of the release


def test_no_answer_in_time_sends_nothing(project: Project) -> None:
    _project(project, timeout_minutes=0.05)  # three seconds
    release = project.release("nobody-home", title="News nobody-home")
    assert Run(project, release).join() is False
    assert "not answered in time: **no email was sent**" in _artifact("nobody-home")


def test_a_second_run_waits_for_the_first_runs_question(project: Project) -> None:
    from prefect.flow_runs import resume_flow_run

    _project(project)
    release = project.release("one-question", title="News one-question")
    first = Run(project, release)
    paused = _paused_run("one-question")
    assert Run(project, release).join() is False  # waiting: no second proof, no second pause
    assert len(_proofs(project, "one-question")) == 2
    resume_flow_run(paused, run_input={"approve": True})
    assert first.join() is True


def test_an_edited_release_asks_again(project: Project) -> None:
    from prefect.flow_runs import resume_flow_run

    _project(project)
    release = project.release("edited", title="News edited")
    run = Run(project, release)
    resume_flow_run(_paused_run("edited"), run_input={"approve": False})
    assert run.join() is False
    project.write_release("edited", title="News edited", body="Corrected **figures**.")
    [fixed] = [r for r in load_releases(project.settings()).releases if r.slug == "edited"]
    assert fixed.digest != release.digest
    again = Run(project, fixed)
    paused = _paused_run("edited")
    assert len(_proofs(project, "edited")) == 4  # the new version's proof, with links of its own
    resume_flow_run(paused, run_input={"approve": True})
    assert again.join() is True


def test_without_approval_required_the_gate_is_open(project: Project) -> None:
    release = project.release("no-gate", title="News no-gate")
    assert Run(project, release).join() is True
    assert _proofs(project, "no-gate") == []


def test_a_release_waiting_for_approval_stays_out_of_the_weekly_digest(project: Project) -> None:
    import email
    import email.policy
    import io
    from datetime import UTC, datetime

    from flows.digest import digest
    from pressroom.audience import Audience
    from pressroom.ledger import Ledger
    from tests.conftest import NOW

    project.write_release("plain-news", title="Plain news", date="2024-07-29 09:00")
    project.write_release("gated-news", title="Gated news", date="2024-07-30 09:00", extra="email: {approval: true}\n")
    settings = project.settings()
    Audience.from_settings(settings).import_csv(
        file=io.StringIO("address,name,topics,cadence,status\nweekly@example.org,Weekly,,weekly,confirmed\n"), now=NOW
    )
    Ledger.from_settings(settings).record_public(
        releases=load_releases(settings).releases, now=datetime(2024, 7, 30, 12, 0, tzinfo=UTC)
    )
    digest(settings_file=str(project.root / "pressroom.toml"), now=datetime(2024, 8, 5, 9, 0, tzinfo=UTC))
    [eml] = (project.root / "var" / "outbox" / "email").glob("digest-*/weekly@example.org.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "Plain news" in text
    assert "Gated news" not in text  # no editor approved it: it must not reach readers by the digest either


# --------------------------------------------------------------------------- the proof and its links


def _message(path: Path):
    import email
    import email.policy

    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def _links(proof: Path) -> dict[str, str]:
    """The proof's decision links by label, as the plain-text part lists them (``Approve: <url>``)."""
    from urllib.parse import urlsplit

    text = _message(proof).get_body(preferencelist=("plain",)).get_content()
    found = re.findall(r"^(Approve|Reject): (\S+)", text, flags=re.MULTILINE)
    return {label: urlsplit(url).path for label, url in found}


def _client(project: Project):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from pressroom.cli.gate import prefect_gate
    from pressroom.web.approval import approval_routes

    return TestClient(Starlette(routes=approval_routes(settings=project.settings(), gate=prefect_gate())))


def _state(run_id: UUID) -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id).state.name


def test_the_proof_says_it_is_a_proof_and_carries_each_editors_links(project: Project) -> None:
    from prefect.flow_runs import resume_flow_run

    _project(project)
    release = project.release("proof-look", title="News proof-look")
    run = Run(project, release)
    paused = _paused_run("proof-look")
    desk, editor = _proofs(project, "proof-look")
    message = _message(editor)
    assert message["Subject"] == "[PROOF] News proof-look"
    assert message["To"] == "editor@example.org" and message["List-Unsubscribe"] is None
    html = message.get_body(preferencelist=("html",)).get_content()
    text = message.get_body(preferencelist=("plain",)).get_content()
    for part in (html, text):
        assert "Proof for editors: not sent to subscribers yet" in part
        assert "you subscribed" not in part and "Unsubscribe" not in part
    assert html.index("Proof for editors") < html.index("News proof-look</h1>")  # the band comes first
    assert text.lstrip().startswith("*** Proof for editors")
    links = _links(editor)
    assert set(links) == {"Approve", "Reject"} and all(path.startswith("/approval/") for path in links.values())
    assert f'href="https://press.example.org{links["Approve"]}"' in html
    assert set(_links(desk).values()).isdisjoint(links.values())  # each editor has links of their own
    resume_flow_run(paused, run_input={"approve": False})
    assert run.join() is False


def test_approving_from_the_proof_resumes_the_run_and_the_email_goes_out_once(project: Project) -> None:
    from flows.publish import publish
    from pressroom.audience import Audience
    from tests.conftest import NOW

    _project(project)
    project.write_release("by-link", title="News by link")
    Audience.from_settings(project.settings()).add(address="reader@example.org", now=NOW, source="test")
    toml = str(project.root / "pressroom.toml")
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(publish(settings_file=toml, now=NOW, wait_for_editor=True)))
    thread.start()
    paused = _paused_run("by-link")
    [desk, editor] = _proofs(project, "by-link")
    approve, reject = _links(editor)["Approve"], _links(editor)["Reject"]
    client = _client(project)

    # What a mail scanner does (GET) shows a button and decides nothing.
    page = client.get(approve)
    assert page.status_code == 200 and '<form method="post">' in page.text and "News by link" in page.text
    assert page.headers["cache-control"] == "no-store"
    # Link checkers and scanners also send HEAD and OPTIONS: to both links, and none decides.
    for link in (approve, reject):
        assert client.head(link).status_code == 200
        assert client.options(link).status_code == 405
        assert client.get(link).status_code == 200
    time.sleep(1.5)  # longer than the run's one-second poll: had any of them resumed it, it would be running
    assert _state(paused) == "Paused"
    assert not (project.root / "var" / "outbox" / "email" / "by-link").exists()  # no email to the audience

    # Forged and damaged tokens, and a token for another release, change nothing.
    token = approve.rsplit("/", 1)[1]
    payload, mac = token.split(".")
    assert client.post(f"/approval/{payload}.{mac[:-2]}AA").status_code == 400
    assert client.post("/approval/not-a-token").status_code == 400
    assert client.post(f"/approval/{_links(desk)['Approve'].rsplit('/', 1)[1].split('.')[0]}.{mac}").status_code == 400
    assert _state(paused) == "Paused"

    done = client.post(approve)
    assert done.status_code == 200 and "approved" in done.text
    thread.join(timeout=90)
    assert not thread.is_alive()
    [summary] = outcome
    assert "by-link" in summary.newly_public
    assert "approved by editor@example.org" in _artifact("by-link")
    emails = sorted(p.name for p in (project.root / "var" / "outbox" / "email" / "by-link").glob("*.eml"))
    assert emails == ["reader@example.org.eml"]

    # A second click, the other decision, the other editor's link: all too late, nothing changes.
    for late in (approve, reject, _links(desk)["Reject"]):
        answer = client.post(late)
        assert answer.status_code == 400, late
    assert "already used" in client.post(approve).text
    assert "approved" in client.get(_links(desk)["Approve"]).text  # says what happened instead
    assert publish(settings_file=toml, now=NOW).newly_public == []
    assert sorted(p.name for p in (project.root / "var" / "outbox" / "email" / "by-link").glob("*.eml")) == emails
    assert len(_proofs(project, "by-link")) == 2  # no second proof either


def test_a_link_of_someone_no_longer_an_editor_or_after_the_wait_decides_nothing(project: Project) -> None:
    from datetime import UTC, datetime, timedelta

    from flows.approval import approval_url

    _project(project, timeout_minutes=0.5)
    release = project.release("too-late", title="News too-late")
    run = Run(project, release)
    paused = _paused_run("too-late")
    settings = project.settings()
    outsider = approval_url(settings=settings, release=release, editor="intern@example.org", approve=True,
                            expires=datetime.now(UTC) + timedelta(minutes=5))
    expired = approval_url(settings=settings, release=release, editor="editor@example.org", approve=True,
                           expires=datetime.now(UTC) - timedelta(seconds=1))
    client = _client(project)
    for url in (outsider, expired):
        answer = client.post(url.removeprefix("https://press.example.org"))
        assert answer.status_code == 400
    assert "intern@example.org is no longer among the editors" in client.get(outsider.removeprefix("https://press.example.org")).text
    assert _state(paused) == "Paused"
    assert run.join() is False  # nobody answered: the wait ended, nothing sent
    expired_now = _links(_proofs(project, "too-late")[1])["Approve"]
    assert client.post(expired_now).status_code == 400


def test_the_web_app_serves_the_proofs_links_before_public_files(project) -> None:
    from starlette.testclient import TestClient

    from pressroom.cli.gate import prefect_gate
    from pressroom.web import create_app
    from pressroom.web.approval import approval_routes

    settings = project.settings()
    with TestClient(create_app(settings=settings, extra_routes=approval_routes(settings=settings, gate=prefect_gate()))) as client:
        assert client.get("/approval/forged-token").status_code == 400
    with TestClient(create_app(settings=settings)) as client:
        assert client.get("/approval/forged-token").status_code == 404


# --------------------------------------------------------------------------- a run from the terminal


def _emails(project: Project, slug: str) -> list[str]:
    return sorted(p.name for p in (project.root / "var" / "outbox" / "email" / slug).glob("*.eml"))


def _terminal(project: Project, slug: str):
    """A project that needs approval, one release, one reader, and the `pressroom publish` a person types."""
    from typer.testing import CliRunner

    from pressroom.audience import Audience
    from pressroom.cli import app
    from tests.conftest import NOW

    _project(project)
    project.write_release(slug, title=f"News {slug}")
    Audience.from_settings(project.settings()).add(address="reader@example.org", now=NOW, source="test")
    command = ["publish", "--settings", str(project.root / "pressroom.toml"), "--now", NOW.isoformat()]
    return lambda: CliRunner().invoke(app, command)


def test_a_publish_from_the_terminal_does_not_wait_and_the_next_run_sends_the_approved_email(project: Project) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    publish = _terminal(project, "from-the-desk")
    first = publish()
    assert first.exit_code == 0, first.output
    assert "from-the-desk: waiting for an editor: the email goes out when approved" in first.output
    # Everything that needs no decision went out; the email did not, and the run ended.
    assert (project.root / "public" / "releases" / "from-the-desk" / "index.html").exists()
    assert len(list((project.root / "var" / "outbox" / "social").rglob("*.json"))) == 3
    assert _emails(project, "from-the-desk") == [] and len(_proofs(project, "from-the-desk")) == 2
    with get_client(sync_client=True) as client:
        [asked] = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["approval-from-the-desk"])))
        assert client.read_flow_run(asked.flow_run_id).state.is_completed()

    waiting = publish()  # no answer yet: still waiting, no second proof
    assert "from-the-desk: waiting for an editor" in waiting.output and len(_proofs(project, "from-the-desk")) == 2
    assert _emails(project, "from-the-desk") == []

    approve = _links(_proofs(project, "from-the-desk")[1])["Approve"]
    client = _client(project)
    assert "when you press the button" in client.get(approve).text  # opening the link decides nothing
    assert "waiting for an editor" in publish().output
    done = client.post(approve)
    assert done.status_code == 200 and "with the next publish run" in done.text
    assert client.post(approve).status_code == 400  # each link works once

    sent = publish()
    assert "waiting" not in sent.output and "from-the-desk email: sent 1 (1 this run)" in sent.output
    assert "approved by editor@example.org" in _artifact("from-the-desk")  # the run that sent it says who said yes
    assert _emails(project, "from-the-desk") == ["reader@example.org.eml"]
    assert "from-the-desk email: sent 1 (0 this run)" in publish().output
    assert _emails(project, "from-the-desk") == ["reader@example.org.eml"] and len(_proofs(project, "from-the-desk")) == 2


def test_a_rejection_from_the_proof_after_a_terminal_run_sends_nothing(project: Project) -> None:
    publish = _terminal(project, "not-this-one")
    assert "waiting for an editor" in publish().output
    reject = _links(_proofs(project, "not-this-one")[1])["Reject"]
    answer = _client(project).post(reject)
    assert answer.status_code == 200 and "Nothing is sent" in answer.text
    after = publish()
    assert "waiting" not in after.output and "not approved by an editor (rejected" in after.output
    assert _emails(project, "not-this-one") == []
    assert "rejected: **no email was sent**" in _artifact("not-this-one")
