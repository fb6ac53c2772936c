"""Every kind of output that presents a release, in one registry: pages, emails, posts, the press kit.

A release's blocks (lead, hero, contacts, downloads, press kit, co-issuers, About texts, EU
acknowledgement) are one partial per medium (``templates/site/blocks/``, ``templates/email/blocks/``),
and every output below uses them. Each kind renders what its reader gets from a release in one
language; the test of the registry walks every kind for an EU-funded, three-issuer release in each
language, so a new kind added here that forgets a block fails it, and so does a kind that stops
using the partials. What only a delivery knows (the journalist's name, a correction's note, the
editors' decision links) is a stand-in here: :data:`STAND_INS`.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Literal

from pressroom.mail import (
    compose_digest, compose_embargo, compose_follow_up, compose_release, compose_withdrawn, embargo_until,
)
from pressroom.mail.message import Composed
from pressroom.presskit import press_kit
from pressroom.releases.model import Release
from pressroom.settings import Settings
from pressroom.site.listing import collect_tags
from pressroom.site.render import Renderer
from pressroom.social.compose import NETWORK_LIMITS, compose_post

__all__ = ["OUTPUT_KINDS", "STAND_INS", "OutputKind", "Rendered"]

#: What a real delivery brings and a release does not say.
STAND_INS = {"journalist": "A. Journalist", "note": "A date was wrong.", "approve": "https://example.org/approve",
             "reject": "https://example.org/reject"}

Medium = Literal["page", "print", "email", "post", "kit"]


@dataclass(frozen=True)
class Rendered:
    """What a reader gets: the HTML a browser or email client shows, the plain text (an email's text part,
    a post, the press kit's text files) and the names of the files that come with it (the press kit's)."""

    html: str = ""
    text: str = ""
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutputKind:
    """One kind of output: its ``medium`` says which blocks it must carry; ``hero`` whether it shows the
    hero image (an email before the embargo ends has its photos on the journalist's preview page)."""

    name: str
    medium: Medium
    render: Callable[[Release, str, Settings], Rendered]  # (release as read, language, settings)
    hero: bool = False


def _renderer(settings: Settings, version: Release) -> Renderer:
    language = version.language
    prefix = "" if language == settings.site.language else f"{language}/"
    return Renderer(settings, collect_tags([version], prefix), language=language, prefix=prefix,
                    languages=settings.site.all_languages)


def _public_page(release: Release, language: str, settings: Settings) -> Rendered:
    version = release.version(language)
    files = _renderer(settings, version).release_page(version, main=release, newer=None, older=None)
    return Rendered(html=files[f"{version.path}index.html"].decode("utf-8"))


def _preview_page(release: Release, language: str, settings: Settings) -> Rendered:
    version = release.version(language)
    html = _renderer(settings, version).preview_page(
        version, until=embargo_until(version.date, settings, language), name=STAND_INS["journalist"],
        link=lambda name: f"/preview/{version.slug}/files/{name}?token=t",
    )
    return Rendered(html=html.decode("utf-8"))


def _email(compose: Callable[..., Composed], release: Release, language: str, settings: Settings) -> Rendered:
    composed = compose(release=release, settings=settings, language=language)
    return Rendered(html=composed.html, text=composed.text)


def _digest(release: Release, language: str, settings: Settings) -> Rendered:
    version = release.version(language)
    composed = compose_digest(releases=[version], settings=settings, language=language,
                              period_start=version.date - timedelta(days=1), period_end=version.date + timedelta(days=1))
    return Rendered(html=composed.html, text=composed.text)


def _withdrawn(release: Release, language: str, settings: Settings) -> Rendered:
    composed = compose_withdrawn(slug=release.slug, title=release.version(language).title, settings=settings,
                                 language=language, release=release)
    return Rendered(html=composed.html, text=composed.text)


def _follow_up(kind: Literal["correction", "withdrawal"], release: Release, language: str, settings: Settings) -> Rendered:
    composed = compose_follow_up(release=release, settings=settings, kind=kind, note=STAND_INS["note"],
                                 date=release.date + timedelta(days=1), language=language)
    return Rendered(html=composed.html, text=composed.text)


def _post(network: str, release: Release, language: str, settings: Settings) -> Rendered:
    post = compose_post(release=release.version(language), network=network, limits=NETWORK_LIMITS[network],
                        templates=settings.path("templates"), settings=settings)
    return Rendered(text="\n\n".join(part.text for part in post.parts))


def _press_kit(release: Release, language: str, settings: Settings) -> Rendered:
    with zipfile.ZipFile(io.BytesIO(press_kit(release=release.version(language), settings=settings))) as archive:
        names = tuple(archive.namelist())
        text = "\n\n".join(archive.read(name).decode("utf-8") for name in names if name.endswith((".md", ".txt")))
    return Rendered(text=text, files=names)


_PROOF = {"Approve": STAND_INS["approve"], "Reject": STAND_INS["reject"]}

#: Every page, email and post kind that presents a release, and the press kit.
OUTPUT_KINDS: tuple[OutputKind, ...] = (
    OutputKind("public page", "page", _public_page, hero=True),
    OutputKind("print", "print", _public_page, hero=True),  # the public page, through its print stylesheet
    OutputKind("journalists' preview page", "page", _preview_page, hero=True),
    OutputKind("release email", "email", partial(_email, compose_release), hero=True),
    OutputKind("editors' proof", "email", partial(_email, partial(compose_release, proof=_PROOF)), hero=True),
    OutputKind("digest entry", "email", _digest, hero=True),
    OutputKind("embargoed email", "email", partial(_email, compose_embargo)),
    OutputKind("embargo moved email", "email", partial(_email, partial(compose_embargo, moved=True))),
    OutputKind("editors' proof of the embargoed email", "email", partial(_email, partial(compose_embargo, proof=_PROOF))),
    OutputKind("withdrawn email to journalists", "email", _withdrawn),
    OutputKind("correction email", "email", partial(_follow_up, "correction")),
    OutputKind("withdrawal notice", "email", partial(_follow_up, "withdrawal")),
    OutputKind("Mastodon post", "post", partial(_post, "mastodon")),
    OutputKind("Bluesky post", "post", partial(_post, "bluesky")),
    OutputKind("LinkedIn post", "post", partial(_post, "linkedin")),
    OutputKind("press kit", "kit", _press_kit),
)
