"""Every fixed word of the site, the emails and the web pages, in the reader's language.

The only room that imports Babel. Catalogues are gettext ``.po`` files shipped in
``pressroom/i18n/locale/<lang>/LC_MESSAGES/messages.po`` (en, de, fr), compiled when a language is
first asked for: there is no build step and no ``.mo`` file in git. A project's compiled catalogues
are kept in ``var/cache/catalogues/``, named by a digest of the ``.po`` files they come from, so an
edited catalogue is compiled again by the next process that asks for it. A project's own
catalogues under ``[site] locale_dir`` (same layout) extend and override them, message by message.

A message missing from a language's catalogue falls back to the site language's, then to the
English text written in the template or the code. ``scripts/extract-messages`` collects every
message into ``messages.pot`` and updates the catalogues.
"""

from __future__ import annotations

import gettext as gettext_module
import hashlib
import os
import struct
from collections.abc import Sequence
from datetime import datetime, tzinfo
from functools import lru_cache
from io import BytesIO
from pathlib import Path

import babel
import jinja2
from babel import Locale, UnknownLocaleError, negotiate_locale
from babel.core import get_global
from babel.dates import format_date as babel_format_date
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from babel.units import format_unit
from markupsafe import Markup

from pressroom.errors import ConfigError
from pressroom.settings import Settings

__all__ = [
    "N_", "consent", "digest_subject", "fingerprint", "format_date", "format_period", "install", "language_name", "negotiate",
    "og_locale", "translations",
]

_CODE = Path(__file__).resolve()
_LOCALE = _CODE.parent / "locale"  # the shipped catalogues: en, de, fr


def N_(message: str) -> str:  # the gettext convention Babel's extractor looks for
    """Mark a message for extraction where it is defined; it is translated where it is shown."""
    return message


# Translators: how a date reads, as a CLDR pattern (d: day, MMMM: month name, y: year), e.g. "d. MMMM y".
_DATE = N_("d MMMM y")
# Translators: the first day of a period within one month ("1–7 December 2026"), as a CLDR pattern.
_DAY = N_("d")
# Translators: the first day of a period across two months ("28 November – 4 December 2026"), as a CLDR pattern.
_DAY_MONTH = N_("d MMMM")


def translations(*, language: str, settings: Settings | None) -> gettext_module.NullTranslations:
    """The messages of ``language``, falling back to the site language's, then to English.

    Without settings: the shipped catalogues only (no project catalogue, no site language).
    """
    if settings is None:
        return _translations(language, "en", "", None)
    return _translations(language, settings.site.language, _project_dir(settings), (settings.root, settings.paths.var))


def install(environment: jinja2.Environment, *, translations: gettext_module.NullTranslations) -> jinja2.Environment:
    """Give ``environment`` the ``_()``, ``ngettext()`` and ``{% trans %}`` of one language (newstyle
    gettext: ``_("Page %(number)s", number=n)``, escaped in HTML templates): one environment per
    render language, so a template compiled for German never shows English."""
    environment.add_extension("jinja2.ext.i18n")
    environment.filters["og_locale"] = og_locale
    environment.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    if isinstance(environment.autoescape, bool):
        # What newstyle ``_()`` does, minus its two context calls per message: a site page has twenty
        # messages, and they were a tenth of a full build. Only where escaping is fixed for the whole
        # environment, since Jinja's own version asks the template being rendered.
        escape = Markup if environment.autoescape else str
        message_of = translations.gettext
        plain: dict[str, str] = {}  # a message without variables, as shown: each page asks for the same twenty

        def translated(message: str, **variables: object) -> str:
            if variables:
                return escape(message_of(message)) % variables
            shown = plain.get(message)
            if shown is None:
                shown = plain[message] = escape(message_of(message)) % variables
            return shown

        environment.globals["_"] = translated
    return environment


def format_date(
    *, moment: datetime, language: str, settings: Settings, year: bool = True, zone: tzinfo | None = None
) -> str:
    """``moment``'s day in the site time zone (or ``zone``) as ``language`` writes it: "2 December 2026",
    "2. Dezember 2026"; without ``year``: "2 December"."""
    pattern = translations(language=language, settings=settings).gettext(_DATE if year else _DAY_MONTH)
    return babel_format_date(moment.astimezone(zone or settings.site.tz), pattern, locale=_locale(language))


