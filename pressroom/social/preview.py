"""Every post of a release as each network would get it, with its counts: nothing is sent, no network asked."""

from __future__ import annotations

from pressroom.releases import Release
from pressroom.settings import Settings
from pressroom.social.compose import NETWORK_LIMITS, Post, compose_post
from pressroom.social.network import channel_name, own_handle

__all__ = ["preview_posts", "preview_social"]


def preview_posts(*, release: Release, settings: Settings) -> list[tuple[str, Post]]:
    """(account channel, post) for every enabled account, composed with each network's default limits.

    Nothing is sent and no network is asked, so a preview works offline.
    """
    previews = []
    for account in settings.social:
        if not account.enabled:
            continue
        forms = ("mastodon", "bluesky", "linkedin") if account.network == "outbox" else (account.network,)
        for form in forms:
            if form in NETWORK_LIMITS and release.channel(form).enabled:
                templates = settings.path("templates")
                post = compose_post(
                    release=release.version(account.language), network=form, limits=NETWORK_LIMITS[form], templates=templates,
                    own=own_handle(account),
                    settings=settings,
                )
                previews.append((channel_name(account), post))
    return previews


def preview_social(*, release: Release, settings: Settings) -> str:
    """Every post of ``release`` as a person would read it, each part with its count against the limit."""
    blocks = []
    for channel, post in preview_posts(release=release, settings=settings):
        limits = post.limits
        unit = "graphemes" if limits.unit == "graphemes" else "characters"
        lines = [f"== {post.network} ({channel}): {len(post.parts)} post{'s' if len(post.parts) > 1 else ''}"]
        for index, part in enumerate(post.parts, start=1):
            measure = f"{part.count}/{limits.chars} {unit}"
            if limits.bytes:
                measure += f", {part.bytes}/{limits.bytes} bytes"
            if limits.url_chars:
                measure += f" (every URL counts as {limits.url_chars})"
            lines += [f"-- part {index}/{len(post.parts)}: {measure}", part.text]
        card = post.card
        image = f"; image {card.image_url} (alt: {card.image_alt})" if card.image_url else ""
        lines.append(f"-- card: {card.title} <{card.url}>{image}")
        lines += [f"-- left out: {note}" for note in post.notes]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else "no social account is enabled"
