"""ReadBatcher: concurrent single-key reads share one backend read, never one already sent."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from server.bus.base import BusUnavailable, Commit
from server.bus.core import Bus
from server.bus.memory import MemoryBackend
from server.bus.read_batch import ReadBatcher
from server.events import ContactEvent, encode_head


class FakeStore:
    """A batch read with a call log, a gate (latency under the test's control) and faults.

    Like an MGET, a read sees the values held (or fails as the store was) when it is sent,
    however long it then takes.
    """

    def __init__(self) -> None:
        self.values: dict[str, object] = {}
        self.calls: list[list[str]] = []
        self.gate: asyncio.Event | None = None
        self.error: BaseException | None = None
        self.finished = 0

    async def read(self, keys: list[str]) -> list[object]:
        self.calls.append(list(keys))
        snapshot = [self.values.get(key) for key in keys]
        error = self.error
        if self.gate is not None:
            await self.gate.wait()
        if error is not None:
            raise error
        self.finished += 1
        return snapshot


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


@pytest.fixture
async def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
async def batcher(store: FakeStore) -> AsyncIterator[ReadBatcher[object]]:
    reads: ReadBatcher[object] = ReadBatcher(store.read)
    yield reads
    await reads.close()


async def test_concurrent_reads_share_one_backend_read(
    store: FakeStore, batcher: ReadBatcher[object]
) -> None:
    store.values = {f"c{i}": object() for i in range(10)}
    keys = [f"c{i}" for i in range(10)] + ["c3", "c3", "missing"]
    results = await asyncio.gather(*(batcher.read(key) for key in keys))
    assert len(store.calls) == 1
    assert store.calls[0] == [f"c{i}" for i in range(10)] + ["missing"]  # each key once
    assert results[:10] == [store.values[f"c{i}"] for i in range(10)]
    assert results[10] is results[11] is results[3]  # one value, shared by its readers
    assert results[12] is None


async def test_a_caller_one_loop_turn_later_still_joins(
    store: FakeStore, batcher: ReadBatcher[object]
) -> None:
    first = asyncio.create_task(batcher.read("a"))
    await asyncio.sleep(0)  # `first` has joined and started the flushing task
    second = asyncio.create_task(batcher.read("b"))
    await asyncio.gather(first, second)
    assert store.calls == [["a", "b"]]


async def test_reads_apart_in_time_are_separate_and_the_task_ends(
    store: FakeStore, batcher: ReadBatcher[object]
) -> None:
    store.values = {"a": 1, "b": 2}
    assert await batcher.read("a") == 1
    assert batcher._task is None and not batcher._pending  # nothing left running
    assert await batcher.read("b") == 2
    assert store.calls == [["a"], ["b"]]


async def test_batches_are_bounded_and_sent_in_arrival_order(store: FakeStore) -> None:
    batcher: ReadBatcher[object] = ReadBatcher(store.read, max_batch=500)
    keys = [f"c{i}" for i in range(1200)]
    await asyncio.gather(*(batcher.read(key) for key in keys))
    assert [len(call) for call in store.calls] == [500, 500, 200]
    assert [key for call in store.calls for key in call] == keys
    with pytest.raises(ValueError, match="max_batch"):
        ReadBatcher(store.read, max_batch=0)
    await batcher.close()


async def test_a_read_in_flight_is_never_joined(
    store: FakeStore, batcher: ReadBatcher[object]
) -> None:
    """A commit between two calls is seen by the second, even while the first is in flight."""
    store.values = {"c": "v1"}
    store.gate = asyncio.Event()
    first = asyncio.create_task(batcher.read("c"))
    await turns()
    assert store.calls == [["c"]]  # sent, still in flight
    store.values["c"] = "v2"  # committed; the second caller subscribed after it
    second = asyncio.create_task(batcher.read("c"))
    third = asyncio.create_task(batcher.read("c"))
    await turns()
    assert len(store.calls) == 1  # the next batch waits for the read in flight
    store.gate.set()
    assert await first == "v1"
    assert await second == "v2"
    assert await third == "v2"
    assert store.calls == [["c"], ["c"]]  # second and third joined each other


async def test_an_error_goes_to_every_waiter_of_its_batch_only(
    store: FakeStore, batcher: ReadBatcher[object]
) -> None:
    store.values = {"a": 1, "b": 2}
    store.gate = asyncio.Event()
    store.error = BusUnavailable("redis: down")
    failing = [asyncio.create_task(batcher.read(key)) for key in ("a", "b", "a")]
    await turns()
    later = asyncio.create_task(batcher.read("b"))  # arrives during the failing read
    await turns()
    store.error = None  # the store is back before the next batch is sent
    store.gate.set()
    for task in failing:
        with pytest.raises(BusUnavailable, match="redis: down"):
            await task
    assert await later == 2
    assert await batcher.read("a") == 1  # the batcher goes on after a failed batch


async def test_a_wrong_number_of_values_is_an_error(store: FakeStore) -> None:
    async def short(keys: list[str]) -> list[object]:
        return []

    batcher: ReadBatcher[object] = ReadBatcher(short)
    with pytest.raises(ValueError, match="0 values for 1 keys"):
        await batcher.read("a")
    await batcher.close()


async def test_a_cancelled_caller_does_not_cancel_the_shared_read(
    store: FakeStore, batcher: ReadBatcher[object]
) -> None:
    store.values = {"c": "v"}
    store.gate = asyncio.Event()
    leaving = asyncio.create_task(batcher.read("c"))
    staying = asyncio.create_task(batcher.read("c"))
    await turns()
    leaving.cancel()
    await asyncio.gather(leaving, return_exceptions=True)
    assert leaving.cancelled()
    store.gate.set()
    assert await staying == "v"
    assert store.finished == 1
    assert batcher._task is None and not batcher._pending


async def test_a_caller_cancelled_before_the_flush_leaves_nothing_behind(
    store: FakeStore, batcher: ReadBatcher[object]
) -> None:
    caller = asyncio.create_task(batcher.read("c"))
    await asyncio.sleep(0)  # joined, not sent yet
    caller.cancel()
    await asyncio.gather(caller, return_exceptions=True)
    await turns()
    assert store.calls == [["c"]]  # read anyway (cheap), then dropped
    assert batcher._task is None and not batcher._pending


async def test_an_error_nobody_waits_for_is_not_logged(
    store: FakeStore, batcher: ReadBatcher[object]
) -> None:
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    store.gate = asyncio.Event()
    store.error = BusUnavailable("redis: down")
    caller = asyncio.create_task(batcher.read("c"))
    await turns()
    caller.cancel()
    await asyncio.gather(caller, return_exceptions=True)
    store.gate.set()
    await turns()
    del caller
    gc.collect()
    await turns()
    assert reported == []


async def test_close_fails_waiters_in_flight_and_pending(
    store: FakeStore, batcher: ReadBatcher[object]
) -> None:
    store.gate = asyncio.Event()
    in_flight = asyncio.create_task(batcher.read("a"))
    await turns()
    pending = asyncio.create_task(batcher.read("b"))  # waits for the read in flight
    await asyncio.sleep(0)
    task = batcher._task
    assert task is not None
    await batcher.close()
    assert task.done()
    for waiter in (in_flight, pending):
        with pytest.raises(BusUnavailable):
            await waiter
    assert store.calls == [["a"]]
    with pytest.raises(BusUnavailable, match="closed"):
        await batcher.read("c")
    await batcher.close()  # idempotent


async def test_a_stray_cancellation_of_the_read_fails_its_batch_only(
    store: FakeStore, batcher: ReadBatcher[object]
) -> None:
    store.gate = asyncio.Event()
    store.error = asyncio.CancelledError()
    store.values = {"b": 2}
    first = asyncio.create_task(batcher.read("a"))
    await turns()
    second = asyncio.create_task(batcher.read("b"))
    await turns()
    store.error = None
    store.gate.set()
    with pytest.raises(BusUnavailable, match="cancelled"):
        await first
    assert await second == 2  # a new task took over


class CountingBackend(MemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[list[str]] = []

    async def read_states(self, contacts: Sequence[str]) -> list[bytes | None]:
        self.reads.append(list(contacts))
        return await super().read_states(contacts)


def _head(contact: str) -> bytes:
    return encode_head(
        "update",
        instance="i",
        contact=contact,
        queue="q",
        position=1,
        ewt=None,
        at="2024-01-01T00:00:00Z",
        stale=False,
        reason=None,
    )


async def test_bus_batches_single_reads_and_passes_many_straight() -> None:
    backend = CountingBackend()
    async with Bus(backend) as bus:
        for contact in ("a", "b"):
            await bus.commit(Commit(contact, "q", _head(contact), ttl=60, ended=False))
        backend._states["bad"] = (b"not json", float("inf"))
        singles = await asyncio.gather(
            *(bus.read_states([contact]) for contact in ("a", "b", "a", "bad", "none"))
        )
        assert backend.reads == [["a", "b", "bad", "none"]]
        [a1], [b], [a2], [bad], [none] = singles
        assert isinstance(a1, ContactEvent) and a1.contact == "a" and a1.seq == 1
        assert a1 is a2  # decoded once
        assert isinstance(b, ContactEvent) and b.contact == "b"
        assert bad is None and none is None
        backend.reads.clear()
        many = await bus.read_states(["b", "a"])
        assert [s.contact for s in many if s is not None] == ["b", "a"]
        assert backend.reads == [["b", "a"]]
        assert await bus.read_states([]) == []
    with pytest.raises(BusUnavailable):
        await bus.read_states(["a"])  # closed with the bus
