"""SearchContacts: aioboto3 against the emulator on loopback HTTP (in-process uvicorn, and one
subprocess): time ranges, filters, sorting, paging, the index's lag, errors, quota, stats."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aioboto3
import httpx
import pytest
from botocore.config import Config

from server.emulator import QueueSpec
from tests.emulator.conftest import QUIET_FLAGS, quiet_config
from tests.support.emulator import EmulatorHandle, run_emulator_in_process, start_emulator_process

UTC = datetime.UTC
# botocore checks ranges before sending; these tests must reach the emulator's own checks.
UNCHECKED = Config(parameter_validation=False, retries={"total_max_attempts": 1})
POLL_S, POLL_LIMIT_S = 0.02, 10.0


def wide_range(kind: str = "INITIATION_TIMESTAMP") -> dict[str, Any]:
    now = datetime.datetime.now(UTC)
    delta = datetime.timedelta(days=1)
    return {"Type": kind, "StartTime": now - delta, "EndTime": now + delta}


@pytest.fixture
async def search_emulator() -> AsyncIterator[EmulatorHandle]:
    """Sales has two agents whose calls never end; support has none. No lag, waiting shown."""
    sales = QueueSpec("sales", 2, 0, mean_service_s=1e9, mean_patience_s=None)
    support = QueueSpec("support", 0, 0, mean_patience_s=None)
    async with run_emulator_in_process(quiet_config(queues=(sales, support))) as handle:
        await handle.put_config(searchLagSeconds=0, searchIncludesQueued=True)
        yield handle


@pytest.fixture
async def client(search_emulator: EmulatorHandle) -> AsyncIterator[Any]:
    async with aioboto3.Session().client("connect", **search_emulator.boto_kwargs()) as c:
        yield c


def searcher(client: Any, emulator: EmulatorHandle) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def search(**params: Any) -> dict[str, Any]:
        params.setdefault("TimeRange", wide_range())
        return await client.search_contacts(InstanceId=emulator.instance_id, **params)  # type: ignore[no-any-return]

    return search


async def ids(search: Callable[..., Awaitable[dict[str, Any]]], **params: Any) -> set[str]:
    return {c["Id"] for c in (await search(**params))["Contacts"]}


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll `check` until true (bounded): for changes that need the simulated clock to move."""
    async with asyncio.timeout(POLL_LIMIT_S):
        while not await check():
            await asyncio.sleep(POLL_S)


# -- answers, time ranges, filters ------------------------------------------------------------


async def test_summary_fields_match_the_model(client, search_emulator):
    search = searcher(client, search_emulator)
    first = await search_emulator.create_contact("sales")  # an agent takes it at once
    waiting = await search_emulator.create_contact("support")
    found = {c["Id"]: c for c in (await search())["Contacts"]}
    assert set(found) == {first["contactId"], waiting["contactId"]}
    truth = await search_emulator.contact_truth(first)
    served = found[first["contactId"]]
    assert served["Arn"].endswith(f"/contact/{first['contactId']}")
    assert (served["Channel"], served["InitiationMethod"]) == ("VOICE", "INBOUND")
    assert served["QueueInfo"]["Id"] == search_emulator.queues["sales"]
    enqueued = served["QueueInfo"]["EnqueueTimestamp"]
    assert iso(enqueued) == truth["enqueuedAt"] and served["InitiationTimestamp"] == enqueued
    assert iso(served["AgentInfo"]["ConnectedToAgentTimestamp"]) == truth["connectedAt"]
    assert served["AgentInfo"]["Id"]
    assert "DisconnectTimestamp" not in served
    assert "AgentInfo" not in found[waiting["contactId"]]
    # The same clock as DescribeContact.
    described = await client.describe_contact(
        InstanceId=search_emulator.instance_id, ContactId=first["contactId"]
    )
    assert described["Contact"]["QueueInfo"]["EnqueueTimestamp"] == enqueued


