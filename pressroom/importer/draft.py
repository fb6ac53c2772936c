"""A draft as the importer guesses it: its front matter, its body's blocks, and each guess in the words it prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pressroom.importer.blocks import Block, Picture

__all__ = ["Draft", "Guess"]


@dataclass(frozen=True)
class Guess:
    """One thing the importer decided, in the words it prints: ``title: from the first heading``."""

    field: str
    text: str
    todo: bool = False  # a person must still do something before the draft can go out
    warning: bool = False

    def line(self) -> str:
        mark = "TODO: " if self.todo else "warning: " if self.warning else ""
        return f"{self.field}: {mark}{self.text}"


@dataclass
class Draft:
    """The front matter and body guessed from a document."""

    title: str = ""
    title_stand_in: bool = False  # made from the opening line: a person writes the real one
    summary: str = ""
    date: datetime | None = None  # wall-clock time in the site time zone, as front matter writes it
    contacts: list[dict[str, str]] = field(default_factory=list)
    issuers: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    hero: Picture | None = None
    hero_inherited: bool = False  # a translation shows the release's picture: it writes only the alt text
    pictures: list[Picture] = field(default_factory=list)  # every picture to save, the hero first
    blocks: list[Block] = field(default_factory=list)
    guesses: list[Guess] = field(default_factory=list)

    def guess(self, name: str, text: str, *, todo: bool = False, warning: bool = False) -> None:
        self.guesses.append(Guess(name, text, todo=todo, warning=warning))

    @property
    def body(self) -> str:
        return "\n\n".join(block.markdown() for block in self.blocks) + "\n"
