"""The `/_sim/` control and truth API, contact events, and the config it accepts."""

from __future__ import annotations

import asyncio

import pytest

from tests.emulator.conftest import quiet_config
from tests.support.emulator import run_emulator_in_process
from tests.support.event_receiver import event_receiver


async def test_state_lists_queues_agents_and_waiting(emulator):
    first = await emulator.create_contact("sales")
    second = await emulator.create_contact(emulator.queues["sales"], priority=1)
    state = await emulator.sim_state()
    assert state["now"].endswith("Z") and state["speed"] == 1.0
    (instance,) = state["instances"]
    assert instance["id"] == emulator.instance_id
    assert instance["arn"].endswith(f":instance/{emulator.instance_id}")
    sales = next(q for q in instance["queues"] if q["name"] == "sales")
    assert sales["agents"] == {"total": 0, "busy": 0, "free": 0}
    assert [w["contactId"] for w in sales["waiting"]] == [second["contactId"], first["contactId"]]
    assert [w["position"] for w in sales["waiting"]] == [1, 2]
    assert all(isinstance(w["ewt"], float) and w["ewt"] >= 0 for w in sales["waiting"])
    assert [w["priority"] for w in sales["waiting"]] == [1, 5]


async def test_connect_abandon_and_their_errors(emulator):
    contact = await emulator.create_contact("support")
    assert await emulator.connect(contact) == {
        "contactId": contact["contactId"],
        "state": "connected",
    }
    response = await emulator.http.post(f"/_sim/contacts/{contact['contactId']}/abandon")
    assert response.status_code == 409 and response.json()["error"] == "not-waiting"
    response = await emulator.http.post("/_sim/contacts/nope/connect")
    assert response.status_code == 404 and response.json()["error"] == "unknown-contact"
    other = await emulator.create_contact("support")
    assert (await emulator.abandon(other))["state"] == "abandoned"
    assert await emulator.waiting("support") == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 400),
        ({"queue": 3}, 400),
        ({"queue": "nope"}, 404),
        ({"queue": "sales", "priority": "x"}, 400),
    ],
)
async def test_create_contact_errors(emulator, body, status):
    response = await emulator.http.post("/_sim/contacts", json=body)
    assert response.status_code == status
    assert response.json()["message"]


async def test_config_round_trip_and_partial_update(emulator):
    config = await emulator.get_config()
    assert config["quota"] == {"enabled": False, "rps": 2.0, "burst": 5}
    assert config["leaveMode"] == "empty-then-not-found" and config["leaveGrace"] == 30.0
    updated = await emulator.put_config(
        leaveMode="invalid", speed=10, arrivals={"sales": 0.5}, faults={"latencyMs": 1}
    )
    assert updated["leaveMode"] == "invalid" and updated["speed"] == 10.0
    assert updated["arrivals"][emulator.queues["sales"]] == 0.5
    assert updated["arrivals"][emulator.queues["support"]] == 0.0
    assert updated["faults"] == {"rates": {}, "latencyMs": 1.0, "jitterMs": 0.0, "stall": False}
    assert updated["quota"] == config["quota"]


@pytest.mark.parametrize(
    "patch",
    [
        {"leaveMode": "sometimes"},
        {"speed": -1},
        {"speed": "fast"},
        {"quota": {"rps": 0}},
        {"quota": {"burst": 0.5}},
        {"quota": {"color": "red"}},
        {"faults": {"rates": {"TeapotException": 0.1}}},
        {"faults": {"rates": {"ThrottlingException": 0.8, "InternalServiceException": 0.8}}},
        {"arrivals": {"nope": 1}},
        {"arrivals": {"sales": -1}},
        {"paused": "yes"},
        {"bogus": 1},
        [1, 2],
    ],
)
async def test_bad_config_is_refused_and_changes_nothing(emulator, patch):
    before = await emulator.get_config()
    response = await emulator.http.put(
        "/_sim/config", json={"leaveMode": "empty", **patch} if isinstance(patch, dict) else patch
    )
    assert response.status_code == 400
    assert response.json()["error"] == "bad-config"
    assert await emulator.get_config() == before


async def test_stats_count_by_outcome_and_contact_and_reset(emulator):
    contact = await emulator.create_contact("sales")
    auth = {"Authorization": "AWS4-HMAC-SHA256 x"}
    body = {
        "InstanceId": emulator.instance_id,
        "ContactId": contact["contactId"],
        "Metrics": [{"Name": "POSITION_IN_QUEUE"}],
    }
    await emulator.http.post("/metrics/contact", json=body, headers=auth)
    await emulator.http.post("/metrics/contact", json=body)
    await emulator.http.get(
        f"/contacts/{emulator.instance_id}/{contact['contactId']}", headers=auth
    )
    stats = await emulator.sim_stats()
    assert stats["getContactMetrics"] == {
        "total": 2,
        "byOutcome": {"ok": 1, "AccessDeniedException": 1},
        "byContact": {contact["contactId"]: 1},
    }
    assert stats["describeContact"]["byOutcome"] == {"ok": 1}
    await emulator.reset_stats()
    assert (await emulator.sim_stats())["getContactMetrics"]["total"] == 0


async def test_arrivals_flow_at_speed():
    config = quiet_config(speed=600.0)  # ten simulated minutes per real second
    async with run_emulator_in_process(config) as emu:
        await emu.put_config(arrivals={"sales": 60})
        await asyncio.sleep(0.3)
        assert len(await emu.waiting("sales")) > 10
        assert await emu.waiting("support") == []


async def test_contact_events_are_posted_in_eventbridge_form():
    async with (
        event_receiver() as receiver,
        run_emulator_in_process(quiet_config(events_url=receiver.url)) as emu,
    ):
        contact = await emu.create_contact("sales")
        await emu.connect(contact)
        initiated, queued, connected = await receiver.wait_for(3)
    for event in (initiated, queued, connected):
        assert event["source"] == "aws.connect"
        assert event["detail-type"] == "Amazon Connect Contact Event"
        assert event["region"] == "us-east-1" and event["account"] == "123456789012"
        assert event["resources"][0].endswith(f"/contact/{contact['contactId']}")
        detail = event["detail"]
        assert detail["contactId"] == contact["contactId"]
        assert detail["instanceArn"].endswith(emu.instance_id)
        assert detail["channel"] == "VOICE"
    for event in (queued, connected):
        assert event["detail"]["queueInfo"]["queueArn"].endswith(f"/queue/{emu.queues['sales']}")
        assert event["detail"]["queueInfo"]["enqueueTimestamp"].endswith("Z")
    assert "queueInfo" not in initiated["detail"]  # not in a queue yet
    assert receiver.kinds() == ["INITIATED", "QUEUED", "CONNECTED_TO_AGENT"]
    assert "connectedToAgentTimestamp" in connected["detail"]["agentInfo"]
