"""QueueDirectory with a fake Connect client: listing, DescribeQueue, quotas, failures, sharing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

import pytest

from server.connect.answers import Outcome, QueueInfo, QueuesResult
from server.connect.budget import LocalBudget
from server.connect.queue_directory import QueueDirectory
from server.connect.queue_names import LocalNameStore, QueueNameStore
from tests.support import TIMEOUT_SCALE

INSTANCE = "11111111-1111-4111-8111-111111111111"
SALES, SUPPORT, NEW, GONE = "q-sales", "q-support", "q-new", "q-gone"
WAIT = 5.0 * TIMEOUT_SCALE


class FakeConnect:
    """Answers ListQueues and DescribeQueue from `queues`, or with the outcomes queued up."""

    def __init__(self, queues: Mapping[str, str]) -> None:
        self.queues = dict(queues)
        self.list_failures: list[Outcome] = []
        self.describe_failures: list[Outcome] = []
        self.calls: list[tuple[str, str]] = []
        self.hang = False

    async def list_queues(self, instance: str) -> QueuesResult:
        self.calls.append(("ListQueues", instance))
        if self.hang:
            await asyncio.Event().wait()
        if self.list_failures:
            return QueuesResult(self.list_failures.pop(0), detail="injected")
        return QueuesResult(Outcome.OK, tuple(QueueInfo(q, n) for q, n in self.queues.items()))

    async def describe_queue(self, instance: str, queue: str) -> QueuesResult:
        self.calls.append(("DescribeQueue", queue))
        if self.describe_failures:
            return QueuesResult(self.describe_failures.pop(0), detail="injected")
        if queue not in self.queues:
            return QueuesResult(Outcome.NOT_FOUND, detail="no such queue")
        return QueuesResult(Outcome.OK, (QueueInfo(queue, self.queues[queue]),))

    def count(self, api: str) -> int:
        return sum(1 for name, _ in self.calls if name == api)


class SharedStore(QueueNameStore):
    """What RedisNameStore does, in memory: one claim per period, one hash per instance."""

    def __init__(self) -> None:
        self.claimed_until: dict[str, float] = {}
        self.names: dict[str, dict[str, str]] = {}

    async def claim_listing(self, instance: str, period: float) -> bool:
        now = time.monotonic()
        if self.claimed_until.get(instance, 0.0) > now:
            return False
        self.claimed_until[instance] = now + period
        return True

    async def release_listing(self, instance: str) -> None:
        self.claimed_until.pop(instance, None)

    async def save(self, instance: str, names: Mapping[str, str], *, complete: bool) -> None:
        if complete:
            self.names[instance] = {}
        self.names.setdefault(instance, {}).update(names)

    async def load(self, instance: str, queues: Sequence[str] | None = None) -> dict[str, str]:
        known = self.names.get(instance, {})
        return dict(known) if queues is None else {q: known[q] for q in queues if q in known}


def directory(
    connect: FakeConnect,
    store: QueueNameStore | None = None,
    *,
    rps: float = 1000.0,
    refresh: float = 300.0,
    call_timeout: float = 30.0,
) -> QueueDirectory:
    now = time.monotonic()
    return QueueDirectory(
        connect,
        store or LocalNameStore(),
        instance=INSTANCE,
        list_budget=LocalBudget(rps, 5, now),
        describe_budget=LocalBudget(rps, 5, now),
        refresh=refresh,
        call_timeout=call_timeout,
        retry_base=0.05,
    )


async def eventually(check, timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def test_lists_the_instance_at_start_and_names_its_queues() -> None:
    connect = FakeConnect({SALES: "Sales", SUPPORT: "Support"})
    async with directory(connect) as names:
        await eventually(lambda: names.name(INSTANCE, SALES) is not None)
        assert names.name(INSTANCE, SUPPORT) == "Support"
        assert names.names(INSTANCE) == {SALES: "Sales", SUPPORT: "Support"}
        assert connect.count("ListQueues") == 1
        assert names.status()["calls"] == {"ListQueues ok": 1}


async def test_an_unknown_id_is_described_once_then_cached() -> None:
    connect = FakeConnect({SALES: "Sales"})
    async with directory(connect) as names:
        await eventually(lambda: names.name(INSTANCE, SALES) is not None)
        connect.queues[NEW] = "Created since"
        assert names.name(INSTANCE, NEW) is None  # not known yet: asked for
        await eventually(lambda: names.name(INSTANCE, NEW) == "Created since")
        for _ in range(3):
            names.name(INSTANCE, NEW)
        await asyncio.sleep(0.05)
        assert connect.count("DescribeQueue") == 1


async def test_an_id_connect_does_not_know_is_not_asked_again_until_the_next_listing() -> None:
    connect = FakeConnect({SALES: "Sales"})
    async with directory(connect, refresh=0.3) as names:
        await eventually(lambda: names.name(INSTANCE, SALES) is not None)
        names.name(INSTANCE, GONE)
        await eventually(lambda: connect.count("DescribeQueue") == 1)
        for _ in range(5):
            assert names.name(INSTANCE, GONE) is None
        await asyncio.sleep(0.1)
        assert connect.count("DescribeQueue") == 1
        # After the next listing it may have been created: one more question.
        await eventually(lambda: connect.count("ListQueues") == 2)
        names.name(INSTANCE, GONE)
        await eventually(lambda: connect.count("DescribeQueue") == 2)


@pytest.mark.parametrize(
    "outcome", [Outcome.SERVER_ERROR, Outcome.TIMEOUT, Outcome.ACCESS_DENIED, Outcome.THROTTLED]
)
async def test_a_failed_listing_is_retried_and_never_fatal(outcome: Outcome) -> None:
    connect = FakeConnect({SALES: "Sales"})
    connect.list_failures = [outcome, outcome]
    async with directory(connect) as names:
        await eventually(lambda: names.names(INSTANCE) == {SALES: "Sales"})
        assert connect.count("ListQueues") == 3
        assert names.status()["calls"][f"ListQueues {outcome.value}"] == 2
        assert names.status()["lastError"] is None


async def test_throttling_slows_the_listing_budget() -> None:
    connect = FakeConnect({SALES: "Sales"})
    connect.list_failures = [Outcome.THROTTLED]
    async with directory(connect, rps=4.0) as names:
        await eventually(lambda: names.names(INSTANCE) == {SALES: "Sales"})
        assert names._list_budget.rate(time.monotonic()) < 4.0


async def test_a_failed_describe_is_retried() -> None:
    connect = FakeConnect({SALES: "Sales"})
    async with directory(connect) as names:
        await eventually(lambda: names.name(INSTANCE, SALES) is not None)
        connect.queues[NEW] = "New"
        connect.describe_failures = [Outcome.THROTTLED, Outcome.SERVER_ERROR]
        names.name(INSTANCE, NEW)
        await eventually(lambda: names.name(INSTANCE, NEW) == "New")
        assert connect.count("DescribeQueue") == 3


async def test_calls_stay_within_the_budget() -> None:
    connect = FakeConnect({f"q-{i}": f"Queue {i}" for i in range(10)})
    async with directory(connect, rps=20.0) as names:
        await eventually(lambda: names.name(INSTANCE, "q-0") is not None)
        for i in range(10, 20):
            connect.queues[f"q-{i}"] = f"Queue {i}"
        started = time.monotonic()
        for i in range(10, 20):
            names.name(INSTANCE, f"q-{i}")
        await eventually(lambda: names.name(INSTANCE, "q-19") is not None)
        # A burst of 4 (one held back), then 20/s: the other 6 need at least 0.25 s.
        assert time.monotonic() - started >= 0.25


async def test_a_hanging_call_times_out_and_close_cancels_it() -> None:
    connect = FakeConnect({SALES: "Sales"})
    connect.hang = True
    names = directory(connect, call_timeout=0.1)
    async with names:
        await eventually(lambda: names.status()["calls"].get("ListQueues timeout", 0) >= 1)
        assert names.name(INSTANCE, SALES) is None
        async with asyncio.timeout(WAIT):
            await names.close()
    assert names._task is None


async def test_replicas_sharing_a_store_list_once_and_read_the_names() -> None:
    store = SharedStore()
    first, second = FakeConnect({SALES: "Sales"}), FakeConnect({SALES: "Sales"})
    async with directory(first, store) as one, directory(second, store) as two:
        await eventually(lambda: one.name(INSTANCE, SALES) == two.name(INSTANCE, SALES) == "Sales")
    assert first.count("ListQueues") + second.count("ListQueues") == 1


async def test_a_name_another_replica_learnt_is_not_described_again() -> None:
    store = SharedStore()
    first, second = FakeConnect({SALES: "Sales"}), FakeConnect({SALES: "Sales"})
    async with directory(first, store) as one, directory(second, store) as two:
        await eventually(lambda: one.names(INSTANCE) == two.names(INSTANCE) == {SALES: "Sales"})
        first.queues[NEW] = "Learnt by the first"
        one.name(INSTANCE, NEW)
        await eventually(lambda: one.name(INSTANCE, NEW) is not None)
        two.name(INSTANCE, NEW)
        await eventually(lambda: two.name(INSTANCE, NEW) == "Learnt by the first")
        assert second.count("DescribeQueue") == 0


async def test_another_instance_is_listed_once_asked_about() -> None:
    other = "22222222-2222-4222-8222-222222222222"
    connect = FakeConnect({SALES: "Sales"})
    async with directory(connect) as names:
        assert names.name(other, SALES) is None
        await eventually(lambda: names.name(other, SALES) == "Sales")
        assert ("ListQueues", other) in connect.calls
        assert names.name(None, SALES) is None


async def test_an_unexpected_error_is_logged_and_the_learning_goes_on(caplog) -> None:
    class Broken(FakeConnect):
        async def list_queues(self, instance: str) -> QueuesResult:
            if not self.calls:
                self.calls.append(("ListQueues", instance))
                raise RuntimeError("a bug")
            return await super().list_queues(instance)

    connect = Broken({SALES: "Sales"})
    async with directory(connect) as names:
        await eventually(lambda: names.names(INSTANCE) == {SALES: "Sales"})
    assert "learning queue names failed" in caplog.text
