"""Social posts: compose each release in each network's own form, then post it exactly once.

``compose`` writes the text (length rules, facets, shortening, threads); one module per
network (``mastodon``, ``bluesky``, ``linkedin``, ``outbox``) implements the small
:class:`~pressroom.social.network.SocialNetwork` interface; ``publish`` drives them through
the ledger. httpx is used here and nowhere else in Pressroom.
"""

from pressroom.social.compose import Card, Facet, Limits, Part, Post, compose_post
from pressroom.social.network import Published, SocialNetwork, open_networks
from pressroom.social.publish import SocialReport, SocialResult, follow_up_releases, post_releases, preview_posts, preview_social

__all__ = [
    "Card",
    "Facet",
    "Limits",
    "Part",
    "Post",
    "Published",
    "SocialNetwork",
    "SocialReport",
    "SocialResult",
    "compose_post",
    "follow_up_releases",
    "open_networks",
    "post_releases",
    "preview_posts",
    "preview_social",
]
