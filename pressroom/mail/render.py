"""An email's two bodies from ``templates/email/``: ``<kind>.mjml.j2`` (Jinja2 with autoescape, then MJML)
and ``<kind>.txt.j2`` (the plain-text twin, no escaping). The only module that imports MJML.

A project's own ``templates/email/`` comes first; a template it lacks is the packaged one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2
from mjml import mjml2html

from pressroom import i18n, templating
from pressroom.errors import TemplateError
from pressroom.settings import Settings

__all__ = ["both"]

_PACKAGED_TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "email"
# mj-image writes height="auto", which is not a valid value of the attribute; its style says the same.
_HEIGHT_AUTO = re.compile(r'(<img\b[^>]*?)\sheight="auto"')


def both(settings: Settings, kind: str, context: dict[str, Any]) -> tuple[str, str]:
    """The HTML (MJML rendered) and the plain text of email ``kind``, each with its own slot tokens."""
    html = _mjml(settings, f"{kind}.mjml.j2", context | {"slot": context["slot"]})
    text = _render(settings, f"{kind}.txt.j2", context | {"slot": context["text_slot"]})
    return html, text.strip() + "\n"


def _render(settings: Settings, name: str, context: dict[str, Any]) -> str:
    catalogue = i18n.translations(language=context["language"], settings=settings)
    folders = (settings.path("templates") / "email", _PACKAGED_TEMPLATES)
    try:
        environment = templating.environment(folders, translations=catalogue, autoescape=("mjml.j2",))
        return environment.get_template(name).render(context)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"email template {exc.name!r} not found in templates/email/") from None
    except jinja2.TemplateError as exc:
        where = f" line {exc.lineno}" if getattr(exc, "lineno", None) else ""
        raise TemplateError(f"templates/email/{name}{where}: {exc.message}") from None


def _mjml(settings: Settings, name: str, context: dict[str, Any]) -> str:
    source = _render(settings, name, context)
    try:
        html = mjml2html(source, disable_comments=True)
    except Exception as exc:  # mjml-python raises plain exceptions for invalid MJML
        raise TemplateError(f"templates/email/{name}: MJML could not be rendered: {exc}") from None
    return _HEIGHT_AUTO.sub(r"\1", html)
