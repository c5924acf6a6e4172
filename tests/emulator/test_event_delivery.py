"""The emulator delivers contact events as an EventBridge API destination does: one event per
POST with its User-Agent and API key, delays, loss, duplication, reordering and bounded
retries, settable at start and by `PUT /_sim/config`, counted in `/_sim/stats`."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from server.cli import build_parser
from server.emulator.cli import config_from_args
from server.emulator.delivery import RETRY_CAP_S, DeliveryPlanner, DeliverySettings
from tests.emulator.conftest import quiet_config
from tests.support.emulator import run_emulator_in_process
from tests.support.event_receiver import event_receiver

KEY = "events-key-0123456789abcdef"
NO_INITIATED = DeliverySettings(initiated=False)


# -- the draws (no I/O) ----------------------------------------------------------------------


def test_loss_duplication_and_delays_are_drawn_per_event() -> None:
    planner = DeliveryPlanner(1, DeliverySettings(min_delay=0.5, max_delay=2.0))
    delays = [planner.copies() for _ in range(200)]
    assert all(len(d) == 1 and 0.5 <= d[0] <= 2.0 for d in delays)
    assert planner.stats.delayed == 200 and planner.stats.offered == 200

    lossy = DeliveryPlanner(1, DeliverySettings(loss=1.0))
    assert lossy.copies() == [] and lossy.stats.lost == 1
    twice = DeliveryPlanner(1, DeliverySettings(duplication=1.0, max_delay=1.0))
    assert len(twice.copies()) == 2 and twice.stats.duplicated == 1

    some = DeliveryPlanner(7, DeliverySettings(loss=0.1, duplication=0.1))
    counts = [len(some.copies()) for _ in range(2000)]
    assert 100 < counts.count(0) < 300 and 100 < counts.count(2) < 300


def test_the_same_seed_draws_the_same_fates() -> None:
    settings = DeliverySettings(min_delay=0, max_delay=1, loss=0.2, duplication=0.2)
    a, b = DeliveryPlanner(3, settings), DeliveryPlanner(3, settings)
    assert [a.copies() for _ in range(50)] == [b.copies() for _ in range(50)]


def test_retry_delays_back_off_honour_retry_after_and_stop() -> None:
    planner = DeliveryPlanner(1, DeliverySettings(max_attempts=4))
    for attempt in (1, 2, 3):
        for _ in range(50):
            delay = planner.retry_delay(attempt, None)
            assert delay is not None and 0 <= delay <= 0.5 * 2 ** (attempt - 1)
    assert planner.retry_delay(2, 7.0) == 7.0
    assert planner.retry_delay(2, 1e9) == RETRY_CAP_S
    assert planner.retry_delay(4, None) is None  # the fourth attempt was the last


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ([], "is an object"),
        ({"lag": 1}, "unknown eventDelivery keys: lag"),
        ({"loss": "a lot"}, "loss must be a float"),
        ({"loss": True}, "loss must be a float"),
        ({"loss": 1.5}, "probabilities"),
        ({"minDelay": 2, "maxDelay": 1}, "max_delay must be >= min_delay"),
        ({"maxDelay": float("inf")}, "finite"),
        ({"maxAttempts": 0}, "max_attempts"),
        ({"maxAttempts": 1.5}, "maxAttempts must be a int"),
        ({"initiated": 1}, "initiated must be a bool"),
    ],
)
def test_bad_settings_are_refused(patch: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DeliverySettings().patched(patch)


def test_cli_flags(monkeypatch) -> None:
    parser = build_parser("simulate")
    args = parser.parse_args(
        [
            *("simulate", "--events-delay", "0.5:2", "--events-loss", "0.01"),
            *("--events-duplication", "0.02", "--events-key", KEY),
        ]
    )
    config = config_from_args(args)
    assert config.event_delivery == DeliverySettings(0.5, 2.0, 0.01, 0.02)
    assert config.events_key == KEY
    monkeypatch.setenv("QUEUECAST_EVENTS_KEY", "from-the-environment-0123")
    fixed = config_from_args(parser.parse_args(["simulate", "--events-delay", "1"]))
    assert fixed.event_delivery.min_delay == fixed.event_delivery.max_delay == 1.0
    assert fixed.events_key == "from-the-environment-0123"
    # An API destination sends in parallel, and keeps what it cannot send yet.
    assert (fixed.events_concurrency, fixed.events_queue_size) == (32, 20_000)
    sized = ["simulate", "--events-concurrency", "4", "--events-queue-size", "50"]
    config = config_from_args(parser.parse_args(sized))
    assert (config.events_concurrency, config.events_queue_size) == (4, 50)
    for bad in (
        ["--events-delay", "2:1"],
        ["--events-loss", "2"],
        ["--events-delay", "x"],
        ["--events-concurrency", "0"],
        ["--events-queue-size", "0"],
    ):
        with pytest.raises(ValueError):
            config_from_args(parser.parse_args(["simulate", *bad]))


# -- on the wire -----------------------------------------------------------------------------


async def test_the_api_destination_shape() -> None:
    async with (
        event_receiver() as receiver,
        run_emulator_in_process(quiet_config(events_url=receiver.url, events_key=KEY)) as emu,
    ):
        await emu.create_contact("sales")
        await receiver.wait_for(2)
    for request in receiver.requests:
        assert request.headers["user-agent"] == "Amazon/EventBridge/ApiDestinations"
        assert request.headers["content-type"] == "application/json; charset=utf-8"
        assert request.headers["x-queuecast-events-key"] == KEY
        assert isinstance(request.body, dict)  # one event per request, never an array
    assert receiver.kinds() == ["INITIATED", "QUEUED"]


async def test_delay_reorder_loss_and_duplication_set_at_run_time() -> None:
    config = quiet_config(event_delivery=NO_INITIATED)
    async with (
        event_receiver() as receiver,
        run_emulator_in_process(replace(config, events_url=receiver.url)) as emu,
    ):
        await emu.put_config(eventDelivery={"duplication": 1.0})
        first = await emu.create_contact("sales")
        twice = await receiver.wait_for(2)
        assert twice[0]["id"] == twice[1]["id"]  # the same event, twice
        assert twice[0]["detail"]["contactId"] == first["contactId"]

        await emu.put_config(eventDelivery={"duplication": 0.0, "loss": 1.0})
        await emu.create_contact("sales")
        await asyncio.sleep(0.3)
        assert len(receiver.taken) == 2

        await emu.put_config(eventDelivery={"loss": 0.0, "minDelay": 0.4, "maxDelay": 0.4})
        offered = asyncio.get_running_loop().time()
        await emu.create_contact("sales")
        await receiver.wait_for(3)
        assert receiver.requests[-1].at - offered >= 0.38

        # A spread of a second, events 20 ms apart: arrival order is not offer order.
        await emu.put_config(eventDelivery={"minDelay": 0.0, "maxDelay": 1.0})
        made = []
        for _ in range(12):
            made.append((await emu.create_contact("sales"))["contactId"])
            await asyncio.sleep(0.02)
        await receiver.wait_for(15)
        arrived = [e["detail"]["contactId"] for e in receiver.taken[3:]]
        assert sorted(arrived) == sorted(made) and arrived != made
        stats = (await emu.sim_stats())["contactEvents"]
        config_now = (await emu.http.get("/_sim/config")).json()["eventDelivery"]
    assert config_now == {
        "minDelay": 0.0,
        "maxDelay": 1.0,
        "loss": 0.0,
        "duplication": 0.0,
        "maxAttempts": 8,
        "initiated": False,
    }
    assert stats["offered"] == 15 and stats["lost"] == 1 and stats["duplicated"] == 1
    assert stats["sent"] == 15 and stats["reordered"] > 0 and stats["delayed"] >= 12
    assert stats["pending"] == 0


async def test_429_and_5xx_are_retried_other_4xx_dropped() -> None:
    config = quiet_config(event_delivery=NO_INITIATED)
    async with (
        event_receiver() as receiver,
        run_emulator_in_process(replace(config, events_url=receiver.url)) as emu,
    ):
        receiver.retry_after = "0"
        receiver.script = [503, 429, 500]
        await emu.create_contact("sales")
        (taken,) = await receiver.wait_for(1)
        assert [r.body["id"] for r in receiver.requests] == [taken["id"]] * 4
        assert receiver.answered == [503, 429, 500, 200]

        receiver.script = [400]
        await emu.create_contact("sales")
        await asyncio.sleep(0.3)
        assert receiver.answered[-1] == 400 and len(receiver.requests) == 5

        await emu.put_config(eventDelivery={"maxAttempts": 2})
        receiver.script = [503, 503, 503]
        await emu.create_contact("sales")
        async with asyncio.timeout(5):
            while (await emu.sim_stats())["contactEvents"]["failed"] < 1:
                await asyncio.sleep(0.05)
        stats = (await emu.sim_stats())["contactEvents"]
        await emu.reset_stats()
        assert (await emu.sim_stats())["contactEvents"]["sent"] == 0
    assert stats["retried"] == 4 and stats["rejected"] == 1 and stats["failed"] == 1
    assert stats["sent"] == 1 and len(receiver.requests) == 7


async def test_an_unreachable_destination_is_retried_with_backoff() -> None:
    async with event_receiver() as receiver:
        url = receiver.url
    # Nothing listens there any more: connections are refused and retried.
    config = quiet_config(
        event_delivery=DeliverySettings(initiated=False, max_attempts=3), events_url=url
    )
    async with run_emulator_in_process(config) as emu:
        await emu.create_contact("sales")
        async with asyncio.timeout(10):
            while (await emu.sim_stats())["contactEvents"]["failed"] < 1:
                await asyncio.sleep(0.05)
        stats = (await emu.sim_stats())["contactEvents"]
    assert stats["retried"] == 2 and stats["sent"] == 0


async def test_bad_event_delivery_config_changes_nothing(emulator) -> None:
    before = (await emulator.http.get("/_sim/config")).json()
    response = await emulator.http.put(
        "/_sim/config", json={"speed": 3, "eventDelivery": {"loss": 2}}
    )
    assert response.status_code == 400 and response.json()["error"] == "bad-config"
    assert (await emulator.http.get("/_sim/config")).json() == before
