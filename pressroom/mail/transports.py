"""Email transports behind one small interface, chosen by name from ``settings.email.transport``.

    transport = transport_for(settings=settings)     # unknown name: ConfigError, before anything is sent
    sender = await transport.connect()                # one connection (SMTP) or handle (outbox)
    results = await sender.send(envelopes)            # up to transport.window envelopes; one SendResult each
    await sender.close()

A transport never raises for one message: each envelope comes back as a :class:`SendResult`
whose ``status`` says what the caller must do (the rules are :func:`pressroom.mail.answers.classify`,
the one place an SMTP answer is read). Only settings that cannot work raise, as :class:`ConfigError`, before
anything is sent: a refused login, or a server that offers no STARTTLS or no AUTH when they are set.

- ``outbox``: each message as an .eml file under ``var/outbox/email/<group>/``; the file
  name derives from the key, so a rerun overwrites instead of duplicating.
- ``smtp``: an SMTP client on asyncio streams: one persistent connection per sender (the caller
  opens ``settings.smtp.connections``), STARTTLS / SMTPS / AUTH PLAIN and LOGIN, ESMTP
  PIPELINING (RFC 2920) and CHUNKING (RFC 3030) when the server offers them, one command at a
  time when it does not, a timeout on every read (one timer per session watches them), a
  reconnect on the next send after a drop,
  and one rate limit shared by every connection of the process (``SmtpTransport.limiter``).
- ``discard``: accepts and drops everything; for benchmarks and dry runs only.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pressroom.errors import ConfigError, TransientError
from pressroom.mail.answers import Stage, Status, classify
from pressroom.settings import Settings, SmtpSettings

__all__ = ["Envelope", "SendResult", "Sender", "Status", "Transport", "transport_for", "TRANSPORTS"]

@dataclass(frozen=True, slots=True)
class Envelope:
    id: int  # ledger row id, echoed back in the result
    sender: str  # MAIL FROM (return path)
    recipient: str  # RCPT TO
    message: bytes  # the full RFC 5322 message, CRLF line ends
    key: str  # "group/name": the outbox transport's file name
    # What makes the message as DATA carries it (dot-stuffed, ended by the lone dot), when the caller
    # has it ready (a composition stuffs its shared bytes once); otherwise the transport stuffs it.
    data: Callable[[], bytes] | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    id: int
    status: Status
    response: str  # the server's words, or what happened instead of an answer


class Sender(Protocol):
    async def send(self, envelopes: Sequence[Envelope]) -> list[SendResult]: ...

    async def close(self) -> None: ...


class Transport(Protocol):
    name: str
    connections: int
    window: int

    async def connect(self) -> Sender: ...


# --------------------------------------------------------------------------- rate limit


class RateLimiter:
    """At most ``rate`` sends per second across every thread and connection of this process."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


_limiters: dict[float, RateLimiter] = {}
_limiters_lock = threading.Lock()


def _limiter(rate: float) -> RateLimiter:
    with _limiters_lock:
        return _limiters.setdefault(rate, RateLimiter(rate))


# --------------------------------------------------------------------------- outbox

_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")

# Nothing crosses a wire between the loop and these transports, and a rerun rewrites the same
# file, so a large window costs nothing and spares the loop round trips.
_LOCAL_WINDOW = 64


class _OutboxSender:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, envelopes: Sequence[Envelope]) -> list[SendResult]:
        return [self._write(envelope) for envelope in envelopes]

    def _write(self, envelope: Envelope) -> SendResult:
        group, _, name = envelope.key.rpartition("/")
        folder = self.folder / _UNSAFE.sub("_", group or "misc")
        target = folder / f"{_UNSAFE.sub('_', name or envelope.recipient)}.eml"
        temporary = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(envelope.message)
            os.replace(temporary, target)
        except OSError as exc:
            return SendResult(envelope.id, "retry", f"cannot write {target}: {exc.strerror}; check the disk and var/ permissions")
        return SendResult(envelope.id, "sent", f"250 written to {target}")

    async def close(self) -> None:
        return None


class OutboxTransport:
    """Messages as .eml files under ``var/outbox/email/`` (the embedded default)."""

    name = "outbox"
    connections = 1
    window = _LOCAL_WINDOW

    def __init__(self, *, settings: Settings) -> None:
        self.folder = settings.path("var") / "outbox" / "email"

    async def connect(self) -> Sender:
        return _OutboxSender(self.folder)


