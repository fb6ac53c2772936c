"""The one room that sends. Every email and post goes through :func:`dispatch` and the ledger.

    engine.py   the send loop and the Channel protocol (claim, window, advance, push, record)
    email.py    email channels: release, digest, subscription (transactional) and staff emails
    decide.py   whether a release goes out on a channel: send, skip (why), or wait for an editor

Social networks are channels too (:class:`pressroom.social.publish.SocialChannel`), kept in the
social room because httpx lives there.
"""

from pressroom.dispatch.decide import (
    Decision,
    FollowUp,
    digest_period,
    digest_releases,
    email_decision,
    social_decision,
    social_follow_ups,
)
from pressroom.dispatch.email import (
    EmailChannel,
    TransactionalSender,
    digest_email,
    enqueue_transactional,
    release_email,
    send_email,
    send_staff,
    transactional_email,
)
from pressroom.dispatch.engine import Channel, DispatchResult, Pushed, Pusher, backoff, dispatch

__all__ = [
    "Channel",
    "Decision",
    "DispatchResult",
    "EmailChannel",
    "FollowUp",
    "Pushed",
    "Pusher",
    "TransactionalSender",
    "backoff",
    "digest_email",
    "digest_period",
    "digest_releases",
    "dispatch",
    "email_decision",
    "enqueue_transactional",
    "release_email",
    "send_email",
    "send_staff",
    "social_decision",
    "social_follow_ups",
    "transactional_email",
]
