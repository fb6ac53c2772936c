"""Email transports behind one small interface, chosen by name from ``settings.email.transport``.

    transport = transport_for(settings=settings)     # unknown name: ConfigError, before anything is sent
    sender = await transport.connect()                # one connection (SMTP) or handle (outbox)
    response = await sender.send(envelope_from=..., recipient=..., message=b"...", key="slug/address")
    await sender.close()

``send`` returns the server's answer on success and raises
:class:`~pressroom.errors.TransientError` (4xx, timeouts, dropped connections: retry later) or
:class:`~pressroom.errors.PermanentError` (5xx: do not retry); :class:`RecipientRejected`, a
PermanentError, means the address itself was refused and belongs on the suppression list.

- ``outbox``: each message as an .eml file under ``var/outbox/email/<release>/``; the file
  name derives from the key, so a rerun overwrites instead of duplicating.
- ``smtp``: aiosmtplib, one persistent connection per sender (the caller opens
  ``settings.smtp.connections`` of them), STARTTLS / SMTPS / AUTH, timeouts, reconnect after a
  drop, and one rate limit shared by every connection of the process.
- ``discard``: accepts and drops everything; for benchmarks and dry runs only.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from pathlib import Path
from typing import Protocol

import aiosmtplib

from pressroom.errors import ConfigError, PermanentError, TransientError
from pressroom.settings import Settings, SmtpSettings

__all__ = ["RecipientRejected", "Sender", "Transport", "transport_for", "TRANSPORTS"]


from dataclasses import dataclass
from typing import Literal, Sequence
from pressroom.errors import RecipientRejected


@dataclass(frozen=True)
class Envelope:
    id: int
    sender: str
    recipient: str
    message: bytes
    key: str


@dataclass(frozen=True)
class SendResult:
    id: int
    status: Literal["sent", "retry", "mailbox", "failed", "rejected", "ambiguous"]
    response: str


class _Windowed:
    """Adapter: one message at a time through an old-style sender."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def send(self, envelopes: Sequence[Envelope]) -> list[SendResult]:
        out = []
        for e in envelopes:
            try:
                r = await self.inner.send(envelope_from=e.sender, recipient=e.recipient, message=e.message, key=e.key)
                out.append(SendResult(e.id, "sent", r))
            except RecipientRejected as exc:
                out.append(SendResult(e.id, "rejected", exc.message))
            except PermanentError as exc:
                out.append(SendResult(e.id, "failed", exc.message))
            except TransientError as exc:
                out.append(SendResult(e.id, "retry", exc.message))
        return out

    async def close(self) -> None:
        await self.inner.close()


class Sender(Protocol):
    async def send(self, *, envelope_from: str, recipient: str, message: bytes, key: str) -> str: ...

    async def close(self) -> None: ...


class Transport(Protocol):
    name: str
    connections: int

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


class _OutboxSender:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, *, envelope_from: str, recipient: str, message: bytes, key: str) -> str:
        group, _, name = key.rpartition("/")
        folder = self.folder / _UNSAFE.sub("_", group or "misc")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{_UNSAFE.sub('_', name or recipient)}.eml"
        temporary = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            temporary.write_bytes(message)
            os.replace(temporary, target)
        except OSError as exc:
            raise TransientError(f"cannot write {target}: {exc.strerror}", hint="check the disk and var/ permissions") from exc
        return f"250 written to {target}"

    async def close(self) -> None:
        return None


class OutboxTransport:
    """Messages as .eml files under ``var/outbox/email/`` (the embedded default)."""

    name = "outbox"
    connections = 1
    window = 2

    def __init__(self, *, settings: Settings) -> None:
        self.folder = settings.path("var") / "outbox" / "email"

    async def connect(self) -> Sender:
        return _Windowed(_OutboxSender(self.folder))


class _DiscardSender:
    async def send(self, *, envelope_from: str, recipient: str, message: bytes, key: str) -> str:
        return "250 discarded"

    async def close(self) -> None:
        return None


class DiscardTransport:
    """Accepts every message and keeps none: for benchmarks and dry runs."""

    name = "discard"
    connections = 1
    window = 2

    def __init__(self, *, settings: Settings) -> None:
        del settings

    async def connect(self) -> Sender:
        return _Windowed(_DiscardSender())


# --------------------------------------------------------------------------- smtp


