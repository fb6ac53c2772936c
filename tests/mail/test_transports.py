"""The SMTP transport against servers on loopback: aiosmtpd, and a small asyncio server of our own
for what aiosmtpd does not do (CHUNKING, and telling whether a client pipelined).

Each server is steered by the recipient's local part, so one window of envelopes can mix a
healthy message with a refused, a full, a stalled or a dropped one.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter, deque
from pathlib import Path

import pytest

from pressroom.errors import ConfigError
from pressroom.mail.transports import Envelope, SendResult, transport_for
from tests._delivery import SmtpServer, free_port

# Lines that need dot-stuffing, a lone dot among them: a server that unstuffs gets these bytes back.
BODY = b"Hello.\r\n.\r\n.leading dot\r\n..two dots\r\nlast line\r\n"
STALL_SECONDS = 3.0  # longer than the client's timeout below


def message(n: int, recipient: str) -> bytes:
    return (f"From: press@example.org\r\nTo: {recipient}\r\nSubject: News {n}\r\n"
            f"Message-ID: <{n}@example.org>\r\n\r\n").encode() + BODY


def envelopes(*recipients: str, start: int = 0) -> list[Envelope]:
    return [Envelope(id=start + n, sender="press@example.org", recipient=address, message=message(start + n, address),
                     key=f"news/{address}") for n, address in enumerate(recipients)]


def send(settings, *windows: list[Envelope]) -> list[list[SendResult]]:
    """Each window through one sender (one connection), in turn; the sender closes at the end."""

    async def run() -> list[list[SendResult]]:
        sender = await transport_for(settings=settings).connect()
        try:
            return [await sender.send(window) for window in windows]
        finally:
            await sender.close()

    return asyncio.run(run())


def statuses(results: list[SendResult]) -> list[str]:
    return [r.status for r in results]


class Scripted:
    """An aiosmtpd handler: the recipient's local part picks what goes wrong; counts what it took.

    ``unknown`` 550 5.1.1 and ``relay`` 550 5.7.1 at RCPT; ``full`` 552 5.2.2 at RCPT and ``stuffed``
    552 5.2.2 after the data; ``busy`` 451 after the data; ``gone`` hangs up at RCPT (before
    DATA); ``closing`` 421 at RCPT then hangs up; ``stall`` keeps the message and answers only
    after the client gave up; ``drop`` keeps it and hangs up without answering.
    """

    def __init__(self, *, pipelining: bool) -> None:
        self.pipelining = pipelining
        self.received: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(rcpt for rcpt, _ in self.received)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.partition("@")[0]
        if local == "unknown":
            return "550 5.1.1 No such user here"
        if local == "relay":
            return "550 5.7.1 Relaying denied"
        if local == "full":
            return "552 5.2.2 Mailbox full"
        if local == "gone":
            server.transport.close()
            return "250 2.1.5 never reaches the client"
        if local == "closing":
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.3.2 Closing the connection"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        rcpt = envelope.rcpt_tos[0]
        local = rcpt.partition("@")[0]
        if local == "busy":
            return "451 4.3.0 Try again later"
        if local == "stuffed":
            return "552 5.2.2 Mailbox over quota"
        with self.lock:
            self.received.append((rcpt, envelope.content))
        if local == "stall":
            await asyncio.sleep(STALL_SECONDS)
        if local == "drop":
            server.transport.close()
        return "250 2.0.0 OK queued"


@pytest.fixture(params=[True, False], ids=["pipelining", "one-at-a-time"])
def scripted(request: pytest.FixtureRequest):
    handler = Scripted(pipelining=request.param)
    with SmtpServer(handler) as server:
        server.handler = handler
        yield server


def settings_for(project, server, **env: str):
    return project.settings(**server.env(), PRESSROOM_SMTP__TIMEOUT="1", **env)


def test_every_message_arrives_once_with_its_bytes(project, scripted) -> None:
    everyone = [f"reader{i}@example.org" for i in range(25)]
    batch = envelopes(*everyone)
    results = send(settings_for(project, scripted), *(batch[i : i + 4] for i in range(0, 25, 4)))
    assert [r.status for window in results for r in window] == ["sent"] * 25
    assert [r.id for window in results for r in window] == list(range(25))
    assert all(r.response.startswith("250 2.0.0") for window in results for r in window)
    assert sorted(scripted.handler.received) == sorted((e.recipient, e.message) for e in batch)


def test_each_answer_decides_its_own_message_and_the_window_goes_on(project, scripted) -> None:
    window = envelopes("unknown@example.org", "a@example.org", "full@example.org", "b@example.org",
                       "busy@example.org", "c@example.org", "stuffed@example.org", "relay@example.org", "d@example.org")
    [results] = send(settings_for(project, scripted), window)
    assert statuses(results) == ["rejected", "sent", "mailbox", "sent", "retry", "sent", "mailbox", "failed", "sent"]
    assert results[0].response == "550 5.1.1 No such user here"
    assert results[2].response == "552 5.2.2 Mailbox full"
    assert results[4].response.startswith("451 4.3.0")
    assert scripted.handler.counts() == Counter(["a@example.org", "b@example.org", "c@example.org", "d@example.org"])


@pytest.mark.parametrize("fault", ["stall", "drop"])
def test_a_lost_answer_after_the_final_dot_is_ambiguous_and_nothing_else_is(project, scripted, fault: str) -> None:
    settings = settings_for(project, scripted)
    first = envelopes("a@example.org", f"{fault}@example.org", "b@example.org", "c@example.org")
    results, again = send(settings, first, [first[2], first[3]])
    assert statuses(results) == ["sent", "ambiguous", "held", "held"]
    assert results[1].response.endswith("after end of data")
    assert ("timeout" in results[1].response) == (fault == "stall")
    assert all(r.response.startswith("not sent") for r in results[2:])
    assert statuses(again) == ["sent", "sent"], "the sender reconnects after the lost session"
    assert scripted.handler.counts() == Counter(["a@example.org", f"{fault}@example.org", "b@example.org", "c@example.org"])


@pytest.mark.parametrize("fault", ["gone", "closing"])
def test_a_session_lost_before_the_data_is_held_not_counted_against_the_reader(project, scripted, fault: str) -> None:
    settings = settings_for(project, scripted)
    first = envelopes("a@example.org", f"{fault}@example.org", "b@example.org")
    results, again = send(settings, first, [first[2]])
    assert statuses(results) == ["sent", "held", "held"]
    if fault == "closing":
        assert results[1].response.startswith("421 4.3.2")
    assert statuses(again) == ["sent"]
    assert scripted.handler.counts() == Counter(["a@example.org", "b@example.org"])


def test_no_server_holds_the_whole_window(project) -> None:
    settings = project.settings(PRESSROOM_EMAIL__TRANSPORT="smtp", PRESSROOM_SMTP__PORT=str(free_port()))
    [results] = send(settings, envelopes("a@example.org", "b@example.org"))
    assert statuses(results) == ["held", "held"]
    assert "cannot connect" in results[0].response


def test_an_address_that_would_inject_a_command_is_not_sent(project, scripted) -> None:
    [results] = send(settings_for(project, scripted), envelopes("a@example.org>\r\nRCPT TO:<b@example.org", "c@example.org"))
    assert statuses(results) == ["failed", "sent"]
    assert scripted.handler.counts() == Counter(["c@example.org"])


# --------------------------------------------------------------------------- login


def _authenticator(server, session, envelope, mechanism, auth_data):
    from aiosmtpd.smtp import AuthResult

    return AuthResult(success=(auth_data.login, auth_data.password) == (b"press", b"s3cret"), handled=False)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_login_with_plain_or_login_and_a_refused_login_is_a_config_error(project, mechanism: str) -> None:
    handler = Scripted(pipelining=True)
    other = {"PLAIN": "LOGIN", "LOGIN": "PLAIN"}[mechanism]
    with SmtpServer(handler, authenticator=_authenticator, auth_require_tls=False, auth_exclude_mechanism=[other]) as server:
        good = settings_for(project, server, PRESSROOM_SMTP__USERNAME="press", PRESSROOM_SMTP__PASSWORD="s3cret")
        [results] = send(good, envelopes("a@example.org"))
        bad = settings_for(project, server, PRESSROOM_SMTP__USERNAME="press", PRESSROOM_SMTP__PASSWORD="wrong")
        with pytest.raises(ConfigError, match="refused") as refused:
            send(bad, envelopes("b@example.org"))
    assert statuses(results) == ["sent"]
    assert "PRESSROOM_SMTP__PASSWORD" in refused.value.hint
    assert handler.counts() == Counter(["a@example.org"])


# --------------------------------------------------------------------------- CHUNKING and strict pipelining


class TinyServer:
    """A small SMTP server on asyncio streams, in a thread: CHUNKING (BDAT) when offered, and a
    count of commands that arrived before the answer to the previous one (``pipelined``).

    Its STARTTLS never starts TLS: it injects a plain-text answer behind its 220.
    ``unknown`` is refused at RCPT; ``stall`` is kept and answered too late. Like some servers, it
    answers DATA with 354 even when every recipient was refused (RFC 2920 3.1).
    """

    def __init__(self, *extensions: str, idle: float | None = None, farewell: str = "") -> None:
        self.extensions = extensions
        self.idle, self.farewell = idle, farewell  # hang up on a client silent for ``idle`` s, saying ``farewell``
        self.port = free_port()
        self.received: list[tuple[str, bytes]] = []
        self.pipelined = 0
        self.chunks = 0
        self._ready = threading.Event()

    def __enter__(self) -> TinyServer:
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    def env(self) -> dict[str, str]:
        return {"PRESSROOM_EMAIL__TRANSPORT": "smtp", "PRESSROOM_SMTP__PORT": str(self.port)}

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        sessions: set[asyncio.Task] = set()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sessions.add(asyncio.current_task())
            await self._session(reader, writer)

        server = await asyncio.start_server(accept, "127.0.0.1", self.port)
        self._ready.set()
        await self._stop.wait()
        server.close()
        for task in sessions:
            task.cancel()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = bytearray()

        async def until(marker: bytes) -> bytes:
            while (end := buffer.find(marker)) < 0:
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), self.idle)
                except TimeoutError:
                    writer.write(self.farewell.encode())
                    raise ConnectionResetError from None
                if not chunk:
                    raise ConnectionResetError
                buffer.extend(chunk)
            taken = bytes(buffer[: end + len(marker)])
            del buffer[: end + len(marker)]
            return taken

        async def exactly(size: int) -> bytes:
            while len(buffer) < size:
                chunk = await reader.read(65536)
                if not chunk:
                    raise ConnectionResetError
                buffer.extend(chunk)
            taken = bytes(buffer[:size])
            del buffer[:size]
            return taken

        async def answer(text: str) -> None:
            self.pipelined += bool(buffer)  # the client did not wait for this answer
            writer.write(text.encode() + b"\r\n")
            await writer.drain()

        async def accepted(rcpt: str | None, data: bytes) -> None:
            if rcpt is None:
                return await answer("554 5.5.1 No valid recipients")
            self.received.append((rcpt, data))
            if rcpt.startswith("stall@"):
                await asyncio.sleep(STALL_SECONDS)
            await answer("250 2.0.0 Ok: queued")

        writer.write(b"220 tiny ESMTP\r\n")
        rcpt: str | None = None
        try:
            while True:
                verb, _, argument = (await until(b"\r\n")).decode().rstrip("\r\n").partition(" ")
                verb = verb.upper()
                if verb == "EHLO":
                    await answer("\r\n".join(f"250-{line}" for line in ("tiny", *self.extensions)) + "\r\n250 8BITMIME")
                elif verb in ("MAIL", "RSET"):
                    rcpt = None
                    await answer("250 2.1.0 Ok")
                elif verb == "RCPT":
                    address = argument.partition("<")[2].rstrip(">")
                    if address.startswith("unknown@"):
                        await answer("550 5.1.1 No such user")
                    else:
                        rcpt = address
                        await answer("250 2.1.5 Ok")
                elif verb == "DATA":
                    await answer("354 End data with <CR><LF>.<CR><LF>")
                    buffer[:0] = b"\r\n"  # so that an empty message's lone dot ends it too
                    data = (await until(b"\r\n.\r\n"))[2:-3].replace(b"\r\n..", b"\r\n.")
                    await accepted(rcpt, data[1:] if data.startswith(b"..") else data)
                elif verb == "BDAT" and "CHUNKING" in self.extensions:
                    size, *_last = argument.split()
                    self.chunks += 1
                    await accepted(rcpt, await exactly(int(size)))
                elif verb == "STARTTLS":  # a man in the middle: a plain-text answer smuggled in behind the 220
                    await answer("220 2.0.0 Ready to start TLS\r\n250 2.1.0 Ok")
                elif verb == "QUIT":
                    await answer("221 2.0.0 Bye")
                    break
                else:
                    await answer("502 5.5.2 Command not recognised")
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize("extensions", [("PIPELINING", "CHUNKING"), ("CHUNKING",), ("PIPELINING",), ()],
                         ids=["pipelining+chunking", "chunking", "pipelining", "neither"])
def test_chunking_and_pipelining_only_when_offered(project, extensions: tuple[str, ...]) -> None:
    batch = envelopes("a@example.org", "unknown@example.org", "b@example.org", "c@example.org", "d@example.org")
    with TinyServer(*extensions) as server:
        settings = project.settings(**server.env(), PRESSROOM_SMTP__TIMEOUT="1")
        results = send(settings, batch[:3], batch[3:])
    assert [statuses(window) for window in results] == [["sent", "rejected", "sent"], ["sent", "sent"]]
    assert sorted(server.received) == sorted((e.recipient, e.message) for e in batch if not e.recipient.startswith("unknown"))
    assert server.chunks == (4 if "CHUNKING" in extensions else 0)
    assert (server.pipelined > 0) == ("PIPELINING" in extensions)


def test_a_lost_answer_after_the_last_chunk_is_ambiguous(project) -> None:
    with TinyServer("PIPELINING", "CHUNKING") as server:
        settings = project.settings(**server.env(), PRESSROOM_SMTP__TIMEOUT="1")
        [results] = send(settings, envelopes("a@example.org", "stall@example.org", "b@example.org"))
    assert statuses(results) == ["sent", "ambiguous", "held"]
    assert [rcpt for rcpt, _ in server.received] == ["a@example.org", "stall@example.org"]


@pytest.mark.parametrize("farewell", ["421 4.4.2 Idle timeout\r\n", ""], ids=["421-then-close", "silent-close"])
def test_a_session_the_server_closed_while_idle_is_replaced_not_lost(project, farewell: str) -> None:
    with TinyServer("PIPELINING", idle=0.3, farewell=farewell) as server:
        transport = transport_for(settings=project.settings(**server.env(), PRESSROOM_SMTP__TIMEOUT="1"))

        async def two_windows_apart() -> list[list[SendResult]]:
            sender = await transport.connect()
            first = await sender.send(envelopes("a@example.org"))
            await asyncio.sleep(1)  # the server hangs up meanwhile
            second = await sender.send(envelopes("b@example.org", start=1))
            await sender.close()
            return [first, second]

        results = asyncio.run(two_windows_apart())
    assert [statuses(window) for window in results] == [["sent"], ["sent"]]
    assert [rcpt for rcpt, _ in server.received] == ["a@example.org", "b@example.org"]


def test_plain_text_injected_behind_starttls_is_not_trusted(project) -> None:
    with TinyServer("PIPELINING", "STARTTLS") as server:
        settings = project.settings(**server.env(), PRESSROOM_SMTP__SECURITY="starttls", PRESSROOM_SMTP__TIMEOUT="1")
        [results] = send(settings, envelopes("a@example.org"))
    assert statuses(results) == ["held"] and "after its STARTTLS answer" in results[0].response
    assert server.received == []


# --------------------------------------------------------------------------- the other transports


def test_unknown_transport_fails_before_anything_is_sent(project) -> None:
    with pytest.raises(ConfigError, match="'carrier-pigeon' is not a transport"):
        transport_for(settings=project.settings(PRESSROOM_EMAIL__TRANSPORT="carrier-pigeon"))


def test_outbox_writes_one_file_per_key_and_a_rerun_overwrites(project) -> None:
    settings = project.settings()
    first = Envelope(id=1, sender="press@example.org", recipient="Ann@example.org", message=b"first", key="news/ann@example.org")
    second = Envelope(id=1, sender="press@example.org", recipient="Ann@example.org", message=b"second", key="news/ann@example.org")
    results = send(settings, [first], [second])
    assert [statuses(window) for window in results] == [["sent"], ["sent"]]
    files = list((settings.path("var") / "outbox" / "email").rglob("*.eml"))
    assert [f.relative_to(settings.path("var")).as_posix() for f in files] == ["outbox/email/news/ann@example.org.eml"]
    assert files[0].read_bytes() == b"second"


# --------------------------------------------------------------------------- a real MTA

POSTFIX = "/usr/sbin/postfix"


class Relay:
    """Debian's postfix as a private instance on a loopback port: virtual delivery into Maildirs.

    Its own main.cf, master.cf, queue and mail folders under one temporary folder (world-readable:
    postfix's daemons drop to the postfix user); the system's postfix is not touched.
    """

    def __init__(self, *, recipients: list[str], extra: str = "") -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="pressroom-postfix-"))
        self.folder.chmod(0o755)
        self.port = free_port()
        self.mail = self.folder / "mail"
        for name in ("queue", "data", "mail"):
            (self.folder / name).mkdir()
        shutil.chown(self.folder / "data", "postfix", "postfix")
        shutil.chown(self.mail, "postfix", "postfix")
        (self.folder / "mailboxes").write_text("".join(f"{r} example.org/{r.partition('@')[0]}/\n" for r in recipients))
        folder, owner = self.folder, os.stat(self.mail)
        (folder / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {folder}/queue
data_directory = {folder}/data
maillog_file = {folder}/maillog
maillog_file_prefixes = {folder}
mail_owner = postfix
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = relay.pressroom.test
mydestination =
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
virtual_mailbox_domains = example.org
virtual_mailbox_base = {self.mail}
virtual_mailbox_maps = texthash:{folder}/mailboxes
virtual_uid_maps = static:{owner.st_uid}
virtual_gid_maps = static:{owner.st_gid}
{extra}
""")
        services = ["pickup unix n - n 60 1 pickup", "cleanup unix n - n - 0 cleanup", "qmgr unix n - n 300 1 qmgr",
                    "rewrite unix - - n - - trivial-rewrite", "bounce unix - - n - 0 bounce", "defer unix - - n - 0 bounce",
                    "trace unix - - n - 0 bounce", "verify unix - - n - 1 verify", "flush unix n - n 1000? 0 flush",
                    "proxymap unix - - n - - proxymap", "smtp unix - - n - - smtp", "showq unix n - n - - showq",
                    "error unix - - n - - error", "retry unix - - n - - error", "discard unix - - n - - discard",
                    "virtual unix - n n - - virtual", "anvil unix - - n - 1 anvil", "scache unix - - n - 1 scache",
                    "postlog unix-dgram n - n - 1 postlogd"]
        (folder / "master.cf").write_text(f"127.0.0.1:{self.port} inet n - n - - smtpd\n" + "\n".join(services) + "\n")

    def postfix(self, command: str) -> None:
        done = subprocess.run([POSTFIX, "-c", str(self.folder), command], capture_output=True, text=True)
        assert done.returncode == 0, f"postfix {command} failed:\n{self.log()[-3000:]}"

    def log(self) -> str:
        path = self.folder / "maillog"
        return path.read_text() if path.exists() else "(no maillog)"

    def sessions_ended(self) -> bool:
        """Every SMTP session has logged its end, and with it its command counts (``bdat=1`` and so on)."""
        log = self.log()
        return log.count(" connect from ") == log.count(" disconnect from ")

    def delivered(self) -> Counter[str]:
        """Messages in each Maildir, by recipient. Postfix makes a mailbox's folder before its ``new/``:
        a box seen between the two holds nothing yet (glob, unlike iterdir, finds nothing in a folder not there)."""
        return Counter(f"{box.name}@example.org" for box in (self.mail / "example.org").glob("*")
                       for _ in (box / "new").glob("*"))

    def __enter__(self) -> Relay:
        self.postfix("start")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"postfix did not listen on {self.port}:\n{self.log()[-3000:]}")

    def __exit__(self, *exc: object) -> None:
        self.postfix("stop")
        shutil.rmtree(self.folder, ignore_errors=True)


