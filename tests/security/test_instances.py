"""Contacts are polled only in the configured instances, as the token or the backend says
(issue 14, item 2). Rules of `InstanceAllowlist`, then the service refusing what a client
names against a real emulator."""

from __future__ import annotations

import asyncio

import pytest

from server.access.instances import InstanceAllowlist, InstanceRefused
from server.access.tokens import ANONYMOUS, Grant
from tests.security.test_serve import serve_exit
from tests.support.service import TEST_SECRET, mint_test_token, start_service_process
from tests.support.wsclient import ws_client

INSTANCE = "cd613e30-d8f1-4adf-91b7-584a2265b1f5"
OTHER = "0d5e1f6a-1111-4c8d-9e2f-3a4b5c6d7e8f"
ACCOUNT = "123456789012"
ARN = f"arn:aws:connect:us-east-1:{ACCOUNT}:instance/{INSTANCE}"
FOREIGN_ARNS = [
    f"arn:aws:connect:eu-west-2:{ACCOUNT}:instance/{INSTANCE}",
    f"arn:aws:connect:us-east-1:999999999999:instance/{INSTANCE}",
]
CONTACT_GRANT = Grant("contact", contact="c")


def allowlist(*entries: str, account: str | None = ACCOUNT) -> InstanceAllowlist:
    return InstanceAllowlist.of(entries, "us-east-1", account)


def refusal(call) -> str:
    with pytest.raises(InstanceRefused) as refused:
        call()
    return refused.value.code


def test_names_resolve_to_a_configured_instance_or_nothing():
    one = allowlist(INSTANCE)
    assert one.resolve(INSTANCE) == INSTANCE
    assert one.resolve(ARN) == INSTANCE
    assert one.resolve(OTHER) is None
    assert all(one.resolve(arn) is None for arn in FOREIGN_ARNS)
    # Without a known account no ARN is taken (its account could be anyone's).
    assert allowlist(INSTANCE, account=None).resolve(ARN) is None
    # A configured ARN says the account.
    assert InstanceAllowlist.of((ARN,), "us-east-1", None).resolve(INSTANCE) == ARN
    with pytest.raises(ValueError, match="region"):
        InstanceAllowlist.of((FOREIGN_ARNS[0],), "us-east-1", None)
    with pytest.raises(ValueError, match="account"):
        InstanceAllowlist.of((FOREIGN_ARNS[1],), "us-east-1", ACCOUNT)


def test_whose_word_counts():
    one, two = allowlist(INSTANCE), allowlist(INSTANCE, OTHER)
    claimed = Grant("contact", contact="c", instance=ARN)
    # The token's claim, as written; the request may repeat it in another form, no more.
    assert one.for_subscription(claimed, None) == ARN
    assert one.for_subscription(claimed, INSTANCE) == ARN
    assert refusal(lambda: one.for_subscription(claimed, OTHER)) == "forbidden"
    assert refusal(lambda: one.for_subscription(claimed, FOREIGN_ARNS[1])) == "forbidden"
    stranger = Grant("contact", contact="c", instance=OTHER)
    assert refusal(lambda: one.for_subscription(stranger, None)) == "bad_instance"
    # No claim: one instance, or what is named if it is ours.
    assert one.for_subscription(CONTACT_GRANT, None) == INSTANCE
    assert one.for_subscription(CONTACT_GRANT, ARN) == INSTANCE
    assert refusal(lambda: one.for_subscription(CONTACT_GRANT, OTHER)) == "bad_instance"
    assert refusal(lambda: one.for_subscription(CONTACT_GRANT, FOREIGN_ARNS[0])) == "bad_instance"
    # Several: a contact token must carry the claim; a service names one.
    assert refusal(lambda: two.for_subscription(CONTACT_GRANT, None)) == "bad_instance"
    assert refusal(lambda: two.for_subscription(CONTACT_GRANT, OTHER)) == "bad_instance"
    assert two.for_subscription(ANONYMOUS, OTHER) == OTHER
    assert refusal(lambda: two.for_subscription(ANONYMOUS, None)) == "bad_instance"
    # Tracks: ours only.
    assert one.for_track(None) == INSTANCE and one.for_track(ARN) == INSTANCE
    assert refusal(lambda: one.for_track(OTHER)) == "bad_instance"
    assert refusal(lambda: two.for_track(None)) == "bad_instance"


