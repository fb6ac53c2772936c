"""``pressroom doctor --dns``: what the big mailbox providers read in the sending domain's DNS, each with a hint.

checkdmarc (6.x) reads and validates the records: SPF (syntax, the 10-lookup limit of RFC 7208),
DMARC (RFC 9989 syntax, its tree walk to the policy record, its warnings on the removed tags),
MTA-STS, TLS-RPT and BIMI. What it does not do is done here, with dnspython: whether SPF allows
the addresses mail leaves from, whether the DKIM key in DNS is the one Pressroom signs with,
the Organizational Domains of the From, DKIM and bounce domains by RFC 9989's tree walk (no
Public Suffix List) and so DMARC alignment, the meaning of the removed tags and of ``t=y``, and
forward-confirmed reverse DNS. This module and nothing else imports checkdmarc and dnspython.
"""

from __future__ import annotations

import base64
import ipaddress
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pressroom.doctor.findings import Finding, advice, ok, problem
from pressroom.errors import PressroomError
from pressroom.settings import Settings

__all__ = ["DNS_CHECKS", "check_dns", "organizational_domain"]

_REMOVED_TAGS = {
    "pct": "receivers that follow RFC 9989 ignore it and apply the policy to all failing mail, older ones to {value}%",
    "rf": "failure reports now always come in one format",
    "ri": "aggregate reports now come once a day",
}
_TREE_WALK_QUERIES = 8  # RFC 9989 section 4.10: at most eight DMARC queries for one name


class Unanswered(Exception):
    """The resolver gave no answer (timeout, SERVFAIL, refused): nothing can be said about the record."""


