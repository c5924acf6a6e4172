"""Per-queue scenario settings through `PUT /_sim/config`: priorities, patience, service."""

from __future__ import annotations

import asyncio

import pytest

from server.emulator import QueueSpec
from tests.emulator.conftest import quiet_config
from tests.support.emulator import run_emulator_in_process

HARDER = {"priorities": [1, 5, 5, 5, 5, 5, 5, 5, 5, 5], "meanPatience": 60, "meanService": 10}


async def test_scenario_round_trip(emulator):
    config = await emulator.get_config()
    sales = emulator.queues["sales"]
    assert config["queues"][sales] == {"priorities": [], "meanPatience": None, "meanService": 120.0}
    updated = await emulator.put_config(queues={"sales": HARDER})
    assert updated["queues"][sales] == {**HARDER, "meanPatience": 60.0, "meanService": 10.0}
    assert (
        updated["queues"][emulator.queues["support"]]
        == config["queues"][emulator.queues["support"]]
    )
    cleared = await emulator.put_config(queues={sales: {"meanPatience": None, "priorities": []}})
    assert cleared["queues"][sales] == {"priorities": [], "meanPatience": None, "meanService": 10.0}


async def test_harder_scenario_at_run_time():
    # 10 % of arrivals at priority 1 and some abandonment, switched on while running.
    spec = QueueSpec("sales", agents=4, arrivals_per_minute=0, mean_patience_s=None)
    config = quiet_config(queues=(spec,), paused=True, seed=3)
    async with run_emulator_in_process(config) as emulator:
        await emulator.put_config(queues={"sales": HARDER}, arrivals={"sales": 20}, speed=2000)
        await emulator.put_config(paused=False)
        model = emulator.emulator.model
        queue = model.find_queue("sales")
        while queue.arrived < 1500:  # the model ticker advances it: about 2 s of real time
            await asyncio.sleep(0.05)
        await emulator.put_config(paused=True)
        counts = next(q for q in (await emulator.sim_state())["instances"][0]["queues"])["counts"]
    share = sum(c.priority == 1 for c in model.contacts.values()) / len(model.contacts)
    assert 0.07 < share < 0.13
    assert 0.02 < counts["abandoned"] / counts["arrived"] < 0.25


@pytest.mark.parametrize(
    "queues",
    [
        [],
        {"nope": {}},
        {"sales": []},
        {"sales": {"other": 1}},
        {"sales": {"priorities": [0]}},
        {"sales": {"priorities": [True]}},
        {"sales": {"priorities": 1}},
        {"sales": {"meanPatience": -1}},
        {"sales": {"meanService": 0}},
        {"sales": {"meanService": "slow"}},
        {"support": {"meanPatience": 5}, "sales": {"meanService": 0}},
    ],
)
async def test_bad_scenario_changes_nothing(emulator, queues):
    before = await emulator.get_config()
    response = await emulator.http.put("/_sim/config", json={"queues": queues})
    assert response.status_code == 400 and response.json()["error"] == "bad-config"
    assert await emulator.get_config() == before
