"""What a press release written in Word says about itself, read from its blocks.

The kicker ("PRESS RELEASE") and the dateline ("Brussels, 30 July 2024 –") go, and the date is
kept; the first heading (or a first line that reads like one) is the title; the contact block
becomes ``contacts`` and the partners section ``issuers``; a statement after "said:" becomes a
quote; the largest picture becomes the hero. Every one of these is a :class:`Guess` that the
person importing reads, because each can be wrong.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pressroom.importer.blocks import Block, Picture, linkify_markdown, plain
from pressroom.organisations import Organisations
from pressroom.text import slugify

__all__ = ["Draft", "Guess", "analyse", "organisation_stub"]


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


# --------------------------------------------------------------------------- dates

_MONTHS = {
    1: "january jan januar jänner janvier januari enero gennaio",
    2: "february feb februar février fevrier februari febrero febbraio",
    3: "march mar märz maerz mars maart marzo",
    4: "april apr avril abril aprile",
    5: "may mai mei mayo maggio",
    6: "june jun juni juin junio giugno",
    7: "july jul juli juillet julio luglio",
    8: "august aug août aout augustus agosto",
    9: "september sep sept septembre septiembre settembre",
    10: "october oct oktober octobre octubre ottobre",
    11: "november nov novembre noviembre",
    12: "december dec dezember décembre decembre diciembre dicembre",
}
_MONTH = {name: number for number, names in _MONTHS.items() for name in names.split()}
_MONTH_RE = "|".join(sorted(_MONTH, key=len, reverse=True))
_WEEKDAY = (r"(?:(?i:monday|tuesday|wednesday|thursday|friday|saturday|sunday|montag|dienstag|mittwoch|donnerstag"
            r"|freitag|samstag|sonntag|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche)[,.]?\s+)?")
_DATE = (
    rf"(?:(?P<d>\d{{1,2}})(?:st|nd|rd|th|er|e)?\.?\s+(?:de\s+)?(?P<m>(?i:{_MONTH_RE}))\.?,?\s+(?:de\s+)?(?P<y>\d{{4}})"
    rf"|(?P<m2>(?i:{_MONTH_RE}))\.?\s+(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y2>\d{{4}})"
    r"|(?P<y3>\d{4})-(?P<m3>\d{1,2})-(?P<d3>\d{1,2})"
    r"|(?P<d4>\d{1,2})[./](?P<m4>\d{1,2})[./](?P<y4>\d{4}))"
)
# "Brussels, 30 July 2024 –", "BRUSSELS (Belgium), Tuesday 30 July 2024:", "30.07.2024"
_PLACE = r"(?P<place>[A-ZÀ-ÖØ-Þ][^\W\d_]*\.?(?:[ '’-]+[^\W\d_]+\.?){0,3}(?:\s*\([^)]{1,30}\))?)\s*[,/–-]\s*"
_DATELINE = re.compile(rf"^(?:{_PLACE})?{_WEEKDAY}{_DATE}(?:\s*[-–—:|.]\s*|\s*$)")
_TIME = re.compile(r"(?<![\d.])(?P<h>\d{1,2})(?:[:.h](?P<min>\d{2}))?\s*(?P<ampm>[ap]\.?m\.?)?\s*(?:h\b|hrs\b|uhr\b)?\s*"
                   r"(?P<zone>CET|CEST|MEZ|MESZ|UTC|GMT|BST|WET|WEST|EET|EEST)?(?![\d.])", re.IGNORECASE)
_UTC_NAMES = {"utc", "gmt"}


def _date_of(match: re.Match[str]) -> date | None:
    day, month, year = (
        (match["d"], _MONTH.get(match["m"].lower()), match["y"]) if match["d"] else
        (match["d2"], _MONTH.get(match["m2"].lower()), match["y2"]) if match["d2"] else
        (match["d3"], match["m3"], match["y3"]) if match["d3"] else
        (match["d4"], match["m4"], match["y4"])
    )
    try:
        return date(int(year), int(month), int(day))
    except (TypeError, ValueError):
        return None


def _time_in(text: str) -> tuple[time, str] | None:
    """A clock time written in ``text`` ("09:00 CET", "9 am"), with the zone it names (lowercase, or "")."""
    for match in _TIME.finditer(text):
        if match["min"] is None and match["ampm"] is None:
            continue  # a bare number is a day or a count, not a time
        hour, minute = int(match["h"]), int(match["min"] or 0)
        if match["ampm"]:
            hour = hour % 12 + (12 if match["ampm"].lower().startswith("p") else 0)
        if hour < 24 and minute < 60:
            return time(hour, minute), (match["zone"] or "").lower()
    return None


# --------------------------------------------------------------------------- the words that mark sections

_KICKER = re.compile(
    r"^(?:joint\s+)?(?:(?:press|news|media)\s+(?:release|statement|information|advisory)|for\s+immediate\s+release"
    r"|pressemitteilung|pressemeldung|presseinformation|medienmitteilung|communiqu[ée]\s+de\s+presse"
    r"|comunicato\s+stampa|nota\s+de\s+prensa|persbericht)\b\s*[-–—:|,]?\s*(?P<rest>.*)$", re.IGNORECASE)
_EMBARGO = re.compile(r"^(?:strictly\s+)?(?:under\s+)?(?:embargo(?:ed)?|sperrfrist)\b\s*(?:until|till|to|bis|jusqu[’']au)?\s*[:-]?\s*(?P<rest>.+)$",
                      re.IGNORECASE)
_END = re.compile(r"^(?:#{3}|-{1,3}\s*ends?\s*-{1,3}|[–—]\s*ends?\s*[–—]|ends|end|\*{3})$", re.IGNORECASE)
_CONTACTS = re.compile(
    r"^(?:(?:media|press|pr|communications?)\s+)?(?:contacts?|enquiries|inquiries|office)"
    r"(?:\s+(?:persons?|details|information|for\s+(?:the\s+)?(?:media|press|journalists)))?"
    r"|for\s+(?:media|press)\s+(?:enquiries|inquiries|information)|for\s+(?:more|further)\s+information(?:,?\s+please\s+contact)?"
    r"|pressekontakte?|kontakt|ansprechpartner(?:in)?|contacts?\s+(?:presse|médias?)|perscontact|contatti\s+stampa$",
    re.IGNORECASE)
_PARTNERS = re.compile(
    r"^(?:projects?\s+involved|(?:project\s+|consortium\s+)?partners?(?:\s+projects?)?|consortium(?:\s+(?:members|partners))?"
    r"|participating\s+(?:projects|partners|organi[sz]ations)|co-?issuers|beteiligte\s+(?:projekte|partner)|projektpartner"
    r"|partenaires?|projets?\s+impliqués?)$", re.IGNORECASE)
# Where a partners or contact section ends: the About texts and notes that follow it, a closing line.
_SECTION_END = re.compile(r"^(?:about\b|über\b|à propos\b|notes?\s+(?:to|for)\s+editors|reach us|follow us|find out more|learn more)", re.IGNORECASE)
_EMAIL = re.compile(r"(?:mailto:)?([\w.+'-]+@[\w-]+(?:\.[\w-]+)+)")
_PHONE = re.compile(r"(?:\b(?:tel|phone|telephone|mobile|mob|cell|gsm|t|m|p|tél|telefon|handy)\.?\s*[:.]?\s*)?"
                    r"(\+?\(?\d[\d\s().\/-]{5,}\d)", re.IGNORECASE)
_PHONE_LABEL = re.compile(r"^\s*(?:tel|phone|telephone|mobile|mob|cell|gsm|t|m|p|tél|telefon|handy)\.?\s*[:.]", re.IGNORECASE)
_FAX = re.compile(r"\bfax\b", re.IGNORECASE)
_LABEL = re.compile(r"^\s*(?:e-?mail|mail|name|role|position|organi[sz]ation|company|web(?:site)?)\s*[:.]\s*", re.IGNORECASE)
_AUTO_ALT = re.compile(r"description automatically generated|automatically generated description|automatisch generierte beschreibung"
                       r"|description générée automatiquement", re.IGNORECASE)
# Quote marks Word writes (English, German, French and straight) around a statement.
_QUOTED = re.compile(r"^(?P<intro>.{10,}?:)\s+(?P<quote>[*_]{0,2}[“„«\"‘‚].{40,}[”“»\"’‘][*_]{0,2})$")


def _heading_text(line: str) -> str:
    return plain(line).strip().rstrip(":").strip()


# --------------------------------------------------------------------------- the analysis


def analyse(blocks: list[Block], *, organisations: Organisations, zone: ZoneInfo, now: datetime,
            issuers: Sequence[str] = ()) -> Draft:
    """Guess a draft's front matter from ``blocks`` and keep the rest as its body."""
    draft = Draft(blocks=[block for block in blocks if not _is_end_marker(block)])
    _lead(draft, zone)
    _partners(draft, organisations=organisations, given=issuers)
    _contacts(draft)
    _quotes(draft)
    _pictures(draft)
    for block in draft.blocks:
        if block.kind in ("paragraph", "list", "quote"):
            block.lines = [linkify_markdown(line) for line in block.lines]
    _dates(draft, zone=zone, now=now)
    return draft


