"""Release files -> frozen :class:`Release` models: read, validate, route.

A release is ``content/releases/<slug>.md`` (or ``.markdown``) or a bundle folder
``content/releases/<slug>/index.md`` with its images beside it, and its other languages as
``index.<lang>.md``. The rooms of this package:

- ``model``: the frozen :class:`Release` and its parts; ``public_releases``;
- ``schema``: :class:`FrontMatter`, one validator per field, each with its hint;
- ``files``: readers by file extension, and the names of the files that are not releases;
- ``reading``: one file -> one Release;
- ``languages``: a release's language versions;
- ``loading``: every release, through ``cache`` (the pickle in var/cache/) and ``parallel`` (worker processes);
- ``blocks``: what outputs show of a release beyond its text (contacts, About texts, EU acknowledgement).

Every problem becomes a :class:`~pressroom.errors.ReleaseError` naming the file, the line
and the field, and the release is skipped; the other releases still load. What is only worth a
second look (a date without a time) is a :class:`~pressroom.errors.ReleaseWarning`: the release loads.
"""

from pressroom.records import Contact
from pressroom.releases.files import file_slug, translation_language
from pressroom.releases.loading import load_releases
from pressroom.releases.model import (
    PRESS_KIT,
    ChannelOptions,
    Correction,
    Download,
    Embargo,
    HeroImage,
    LoadResult,
    Release,
    Withdrawal,
    public_releases,
)
from pressroom.releases.reading import MAX_FILE_BYTES, MAX_IMAGE_BYTES, load_release
from pressroom.releases.schema import FrontMatter, resolve_local_time
from pressroom.text import LANGUAGE_RE, SLUG_RE, clean_text, slugify

__all__ = [
    "LANGUAGE_RE",
    "MAX_FILE_BYTES",
    "MAX_IMAGE_BYTES",
    "PRESS_KIT",
    "SLUG_RE",
    "ChannelOptions",
    "Contact",
    "Correction",
    "Download",
    "Embargo",
    "FrontMatter",
    "HeroImage",
    "LoadResult",
    "Release",
    "Withdrawal",
    "clean_text",
    "file_slug",
    "load_release",
    "load_releases",
    "public_releases",
    "resolve_local_time",
    "slugify",
    "translation_language",
]
