"""The ``pressroom`` command, one module per group of commands.

Bad content never shows a traceback: every PressroomError is printed as one line with its hint,
and the exit code says whether anything was wrong.
"""

from __future__ import annotations

import sys

from rich.markup import escape

from pressroom.cli import content, deliveries, importing, people, report, runs
from pressroom.cli.base import app, err
from pressroom.errors import PressroomError, TransientError

__all__ = ["app", "main"]

# Importing a group module registers its commands on ``app``.
COMMAND_GROUPS = (content, importing, runs, people, deliveries, report)


def main() -> None:
    """Entry point of the ``pressroom`` script."""
    try:
        app()
    except PressroomError as exc:
        # Escaped: "[prefect] port" or "[[social]]" in a message is text, not console markup.
        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        # A server away (the database, SMTP) is a failed run, 1; wrong settings or usage, 2.
        sys.exit(1 if isinstance(exc, TransientError) else 2)
