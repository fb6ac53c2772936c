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
    help="Press releases from Markdown to an archive site, feeds, email and social networks, exactly once.",
)
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

SettingsOption = Annotated[
    Optional[Path], typer.Option("--settings", "-s", help="pressroom.toml to use (default: ./pressroom.toml)")
]
NowOption = Annotated[
    Optional[str],
    typer.Option("--now", help="pretend it is this time (ISO 8601 with offset, e.g. 2024-07-30T09:00+02:00)"),
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
    from flows.ops import use_local_server

    use_local_server(settings)
