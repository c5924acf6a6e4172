"""QueueFiguresPoller with a fake Connect client on the in-process bus: batches, names, the
quota, leadership and every way GetCurrentMetricData can fail."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import pytest

from server.bus import Bus, Delivery, MemoryBackend, queue_channel
from server.connect.answers import CurrentMetricsResult, Outcome, QueueFigures
from server.connect.budget import LocalBudget
from server.connect.contact_state import ContactState
from server.connect.figures_lead import FiguresLead, LocalFiguresLead
from server.connect.queue_book import QueueBook
from server.connect.queue_figures import QueueFiguresPoller, queues_wanted
from server.events import QueueFiguresEvent
from tests.support import TIMEOUT_SCALE

INSTANCE = "11111111-1111-4111-8111-111111111111"
SALES, SUPPORT = "q-sales", "q-support"
WAIT = 5.0 * TIMEOUT_SCALE


class FakeConnect:
    """GetCurrentMetricData from `figures`, or the outcomes queued in `failures`."""

    def __init__(self) -> None:
        self.figures: dict[str, QueueFigures] = {}
        self.failures: list[Outcome] = []
        self.fail_always: Outcome | None = None
        self.calls: list[list[str]] = []
        self.times: list[float] = []

    async def get_current_metric_data(
        self, instance: str, queue_ids: list[str]
    ) -> CurrentMetricsResult:
        assert instance == INSTANCE
        assert len(queue_ids) <= 100
        self.calls.append(list(queue_ids))
        self.times.append(time.monotonic())
        outcome = self.failures.pop(0) if self.failures else self.fail_always
        if outcome is not None:
            return CurrentMetricsResult(outcome, detail="injected")
        return CurrentMetricsResult(
            Outcome.OK, {q: self.figures.get(q, QueueFigures()) for q in queue_ids}
        )


class Heard:
    """A bus listener on some queues' channels."""

    def __init__(self) -> None:
        self.events: list[QueueFiguresEvent] = []

    def deliver(self, delivery: Delivery) -> None:
        assert isinstance(delivery.event, QueueFiguresEvent)
        self.events.append(delivery.event)

    def of(self, queue: str) -> list[QueueFiguresEvent]:
        return [e for e in self.events if e.queue == queue]