def _is_end_marker(block: Block) -> bool:
    return block.kind in ("paragraph", "heading") and len(block.lines) == 1 and bool(_END.match(plain(block.lines[0])))


def _take_line(draft: Draft, index: int) -> str:
    """Remove and return the first line of block ``index`` (the block goes when it was its last line)."""
    block = draft.blocks[index]
    line = block.lines.pop(0)
    if not block.lines:
        del draft.blocks[index]
    return line


def _lead(draft: Draft, zone: ZoneInfo) -> None:
    """Kicker, embargo line and dateline above the title; the title; a subtitle; a dateline under them."""
    index, dateline_seen = _above_title(draft, zone)
    _title(draft, index)
    if not draft.title:
        _stand_in_title(draft)
    if not dateline_seen and draft.date is None:
        _dateline_below(draft, index, zone)


def _above_title(draft: Draft, zone: ZoneInfo) -> tuple[int, bool]:
    """Take the kicker, embargo and dateline lines above the title: where the title may start, and whether a
    dateline was among them."""
    dateline_seen = False
    index = 0  # a letterhead logo may come first: the lines above the title are read past pictures
    while index < len(draft.blocks):
        block = draft.blocks[index]
        if block.kind == "picture":
            index += 1
            continue
        if block.kind not in ("paragraph", "heading"):
            break
        text = plain(block.lines[0])
        kicker, embargo = _KICKER.match(text), _EMBARGO.match(text)
        if kicker:
            _take_line(draft, index)
            draft.guess("kicker", f'removed "{text}"')
            rest = kicker["rest"].strip()
            if rest and not _dateline(draft, rest, zone):
                draft.blocks.insert(index, Block("paragraph", [rest]))
            continue
        if embargo and _embargo(draft, text, embargo["rest"], zone):
            _take_line(draft, index)
            continue
        if _DATELINE.match(text) and _dateline(draft, text, zone, whole=True):
            dateline_seen = True
            _take_line(draft, index)
            continue
        break
    return index, dateline_seen