def deliver(settings, batch: list[Envelope]) -> list[SendResult]:
    """What the dispatch loop does with a transport: ``connections`` senders, each sent ``window`` envelopes at a time."""

    async def run() -> list[SendResult]:
        transport = transport_for(settings=settings)
        windows = deque(batch[i : i + transport.window] for i in range(0, len(batch), transport.window))
        results: list[SendResult] = []

        async def connection() -> None:
            sender = await transport.connect()
            try:
                while windows:
                    results.extend(await sender.send(windows.popleft()))
            finally:
                await sender.close()

        await asyncio.gather(*(connection() for _ in range(transport.connections)))
        return sorted(results, key=lambda r: r.id)

    return asyncio.run(run())


@pytest.mark.slow
@pytest.mark.skipif(not Path(POSTFIX).exists(), reason="scripts/system-deps installs postfix")
@pytest.mark.skipif(os.geteuid() != 0, reason="postfix's master starts as root and drops to the postfix user")
@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
def test_a_real_postfix_relay_delivers_2000_recipients_once_each(project, chunking: bool) -> None:
    readers = [f"reader{i}@example.org" for i in range(2000)]
    batch = envelopes(*readers[:1000], "nobody@example.org", *readers[1000:])
    with Relay(recipients=readers, extra="" if chunking else "smtpd_discard_ehlo_keywords = chunking") as relay:
        settings = project.settings(PRESSROOM_EMAIL__TRANSPORT="smtp", PRESSROOM_SMTP__PORT=str(relay.port),
                                    PRESSROOM_SMTP__CONNECTIONS="4", PRESSROOM_SMTP__TIMEOUT="30")
        results = deliver(settings, batch)
        deadline = time.monotonic() + 180
        while (sum(relay.delivered().values()) < len(readers) or not relay.sessions_ended()) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1)  # a second copy, if any, would land now
        delivered, log = relay.delivered(), relay.log()
    assert Counter(statuses(results)) == {"sent": 2000, "rejected": 1}, log[-3000:]
    assert results[1000].response.startswith("550 5.1.1"), results[1000]
    assert delivered == Counter(readers), log[-3000:]
    assert ("bdat=" in log) == chunking and "improper command pipelining" not in log, log[-3000:]
