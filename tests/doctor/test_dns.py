"""`pressroom doctor --dns` against a real DNS server on loopback serving the zones of tests/data/dns.

One zone passes everything; each other zone has one fault, and must give its finding and a hint
an IT person can act on.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from pressroom.cli import app
from pressroom.doctor import run_doctor
from pressroom.doctor.dns import Dns, check_dns, organizational_domain
from tests.conftest import Project
from tests.dns_support import ZONES, dns_server

KEY = ZONES / "dkim-press.pem"
RELAY = "192.0.2.25"


@pytest.fixture(scope="module")
def nameserver() -> Iterator[str]:
    with dns_server() as address:
        yield address


def env_for(domain: str, nameserver: str, **extra: str) -> dict[str, str]:
    return {
        "PRESSROOM_EMAIL__SENDER": f"press@{domain}",
        "PRESSROOM_DKIM__DOMAIN": domain,
        "PRESSROOM_DKIM__SELECTOR": "press",
        "PRESSROOM_DKIM__KEY_FILE": str(KEY),
        "PRESSROOM_DOCTOR__NAMESERVER": nameserver,
        "PRESSROOM_DOCTOR__RELAY_ADDRESSES": f'["{RELAY}"]',
        **extra,
    }


def test_the_passing_zone_passes_every_check(project: Project, nameserver: str) -> None:
    findings = check_dns(project.settings(**env_for("passing.example", nameserver)))
    assert [f.check for f in findings] == ["spf", "dkim-dns", "dmarc", "alignment", "reverse-dns", "mta-sts", "tls-rpt", "bimi"]
    assert all(f.ok and not f.advice for f in findings), "\n".join(f.line() for f in findings)
    lines = "\n".join(f.line() for f in findings)
    assert "allows 192.0.2.25 (1 of 10 DNS lookups)" in lines
    assert "publishes the public half of the key Pressroom signs with (RSA, 2048 bits)" in lines
    assert "p=quarantine, reports to dmarc-reports@passing.example" in lines
    assert "192.0.2.25 -> mail.passing.example -> 192.0.2.25" in lines


FAULTS = [
    # (zone, extra settings, the check that fails, what it says, what its hint says)
    ("nospf.example", {}, "spf", "nospf.example publishes no SPF record",
     'add a TXT record at nospf.example: "v=spf1 ip4:192.0.2.25 -all"'),
    ("spf11.example", {}, "spf", "needs 11 DNS lookups; receivers stop at 10",
     "replace include:, a and mx terms by the ip4:/ip6: ranges"),
    ("badkey.example", {}, "dkim-dns", "the key published at press._domainkey.badkey.example is not the one Pressroom signs with",
     "publish the public half of [dkim] key_file at press._domainkey.badkey.example: \"v=DKIM1; k=rsa; p=MIIB"),
    ("nonerua.example", {}, "dmarc", "has no rua: nobody receives the daily reports",
     "add rua=mailto:dmarc-reports@nonerua.example"),
    ("pct.example", {}, "dmarc", "uses pct=25, a tag RFC 9989 (2026) removed",
     "remove pct=25 from the record; to try a policy without enforcing it, add t=y instead"),
    ("misaligned.example",
     {"PRESSROOM_DKIM__DOMAIN": "relay.example", "PRESSROOM_EMAIL__RETURN_PATH": "bounces@relay.example",
      "PRESSROOM_DOCTOR__RELAY_ADDRESSES": '["198.51.100.10"]'},
     "alignment", "DKIM d=relay.example not aligned (relaxed), bounce domain relay.example not aligned (relaxed): DMARC fails",
     'set [dkim] domain = "misaligned.example"'),
]


@pytest.mark.parametrize(("zone", "extra", "check", "message", "hint"), FAULTS, ids=[f[0] for f in FAULTS])
def test_each_fault_gives_its_finding_and_hint(project: Project, nameserver: str, zone: str, extra: dict, check: str,
                                               message: str, hint: str) -> None:
    findings = check_dns(project.settings(**env_for(zone, nameserver, **extra)))
    problems = [f for f in findings if not f.ok]
    assert [f.check for f in problems] == [check], "\n".join(f.line() for f in findings)
    assert message in problems[0].message and hint in problems[0].hint, problems[0].line()


def test_p_none_is_advice_beside_the_missing_rua(project: Project, nameserver: str) -> None:
    findings = check_dns(project.settings(**env_for("nonerua.example", nameserver)))
    [none] = [f for f in findings if f.advice and f.check == "dmarc"]
    assert "p=none asks receivers to do nothing" in none.message and "set p=quarantine" in none.hint


def test_a_subdomain_finds_its_policy_by_the_tree_walk_and_aligns(project: Project, nameserver: str) -> None:
    settings = project.settings(**env_for("passing.example", nameserver, PRESSROOM_EMAIL__SENDER="press@news.passing.example"))
    dns = Dns.from_settings(settings)
    assert organizational_domain("news.passing.example", dns) == "passing.example"
    assert organizational_domain("relay.example", dns) == "relay.example"
    findings = {f.check: f for f in check_dns(settings)}
    assert "_dmarc.passing.example (found by the RFC 9989 tree walk)" in findings["dmarc"].message
    assert findings["alignment"].ok and "DKIM d=passing.example aligned (relaxed)" in findings["alignment"].message


def test_a_resolver_that_does_not_answer_is_one_finding(project: Project) -> None:
    from tests._delivery import free_port

    settings = project.settings(**env_for("passing.example", f"127.0.0.1:{free_port()}", PRESSROOM_DOCTOR__TIMEOUT="1"))
    [finding] = check_dns(settings)
    assert (finding.check, finding.ok) == ("dns", False)
    assert "did not answer" in finding.message and "[doctor] nameserver" in finding.hint


def test_an_unknown_relay_address_is_advice_not_a_failure(project: Project, nameserver: str) -> None:
    findings = check_dns(project.settings(**env_for("passing.example", nameserver, PRESSROOM_DOCTOR__RELAY_ADDRESSES="[]")))
    assert all(f.ok for f in findings)
    assert any(f.advice and "relay_addresses" in f.hint for f in findings if f.check == "reverse-dns")


def test_plain_doctor_reads_dns_when_a_signing_domain_is_set(project: Project, nameserver: str) -> None:
    from pressroom.doctor import check_dns_when_configured

    [skipped] = check_dns_when_configured(project.settings())
    assert skipped.ok and "--dns" in skipped.message
    found = check_dns_when_configured(project.settings(**env_for("nospf.example", nameserver)))
    assert any(f.check == "spf" and not f.ok for f in found)


@pytest.mark.parametrize(("zone", "code"), [("passing.example", 0), ("nospf.example", 1), ("pct.example", 1)])
def test_doctor_dns_command(project: Project, nameserver: str, monkeypatch, zone: str, code: int) -> None:
    monkeypatch.chdir(project.root)
    for name, value in env_for(zone, nameserver).items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["doctor", "--dns"])
    assert result.exit_code == code, result.output
    assert f"ok       dkim-dns: press._domainkey.{zone} publishes the public half" in result.output
    assert ("no problems found" in result.output) == (code == 0)
    assert "smtp:" not in result.output and "database:" not in result.output  # --dns reads DNS only


def test_run_doctor_keeps_going_when_dns_fails(project: Project) -> None:
    from pressroom.doctor import check_database, check_dns_when_configured
    from tests._delivery import free_port

    settings = project.settings(**env_for("passing.example", f"127.0.0.1:{free_port()}", PRESSROOM_DOCTOR__TIMEOUT="1"))
    findings = run_doctor(settings=settings, checks=[check_dns_when_configured, check_database])
    assert [f.check for f in findings] == ["dns", "database"] and findings[1].ok