def _title(draft: Draft, index: int) -> None:
    """The first heading (and a heading under it as the summary), or a first line that reads like a title."""
    if index >= len(draft.blocks):
        return
    block = draft.blocks[index]
    first = plain(block.lines[0]) if block.lines else ""
    if block.kind == "heading":
        draft.title = first
        _take_line(draft, index)
        draft.guess("title", "from the first heading")
        following = draft.blocks[index] if index < len(draft.blocks) else None
        if following is not None and following.kind == "heading" and following.level >= block.level:
            draft.summary = plain(following.lines[0])
            _take_line(draft, index)
            draft.guess("summary", "from the subtitle under the title")
    elif block.kind == "paragraph" and _title_like(first):
        draft.title = first
        _take_line(draft, index)
        draft.guess("title", "from the first line")


def _stand_in_title(draft: Draft) -> None:
    """No title: the opening line's first sentence stands in, and the writer is asked for a real one."""
    opening = next((plain(b.lines[0]) for b in draft.blocks if b.kind == "paragraph" and b.lines), "")
    draft.title = _title_from(opening)
    draft.title_stand_in = bool(draft.title)
    if draft.title:
        draft.guess("title", f'from the first line, shortened: the document has no heading ("{draft.title}"):'
                    " write a better one in index.md", todo=True)
    else:
        draft.guess("title", "none found: write one in index.md", todo=True)


def _dateline_below(draft: Draft, index: int, zone: ZoneInfo) -> None:
    """A dateline opening one of the first three paragraphs under the title gives the date."""
    for position, block in enumerate(draft.blocks[index:index + 3], start=index):
        if block.kind != "paragraph":
            continue
        text = block.lines[0]
        rest = _dateline(draft, plain(text), zone, markdown=text)
        if rest is not None:
            if rest:
                block.lines[0] = rest
            else:
                _take_line(draft, position)
            break