def _answer(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {exc.message}".strip()


class _SmtpSender:
    """One persistent SMTP connection that reconnects on the next send after a drop."""

    def __init__(self, config: SmtpSettings, limiter: RateLimiter) -> None:
        self.config = config
        self.limiter = limiter
        self.smtp: aiosmtplib.SMTP | None = None

    async def _connection(self) -> aiosmtplib.SMTP:
        if self.smtp is not None and self.smtp.is_connected:
            return self.smtp
        cfg = self.config
        smtp = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port,
            timeout=cfg.timeout,
            use_tls=cfg.security == "tls",
            start_tls=cfg.security == "starttls",
            validate_certs=cfg.validate_certs,
            cert_bundle=str(cfg.cert_bundle) if cfg.cert_bundle else None,
        )
        try:
            await smtp.connect()
        except aiosmtplib.SMTPResponseException as exc:
            await _quietly_close(smtp)
            raise TransientError(f"SMTP {cfg.host}:{cfg.port} refused the connection: {_answer(exc)}") from None
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            await _quietly_close(smtp)
            raise TransientError(f"cannot connect to SMTP {cfg.host}:{cfg.port}: {exc}") from None
        if cfg.username:
            try:
                await smtp.login(cfg.username, cfg.password.get_secret_value() if cfg.password else "")
            except aiosmtplib.SMTPAuthenticationError as exc:
                await _quietly_close(smtp)
                raise ConfigError(
                    f"SMTP login to {cfg.host}:{cfg.port} as {cfg.username!r} refused: {_answer(exc)}",
                    hint="check PRESSROOM_SMTP__USERNAME and PRESSROOM_SMTP__PASSWORD",
                ) from None
            except aiosmtplib.SMTPResponseException as exc:
                await _quietly_close(smtp)
                raise TransientError(f"SMTP login to {cfg.host}:{cfg.port}: {_answer(exc)}") from None
            except (aiosmtplib.SMTPServerDisconnected, OSError, asyncio.TimeoutError) as exc:
                await _quietly_close(smtp)
                raise TransientError(f"SMTP login to {cfg.host}:{cfg.port}: {exc}") from None
            except aiosmtplib.SMTPException as exc:
                await _quietly_close(smtp)
                raise ConfigError(
                    f"SMTP {cfg.host}:{cfg.port} cannot log in: {exc}",
                    hint="most servers offer AUTH only over TLS: set smtp.security to starttls (port 587) or tls (port 465)",
                ) from None
        self.smtp = smtp
        return smtp

    async def send(self, *, envelope_from: str, recipient: str, message: bytes, key: str) -> str:
        smtp = await self._connection()
        try:
            await smtp.mail(envelope_from)
            try:
                await smtp.rcpt(recipient)
            except aiosmtplib.SMTPRecipientRefused as exc:
                if 500 <= exc.code < 600:
                    await self._reset()
                    raise RecipientRejected(f"{recipient}: {_answer(exc)}") from None
                raise
            response = await smtp.data(message)
            return f"{response.code} {response.message}"
        except (RecipientRejected, ConfigError):
            raise
        except aiosmtplib.SMTPServerDisconnected as exc:
            self.smtp = None
            raise TransientError(f"{recipient}: the server dropped the connection ({exc})") from None
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421 or not 400 <= exc.code < 600:
                await self._drop()
            else:
                await self._reset()
            if 400 <= exc.code < 500 or exc.code < 400:
                raise TransientError(f"{recipient}: {_answer(exc)}") from None
            raise PermanentError(f"{recipient}: {_answer(exc)}") from None
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            await self._drop()
            raise TransientError(f"{recipient}: {type(exc).__name__}: {exc}") from None

    async def _reset(self) -> None:
        # After a refusal the transaction must be reset before the next MAIL FROM.
        if self.smtp is None:
            return
        try:
            await self.smtp.rset()
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
            await self._drop()

    async def _drop(self) -> None:
        if self.smtp is not None:
            await _quietly_close(self.smtp)
        self.smtp = None

    async def close(self) -> None:
        if self.smtp is not None and self.smtp.is_connected:
            try:
                await self.smtp.quit()
            except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
                pass
        await self._drop()


async def _quietly_close(smtp: aiosmtplib.SMTP) -> None:
    try:
        smtp.close()
    except Exception:  # noqa: BLE001 - closing a broken connection must never raise
        pass


class SmtpTransport:
    """The [smtp] server; open ``connections`` senders to use the pool."""

    name = "smtp"
    window = 2

    def __init__(self, *, settings: Settings) -> None:
        self.config = settings.smtp
        self.connections = settings.smtp.connections
        self.limiter = _limiter(settings.smtp.rate_per_second)

    async def connect(self) -> Sender:
        return _Windowed(_SmtpSender(self.config, self.limiter))


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
