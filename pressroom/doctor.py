"""``pressroom doctor``: everything that can be checked before a real send, each problem with a hint.

The checks talk to the real services the settings name (SMTP login, social token verification,
the database) but never send anything. Secrets are used, never printed.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from pressroom.errors import PressroomError
from pressroom.settings import Settings

__all__ = ["Finding", "run_doctor"]

_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


@dataclass(frozen=True)
class Finding:
    """The outcome of one check: ``ok`` with what was verified, or a problem with a hint."""

    check: str
    ok: bool
    message: str
    hint: str = ""

    def line(self) -> str:
        """One line for the terminal: ``ok  smtp: ...`` or ``PROBLEM  smtp: ... (hint: ...)``."""
        if self.ok:
            return f"ok       {self.check}: {self.message}"
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"PROBLEM  {self.check}: {self.message}{hint}"


def _ok(check: str, message: str) -> Finding:
    return Finding(check, True, message)


def _problem(check: str, message: str, hint: str) -> Finding:
    return Finding(check, False, message, hint)


def _from_error(check: str, exc: PressroomError) -> Finding:
    return _problem(check, exc.message, exc.hint)


def check_settings(settings: Settings) -> list[Finding]:
    """What a valid pressroom.toml can still get wrong for a real service."""
    found = []
    email = settings.email
    for name, address in [("email.sender", email.sender), ("email.reply_to", email.reply_to)]:
        if address and not _ADDRESS.match(address):
            found.append(_problem("settings", f"{name} {address!r} is not an email address", "write it as name@domain"))
    for name, addresses in [("email.editors", email.editors), ("ops.notify", settings.ops.notify)]:
        for address in addresses:
            if not _ADDRESS.match(address):
                found.append(_problem("settings", f"{name}: {address!r} is not an email address", "write it as name@domain"))
    if email.approval_required and not email.editors:
        found.append(
            _problem(
                "settings",
                "email.approval_required is on but email.editors is empty: nobody receives the proof",
                "list the editors' addresses in [email] editors = [...]",
            )
        )
    public = not re.match(r"^https?://(localhost|127\.0\.0\.1)(:\d+)?$", settings.site.base_url)
    if public and settings.secret_key is None:
        # Links are signed with the key generated in var/secret_key: fine for one machine, but a
        # worker elsewhere would sign links this web app refuses.
        found.append(
            _problem(
                "settings",
                "secret_key is not set on a public site: links are signed with the key generated in var/secret_key,"
                " which workers on other machines do not have",
                "set PRESSROOM_SECRET_KEY or the Secret block pressroom-secret-key to a long random value",
            )
        )
    if not (settings.ops.notify or email.editors or settings.ops.notify_block):
        found.append(
            _problem(
                "settings",
                "nobody is told when a run fails: ops.notify, ops.notify_block and email.editors are all empty",
                "set [ops] notify = [\"ops@example.org\"] or notify_block = \"slack-webhook/<name>\"",
            )
        )
    if not found:
        found.append(_ok("settings", f"{settings.root / 'pressroom.toml'} is complete"))
    return found


def check_smtp(settings: Settings) -> list[Finding]:
    """Connect, greet, negotiate TLS and log in to the configured SMTP server; send nothing."""
    if not settings.email.enabled or settings.email.transport != "smtp":
        return [_ok("smtp", f"not used (email transport is {settings.email.transport!r})")]
    smtp = settings.smtp
    where = f"{smtp.host}:{smtp.port}"
    timeout = min(smtp.timeout, 15.0)
    context = ssl.create_default_context()
    try:
        if smtp.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
        with client:
            client.ehlo()
            if smtp.security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if smtp.username:
                if smtp.password is None:
                    return [_problem("smtp", f"{where}: smtp.username is set but no password", _PASSWORD_HINT)]
                client.login(smtp.username, smtp.password.get_secret_value())
                return [_ok("smtp", f"{where}: logged in as {smtp.username}")]
            return [_ok("smtp", f"{where}: answers (no login configured)")]
    except smtplib.SMTPAuthenticationError as exc:
        return [_problem("smtp", f"{where}: login refused ({exc.smtp_code})", _PASSWORD_HINT)]
    except smtplib.SMTPNotSupportedError as exc:
        return [_problem("smtp", f"{where}: {exc}", "set smtp.security to what the server offers (none, starttls, tls)")]
    except ssl.SSLError as exc:
        return [_problem("smtp", f"{where}: TLS failed: {exc.reason}", "check smtp.security and the server certificate")]
    except (OSError, smtplib.SMTPException) as exc:
        return [_problem("smtp", f"{where}: {exc or type(exc).__name__}", "check smtp.host, smtp.port and that the server runs")]


_PASSWORD_HINT = "set PRESSROOM_SMTP__PASSWORD or the Prefect Secret block pressroom-smtp-password"


def check_dkim(settings: Settings) -> list[Finding]:
    """The DKIM key loads the way the mail room signs with it."""
    from pressroom.mail.message import DkimKey

    try:
        key = DkimKey.from_settings(settings)
    except PressroomError as exc:
        return [_from_error("dkim", exc)]
    if key is None:
        return [_ok("dkim", "not configured (emails go out unsigned)")]
    return [_ok("dkim", f"key for {key.selector.decode()}._domainkey.{key.domain.decode()} loads")]


def check_templates(settings: Settings) -> list[Finding]:
    """Render the newest valid release (or a sample) through the email templates, as a send would."""
    from pressroom.mail import compose_release
    from pressroom.releases import load_releases

    releases = load_releases(settings).releases
    if not releases:
        return [_ok("templates", "no valid release to render yet")]
    release = releases[0]
    try:
        composed = compose_release(release=release, settings=settings)
    except PressroomError as exc:
        return [_from_error("templates", exc)]
    return [_ok("templates", f"email for {release.slug!r} renders ({len(composed.html)} bytes of HTML)")]


def check_releases(settings: Settings) -> list[Finding]:
    """Every release file validates; the invalid ones are skipped at publish time."""
    from pressroom.releases import load_releases

    result = load_releases(settings)
    found = [_problem("releases", problem.line_for_humans(settings.root), "") for problem in result.problems]
    return found or [_ok("releases", f"{len(result.releases)} release(s) valid")]


def check_social(settings: Settings) -> list[Finding]:
    """Every enabled social account opens and its credentials verify (a login or a read; nothing is posted)."""
    from pressroom.social import open_networks

    found = []
    for network in open_networks(settings=settings):
        name = f"social {network.account.network}/{network.account.account}"
        try:
            found.append(_ok(name, f"credentials work: {network.verify()}"))
        except PressroomError as exc:
            found.append(_from_error(name, exc))
        finally:
            network.close()
    return found or [_ok("social", "no account enabled")]


def check_database(settings: Settings) -> list[Finding]:
    """The database answers and its schema is at the newest migration."""
    from pressroom.db import engine_for

    try:
        engine_for(settings)
    except PressroomError as exc:
        return [_from_error("database", exc)]
    return [_ok("database", "reachable, migrations applied")]


def check_consent(settings: Settings) -> list[Finding]:
    """The consent evidence is whole: every event sealed and chained (:func:`pressroom.audience.check_consent`)."""
    from pressroom.audience import check_consent as verify

    report = verify(settings=settings)
    if report.ok:
        return [_ok("consent", f"{report.events} events sealed in one chain ({report.erased} removed by erasures, each recorded)")]
    return [_problem("consent", "; ".join(report.problems[:3]),
                     "the evidence was changed outside Pressroom: restore consent_events from a backup and find out who did it")]


def run_doctor(*, settings: Settings, checks: list[Callable[[Settings], list[Finding]]] | None = None) -> list[Finding]:
    """Run every check (or ``checks``) and return all findings; one failing check never stops the others."""
    found: list[Finding] = []
    for check in checks or CHECKS:
        name = check.__name__.removeprefix("check_")
        try:
            found += check(settings)
        except PressroomError as exc:
            found.append(_from_error(name, exc))
        except (OSError, socket.timeout) as exc:
            found.append(_problem(name, str(exc), "see the message above"))
    return found


CHECKS: list[Callable[[Settings], list[Finding]]] = [
    check_settings,
    check_releases,
    check_templates,
    check_dkim,
    check_smtp,
    check_social,
    check_database,
    check_consent,
]
