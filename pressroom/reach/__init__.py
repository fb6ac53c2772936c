"""Reach without tracking people: aggregate link counts, and the reports built on them and the ledger.

Rooms: :mod:`.clicks` (what a followed link adds), :mod:`.report` (the reach of each release, the
social counts read back), :mod:`.forms` (Markdown, CSV, JSON, the page), :mod:`.eu` (the EU report).

**Counting a click** (:class:`ClickCounter`). A counted link (``/r/<token>``) names a release, a
link, a channel and a language, never a reader. When it is followed, the client (address and
user agent) is turned into a keyed hash whose key lives in memory for one UTC day and is then
thrown away; the hash only folds repeated clicks (one person, one link, one day: one click) and
spots bursts. Neither the hash nor the address nor the user agent is ever written anywhere:
what reaches the database is "+1 person" or "+1 machine" for a link in an hour.

A click is a machine's when it is a HEAD request, when its user agent is a known scanner,
preview fetcher or script (or missing), or when one client follows several links of the same
message within ``[analytics] burst_seconds`` (security gateways open every link of an email
within seconds of its arrival); the clicks of a burst counted as people before it showed are
moved to the machines. A restart of the server forgets the day's key: a click repeated after
it counts again.
"""

from pressroom.reach.clicks import Click, ClickCounter, is_scanner
from pressroom.reach.eu import eu_csv, eu_rows, eu_summary
from pressroom.reach.forms import as_csv, as_html, as_json, as_markdown, write_html
from pressroom.reach.report import (
    Period,
    ReachReport,
    ReleaseReach,
    build_report,
    read_back,
)

__all__ = [
    "Click", "ClickCounter", "Period", "ReachReport", "ReleaseReach", "as_csv", "as_html", "as_json", "as_markdown",
    "build_report", "eu_csv", "eu_rows", "eu_summary", "is_scanner", "read_back", "write_html",
]
