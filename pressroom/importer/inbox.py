"""The drop folder: every file put in ``content/inbox/`` becomes a draft, once.

People without git drop Word or text files into a shared folder. Each publish run imports what is
there (``flows/inbox.py``): a file that became a draft moves to ``content/inbox/done/``; one that
cannot become a draft moves to ``content/inbox/failed/`` with a ``.why.txt`` beside it saying why and
what to do. Moving it out is what makes each file reported once: the next run does not see it, and
the person who dropped it sees where it went without asking anyone. The editors get one email per
run that imported anything (:meth:`InboxReport.as_text`).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from pressroom.errors import DocumentError
from pressroom.importer import (
    CheckResult,
    ImportResult,
    check_draft,
    import_document,
    organisation_stub,
)
from pressroom.settings import Settings

__all__ = ["InboxReport", "import_inbox", "inbox_folder"]

# A file still being copied into a shared folder looks finished to a reader; wait until it has been still this long.
SETTLE = timedelta(seconds=30)
# A claimed file whose run died is given back to the inbox after this long.
_STALE_CLAIM = timedelta(minutes=10)


@dataclass
class Imported:
    result: ImportResult
    check: CheckResult
    kept: Path  # where the dropped file went (content/inbox/done/…)


@dataclass
class Failed:
    name: str
    reason: str
    kept: Path


@dataclass
class InboxReport:
    """What one run did with the inbox."""

    drafts: list[Imported] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # still being written: imported on a later run

    @property
    def empty(self) -> bool:
        return not self.drafts and not self.failed

    @property
    def key(self) -> str:
        """One key per run that moved files: the staff email for it is sent once."""
        names = sorted(str(item.kept) for item in [*self.drafts, *self.failed])
        return "inbox-" + hashlib.blake2b("\n".join(names).encode(), digest_size=8).hexdigest()

    def subject(self) -> str:
        parts = []
        if self.drafts:
            parts.append(f"{len(self.drafts)} new draft{'s' if len(self.drafts) > 1 else ''} from the inbox")
        if self.failed:
            parts.append(f"{len(self.failed)} file{'s' if len(self.failed) > 1 else ''} not imported")
        return "[Pressroom] " + ", ".join(parts)

    def as_text(self, root: Path) -> str:
        """The editors' email: each new draft with what `check` says and what was guessed; each file refused and why."""
        def shown(path: Path) -> str:
            return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)

        out: list[str] = []
        if self.drafts:
            out += ["Files dropped into content/inbox/ are now draft releases. Nothing of them is published",
                    "until someone checks them and writes status: approved in their file.", ""]
        for number, item in enumerate(self.drafts, start=1):
            result = item.result
            title = f'"{result.title}"' if result.title else "(no title yet)"
            what = f"{result.translation} version of {result.slug}" if result.translation else "draft"
            out.append(f"{number}. {title}: {what}, {shown(result.path)}")
            out.append(f"   from {result.source.name}, kept as {shown(item.kept)}")
            if item.check.ok and not item.check.lines:
                out.append("   pressroom check: valid")
            else:
                out.append("   pressroom check:" + ("" if not item.check.ok else " valid, with warnings"))
                out += [f"     {line}" for line in item.check.lines]
            out.append("   guessed:")
            out += [f"     {guess.line()}" for guess in result.guesses]
            for name in result.unmatched:
                path, text = organisation_stub(name)
                out.append(f'   to make "{name}" an issuer, create {path}:')
                out += [f"       {line}" for line in text.splitlines()]
            out.append("")
        if self.failed:
            out += ["Not imported (moved to content/inbox/failed/, with the reason beside each):", ""]
            out += [f"- {item.name}: {item.reason}" for item in self.failed]
            out.append("")
        return "\n".join(out)


def inbox_folder(settings: Settings) -> Path:
    return settings.path("content") / "inbox"


def import_inbox(*, settings: Settings, now: datetime, settle: timedelta = SETTLE) -> InboxReport:
    """Import every file of the inbox that has been still for ``settle``; never raises for a bad file."""
    inbox = inbox_folder(settings)
    report = InboxReport()
    if not inbox.is_dir():
        return report
    claims = inbox / ".importing"
    _give_back_stale(claims, inbox)
    for file in sorted(inbox.iterdir()):
        # Hidden files and Word's "~$name.docx" lock files belong to someone's open document, not to us.
        if not file.is_file() or file.name.startswith((".", "~$")):
            continue
        try:
            still = time.time() - file.stat().st_mtime  # the file's clock is the wall clock, not the run's `now`
        except FileNotFoundError:
            continue
        if still < settle.total_seconds():
            report.waiting.append(file.name)
            continue
        claims.mkdir(exist_ok=True)
        claimed = claims / file.name
        try:
            os.rename(file, claimed)  # atomic: of two runs at once, one gets the file
        except FileNotFoundError:
            continue
        try:
            result = import_document(claimed, settings=settings, now=now, free_slug=True, source_name=file.name)
        except DocumentError as exc:
            report.failed.append(_fail(claimed, inbox, f"{exc.message} (hint: {exc.hint})" if exc.hint else exc.message))
            continue
        except Exception as exc:  # one strange file must stop neither the others nor the publish run
            report.failed.append(_fail(claimed, inbox, f"could not be imported ({type(exc).__name__}: {exc})"))
            continue
        result.source = inbox / file.name
        kept = _move(claimed, inbox / "done")
        report.drafts.append(Imported(result=result, check=check_draft(result, settings=settings), kept=kept))
    return report


def _fail(claimed: Path, inbox: Path, reason: str) -> Failed:
    kept = _move(claimed, inbox / "failed")
    kept.with_name(kept.name + ".why.txt").write_text(f"{claimed.name}: {reason}\n", encoding="utf-8")
    return Failed(name=claimed.name, reason=reason, kept=kept)


def _move(file: Path, folder: Path) -> Path:
    """Move ``file`` into ``folder``, beside (never over) an earlier file of the same name."""
    folder.mkdir(exist_ok=True)
    target = folder / file.name
    number = 1
    while target.exists():
        number += 1
        target = folder / f"{file.stem}-{number}{file.suffix}"
    os.rename(file, target)
    return target


def _give_back_stale(claims: Path, inbox: Path) -> None:
    if not claims.is_dir():
        return
    for file in claims.iterdir():
        try:
            # A rename sets the change time: it says when the file was claimed.
            if time.time() - file.stat().st_ctime > _STALE_CLAIM.total_seconds() and not (inbox / file.name).exists():
                os.rename(file, inbox / file.name)
        except FileNotFoundError:
            continue