_TITLE_WORDS = 12


def _title_from(opening: str) -> str:
    """A stand-in title from the opening line: its first sentence, cut after a dozen words at most.
    The text stays in the body; the writer is asked to write a real title."""
    sentence = re.split(r"(?<=[.!?])\s", opening.strip(), maxsplit=1)[0].rstrip(" .")
    words = sentence.split()
    if len(words) <= _TITLE_WORDS:
        return sentence
    return " ".join(words[:_TITLE_WORDS]).rstrip(",;:–—-") + "…"


def _title_like(line: str) -> bool:
    return 3 <= len(line) <= 200 and not line.endswith((".", ",", ";", ":")) and not _EMAIL.search(line)


def _dateline(draft: Draft, text: str, zone: ZoneInfo, *, whole: bool = False, markdown: str | None = None) -> str | None:
    """Use the dateline at the start of ``text``: its date becomes ``date``. Returns what follows it in
    ``markdown`` (the same line with its marks; "" when the line was only the dateline), or None."""
    match = _DATELINE.match(text)
    found = _date_of(match) if match else None
    if match is None or found is None or (whole and match.end() < len(text.rstrip())):
        return None
    if draft.date is None:
        draft.date = datetime.combine(found, time(9, 0))
        shown = text[: match.end()].rstrip(" –—-:|.")
        draft.guess("date", f'from the dateline "{shown}" (09:00 {zone.key} assumed: write the time it goes out)')
    rest = text[match.end():]
    if markdown is None:
        return rest
    # The same words after the dateline in the Markdown line, with the marks around them kept.
    cut = markdown.find(rest[:20]) if rest else len(markdown)
    leftover = markdown[cut:].strip() if cut >= 0 else markdown
    opened = markdown[:max(cut, 0)].count("**") % 2
    return ("**" + leftover if opened else leftover) if leftover else ""


def _embargo(draft: Draft, line: str, rest: str, zone: ZoneInfo) -> bool:
    match = re.search(_DATE, rest)
    found = _date_of(match) if match else None
    if found is None:
        return False
    clock = _time_in(rest[: match.start()] + " " + rest[match.end():])
    moment = datetime.combine(found, clock[0] if clock else time(9, 0))
    if clock and clock[1] in _UTC_NAMES:
        moment = moment.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone).replace(tzinfo=None)
    draft.date = moment
    draft.guess("date", f'from the embargo line "{line}"' + ("" if clock else f" (09:00 {zone.key} assumed)"))
    draft.guess("embargo", "the document was under embargo: to tell journalists first, add embargo: {notify: 48h}")
    return True


# --------------------------------------------------------------------------- partners and contacts


def _find_section(draft: Draft, pattern: re.Pattern[str]) -> tuple[int, int, str] | None:
    """The block and line where a section named by ``pattern`` starts, and what follows its name on that line."""
    for index, block in enumerate(draft.blocks):
        if block.kind not in ("paragraph", "heading"):
            continue
        for number, line in enumerate(block.lines):
            text = plain(line)
            name, colon, rest = text.partition(":")
            if pattern.fullmatch(_heading_text(text)):
                return index, number, ""
            if colon and rest.strip() and pattern.fullmatch(name.strip()):
                return index, number, rest.strip()
    return None


def _section(draft: Draft, start: tuple[int, int, str], stop: re.Pattern[str]) -> tuple[list[str], list[Picture]]:
    """Cut a section out of the body: its name's line and what follows until the next heading, a long line
    of prose or another section; returns those lines (plain text) and the pictures among them."""
    index, number, rest = start
    block = draft.blocks[index]
    lines = [rest] if rest else []
    pictures: list[Picture] = []
    after = block.lines[number + 1:]
    taken = 0
    for line in after:
        if _ends_section(plain(line), stop):
            break
        lines.append(plain(line))
        taken += 1
    kept = [part for part in (block.lines[:number], after[taken:]) if part]
    replacement = [Block(block.kind, part, level=block.level, hard_breaks=block.hard_breaks) for part in kept]
    position = index + 1
    if taken == len(after):  # the section runs on past its first block
        position = _take_following(draft, position, stop, lines, pictures)
    draft.blocks[index:position] = replacement
    return [line for line in lines if line.strip()], pictures


