"""The partners section and the contact block of a press release: found by their names in several languages,
cut out of the body, and read into ``issuers`` (matched to content/organisations/) and ``contacts``."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from pressroom.importer.blocks import Block, Picture, plain
from pressroom.importer.draft import Draft
from pressroom.organisations import Organisations
from pressroom.text import slugify

__all__ = ["EMAIL", "find_contacts", "find_partners", "organisation_stub"]

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
EMAIL = re.compile(r"(?:mailto:)?([\w.+'-]+@[\w-]+(?:\.[\w-]+)+)")
_PHONE = re.compile(r"(?:\b(?:tel|phone|telephone|mobile|mob|cell|gsm|t|m|p|tél|telefon|handy)\.?\s*[:.]?\s*)?"
                    r"(\+?\(?\d[\d\s().\/-]{5,}\d)", re.IGNORECASE)
_PHONE_LABEL = re.compile(r"^\s*(?:tel|phone|telephone|mobile|mob|cell|gsm|t|m|p|tél|telefon|handy)\.?\s*[:.]", re.IGNORECASE)
_FAX = re.compile(r"\bfax\b", re.IGNORECASE)
_LABEL = re.compile(r"^\s*(?:e-?mail|mail|name|role|position|organi[sz]ation|company|web(?:site)?)\s*[:.]\s*", re.IGNORECASE)


def _heading_text(line: str) -> str:
    return plain(line).strip().rstrip(":").strip()


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


def find_partners(draft: Draft, *, organisations: Organisations, given: Sequence[str]) -> None:
    """The partners section becomes ``issuers``: each name matched to an organisation file (or ``given``)."""
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


def find_contacts(draft: Draft) -> None:
    """The contact block becomes ``contacts``: people, with an address or a phone number each."""
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
    email = EMAIL.search(line)
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
