"""What a press release written in Word says about itself, read from its blocks.

The kicker ("PRESS RELEASE") and the dateline ("Brussels, 30 July 2024 –") go, and the date is
kept; the first heading (or a first line that reads like one) is the title; the contact block
becomes ``contacts`` and the partners section ``issuers``; a statement after "said:" becomes a
quote; the largest picture becomes the hero. Every one of these is a
:class:`~pressroom.importer.draft.Guess` that the person importing reads, because each can be wrong.
The partners section and the contact block are read in :mod:`pressroom.importer.sections`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pressroom.importer.blocks import Block, Picture, linkify_markdown, plain
from pressroom.importer.draft import Draft
from pressroom.importer.sections import EMAIL, find_contacts, find_partners
from pressroom.organisations import Organisations

__all__ = ["analyse"]


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
_AUTO_ALT = re.compile(r"description automatically generated|automatically generated description|automatisch generierte beschreibung"
                       r"|description générée automatiquement", re.IGNORECASE)
# Quote marks Word writes (English, German, French and straight) around a statement.
_QUOTED = re.compile(r"^(?P<intro>.{10,}?:)\s+(?P<quote>[*_]{0,2}[“„«\"‘‚].{40,}[”“»\"’‘][*_]{0,2})$")



# --------------------------------------------------------------------------- the analysis


def analyse(blocks: list[Block], *, organisations: Organisations, zone: ZoneInfo, now: datetime,
            issuers: Sequence[str] = ()) -> Draft:
    """Guess a draft's front matter from ``blocks`` and keep the rest as its body."""
    draft = Draft(blocks=[block for block in blocks if not _is_end_marker(block)])
    _lead(draft, zone)
    find_partners(draft, organisations=organisations, given=issuers)
    find_contacts(draft)
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
    return 3 <= len(line) <= 200 and not line.endswith((".", ",", ";", ":")) and not EMAIL.search(line)


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