def format_period(*, first: datetime, last: datetime, language: str, settings: Settings) -> str:
    """Two days as one period: "1–7 December 2026", or "28 November – 4 December 2026" across months."""
    zone = settings.site.tz
    first, last = first.astimezone(zone), last.astimezone(zone)
    end = format_date(moment=last, language=language, settings=settings)
    same_month = (first.year, first.month) == (last.year, last.month)
    pattern = translations(language=language, settings=settings).gettext(_DAY if same_month else _DAY_MONTH)
    start = babel_format_date(first, pattern, locale=_locale(language))
    return f"{start}–{end}" if same_month else f"{start} – {end}"


_DEFAULT_CONSENT = N_(
    "I want to receive press releases from {site} by email, on the topics and at the pace I chose. "
    "I can change this or unsubscribe at any time with the links in every email."
)


def consent(*, language: str, settings: Settings) -> str:
    """The consent sentence a form shows in ``language``: the project's own (``[web] consent_text``,
    a string or a {language: sentence} table), else the default sentence from the catalogues."""
    web, name = settings.web, settings.site.name
    if web.consent_text != type(web).model_fields["consent_text"].default:
        return web.consent(name, language)
    return translations(language=language, settings=settings).gettext(_DEFAULT_CONSENT).replace("{site}", name)


_DEFAULT_DIGEST = N_("This week's press releases")


def digest_subject(*, language: str, settings: Settings) -> str:
    """The digest's heading in ``language``: the project's own ``[digest] subject``, else the default from the catalogues."""
    subject = settings.digest.subject
    if subject != type(settings.digest).model_fields["subject"].default:
        return subject
    return translations(language=language, settings=settings).gettext(_DEFAULT_DIGEST)


def negotiate(header: str, offered: Sequence[str]) -> str | None:
    """The first of ``offered`` that an Accept-Language header asks for (``de-AT`` finds ``de``), or None."""
    asked: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")[:32]):  # a header is the client's: bounded
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and quality > 0:
            asked.append((-quality, position, tag.strip().replace("_", "-")))
    preferred = [tag for _, _, tag in sorted(asked)]
    return negotiate_locale(preferred, list(offered), sep="-") if preferred else None


