"""Shared by the social tests: a Release built in memory, and the repo's templates."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pressroom.releases import ChannelOptions, HeroImage, Release

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "templates"
SAMPLE_HERO = REPO / "content" / "releases" / "international-day-of-friendship-cluster-hub" / "hero.png"


def make_release(
    *,
    slug: str = "battery-news",
    title: str = "Battery recycling pilot opens",
    summary: str = "A new pilot plant recovers lithium from used batteries.",
    tags: tuple[str, ...] = ("recycling", "battery raw materials"),
    social: dict[str, ChannelOptions] | None = None,
    hero_file: Path | None = SAMPLE_HERO,
    date: datetime = datetime(2024, 7, 30, 7, 0, tzinfo=UTC),
    language: str = "en",
    hero_url: str | None = "hero.png",
) -> Release:
    """A valid public Release without a file on disk (titles and summaries are one line, as the loader makes them).

    With ``hero_file=None`` the hero is only a public URL (``hero_url``), as for an image hosted elsewhere.
    """
    url = f"https://press.example.org/releases/{slug}/"
    hero = None
    if hero_file is not None:
        hero = HeroImage(src=url + hero_file.name, alt="Workers at the recycling pilot plant", file=hero_file)
    elif hero_url:
        hero = HeroImage(src=url + hero_url, alt="Workers at the recycling pilot plant")
    return Release(
        slug=slug,
        title=" ".join(title.split()) or "Untitled",
        summary=" ".join(summary.split()),
        date=date,
        status="approved",
        tags=tags,
        language=language,
        hero=hero,
        social=social or {},
        body_markdown="Body.",
        body_html="<p>Body.</p>",
        url=url,
        source=Path(f"/tmp/{slug}.md"),
        digest="0" * 32,
    )
