"""Every Redis key and channel queuecast uses: the one place their names are spelled.

The names are data shared by every replica and kept across restarts: renaming one is a
migration, not a refactoring (tests/unit/test_keys.py pins them).

Hash tags decide where a name lives on a Redis Cluster. A contact's keys and channel share
`{contact}`, so they live in one slot and one Lua script may touch them all; a queue's member
set and channel share `{queue}`; the contact-event log's stream and its idempotence keys share
`{cevents}`. Replica-level keys (replicas, explicit tracks, interest, budgets) are single keys,
each used alone. Lua scripts never spell a name: they get each one as KEYS or ARGV, so what a
script touches is what the cluster routes it by.
"""

from __future__ import annotations

# -- a contact ---------------------------------------------------------------------------------


def contact_channel(contact: str) -> str:
    """Where a contact's events are published."""
    return f"qc:{{{contact}}}:events"


def contact_state_key(contact: str) -> str:
    """The contact's latest event, as published (a string with a TTL)."""
    return f"qc:{{{contact}}}:state"


def contact_seq_key(contact: str) -> str:
    """The contact's seq counter; it outlives the state so that seq never goes back."""
    return f"qc:{{{contact}}}:seq"


def lease_key(contact: str) -> str:
    """Which replica polls the contact (its id, `SET NX PX`)."""
    return f"qc:{{{contact}}}:lease"


def retire_key(contact: str) -> str:
    """Which replica retires a contact whose poller went away (so that only one does)."""
    return f"qc:{{{contact}}}:retiring"


def polled_key(contact: str) -> str:
    """Wall-clock milliseconds of the contact's last poll, for a smooth hand-over."""
    return f"qc:{{{contact}}}:polled"


# -- a queue -----------------------------------------------------------------------------------

# A queue's channel is these around the queue id. The raise-floor script finds the queue in
# the stored state, so it gets the two halves rather than the whole name.
QUEUE_CHANNEL_PREFIX = "qc:queue:{"
QUEUE_CHANNEL_SUFFIX = "}:events"


def queue_channel(queue: str) -> str:
    """Where the events of every contact in a queue are published too."""
    return f"{QUEUE_CHANNEL_PREFIX}{queue}{QUEUE_CHANNEL_SUFFIX}"


def queue_members_key(queue: str) -> str:
    """The contacts waiting in a queue (a set)."""
    return f"qc:queue:{{{queue}}}:contacts"


def queue_figures_key(queue: str) -> str:
    """The queue's latest figures event, as published."""
    return f"qc:queue:{{{queue}}}:figures"


def queue_figures_seq_key(queue: str) -> str:
    """The seq counter of the queue's figures events."""
    return f"qc:queue:{{{queue}}}:figures-seq"


# -- the subscriber connections ----------------------------------------------------------------

# A channel nobody publishes on: it keeps a subscriber connection open even when no contact is
# subscribed, so keep-alive pings can tell a live listener from a deaf one.
CONTROL_CHANNEL = "qc:control"


def shard_control_channel(tag: int) -> str:
    """A cluster connection's control channel: a shard channel in one of its primary's slots,
    chosen by trying tags 0, 1, 2... until every primary has one."""
    return f"qc:control:{{{tag}}}"


# -- replicas (server/connect/coordination.py) -------------------------------------------------

REPLICAS_KEY = "qc:replicas"  # heartbeats: a sorted set scored by Redis' clock
EXPLICIT_KEY = "qc:explicit"  # explicit tracks (HTTP PUT), contact -> wanted


def interest_key(replica: str) -> str:
    """What one replica's sockets watch (a hash that expires unless renewed)."""
    return f"qc:interest:{replica}"


def budget_key(name: str) -> str:
    """A shared token bucket (`metrics` for GetContactMetrics, `describe` for DescribeContact)."""
    return f"qc:budget:{name}"


# -- queue figures and names (server/connect/figures_lead.py, queue_names.py) ----------------

FIGURES_LEADER_KEY = "qc:figures:leader"  # which replica reads the queues' figures
FIGURES_WANTED_KEY = "qc:figures:wanted"  # sorted set of "queue instance", scored by lapse time


def queue_names_key(instance: str) -> str:
    """An instance's queue names: a hash, queue id -> name."""
    return f"qc:queue-names:{instance}"


def queue_listing_key(instance: str) -> str:
    """Which replica lists the instance's queues this period (`SET NX PX`)."""
    return f"qc:queue-names:{instance}:listing"


# -- the contact-event log (server/connect/event_log_redis.py) -------------------------------

EVENT_LOG_KEY = "qc:{cevents}:log"  # the stream


def event_seen_key(event_id: str) -> str:
    """Set once an event id is in the log, so a retried event is appended once."""
    return f"qc:{{cevents}}:seen:{event_id}"


BOOK_NEWS_KEY = "qc:book-news"  # the stream of what each replica learnt by its own calls
