"""``POST /bounces``: the mail provider's bounce webhook (an RFC 3464 report, an ARF complaint, or JSON).

The URL's signed token (:func:`pressroom.bounces.webhook_token`) is the credential, so no CSRF.
The token is checked before a byte of the body is read (the body limit, before that, from
``Content-Length``), so an outsider cannot make the server read anything.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pressroom.audience import TokenError, verify_token
from pressroom.web.core import Web


def routes(web: Web) -> list[Route]:
    async def bounces(request: Request) -> Response:
        from pressroom.bounces import handle_webhook
        from pressroom.ledger import Ledger

        token = request.query_params.get("token", "")
        try:
            verify_token(settings=web.settings, token=token, action="bounces")
        except TokenError as exc:
            return JSONResponse({"error": exc.message}, status_code=403)
        body = await request.body()

        def handle() -> tuple[int, dict]:
            with web.writes:
                return handle_webhook(
                    settings=web.settings,
                    token=token,
                    body=body,
                    content_type=request.headers.get("content-type", ""),
                    audience=web.audience,
                    ledger=Ledger.from_settings(web.settings),
                    now=web.clock(),
                )

        status, payload = await run_in_threadpool(handle)
        return JSONResponse(payload, status_code=status)

    return [Route("/bounces", bounces, methods=["POST"])]
