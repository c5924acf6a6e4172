"""The Redis bus through its public path: redis-py reads each subscriber reply itself
(`ConnectionReplies`) instead of the bulk hiredis reader, as when redis-py keeps no `_reader`
stream (server/_internals.py). The same contract and outage tests, on a single node and a
cluster, must hold."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server._internals import FORCE_PUBLIC_PATHS, fast_paths
from server.bus.redis import RedisBackend
from server.bus.subscriber import ConnectionReplies, PushReader
from tests.bus import test_contract as contract
from tests.bus import test_redis_outage as outage


@pytest.fixture(autouse=True)
def public_paths(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(FORCE_PUBLIC_PATHS, "1")
    fast_paths.cache_clear()
    yield
    fast_paths.cache_clear()


@pytest.fixture(params=["redis", "redis-cluster"])
def bus_harness(request):
    """Only the Redis harnesses: the in-process bus reads no connection."""
    return request.getfixturevalue(
        "redis_harness" if request.param == "redis" else "cluster_harness"
    )


async def test_the_subscriber_connection_is_read_by_redis_py(bus_harness) -> None:
    async with bus_harness.bus() as bus:
        backend = bus.backend
        assert isinstance(backend, RedisBackend)
        readers = [listener.reader for listener in backend._listeners.values()]
        assert readers and all(isinstance(r, ConnectionReplies) for r in readers)
        assert not any(isinstance(r, PushReader) for r in readers)


test_subscribe_then_commit_delivers_the_committed_bytes = (
    contract.test_subscribe_then_commit_delivers_the_committed_bytes
)
test_two_listeners_share_one_backend_subscription = (
    contract.test_two_listeners_share_one_backend_subscription
)
test_queue_channel_gets_the_same_bytes_and_members_follow_ended = (
    contract.test_queue_channel_gets_the_same_bytes_and_members_follow_ended
)
test_malformed_message_is_dropped_counted_and_reading_goes_on = (
    contract.test_malformed_message_is_dropped_counted_and_reading_goes_on
)
test_message_committed_after_subscribe_is_never_lost_under_churn = (
    contract.test_message_committed_after_subscribe_is_never_lost_under_churn
)
test_kill_and_restart_reconnects_and_resubscribes = (
    outage.test_kill_and_restart_reconnects_and_resubscribes
)
test_killed_pubsub_connection_reconnects = outage.test_killed_pubsub_connection_reconnects
test_deaf_listener_is_detected_and_reconnects = outage.test_deaf_listener_is_detected_and_reconnects
