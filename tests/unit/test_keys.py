"""Redis key and channel names: pinned byte for byte (renaming one is a migration), and never
spelled inside a Lua script."""

from __future__ import annotations

import pytest

from server.bus import keys, redis_scripts
from server.connect import coordination, event_log_redis, figures_lead


def test_names_are_the_stored_ones() -> None:
    assert keys.contact_channel("c-1") == "qc:{c-1}:events"
    assert keys.contact_state_key("c-1") == "qc:{c-1}:state"
    assert keys.contact_seq_key("c-1") == "qc:{c-1}:seq"
    assert keys.lease_key("c-1") == "qc:{c-1}:lease"
    assert keys.polled_key("c-1") == "qc:{c-1}:polled"
    assert keys.queue_channel("sales") == "qc:queue:{sales}:events"
    assert keys.queue_members_key("sales") == "qc:queue:{sales}:contacts"
    assert keys.queue_figures_key("sales") == "qc:queue:{sales}:figures"
    assert keys.queue_figures_seq_key("sales") == "qc:queue:{sales}:figures-seq"
    assert keys.CONTROL_CHANNEL == "qc:control"
    assert keys.shard_control_channel(7) == "qc:control:{7}"
    assert keys.REPLICAS_KEY == "qc:replicas"
    assert keys.EXPLICIT_KEY == "qc:explicit"
    assert keys.interest_key("r1") == "qc:interest:r1"
    assert keys.budget_key("metrics") == "qc:budget:metrics"
    assert keys.budget_key("describe") == "qc:budget:describe"
    assert keys.FIGURES_LEADER_KEY == "qc:figures:leader"
    assert keys.FIGURES_WANTED_KEY == "qc:figures:wanted"
    assert keys.queue_names_key("i-1") == "qc:queue-names:i-1"
    assert keys.queue_listing_key("i-1") == "qc:queue-names:i-1:listing"
    assert keys.EVENT_LOG_KEY == "qc:{cevents}:log"
    assert keys.event_seen_key("e-1") == "qc:{cevents}:seen:e-1"
    assert keys.BOOK_NEWS_KEY == "qc:book-news"


@pytest.mark.parametrize("queue", ["sales", "", "a}b", "队列"])
def test_queue_channel_is_its_two_halves_around_the_queue(queue) -> None:
    # What the raise-floor script rebuilds from the stored state's queue.
    assert keys.queue_channel(queue) == (
        keys.QUEUE_CHANNEL_PREFIX + queue + keys.QUEUE_CHANNEL_SUFFIX
    )


def _lua_scripts() -> dict[str, str]:
    modules = (redis_scripts, coordination, event_log_redis, figures_lead)
    return {
        f"{module.__name__}.{name}": value
        for module in modules
        for name, value in vars(module).items()
        if isinstance(value, str) and "redis.call(" in value
    }


def test_lua_scripts_get_every_name_as_an_argument() -> None:
    scripts = _lua_scripts()
    assert len(scripts) >= 10  # the bus, the coordinator, the event log, the figures lead
    for where, script in scripts.items():
        assert "qc:" not in script, where
