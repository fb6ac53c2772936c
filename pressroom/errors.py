"""The one exception tree of Pressroom.

Every error carries a ``hint``: one sentence that tells the person reading it what to do.

    PressroomError                 base; never raised directly
    ├── ConfigError                pressroom.toml or a PRESSROOM_* variable is wrong
    ├── ReleaseError               one release file is wrong (file, line, field)
    │   ├── ReleaseWarning         worth a second look, yet the release loads; collected, never raised
    │   └── OrganisationError      one content/organisations/*.yaml is wrong (file, line, field)
    ├── DocumentError              a file given to `pressroom import` cannot become a draft (nothing was written)
    ├── TemplateError              a template is missing or fails to render
    ├── AddressError               an email address (or a CSV row carrying one) is not acceptable
    ├── TokenError                 a signed link is forged, damaged, expired or for another action
    └── DeliveryError              sending an email or a post, or recording it, failed
        ├── TransientError         worth retrying: timeouts, dropped connections, SMTP 4xx, HTTP 429/5xx
        │   ├── DatabaseUnavailable   the database is down, unreachable, or locked past its timeout
        │   └── RetryLater            a social network's 5xx or timeout: try again (at its reset time, if it gave one)
        │       └── Unavailable       it is out of reach, in maintenance or limits the account: nothing was posted
        └── PermanentError         retrying cannot help: SMTP 5xx, HTTP 4xx validation errors

Library exceptions (the SMTP client, httpx, SQLAlchemy, yaml) are mapped into this tree at
the room that owns the library (``db.py`` maps SQLAlchemy's), so callers and Prefect's
``retry_condition_fn`` only ever need ``isinstance(exc, TransientError)``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

__all__ = [
    "AddressError",
    "ConfigError",
    "DatabaseUnavailable",
    "DeliveryError",
    "DocumentError",
    "PermanentError",
    "OrganisationError",
    "PressroomError",
    "ReleaseError",
    "ReleaseWarning",
    "RetryLater",
    "TemplateError",
    "TokenError",
    "TransientError",
    "Unavailable",
]


class PressroomError(Exception):
    """Base of every error Pressroom raises on purpose."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        if hint:
            self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class ConfigError(PressroomError):
    """The settings are invalid; nothing is done until they are fixed."""

    hint = "fix pressroom.toml or the PRESSROOM_* environment variable named above"


class ReleaseError(PressroomError):
    """One release file is invalid. It is skipped; the other releases still publish."""

    def __init__(
        self,
        message: str,
        *,
        path: Path | str,
        line: int | None = None,
        field: str = "",
        hint: str = "",
    ) -> None:
        super().__init__(message, hint=hint)
        self.path = Path(path)
        self.line = line
        self.field = field

    def location(self, root: Path | None = None) -> str:
        """``file:line`` with the file relative to ``root`` when possible."""
        path = self.path
        if root is not None:
            try:
                path = path.resolve().relative_to(root.resolve())
            except ValueError:
                pass
        return f"{path}:{self.line or 1}"

    def line_for_humans(self, root: Path | None = None) -> str:
        """The ``file:line: field: message (hint: ...)`` line that ``pressroom check`` prints."""
        field = f" {self.field}:" if self.field else ""
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{self.location(root)}:{field} {self.message}{hint}"

    def __str__(self) -> str:
        return self.line_for_humans()


class ReleaseWarning(ReleaseError):
    """Something in a valid release that may not mean what its author thinks (a date without a time).

    Listed by ``pressroom check`` beside the problems, but the release loads and publishes.
    """

    def line_for_humans(self, root: Path | None = None) -> str:
        field = f" {self.field}:" if self.field else ""
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{self.location(root)}:{field} warning: {self.message}{hint}"


class OrganisationError(ReleaseError):
    """A co-issuer's file is wrong; every release naming it is refused until it is fixed."""


class DocumentError(PressroomError):
    """A Word, OpenDocument or text file that cannot be imported: damaged, protected, with macros, too big, empty."""

    def __init__(self, message: str, *, path: Path | str, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.path = Path(path)

    def __str__(self) -> str:
        return f"{self.path}: {super().__str__()}"


class TemplateError(PressroomError):
    """A template is missing or raised while rendering."""

    hint = "check the template named above; `pressroom doctor` renders every template"


class DeliveryError(PressroomError):
    """Sending to one recipient or network failed."""


class TransientError(DeliveryError):
    """A failure that may pass: retry later, with backoff."""


class PermanentError(DeliveryError):
    """A failure that will not pass by retrying: record it, suppress if it is about the address."""


class DatabaseUnavailable(TransientError):
    """The database could not be reached or stayed locked; nothing was changed by the failed statement."""

    hint = "check that the database named above is running and reachable (database_url / PRESSROOM_DATABASE_URL)"


class RetryLater(TransientError):
    """A rate limit, a 5xx or a timeout: try again at ``retry_at`` (never sooner), or after the sender's
    backoff when the far end named no time."""

    def __init__(self, message: str, *, retry_at: datetime | None, hint: str = "") -> None:
        super().__init__(message, hint=hint or "nothing to do: the post is retried on a later run")
        self.retry_at = retry_at

    def retry_after(self, now: datetime | None = None) -> float:
        """Seconds to wait from ``now``; never negative."""
        if self.retry_at is None:
            return 0.0
        return max(0.0, (self.retry_at - (now or datetime.now(UTC))).total_seconds())


class Unavailable(RetryLater):
    """A social network could not be reached, is in maintenance (503) or limits the account (429).

    Nothing was posted and the answer says nothing about the post, so waiting for the network spends
    none of the post's attempts: an outage of any length is waited out (up to ``give_up_after``).
    """

    def __init__(self, message: str, *, retry_at: datetime | None = None, rate_limit: bool = False) -> None:
        super().__init__(message, retry_at=retry_at,
                         hint="nothing to do: the post waits for the network and goes out when it is back")
        self.rate_limit = rate_limit


class AddressError(PressroomError):
    """An email address, or a row that carries one, is not acceptable."""

    hint = "write a single address such as jane.doe@example.org"


class TokenError(PressroomError):
    """A link token is forged, damaged, expired, or meant for another action."""

    hint = "the link is not valid any more; ask for a new one from the preferences page"
