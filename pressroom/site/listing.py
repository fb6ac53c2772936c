"""The site's lists of releases: topics (tags) and the pages a list is cut into."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pressroom.releases.model import Release
from pressroom.text import slugify

__all__ = ["Listing", "Tag", "collect_tags", "paginate", "tag_slugs"]


@dataclass(frozen=True)
class Tag:
    """A topic: the releases of one language that carry one tag, newest first."""

    name: str
    slug: str
    releases: tuple[Release, ...]
    prefix: str = ""  # "de/": a topic of the German pages

    @property
    def path(self) -> str:
        return f"{self.prefix}tags/{self.slug}/"


@lru_cache(maxsize=4096)
def _tag_slug(tag: str) -> str:
    return slugify(tag)


def tag_slugs(release: Release) -> tuple[str, ...]:
    """``release.tag_slugs``, with each distinct tag slugified once per process."""
    return tuple(_tag_slug(tag) for tag in release.tags)


def collect_tags(releases: list[Release], prefix: str) -> list[Tag]:
    """Tags by slug, named as the newest release spells them, sorted by name."""
    names: dict[str, str] = {}
    members: dict[str, list[Release]] = {}
    for release in releases:
        for name, slug in zip(release.tags, tag_slugs(release), strict=True):
            if not slug:
                continue  # a tag of punctuation only has no URL
            names.setdefault(slug, name)
            if not members.setdefault(slug, []) or members[slug][-1] is not release:
                members[slug].append(release)
    return sorted(
        (Tag(name=names[slug], slug=slug, releases=tuple(group), prefix=prefix) for slug, group in members.items()),
        key=lambda tag: (tag.name.casefold(), tag.slug),
    )


@dataclass(frozen=True)
class Listing:
    """One page of a list of releases. ``number`` is None for the front page, whose URL is the list's own."""

    path: str
    releases: list[Release]
    number: int | None
    newer: str | None  # site-relative path of the page of newer releases
    older: str | None
    # What only the front page says about the whole list: it changes with every release, so a
    # numbered page must not show it.
    total: int | None = None  # pages
    count: int | None = None  # releases


def paginate(items: list[Release], size: int, base: str) -> list[Listing]:
    """Pages numbered from the oldest release, so a full page's URL and contents never change.

    ``items`` is newest first. ``{base}page/1/`` holds the ``size`` oldest releases, ``page/2/``
    the next ``size``, and so on; the front page (``base``) holds the rest: the newest full
    page's worth plus the releases that do not fill a page yet (``size`` to ``2 * size - 1`` of
    them, or all when there are fewer), so a reader's first page is never nearly empty. A new
    release changes the front page only; every ``size`` releases a numbered page appears, and
    the page before it (then the newest numbered one) has its "newer" link turned from the
    front page to it.
    """
    count = len(items)
    numbered = max(0, count // size - 1)
    front_size = count - numbered * size

    def path(number: int) -> str:
        return f"{base}page/{number}/"

    pages = [
        Listing(
            path=base,
            releases=items[:front_size],
            number=None,
            newer=None,
            older=path(numbered) if numbered else None,
            total=numbered + 1,
            count=count,
        )
    ]
    for number in range(numbered, 0, -1):
        end = count - (number - 1) * size
        pages.append(
            Listing(
                path=path(number),
                releases=items[end - size : end],
                number=number,
                newer=path(number + 1) if number < numbered else base,
                older=path(number - 1) if number > 1 else None,
            )
        )
    return pages
