"""The media list: journalists (contacted on legitimate interest, no double opt-in) and the opens of their previews.

Kept apart from subscribers; an opt-out goes to the shared suppression list. ``beats`` are tag
slugs (none: every release). An embargoed preview's opens are counted once per link (one
journalist, one release) per :data:`OPEN_WINDOW`: a link that leaked and is opened again and
again is one line of the report, not thousands of rows.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

from sqlalchemy import delete, exists, func, insert, literal, select, type_coerce
from sqlalchemy.engine import Connection, RowMapping

from pressroom.audience.addresses import (
    check_language,
    clean_name,
    normalise_address,
    topic_slugs,
)
from pressroom.audience.csvfiles import ImportReport, csv_file, csv_reader
from pressroom.audience.subscribers import Audience
from pressroom.db import journalists, preview_opens, suppressions
from pressroom.errors import AddressError
from pressroom.settings import Settings

__all__ = ["JOURNALIST_COLUMNS", "OPEN_WINDOW", "Journalist", "MediaList", "forget_journalist"]

JOURNALIST_COLUMNS = ("address", "name", "outlet", "beats", "language", "country")
#: Opens of one preview link closer together than this count once.
OPEN_WINDOW = timedelta(minutes=5)
_COUNTRY_RE = re.compile(r"^[A-Za-z]{2}$")


@dataclass(frozen=True)
class Journalist:
    id: int
    address: str
    name: str
    outlet: str
    beats: tuple[str, ...]  # tag slugs; none means every release
    language: str
    country: str


class MediaList:
    """Journalists in the Pressroom database; the suppression list is the subscribers' one."""

    def __init__(self, *, audience: Audience) -> None:
        self._audience = audience
        self._engine = audience.engine

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaList:
        return cls(audience=Audience.from_settings(settings))

    def _validated(self, record: dict) -> dict:
        address = normalise_address(record.get("address") or "")
        language = check_language(address, (record.get("language") or self._audience.default_language).strip())
        country = (record.get("country") or "").strip()
        if country and not _COUNTRY_RE.match(country):
            raise AddressError(f"{address}: country {country!r} is not a two-letter code such as BE or DE")
        try:
            name = clean_name(record.get("name") or "")
            outlet = clean_name(record.get("outlet") or "", links=True)
        except AddressError as exc:
            raise AddressError(f"{address}: {exc.message}", hint=exc.hint) from None
        beats = record.get("beats") or ()
        beats = re.split(r"[;|]", beats) if isinstance(beats, str) else beats
        return {"address": address, "name": name, "outlet": outlet, "beats": ";".join(topic_slugs(beats)),
                "language": language, "country": country.upper()}

    def add(self, *, address: str, now: datetime, name: str = "", outlet: str = "", beats: Iterable[str] = (),
            language: str | None = None, country: str = "") -> Journalist:
        """Add one journalist; :class:`AddressError` if the address is invalid or already on the list."""
        row = self._validated({"address": address, "name": name, "outlet": outlet, "beats": list(beats),
                               "language": language, "country": country})
        with self._engine.begin() as conn:
            if conn.execute(select(journalists.c.id).where(journalists.c.address == row["address"])).first():
                raise AddressError(f"{row['address']} is already on the media list",
                                   hint="use `pressroom journalists list` to see it, or remove it first")
            conn.execute(insert(journalists), [{**row, "created_at": now, "updated_at": now}])
        found = self.get(address=row["address"])
        assert found is not None
        return found

    def import_csv(self, *, file: Path | TextIO, now: datetime) -> ImportReport:
        """Bulk-import a CSV (header: address, and optionally name, outlet, beats, language, country).

        ``beats`` are separated by ``;`` or ``|``. Bad rows and duplicates are reported with their
        line number and skipped, as for subscribers; the good rows are imported.
        """
        report = ImportReport()
        with csv_file(file) as handle:
            reader = csv_reader(handle, JOURNALIST_COLUMNS)
            with self._engine.begin() as conn:
                known = set(conn.execute(select(journalists.c.address)).scalars())
                fresh: dict[str, dict] = {}
                for record in reader:
                    row = self._csv_row(record, reader.line_num, known, fresh, report)
                    if row is not None:
                        fresh[row["address"]] = {**row, "created_at": now, "updated_at": now}
                if fresh:
                    conn.execute(insert(journalists), list(fresh.values()))
                report.added = len(fresh)
        return report

    def _csv_row(self, record: dict, line: int, known: set[str], fresh: dict[str, dict], report: ImportReport) -> dict | None:
        try:
            if None in record:
                raise AddressError("the row has more fields than the header")
            row = self._validated(record)
        except AddressError as exc:
            report.problems.append((line, exc.message))
            return None
        if row["address"] in known or row["address"] in fresh:
            report.duplicates += 1
            where = "appears earlier in the file" if row["address"] in fresh else "is already on the media list"
            report.problems.append((line, f"{row['address']} {where}"))
            return None
        return row

    def export_csv(self, *, file: TextIO) -> int:
        """Write every journalist as CSV (the import format); returns the number of rows."""
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(JOURNALIST_COLUMNS)
        count = 0
        for journalist in self.list():
            writer.writerow([journalist.address, journalist.name, journalist.outlet, ";".join(journalist.beats),
                             journalist.language, journalist.country])
            count += 1
        return count

    def list(self) -> list[Journalist]:
        """Every journalist, in address order."""
        with self._engine.connect() as conn:
            return [_journalist(row) for row in conn.execute(select(journalists).order_by(journalists.c.address)).mappings()]

    def reachable(self) -> list[Journalist]:
        """Every journalist whose address is not on the suppression list (opted out, bounced, complained)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(journalists).where(~exists().where(suppressions.c.address == journalists.c.address))
                .order_by(journalists.c.address)
            ).mappings()
            return [_journalist(row) for row in rows]

    def get(self, *, address: str | None = None, journalist_id: int | None = None) -> Journalist | None:
        """One journalist by address or id, or ``None``."""
        where = journalists.c.id == journalist_id if address is None else journalists.c.address == normalise_address(address)
        with self._engine.connect() as conn:
            row = conn.execute(select(journalists).where(where)).mappings().first()
        return None if row is None else _journalist(row)

    def remove(self, *, address: str) -> bool:
        """Take a journalist off the media list (their preview opens go too); False if not on it."""
        with self._engine.begin() as conn:
            return forget_journalist(conn, normalise_address(address))

    def opt_out(self, *, journalist_id: int, now: datetime, source: str) -> Journalist | None:
        """The journalist's one-click opt-out: their address joins the shared suppression list."""
        journalist = self.get(journalist_id=journalist_id)
        if journalist is not None:
            # Not "unsubscribed": that reason lets transactional rows through, and a journalist email has no subscriber.
            self._audience.suppress(address=journalist.address, reason="opted-out", now=now, detail=source)
        return journalist

    def record_open(self, *, journalist_id: int, release: str, now: datetime) -> bool:
        """A journalist opened the embargoed preview of ``release``; False when an open of the same link
        within :data:`OPEN_WINDOW` before ``now`` already counts for this one."""
        recent = select(preview_opens.c.id).where(
            preview_opens.c.journalist_id == journalist_id, preview_opens.c.release == release,
            preview_opens.c.at > now - OPEN_WINDOW, preview_opens.c.at <= now,
        )
        row = select(literal(release), literal(journalist_id), literal(now, preview_opens.c.at.type)).where(~recent.exists())
        with self._engine.begin() as conn:
            added = conn.execute(insert(preview_opens).from_select(["release", "journalist_id", "at"], row))
            return added.rowcount > 0

    def opens(self, *, release: str) -> list[tuple[Journalist, int, datetime, datetime]]:
        """(journalist, opens, first, last) of everyone who opened the preview of ``release``."""
        with self._engine.connect() as conn:
            at = preview_opens.c.at
            rows = conn.execute(
                select(journalists, func.count().label("opens"), type_coerce(func.min(at), at.type).label("first"),
                       type_coerce(func.max(at), at.type).label("last"))
                .select_from(preview_opens.join(journalists, journalists.c.id == preview_opens.c.journalist_id))
                .where(preview_opens.c.release == release)
                .group_by(*journalists.c)
                .order_by(journalists.c.address)
            ).mappings().all()
        return [(_journalist(row), int(row["opens"]), row["first"], row["last"]) for row in rows]


def forget_journalist(conn: Connection, address: str) -> bool:
    """Remove a journalist and their preview opens in ``conn``'s transaction; False if not on the list."""
    ids = select(journalists.c.id).where(journalists.c.address == address).scalar_subquery()
    conn.execute(delete(preview_opens).where(preview_opens.c.journalist_id.in_(ids)))
    return conn.execute(delete(journalists).where(journalists.c.address == address)).rowcount > 0


def _journalist(row: RowMapping) -> Journalist:
    return Journalist(id=row["id"], address=row["address"], name=row["name"], outlet=row["outlet"],
                      beats=tuple(b for b in row["beats"].split(";") if b), language=row["language"], country=row["country"])
