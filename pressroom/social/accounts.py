"""The enabled ``[[social]]`` accounts, each opened as its network's client, chosen by name.

The one place that knows every client, so the clients and :mod:`pressroom.social.network`, which they
share, never import each other in a circle.
"""

from __future__ import annotations

import httpx

from pressroom.errors import ConfigError
from pressroom.settings import Settings
from pressroom.social.bluesky import Bluesky
from pressroom.social.linkedin import LinkedIn
from pressroom.social.mastodon import Mastodon
from pressroom.social.network import SocialNetwork, channel_name
from pressroom.social.outbox import Outbox

__all__ = ["open_networks"]


def open_networks(
    *, settings: Settings, transport: httpx.BaseTransport | None = None
) -> list[SocialNetwork]:
    """One network per enabled ``[[social]]`` account; an unknown network name fails here, first."""
    kinds: dict[str, type] = {"outbox": Outbox, "mastodon": Mastodon, "bluesky": Bluesky, "linkedin": LinkedIn}
    accounts = [account for account in settings.social if account.enabled]
    unknown = sorted({account.network for account in accounts} - kinds.keys())
    if unknown:
        raise ConfigError(
            f"social: unknown network {', '.join(map(repr, unknown))}",
            hint=f"use one of {', '.join(sorted(kinds))} in [[social]] network = ...",
        )
    seen: set[str] = set()
    for account in accounts:
        if channel_name(account) in seen:
            raise ConfigError(
                f"social: two accounts are both {channel_name(account)}",
                hint="give each [[social]] account of a network its own account = \"name\"",
            )
        seen.add(channel_name(account))
    return [kinds[account.network](account=account, settings=settings, transport=transport) for account in accounts]