async def eventually(check, timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


@pytest.fixture
async def bus():
    async with Bus(MemoryBackend()) as bus:
        yield bus


def poller(
    connect: FakeConnect,
    bus: Bus,
    wanted: Mapping[str, str] | dict[str, str],
    *,
    lead: FiguresLead | None = None,
    rps: float = 1000.0,
    burst: int = 8,
    interval: float = 0.2,
    stale_after: float = 0.5,
) -> QueueFiguresPoller:
    return QueueFiguresPoller(
        connect,
        bus,
        lead or LocalFiguresLead(),
        LocalBudget(rps, burst, time.monotonic()),
        wanted=lambda: wanted,
        names=lambda instance, queue: {SALES: "Sales"}.get(queue),
        interval=interval,
        stale_after=stale_after,
        wake_every=0.02,
    )


async def listen(bus: Bus, *queues: str) -> Heard:
    heard = Heard()
    for queue in queues:
        await bus.subscribe(queue_channel(queue), heard)
    return heard


async def test_publishes_each_wanted_queue_with_its_name_and_figures(bus) -> None:
    connect = FakeConnect()
    connect.figures[SALES] = QueueFigures(
        contacts_in_queue=4, oldest_contact_age_s=95.6, agents_available=2
    )
    heard = await listen(bus, SALES, SUPPORT)
    async with poller(connect, bus, {SALES: INSTANCE, SUPPORT: INSTANCE}):
        await eventually(lambda: heard.of(SALES) and heard.of(SUPPORT))
    sales = heard.of(SALES)[0]
    assert (sales.name, sales.waiting, sales.oldest, sales.agents_available) == ("Sales", 4, 96, 2)
    assert (sales.instance, sales.stale) == (INSTANCE, False)
    # A queue Connect has no data for has nothing waiting; its name is not known yet.
    support = heard.of(SUPPORT)[0]
    assert (support.name, support.waiting, support.oldest) == (None, 0, 0)
    # One call for both; the figures are stored for late readers.
    assert connect.calls[0] == [SALES, SUPPORT]
    [stored] = await bus.read_queue_figures([SALES])
    assert stored is not None and stored.waiting == 4


async def test_reads_every_interval_and_seq_keeps_rising(bus) -> None:
    connect = FakeConnect()
    heard = await listen(bus, SALES)
    async with poller(connect, bus, {SALES: INSTANCE}, interval=0.1):
        await eventually(lambda: len(heard.of(SALES)) >= 4)
    seqs = [e.seq for e in heard.of(SALES)]
    assert seqs == sorted(set(seqs))
    assert seqs[0] >= int(time.time() * 1000) - 60_000  # at least the time in ms
    gaps = [b - a for a, b in zip(connect.times, connect.times[1:], strict=False)]
    assert min(gaps) >= 0.08


async def test_up_to_100_queues_per_call(bus) -> None:
    connect = FakeConnect()
    wanted = {f"q-{i:03d}": INSTANCE for i in range(250)}
    async with poller(connect, bus, wanted, interval=10.0):
        await eventually(lambda: len(connect.calls) >= 3)
        await asyncio.sleep(0.1)
    assert [len(c) for c in connect.calls] == [100, 100, 50]
    assert sorted(q for call in connect.calls for q in call) == sorted(wanted)


async def test_a_queue_wanted_later_is_read_at_once_then_joins_the_round(bus) -> None:
    connect = FakeConnect()
    wanted = {SALES: INSTANCE}
    heard = await listen(bus, SUPPORT)
    async with poller(connect, bus, wanted, interval=10.0):
        await eventually(lambda: len(connect.calls) == 1)
        wanted[SUPPORT] = INSTANCE
        await eventually(lambda: heard.of(SUPPORT))
    assert connect.calls == [[SALES], [SUPPORT]]


async def test_queues_nobody_wants_any_more_are_not_read(bus) -> None:
    connect = FakeConnect()
    wanted = {SALES: INSTANCE, SUPPORT: INSTANCE}
    async with poller(connect, bus, wanted, interval=0.1) as figures:
        await eventually(lambda: len(connect.calls) == 1)
        del wanted[SUPPORT]
        await eventually(lambda: len(connect.calls) >= 3)
        assert set(figures.latest) == {SALES}
    assert connect.calls[-1] == [SALES]


async def test_calls_stay_within_the_quota(bus) -> None:
    connect = FakeConnect()
    wanted = {f"q-{i:03d}": INSTANCE for i in range(1000)}  # 10 calls a round
    async with poller(connect, bus, wanted, rps=20.0, burst=4, interval=0.05):
        await eventually(lambda: len(connect.calls) >= 13)
    # A burst of 3 (one held back), then 20/s: 10 more take at least 0.45 s.
    assert connect.times[12] - connect.times[0] >= 0.45


async def test_throttled_slows_down_goes_stale_then_recovers(bus) -> None:
    connect = FakeConnect()
    heard = await listen(bus, SALES)
    figures = poller(connect, bus, {SALES: INSTANCE}, rps=10.0, interval=0.1, stale_after=0.3)
    async with figures:
        await eventually(lambda: heard.of(SALES))
        connect.fail_always = Outcome.THROTTLED
        await eventually(lambda: any(e.stale for e in heard.of(SALES)))
        assert figures.throttles >= 1
        assert figures.budget.rate(time.monotonic()) < 10.0
        stale = [e for e in heard.of(SALES) if e.stale]
        await asyncio.sleep(0.3)
        assert [e for e in heard.of(SALES) if e.stale] == stale  # marked stale once
        assert stale[0].waiting == heard.of(SALES)[0].waiting  # the last known figures
        connect.fail_always = None
        await eventually(lambda: not heard.of(SALES)[-1].stale)
    assert heard.of(SALES)[-1].seq > stale[0].seq


@pytest.mark.parametrize(
    "outcome", [Outcome.SERVER_ERROR, Outcome.TIMEOUT, Outcome.CONNECTION_ERROR]
)
async def test_errors_back_off_and_are_retried(bus, outcome) -> None:
    connect = FakeConnect()
    connect.failures = [outcome, outcome]
    heard = await listen(bus, SALES)
    figures = poller(connect, bus, {SALES: INSTANCE}, interval=0.05)
    async with figures:
        await eventually(lambda: heard.of(SALES), timeout=10 * TIMEOUT_SCALE)
        assert figures.status()["calls"][outcome.value] == 2
        assert figures.status()["lastError"] is None
    # Each failed round waits longer than the interval before the next.
    assert connect.times[1] - connect.times[0] >= 0.05


async def test_access_denied_is_reported_and_retried_later(bus) -> None:
    connect = FakeConnect()
    connect.failures = [Outcome.ACCESS_DENIED, Outcome.ACCESS_DENIED]
    heard = await listen(bus, SALES)
    figures = poller(connect, bus, {SALES: INSTANCE}, interval=0.05)
    async with figures:
        await eventually(lambda: figures.access_denied is not None)
        assert not heard.of(SALES)  # absent, not made up
        await eventually(lambda: heard.of(SALES))
        assert figures.access_denied is None
    assert connect.times[1] - connect.times[0] >= 0.05


async def test_only_the_leader_reads(bus) -> None:
    class Follower(LocalFiguresLead):
        async def lead(self) -> bool:
            return False

    connect = FakeConnect()
    async with poller(connect, bus, {SALES: INSTANCE}, lead=Follower()) as figures:
        await asyncio.sleep(0.2)
        assert not figures.leading
    assert connect.calls == []


async def test_close_cancels_a_call_in_flight(bus) -> None:
    class Hanging(FakeConnect):
        async def get_current_metric_data(self, instance, queue_ids):
            self.calls.append(queue_ids)
            await asyncio.Event().wait()
            raise AssertionError("never answered")

    connect = Hanging()
    figures = poller(connect, bus, {SALES: INSTANCE})
    async with figures:
        await eventually(lambda: connect.calls)
        async with asyncio.timeout(WAIT):
            await figures.close()
    assert not figures.running


def test_wanted_queues_come_from_the_book_the_contacts_and_the_sockets() -> None:
    book = QueueBook()
    book.queued("c-1", "i-book", "q-book", at=1.0)
    tracked = ContactState(instance="i-poll", contact="c-2", queue="q-polled")
    unplaced = ContactState(instance="i-poll", contact="c-3", queue=None)
    wanted = queues_wanted(book, [tracked, unplaced], ["q-watched", "q-book"], "i-default")
    assert wanted == {"q-book": "i-book", "q-polled": "i-poll", "q-watched": "i-default"}
    # Without a default instance a watched queue cannot be asked about.
    assert "q-watched" not in queues_wanted(book, [], ["q-watched"], None)


async def test_an_unexpected_error_is_logged_and_the_reading_goes_on(bus, caplog) -> None:
    connect = FakeConnect()
    calls = 0

    def wanted() -> dict[str, str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        return {SALES: INSTANCE}

    heard = await listen(bus, SALES)
    figures = QueueFiguresPoller(
        connect,
        bus,
        LocalFiguresLead(),
        LocalBudget(1000.0, 8, time.monotonic()),
        wanted=wanted,
        interval=0.05,
        wake_every=0.02,
    )
    async with figures:
        await eventually(lambda: heard.of(SALES))
    assert "queue figures round failed" in caplog.text
