"""The queue's errors, each one a ProtocolError so the HTTP layer maps it to its status and code unchanged.

BadRequest (400)
└── QueueInputError      an enqueue or an operation whose arguments break a documented limit
NotFound (404)
└── UnknownGroup         an operation on a consumer group that was never created
Conflict (409)
├── GroupExists          creating a group that already exists
└── StaleLease           ack/nack/extend/term with a fencing token that no longer holds the message
"""

from __future__ import annotations

from plugin_streams.shared.errors import BadRequest, Conflict, Gone, NotFound


class QueueInputError(BadRequest):
    code = "queue_bad_input"


class UnknownGroup(NotFound):
    code = "queue_group_not_found"


class GroupExists(Conflict):
    code = "queue_group_exists"


class StaleLease(Conflict):
    """The fencing refusal: the token was acked, nacked, expired, or the group was reset since it was issued.

    The code is the Durable Streams subscription spec's (§7.3) for a stale claim, so one client rule covers both.
    """

    code = "FENCED"


class ReplayTrimmed(Gone):
    code = "queue_replay_trimmed"