def _take_following(draft: Draft, position: int, stop: re.Pattern[str], lines: list[str], pictures: list[Picture]) -> int:
    """Read the blocks from ``position`` on into ``lines`` and ``pictures`` until a heading, code or the end of
    the section; returns where the section ends."""
    while position < len(draft.blocks):
        following = draft.blocks[position]
        if following.kind in ("heading", "code"):
            break
        if following.kind == "picture" and following.picture is not None:
            pictures.append(following.picture)
        elif following.kind == "table":
            pictures += following.pictures
            rows = following.lines[:1] + following.lines[2:]
            lines += [plain(cell) for row in rows for cell in row.strip().strip("|").split(" | ")]
        else:
            texts = following.plain_lines
            if any(_ends_section(text, stop) for text in texts):
                break
            lines += [re.sub(r"^\s*(?:[-*+]|\d+\.)\s+", "", text) for text in texts]
        position += 1
    return position


def _ends_section(text: str, stop: re.Pattern[str]) -> bool:
    return len(text) > 120 or bool(_SECTION_END.match(text)) or bool(stop.fullmatch(_heading_text(text)))


def _key(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().casefold()
    words = re.sub(r"[^a-z0-9]+", " ", ascii_text).split()
    if words and words[0] == "the":
        words = words[1:]
    if len(words) > 1 and words[-1] in ("project", "projekt", "projet", "progetto", "proyecto"):
        words = words[:-1]
    return " ".join(words)


def _organisation_keys(organisations: Organisations) -> dict[str, str]:
    keys: dict[str, str] = {}
    for ident, organisation in organisations.by_id.items():
        names = [ident.replace("-", " "), organisation.name, organisation.short_name,
                 re.split(r"\s+[—–-]\s+|\s*\(", organisation.name)[0]]
        host = urlsplit(organisation.website).hostname or ""
        names.append(host.removeprefix("www.").rpartition(".")[0])
        for name in names:
            if _key(name):
                keys.setdefault(_key(name), ident)
    for ident in organisations.problems:
        keys.setdefault(_key(ident.replace("-", " ")), ident)
    return keys


def _partner_names(lines: list[str]) -> list[str]:
    names: list[str] = []
    for line in lines:
        line = re.sub(r"(?:https?://|www\.)\S+", "", line)
        parts = re.split(r"\s*[,;•|]\s*|\s+and\s+(?=[^,]*$)", line) if re.search(r"[,;•|]", line) else [line]
        for part in parts:
            name = part.strip(" \t-–—:.").strip()
            if name and len(name) <= 80 and name not in names:
                names.append(name)
    return names


def _partners(draft: Draft, *, organisations: Organisations, given: Sequence[str]) -> None:
    start = _find_section(draft, _PARTNERS)
    names: list[str] = []
    heading = ""
    if start is not None:
        heading = _heading_text(draft.blocks[start[0]].lines[start[1]])
        lines, logos = _section(draft, start, _CONTACTS)
        names = _partner_names(lines)
        if logos:
            what = "its logo" if len(logos) == 1 else f"its {len(logos)} logos"
            draft.guess("pictures", f"left out {what} of the {heading} section: issuers' logos come from content/organisations/")
    if given:
        draft.issuers = list(dict.fromkeys(given))
        draft.unmatched = []
        named = f' (the {heading} section names: {", ".join(names)})' if names else ""
        draft.guess("issuers", f"from --issuers{named}")
    elif start is None:
        draft.guess("issuers", "no partners section (\"PROJECTS INVOLVED\", \"Partners\", \"Consortium\"): none")
    elif not names:
        _issuers_named_in_text(draft, organisations=organisations, heading=heading)
    else:
        _issuers_by_name(draft, names, organisations=organisations)


def _issuers_by_name(draft: Draft, names: list[str], *, organisations: Organisations) -> None:
    """Each name of the partners section matched to an organisation file; the others listed, with what to do."""
    keys = _organisation_keys(organisations)
    for name in names:
        candidates = [name, re.split(r"\s*\(", name)[0], *re.findall(r"\(([^)]+)\)", name)]
        ident = next((keys[_key(c)] for c in candidates if _key(c) in keys), None)
        if ident is None:
            draft.unmatched.append(name)
        elif ident not in draft.issuers:
            draft.issuers.append(ident)
    unmatched = ", ".join(f'"{name}"' for name in draft.unmatched)
    draft.guess("issuers", f"matched {len(draft.issuers)}, unmatched {len(draft.unmatched)}" + (f": {unmatched}" if unmatched else ""))
    for name in draft.unmatched:
        path, _ = organisation_stub(name)
        draft.guess("issuers", f'"{name}" has no organisation file: create {path} (name, logo, website), '
                    f"then add {Path(path).stem} to issuers", todo=True)


def _issuers_named_in_text(draft: Draft, *, organisations: Organisations, heading: str) -> None:
    """The section's logos did not survive the copy out of Word: the organisations the text names are the best evidence."""
    text = " ".join(" ".join(block.plain_lines) for block in draft.blocks)
    for ident, organisation in organisations.by_id.items():
        for name in {organisation.name, organisation.short_name, re.split(r"\s+[—–-]\s+|\s*\(", organisation.name)[0]}:
            if name and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text):
                draft.issuers.append(ident)
                break
    found = ", ".join(draft.issuers) or "none"
    draft.guess("issuers", f"the {heading} section names no one (its logos do not come through as text); "
                f"named in the text: {found}")