@pytest.mark.e2e
async def test_serve_needs_its_instances_and_refuses_foreign_arns():
    status, err = await serve_exit(QUEUECAST_SECRET=TEST_SECRET, QUEUECAST_INSTANCE_ID="")
    assert status == 2 and "QUEUECAST_INSTANCE_ID" in err
    status, err = await serve_exit("--instance-id", FOREIGN_ARNS[0], QUEUECAST_SECRET=TEST_SECRET)
    assert status == 2 and "region" in err
    status, err = await serve_exit("--account-id", "12", QUEUECAST_SECRET=TEST_SECRET)
    assert status == 2 and "account" in err


@pytest.mark.e2e
async def test_a_track_names_a_configured_instance_or_is_refused(emulator):
    mine = (await emulator.create_contact("sales"))["contactId"]
    instance = emulator.instance_id
    account = "123456789012"  # the emulator's
    flags = ("--account-id", account)
    async with start_service_process(emulator, None, *flags) as service:
        for named in [
            OTHER,
            f"arn:aws:connect:eu-west-2:{account}:instance/{instance}",
            f"arn:aws:connect:{emulator.region}:999999999999:instance/{instance}",
        ]:
            put = await service.http.put(f"/v1/contacts/{mine}", json={"instanceId": named})
            assert put.status_code == 400, named
            assert put.json()["code"] == "bad_instance"
        assert (await service.status())["tracked"] == 0
        arn = f"arn:aws:connect:{emulator.region}:{account}:instance/{instance}"
        put = await service.http.put(f"/v1/contacts/{mine}", json={"instanceId": arn})
        assert put.status_code == 202, put.text
        async with asyncio.timeout(10):
            while (await service.http.get(f"/v1/contacts/{mine}")).status_code != 200:
                await asyncio.sleep(0.1)
        state = (await service.http.get(f"/v1/contacts/{mine}")).json()
        assert state["instance"] == instance and state["type"] == "snapshot"


@pytest.fixture
async def two_instances():
    """The emulator with two instances (each with every queue), nobody arriving by itself."""
    from tests.security.conftest import QUIET_FLAGS  # noqa: PLC0415
    from tests.support.emulator import start_emulator_process  # noqa: PLC0415

    async with start_emulator_process(*QUIET_FLAGS, "--instances", "2") as handle:
        yield handle


def queue_of(emulator, instance: int, name: str) -> str:
    [queue] = [q["id"] for q in emulator.instances[instance]["queues"] if q["name"] == name]
    return queue


@pytest.mark.e2e
async def test_a_queues_token_sees_its_instance_only_over_http(two_instances):
    """Issue 14, item 3: a `queues` token's instance claim narrows what it reads."""
    emulator = two_instances
    first, second = (i["id"] for i in emulator.instances)
    sales_2 = queue_of(emulator, 1, "sales")
    theirs = (await emulator.create_contact(sales_2, instance=second))["contactId"]
    flags = ("--instance-id", f"{first},{second}")
    async with start_service_process(emulator, None, *flags) as service:
        put = await service.http.put(f"/v1/contacts/{theirs}", json={"instanceId": second})
        assert put.status_code == 202, put.text
        async with asyncio.timeout(10):
            while not (await service.http.get(f"/v1/queues/{sales_2}")).json()["contacts"]:
                await asyncio.sleep(0.1)
        for instance, expected in [(first, []), (second, [theirs])]:
            token = mint_test_token("queues", queues=["*"], instance=instance)
            headers = {"Authorization": f"Bearer {token}"}
            one = await service.http.get(f"/v1/queues/{sales_2}", headers=headers)
            assert [c["contact"] for c in one.json()["contacts"]] == expected, instance
            listed = await service.http.get(f"/v1/queues?ids={sales_2}", headers=headers)
            [summary] = listed.json()["queues"]
            assert summary["waiting"] == len(expected), instance


