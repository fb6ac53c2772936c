"""The small public web app: subscribe (double opt-in), confirm, unsubscribe (RFC 8058), preferences, data.

``pressroom serve`` runs it with uvicorn. It also serves ``public/`` (ETag, Last-Modified,
304s), so one process can be the whole public site (a reverse proxy may serve ``public/``
itself: docs/operations.md).

======================  =========================================================================
GET  /subscribe         the form (also embedded, without a token, in every archive page)
POST /subscribe         records the request and emails a confirmation link (after the answer)
GET  /confirm           ``?token=`` a page with one "Confirm my subscription" button (HEAD too)
POST /confirm           ``?token=`` confirms the choices of that request, once
GET  /unsubscribe       ``?token=`` a page with one button
POST /unsubscribe       ``?token=`` RFC 8058 one-click: the link's token authenticates; answers 200
GET  /preferences       ``?token=`` topics, cadence, language, name; POST saves them
GET  /data              ``?token=`` what we keep; POST ``action=export`` (JSON) or ``action=erase``
POST /bounces           ``?token=`` the mail provider's bounce webhook
GET  /preview/<slug>    ``?token=`` a journalist's embargoed preview (its hero and downloads beside it)
GET  /approval/<token>  an editor's Approve or Reject page (with ``serve``'s Gate); POST decides
======================  =========================================================================

Rooms: :mod:`.app` (routes, middleware, lifespan, uvicorn), :mod:`.security` (body limits,
CSRF, origin, rate limits, headers with the Content-Security-Policy of every answer, log
redaction), :mod:`.core` (the state the flows share), :mod:`.pages` (the page frame and fixed
messages), :mod:`.forms` (the shared form fields), :mod:`.links` (the subscriber a link is for,
and the one seam that sends a subscription email), and one module of plain handler functions
per page flow: :mod:`.subscribe`, :mod:`.unsubscribe`, :mod:`.preferences`, :mod:`.data`,
:mod:`.preview`, :mod:`.bounces`, and :mod:`.approval` (the editors' links; ``pressroom serve``
passes it Prefect's side as a :class:`~pressroom.web.approval.Gate`).

Every answer to a link-bearing page says ``Referrer-Policy: no-referrer`` and
``Cache-Control: no-store``; no page has any script. Any :class:`~pressroom.errors.TransientError`
(the database went away) is answered with a 503 page, never a traceback.
"""

from pressroom.web.app import create_app, serve, server

__all__ = ["create_app", "serve", "server"]