def _contacts(draft: Draft) -> None:
    start = _find_section(draft, _CONTACTS)
    if start is None:
        return
    heading = _heading_text(draft.blocks[start[0]].lines[start[1]]).partition(":")[0]
    saved = list(draft.blocks)
    lines, _ = _section(draft, start, _PARTNERS)
    contacts = _parse_contacts(lines)
    if not contacts:  # no address and no phone number under it: a sentence about contact, left in the text
        draft.blocks = saved
        return
    draft.contacts = contacts
    names = "; ".join(", ".join(value for value in contact.values() if value) for contact in contacts)
    draft.guess("contacts", f'{len(contacts)} from the "{heading}" block: {names}')
    for contact in contacts:
        if not contact.get("name"):
            contact["name"] = contact.get("organisation") or "Press office"
            draft.guess("contacts", f'no name for {contact.get("email") or contact.get("phone")}: wrote "{contact["name"]}"',
                        warning=True)


def _parse_contacts(lines: list[str]) -> list[dict[str, str]]:
    contacts: list[dict[str, str]] = []
    current: dict[str, str] = {}

    def close() -> None:
        if current.get("email") or current.get("phone"):
            contacts.append({key: current[key] for key in ("name", "role", "organisation", "email", "phone") if current.get(key)})
        current.clear()

    for raw in lines:
        line = raw.strip(" \t-–—•|")
        if not line or _FAX.search(line):
            continue
        parsed = _contact_line(line)
        if parsed is None:
            continue  # a postal address: the contacts of a release are people, their mail and phone
        rest, email, phone = parsed
        if rest and (current.get("email") or current.get("phone")):
            close()
        if rest:
            _fill_slots(current, rest)
        if email and not current.get("email"):
            current["email"] = email
        if phone and not current.get("phone"):
            current["phone"] = phone
    close()
    return contacts


def _contact_line(line: str) -> tuple[str, str | None, str | None] | None:
    """The words of a contact line with its address and phone number taken out, the address and the number;
    None for a postal address (digits, but neither)."""
    email = _EMAIL.search(line)
    phone = _phone_in(line)
    rest = line
    if email:
        rest = rest.replace(email.group(0), " ")
    if phone:
        rest = rest.replace(phone[0], " ")
    rest = _LABEL.sub("", rest).strip(" ,;|/–—-:")
    if re.search(r"\d", rest) and not email and not phone:
        return None
    return rest, email.group(1) if email else None, phone[1] if phone else None


def _phone_in(line: str) -> tuple[str, str] | None:
    """The phone number in ``line`` (what matched, and the number with its spaces evened): seven digits or more,
    written as a number (+, 0) or labelled as one."""
    phone = _PHONE.search(line)
    if phone is None or sum(ch.isdigit() for ch in phone.group(1)) < 7:
        return None
    if not (phone.group(1).lstrip("(").startswith(("+", "0")) or _PHONE_LABEL.match(line) or phone.group(0) != phone.group(1)):
        return None
    return phone.group(0), " ".join(phone.group(1).split())


