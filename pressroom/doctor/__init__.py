"""``pressroom doctor``: everything that can be checked before a real send, each problem with a hint.

The checks talk to the real services the settings name (SMTP login, social token verification,
the database) but never send anything. Secrets are used, never printed.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Callable
from email.message import Message
from pathlib import Path

from pressroom.doctor.findings import Finding, advice, ok, problem
from pressroom.errors import PressroomError
from pressroom.settings import Settings

__all__ = ["CHECKS", "DNS_CHECKS", "Finding", "message_findings", "run_doctor"]

_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


_ok = ok
_problem = problem


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


def check_message_headers(settings: Settings) -> list[Finding]:
    """A composed release email carries what the providers read: Feedback-ID, CFBL-Address when a complaints
    address is set (RFC 9477), and a DKIM signature that covers them."""
    from pressroom.mail import Recipient, compose_release
    from pressroom.releases import load_releases

    releases = load_releases(settings).releases
    if not releases:
        return [ok("headers", "no valid release to compose yet")]
    try:
        composed = compose_release(release=releases[0], settings=settings)
        raw = composed.message(Recipient(address=f"reader@{_domain_of(settings.email.sender)}",
                                         unsubscribe_url=f"{settings.site.base_url}/unsubscribe"))
    except PressroomError as exc:
        return [_from_error("headers", exc)]
    return message_findings(raw, settings=settings)


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2] or "example.org"


def message_findings(raw: bytes, *, settings: Settings) -> list[Finding]:
    """What a receiver reads in one composed bulk message's headers (the pure part of :func:`check_message_headers`)."""
    from email import message_from_bytes

    message = message_from_bytes(raw)
    signature = message.get("DKIM-Signature", "")
    wanted = ["Feedback-ID"] + (["CFBL-Address", "CFBL-Feedback-ID"] if settings.email.complaints_address else [])
    found = _feedback_headers(message, wanted=wanted, signature=signature)
    if not signature:
        found.append(advice("headers", "the release email is not DKIM-signed, so providers trust none of its headers",
                            "set [dkim] domain, selector and key_file (pressroom doctor --dns checks the published key)"))
    if not settings.email.complaints_address:
        found.append(advice("headers", "no CFBL-Address: providers that offer a complaint feedback loop (RFC 9477) have"
                            " nowhere to send complaints", "set [email] complaints_address to a mailbox that"
                            " `pressroom deliveries bounces` reads, at the domain that signs the mail"))
    if not any(not f.ok for f in found):
        present = ", ".join(h for h in wanted if h in message)
        found.insert(0, ok("headers", f"the release email carries {present}" + (" under its DKIM signature" if signature else "")))
    return found


def _feedback_headers(message: Message, *, wanted: list[str], signature: str) -> list[Finding]:
    """A problem for each wanted header that is missing, or present but outside the DKIM signature."""
    signed = {name.strip().lower() for name in (re.search(r"\bh=([^;]+)", re.sub(r"\s+", "", signature)) or [None, ""])[1].split(":") if name}
    found = []
    for header in wanted:
        if header not in message:
            found.append(problem("headers", f"the release email has no {header} header",
                                 "this is a bug in the templates or message builder: report it"))
        elif signature and header.lower() not in signed:
            found.append(problem("headers", f"{header} is not covered by the DKIM signature: providers ignore it",
                                 "this is a bug in the message builder: report it"))
    return found


# RFC 2606 and RFC 6761 names, and the example domains of the shipped sample data.
_EXAMPLE = re.compile(r"@(?:[\w-]+\.)*(?:example\.(?:org|com|net|eu)|example|test|invalid)$", re.I)


def check_sample_data(settings: Settings) -> list[Finding]:
    """The fictional data a fresh clone ships with, still in place before going live."""
    found = []
    seed = settings.audience.seed_csv
    if seed is not None:
        path = seed if seed.is_absolute() else settings.root / seed
        found.append(_sample(settings, f"[audience] seed_csv = {str(seed)!r}: its fictional readers are imported into"
                          " an empty list", "remove the seed_csv line from pressroom.toml before importing your real list"))
        found += _seeded_readers(settings, path)
    example_org = settings.path("content") / "organisations" / "example-project.yaml"
    if example_org.exists():
        found.append(_sample(settings, f"{example_org} is the fictional example organisation",
                          "delete it (and its logo), or replace it with a real partner, and remove it from any release's issuers"))
    found += _example_settings(settings) + _example_contacts(settings, besides=example_org)
    return found or [ok("sample-data", "no sample subscribers, example organisation or example address in place")]