@pytest.mark.e2e
async def test_a_subscriber_cannot_choose_where_its_contact_is_polled(emulator):
    """Issue 14, item 2: a random instance (or an ARN alias of another account) named by a
    customer is refused; the contact is not ended and stays trackable."""
    mine = (await emulator.create_contact("sales"))["contactId"]
    instance = emulator.instance_id
    alias = f"arn:aws:connect:{emulator.region}:999999999999:instance/{instance}"
    async with start_service_process(emulator, None, "--account-id", "123456789012") as service:
        unclaimed = mint_test_token("contact", contact=mine)
        async with ws_client(service.ws_url, token=unclaimed) as widget:
            for named in (OTHER, alias):
                await widget.subscribe(mine, instance=named)
                reply = await widget.next()
                assert reply["type"] == "error" and reply["code"] == "bad_instance", reply
            await asyncio.sleep(1.5)  # a poll in the wrong instance would have ended it by now
            assert (await service.http.get(f"/v1/contacts/{mine}")).status_code == 404
            await widget.subscribe(mine)
            snapshot = await widget.next_matching(lambda m: m.get("contact") == mine)
            assert snapshot["type"] == "snapshot" and snapshot["instance"] == instance
        claimed = mint_test_token("contact", contact=mine, instance=instance)
        async with ws_client(service.ws_url, token=claimed) as widget:
            await widget.subscribe(mine, instance=alias)
            assert (await widget.next())["code"] == "forbidden"
        put = await service.http.put(f"/v1/contacts/{mine}")
        assert put.json()["tracked"] is True


@pytest.mark.e2e
async def test_with_several_instances_tokens_must_name_theirs(two_instances):
    emulator = two_instances
    first, second = (i["id"] for i in emulator.instances)
    theirs = (await emulator.create_contact(queue_of(emulator, 1, "sales"), instance=second))[
        "contactId"
    ]
    async with start_service_process(emulator, None, "--instance-id", f"{first},{second}") as svc:
        async with ws_client(svc.ws_url, token=mint_test_token("contact", contact=theirs)) as ws:
            await ws.subscribe(theirs, instance=second)
            assert (await ws.next())["code"] == "bad_instance"
        token = mint_test_token("contact", contact=theirs, instance=second)
        async with ws_client(svc.ws_url, token=token) as ws:
            await ws.subscribe(theirs)
            snapshot = await ws.next_matching(lambda m: m.get("contact") == theirs)
            assert snapshot["instance"] == second and snapshot["position"] == 1
        board = mint_test_token("queues", queues=["*"])
        async with ws_client(svc.ws_url, token=board) as ws:
            await ws.subscribe(queue=queue_of(emulator, 1, "sales"))
            assert (await ws.next())["code"] == "bad_instance"
        read = await svc.http.get(
            f"/v1/queues/{queue_of(emulator, 1, 'sales')}",
            headers={"Authorization": f"Bearer {board}"},
        )
        assert read.status_code == 400 and read.json()["code"] == "bad_instance"


@pytest.mark.e2e
async def test_a_queues_token_streams_its_instance_only(two_instances):
    """Issue 14, item 3, over WebSocket."""
    emulator = two_instances
    first, second = (i["id"] for i in emulator.instances)
    sales_2 = queue_of(emulator, 1, "sales")
    theirs = (await emulator.create_contact(sales_2, instance=second))["contactId"]
    async with start_service_process(emulator, None, "--instance-id", f"{first},{second}") as svc:
        put = await svc.http.put(f"/v1/contacts/{theirs}", json={"instanceId": second})
        assert put.status_code == 202
        own = mint_test_token("queues", queues=["*"], instance=second)
        other = mint_test_token("queues", queues=["*"], instance=first)
        async with (
            ws_client(svc.ws_url, token=own) as board,
            ws_client(svc.ws_url, token=other) as stranger,
        ):
            await stranger.subscribe(queue=sales_2)
            await board.subscribe(queue=sales_2)
            seen = await board.next_matching(lambda m: m.get("contact") == theirs, timeout=15)
            assert seen["instance"] == second
            await emulator.connect(theirs)
            await board.next_matching(lambda m: m.get("type") == "ended", timeout=15)
            await stranger.send({"op": "ping"})
            await stranger.next_matching(lambda m: m.get("type") == "pong")
            assert not [m for m in stranger.seen if m.get("contact") == theirs], stranger.seen