@dataclass
class Dns:
    """The configured resolver, for dnspython and checkdmarc alike."""

    resolver: Any  # dns.resolver.Resolver
    nameservers: list[Any] | None  # for checkdmarc: the same server, or None for the system's
    timeout: float
    where: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Dns:
        import dns.nameserver
        import dns.resolver

        address = settings.doctor.resolver_address
        timeout = settings.doctor.timeout
        if address is None:
            resolver = dns.resolver.Resolver()
            nameservers = None
            where = "the system's resolver (" + ", ".join(str(ns) for ns in resolver.nameservers) + ")"
        else:
            resolver = dns.resolver.Resolver(configure=False)
            server = dns.nameserver.Do53Nameserver(address[0], address[1])
            resolver.nameservers = [server]
            nameservers = [server]
            where = f"the resolver {settings.doctor.nameserver}"
        resolver.lifetime = timeout
        resolver.timeout = min(timeout, 2.0)
        return cls(resolver=resolver, nameservers=nameservers, timeout=timeout, where=where)

    def query(self, name: str, kind: str) -> list[Any]:
        """The records of ``kind`` at ``name``; ``[]`` when there are none. Raises Unanswered."""
        import dns.exception
        import dns.resolver

        try:
            return list(self.resolver.resolve(name, kind, raise_on_no_answer=False))
        except dns.resolver.NXDOMAIN:
            return []
        except (dns.exception.DNSException, OSError) as exc:
            raise Unanswered(f"{self.where} did not answer for {name} {kind}: {exc}") from None

    def txt(self, name: str) -> list[str]:
        return [b"".join(record.strings).decode("utf-8", "replace") for record in self.query(name, "TXT")]

    def addresses(self, name: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        return {ipaddress.ip_address(record.address) for kind in ("A", "AAAA") for record in self.query(name, kind)}

    def checkdmarc(self) -> dict[str, Any]:
        return {"nameservers": self.nameservers, "timeout": self.timeout, "retries": 0}


def _checkdmarc() -> Any:
    with warnings.catch_warnings():
        # dnspython's DNSSEC module imports DSA, which cryptography calls deprecated, on every import.
        warnings.simplefilter("ignore")
        import checkdmarc.bimi
        import checkdmarc.dmarc
        import checkdmarc.mta_sts
        import checkdmarc.smtp_tls_reporting
        import checkdmarc.spf
        import checkdmarc.utils
    return checkdmarc


def _domain(address: str | None) -> str:
    return (address or "").rpartition("@")[2].lower().rstrip(".")


def _tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        name, equals, value = part.partition("=")
        if equals:
            tags.setdefault(name.strip().lower(), value.strip())
    return tags


def _dmarc_record(dns: Dns, name: str) -> str | None:
    records = [r for r in dns.txt(f"_dmarc.{name}") if r.strip().lower().replace(" ", "").startswith("v=dmarc1")]
    return records[0] if len(records) == 1 else None  # two records count as none (RFC 9989 section 4.10)


def organizational_domain(name: str, dns: Dns) -> str:
    """The Organizational Domain of ``name`` by RFC 9989's DNS tree walk (section 4.10), not the PSL.

    From the name toward the root (at most eight queries): a record with ``psd=n`` names its own
    domain; one with ``psd=y`` (other than the name's own) the domain one label below it; else the
    record with the fewest labels. Without any record the name is its own Organizational Domain.
    """
    labels = name.lower().rstrip(".").split(".")
    names = [".".join(labels[i:]) for i in range(len(labels))]
    if len(names) > _TREE_WALK_QUERIES:
        names = names[:1] + names[-(_TREE_WALK_QUERIES - 1):]
    found = []
    for index, candidate in enumerate(names):
        record = _dmarc_record(dns, candidate)
        if record is None:
            continue
        psd = _tags(record).get("psd", "").lower()
        if psd == "n":
            return candidate
        if psd == "y" and index > 0:
            return ".".join(labels[len(labels) - len(candidate.split(".")) - 1:])
        found.append(candidate)
    return found[-1] if found else ".".join(labels)


def _aligned(one: str, other: str, mode: str, dns: Dns) -> bool:
    if one == other:
        return True
    return mode != "s" and organizational_domain(one, dns) == organizational_domain(other, dns)


def _relays(settings: Settings) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    if settings.doctor.relay_addresses:
        return [ipaddress.ip_address(a) for a in settings.doctor.relay_addresses]
    try:
        host = ipaddress.ip_address(settings.smtp.host)
    except ValueError:
        return []
    return [host] if host.is_global else []


# ----------------------------------------------------------------------------- SPF


def _spf_allows(ip: Any, parsed: dict, domain: str, dns: Dns, depth: int = 0) -> bool:
    """Whether checkdmarc's parsed SPF record of ``domain`` passes ``ip`` (ip4, ip6, a, mx, include, redirect)."""
    if depth > 10 or not parsed:
        return False
    for term in parsed.get("mechanisms", []):
        kind, value = term.get("mechanism"), (term.get("value") or domain).split("/")[0]
        if kind in ("ip4", "ip6"):
            hit = ip in ipaddress.ip_network(term["value"], strict=False)
        elif kind == "a":
            hit = ip in dns.addresses(value)
        elif kind == "mx":
            hit = any(ip in dns.addresses(str(mx.exchange).rstrip(".")) for mx in dns.query(value, "MX"))
        elif kind == "include":
            hit = _spf_allows(ip, term.get("parsed") or {}, value, dns, depth + 1)
        else:
            continue  # exists and ptr: not followed; such a record is reported as not covering
        if hit:
            return term.get("action") == "pass"
    redirect = parsed.get("redirect")
    if isinstance(redirect, dict):
        return _spf_allows(ip, redirect.get("parsed") or {}, redirect.get("domain", domain), dns, depth + 1)
    return False


def check_spf(settings: Settings, dns: Dns) -> list[Finding]:
    """The bounce (envelope) domain's SPF record: there, valid, within 10 lookups, allowing the relay."""
    domain = _domain(settings.email.return_path or settings.email.sender)
    relays = _relays(settings)
    example = " ".join(f"ip{r.version}:{r}" for r in relays) or "ip4:<your server's address>"
    result = _checkdmarc().spf.check_spf(domain, **dns.checkdmarc())
    record = result.get("record")
    if not record:
        return [problem("spf", f"{domain} publishes no SPF record: receivers cannot tell which servers may send its mail,"
                        " and Gmail, Yahoo and Outlook.com junk or reject bulk mail that passes neither SPF nor DKIM",
                        f'add a TXT record at {domain}: "v=spf1 {example} -all" (list every service that sends'
                        " mail as this domain, for example include:<your provider's SPF>)")]
    lookups = result.get("dns_lookups") or 0
    if lookups > 10:
        return [problem("spf", f"the SPF record of {domain} needs {lookups} DNS lookups; receivers stop at 10 and"
                        " then treat SPF as failed (permerror) for all of its mail",
                        "replace include:, a and mx terms by the ip4:/ip6: ranges they stand for, or remove the"
                        " includes of services that no longer send for you, until checkdmarc counts at most 10")]
    if not result.get("valid", False):
        return [problem("spf", f"the SPF record of {domain} is not valid: {result.get('error')}",
                        f"correct the TXT record at {domain} (now: {record!r})")]
    found = [advice("spf", f"{domain}: {text}", "checkdmarc's remark on the SPF record") for text in result.get("warnings", [])]
    if not relays:
        found.append(advice("spf", f"{domain}: {record!r} is valid ({lookups} of 10 DNS lookups); whether it allows the"
                            " server your mail leaves from was not checked",
                            "set [doctor] relay_addresses to the public IP addresses your mail leaves from"))
        return found
    missing = [str(r) for r in relays if not _spf_allows(r, result.get("parsed") or {}, domain, dns)]
    if missing:
        found.append(problem("spf", f"the SPF record of {domain} does not allow {', '.join(missing)}, the address your"
                             " mail leaves from: receivers see SPF fail", f"add ip4:{missing[0]} (or your relay's include:)"
                             f" before the all term of the TXT record at {domain}"))
    else:
        found.append(ok("spf", f"{domain}: {record!r} allows {', '.join(map(str, relays))} ({lookups} of 10 DNS lookups)"))
    return found


# ----------------------------------------------------------------------------- DKIM


def _public_numbers(tag_p: str) -> tuple[int, int] | None:
    import dkim.crypto

    try:
        key = dkim.crypto.parse_public_key(base64.b64decode(tag_p))
    except (ValueError, TypeError, dkim.crypto.UnparsableKeyError):
        return None
    return key["modulus"], key["publicExponent"]


def _der(tag: int, data: bytes) -> bytes:
    size = len(data)
    length = bytes([size]) if size < 128 else bytes([0x80 | ((size.bit_length() + 7) // 8)]) + size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag]) + length + data


def _expected_record(private_pem: bytes) -> str:
    """The TXT record that publishes the public half of ``private_pem`` (RSA), ready to paste into the zone."""
    from dkim.crypto import parse_pem_private_key

    def integer(n: int) -> bytes:
        return _der(0x02, n.to_bytes((n.bit_length() + 8) // 8, "big"))

    key = parse_pem_private_key(private_pem)
    public = _der(0x30, integer(key["modulus"]) + integer(key["publicExponent"]))
    algorithm = _der(0x30, _der(0x06, _RSA_ENCRYPTION) + _der(0x05, b""))
    spki = _der(0x30, algorithm + _der(0x03, b"\x00" + public))
    return f"v=DKIM1; k=rsa; p={base64.b64encode(spki).decode()}"


_RSA_ENCRYPTION = bytes.fromhex("2a864886f70d010101")  # OID 1.2.840.113549.1.1.1


def check_dkim_dns(settings: Settings, dns: Dns) -> list[Finding]:
    """The selector's public key in DNS is the public half of the private key Pressroom signs with."""
    import dkim.crypto

    from pressroom.mail.message import DkimKey

    try:
        key = DkimKey.from_settings(settings)
    except PressroomError as exc:
        return [problem("dkim-dns", exc.message, exc.hint)]
    if key is None:
        return [advice("dkim-dns", "Pressroom does not sign its mail ([dkim] is not set): DMARC then rests on SPF"
                       " alone, which forwarding breaks", "create a key pair, publish its public half at"
                       " <selector>._domainkey.<your domain> and set [dkim] domain, selector and key_file")]
    name = f"{key.selector.decode()}._domainkey.{key.domain.decode()}"
    records = [r for r in dns.txt(name) if "p=" in r]
    private = dkim.crypto.parse_pem_private_key(key.private_key)
    expected = _expected_record(key.private_key)
    if not records:
        return [problem("dkim-dns", f"no DKIM key is published at {name}: every signature Pressroom makes fails",
                        f'add a TXT record at {name}: "{expected}"')]
    tags = _tags(records[0])
    if not tags.get("p"):
        return [problem("dkim-dns", f"the DKIM key at {name} is revoked (empty p=)", f'publish "{expected}" at {name}')]
    if tags.get("k", "rsa").lower() != "rsa":
        return [advice("dkim-dns", f"{name} publishes a {tags['k']} key; Pressroom signs with RSA",
                       "publish the RSA key Pressroom signs with under another selector and set [dkim] selector to it")]
    published = _public_numbers(tags["p"])
    if published != (private["modulus"], private["publicExponent"]):
        return [problem("dkim-dns", f"the key published at {name} is not the one Pressroom signs with: receivers see every"
                        " signature fail", f'publish the public half of [dkim] key_file at {name}: "{expected}" (or point'
                        " key_file at the private key that belongs to the published one)")]
    bits = private["modulus"].bit_length()
    if bits < 2048:
        return [advice("dkim-dns", f"{name} matches the signing key, which has {bits} bits",
                       "Gmail and Yahoo ask for 2048-bit keys: make a new key under a new selector")]
    return [ok("dkim-dns", f"{name} publishes the public half of the key Pressroom signs with (RSA, {bits} bits)")]


# ----------------------------------------------------------------------------- DMARC


def check_dmarc(settings: Settings, dns: Dns) -> list[Finding]:
    """The From domain's DMARC policy (RFC 9989): found by the tree walk, enforced, reported, and aligned."""
    from_domain = _domain(settings.email.sender)
    result = _checkdmarc().dmarc.check_dmarc(from_domain, **dns.checkdmarc())
    record = result.get("record")
    if not record:
        return [problem("dmarc", f"no DMARC record for {from_domain} or its parent domains: Gmail, Yahoo and Outlook.com"
                        " junk or reject bulk mail without one", f'add a TXT record at _dmarc.{from_domain}: "v=DMARC1;'
                        f' p=none; rua=mailto:dmarc-reports@{from_domain}", then move p to quarantine once the reports'
                        " show only your own servers")]
    location = result.get("location") or from_domain
    where = f"_dmarc.{location}" + ("" if location == from_domain else " (found by the RFC 9989 tree walk)")
    if not result.get("valid", False):
        return [problem("dmarc", f"the DMARC record at {where} is not valid: {result.get('error')}",
                        f"correct the TXT record at _dmarc.{location} (now: {record!r})")]
    tags = result.get("tags", {})
    policy = tags.get("p", {}).get("value", "none")
    raw = _tags(record)
    found = _removed_tags(where, raw)
    reports = [uri.get("address") or uri.get("uri", "") for uri in tags.get("rua", {}).get("value", []) or []]
    if not reports:
        found.append(problem("dmarc", f"the DMARC record at {where} has no rua: nobody receives the daily reports that"
                             " show which servers send as your domain and whether they pass",
                             f"add rua=mailto:dmarc-reports@{from_domain} (a mailbox someone reads, or a DMARC report service)"))
    testing = tags.get("t", {}).get("value", "n") == "y" or raw.get("t", "").lower() == "y"
    found += _policy_advice(where, policy=policy, testing=testing)
    found += _remarks(where, result.get("warnings", []))
    if not any(not f.ok for f in found):
        found.insert(0, ok("dmarc", f"{where}: p={policy}{' (test mode)' if testing else ''},"
                           f" reports to {', '.join(reports)}"))
    found += _alignment(settings, dns, from_domain, tags)
    return found


def _policy_advice(where: str, *, policy: str, testing: bool) -> list[Finding]:
    """A policy that asks receivers to do nothing, or one in test mode, is advice: fine while reading the reports."""
    if policy == "none":
        return [advice("dmarc", f"{where}: p=none asks receivers to do nothing with mail that fails DMARC",
                       "fine while you read the reports; once they show only your own servers, set p=quarantine")]
    if testing:
        return [advice("dmarc", f"{where}: t=y puts p={policy} in test mode (RFC 9989): receivers do not apply it",
                       "remove t=y when the reports show all your mail passing")]
    return []


def _removed_tags(where: str, raw: dict[str, str]) -> list[Finding]:
    """A problem for each tag of the record that RFC 9989 removed, with what it meant."""
    return [
        problem("dmarc", f"the DMARC record at {where} uses {tag}={raw[tag]}, a tag RFC 9989 (2026)"
                f" removed: {meaning.format(value=raw[tag])}", f"remove {tag}={raw[tag]} from the record"
                + ("; to try a policy without enforcing it, add t=y instead" if tag == "pct" else ""))
        for tag, meaning in _REMOVED_TAGS.items()
        if tag in raw
    ]


def _remarks(where: str, warnings: list[str]) -> list[Finding]:
    """checkdmarc's other remarks on the record (what doctor says itself, about removed tags, p=none and rua, left out)."""
    said = ("p tag value of none", "rua tag", *(f"the {tag} tag" for tag in _REMOVED_TAGS))
    return [advice("dmarc", f"{where}: {text}", "checkdmarc's remark on the DMARC record")
            for text in warnings if not any(phrase in text for phrase in said)]


def _alignment(settings: Settings, dns: Dns, from_domain: str, tags: dict) -> list[Finding]:
    adkim = tags.get("adkim", {}).get("value", "r")
    aspf = tags.get("aspf", {}).get("value", "r")
    organization = organizational_domain(from_domain, dns)
    envelope = _domain(settings.email.return_path or settings.email.sender)
    dkim_domain = (settings.dkim.domain or "").lower().rstrip(".")
    spf_ok = _aligned(envelope, from_domain, aspf, dns)
    dkim_ok = bool(dkim_domain) and _aligned(dkim_domain, from_domain, adkim, dns)
    mode = {"r": "relaxed", "s": "strict"}
    said = (f"From {from_domain} (Organizational Domain {organization} by the RFC 9989 tree walk):"
            f" DKIM d={dkim_domain or '(not signed)'} {'aligned' if dkim_ok else 'not aligned'} ({mode.get(adkim, adkim)}),"
            f" bounce domain {envelope} {'aligned' if spf_ok else 'not aligned'} ({mode.get(aspf, aspf)})")
    if not (dkim_ok or spf_ok):
        return [problem("alignment", said + ": DMARC fails for every email even when SPF and DKIM pass",
                        f'set [dkim] domain = "{from_domain}" with a key published under {from_domain}, or'
                        f" email.return_path to an address at {from_domain} whose SPF allows your relay")]
    if not dkim_ok:
        return [advice("alignment", said + ": DMARC rests on SPF alone, which forwarding breaks",
                       f"sign with a key of {from_domain} ([dkim] domain)")]
    return [ok("alignment", said)]


# ----------------------------------------------------------------------------- advice and reports


def check_transport_security(settings: Settings, dns: Dns) -> list[Finding]:
    """MTA-STS and TLS-RPT for the From domain: advice, never a failure."""
    domain = _domain(settings.email.sender)
    lib = _checkdmarc()
    found = []
    try:
        lib.mta_sts.query_mta_sts_record(domain, **dns.checkdmarc())
        found.append(ok("mta-sts", f"_mta-sts.{domain} is published"))
    except lib.mta_sts.MTASTSError as exc:
        found.append(advice("mta-sts", f"{domain}: no usable MTA-STS record ({exc})", "optional: MTA-STS makes"
                            " servers that send to you insist on TLS; publish _mta-sts TXT and the policy file at"
                            f" https://mta-sts.{domain}/.well-known/mta-sts.txt"))
    try:
        lib.smtp_tls_reporting.query_smtp_tls_reporting_record(domain, **dns.checkdmarc())
        found.append(ok("tls-rpt", f"_smtp._tls.{domain} is published"))
    except lib.smtp_tls_reporting.SMTPTLSReportingError as exc:
        found.append(advice("tls-rpt", f"{domain}: no TLS-RPT record ({exc})", f'optional: a TXT record at _smtp._tls.{domain}:'
                            f' "v=TLSRPTv1; rua=mailto:tls-reports@{domain}" brings reports of failed TLS deliveries'))
    return found


def check_reverse_dns(settings: Settings, dns: Dns) -> list[Finding]:
    """Each relay address has a PTR name whose A/AAAA records lead back to it (forward-confirmed)."""
    from dns.reversename import from_address

    relays = _relays(settings)
    if not relays:
        return [advice("reverse-dns", "the address your mail leaves from is not known, so its reverse DNS was not checked",
                       "set [doctor] relay_addresses to the public IP addresses of your mail server or relay")]
    found = []
    for relay in relays:
        names = [str(r.target).rstrip(".") for r in dns.query(from_address(str(relay)).to_text(), "PTR")]
        confirmed = [name for name in names if relay in dns.addresses(name)]
        if confirmed:
            found.append(ok("reverse-dns", f"{relay} -> {confirmed[0]} -> {relay}"))
        elif names:
            found.append(problem("reverse-dns", f"{relay} is named {names[0]}, but {names[0]} does not lead back to {relay}:"
                                 " Gmail and Outlook.com junk or refuse mail from such addresses",
                                 f"add an A record {names[0]} -> {relay}, or have the PTR name a host that has one"))
        else:
            found.append(problem("reverse-dns", f"{relay} has no reverse DNS name: Gmail and Outlook.com junk or refuse"
                                 " mail from addresses without one", f"ask whoever runs that server (your host or relay"
                                 f" provider) for a PTR record for {relay} naming a host whose A record is {relay}"))
    return found


def check_bimi(settings: Settings, dns: Dns) -> list[Finding]:
    """BIMI is reported, never asked for."""
    domain = _domain(settings.email.sender)
    lib = _checkdmarc()
    try:
        result = lib.bimi.query_bimi_record(domain, **dns.checkdmarc())
    except lib.bimi.BIMIError:
        return [ok("bimi", f"none at default._bimi.{domain} (optional: a logo beside your mail in some inboxes)")]
    return [ok("bimi", f"default._bimi.{result.get('location') or domain}: {result.get('record')!r} (reported only)")]


DNS_CHECKS: list[Callable[[Settings, Dns], list[Finding]]] = [
    check_spf, check_dkim_dns, check_dmarc, check_reverse_dns, check_transport_security, check_bimi,
]


def check_dns(settings: Settings) -> list[Finding]:
    """Every DNS check for the From domain; a resolver that does not answer is one finding, not six."""
    lib = _checkdmarc()
    lib.utils.DNS_CACHE.clear()  # a record fixed a minute ago must be read as it is now
    dns = Dns.from_settings(settings)
    domain = _domain(settings.email.sender)
    try:
        dns.query(domain, "SOA")
    except Unanswered as exc:
        return [problem("dns", str(exc), "set [doctor] nameserver to a resolver this machine can reach")]
    found: list[Finding] = []
    for check in DNS_CHECKS:
        name = check.__name__.removeprefix("check_").replace("_", "-")
        try:
            found += check(settings, dns)
        except Unanswered as exc:
            found.append(problem(name, str(exc), "run it again; if it persists, check [doctor] nameserver"))
    return found
