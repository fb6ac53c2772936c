"""Social posts: compose each release in each network's own form; one client per network.

``compose`` writes the text (length rules, facets, shortening, threads); one module per
network (``mastodon``, ``bluesky``, ``linkedin``, ``outbox``) implements the small
:class:`~pressroom.social.network.SocialNetwork` interface and ``accounts`` opens them by name; ``preview`` shows the posts without
sending. Posting goes through the ledger in :mod:`pressroom.dispatch.social`, whose channel adapter
calls these clients. httpx is used here and nowhere else in Pressroom.
"""

from pressroom.social.accounts import open_networks
from pressroom.social.compose import Card, Facet, Limits, Part, Post, compose_post
from pressroom.social.network import Published, SocialNetwork
from pressroom.social.preview import preview_posts, preview_social

__all__ = [
    "Card",
    "Facet",
    "Limits",
    "Part",
    "Post",
    "Published",
    "SocialNetwork",
    "compose_post",
    "open_networks",
    "preview_posts",
    "preview_social",
]
