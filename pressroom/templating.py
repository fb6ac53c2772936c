"""The one Jinja environment factory: the site, the emails, the social posts and the web app render with it.

Every environment is strict (an unknown name is an error, not an empty string), trims the
whitespace of block tags, speaks one language (:func:`pressroom.i18n.install`) and has the house
filters. What differs between uses is a parameter: the folders searched, what is escaped, whether a
trailing newline is kept, whether edited templates are picked up without a restart, and where
compiled templates are kept.
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import MutableMapping
from functools import lru_cache
from gettext import NullTranslations
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from pressroom import i18n

__all__ = ["environment"]


@lru_cache(maxsize=64)
def environment(
    folders: tuple[Path, ...],
    *,
    translations: NullTranslations,
    autoescape: bool | tuple[str, ...] = True,
    trailing_newline: bool = True,
    auto_reload: bool = True,
    compiled: Path | None = None,
    version: str = "",
) -> jinja2.Environment:
    """The environment of the templates in ``folders`` (the first that has a name wins), in the language of ``translations``.

    ``autoescape``: True (HTML), False (text), or the file endings whose templates are HTML
    (``("mjml.j2",)``: the other templates of the folder are text). ``auto_reload`` False spares a
    stat of each template on every render; ``version`` (a digest of the templates) then stands for
    the templates' state: a new version is a new environment. ``compiled``: where compiled templates
    are kept between processes. Made once per set of arguments.
    """
    del version  # part of the cache key only
    escaping = jinja2.select_autoescape(enabled_extensions=autoescape, default_for_string=False, default=False) \
        if isinstance(autoescape, tuple) else autoescape
    made = _Environment(
        loader=jinja2.FileSystemLoader(list(folders)),
        bytecode_cache=_CompiledTemplates(compiled) if compiled is not None else None,
        auto_reload=auto_reload,
        autoescape=escaping,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=trailing_newline,
    )
    made.filters.update(breakable=_breakable, wrap=_wrap, underline=_underline)
    return i18n.install(made, translations=translations)


class _Environment(jinja2.Environment):
    """Jinja's environment; without auto_reload, each template is looked up once. Jinja looks up the
    template of every ``extends`` and ``include`` on every render, through a cache that also reorders its
    queue of names each time: a tenth of a site page's render, eight times a page."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.loaded: dict[tuple[str, str | None], jinja2.Template] = {}

    def get_template(self, name: str | jinja2.Template, parent: str | None = None,
                     globals: MutableMapping[str, Any] | None = None) -> jinja2.Template:
        if self.auto_reload or globals is not None or not isinstance(name, str):
            return super().get_template(name, parent, globals)
        template = self.loaded.get((name, parent))
        if template is None:
            template = self.loaded[name, parent] = super().get_template(name, parent)
        return template


class _CompiledTemplates(jinja2.FileSystemBytecodeCache):
    """Compiled templates in var/cache/, checked against each template's source and Jinja's version:
    compiling them was a third of a rebuild after one new release at 1,000 releases. Like every cache
    there, it only saves time: one that cannot be written (var/cache/ deleted mid-run) is skipped."""

    def __init__(self, folder: Path) -> None:
        super().__init__(str(folder))

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            os.makedirs(self.directory, exist_ok=True)
            super().dump_bytecode(bucket)
        except OSError:
            return


def _breakable(text: str) -> Markup:
    """An address or URL that may wrap after ``@`` and ``/`` (a ``<wbr>`` there, not in ``//``), never inside a word."""
    return Markup(re.sub(r"(@|(?<!/)/(?![/]|$))", r"\1<wbr>", str(escape(text))))


def _wrap(text: object, width: int = 72) -> str:
    """Plain text folded to ``width`` columns at spaces (a long word or URL stays whole)."""
    return textwrap.fill(" ".join(str(text).split()), width=width, break_long_words=False, break_on_hyphens=False)


def _underline(text: object, char: str = "=") -> str:
    """A rule as long as the longest line of ``text`` wrapped at 72 columns: a heading's underline in plain text."""
    lines = textwrap.wrap(" ".join(str(text).split()), width=72, break_long_words=False)
    return char * max(len(line) for line in lines or [""])
