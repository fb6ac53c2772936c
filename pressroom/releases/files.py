"""Readers by file extension: which files under ``content/releases/`` are releases, and what every other one is.

``.md`` and ``.markdown`` files are releases: ``<slug>.md``, or a bundle folder ``<slug>/index.md``
with its language versions (``index.de.md``) and its files beside it. Every other file is named
by :func:`unread_files`, so nothing there is ignored in silence: a Word or text document (to import),
a bundle whose release is not called ``index.md`` (to rename), a file no release uses. Files whose
name starts with ``.`` or ``~$`` (version control, the desktop, Word's lock files) are not content.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path

from pressroom.errors import ReleaseError, ReleaseWarning
from pressroom.releases.model import IMAGE_SUFFIXES, Release, is_image
from pressroom.text import slugify

__all__ = ["INDEX_NAMES", "RELEASE_SUFFIXES", "Scan", "file_slug", "is_release_name", "not_a_release", "scan", "translation_language",
           "unread_files"]

RELEASE_SUFFIXES = (".md", ".markdown")
# index.de.md beside index.md: the German version of the same release.
_TRANSLATION_FILE = re.compile(r"^index\.([A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*)\.(?:md|markdown)$")
INDEX_NAMES = ("index.md", "index.markdown")
#: What people write releases in before they are Markdown: ``pressroom import`` makes a draft of them.
_DOCUMENTS = {
    ".docx": "a Word document", ".doc": "a Word document", ".odt": "an OpenDocument text",
    ".rtf": "a rich-text document", ".txt": "a text file",
}
_KINDS = {".pdf": "a PDF file", ".html": "an HTML file", ".htm": "an HTML file", ".yaml": "a YAML file",
          ".yml": "a YAML file", ".zip": "a ZIP archive", ".csv": "a CSV file"}


def translation_language(path: Path) -> str | None:
    """``de`` for a bundle's ``index.de.md``; None for any other file."""
    match = _TRANSLATION_FILE.fullmatch(path.name)
    return match.group(1) if match else None


def is_release_name(path: Path) -> bool:
    """A file a release is read from, by its extension."""
    return path.suffix.lower() in RELEASE_SUFFIXES


def file_slug(path: Path) -> str:
    """The slug a release file gets when its front matter names none: its bundle folder's (``index.md``,
    ``index.de.md``) or its own name."""
    bundled = path.name in INDEX_NAMES or translation_language(path) is not None
    return slugify(path.parent.name if bundled else path.stem)


def _hidden(name: str) -> bool:
    return name.startswith((".", "~$"))


@dataclass
class Scan:
    """The files under one folder: those read as releases, and (when asked) all the others."""

    releases: list[Path] = field(default_factory=list)
    others: list[Path] = field(default_factory=list)


def scan(root: Path, *, bundle: bool = False, others: bool = True) -> Scan:
    """The release files of ``root`` (a file, a folder of releases and bundle folders, or with ``bundle``
    one bundle folder), sorted; with ``others``, every other file below it too."""
    found = Scan()
    if root.is_file():
        found.releases.append(root)
    elif bundle:
        _scan_bundle(root, found, others=others)
    else:
        for entry in _entries(root):
            path = _child(root, entry.name)
            if entry.is_dir():
                _scan_bundle(path, found, others=others)
            elif is_release_name(path):
                found.releases.append(path)
            elif others:
                found.others.append(path)
    # Path's own order, by parts; as a key, once a path instead of in each of the 130,000 comparisons of 10,000 files.
    found.releases.sort(key=attrgetter("parts"))
    found.others.sort(key=attrgetter("parts"))
    return found


def _child(folder: Path, name: str) -> Path:
    """``folder / name`` for a name read from the folder itself (no separator to parse): Python 3.11's own way of
    listing a folder, a fifth of the time, which counts at 10,000 releases; elsewhere ``folder / name``."""
    return _CHILD(folder, name) if _CHILD is not None else folder / name


