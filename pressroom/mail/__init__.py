"""Email: compose once per release or digest (MJML -> HTML + text), personalise per recipient.

    composed = compose_release(release=release, settings=settings)
    data = composed.message(Recipient(address=..., unsubscribe_url=...))   # RFC 5322 bytes, CRLF

MJML, Jinja2 and the ``email`` package stay inside this package; callers see bytes.
"""

from pressroom.mail.compose import (
    compose_digest, compose_embargo, compose_follow_up, compose_release, compose_transactional, compose_withdrawn, digest_key,
    embargo_until,
)
from pressroom.mail.message import Composed, Recipient

__all__ = [
    "Composed", "Recipient", "compose_digest", "compose_embargo", "compose_follow_up", "compose_release",
    "compose_transactional", "compose_withdrawn", "digest_key", "embargo_until",
]
