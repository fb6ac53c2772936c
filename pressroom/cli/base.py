"""What every command shares: the Typer app, the consoles, the --settings and --now options."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from pressroom.errors import PressroomError
from pressroom.settings import Settings, load_settings

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help=(
        "Pressroom puts your press releases out: on the website and its news feeds, by email to subscribers "
        "(and to journalists before an embargo ends), and on Mastodon, Bluesky and LinkedIn.\n\n"
        "Have a Word file? `pressroom import FILE` makes a draft of it. `pressroom check` says what is wrong, "
        "line by line; `pressroom preview SLUG` shows the email. A release goes out once its status is approved "
        "and its date has come. Guides: docs/writing.md (writing releases), docs/operations.md (running it)."
    ),
)
# Long lines (a problem with its hint, a path) stay whole: a terminal wraps them where it must, never mid-phrase.
console = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

SettingsOption = Annotated[
    Optional[Path], typer.Option("--settings", "-s", help="the settings file (default: pressroom.toml in this folder)")
]
NowOption = Annotated[
    Optional[str],
    typer.Option("--now", help="act as if it were this time, to see what a later run would do (e.g. 2024-07-30T09:00+02:00)"),
]


def open_settings(path: Path | None) -> Settings:
    try:
        return load_settings(path)
    except PressroomError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def parse_now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        err.print(f"[red]error:[/red] --now {value!r}: write an ISO 8601 time with an offset, e.g. 2024-07-30T09:00+02:00")
        raise typer.Exit(2)
    return moment


def use_local_prefect(settings: Settings) -> None:
    """Before Prefect is imported: use the project's running local server (`pressroom prefect-server`), if any."""
    from flows.server import use_local_server

    use_local_server(settings)
