"""The one room that sends. Every email and post goes through :func:`deliver`, the engine and the ledger.

    decide.py   whether a release goes out on a channel: send, skip (why), or ask an editor (pure)
    deliver.py  deliver(send): plan a (release, channel) once and drain it; Due, drive, share
    engine.py   the send loop and the Channel protocol (claim, window, advance, push, record)
    email.py    email: a release, the digest, subscription and staff emails (adapter and sends)
    embargo.py  the media list: embargoed, moved and withdrawn emails
    after.py    after publication: correction notes and withdrawal notices, replies, deletions
    social.py   social networks: the adapter that calls the social room's clients, and its sends
"""

from typing import TYPE_CHECKING, Any

from pressroom.dispatch.after import (
    AfterPublication,
    after_publication,
    reminders,
    send_follow_ups,
)
from pressroom.dispatch.decide import (
    SEND,
    WAIT,
    Decision,
    FollowUp,
    digest_period,
    digest_releases,
    email_decision,
    social_decision,
    social_follow_ups,
)
from pressroom.dispatch.deliver import (
    Ask,
    Delivered,
    Drain,
    Due,
    Pacing,
    Send,
    Workers,
    deliver,
    drive,
    record_public,
    share,
)
from pressroom.dispatch.email import (
    Digest,
    EmailChannel,
    ReleaseEmail,
    TransactionalSender,
    digest_due,
    digest_email,
    email_due,
    email_staff,
    enqueue_transactional,
    release_email,
    send_digest,
    send_email,
    send_release_emails,
    send_staff,
    transactional_email,
)
from pressroom.dispatch.embargo import journalists_due, run_embargo
from pressroom.dispatch.engine import (
    Channel,
    DispatchResult,
    Pushed,
    Pusher,
    backoff,
    dispatch,
)
from pressroom.ledger import DeliveryReport

if TYPE_CHECKING:
    from pressroom.dispatch.social import SocialReport, SocialResult, follow_up_releases, post_releases

_SOCIAL = ("SocialReport", "SocialResult", "follow_up_releases", "post_releases")


def __getattr__(name: str) -> Any:
    # The social channel loads its room (httpx, the networks' clients: some 10 MB) when first asked
    # for, so a process that only sends email never does.
    if name in _SOCIAL:
        from pressroom.dispatch import social

        return getattr(social, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "AfterPublication",
    "Ask",
    "Channel",
    "Decision",
    "Delivered",
    "DeliveryReport",
    "Digest",
    "DispatchResult",
    "Drain",
    "Due",
    "EmailChannel",
    "FollowUp",
    "Pacing",
    "Pushed",
    "Pusher",
    "ReleaseEmail",
    "SEND",
    "Send",
    "SocialReport",
    "SocialResult",
    "TransactionalSender",
    "WAIT",
    "Workers",
    "after_publication",
    "backoff",
    "deliver",
    "digest_due",
    "digest_email",
    "digest_period",
    "digest_releases",
    "dispatch",
    "drive",
    "email_decision",
    "email_due",
    "enqueue_transactional",
    "follow_up_releases",
    "journalists_due",
    "post_releases",
    "record_public",
    "release_email",
    "reminders",
    "run_embargo",
    "send_digest",
    "send_email",
    "send_follow_ups",
    "send_release_emails",
    "email_staff",
    "send_staff",
    "share",
    "social_decision",
    "social_follow_ups",
    "transactional_email",
]
