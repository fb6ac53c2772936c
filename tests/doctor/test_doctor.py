"""`pressroom doctor`: real SMTP logins on loopback, settings mistakes, the database; each problem has a hint."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from pressroom.cli import app
from pressroom.doctor import check_database, check_settings, check_smtp, run_doctor
from tests.conftest import Project

USER, PASSWORD = "press", "correct horse battery staple"


@pytest.fixture
def smtp_port() -> Iterator[int]:
    """A real SMTP server with AUTH LOGIN/PLAIN on loopback (no TLS), accepting one user."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def authenticator(server, session, envelope, mechanism, auth_data):  # aiosmtpd's callback shape
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
        return AuthResult(success=ok, handled=False)  # unhandled: aiosmtpd answers 535 itself

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            raise AssertionError("doctor must never send a message")

    port = _free_port()
    controller = Controller(
        Sink(), hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=False, auth_exclude_mechanism=["CRAM-MD5"]
    )
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def smtp_env(port: int, password: str | None = PASSWORD) -> dict[str, str]:
    env = {"PRESSROOM_EMAIL__TRANSPORT": "smtp", "PRESSROOM_SMTP__PORT": str(port), "PRESSROOM_SMTP__USERNAME": USER}
    if password is not None:
        env["PRESSROOM_SMTP__PASSWORD"] = password
    return env


def test_smtp_login_succeeds_with_the_right_password(project: Project, smtp_port: int) -> None:
    [finding] = check_smtp(project.settings(**smtp_env(smtp_port)))
    assert finding.ok, finding.line()
    assert f"logged in as {USER}" in finding.message


def test_smtp_login_refused_names_the_secret_to_fix(project: Project, smtp_port: int) -> None:
    [finding] = check_smtp(project.settings(**smtp_env(smtp_port, password="wrong")))
    assert not finding.ok
    assert "login refused (535)" in finding.message
    assert "pressroom-smtp-password" in finding.hint
    assert "wrong" not in finding.line()  # the secret is never printed


def test_smtp_missing_password_and_dead_server_are_problems(project: Project, smtp_port: int) -> None:
    [missing] = check_smtp(project.settings(**smtp_env(smtp_port, password=None)))
    assert not missing.ok and "no password" in missing.message
    [dead] = check_smtp(project.settings(**smtp_env(_free_port())))
    assert not dead.ok and "smtp.host" in dead.hint


def test_settings_mistakes_each_get_a_hint(project: Project) -> None:
    settings = project.settings(
        PRESSROOM_EMAIL__APPROVAL_REQUIRED="true",
        PRESSROOM_OPS__NOTIFY='["not-an-address"]',
    )
    lines = [finding.line() for finding in check_settings(settings)]
    assert any("approval_required is on but email.editors is empty" in line and "hint:" in line for line in lines)
    assert any("ops.notify: 'not-an-address' is not an email address" in line for line in lines)
    assert any("secret_key is not set on a public site" in line and "pressroom-secret-key" in line for line in lines)


def test_complete_settings_pass(project: Project) -> None:
    settings = project.settings(
        PRESSROOM_SECRET_KEY="a-long-random-production-secret",
        PRESSROOM_EMAIL__EDITORS='["editor@example.org"]',
    )
    assert [f.ok for f in check_settings(settings)] == [True]


def test_unreachable_database_is_a_problem_with_a_hint(project: Project) -> None:
    port = _free_port()
    [finding] = check_database(project.settings(PRESSROOM_DATABASE_URL=f"postgresql+psycopg://nobody@127.0.0.1:{port}/nothing"))
    assert not finding.ok
    assert "database_url" in finding.hint
    [ok] = check_database(project.settings())
    assert ok.ok, ok.line()


def test_doctor_command_lists_every_problem_and_exits_1(project: Project, smtp_port: int, monkeypatch) -> None:
    monkeypatch.chdir(project.root)
    project.write_release("good-news")
    for name, value in smtp_env(smtp_port, password="wrong").items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 1, result.output
    assert "PROBLEM  smtp:" in result.output
    assert "ok       releases: 1 release(s) valid" in result.output
    assert "ok       database: reachable" in result.output