def _example_settings(settings: Settings) -> list[Finding]:
    """Example addresses left in pressroom.toml."""
    addresses = [("email.sender", settings.email.sender), ("email.reply_to", settings.email.reply_to),
                 ("email.return_path", settings.email.return_path), ("email.complaints_address", settings.email.complaints_address),
                 *[("email.editors", a) for a in settings.email.editors], *[("ops.notify", a) for a in settings.ops.notify]]
    return [_sample(settings, f"{where} = {address!r} is an example address", "write your real address in pressroom.toml")
            for where, address in addresses if address and _EXAMPLE.search(address)]


def _example_contacts(settings: Settings, *, besides: Path) -> list[Finding]:
    """Example addresses in the organisation files (``besides``, the example organisation, is reported whole)."""
    organisations = settings.path("content") / "organisations"
    found = []
    for file in sorted(organisations.glob("*.yaml")) if organisations.is_dir() else []:
        if file == besides:
            continue
        text = file.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            found_address = re.search(r"[\w.+-]+@[\w.-]+", line)
            if found_address and _EXAMPLE.search(found_address.group()):
                found.append(_sample(settings, f"{file}:{number}: {found_address.group()!r} is an example address",
                                  "write the organisation's real contact address"))
    return found


def _sample(settings: Settings, message: str, hint: str) -> Finding:
    """Sample data is a problem once mail goes to real people (the SMTP transport), advice before."""
    live = settings.email.enabled and settings.email.transport == "smtp"
    return (problem if live else advice)("sample-data", message, hint)


def _seeded_readers(settings: Settings, path: Path) -> list[Finding]:
    """Sample readers from the seed file who are in the database now."""
    import csv

    from pressroom.audience import Audience

    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            sample = [row.get("address", "") for row in csv.DictReader(handle)]
    except OSError:
        return []
    audience = Audience.from_settings(settings)
    present = [address for address in sample if address and audience.get(address=address) is not None]
    if not present:
        return []
    return [_sample(
        settings, f"{len(present)} fictional reader(s) from {path.name} are subscribers (e.g. {present[0]})",
        f"before the first real send, erase each one: `pressroom subscribers remove --erase {present[0]}`, and so on")]


def check_consent(settings: Settings) -> list[Finding]:
    """The consent evidence is whole: every event sealed and chained (:func:`pressroom.audience.check_consent`)."""
    from pressroom.audience import check_consent as verify

    report = verify(settings=settings)
    if report.ok:
        return [ok("consent", f"{report.events} events sealed in one chain ({report.erased} removed by erasures, each recorded)")]
    return [problem("consent", "; ".join(report.problems[:3]),
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
        except OSError as exc:  # a timeout included
            found.append(_problem(name, str(exc), "see the message above"))
    return found


def check_dns_when_configured(settings: Settings) -> list[Finding]:
    """The DNS checks of ``--dns``, when a signing domain is configured (``[dkim] domain``)."""
    if not settings.dkim.domain:
        return [ok("dns", "not read: no [dkim] domain is set (pressroom doctor --dns reads it for the sender's domain)")]
    from pressroom.doctor.dns import check_dns

    return check_dns(settings)


def check_dns(settings: Settings) -> list[Finding]:
    """SPF, DKIM, DMARC (RFC 9989), reverse DNS, MTA-STS, TLS-RPT and BIMI of the sending domain."""
    from pressroom.doctor.dns import check_dns as read_dns

    return read_dns(settings)


CHECKS: list[Callable[[Settings], list[Finding]]] = [
    check_settings,
    check_sample_data,
    check_releases,
    check_templates,
    check_message_headers,
    check_dkim,
    check_dns_when_configured,
    check_smtp,
    check_social,
    check_database,
    check_consent,
]
DNS_CHECKS: list[Callable[[Settings], list[Finding]]] = [check_dns]