class _DiscardSender:
    async def send(self, envelopes: Sequence[Envelope]) -> list[SendResult]:
        return [SendResult(envelope.id, "sent", "250 discarded") for envelope in envelopes]

    async def close(self) -> None:
        return None


class DiscardTransport:
    """Accepts every message and keeps none: for benchmarks and dry runs."""

    name = "discard"
    connections = 1
    window = _LOCAL_WINDOW

    def __init__(self, *, settings: Settings) -> None:
        del settings

    async def connect(self) -> Sender:
        return _DiscardSender()


# --------------------------------------------------------------------------- smtp: the wire

# A reply line is at most 512 octets in RFC 5321, but EHLO answers and some error texts run longer.
_LINE_LIMIT = 64 * 1024


_DOT_LINE = re.compile(rb"\n\.")


def dot_stuffed(text: bytes) -> bytes:
    r"""``text``, which starts a line, as DATA carries it: every line that starts with a dot gets a
    second one (RFC 5321 4.5.2).

    Stuffing after any LF, not only after CRLF, also covers a stray bare LF: a ``\n.\n`` that some
    servers read as the end of data would otherwise let the rest pass as a second message
    ("SMTP smuggling"). A compiled pattern, since this scans every message: sre finds the rare
    match about twice as fast as ``bytes.replace`` on a 30 KB message.
    """
    body = _DOT_LINE.sub(b"\n..", text)
    return b"." + body if body.startswith(b".") else body


def end_of_data(message: bytes) -> bytes:
    """What follows the stuffed ``message`` in DATA: the line with the lone dot."""
    return b".\r\n" if message.endswith(b"\r\n") else b"\r\n.\r\n"


def _dot_stuffed(message: bytes) -> bytes:
    """The DATA form of a whole message: stuffed, then ended."""
    return dot_stuffed(message) + end_of_data(message)


def _safe_address(address: str) -> bool:
    # An address with a line break or angle bracket would inject a command into the session.
    return address.isprintable() and "<" not in address and ">" not in address


@functools.cache
def _local_name() -> str:
    name = socket.getfqdn()
    return name if "." in name else "localhost.localdomain"


