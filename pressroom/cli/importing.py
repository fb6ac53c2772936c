"""The command that turns a Word or text file into a draft release: import."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pressroom.cli.base import (
    NowOption,
    SettingsOption,
    app,
    console,
    err,
    open_settings,
    parse_now,
)


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="the press release: a Word (.docx), OpenDocument (.odt), text (.txt) or Markdown (.md) file")],
    slug: Annotated[str | None, typer.Option("--slug", help="the release's web address, e.g. pilot-results (default: from the title)")] = None,
    issuers: Annotated[
        list[str] | None,
        typer.Option("--issuers", help="co-issuing organisations by file name in content/organisations/ (repeat it, or separate with commas)"),
    ] = None,
    language: Annotated[
        str | None,
        typer.Option("--language", help="the document's language, e.g. de; with the slug of an existing release it becomes that release's translation"),
    ] = None,
    settings_file: SettingsOption = None,
    now: NowOption = None,
) -> None:
    """Make a draft release from a Word, OpenDocument, text or Markdown file, say what was guessed, then check it.

    The draft goes to content/releases/<slug>/ with its pictures and status: draft: nothing of it is published until you write status: approved. An existing release is never overwritten.
    """
    from pressroom.errors import DocumentError
    from pressroom.importer import check_draft, import_document, organisation_stub

    settings = open_settings(settings_file)
    names = [name.strip() for given in issuers or [] for name in given.split(",") if name.strip()]
    try:
        result = import_document(file, settings=settings, now=parse_now(now), slug=slug, issuers=names, language=language)
    except DocumentError as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    where = result.path.relative_to(settings.root) if result.path.is_relative_to(settings.root) else result.path
    kind = f"the {result.translation} version of {result.slug}" if result.translation else "a draft"
    console.print(f"imported {file.name} as {kind}: {where}", markup=False, soft_wrap=True)
    for guess in result.guesses:
        console.print(f"  {guess.line()}", markup=False, soft_wrap=True)
    for name in result.unmatched:
        path, text = organisation_stub(name)
        console.print(f'to make "{name}" an issuer, create {path}:', markup=False, soft_wrap=True)
        console.print("\n".join(f"    {line}" for line in text.splitlines()), markup=False, soft_wrap=True)
    checked = check_draft(result, settings=settings)
    console.print("pressroom check:", markup=False)
    for line in checked.lines:
        console.print(f"  {line}", markup=False, soft_wrap=True)
    if checked.ok:
        console.print("  ok: the draft is valid; it stays unpublished until its status is approved", markup=False, soft_wrap=True)
    else:
        console.print("  fix these in the file, then run `pressroom check` again", markup=False, soft_wrap=True)