_CHILD = getattr(Path, "_make_child_relpath", None)


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        return [entry for entry in os.scandir(folder) if not _hidden(entry.name)]
    except OSError:
        return []


def _scan_bundle(folder: Path, found: Scan, *, others: bool) -> None:
    for entry in _entries(folder):
        path = _child(folder, entry.name)
        if entry.name in INDEX_NAMES or translation_language(path) is not None:
            found.releases.append(path)  # even a folder so named: reading it says what is wrong
        elif others and entry.is_dir():
            found.others += _files_below(path)
        elif others:
            found.others.append(path)


def _files_below(folder: Path) -> list[Path]:
    files = []
    for parent, folders, names in os.walk(folder):
        folders[:] = [name for name in folders if not _hidden(name)]
        files += [Path(parent, name) for name in names if not _hidden(name)]
    return files


def _shown(path: Path) -> str:
    """``path`` as the person at the command line would type it: relative to where they are, when below it."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def not_a_release(path: Path) -> ReleaseError:
    """What a file that is not read as a release is, named on the command line or met in the releases folder."""
    kind = _DOCUMENTS.get(path.suffix.lower())
    if kind is not None:
        return _document(path, kind)
    return ReleaseError(
        f"{_kind(path)}, not a release: it is not read", path=path, line=1, field="file",
        hint="a release is a Markdown file (.md or .markdown) that starts with front matter",
    )


def _document(path: Path, kind: str) -> ReleaseError:
    """A Word or text document: a release still to be imported (or, with front matter already, to be renamed)."""
    if path.suffix.lower() == ".txt" and _starts_with_front_matter(path):
        return ReleaseError(
            "a text file with front matter is not read as a release", path=path, line=1, field="file",
            hint=f"rename it {path.with_suffix('.md').name}",
        )
    return ReleaseError(
        f"{kind}, not a release: it is not published", path=path, line=1, field="file",
        hint=f"import it with 'pressroom import {_shown(path)}': it becomes a draft release to check and approve",
    )


def _starts_with_front_matter(path: Path) -> bool:
    try:
        with open(path, "rb") as stream:
            return stream.readline(16).removeprefix(b"\xef\xbb\xbf").strip() == b"---"
    except OSError:
        return False


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "an image"
    return _KINDS.get(suffix) or (f"a {suffix[1:].upper()} file" if suffix else "a file without an extension")


def unread_files(
    others: Iterable[Path], *, root: Path, within: tuple[str, ...] = (), releases: Iterable[Release],
    problems: Iterable[ReleaseError],
) -> tuple[list[ReleaseError], list[ReleaseWarning]]:
    """Each file of ``others`` (found below ``root``, which is the releases folder, or with ``within``
    that folder's bundle of that name) that no release reads or uses, as a problem (a release that
    will not go out: a document to import, a bundle to rename) or a warning (a stray file, which
    publishes nothing and harms nothing). ``releases`` and ``problems`` are what was read below ``root``."""
    reading = _Reading(root, within, releases, problems)
    found = [outcome for outcome in map(reading.name, others) if outcome is not None]
    return [f for f in found if not isinstance(f, ReleaseWarning)], [f for f in found if isinstance(f, ReleaseWarning)]


class _Reading:
    """What the releases folder holds: the bundles whose release loaded (with the files they use) and those
    whose release did not (their files are not judged: the release's own problem comes first)."""

    def __init__(self, root: Path, within: tuple[str, ...], releases: Iterable[Release], problems: Iterable[ReleaseError]) -> None:
        self.root, self.within = root, within
        self.prefix = os.path.join(str(root), "")
        self.resolved_root = root.resolve()
        self.used: set[Path] = set()
        self.bundles: set[str] = set()
        for release in releases:
            for version in release.versions:
                if version.assets:
                    self.used.update(version.assets)
                # Only a bundle's release is called index(.<lang>).md: the name spares the others the path's text.
                bundle = self._bundle(version.source) if version.source.name.startswith("index.") else None
                self.bundles.add(bundle or "")
        self.broken = {self._bundle(problem.path) for problem in problems} - {None}
        self.markdown: dict[str, int] = {}

    def _parts(self, path: Path) -> tuple[str, ...] | None:
        """Where ``path`` is in the releases folder (its parts from there); None when it is not below it.
        As strings: it is asked of every release, and ``Path.relative_to`` costs ten times more."""
        text = str(path)
        if not text.startswith(self.prefix):
            return None
        return (*self.within, *text[len(self.prefix) :].split(os.sep))

    def _bundle(self, path: Path) -> str | None:
        """The bundle folder (its name) a file below the releases folder is in; None at the top or outside."""
        parts = self._parts(path)
        return parts[0] if parts is not None and len(parts) > 1 else None

    def name(self, path: Path) -> ReleaseError | None:
        bundle = self._bundle(path)
        if bundle in self.broken or self._uses(path):
            return None
        if path.suffix.lower() in _DOCUMENTS:
            return not_a_release(path)
        if is_release_name(path):
            return self._markdown(path, bundle)
        if bundle in self.bundles:
            return _unused(path, bundle, "/".join((self._parts(path) or ())[1:]))
        if bundle is not None and self._markdown_files(path) > 0:
            return None  # the folder's Markdown file is named already: its images are its, once it is renamed
        return _stray(path)

    def _uses(self, path: Path) -> bool:
        # Assets are resolved; the folder resolved once spares a resolve() per file, which a symbolic
        # link below it still needs.
        return Path(self.resolved_root, str(path)[len(self.prefix) :]) in self.used or (
            bool(self.used) and path.resolve() in self.used
        )

    def _markdown_files(self, path: Path) -> int:
        """How many Markdown files the bundle folder of ``path`` holds."""
        parts = self._parts(path) or ()
        folder = path.parents[len(parts) - 2]
        if parts[0] not in self.markdown:
            self.markdown[parts[0]] = sum(1 for p in folder.rglob("*") if is_release_name(p))
        return self.markdown[parts[0]]

    def _markdown(self, path: Path, bundle: str | None) -> ReleaseError:
        """A Markdown file that is not read: beside a release, nested too deep, or misnamed."""
        if bundle in self.bundles:
            return ReleaseWarning(
                "a Markdown file beside the release that is not one of its language versions: it is not read",
                path=path, line=1, field="file",
                hint="name a language version index.<language>.md (e.g. index.de.md), or link the file from the release, "
                     "or remove it",
            )
        if len(self._parts(path) or ()) > 2:
            return ReleaseError(
                "a release folder inside another folder: it is not read", path=path, line=1, field="file",
                hint=f"move the folder {path.parent.name}/ into {_shown(path.parents[len(self._parts(path) or ()) - 1])}/ "
                     "(a release is a file or a folder directly in the releases folder)",
            )
        target = "index.md" if path.suffix.lower() == ".md" else "index.markdown"
        hint = f"rename {path.name} to {target}" if self._markdown_files(path) == 1 else \
            f"rename the release's own file in {bundle}/ to {target}"
        return ReleaseError(
            f"the folder {bundle}/ has no {target}, so this release is not read", path=path, line=1, field="file", hint=hint,
        )


def _unused(path: Path, bundle: str, name: str) -> ReleaseWarning:
    if is_image(path):
        hint = f"show it in the release (![what it shows]({name}) in the body, or as hero: {{src: {name}, alt: ...}}), or remove it"
    else:
        hint = f"list it in downloads: or link it from the body ([title]({name})), or remove it"
    return ReleaseWarning(f"{_kind(path)} that the release {bundle} does not use: it is not published",
                          path=path, line=1, field="file", hint=hint)


def _stray(path: Path) -> ReleaseWarning:
    if path.suffix.lower() in (".yaml", ".yml"):
        hint = "a co-issuer's file goes in content/organisations/; anything else: remove it"
    else:
        hint = "put it in the folder of the release that uses it (releases/<slug>/, beside index.md) and link it, or remove it"
    return ReleaseWarning(f"{_kind(path)} outside any release: it is not published", path=path, line=1, field="file", hint=hint)