def iso(at: datetime.datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def test_time_range_types(client, search_emulator):
    search = searcher(client, search_emulator)
    served = (await search_emulator.create_contact("sales"))["contactId"]
    waiting = (await search_emulator.create_contact("support"))["contactId"]
    gone = (await search_emulator.create_contact("support"))["contactId"]
    await search_emulator.abandon(gone)
    assert await ids(search) == {served, waiting, gone}
    assert await ids(search, TimeRange=wide_range("ENQUEUE_TIMESTAMP")) == {served, waiting, gone}
    connected = wide_range("CONNECTED_TO_AGENT_TIMESTAMP")
    assert await ids(search, TimeRange=connected) == {served}
    assert await ids(search, TimeRange=wide_range("DISCONNECT_TIMESTAMP")) == {gone}
    assert await ids(search, TimeRange=wide_range("SCHEDULED_TIMESTAMP")) == set()
    now = datetime.datetime.now(UTC)
    before = {
        "Type": "INITIATION_TIMESTAMP",
        "StartTime": now - datetime.timedelta(days=2),
        "EndTime": now - datetime.timedelta(days=1),
    }
    answer = await search(TimeRange=before)
    assert answer["Contacts"] == [] and answer["TotalCount"] == 0


async def test_filters(client, search_emulator):
    search = searcher(client, search_emulator)
    one = (await search_emulator.create_contact("sales"))["contactId"]
    two = (await search_emulator.create_contact("sales"))["contactId"]
    waiting = (await search_emulator.create_contact("support"))["contactId"]
    everyone = {one, two, waiting}
    sales, support = search_emulator.queues["sales"], search_emulator.queues["support"]
    assert await ids(search, SearchCriteria={"QueueIds": [sales]}) == {one, two}
    assert await ids(search, SearchCriteria={"QueueIds": [support, sales]}) == everyone
    assert await ids(search, SearchCriteria={"QueueIds": []}) == everyone
    agents = {
        c["Id"]: c["AgentInfo"]["Id"] for c in (await search())["Contacts"] if "AgentInfo" in c
    }
    assert set(agents) == {one, two} and agents[one] != agents[two]
    assert await ids(search, SearchCriteria={"AgentIds": [agents[two]]}) == {two}
    assert await ids(search, SearchCriteria={"Channels": ["VOICE"]}) == everyone
    assert await ids(search, SearchCriteria={"Channels": ["CHAT", "TASK"]}) == set()
    assert await ids(search, SearchCriteria={"InitiationMethods": ["INBOUND"]}) == everyone
    assert await ids(search, SearchCriteria={"InitiationMethods": ["OUTBOUND"]}) == set()
    combined = {"QueueIds": [sales], "AgentIds": [agents[one]], "Channels": ["VOICE"]}
    assert await ids(search, SearchCriteria=combined) == {one}


async def test_other_instances_contacts_are_not_found():
    async with run_emulator_in_process(quiet_config(instances=2)) as emulator:
        await emulator.put_config(searchLagSeconds=0, searchIncludesQueued=True)
        other = emulator.instances[1]["id"]
        await emulator.create_contact("sales", instance=other)
        async with aioboto3.Session().client("connect", **emulator.boto_kwargs()) as client:
            assert await ids(searcher(client, emulator)) == set()


async def test_waiting_voice_contacts_are_not_searchable_by_default(client, search_emulator):
    search = searcher(client, search_emulator)
    await search_emulator.put_config(searchIncludesQueued=False)
    served = (await search_emulator.create_contact("sales"))["contactId"]
    waiting = (await search_emulator.create_contact("support"))["contactId"]
    assert await ids(search) == {served}
    await search_emulator.abandon(waiting)
    assert await ids(search) == {served, waiting}


# -- sorting and paging -----------------------------------------------------------------------


async def test_paging_across_250_contacts_in_both_orders(client, search_emulator):
    search = searcher(client, search_emulator)
    created = [(await search_emulator.create_contact("support"))["contactId"] for _ in range(250)]
    for order in ("ASCENDING", "DESCENDING"):
        sort = {"FieldName": "INITIATION_TIMESTAMP", "Order": order}
        pages, token = [], None
        while True:
            more = {"NextToken": token} if token else {}
            answer = await search(Sort=sort, MaxResults=100, **more)
            assert answer["TotalCount"] == 250
            pages.append(answer["Contacts"])
            token = answer.get("NextToken")
            if token is None:
                break
        assert [len(p) for p in pages] == [100, 100, 50]
        listed = [c["Id"] for p in pages for c in p]
        assert listed == (created if order == "ASCENDING" else created[::-1])


async def test_default_page_and_sort(client, search_emulator):
    search = searcher(client, search_emulator)
    created = [(await search_emulator.create_contact("support"))["contactId"] for _ in range(120)]
    answer = await search()
    assert [c["Id"] for c in answer["Contacts"]] == created[:100]  # 100, oldest first
    assert answer["TotalCount"] == 120 and answer["NextToken"]
    rest = await search(NextToken=answer["NextToken"], MaxResults=50)  # size may change
    assert [c["Id"] for c in rest["Contacts"]] == created[100:] and "NextToken" not in rest


async def test_contacts_without_the_sort_field_come_last(client, search_emulator):
    search = searcher(client, search_emulator)
    waiting = (await search_emulator.create_contact("support"))["contactId"]
    first = (await search_emulator.create_contact("sales"))["contactId"]
    second = (await search_emulator.create_contact("sales"))["contactId"]
    for order, expected in (("ASCENDING", [first, second]), ("DESCENDING", [second, first])):
        sort = {"FieldName": "CONNECTED_TO_AGENT_TIMESTAMP", "Order": order}
        listed = [c["Id"] for c in (await search(Sort=sort))["Contacts"]]
        assert listed == [*expected, waiting]
    for field in ("CHANNEL", "INITIATION_METHOD", "SCHEDULED_TIMESTAMP", "EXPIRY_TIMESTAMP"):
        sort = {"FieldName": field, "Order": "DESCENDING"}
        listed = [c["Id"] for c in (await search(Sort=sort))["Contacts"]]
        assert listed == [waiting, first, second]  # all equal: initiation order


# -- the index's lag --------------------------------------------------------------------------


async def test_a_contact_appears_only_after_the_lag(client, search_emulator):
    search = searcher(client, search_emulator)
    await search_emulator.put_config(paused=True, searchLagSeconds=5)
    contact = (await search_emulator.create_contact("support"))["contactId"]
    assert await ids(search) == set()  # the Connect clock stands still: 5 s never pass
    await search_emulator.put_config(searchLagSeconds=0)
    assert await ids(search) == {contact}
    await search_emulator.put_config(searchLagSeconds=5)
    assert await ids(search) == set()
    await search_emulator.put_config(paused=False, speed=100)  # 5 s of Connect time in 0.05 s

    async def listed() -> bool:
        return await ids(search) == {contact}

    await until(listed)


async def test_each_change_shows_only_after_the_lag(client, search_emulator):
    search = searcher(client, search_emulator)
    await search_emulator.put_config(speed=100, searchLagSeconds=5)
    contact = (await search_emulator.create_contact("support"))["contactId"]

    async def listed() -> bool:
        return await ids(search) == {contact}

    await until(listed)
    await search_emulator.put_config(paused=True)
    await search_emulator.abandon(contact)
    truth = await search_emulator.contact_truth(contact)
    assert truth["status"] == "abandoned"
    (summary,) = (await search())["Contacts"]
    assert "DisconnectTimestamp" not in summary  # ended, but the index has not caught up
    assert await ids(search, TimeRange=wide_range("DISCONNECT_TIMESTAMP")) == set()
    await search_emulator.put_config(paused=False)

    async def ended() -> bool:
        (summary,) = (await search())["Contacts"]
        return "DisconnectTimestamp" in summary

    await until(ended)
    (summary,) = (await search())["Contacts"]
    assert iso(summary["DisconnectTimestamp"]) == truth["disconnectedAt"]


async def test_connection_shows_only_after_the_lag(client, search_emulator):
    search = searcher(client, search_emulator)
    await search_emulator.put_config(paused=True, searchLagSeconds=5, searchIncludesQueued=False)
    contact = (await search_emulator.create_contact("support"))["contactId"]
    await search_emulator.connect(contact)  # no agent free: connected without one
    assert await ids(search) == set()
    await search_emulator.put_config(paused=False, speed=100)

    async def listed() -> bool:
        return await ids(search) == {contact}

    await until(listed)
    (summary,) = (await search())["Contacts"]
    truth = await search_emulator.contact_truth(contact)
    assert summary["AgentInfo"] == {
        "ConnectedToAgentTimestamp": summary["AgentInfo"]["ConnectedToAgentTimestamp"]
    }
    assert iso(summary["AgentInfo"]["ConnectedToAgentTimestamp"]) == truth["connectedAt"]


async def test_search_settings_are_validated(search_emulator):
    config = await search_emulator.get_config()
    assert config["searchLagSeconds"] == 0 and config["searchIncludesQueued"] is True
    for bad in ({"searchLagSeconds": -1}, {"searchLagSeconds": "2"}, {"searchIncludesQueued": 1}):
        response = await search_emulator.http.put("/_sim/config", json=bad)
        assert response.status_code == 400
    assert await search_emulator.get_config() == config


async def test_defaults():
    async with run_emulator_in_process(quiet_config(operation_quotas_enabled=True)) as emulator:
        config = await emulator.get_config()
    assert config["searchLagSeconds"] == 2.0 and config["searchIncludesQueued"] is False
    assert config["quotas"]["searchContacts"] == {"enabled": True, "rps": 0.5, "burst": 1}


# -- errors, quota, faults, stats -------------------------------------------------------------


async def invalid(search_emulator: EmulatorHandle, **params: Any) -> str:
    async with aioboto3.Session().client(
        "connect", **search_emulator.boto_kwargs(UNCHECKED)
    ) as client:
        with pytest.raises(client.exceptions.InvalidParameterException) as caught:
            await searcher(client, search_emulator)(**params)
    return str(caught.value)


@pytest.mark.parametrize(
    "criteria",
    [
        {"Name": {"SearchText": ["x"], "MatchType": "MATCH_ANY"}},
        {"AgentHierarchyGroups": {"L1Ids": ["a"]}},
        {"SearchableContactAttributes": {"Criteria": [{"Key": "k", "Values": ["v"]}]}},
    ],
)
async def test_unsupported_criteria_are_refused_by_name(search_emulator, criteria):
    message = await invalid(search_emulator, SearchCriteria={**criteria, "QueueIds": []})
    (name,) = criteria
    assert f"SearchCriteria.{name} not supported by the emulator" in message


async def test_bad_requests(search_emulator):
    for size in (0, 101):
        assert "maxResults" in await invalid(search_emulator, MaxResults=size)
    now = datetime.datetime.now(UTC)
    week = datetime.timedelta(weeks=1)
    too_wide = {"Type": "INITIATION_TIMESTAMP", "StartTime": now - 8 * week, "EndTime": now + week}
    assert "8 weeks" in await invalid(search_emulator, TimeRange=too_wide)
    backwards = {"Type": "INITIATION_TIMESTAMP", "StartTime": now, "EndTime": now - week}
    assert "after EndTime" in await invalid(search_emulator, TimeRange=backwards)
    eight_weeks = {"Type": "INITIATION_TIMESTAMP", "StartTime": now - 8 * week, "EndTime": now}
    async with aioboto3.Session().client("connect", **search_emulator.boto_kwargs()) as client:
        search = searcher(client, search_emulator)
        assert (await search(TimeRange=eight_weeks))["Contacts"] == []  # exactly 8 weeks: fine
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await client.search_contacts(
                InstanceId="00000000-0000-4000-8000-000000000000", TimeRange=wide_range()
            )
    assert "NextToken" in await invalid(search_emulator, NextToken="bogus")
    wrong_type = {"Type": "ANSWERED_TIMESTAMP", "StartTime": now, "EndTime": now}
    assert "enum" in await invalid(search_emulator, TimeRange=wrong_type)


async def test_a_token_of_other_parameters_is_refused(client, search_emulator):
    for _ in range(3):
        await search_emulator.create_contact("support")
    search = searcher(client, search_emulator)
    token = (await search(MaxResults=1))["NextToken"]
    other = {"QueueIds": [search_emulator.queues["support"]]}
    assert "request parameters" in await invalid(
        search_emulator, NextToken=token, SearchCriteria=other
    )


async def test_timestamps_must_be_epoch_numbers(search_emulator):
    body = {
        "InstanceId": search_emulator.instance_id,
        "TimeRange": {"Type": "INITIATION_TIMESTAMP", "StartTime": "yesterday", "EndTime": 1},
    }
    async with httpx.AsyncClient(base_url=search_emulator.endpoint_url, timeout=10) as http:
        signed = {"Authorization": "AWS4-HMAC-SHA256 Credential=test"}
        response = await http.post("/search-contacts", json=body, headers=signed)
        unsigned = await http.post("/search-contacts", json=body)
    assert response.status_code == 400
    assert response.headers["x-amzn-ErrorType"] == "InvalidParameterException"
    assert "StartTime" in response.json()["message"]
    assert unsigned.status_code == 403


async def test_throttling_faults_and_stats(client, search_emulator):
    search = searcher(client, search_emulator)
    await search_emulator.reset_stats()
    quota = {"enabled": True, "rps": 0.01, "burst": 1}
    await search_emulator.put_config(quotas={"searchContacts": quota})
    await search()
    with pytest.raises(client.exceptions.ThrottlingException):
        await search()
    await search_emulator.put_config(
        quotas={"searchContacts": {"enabled": False}},
        faults={"rates": {"InternalServiceException": 1.0}},
    )
    with pytest.raises(client.exceptions.InternalServiceException):
        await search()
    stats = (await search_emulator.sim_stats())["searchContacts"]
    assert stats["total"] == 3
    assert stats["byOutcome"] == {"ok": 1, "ThrottlingException": 1, "InternalServiceException": 1}


async def test_subprocess_emulator_answers_search_with_its_flags():
    flags = (*QUIET_FLAGS, "--search-lag", "0")
    async with start_emulator_process(*flags) as emulator:
        await emulator.put_config(searchIncludesQueued=True)
        contact = (await emulator.create_contact("sales"))["contactId"]
        async with aioboto3.Session().client("connect", **emulator.boto_kwargs()) as client:
            assert await ids(searcher(client, emulator)) == {contact}
        assert (await emulator.get_config())["searchLagSeconds"] == 0
