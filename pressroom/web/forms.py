"""The fields the subscribe and preferences forms share, read and checked with one message per wrong field."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData

from pressroom.audience import CADENCES, AddressError, clean_name, normalise_address
from pressroom.web.core import Web

__all__ = ["Form", "read_form", "topic_choices"]

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


@dataclass(frozen=True)
class Form:
    """A submitted subscribe or preferences form, cleaned, with one message per wrong field."""

    email: str
    name: str
    topics: tuple[str, ...]
    cadence: str
    language: str
    errors: dict[str, str]

    def values(self) -> dict[str, Any]:
        return {"email": self.email, "name": self.name, "topics": self.topics, "cadence": self.cadence, "language": self.language}


def read_form(web: Web, form: FormData, *, current_language: str = "", with_email: bool = False) -> Form:
    """Clean and check the fields shared by the subscribe (``with_email``) and preferences forms;
    the messages are in ``current_language`` (the page's)."""
    _ = web.translations(current_language or web.settings.site.language).gettext
    errors: dict[str, str] = {}
    email = _email(form, errors, _) if with_email else str(form.get("email") or "").strip()[:320]
    name = _name(form, errors, _)
    topics = _topics(form, errors, _)
    cadence = str(form.get("cadence") or "per-release")
    if cadence not in CADENCES:
        errors["cadence"] = _("Choose how often: every release or a weekly digest.")
        cadence = "per-release"
    fallback = current_language or web.settings.site.language
    language = str(form.get("language") or fallback)
    if "language" in form and language not in {code for code, _ in web.choices().languages}:
        errors["language"] = _("Choose a language from the list.")
        language = fallback
    return Form(email=email, name=name, topics=topics, cadence=cadence, language=language, errors=errors)


def _topics(form: FormData, errors: dict[str, str], _: Callable[[str], str]) -> tuple[str, ...]:
    topics = tuple(dict.fromkeys(str(value) for value in form.getlist("topics")))
    if len(topics) > 100 or not all(_SLUG.match(slug) for slug in topics):
        errors["topics"] = _("Choose topics from the list.")
        return tuple(slug for slug in topics if _SLUG.match(slug))[:100]
    return topics


def _email(form: FormData, errors: dict[str, str], _: Callable[[str], str]) -> str:
    raw = str(form.get("email") or "").strip()[:320]
    if not raw:
        errors["email"] = _("Enter your email address.")
        return raw
    try:
        return normalise_address(raw)
    except AddressError:
        errors["email"] = _("Enter an email address in the form name@example.org.")
        return raw


def _name(form: FormData, errors: dict[str, str], _: Callable[[str], str]) -> str:
    raw = str(form.get("name") or "")
    try:
        return clean_name(raw)
    except AddressError:
        errors["name"] = _("A name cannot contain a web or email address.")
        return clean_name(raw, links=True)


def topic_choices(web: Web, chosen: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """The known topics, plus any the person chose that no public release carries any more."""
    known = list(web.choices().topics)
    slugs = {slug for slug, _ in known}
    return known + [(slug, slug) for slug in chosen if slug not in slugs]
