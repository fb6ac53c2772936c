"""The audience: subscribers, the subscription-request flow, the media list, consent evidence and erasure.

One module per concern, each the one home of its rules:

=================  ==========================================================================
``addresses``      normalise an address, count a mailbox, clean a name, the erased-address hash
``subscribers``    the store: subscribers, topics, cadence, suppressions, CSV import and export
``requests``       the subscription-request flow (double opt-in) and the expiry of unconfirmed ones
``media``          the media list: journalists and the opens of their embargoed previews
``consent``        consent events as a chain of keyed hashes, and its verification
``erasure``        the right to erasure, down to the bytes in the database files
=================  ==========================================================================

Signed links live in :mod:`pressroom.tokens`; their names are re-exported here for the callers
that import them from the audience.
"""

from pressroom.audience.addresses import (
    address_hash,
    clean_name,
    mailbox,
    normalise_address,
)
from pressroom.audience.consent import ChainReport, verify_chain
from pressroom.audience.csvfiles import ImportReport
from pressroom.audience.erasure import erase
from pressroom.audience.media import JOURNALIST_COLUMNS, Journalist, MediaList
from pressroom.audience.requests import (
    Requested,
    SubscribeRequest,
    check_request,
    confirm_request,
    expire_pending,
    request_subscription,
    request_subscriptions,
)
from pressroom.audience.subscribers import (
    CADENCES,
    CSV_COLUMNS,
    STATUSES,
    Audience,
    ConsentEvent,
    Subscriber,
    check_consent,
    eligible,
)
from pressroom.errors import AddressError, TokenError
from pressroom.tokens import (
    JOURNALIST_UNSUBSCRIBE,
    journalist_unsubscribe_url,
    preferences_url,
    preview_action,
    preview_url,
    sign_token,
    unsubscribe_url,
    verify_token,
)

__all__ = [
    "CADENCES",
    "CSV_COLUMNS",
    "JOURNALIST_COLUMNS",
    "JOURNALIST_UNSUBSCRIBE",
    "STATUSES",
    "AddressError",
    "Audience",
    "ChainReport",
    "ConsentEvent",
    "ImportReport",
    "Journalist",
    "MediaList",
    "Requested",
    "SubscribeRequest",
    "Subscriber",
    "TokenError",
    "address_hash",
    "check_consent",
    "check_request",
    "clean_name",
    "confirm_request",
    "eligible",
    "erase",
    "expire_pending",
    "journalist_unsubscribe_url",
    "mailbox",
    "normalise_address",
    "preferences_url",
    "preview_action",
    "preview_url",
    "request_subscription",
    "request_subscriptions",
    "sign_token",
    "unsubscribe_url",
    "verify_chain",
    "verify_token",
]
