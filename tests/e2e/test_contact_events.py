"""Contact events end to end, all real processes: the emulator posting to `queuecast serve` as an
EventBridge API destination would, on a real redis-server.

Taken once (duplicates counted), refused without or with a wrong key (401), malformed (400),
503 with Retry-After while Redis is down and the same event taken once it is back, and the
emulator's own retries carrying its events through the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import httpx
import pytest

from tests.support import TIMEOUT_SCALE
from tests.support.contact_events import queued_for
from tests.support.emulator import EmulatorHandle, start_emulator_process
from tests.support.redis import free_port
from tests.support.service import ServiceHandle, start_service_process

pytestmark = pytest.mark.e2e

EVENTS_KEY = "e2e-events-key-0123456789abcdef"
QUIET_FLAGS = ("--arrivals", "0", "--agents", "0", "--mean-patience", "0", "--no-quota")
WAIT = 15.0 * TIMEOUT_SCALE


async def until(check: Callable[[], Awaitable[Any]], timeout: float = WAIT) -> Any:
    """Poll `check` until it returns something truthy; return that."""
    async with asyncio.timeout(timeout):
        while not (result := await check()):
            await asyncio.sleep(0.1)
    return result


async def contact_events(service: ServiceHandle) -> dict[str, Any]:
    return (await service.status())["contactEvents"]  # type: ignore[no-any-return]


async def delivery(emulator: EmulatorHandle) -> dict[str, Any]:
    return (await emulator.sim_stats())["contactEvents"]  # type: ignore[no-any-return]


async def once(
    read: Callable[[], Awaitable[dict[str, Any]]],
    condition: Callable[[dict[str, Any]], bool],
    timeout: float = WAIT,
) -> dict[str, Any]:
    """What `read` returns once `condition` holds for it (polled)."""

    async def check() -> dict[str, Any] | None:
        value = await read()
        return value if condition(value) else None

    return await until(check, timeout)  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def emulator_posting_to_service(
    redis_url: str | None, *emulator_flags: str, service_flags: Sequence[str] = ()
) -> AsyncIterator[tuple[EmulatorHandle, ServiceHandle]]:
    """The emulator sends its events to the service's /v1/events; each needs the other's
    address, so the service's port is chosen first (events sent before it listens are
    retried, as EventBridge would)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/events"
    async with (
        start_emulator_process(
            *QUIET_FLAGS, "--events-url", url, "--events-key", EVENTS_KEY, *emulator_flags
        ) as emulator,
        start_service_process(
            emulator,
            redis_url,
            "--port",
            str(port),
            *service_flags,
            env={"QUEUECAST_EVENTS_KEY": EVENTS_KEY},
        ) as service,
    ):
        yield emulator, service


def queued_envelope(emulator: EmulatorHandle) -> dict[str, Any]:
    """A QUEUED event of the emulator's instance for a contact it does not know."""
    return queued_for(emulator.region, emulator.instance_id)


async def test_the_emulators_events_are_taken_once_and_applied(redis_server) -> None:
    async with emulator_posting_to_service(redis_server.url) as (emulator, service):
        await emulator.put_config(eventDelivery={"duplication": 1.0})
        contact = await emulator.create_contact("sales")
        # INITIATED and QUEUED, each delivered twice: two taken, two duplicates.
        status = await once(lambda: contact_events(service), lambda s: s["duplicates"] >= 2)
        assert status["accepted"] == 2 and status["ignored"] == 0
        await emulator.connect(contact)
        status = await once(
            lambda: contact_events(service), lambda s: s["duplicates"] >= 3 and s["applied"] >= 3
        )
        assert status["accepted"] == 3 and status["applied"] == 3 and status["duplicates"] == 3
        stats = await once(lambda: delivery(emulator), lambda s: s["sent"] >= 6)
        assert stats["duplicated"] == 3 and stats["sent"] == 6 and stats["rejected"] == 0
        applied = (await service.status())["events"]  # what the queue model made of them
        assert applied["QUEUED"] == 1 and applied["CONNECTED_TO_AGENT"] == 1
        metrics = (await service.http.get("/metrics")).text
        assert 'queuecast_contact_events_total{outcome="accepted"} 3.0' in metrics
        assert 'queuecast_contact_events_total{outcome="duplicate"} 3.0' in metrics


