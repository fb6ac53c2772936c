"""A real authoritative DNS server on loopback (dnslib's), serving the test zones of tests/data/dns over UDP and TCP.

``pressroom doctor --dns`` asks it as it would ask any resolver: ``[doctor] nameserver = "127.0.0.1:<port>"``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dnslib import QTYPE, RCODE, RR, DNSLabel, DNSRecord
from dnslib.server import DNSLogger, DNSServer

ZONES = Path(__file__).parent / "data" / "dns"


class ZoneResolver:
    """Answers from zone files: the records of the name and type asked, NOERROR with none for a name
    that exists (or has names below it), NXDOMAIN for any other name, as an authoritative server does."""

    def __init__(self, files: list[Path]) -> None:
        self.records: list[RR] = []
        for file in files:
            self.records += RR.fromZone(file.read_text(encoding="utf-8"))
        self.names = {record.rname for record in self.records}

    def _exists(self, name: DNSLabel) -> bool:
        return any(known == name or known.matchSuffix(name) for known in self.names)

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        question = request.q
        for record in self.records:
            if record.rname == question.qname and question.qtype in (record.rtype, QTYPE.ANY):
                reply.add_answer(record)
        if not reply.rr and not self._exists(question.qname):
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


def _free_udp_and_tcp_port() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")


@contextmanager
def dns_server(files: list[Path] | None = None) -> Iterator[str]:
    """Serve ``files`` (default: every zone in tests/data/dns) until the block ends; yields ``127.0.0.1:<port>``."""
    resolver = ZoneResolver(files or sorted(ZONES.glob("*.zone")))
    logger = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    port = _free_udp_and_tcp_port()
    servers = [DNSServer(resolver, address="127.0.0.1", port=port, tcp=tcp, logger=logger) for tcp in (False, True)]
    for server in servers:
        server.start_thread()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        for server in servers:
            server.stop()
            server.server.server_close()