def fingerprint(*, settings: Settings) -> str:
    """A digest of every catalogue (shipped and the project's): a changed message re-renders what shows it."""
    digest = hashlib.blake2b(digest_size=16)
    project = _project_dir(settings)
    for folder in filter(None, (str(_LOCALE), project)):
        for file in sorted(Path(folder).glob("*/LC_MESSAGES/messages.po")):
            digest.update(file.relative_to(folder).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def language_name(code: str) -> str:
    """A language as its speakers write it, for a language menu: "Deutsch (de)", "Français (fr)"."""
    try:
        name = Locale.parse(code.replace("-", "_")).get_display_name() or ""
    except (UnknownLocaleError, ValueError):
        name = ""
    return f"{name[:1].upper()}{name[1:]} ({code})" if name else code


@lru_cache(maxsize=64)
def og_locale(code: str) -> str:
    """A language as Open Graph's ``og:locale`` writes it, language_TERRITORY: "de" -> "de_DE", "pt-BR" ->
    "pt_BR"; a language alone gets the territory where it is most spoken (CLDR's likely subtags: "en" -> "en_US")."""
    language, *subtags = code.replace("-", "_").split("_")
    territory = next((tag.upper() for tag in subtags if len(tag) == 2 or tag.isdigit()), None)
    if territory is None:
        likely = get_global("likely_subtags").get(language.lower())
        try:
            territory = Locale.parse(likely).territory if likely else None
        except (UnknownLocaleError, ValueError):
            territory = None
    return f"{language.lower()}_{territory}" if territory else language.lower()


@lru_cache(maxsize=4096)  # every release page shows its press kit's size, and kits of a site are much alike
def format_size(size: int, *, language: str) -> str:
    """A file size as ``language`` writes it, in decimal units as file managers and browsers show them:
    "1.5 MB", "1,5 MB", "1,5 Mo", "340 kB"."""
    if size < 1000:  # "122 bytes", "122 octets": the short form would be "122 byte"
        return format_unit(size, "digital-byte", length="long", locale=_locale(language))
    unit, value = ("digital-megabyte", size / 1e6) if size >= 1_000_000 else ("digital-kilobyte", size / 1e3)
    return format_unit(value, unit, length="short", format="#,##0.#", locale=_locale(language))


def _project_dir(settings: Settings) -> str:
    folder = settings.site.locale_dir
    if not folder:
        return ""
    path = Path(folder) if Path(folder).is_absolute() else settings.root / folder
    if not path.is_dir():
        raise ConfigError(
            f"[site] locale_dir {folder!r} is not a folder ({path})",
            hint="point it at a folder holding <lang>/LC_MESSAGES/messages.po, or remove the setting",
        )
    return str(path)


@lru_cache(maxsize=64)
def _translations(language: str, site_language: str, project: str, var: tuple[Path, Path] | None) -> gettext_module.NullTranslations:
    """``var``: the project root and its var/ folder as [paths] has it (Settings.path would resolve links on each of
    the thousands of lookups of a build), where compiled catalogues are kept; None: not kept."""
    cache = os.path.join(*var, "cache", "catalogues") if var is not None else ""
    first, *fallbacks = (_compiled(code, project, cache) for code in dict.fromkeys((language, site_language, "en")))
    for fallback in fallbacks:
        first.add_fallback(fallback)  # appended to the end of the chain
    return first


def _compiled(language: str, project: str, cache: str) -> Translations:
    """The shipped catalogue of ``language`` with the project's messages over it; empty when neither has one.
    Kept compiled in ``cache`` (when given): reading a ``.po`` file was 10 ms of every build process, per language."""
    sources = _sources(language, project)
    # What the compiled catalogue depends on: the .po files, Babel (its plural rules) and this code, which merges them.
    digest = hashlib.blake2b(f"{language}\0{babel.__version__}\0".encode() + _CODE.read_bytes(), digest_size=16)
    for file, data in sources:
        digest.update(str(file).encode() + b"\0" + data + b"\0")
    kept = Path(cache) / f"{language}.{digest.hexdigest()}.mo" if cache else None
    if kept is not None:
        try:
            return Translations(fp=BytesIO(kept.read_bytes()))
        except (OSError, ValueError, struct.error):
            pass  # not compiled yet, or damaged: compiled again
    buffer = BytesIO()
    write_mo(buffer, _merged(language, sources))
    if kept is not None:
        _keep(kept, buffer.getvalue())
    buffer.seek(0)
    return Translations(fp=buffer)


def _sources(language: str, project: str) -> list[tuple[Path, bytes]]:
    """The catalogue files of ``language`` (shipped, then the project's; ``de_AT`` else ``de``) and their bytes."""
    sources = []
    for folder in (str(_LOCALE), project):
        if not folder:
            continue
        for code in dict.fromkeys((language.replace("-", "_"), language.split("-")[0])):
            file = Path(folder) / code / "LC_MESSAGES" / "messages.po"
            try:
                sources.append((file, file.read_bytes()))
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                continue
            except OSError as exc:
                raise _unreadable(file, exc) from None
            break
    return sources


def _merged(language: str, sources: list[tuple[Path, bytes]]) -> Catalog:
    merged = Catalog(locale=str(_locale(language)))  # its plural rule
    for file, data in sources:
        for message in _read(file, data):
            if message.id and message.string:
                if message.id in merged:
                    del merged[message.id]  # setting an existing id would keep its old text
                merged[message.id] = message
    return merged


def _keep(file: Path, data: bytes) -> None:
    """Write a compiled catalogue in place of the language's older ones; a cache that cannot be written is skipped."""
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        for older in file.parent.glob(f"{file.name.partition('.')[0]}.*.mo"):
            older.unlink(missing_ok=True)
        partial = file.with_name(f".{file.name}.{os.getpid()}")
        partial.write_bytes(data)
        os.replace(partial, file)  # whole or not at all, for a process reading it meanwhile
    except OSError:
        return


def _read(file: Path, data: bytes) -> Catalog:
    try:
        return read_po(BytesIO(data))
    except ValueError as exc:
        raise _unreadable(file, exc) from None


def _unreadable(file: Path, exc: Exception) -> ConfigError:
    return ConfigError(f"{file}: the catalogue cannot be read: {exc}", hint="fix the .po file (msgfmt -c shows where)")


@lru_cache(maxsize=64)
def _locale(language: str) -> Locale:
    try:
        return Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")
