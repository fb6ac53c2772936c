"""What stands between the internet and the handlers: body limits, CSRF, origin, rate limits, headers, logs.

Each defence is built the way it is for a reason:

* Body limits. :class:`BodyLimit` answers 413 from ``Content-Length`` before a byte of the body
  is read, and stops a chunked body at ``[web] max_body_bytes``: memory never holds more than
  one limit's worth per request. A client that goes away mid-request is one log line.
* CSRF. The app's own forms carry a signed token bound to a random cookie (double submit), so a
  token scraped by another site is useless without the victim's cookie. The subscribe form
  embedded in the *static* archive pages cannot carry a per-visitor token, so a POST without a
  token is accepted only when its ``Origin`` (or, failing that, ``Referer``) is this site;
  browsers set ``Origin`` on every cross-site POST and scripts cannot forge it.
* Rate limits are token buckets counted in this process (one ``pressroom serve`` per site is the
  supported setup), in a table of bounded size: the least recently seen clients are forgotten
  first. Confirmation emails are also capped per mailbox and for the whole site in the database.
  The client address is the socket's unless ``[web] forwarded_allow_ips`` names the proxy.
* Tokens in URLs never reach the access log: :class:`RedactTokens` rewrites uvicorn's access
  lines.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from urllib.parse import parse_qsl, urlsplit

from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pressroom.tokens import csrf_token, csrf_valid

log = logging.getLogger("pressroom.web")

CSRF_COOKIE = "pressroom_csrf"
# A strict policy is possible because no page has script; inline style only for the brand colour.
CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_MAX_CLIENTS = 50_000  # rate-limit buckets kept; beyond, the least recently seen go
_TOKEN_IN_URL = re.compile(r"((?:^|[?&])token=)[^&\s\"]*")


def _plain(status: int, text: str) -> list[Message]:
    body = (text + "\n").encode()
    return [
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        },
        {"type": "http.response.body", "body": body},
    ]


class BodyLimit:
    """413 for a body over ``max_bytes`` (declared or streamed); one log line for a client that left."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            for message in _plain(413, f"The request body is larger than {self.max_bytes} bytes."):
                await send(message)
            return
        received = 0
        started = too_large = False

        async def limited() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # To the app the body ends as if the client had gone: it reads no further.
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except ClientDisconnect:
            if not too_large:
                log.warning("client went away before its %s %s was read", scope.get("method"), scope.get("path"))
            elif not started:
                for message in _plain(413, f"The request body is larger than {self.max_bytes} bytes."):
                    await send(message)


_MAX_FIELDS = 200


async def read_form(request: Request) -> FormData | str:
    """The posted form (urlencoded or multipart, no files), or why it cannot be read (malformed, a file, too many fields)."""
    try:
        if request.headers.get("content-type", "").partition(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            # Every form on the site posts this way. Read whole (BodyLimit bounds it) and split by the standard
            # library, as Starlette's streaming parser would (latin-1, then percent-decoded as UTF-8): that parser
            # cost a subscribe POST more than its share of the database work.
            body = (await request.body()).decode("latin-1")
            return FormData(parse_qsl(body, keep_blank_values=True, max_num_fields=_MAX_FIELDS))
        return await request.form(max_files=0, max_fields=_MAX_FIELDS)
    except (MultiPartException, UnicodeError, ValueError, KeyError) as exc:
        return str(exc) or "unreadable form"


class Limiter:
    """Token buckets per key: ``limit`` events per ``period`` seconds, refilled smoothly.

    Thread-safe; in memory, for this process only; at most ``_MAX_CLIENTS`` keys.
    """

    def __init__(self, *, limit: int, period: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = float(limit)
        self.rate = limit / period
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Take one token for ``key``; False when its bucket is empty."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.limit, now))
            tokens = min(self.limit, tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            while len(self._buckets) > _MAX_CLIENTS:
                self._buckets.popitem(last=False)
            return allowed

    def retry_after(self) -> int:
        """Seconds until one token is back, for the Retry-After header."""
        return max(1, int(1.0 / self.rate + 0.999))


class Csrf:
    """Signed form tokens bound to a random cookie (``nonce.issued.mac``): :func:`pressroom.tokens.csrf_token`,
    verified with every key, so a form opened before a key rotation still posts."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        self._keys = tuple(keys)

    def token(self, nonce: str) -> str:
        return csrf_token(keys=self._keys, nonce=nonce)

    def valid(self, token: str, cookie_nonce: str | None) -> bool:
        return csrf_valid(keys=self._keys, token=token, cookie_nonce=cookie_nonce)


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an absolute URL, or None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def csrf_verdict(request: Request, form: FormData, *, csrf: Csrf, site_origin: str | None) -> str:
    """``ok``, ``missing`` (no token and no origin to judge by) or ``bad``."""
    token = str(form.get("csrf_token") or "")
    if token:
        return "ok" if csrf.valid(token, request.cookies.get(CSRF_COOKIE)) else "bad"
    # The static archive pages cannot hold a per-visitor token: judge by where the POST comes from.
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        referer = request.headers.get("referer")
        origin = origin_of(referer) if referer else None
    if origin is None:
        return "missing"
    own = f"{request.scope.get('scheme', 'http')}://{request.headers.get('host', '')}"
    return "ok" if origin in (site_origin, own) else "bad"


def client(request: Request) -> str:
    """The client address (uvicorn replaced it from X-Forwarded-For only for a trusted proxy)."""
    return request.client.host if request.client else "unknown"


class SecurityHeaders:
    """Headers every response gets, static files included."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.headers = [
            (b"x-content-type-options", b"nosniff"),
            # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on the
            # archive form's POST, and the Origin is what vouches for that form (see CSRF above).
            # Pages whose URL holds a token set no-referrer themselves.
            (b"referrer-policy", b"same-origin"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
            # Every answer: the public pages, a 404, a preview's hero, the approval pages.
            (b"content-security-policy", CSP.encode()),
        ]
        if https:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    header for header in self.headers if header[0] not in present
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


def redact(text: str) -> str:
    """``text`` with the value of every ``token=`` query parameter replaced."""
    return _TOKEN_IN_URL.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    """On uvicorn's access logger: the path is logged, the link's token is not."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def redact_access_log() -> None:
    """Install :class:`RedactTokens` on ``uvicorn.access`` once per process."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(existing, RedactTokens) for existing in access.filters):
        access.addFilter(RedactTokens())