def _fill_slots(current: dict[str, str], rest: str) -> None:
    """The parts of a contact line fill name, role and organisation, in that order, where still empty."""
    for part in (part.strip() for part in re.split(r"\s*[,|]\s*|\s+[–—]\s+", rest)):
        slot = next((key for key in ("name", "role", "organisation") if not current.get(key)), None)
        if part and slot:
            current[slot] = part


def organisation_stub(name: str) -> tuple[str, str]:
    """The file that makes ``name`` an issuer, and the least it must say (there is no command that writes it)."""
    ident = slugify(name) or "organisation"
    text = (f"name: {json.dumps(name, ensure_ascii=False)}\n"
            f"logo: {ident}.png            # the logo, .png or .svg, beside this file\n"
            "website: https://…          # where the logo links\n")
    return f"content/organisations/{ident}.yaml", text


# --------------------------------------------------------------------------- quotes, pictures, the date


def _quotes(draft: Draft) -> None:
    """'…, said: *“In the spirit of …”*' -> the sentence, then the statement as a block quote."""
    found = 0
    blocks: list[Block] = []
    for block in draft.blocks:
        match = _QUOTED.match(block.lines[0]) if block.kind == "paragraph" and len(block.lines) == 1 else None
        if match and len(match["quote"]) > len(match["intro"]):
            blocks += [Block("paragraph", [match["intro"]]), Block("quote", [match["quote"]])]
            found += 1
        else:
            blocks.append(block)
    draft.blocks = blocks
    if found:
        what = "a statement" if found == 1 else f"{found} statements"
        draft.guess("quotes", f'{what} after "said:" set apart as a block quote')


def _pictures(draft: Draft) -> None:
    shown = _distinct_pictures(draft)
    if not shown:
        return
    # The largest, not the first: a letterhead logo or an icon often comes before the photo.
    hero = max(shown, key=lambda picture: len(picture.data))
    hero.name = f"hero{hero.suffix}"
    draft.hero = hero
    draft.blocks = [block for block in draft.blocks if block.picture is not hero]
    others = [picture for picture in shown if picture is not hero]
    for number, picture in enumerate(others, start=1):
        picture.name = f"image{number}{picture.suffix}"
    draft.pictures = [hero, *others]
    which = "the document's only picture" if not others else f"the largest of {len(shown)} pictures"
    if hero.alt and not _AUTO_ALT.search(hero.alt):
        draft.guess("hero", f"{hero.name}, {which}, with the document's alt text")
    else:
        why = f'only Word\'s automatic description ("{hero.alt}")' if hero.alt else "no alt text in the document"
        hero.alt = ""
        draft.guess("hero", f"{hero.name}, {which}; {why}: write what it shows in hero.alt", todo=True)
    for picture in others:
        if not picture.alt or _AUTO_ALT.search(picture.alt):
            picture.alt = ""
            draft.guess("pictures", f"{picture.name} has no alt text: describe it in index.md (![what it shows]({picture.name}))",
                        todo=True)


def _distinct_pictures(draft: Draft) -> list[Picture]:
    """The pictures a browser can show, each once, in their order; the others leave the body, with a word why."""
    shown: list[Picture] = []
    for block in list(draft.blocks):
        if block.kind != "picture" or block.picture is None:
            continue
        picture = block.picture
        if not picture.suffix:
            draft.blocks.remove(block)
            draft.guess("pictures", f"left out a picture of type {picture.kind}, which browsers cannot show: "
                        "save it as PNG or JPEG and add it beside index.md", todo=True)
        elif any(other.data == picture.data for other in shown):
            draft.blocks.remove(block)  # the same picture twice: saved once, shown where it came first
        else:
            shown.append(picture)
    return shown


def _dates(draft: Draft, *, zone: ZoneInfo, now: datetime) -> None:
    if draft.date is None:
        tomorrow = now.astimezone(zone).date() + timedelta(days=1)
        draft.date = datetime.combine(tomorrow, time(9, 0))
        draft.guess("date", f"no dateline in the document: tomorrow 09:00 ({draft.date:%Y-%m-%d %H:%M} {zone.key}); "
                    "write the time it goes out", warning=True)
    elif draft.date.replace(tzinfo=zone) < now:
        draft.guess("date", f"{draft.date:%Y-%m-%d %H:%M} is in the past: once approved it is published at once",
                    warning=True)
