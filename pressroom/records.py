"""The frozen records that files under ``content/`` become, and what releases and organisations share.

Releases (``pressroom.releases``) and co-issuers (``pressroom.organisations``) are both validated
into frozen pydantic models built on :class:`Frozen`; a media contact is a field of both.
"""

from __future__ import annotations

import re
import sys
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from pressroom.frontmatter import problem

__all__ = ["Contact", "Frozen", "Shared"]

_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")
_intern = sys.intern


class Frozen(BaseModel):
    """A record read from a file: unknown fields are errors, and it never changes once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __reduce__(self) -> tuple[Any, ...]:
        # Every release comes out of a pickle (the cache, a parsing worker): its fields as they were,
        # without pydantic's generic __setstate__, and one shared object for what thousands of records
        # repeat (the set of the fields given: 2.7 KB a release; short texts such as a status or tags).
        model = type(self)
        names = _names(model, tuple(self.__dict__))
        given = self.__pydantic_fields_set__
        return _record, (model, names, tuple(self.__dict__.values()),
                         sum(1 << bit for bit, name in enumerate(names) if name in given))


def _record(model: type[Frozen], names: tuple[str, ...], values: tuple, given: int) -> Frozen:
    """A record unpickled: its fields set as they were, the set of the fields given and the short texts many
    records repeat each one shared object."""
    state = dict(zip(names, values, strict=True))
    for name in _shared_texts(model, names):
        value = state[name]
        if type(value) is str:
            state[name] = _intern(value)
        elif type(value) is tuple:
            state[name] = tuple(_intern(item) if type(item) is str else item for item in value)
    record = model.__new__(model)
    _set = object.__setattr__
    _set(record, "__dict__", state)
    fields = _GIVEN.get((names, given))
    if fields is None:
        fields = _GIVEN[(names, given)] = {name for bit, name in enumerate(names) if given >> bit & 1}
    _set(record, "__pydantic_fields_set__", fields)
    _set(record, "__pydantic_extra__", None)
    _set(record, "__pydantic_private__", None)
    return record


@lru_cache(maxsize=64)
def _names(model: type[Frozen], names: tuple[str, ...]) -> tuple[str, ...]:
    """One tuple of field names per model, so a pickle holds it once (its memo) rather than once a record."""
    return names


@lru_cache(maxsize=64)
def _shared_texts(model: type[Frozen], names: tuple[str, ...]) -> tuple[str, ...]:
    """The fields of ``model`` whose texts many records repeat: a choice (status), a language, tags, a prefix."""
    return tuple(name for name in names if name in _SHARED_TEXTS)


# Texts a whole archive shares a handful of values of; a title, a slug or a body is one release's own.
_SHARED_TEXTS = frozenset({"status", "language", "prefix", "tags", "topics", "written", "author", "name", "role",
                           "organisation", "email", "phone", "alt"})
_GIVEN: dict[tuple[tuple[str, ...], int], set[str]] = {}


class Shared(Frozen):
    """A small model many releases hold equal copies of (the default channel options, the press office's
    contact): unpickled, equal ones are one shared object (0.5 KB a release each)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _shared, (type(self), tuple(self.__dict__.items()), frozenset(self.__pydantic_fields_set__))


@lru_cache(maxsize=1024)
def _shared(model: type[Shared], values: tuple[tuple[str, Any], ...], given: frozenset[str]) -> Shared:
    return model.model_construct(_fields_set=set(given), **dict(values))


class Contact(Shared):
    """A media contact: of a release (``contacts:``) or of a co-issuer (``contact:``)."""

    name: str
    role: str = ""
    organisation: str = ""
    email: str = ""
    phone: str = ""

    @field_validator("email")
    @classmethod
    def _address(cls, value: str) -> str:
        value = value.strip()
        if value and not _ADDRESS.fullmatch(value):
            raise problem(f"{value!r} is not an email address", "write the whole address, e.g. press@example.org")
        return value
