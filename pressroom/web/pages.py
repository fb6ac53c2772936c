"""The pages every flow answers with: the site frame in the reader's language, and the few fixed messages."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

import jinja2
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from pressroom.errors import TemplateError
from pressroom.tokens import CSRF_MAX_AGE
from pressroom.web.core import Lazy, Web, duration
from pressroom.web.security import CSP, CSRF_COOKIE, Limiter

__all__ = ["bad_form", "bad_link", "message", "page", "too_many", "unavailable"]


def page(
    web: Web,
    request: Request,
    template: str,
    *,
    status: int = 200,
    background: BackgroundTask | None = None,
    language: str | None = None,
    **context: Any,
) -> Response:
    """Render a page with the site layout in ``language`` (default: :meth:`language` of the
    request); issues the CSRF cookie when the page has a form."""
    language = language or web.language(request)
    nonce = request.cookies.get(CSRF_COOKIE) or ""
    fresh = not re.fullmatch(r"[A-Za-z0-9_-]{16,64}", nonce)
    if fresh:
        nonce = secrets.token_urlsafe(18)
    try:
        html = web.env(language).get_template(template).render(
            **web.common,
            lang=language,
            description=web.settings.site.description_in(language)
            or web.translations(language).gettext("Press releases of %(site)s") % {"site": web.settings.site.name},
            canonical=f"{web.settings.site.base_url}{request.url.path}",
            csrf_token=Lazy(lambda: web.csrf.token(nonce)),  # signed only for pages with a form
            **context,
        )
    except jinja2.TemplateError as exc:
        raise TemplateError(f"templates/{template}: {exc}") from exc
    response = Response(html, status_code=status, media_type="text/html; charset=utf-8", background=background)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Referrer-Policy"] = "no-referrer"
    if fresh and "csrf_token" in html:
        response.set_cookie(
            CSRF_COOKIE,
            nonce,
            max_age=CSRF_MAX_AGE,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return response


def message(
    web: Web,
    request: Request,
    *,
    heading: str,
    paragraphs: list[str],
    status: int = 200,
    tone: str = "ok",
    eyebrow: str | None = None,
    links: list[tuple[str, str]] | None = None,
    background: BackgroundTask | None = None,
    headers: Mapping[str, str] | None = None,
    language: str | None = None,
) -> Response:
    """A page of a few paragraphs; the texts come translated, in ``language`` (default: the request's)."""
    language = language or web.language(request)
    response = page(
        web,
        request,
        "web/message.html.j2",
        status=status,
        background=background,
        language=language,
        heading=heading,
        paragraphs=paragraphs,
        tone=tone,
        eyebrow=eyebrow or web.translations(language).gettext("Your subscription"),
        links=links or [],
    )
    response.headers.update(headers or {})
    return response


def bad_link(web: Web, request: Request, reason: str) -> Response:
    language = web.language(request)
    _ = web.translations(language).gettext
    return message(
        web,
        request,
        status=400,
        tone="error",
        language=language,
        heading=_("This link does not work"),
        paragraphs=[
            _("We could not use this link: %(reason)s. Nothing was changed.") % {"reason": _(reason)},
            _("Links in our emails must be opened exactly as they arrived. If the link has expired, subscribe "
              "again and we will send a new one; every email we send also has working links at its end."),
        ],
        links=[(_("Subscribe again"), "/subscribe"), (_("Press releases"), "/")],
    )


def bad_form(web: Web, request: Request, reason: str) -> Response:
    language = web.language(request)
    _ = web.translations(language).gettext
    return message(
        web,
        request,
        status=400,
        tone="error",
        language=language,
        eyebrow=_("Sorry"),
        heading=_("This form could not be read"),
        paragraphs=[_("Nothing was changed: %(reason)s. Please go back and send the form again.") % {"reason": _(reason)}],
        links=[(_("Subscribe"), "/subscribe"), (_("Press releases"), "/")],
    )


def too_many(web: Web, request: Request, limiter: Limiter) -> Response:
    wait = limiter.retry_after()
    language = web.language(request)
    translations = web.translations(language)
    _ = translations.gettext
    return message(
        web,
        request,
        status=429,
        tone="error",
        language=language,
        eyebrow=_("Please wait"),
        heading=_("Too many attempts"),
        paragraphs=[
            _("We received many requests from your network. Please try again in %(wait)s.")
            % {"wait": duration(wait, translations)}
        ],
        headers={"Retry-After": str(wait)},
    )


def unavailable(web: Web, request: Request) -> Response:
    language = web.language(request)
    _ = web.translations(language).gettext
    return message(
        web,
        request,
        status=503,
        tone="error",
        language=language,
        eyebrow=_("Sorry"),
        heading=_("Please try again later"),
        paragraphs=[_("We could not do this just now. Nothing was saved; please try again in a few minutes.")],
        headers={"Retry-After": "120"},
    )
