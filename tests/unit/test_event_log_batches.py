"""The memory log's reads from a cursor (from either end of the deque, across its bound) and
the follower's gathering of a burst: after a short read it waits `gather_s` before reading
again, so events delivered one request each are read, and applied, together."""

from __future__ import annotations

import pytest

from server.connect.event_log import ContactEventFollower, MemoryContactEventLog
from tests.bus.test_event_log import event


def ids(events: list) -> list[str]:
    return [e.event_id for e in events]


@pytest.mark.parametrize("after", [0, 3, 10, 17, 19, 20, 25])
async def test_a_read_returns_what_follows_the_cursor_from_either_end(after: int) -> None:
    event_log = MemoryContactEventLog()
    await event_log.append([event(n) for n in range(1, 21)])  # sequence numbers 1..20
    read = await event_log.read_after(str(after), block_s=0.01, count=5)
    wanted = [f"ev-{n}" for n in range(after + 1, min(after + 6, 21))]
    assert ids(read.events) == wanted
    assert read.cursor == (str(after + len(wanted)) if wanted else str(after))


async def test_a_read_behind_the_bound_starts_at_the_oldest_entry_kept() -> None:
    event_log = MemoryContactEventLog(max_entries=10)
    await event_log.append([event(n) for n in range(1, 31)])  # 21..30 kept
    read = await event_log.read_after("4", block_s=0.01, count=3)
    assert ids(read.events) == ["ev-21", "ev-22", "ev-23"] and read.cursor == "23"
    rest = await event_log.read_after("23", block_s=0.01, count=100)
    assert ids(rest.events) == [f"ev-{n}" for n in range(24, 31)] and rest.cursor == "30"


async def test_an_empty_log_read_waits_and_returns_nothing() -> None:
    read = await MemoryContactEventLog().read_after("0", block_s=0.01, count=5)
    assert read.events == [] and read.cursor == "0"


class Burst:
    """Stands in for the follower's wait: while it "waits", more of the burst arrives."""

    def __init__(self, event_log: MemoryContactEventLog, arriving: list[list[int]]) -> None:
        self.log, self.arriving, self.waits = event_log, arriving, []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.arriving:
            await self.log.append([event(n) for n in self.arriving.pop(0)])


async def test_after_a_short_read_the_follower_waits_for_the_rest_of_the_burst() -> None:
    event_log = MemoryContactEventLog()
    burst = Burst(event_log, [[2, 3, 4], [5]])
    follower = ContactEventFollower(
        event_log, replay_s=60, block_s=0.01, count=10, gather_s=0.05, gather=burst
    )
    await event_log.append([event(1)])
    batches = follower.batches()
    assert ids(await anext(batches)) == ["ev-1"]
    assert ids(await anext(batches)) == ["ev-2", "ev-3", "ev-4"]  # one batch, not three
    assert ids(await anext(batches)) == ["ev-5"]
    assert burst.waits == [0.05, 0.05]
    await batches.aclose()


async def test_a_full_read_is_followed_at_once_and_an_idle_log_is_not_waited_on() -> None:
    event_log = MemoryContactEventLog()
    burst = Burst(event_log, [])
    follower = ContactEventFollower(
        event_log, replay_s=60, block_s=0.01, count=3, gather_s=0.05, gather=burst
    )
    await event_log.append([event(n) for n in range(1, 7)])
    batches = follower.batches()
    assert ids(await anext(batches)) == ["ev-1", "ev-2", "ev-3"]
    assert ids(await anext(batches)) == ["ev-4", "ev-5", "ev-6"]
    assert burst.waits == []  # both reads were full: the backlog is read without waiting
    await event_log.append([event(7)])
    assert ids(await anext(batches)) == ["ev-7"]
    assert burst.waits == []  # the empty reads before it waited in the log, not here
    await batches.aclose()


async def test_gathering_can_be_turned_off() -> None:
    event_log = MemoryContactEventLog()
    burst = Burst(event_log, [[9]])
    follower = ContactEventFollower(
        event_log, replay_s=60, block_s=0.01, count=10, gather_s=0, gather=burst
    )
    await event_log.append([event(1)])
    batches = follower.batches()
    assert ids(await anext(batches)) == ["ev-1"]
    await event_log.append([event(2)])
    assert ids(await anext(batches)) == ["ev-2"]
    assert burst.waits == []
    await batches.aclose()
