"""CSV files of the audience: one reader (BOM skipped, header checked) for subscribers and journalists alike."""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from pressroom.errors import AddressError

__all__ = ["ImportReport", "csv_file", "csv_reader"]


@dataclass
class ImportReport:
    """What an import did; ``problems`` are ``(line, message)`` with the CSV line number."""

    added: int = 0
    duplicates: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)


@contextlib.contextmanager
def csv_file(file: Path | TextIO) -> Iterator[TextIO]:
    """``file`` open for reading as CSV (a BOM from a spreadsheet skipped); a stream given is left open."""
    if not isinstance(file, Path):
        yield file
        return
    with open(file, encoding="utf-8-sig", newline="") as handle:
        yield handle


def csv_reader(handle: TextIO, columns: Sequence[str]) -> csv.DictReader:
    """A CSV reader whose header is checked against ``columns`` (``email`` taken for ``address``)."""
    reader = csv.DictReader(handle)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "email" in header and "address" not in header:
        header[header.index("email")] = "address"
    unknown = [h for h in header if h not in columns]
    if "address" not in header or unknown:
        raise AddressError(
            f"the CSV header {reader.fieldnames!r} " + (f"has unknown columns {unknown}" if unknown else "has no 'address' column"),
            hint="the first line must name the columns: " + ",".join(columns) + " (only address is required)",
        )
    reader.fieldnames = header
    return reader
