"""ContactEventFeed and ContactEventIngest on the memory log: each event applied once, in
order; a failing sink does not stop the feed; a slow one slows reading (bounded queue); what
the ingest takes, ignores, refuses, and when it answers 'unavailable'."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from server.bus import BusUnavailable
from server.connect.contact_events import ConnectContactEvent, EnvelopeError
from server.connect.event_feed import ContactEventFeed
from server.connect.event_ingest import ContactEventIngest
from server.connect.event_log import LogRead, MemoryContactEventLog
from tests.bus.conftest import eventually
from tests.support.contact_events import DISCONNECTED_SAMPLE, INSTANCE, envelope


class Sink:
    def __init__(self, fail_on: set[str] = frozenset()) -> None:
        self.events: list[ConnectContactEvent] = []
        self.fail_on = fail_on

    def apply_contact_event(self, event: ConnectContactEvent) -> None:
        self.events.append(event)
        if event.event_id in self.fail_on:
            raise RuntimeError("the model did not like it")


async def test_feed_applies_each_event_once_in_log_order() -> None:
    log = MemoryContactEventLog()
    ingest = ContactEventIngest(log, INSTANCE)
    sink = Sink()
    async with ContactEventFeed(log, sink.apply_contact_event, block_s=0.05) as feed:
        await ingest.take([envelope(1), envelope(2)])
        await ingest.take([envelope(2), envelope(3)])
        await eventually(lambda: len(sink.events) == 3)
        await asyncio.sleep(0.2)
        assert [e.event_id for e in sink.events] == ["ev-1", "ev-2", "ev-3"]
        status = feed.status()
        assert status["applied"] == 3 and status["failed"] == 0 and status["running"]
        assert status["connected"] and status["lastError"] is None
    assert not feed.running
    await feed.close()  # idempotent


async def test_a_new_feed_replays_what_was_taken_before_it_started() -> None:
    log = MemoryContactEventLog()
    await ContactEventIngest(log, None).take([envelope(1), envelope(2)])
    sink = Sink()
    async with ContactEventFeed(log, sink.apply_contact_event, block_s=0.05):
        await eventually(lambda: len(sink.events) == 2)


async def test_a_failing_sink_is_counted_and_the_feed_goes_on(caplog) -> None:
    log = MemoryContactEventLog()
    sink = Sink(fail_on={"ev-1"})
    async with ContactEventFeed(log, sink.apply_contact_event, block_s=0.05) as feed:
        await ContactEventIngest(log, None).take([envelope(1), envelope(2)])
        await eventually(lambda: len(sink.events) == 2)
        assert feed.failed == 1 and feed.applied == 2 and feed.running
    assert "applying a contact event failed" in caplog.text


async def test_the_queue_bound_holds_the_reader_back() -> None:
    log = MemoryContactEventLog()
    release = asyncio.Event()
    feed = ContactEventFeed(log, Sink().apply_contact_event, queue_size=2, block_s=0.05)

    async def stuck() -> None:  # an applier that takes nothing: the reader must stop at 2
        await release.wait()

    feed._run_sink = stuck  # type: ignore[method-assign]
    await ContactEventIngest(log, None).take([envelope(n) for n in range(20)])
    async with feed:
        await eventually(feed._queue.full)
        await asyncio.sleep(0.1)
        assert feed._queue.qsize() == 2
        assert feed.follower.read == 20  # one batch was read; the reader waits inside it


async def test_a_small_queue_loses_nothing() -> None:
    log = MemoryContactEventLog()
    sink = Sink()
    await ContactEventIngest(log, None).take([envelope(n) for n in range(300)])
    async with ContactEventFeed(log, sink.apply_contact_event, queue_size=3, block_s=0.05):
        await eventually(lambda: len(sink.events) == 300)
    assert [e.event_id for e in sink.events] == [f"ev-{n}" for n in range(300)]


# -- ingest ----------------------------------------------------------------------------------


async def test_ingest_counts_accepted_duplicates_and_ignored() -> None:
    ingest = ContactEventIngest(MemoryContactEventLog(), f"arn:aws:connect:x:1:instance/{INSTANCE}")
    other = "99999999-9999-4999-8999-999999999999"
    foreign = {"source": "aws.ec2", "detail-type": "x", "detail": {}, "id": "e"}
    elsewhere = envelope(3)
    elsewhere["detail"]["instanceArn"] = f"arn:aws:connect:x:1:instance/{other}"
    result = await ingest.take([envelope(1), envelope(1), envelope(2), foreign, elsewhere])
    assert result.to_json() == {"accepted": 2, "duplicates": 1, "ignored": 2}
    again = await ingest.take(
        [envelope(2, DISCONNECTED_SAMPLE)]
    )  # same id: a retry, whatever it says
    assert again.to_json() == {"accepted": 0, "duplicates": 1, "ignored": 0}
    assert ingest.status() == {
        "instance": INSTANCE,
        "accepted": 2,
        "duplicates": 2,
        "ignored": 2,
        "rejectedRequests": 0,
        "unavailableRequests": 0,
    }


async def test_ingest_without_an_instance_takes_every_instance() -> None:
    other = envelope(1)
    other["detail"]["instanceArn"] = (
        "arn:aws:connect:x:1:instance/99999999-9999-4999-8999-999999999999"
    )
    result = await ContactEventIngest(MemoryContactEventLog(), None).take([other])
    assert result.accepted == 1


async def test_one_bad_envelope_refuses_the_whole_request() -> None:
    log = MemoryContactEventLog()
    ingest = ContactEventIngest(log, None)
    bad = envelope(2)
    del bad["detail"]["contactId"]
    with pytest.raises(EnvelopeError, match=r"envelope 1: `detail.contactId` is missing"):
        await ingest.take([envelope(1), bad])
    with pytest.raises(EnvelopeError, match=r"^`detail.contactId` is missing"):
        await ingest.take([bad])
    assert ingest.rejected == 2
    assert (await log.read_after("0", block_s=0.01, count=10)).events == []


class DownLog(MemoryContactEventLog):
    async def append(self, events: Sequence[ConnectContactEvent]) -> int:
        raise BusUnavailable("redis: ConnectionError")


class SlowLog(MemoryContactEventLog):
    async def append(self, events: Sequence[ConnectContactEvent]) -> int:
        await asyncio.sleep(10)
        return 0

    async def read_after(self, cursor: str, *, block_s: float, count: int) -> LogRead:
        raise AssertionError("not read here")


@pytest.mark.parametrize("log_class", [DownLog, SlowLog], ids=["down", "slow"])
async def test_ingest_is_unavailable_when_the_log_is(log_class) -> None:
    ingest = ContactEventIngest(log_class(), None, append_timeout=0.1)
    with pytest.raises(BusUnavailable):
        await ingest.take([envelope(1)])
    assert ingest.unavailable == 1 and ingest.accepted == 0
    # Only ignored envelopes: nothing to append, so no need for the log.
    foreign = {"source": "aws.ec2", "detail-type": "x", "detail": {}}
    assert (await ingest.take([foreign])).ignored == 1