async def test_refused_without_the_key_with_a_wrong_one_and_when_malformed(redis_server) -> None:
    async with emulator_posting_to_service(redis_server.url) as (emulator, service):
        envelope = queued_envelope(emulator)
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as http:
            for headers in ({}, {"X-Queuecast-Events-Key": "not-the-key-0123456789"}):
                refused = await http.post("/v1/events", json=envelope, headers=headers)
                assert refused.status_code == 401, headers
                assert refused.json()["code"] == "unauthorized"
            key = {"X-Queuecast-Events-Key": EVENTS_KEY}
            malformed = await http.post("/v1/events", content=b'{"id": ', headers=key)
            assert malformed.status_code == 400 and malformed.json()["code"] == "bad_json"
            not_an_event = await http.post("/v1/events", json={"id": "x"}, headers=key)
            assert not_an_event.status_code == 400
            assert not_an_event.json()["code"] == "bad_event"
            taken = await http.post("/v1/events", json=envelope, headers=key)
            assert taken.json() == {"accepted": 1, "duplicates": 0, "ignored": 0}
        status = await contact_events(service)
        assert status["accepted"] == 1 and status["rejectedRequests"] == 1
        metrics = (await service.http.get("/metrics")).text
        assert 'queuecast_contact_events_total{outcome="unauthorized"} 2.0' in metrics
        assert 'queuecast_contact_events_total{outcome="malformed"} 2.0' in metrics


async def test_503_while_redis_is_down_then_the_same_event_is_taken(redis_server) -> None:
    async with emulator_posting_to_service(redis_server.url) as (emulator, service):
        envelope = queued_envelope(emulator)
        key = {"X-Queuecast-Events-Key": EVENTS_KEY}
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as http:
            await redis_server.kill()
            down = await http.post("/v1/events", json=envelope, headers=key)
            assert down.status_code == 503
            assert down.json()["code"] == "unavailable"
            assert int(down.headers["retry-after"]) > 0
            # Meanwhile the emulator's own events are refused too, and retried.
            await emulator.create_contact("sales")
            await once(lambda: delivery(emulator), lambda s: s["retried"] >= 2)

            await redis_server.start()  # empty: no persistence

            async def retried() -> dict[str, Any] | None:
                response = await http.post("/v1/events", json=envelope, headers=key)
                return response.json() if response.status_code == 200 else None

            assert await until(retried) == {"accepted": 1, "duplicates": 0, "ignored": 0}
            again = await http.post("/v1/events", json=envelope, headers=key)
            assert again.json() == {"accepted": 0, "duplicates": 1, "ignored": 0}
        # The emulator's INITIATED and QUEUED got through on a retry; with ours, three applied.
        status = await once(lambda: contact_events(service), lambda s: s["applied"] >= 3)
        assert status["accepted"] == 3 and status["unavailableRequests"] >= 3
        stats = await once(lambda: delivery(emulator), lambda s: s["sent"] >= 2)
        assert stats["sent"] == 2 and stats["failed"] == 0
        assert (await service.status())["events"]["QUEUED"] == 2


async def test_a_backlog_beyond_a_thousand_events_arrives_whole_and_is_applied() -> None:
    """A busy center's backlog as one burst: 600 contacts, 1,200 events (INITIATED and QUEUED),
    all pending at once (each waits 8 s) and then sent in parallel, as an API destination does.
    The emulator used to hold 1,000 copies and drop the oldest beyond; now every event is sent,
    taken once and applied (the in-process log: its reads cost what they return)."""
    contacts = 600
    async with emulator_posting_to_service(None, "--events-delay", "8") as (emulator, service):
        for _ in range(contacts // 50):
            await asyncio.gather(*(emulator.create_contact("sales") for _ in range(50)))
        status = await once(
            lambda: contact_events(service), lambda s: s["applied"] >= 2 * contacts, 4 * WAIT
        )
        assert status["accepted"] == 2 * contacts and status["duplicates"] == 0
        assert status["failed"] == 0 and status["unavailableRequests"] == 0
        stats = await delivery(emulator)
        assert stats["dropped"] == 0 and stats["failed"] == 0 and stats["rejected"] == 0
        assert stats["sent"] == 2 * contacts
        applied = (await service.status())["events"]
        assert applied["QUEUED"] == contacts
