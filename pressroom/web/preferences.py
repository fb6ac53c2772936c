"""Preferences: topics, cadence, language and name, behind the signed link in every email.

Each save is a consent event with the client hash, the form, its version and the exact text
shown, plus what changed.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from pressroom.audience import Subscriber, sign_token
from pressroom.i18n import N_
from pressroom.web import forms, links, pages
from pressroom.web.core import Web, language_label
from pressroom.web.security import client, read_form

# The words on the button: stored with each change as the text the subscriber acted on.
_PREFERENCES_TEXT = N_("Save preferences")


async def token_post(web: Web, request: Request) -> tuple[Subscriber, str, FormData] | Response:
    """The checks every POST behind a preferences link starts with: rate, token, then the body.

    Returns (subscriber, token, form), or the response that ends the request.
    """
    if not web.posts.allow(client(request)):
        return pages.too_many(web, request, web.posts)
    linked = await links.linked_subscriber(web, request, "preferences")
    if isinstance(linked, Response):
        return linked
    subscriber, token = linked
    form = await read_form(request)
    if isinstance(form, str):
        return pages.bad_form(web, request, form)
    return subscriber, token, form


def preferences_form(
    web: Web,
    request: Request,
    subscriber: Subscriber,
    token: str,
    *,
    values: dict[str, Any],
    errors: dict[str, str],
    notice: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    languages = list(web.choices().languages)
    if subscriber.language not in {code for code, _ in languages}:
        languages.append((subscriber.language, language_label(subscriber.language)))
    unsubscribe = sign_token(settings=web.settings, action="unsubscribe", subscriber_id=subscriber.id)
    language = web.language(request, subscriber)
    return pages.page(
        web,
        request,
        "web/preferences.html.j2",
        status=status,
        language=language,
        subscriber=subscriber,
        token=token,
        values=values,
        errors=errors,
        notice=notice,
        topics=forms.topic_choices(web, tuple(values["topics"])),
        languages=languages,
        autofocus=next(iter(errors), ""),
        unsubscribe_href=f"/unsubscribe?token={quote(unsubscribe)}",
        save_label=web.translations(language).gettext(_PREFERENCES_TEXT),
    )

async def preferences_page(web: Web, request: Request) -> Response:
    linked = await links.linked_subscriber(web, request, "preferences")
    if isinstance(linked, Response):
        return linked
    subscriber, token = linked
    _ = web.translations(web.language(request, subscriber)).gettext
    notice = {"tone": "ok", "text": _("Your preferences are saved.")} if request.query_params.get("saved") else None
    values = {"name": subscriber.name, "topics": subscriber.topics, "cadence": subscriber.cadence, "language": subscriber.language}
    return preferences_form(web, request, subscriber, token, values=values, errors={}, notice=notice)

async def preferences(web: Web, request: Request) -> Response:
    checks = await token_post(web, request)
    if isinstance(checks, Response):
        return checks
    subscriber, token, form = checks
    checked = forms.read_form(web, form, current_language=subscriber.language)
    values = checked.values()
    if web.csrf_verdict(request, form) != "ok":
        _ = web.translations(web.language(request, subscriber)).gettext
        notice = {"tone": "error", "text": _("This form had expired. Nothing was saved: please check it and save again.")}
        return preferences_form(web, request, subscriber, token, values=values, errors={}, notice=notice, status=403)
    if checked.errors:
        return preferences_form(web, request, subscriber, token, values=values, errors=checked.errors, status=400)
    evidence = web.evidence(
        request, form="preferences", text=web.translations(web.language(request, subscriber)).gettext(_PREFERENCES_TEXT)
    )

    def save() -> None:
        with web.writes:
            web.audience.set_preferences(
                subscriber_id=subscriber.id,
                now=web.clock(),
                source="web:preferences",
                topics=checked.topics,
                cadence=checked.cadence,
                language=checked.language,
                name=checked.name,
                evidence=evidence,
            )

    await run_in_threadpool(save)
    # Post/redirect/get: reloading the page after saving does not post again.
    return RedirectResponse(f"/preferences?token={quote(token)}&saved=1", status_code=303)


def routes(web: Web) -> list[Route]:
    return [
        Route("/preferences", functools.partial(preferences_page, web), methods=["GET"]),
        Route("/preferences", functools.partial(preferences, web), methods=["POST"]),
    ]