class _Connection:
    """One SMTP session's streams and what its EHLO answer offered."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, timeout: float) -> None:
        self.reader = reader
        self.writer = writer
        self.timeout = timeout
        self.extensions: dict[str, str] = {}
        self.buffer = bytearray()
        # One timer watches every read (see _fill): when the read under way gives up, in loop time (0: none).
        self.deadline = 0.0
        self.watch: asyncio.TimerHandle | None = None
        self.timed_out = False

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.extensions

    @property
    def chunking(self) -> bool:
        return "CHUNKING" in self.extensions

    async def usable(self) -> bool:
        """Whether this idle session can carry the next window.

        A server says nothing between transactions unless it is going away (``421 ... timeout``
        before it hangs up on an idle client), so anything waiting to be read, or the end of the
        stream, means: open a new session rather than lose the window to a stale one.
        """
        reader = self.reader
        if self.buffer or self.writer.is_closing() or reader.at_eof() or reader.exception() is not None:
            return False
        # The event loop moves whatever the server sends into the stream's buffer as it arrives; a
        # look there costs nothing, where a read that must not wait costs a timer and a cancellation
        # (StreamReader has no public count of the bytes waiting).
        return not reader._buffer

    async def write(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            if self.writer.transport.get_write_buffer_size():  # the kernel did not take it all at once
                async with asyncio.timeout(self.timeout):
                    await self.writer.drain()
        except TimeoutError:
            raise TransientError(f"timeout after {self.timeout:g} s writing to the server") from None
        except OSError as exc:
            raise TransientError(f"the connection dropped ({exc.__class__.__name__})") from None

    async def reply(self) -> tuple[int, str]:
        """The next reply: its code and its lines joined by newlines; TransientError if none comes."""
        lines: list[str] = []
        first = 0
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                await self._fill()
                continue
            line = bytes(self.buffer[: end + 1])
            del self.buffer[: end + 1]
            code, separator = line[:3], line[3:4]
            if not (code.isdigit() and b"2" <= code[:1] <= b"5" and separator in (b" ", b"-", b"\r", b"\n")) or (
                lines and int(code) != first
            ):
                raise TransientError(f"unreadable answer {line[:80]!r}")
            first = int(code)
            lines.append(line[4:].rstrip(b"\r\n").decode("utf-8", "replace"))
            if separator != b"-":
                return first, "\n".join(lines)

    async def _fill(self) -> None:
        # Replies are parsed from this connection's own buffer, so a read happens only when one
        # really waits for the network. Each read moves the deadline; one timer (_watchdog) checks
        # it, armed again only when it fires early: a timer per read cost more than the read.
        if len(self.buffer) > _LINE_LIMIT:
            raise TransientError("unreadable answer: a line longer than 64 KiB")
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + self.timeout
        if self.watch is None:
            self.watch = loop.call_at(self.deadline, self._watchdog, loop)
        try:
            chunk = await self.reader.read(_LINE_LIMIT)
        except OSError as exc:
            raise TransientError(f"the connection dropped ({exc.__class__.__name__})") from None
        finally:
            self.deadline = 0.0
        if self.timed_out:
            raise TransientError(f"timeout after {self.timeout:g} s waiting for the answer")
        if not chunk:
            raise TransientError("the server closed the connection")
        self.buffer += chunk

    def _watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        self.watch = None
        if not self.deadline:
            return  # no read waits: the next one arms the timer again
        if loop.time() < self.deadline:
            self.watch = loop.call_at(self.deadline, self._watchdog, loop)
            return
        # The read waited its whole timeout: closing the session ends it (with no data), and
        # _fill says why. The session is dropped after a timeout anyway.
        self.timed_out = True
        self.writer.transport.abort()

    async def command(self, line: bytes) -> tuple[int, str]:
        await self.write(line)
        return await self.reply()

    async def hello(self) -> None:
        name = _local_name().encode()
        code, text = await self.command(b"EHLO %s\r\n" % name)
        self.extensions = {}
        if code >= 500:  # a server from before ESMTP
            code, text = await self.command(b"HELO %s\r\n" % name)
        elif code == 250:
            for line in text.split("\n")[1:]:
                keyword, _, parameters = line.partition(" ")
                self.extensions[keyword.upper()] = parameters
        if code != 250:
            raise TransientError(f"the server answered the greeting with {code} {text}")

    def opening(self, envelope: Envelope) -> list[bytes]:
        """MAIL FROM, RCPT TO and (without CHUNKING) DATA for one envelope."""
        utf8 = b" SMTPUTF8" if "SMTPUTF8" in self.extensions and not (
            envelope.sender.isascii() and envelope.recipient.isascii()) else b""
        commands = [b"MAIL FROM:<%s>%s\r\n" % (envelope.sender.encode(), utf8),
                    b"RCPT TO:<%s>\r\n" % envelope.recipient.encode()]
        return commands if self.chunking else [*commands, b"DATA\r\n"]

    def payload(self, envelope: Envelope) -> bytes:
        if self.chunking:  # length-delimited: no stuffing, nothing in the data can end it early
            return b"BDAT %d LAST\r\n%s" % (len(envelope.message), envelope.message)
        return envelope.data() if envelope.data is not None else _dot_stuffed(envelope.message)

    def abort(self) -> None:
        if self.watch is not None:
            self.watch.cancel()
            self.watch = None
        self.writer.transport.abort()

    async def quit(self) -> None:
        try:
            async with asyncio.timeout(min(self.timeout, 5.0)):
                await self.command(b"QUIT\r\n")
                self.writer.close()
                await self.writer.wait_closed()
        except (TransientError, TimeoutError, OSError, ssl.SSLError):
            pass
        self.abort()


class _SmtpSender:
    """One persistent SMTP connection, opened on the first send and again after a drop."""

    def __init__(self, config: SmtpSettings) -> None:
        self.config = config
        self.where = f"{config.host}:{config.port}"
        self.connection: _Connection | None = None

    async def send(self, envelopes: Sequence[Envelope]) -> list[SendResult]:
        results: list[SendResult | None] = [None] * len(envelopes)
        for i, envelope in enumerate(envelopes):
            if not (_safe_address(envelope.sender) and _safe_address(envelope.recipient)):
                results[i] = SendResult(envelope.id, "failed", "not sent: the address holds a line break or angle bracket")
        todo = [i for i, result in enumerate(results) if result is None]
        data_sent = [False] * len(envelopes)
        try:
            if todo:
                if self.connection is None or not await self.connection.usable():
                    self._drop()
                    self.connection = await self._open()
                await self._transact(self.connection, envelopes, todo, results, data_sent)
        except TransientError as exc:
            # The session is gone (timeout, drop, unreadable answer, 421): what was written before
            # the answer was lost is ambiguous, the rest never left and is simply retried.
            self._drop()
            for i in todo:
                if results[i] is None:
                    results[i] = SendResult(
                        envelopes[i].id, classify("end", None, data_sent=data_sent[i]),
                        f"{exc.message} after end of data" if data_sent[i] else f"not sent: {exc.message}",
                    )
        except BaseException:
            self._drop()
            raise
        return results  # type: ignore[return-value] - every slot is filled above

    async def _transact(self, conn: _Connection, envelopes: Sequence[Envelope], todo: list[int],
                        results: list[SendResult | None], data_sent: list[bool]) -> None:
        """Send ``envelopes[todo]`` on one session, pipelined when the server allows it.

        Pipelined, the commands of the next message travel in the same write as the end of the
        current one, so a steady send costs one round trip per message.
        """
        started = False  # this message's commands went out with the previous write
        for position, i in enumerate(todo):
            envelope = envelopes[i]
            commands = conn.opening(envelope)
            if not started:
                await conn.write(b"".join(commands) if conn.pipelining else commands[0])
            refusal = await self._opening_replies(conn, commands)
            ahead = b""
            if conn.pipelining and position + 1 < len(todo):
                ahead = b"".join(conn.opening(envelopes[todo[position + 1]]))
            started = bool(ahead)
            if refusal is None:
                data_sent[i] = True  # before the write: once it is under way, a lost reply is ambiguous
                await conn.write(conn.payload(envelope) + ahead)
                code, text = await conn.reply()
                if 300 <= code < 400:
                    raise TransientError(f"unexpected answer {code} {text}")
                results[i] = SendResult(envelope.id, classify("end", code, text, data_sent=True), f"{code} {text}")
                if code == 421:
                    raise TransientError(f"{code} {text}")
                continue
            stage, code, text = refusal
            results[i] = SendResult(envelope.id, classify(stage, code, text), f"{code} {text}")
            if code == 421:
                raise TransientError(f"{code} {text}")
            # A refused MAIL, RCPT or DATA leaves a half-open transaction: reset it first.
            await conn.write(b"RSET\r\n" + ahead)
            code, text = await conn.reply()
            if code != 250:
                raise TransientError(f"RSET answered {code} {text}")

    async def _opening_replies(self, conn: _Connection, commands: list[bytes]) -> tuple[Stage, int, str] | None:
        """Read the answers to MAIL, RCPT (and DATA); None when the message data may follow."""
        stages: tuple[Stage, ...] = ("mail", "rcpt", "data")
        refusal: tuple[Stage, int, str] | None = None
        for n, (stage, command) in enumerate(zip(stages, commands)):
            if n and not conn.pipelining:
                if refusal:
                    return refusal
                await conn.write(command)
            code, text = await conn.reply()
            if code == 421:
                return stage, code, text
            if 300 <= code < 400 and not (stage == "data" and code == 354):
                # Answers out of step with the commands: nothing read after this can be trusted.
                raise TransientError(f"unexpected answer {code} {text} to {stage.upper()}")
            if stage == "data" and code == 354 and refusal:
                # Every recipient refused, yet the server wants data (RFC 2920 3.1): end it empty.
                await conn.write(b".\r\n")
                await conn.reply()
            if refusal is None and not (code == 354 if stage == "data" else 200 <= code < 300):
                refusal = stage, code, text
        return refusal

    # ----------------------------------------------------------------- session set-up

    async def _open(self) -> _Connection:
        cfg = self.config
        context = self._tls_context() if cfg.security != "none" else None
        try:
            async with asyncio.timeout(cfg.timeout):
                reader, writer = await asyncio.open_connection(
                    cfg.host, cfg.port,
                    ssl=context if cfg.security == "tls" else None,
                    server_hostname=cfg.host if cfg.security == "tls" else None,
                )
        except TimeoutError:
            raise TransientError(f"cannot connect to SMTP {self.where}: timeout after {cfg.timeout:g} s") from None
        except OSError as exc:  # ssl.SSLError included: a certificate that does not verify
            raise TransientError(f"cannot connect to SMTP {self.where}: {exc}") from None
        conn = _Connection(reader, writer, timeout=cfg.timeout)
        try:
            code, text = await conn.reply()
            if code != 220:
                raise TransientError(f"SMTP {self.where} refused the connection: {code} {text}")
            await conn.hello()
            if cfg.security == "starttls":
                await self._start_tls(conn, context)
            if cfg.username:
                await self._login(conn)
        except BaseException:
            conn.abort()
            raise
        return conn

    def _tls_context(self) -> ssl.SSLContext:
        cfg = self.config
        context = ssl.create_default_context(cafile=str(cfg.cert_bundle) if cfg.cert_bundle else None)
        if not cfg.validate_certs:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def _start_tls(self, conn: _Connection, context: ssl.SSLContext | None) -> None:
        if "STARTTLS" not in conn.extensions:
            raise ConfigError(
                f"SMTP {self.where} does not offer STARTTLS",
                hint="set smtp.security to tls for a server that starts with TLS (port 465), or check smtp.port",
            )
        code, text = await conn.command(b"STARTTLS\r\n")
        if code != 220:
            raise TransientError(f"SMTP {self.where} refused STARTTLS: {code} {text}")
        if conn.buffer:
            # Plain text after the 220 would be read as if it came over TLS (a STARTTLS injection).
            raise TransientError(f"SMTP {self.where} sent data after its STARTTLS answer; not trusting this session")
        try:
            async with asyncio.timeout(self.config.timeout):
                await conn.writer.start_tls(context, server_hostname=self.config.host)
        except TimeoutError:
            raise TransientError(f"TLS with SMTP {self.where}: timeout after {self.config.timeout:g} s") from None
        except OSError as exc:
            raise TransientError(f"TLS with SMTP {self.where} failed: {exc}") from None
        await conn.hello()

    async def _login(self, conn: _Connection) -> None:
        cfg = self.config
        user = (cfg.username or "").encode()
        password = cfg.password.get_secret_value().encode() if cfg.password else b""
        if "AUTH" not in conn.extensions:
            raise ConfigError(
                f"SMTP {self.where} cannot log in: it offers no AUTH",
                hint="most servers offer AUTH only over TLS: set smtp.security to starttls (port 587) or tls (port 465)",
            )
        mechanisms = conn.extensions["AUTH"].upper().split()
        if "PLAIN" in mechanisms:
            token = base64.b64encode(b"\0" + user + b"\0" + password)
            code, text = await conn.command(b"AUTH PLAIN %s\r\n" % token)
        elif "LOGIN" in mechanisms:
            code, text = await conn.command(b"AUTH LOGIN\r\n")
            for value in (user, password):
                if code != 334:
                    break
                code, text = await conn.command(base64.b64encode(value) + b"\r\n")
        else:
            raise ConfigError(
                f"SMTP {self.where} offers only AUTH {' '.join(mechanisms)}; Pressroom logs in with PLAIN or LOGIN",
                hint="ask the mail provider for a submission port with AUTH PLAIN or LOGIN over TLS",
            )
        if code == 235:
            return
        if code >= 500:
            raise ConfigError(
                f"SMTP login to {self.where} as {cfg.username!r} refused: {code} {text}",
                hint="check PRESSROOM_SMTP__USERNAME and PRESSROOM_SMTP__PASSWORD",
            )
        raise TransientError(f"SMTP login to {self.where}: {code} {text}")

    def _drop(self) -> None:
        if self.connection is not None:
            self.connection.abort()
        self.connection = None

    async def close(self) -> None:
        if self.connection is not None and not self.connection.writer.is_closing():
            await self.connection.quit()
        self._drop()


class SmtpTransport:
    """The [smtp] server: ``connections`` senders per process, ``window`` messages each at a time.

    ``limiter`` is the process's one ``rate_per_second``: the send loop waits on it before it marks
    a window sending (so an unsubscribe during the wait still wins), and the senders do not wait again.
    """

    name = "smtp"

    def __init__(self, *, settings: Settings) -> None:
        self.config = settings.smtp
        self.connections = settings.smtp.connections
        self.window = settings.smtp.window
        self.limiter = _limiter(settings.smtp.rate_per_second)

    async def connect(self) -> Sender:
        return _SmtpSender(self.config)


TRANSPORTS: dict[str, type] = {"outbox": OutboxTransport, "smtp": SmtpTransport, "discard": DiscardTransport}


def transport_for(*, settings: Settings) -> Transport:
    """The transport named by ``settings.email.transport``; :class:`ConfigError` for an unknown name."""
    name = settings.email.transport
    try:
        factory = TRANSPORTS[name]
    except KeyError:
        raise ConfigError(
            f"email.transport {name!r} is not a transport",
            hint=f"set email.transport to one of: {', '.join(TRANSPORTS)}",
        ) from None
    return factory(settings=settings)
