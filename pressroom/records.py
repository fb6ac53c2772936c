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
_SHORT = 64  # characters: a value this short is likely one many releases share
_FIELD_SETS: dict[frozenset[str], set[str]] = {}
_intern = sys.intern


class Frozen(BaseModel):
    """A record read from a file: unknown fields are errors, and it never changes once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Every release comes out of a pickle (the cache, a parsing worker), each with its own copy of what
        # thousands of releases share: the set of the fields it was given (2.7 KB a release, 27 MB at 10,000)
        # and short values (status, language, tags, contacts). One shared object each instead; pydantic
        # copies the set before it changes one (model_copy), and a frozen model never changes its own.
        # The state is the pickle's own, changed in place: the parent process unpickles 10,000 releases with the
        # workers idle, so this runs as little Python as it can.
        given = state.get("__pydantic_fields_set__")
        if given is not None:
            state["__pydantic_fields_set__"] = _FIELD_SETS.setdefault(frozenset(given), given)
        values = state.get("__dict__")
        if values:
            for name, value in values.items():
                kind = type(value)
                if kind is str:
                    if len(value) <= _SHORT:
                        values[name] = _intern(value)
                elif kind is tuple and value and all(type(item) is str and len(item) <= _SHORT for item in value):
                    values[name] = tuple(map(_intern, value))
        super().__setstate__(state)


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
