"""Addresses and names: the one home of how an address is normalised, a mailbox counted, a name cleaned.

Also the keyed hash an erased address that must stay suppressed is kept under, and the topic
and language rules every record of the audience shares.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable
from email.errors import HeaderParseError
from email.header import decode_header, make_header

from pressroom.errors import AddressError
from pressroom.text import LANGUAGE_RE, slugify

__all__ = ["HASH_PREFIX", "address_hash", "check_language", "clean_name", "mailbox", "normalise_address", "topic_slugs"]

HASH_PREFIX = "h:"
_MAX_NAME = 100
_LOCAL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+$")
_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f]")


def _check_local(address: str, local: str) -> None:
    if not local or len(local) > 64 or not _LOCAL_RE.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise AddressError(f"{address!r}: the part before @ is not valid")


def _ascii_domain(address: str, domain: str) -> str:
    try:
        ascii_domain = domain if domain.isascii() else domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise AddressError(f"{address!r}: the domain is not valid") from None
    labels = ascii_domain.rstrip(".").split(".")
    if len(labels) < 2 or not all(_LABEL_RE.match(label) for label in labels) or labels[-1].isdigit():
        raise AddressError(f"{address!r}: the domain is not valid (it needs a dot, e.g. example.org)")
    return ascii_domain.rstrip(".")


def normalise_address(address: str) -> str:
    """Trimmed, lower-cased address; raises :class:`AddressError` saying what is wrong.

    Deliberately strict (plain dot-atom local part, a dotted domain): an address a mail
    server would reject is better refused at the door than bounced at send time.
    """
    value = address.strip()
    if not value:
        raise AddressError("the address is empty")
    if _SPACE_OR_CONTROL.search(value):
        raise AddressError(f"{address!r} contains spaces or control characters")
    if value.count("@") != 1:
        raise AddressError(f"{address!r} must contain exactly one @")
    local, domain = value.rsplit("@", 1)
    _check_local(address, local)
    result = f"{local}@{_ascii_domain(address, domain)}".lower()
    if len(result) > 254:
        raise AddressError(f"{address!r} is longer than 254 characters")
    return result


def mailbox(address: str) -> str:
    """The mailbox an address reaches, for counting: normalised, without a ``+tag``.

    ``Jane+news@Example.org.`` and ``jane@example.org`` are one inbox, so a cap on emails per
    address counts them once.
    """
    local, _, domain = normalise_address(address).rpartition("@")
    return f"{local.split('+', 1)[0] or local}@{domain}"


def address_hash(*, key: bytes, address: str) -> str:
    """What is kept of an erased address that must stay suppressed: a keyed hash, useless without the key."""
    digest = hmac.new(hashlib.sha256(b"pressroom-address\x00" + key).digest(), address.encode(), hashlib.sha256)
    return HASH_PREFIX + digest.hexdigest()[:40]


# Names end up in headers and greetings: drop controls, format characters and line separators.
_UNSAFE_IN_NAME = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}
# Dots a reader takes for a dot, beyond what NFKC already folds (full-width, small, one-dot leader).
_DOT_LIKE = str.maketrans({"\u3002": ".", "\uff61": ".", "\u00b7": ".", "\u2219": ".", "\u22c5": ".", "\u0701": "."})
_LINK_IN_NAME = re.compile(
    r"://|\bwww\b|\bhttps?\b|xn--|@|[^\W_](?:\.|\s*(?:\(dot\)|\[dot\]|\[\.\]|\(\.\))\s*)[^\W\d_]{2}",
    re.IGNORECASE,
)


def _decoded(value: str) -> str:
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return value


def clean_name(value: str, *, links: bool = False) -> str:
    """A name as it is stored and shown: one line, no control or invisible characters, at most 100 characters.

    RFC 2047 encoded words (``=?utf-8?b?...?=``) are decoded first, so what is checked is what a
    mail client would show. Unless ``links`` (operator-written text: the site's or sender's name),
    anything that reads as a web address, an email address or a domain, look-alike dots
    included, raises :class:`AddressError`: a name travels into emails, so a link in it would be
    a way to send that link to anyone, from us.
    """
    decoded = _decoded(value)
    # Printable ASCII (most names, checked again for every message of a fan-out) has no unsafe
    # character and nothing for NFKC or the look-alike dots to fold.
    plain = decoded.isascii() and decoded.isprintable()
    kept = decoded if plain else "".join(" " if unicodedata.category(ch) in _UNSAFE_IN_NAME else ch for ch in decoded)
    name = " ".join(kept.split())[:_MAX_NAME].strip()
    if not links and _LINK_IN_NAME.search(name if plain else unicodedata.normalize("NFKC", name).translate(_DOT_LIKE)):
        raise AddressError(
            f"the name {name!r} reads as a web or email address",
            hint="a name cannot contain a web address, an email address or a domain; write the name alone",
        )
    return name


def topic_slugs(values: Iterable[str]) -> tuple[str, ...]:
    """Topics as stored: tag slugs, sorted, each once."""
    return tuple(sorted({slug for slug in (slugify(value) for value in values) if slug}))


def check_language(address: str, language: str) -> str:
    """``language`` if it is a language tag such as en or pt-BR; :class:`AddressError` naming ``address`` otherwise."""
    if not LANGUAGE_RE.match(language):
        raise AddressError(f"{address}: language {language!r} is not a language tag such as en or pt-BR")
    return language
