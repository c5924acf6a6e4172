"""Many replicas behave as one poller: each contact polled by exactly one replica, one account
budget, a dead replica's contacts taken over, every subscriber served wherever it is."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import pytest

from tests.scaleout.conftest import LEASE_TTL, replicas
from tests.support import TIMEOUT_SCALE
from tests.support.wsclient import ws_client

pytestmark = pytest.mark.e2e


async def wait_for(predicate, timeout: float, step: float = 0.1):
    async with asyncio.timeout(timeout):
        while not (result := await predicate()):
            await asyncio.sleep(step)
    return result


async def watch_everywhere(stack, services, contacts):
    """One client per replica, each subscribed to every contact; returns the clients and the
    first message each got per contact."""
    clients = [await stack.enter_async_context(ws_client(s.ws_url)) for s in services]
    for client in clients:
        for contact in contacts:
            await client.subscribe(contact)
    # The first message of each contact, per client (later updates may come in between:
    # positions move as soon as the queue book learns something).
    first = []
    for client in clients:
        seen: dict[str, dict] = {}
        while len(seen) < len(contacts):
            message = await client.next()
            if "contact" in message:
                seen.setdefault(message["contact"], message)
        first.extend(seen.values())
    return clients, first


async def polls(emulator) -> dict[str, int]:
    return (await emulator.sim_stats())["getContactMetrics"]["byContact"]


async def test_contacts_are_split_and_each_polled_once_per_interval(emulator, redis_server):
    """3 replicas, 100 contacts, one subscriber each spread over all replicas (12 sockets)."""
    contacts = [(await emulator.create_contact("sales"))["contactId"] for _ in range(100)]
    extra = ("--rps", "200", "--burst", "20", "--poll-interval", "1")
    async with replicas(emulator, redis_server.url, 3, *extra) as services:
        async with contextlib.AsyncExitStack() as stack:
            # 4 sockets per replica, about 8 subscriptions each: within the per-socket message
            # rate limit.
            clients = [
                await stack.enter_async_context(ws_client(services[i % 3].ws_url))
                for i in range(12)
            ]
            watcher = {c: clients[i % 12] for i, c in enumerate(contacts)}
            for contact, client in watcher.items():
                await client.subscribe(contact)
            for client in clients:
                waiting = {c for c, w in watcher.items() if w is client}
                while waiting:
                    message = await client.next()
                    # Each contact's first message is its snapshot; updates of contacts
                    # already snapshotted may come in between.
                    if message.get("contact") in waiting:
                        assert message["type"] == "snapshot"
                        waiting.discard(message["contact"])

            async def balanced():
                tracked = [(await s.status())["tracked"] for s in services]
                return tracked if sum(tracked) == 100 and min(tracked) > 0 else None

            tracked = await wait_for(balanced, 10)
            assert max(tracked) <= 34, tracked  # fair shares of ⌈100 / 3⌉

            await emulator.reset_stats()
            await asyncio.sleep(4.0)
            counts = await polls(emulator)
            # Interval 1 s over 4 s: 4 polls each (5 if one straddles the edges); a contact
            # polled by two replicas would show about 8.
            assert set(counts) == set(contacts)
            assert all(3 <= counts[c] <= 5 for c in contacts), counts

            # Every change reaches its subscriber whatever replica polls the contact: all 99
            # contacts behind the first move up by one.
            await emulator.connect(contacts[0])
            expected = {c: p for p, c in enumerate(contacts[1:], start=1)}
            expected[contacts[0]] = None  # it ended
            for client in clients:
                pending = {c for c, w in watcher.items() if w is client}
                async with asyncio.timeout(15):
                    while pending:
                        message = await client.next()
                        contact = message.get("contact")
                        if contact in pending and message["position"] == expected[contact]:
                            pending.discard(contact)


async def test_sigkilled_replica_is_taken_over_within_two_ttls(emulator, redis_server):
    contacts = [(await emulator.create_contact("sales"))["contactId"] for _ in range(9)]
    extra = ("--rps", "100", "--burst", "20", "--poll-interval", "0.5")
    async with replicas(emulator, redis_server.url, 3, *extra) as services:
        async with contextlib.AsyncExitStack() as stack:
            clients, _ = await watch_everywhere(stack, services, contacts)

            async def owners():
                statuses = [await s.status() for s in services]
                return statuses if sum(s["tracked"] for s in statuses) == 9 else None

            await wait_for(owners, 10)
            victim = services[0]
            victim_had = (await victim.status())["tracked"]
            assert victim_had > 0
            victim_seen = {m["contact"]: m["seq"] for m in clients[0].seen if "contact" in m}
            victim.proc.send_signal(signal.SIGKILL)
            await victim.proc.wait()
            killed_at = asyncio.get_running_loop().time()

            await emulator.reset_stats()

            async def all_polled_again():
                counts = await polls(emulator)
                return all(counts.get(c, 0) >= 1 for c in contacts)

            await wait_for(all_polled_again, 2 * LEASE_TTL + 1.5)
            took = asyncio.get_running_loop().time() - killed_at
            assert took <= 2 * LEASE_TTL + 1.5, took

            # Survivors' subscribers get the next change of every contact.
            await emulator.connect(contacts[0])
            for client in clients[1:]:
                ended = await client.next_matching(
                    lambda m: m.get("contact") == contacts[0] and m["type"] == "ended"
                )
                # Why, when DescribeContact's budget has a call to spare right then (the
                # survivors just re-placed the dead replica's contacts): else left_queue.
                assert ended["reason"] in ("connected_to_agent", "left_queue")
            # A client of the dead replica reconnects elsewhere: current state, seq not lower.
            async with ws_client(services[1].ws_url) as moved:
                for contact in contacts[1:]:
                    await moved.subscribe(contact, since=victim_seen.get(contact, 0))
                # Contacts that moved since (all of them: contacts[0] left) come as snapshots
                # newer than what the client had; nothing older is ever sent.
                first: dict[str, dict] = {}
                while len(first) < len(contacts) - 1:
                    message = await moved.next()
                    first.setdefault(message["contact"], message)
                    assert message["seq"] > victim_seen[message["contact"]]
                # (a resuming client may get an update first: it already holds a state)
                assert {m["type"] for m in first.values()} <= {"snapshot", "update"}
                # Its next change reaches it too. First let contacts[2] show its true place (2):
                # a position inferred after the takeover may still await its confirming read,
                # and a change to a place already shown is no change.
                shown = first[contacts[2]]
                while shown["position"] != 2:
                    shown = await moved.next_matching(lambda m: m.get("contact") == contacts[2])
                await emulator.connect(contacts[1])
                update = await moved.next_matching(lambda m: m.get("contact") == contacts[2])
                assert update["position"] == 1, [
                    m for m in moved.seen if m.get("contact") == contacts[2]
                ]


async def test_one_budget_across_replicas_no_throttling_at_the_quota(emulator, redis_server):
    await emulator.put_config(quota={"enabled": True, "rps": 2.0, "burst": 5})
    contacts = [(await emulator.create_contact("sales"))["contactId"] for _ in range(12)]
    async with replicas(emulator, redis_server.url, 3) as services:
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(ws_client(s.ws_url)) for s in services]
            for i, contact in enumerate(contacts):
                await clients[i % 3].subscribe(contact)
            await asyncio.sleep(8.0)
            statuses = [await s.status() for s in services]
    stats = await emulator.sim_stats()
    outcomes = stats["getContactMetrics"]["byOutcome"]
    assert outcomes.get("ThrottlingException", 0) == 0, outcomes
    # 2 requests/s account-wide plus the burst: never more, whatever the number of replicas.
    assert stats["getContactMetrics"]["total"] <= 2 * 8.0 + 5 + 2
    assert all(s["budget"]["shared"] for s in statuses)
    assert all(s["effectiveInterval"] == pytest.approx(6.0) for s in statuses)


async def test_shared_rate_backs_off_below_a_lower_quota(emulator, redis_server):
    await emulator.put_config(quota={"enabled": True, "rps": 1.0, "burst": 1})
    contacts = [(await emulator.create_contact("sales"))["contactId"] for _ in range(6)]
    async with replicas(emulator, redis_server.url, 2, "--rps", "4", "--burst", "4") as services:
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(ws_client(s.ws_url)) for s in services]
            for i, contact in enumerate(contacts):
                await clients[i % 2].subscribe(contact)
            await asyncio.sleep(6.0)
            statuses = [await s.status() for s in services]
    throttles = sum(s["budget"]["throttles"] for s in statuses)
    assert throttles >= 1
    rates = {round(s["budget"]["currentRate"], 3) for s in statuses}
    assert max(rates) < 4.0, rates  # both replicas read the one shared, reduced rate
    assert sum(s["tracked"] for s in statuses) == 6  # nobody was dropped


async def test_clean_stop_hands_contacts_over_at_once(emulator, redis_server):
    contacts = [(await emulator.create_contact("sales"))["contactId"] for _ in range(6)]
    extra = ("--rps", "100", "--burst", "20", "--poll-interval", "0.5")
    async with replicas(emulator, redis_server.url, 2, *extra) as services:
        async with ws_client(services[1].ws_url) as client:
            for contact in contacts:
                await client.subscribe(contact)
            for _ in contacts:
                await client.next()

            # The first replica has no socket at all; its share comes from the global interest.
            async def both_poll():
                tracked = [(await s.status())["tracked"] for s in services]
                return tracked if sum(tracked) == 6 and min(tracked) > 0 else None

            await wait_for(both_poll, 10)
            services[0].proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(services[0].proc.wait(), 10) == 0

            async def survivor_has_all():
                return (await services[1].status())["tracked"] == 6

            # Handed over at the survivor's next reconcile, well within one lease TTL.
            await wait_for(survivor_has_all, LEASE_TTL)


async def test_redis_restarting_empty_loses_nothing_that_matters(emulator, redis_server):
    """Redis is killed mid-run and comes back empty: subscribers are shown `stale` meanwhile,
    get a fresh state within 5 s of its return, seq never goes back, no process crashes."""
    contacts = [(await emulator.create_contact("sales"))["contactId"] for _ in range(6)]
    extra = ("--rps", "100", "--burst", "20", "--poll-interval", "0.5")
    async with replicas(emulator, redis_server.url, 2, *extra) as services:
        async with contextlib.AsyncExitStack() as stack:
            clients, first = await watch_everywhere(stack, services, contacts)
            assert all(message["type"] == "snapshot" for message in first)

            await redis_server.kill()
            for client in clients:
                stale = {}
                while len(stale) < len(contacts):
                    message = await client.next(timeout=10)
                    if message.get("stale"):
                        stale[message["contact"]] = message
            await emulator.connect(contacts[0])  # the queue moves during the outage
            await asyncio.sleep(1.0)

            await redis_server.start()  # same port, no data
            back = asyncio.get_running_loop().time()
            for client in clients:
                fresh: dict[str, dict] = {}
                async with asyncio.timeout(5.0):
                    while len(fresh) < len(contacts) or fresh[contacts[0]]["type"] != "ended":
                        # (contacts[0]'s end may follow a fresh state of it: the poll that
                        # sees it gone asks DescribeContact why before it is published)
                        message = await client.next()
                        if not message.get("stale"):
                            fresh[message["contact"]] = message
                assert fresh[contacts[0]]["type"] == "ended"
                assert fresh[contacts[1]]["position"] == 1
            assert asyncio.get_running_loop().time() - back <= 5.0
            for client in clients:
                by_contact: dict[str, list[int]] = {}
                for message in client.seen:
                    if "seq" in message:
                        by_contact.setdefault(message["contact"], []).append(message["seq"])
                for seqs in by_contact.values():
                    assert seqs == sorted(seqs), "a client saw seq go back"
            # Still streaming after the outage, on every replica.
            await emulator.connect(contacts[1])
            for client in clients:
                # (a republish of the position-2 state may still be on its way first)
                try:
                    moved = await client.next_matching(
                        lambda m: m.get("contact") == contacts[2] and m.get("position") == 1,
                        timeout=20 * TIMEOUT_SCALE,
                    )
                except TimeoutError:
                    told = [m for m in client.seen if m.get("contact") == contacts[2]]
                    statuses = [await s.status() for s in services]
                    raise AssertionError(
                        f"contacts[2] never shown at 1: told {told}; statuses {statuses}"
                    ) from None
                assert moved["stale"] is False
            assert all(s.proc.returncode is None for s in services)
