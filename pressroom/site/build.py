"""public/ from the releases and the clock: plan the jobs, render what changed, write only what differs."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pressroom.errors import ConfigError
from pressroom.releases.cache import collector_paused
from pressroom.releases.model import Release
from pressroom.settings import Settings
from pressroom.site.plan import plan
from pressroom.site.sync import sync
from pressroom.site.writer import BuildCache

__all__ = ["BuildReport", "build_site"]

_MANIFEST = "site-manifest"


@dataclass(frozen=True)
class BuildReport:
    """What one build did to public/."""

    written: list[Path] = field(default_factory=list)
    unchanged: int = 0
    removed: list[Path] = field(default_factory=list)
    pages: int = 0
    releases: tuple[str, ...] = ()  # slugs of the releases that are public in this build, newest first


def build_site(*, settings: Settings, releases: Sequence[Release], now: datetime) -> BuildReport:
    """Render public/ for every release that is public at ``now``; write only files whose bytes changed.

    ``releases`` may hold drafts, embargoed and expired releases: they are filtered out here and
    leave no trace in any page, feed, sitemap or index.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    with _frozen_heap():
        public = _public_dir(settings)
        with collector_paused():  # planning and the manifest make only live objects
            cache = BuildCache(settings.path("var") / "cache" / _MANIFEST)
            planned = plan(settings, releases, now, variants=cache.variants)
            cache.variants = planned.variants
            # Frozen too, before the collector is back: the collections while rendering walk only what
            # rendering makes, not 12,000 jobs and the manifest's 35,000 entries again and again.
            gc.freeze()
        # Release pages are a stage of their own: they are all written before any page links to them.
        report = sync(public, (planned.release_jobs, planned.jobs), planned.copies, cache=cache)
        cache.save()
    return BuildReport(
        written=report.written,
        unchanged=report.unchanged,
        removed=report.removed,
        pages=planned.pages,
        releases=tuple(release.slug for release in planned.public),
    )


@contextmanager
def _frozen_heap() -> Iterator[None]:
    """Keep the cycle collector off the releases: a build makes many short-lived objects next to a
    large, long-lived heap of releases, and each full collection would walk that heap again (a
    third of a rebuild). Frozen, that heap is skipped, while the cycles each page render leaves
    (Jinja contexts) are still collected: with the collector off they held 60 MB at 10,000 releases."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _public_dir(settings: Settings) -> Path:
    """public/, refusing a folder whose other contents the build would delete."""
    public = settings.path("public")
    for name in ("content", "templates", "var"):
        other = settings.path(name)  # type: ignore[arg-type]
        if public == other or public in other.parents:
            raise ConfigError(
                f"paths.public ({public}) contains paths.{name} ({other}); the build deletes everything "
                "in public/ that it did not generate",
                hint="point paths.public at a folder of its own, e.g. public",
            )
    if public == settings.root.resolve():
        raise ConfigError(f"paths.public is the project folder ({public})", hint="use a folder of its own, e.g. public")
    return public