def test_one_broken_check_does_not_stop_the_others(project: Project) -> None:
    def explodes(settings):
        raise OSError("disk on fire")

    findings = run_doctor(settings=project.settings(), checks=[explodes, check_database])
    assert [f.check for f in findings] == ["explodes", "database"]
    assert not findings[0].ok and findings[1].ok


def test_dkim_key_that_cannot_be_read_is_reported(project: Project) -> None:
    from pressroom.doctor import check_dkim

    [unset] = check_dkim(project.settings())
    assert unset.ok and "not configured" in unset.message
    [bad] = check_dkim(
        project.settings(PRESSROOM_DKIM__DOMAIN="example.org", PRESSROOM_DKIM__SELECTOR="s1", PRESSROOM_DKIM__KEY="not a key")
    )
    assert not bad.ok and "cannot be read" in bad.message and bad.hint
    [half] = check_dkim(project.settings(PRESSROOM_DKIM__DOMAIN="example.org"))
    assert not half.ok and "selector" in half.message


def test_templates_render_the_newest_release(project: Project) -> None:
    from pressroom.doctor import check_templates

    project.write_release("fresh-news", title="Fresh news")
    [finding] = check_templates(project.settings())
    assert finding.ok and "'fresh-news' renders" in finding.message


def test_social_accounts_are_verified_and_a_broken_one_is_named(project: Project) -> None:
    from pressroom.doctor import check_social

    [outbox] = check_social(project.settings())
    assert outbox.ok and outbox.check == "social outbox/default" and "credentials work" in outbox.message
    findings = run_doctor(settings=project.settings(PRESSROOM_SOCIAL__MASTODON__TOKEN="t0ken"), checks=[check_social])
    [problem] = [f for f in findings if not f.ok]
    assert "base_url" in problem.hint and "t0ken" not in problem.line()


def test_doctor_warns_about_the_shipped_sample_data_before_going_live(project: Project, monkeypatch) -> None:
    """A fresh clone's fictional readers, example organisation and example addresses: advice while mail goes to
    the outbox, problems once the SMTP transport sends to real people."""
    import shutil
    from datetime import UTC, datetime

    from pressroom.audience import Audience
    from pressroom.doctor import check_sample_data
    from tests.conftest import REPO

    shutil.copytree(REPO / "content" / "organisations", project.root / "content" / "organisations")
    shutil.copy(REPO / "content" / "subscribers.sample.csv", project.root / "content")
    env = {"PRESSROOM_AUDIENCE__SEED_CSV": "content/subscribers.sample.csv"}
    Audience.from_settings(project.settings(**env)).seed_if_empty(
        file=project.root / "content" / "subscribers.sample.csv", now=datetime.now(UTC))
    found = check_sample_data(project.settings(**env))
    assert all(f.ok and f.advice for f in found), [f.line() for f in found]
    said = "\n".join(f.line() for f in found)
    assert "[audience] seed_csv = 'content/subscribers.sample.csv'" in said
    assert "fictional reader(s) from subscribers.sample.csv are subscribers (e.g. amira.haddad@example.org)" in said
    assert "pressroom subscribers remove --erase amira.haddad@example.org" in said
    assert "example-project.yaml is the fictional example organisation" in said
    assert "email.sender = 'press@example.org' is an example address" in said
    live = check_sample_data(project.settings(**env, PRESSROOM_EMAIL__TRANSPORT="smtp"))
    assert live and all(not f.ok for f in live)


def test_doctor_finds_no_sample_data_in_a_real_project(project: Project) -> None:
    from pressroom.doctor import check_sample_data

    [finding] = check_sample_data(project.settings(PRESSROOM_EMAIL__SENDER="press@materialsforbatterieshub.eu"))
    assert finding.ok and not finding.advice, finding.line()
