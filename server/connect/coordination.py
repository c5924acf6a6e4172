"""Who polls which contact, and how fast the AWS account may be asked: one process or many.

`LocalCoordinator` serves a single process: it polls every contact it wants, and the account
budget is a `LocalBudget` in the process (server/connect/budget.py).

`RedisCoordinator` makes replicas sharing one Redis behave as one poller:

- Interest: each replica writes the contacts its sockets watch (or linger on) into its own hash,
  which expires unless the replica's heartbeat renews it; explicit tracks (HTTP PUT) live in
  one global hash. Wanted = explicit + every live replica's interest.
- Ownership: a lease per contact (`SET NX PX`), renewed by its holder every reconcile. A dead
  replica's leases lapse after one TTL and others claim them; a replica that stops cleanly
  deletes its leases so others claim them at their next reconcile. Leases rather than rendezvous
  hashing because a lease is exclusive by construction: two replicas that briefly disagree on
  who is alive can still never both hold one contact (docs/architecture.md).
- Budget: a token bucket with AIMD inside Redis (one Lua script following
  server/connect/budget_rules.py), shared by every replica through `SharedBudget`, one
  per API quota (GetContactMetrics, DescribeContact, GetCurrentMetricData, ListQueues,
  DescribeQueue).

On a Redis Cluster every script and transaction touches one key (or one contact's keys, which
share a hash tag); what spans slots (reading leases, reading every replica's interest) is a
plain read, split per slot, whose result is only a hint that the per-key operations check.
What differs between a node and a cluster is the client's `Topology`
(server/bus/redis_topology.py); key names are server/bus/keys.py's.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import json
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from server.bus import Bus
from server.bus._redis_errors import redis_call, text
from server.bus.keys import (
    EXPLICIT_KEY,
    REPLICAS_KEY,
    budget_key,
    interest_key,
    lease_key,
    polled_key,
    retire_key,
)
from server.bus.redis_topology import RedisClient, topology_of
from server.connect.budget_rules import (
    DECREASE,
    FLOOR_FRACTION,
    RECOVERY_SECONDS,
    usable_burst,
)
from server.events import ContactEvent

# One shared token bucket per Connect API quota: GetContactMetrics, DescribeContact,
# GetCurrentMetricData, ListQueues, DescribeQueue, SearchContacts.
BudgetName = Literal[
    "metrics", "describe", "current_metrics", "list_queues", "describe_queue", "search"
]


@dataclass(frozen=True, slots=True)
class Wanted:
    """Why a contact is polled: its instance and queue, and whether the backend tracks it
    explicitly (`PUT /v1/contacts/{id}`), which gives it priority over contacts only a
    subscriber asked for (`explicit` is not encoded: the explicit hash itself says it)."""

    instance: str
    queue: str | None = None
    explicit: bool = False

    def encode(self) -> str:
        return json.dumps({"i": self.instance, "q": self.queue}, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: bytes | str) -> Wanted | None:
        try:
            value = json.loads(raw)
            instance, queue = value["i"], value.get("q")
        except (ValueError, KeyError, TypeError, RecursionError):
            return None
        if not isinstance(instance, str) or not (queue is None or isinstance(queue, str)):
            return None
        return cls(instance, queue)


@dataclass(frozen=True, slots=True)
class Start:
    wanted: Wanted
    stored: ContactEvent | None
    last_polled: float | None  # wall-clock seconds of the previous owner's last poll


@dataclass(slots=True)
class Assignment:
    """What to start and stop polling, and everything wanted as this reconcile saw it (the
    explicit tracks among them: their instance and priority win)."""

    start: dict[str, Start] = field(default_factory=dict)
    stop: list[str] = field(default_factory=list)
    wanted: Mapping[str, Wanted] = field(default_factory=dict)
    # Of `stop`: those nobody wants any more (not moved to another replica): to retire.
    retire: list[str] = field(default_factory=list)
    # Polled by nobody and wanted by nobody since a replica went away (it died or stopped
    # with its sockets): this replica retires them for it (with what was wanted of them).
    retire_elsewhere: dict[str, Wanted] = field(default_factory=dict)


class Coordinator(abc.ABC):
    """Decides what this process polls; paces requests when the budget is shared."""

    #: Whether the account budget is shared through this coordinator (`acquire`, `throttled`)
    #: rather than kept in the process.
    shared_budget: bool = False
    #: How often `reconcile` should run, seconds.
    period: float = 0.25

    @abc.abstractmethod
    async def reconcile(self, local: Mapping[str, Wanted], polled: frozenset[str]) -> Assignment:
        """Compare what is wanted with what this process polls; say what to start and stop."""

    async def set_explicit(self, contact: str, wanted: Wanted | None) -> None:
        """Record or drop an explicit track (only the shared coordinator stores it)."""
        return None

    async def acquire(self, budget: BudgetName, *, wait: bool) -> bool:
        """Take one request of the shared budget; with `wait`, sleep until one is free."""
        return True

    async def throttled(self, budget: BudgetName) -> float | None:
        """AWS throttled us: slow the shared rate. Returns the new rate when shared."""
        return None

    async def polled(self, contact: str) -> None:
        """Remember when `contact` was last polled, for a smooth hand-over."""
        return None

    async def ended(self, contact: str) -> None:
        """The contact left its queue: forget it everywhere."""
        return None

    async def close(self) -> None:
        """Hand everything over. Idempotent."""
        return None

    def shared_rate(self, budget: BudgetName = "metrics") -> float | None:
        """The shared rate of `budget` as last seen (None: not shared, or not used yet)."""
        return None

    def wanted_total(self) -> int | None:
        return None


class LocalCoordinator(Coordinator):
    """One process: poll exactly what this process wants."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def reconcile(self, local: Mapping[str, Wanted], polled: frozenset[str]) -> Assignment:
        gone = [c for c in polled if c not in local]
        assignment = Assignment(stop=gone, wanted=local, retire=list(gone))
        new = [c for c in local if c not in polled]
        if new:
            for contact, stored in zip(new, await self._bus.read_states(new), strict=True):
                assignment.start[contact] = Start(local[contact], stored, None)
        return assignment


# Token bucket plus AIMD, atomically, on Redis' clock (replicas' clocks may differ): the rules
# of server/connect/budget_rules.py, whose numbers come as ARGV. Throttling cuts the rate to
# ARGV[5] of itself (floor: ARGV[6] of the configured rate) and empties the bucket; the rate
# then climbs back linearly, from half the configured rate to all of it in ARGV[3] seconds.
_BUDGET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cfg = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local recovery = tonumber(ARGV[3])
local decrease = tonumber(ARGV[5])
local floor = tonumber(ARGV[6])
local h = redis.call('HMGET', KEYS[1], 'tokens', 'stamp', 'rate', 'rstamp')
local tokens = tonumber(h[1]) or burst
local stamp = tonumber(h[2]) or now
local rate = tonumber(h[3]) or cfg
local rstamp = tonumber(h[4]) or now
if rate < cfg then
  rate = math.min(cfg, rate + cfg * (1 - decrease) / recovery * math.max(0, now - rstamp))
end
if rate > cfg then rate = cfg end
rstamp = now
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
stamp = now
local granted = 0
local wait = 0
if ARGV[4] == 'throttle' then
  rate = math.max(cfg * floor, rate * decrease)
  tokens = 0
elseif tokens >= 1 then
  tokens = tokens - 1
  granted = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(stamp),
           'rate', tostring(rate), 'rstamp', tostring(rstamp))
redis.call('PEXPIRE', KEYS[1], 3600000)
return {granted, tostring(wait), tostring(rate)}
"""

# Keep a lease we hold, or claim it if nobody holds it (e.g. it lapsed during an outage).
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# Heartbeat on Redis' clock, so replicas' clock skew cannot make the living look dead; drop
# the dead; return the living.
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Shared with the queue figures' leader lease (server/connect/figures_lead.py).
RENEW_LEASE, RELEASE_LEASE = _RENEW, _RELEASE


class RedisCoordinator(Coordinator):
    """Leases, global interest and a shared budget in Redis (see the module docstring).

    Args:
        client: the injected `redis.asyncio.Redis` or `RedisCluster`.
        bus: for reading stored states of contacts this replica takes over.
        budgets: configured (requests/s, burst) per budget name.
        lease_ttl: seconds a lease lives unless renewed; a dead replica's contacts move
            within about one TTL plus one reconcile period.
        recovery: seconds for a throttled rate to climb from half back to configured.
        op_timeout: seconds any Redis round trip may take.
    """

    shared_budget = True

    def __init__(
        self,
        client: RedisClient,
        bus: Bus,
        *,
        budgets: Mapping[BudgetName, tuple[float, int]],
        lease_ttl: float = 5.0,
        recovery: float = RECOVERY_SECONDS,
        replica_id: str | None = None,
        op_timeout: float = 3.0,
    ) -> None:
        self.replica_id = replica_id or uuid.uuid4().hex[:12]
        self._client = client
        self._topology = topology_of(client, op_timeout)
        self._bus = bus
        self._budgets = dict(budgets)
        self._ttl_ms = int(lease_ttl * 1000)
        self.period = min(1.0, lease_ttl / 3)
        self._recovery = recovery
        self._op_timeout = op_timeout
        self._budget_script = client.register_script(_BUDGET)
        self._renew_script = client.register_script(_RENEW)
        self._release_script = client.register_script(_RELEASE)
        self._heartbeat_script = client.register_script(_HEARTBEAT)
        self._leases: set[str] = set()
        # What this replica's interest hash holds, as last written (None: not known).
        self._interest_written: dict[str, str] | None = None
        self._rates: dict[BudgetName, float] = {name: rps for name, (rps, _) in budgets.items()}
        self._wanted_total = 0
        self._closed = False
        # Contacts that were wanted at the last reconcile and are not now, with when they
        # vanished: retired here once nobody holds their lease (their holder may be dead).
        self._last_wanted: Mapping[str, Wanted] = {}
        self._vanished: dict[str, tuple[Wanted, float]] = {}
        self.orphan_grace = 2 * lease_ttl  # time for its sockets to reconnect elsewhere

    async def _call(self, command: Any) -> Any:
        return await redis_call(command, self._op_timeout)

    # -- interest and leases -------------------------------------------------------------

    async def reconcile(self, local: Mapping[str, Wanted], polled: frozenset[str]) -> Assignment:
        explicit_raw = await self._write_interest(local)
        # A replica whose heartbeat is older than one lease TTL is dead: by then its leases
        # have lapsed too, and its share is for the living to take.
        live_raw = await self._call(
            self._heartbeat_script(keys=[REPLICAS_KEY], args=[self.replica_id, self._ttl_ms])
        )
        live = [text(r) for r in live_raw] or [self.replica_id]

        reads = self._client.pipeline(transaction=False)
        for replica in live:
            reads.hgetall(interest_key(replica))
        interests = await self._call(reads.execute())
        wanted: dict[str, Wanted] = {}
        # Explicit tracks first: their instance wins over what a subscriber named.
        for raw_contact, raw_wanted in explicit_raw.items():
            decoded = Wanted.decode(raw_wanted)
            if decoded is not None:
                wanted[text(raw_contact)] = replace(decoded, explicit=True)
        for mapping in interests:
            for raw_contact, raw_wanted in mapping.items():
                decoded = Wanted.decode(raw_wanted)
                if decoded is not None:
                    wanted.setdefault(text(raw_contact), decoded)
        self._wanted_total = len(wanted)

        assignment = Assignment(wanted=wanted)
        await self._keep_leases(wanted, assignment)
        share = math.ceil(len(wanted) / len(live))
        if len(self._leases) < share:
            await self._claim(wanted, share - len(self._leases), assignment)
        # What the poller polls follows the leases exactly.
        assignment.stop.extend(
            c for c in polled if c not in self._leases and c not in assignment.stop
        )
        await self._orphans(wanted, assignment)
        return assignment

    async def _orphans(self, wanted: Mapping[str, Wanted], assignment: Assignment) -> None:
        """Contacts nobody wants any more whose poller is gone (a replica that died, or
        stopped: its sockets' contacts vanish from the interest of every replica). Their
        holder, had it lived, would have retired them (`_keep_leases`); after a grace for
        their sockets to reconnect elsewhere, with their lease free, one replica does
        (`SET NX` on a short retire key decides which)."""
        now = time.monotonic()
        for contact, last in self._last_wanted.items():
            if contact not in wanted and contact not in self._vanished:
                self._vanished[contact] = (last, now)
        self._last_wanted = wanted
        for contact in [c for c in self._vanished if c in wanted]:
            del self._vanished[contact]
        due = [
            c
            for c, (_, since) in self._vanished.items()
            if now - since >= self.orphan_grace and c not in assignment.retire
        ]
        if not due:
            return
        for contact in due:
            if now - self._vanished[contact][1] > self.orphan_grace + 3 * self._ttl_ms / 1000:
                del self._vanished[contact]  # its lease never freed: someone polls it
        due = [c for c in due if c in self._vanished]
        holders = await self._topology.mget([lease_key(c) for c in due])
        free = [c for c, holder in zip(due, holders, strict=True) if holder is None]
        if not free:
            return
        pipe = self._client.pipeline(transaction=False)
        for contact in free:
            pipe.set(retire_key(contact), self.replica_id, nx=True, px=60_000)
        taken = await self._call(pipe.execute())
        for contact, mine in zip(free, taken, strict=True):
            wanted_then, _ = self._vanished.pop(contact)
            if mine:
                assignment.retire_elsewhere[contact] = wanted_then

    async def _write_interest(self, local: Mapping[str, Wanted]) -> Any:
        """Bring this replica's interest hash in line with `local`, renew it, and read the
        explicit tracks; returns them (HGETALL).

        Only what changed since the last write goes (a socket toggling a subscription inside
        its linger changes nothing); the hash is written whole after a failure or when it is
        not what was last written (it expired, or Redis restarted empty). One transaction on
        its one key, so no reader sees it half written.
        """
        mine = interest_key(self.replica_id)
        encoded = {c: w.encode() for c, w in local.items()}
        written = self._interest_written
        self._interest_written = None  # unknown until this write is known to have landed
        pipe = self._client.pipeline(transaction=True)
        if written is None:
            pipe.delete(mine)
            if encoded:
                pipe.hset(mine, mapping={c: e for c, e in encoded.items()})
        else:
            changed = {c: e for c, e in encoded.items() if written.get(c) != e}
            gone = [c for c in written if c not in encoded]
            if changed:
                pipe.hset(mine, mapping={c: e for c, e in changed.items()})
            if gone:
                pipe.hdel(mine, *gone)
        pipe.pexpire(mine, self._ttl_ms)
        pipe.hlen(mine)
        if not self._topology.spans_slots:
            # Another slot: not in the same transaction. Reading it just after is as good,
            # since nothing ties the explicit tracks to this replica's interest.
            *_, size = await self._call(pipe.execute())
            explicit_raw = await self._call(self._client.hgetall(EXPLICIT_KEY))
        else:
            pipe.hgetall(EXPLICIT_KEY)
            *_, size, explicit_raw = await self._call(pipe.execute())
        if size != len(encoded):
            # The hash lost entries behind our back: write it whole, now.
            whole = self._client.pipeline(transaction=True)
            whole.delete(mine)
            if encoded:
                whole.hset(mine, mapping={c: e for c, e in encoded.items()})
                whole.pexpire(mine, self._ttl_ms)
            await self._call(whole.execute())
        self._interest_written = encoded
        return explicit_raw

    async def _keep_leases(self, wanted: Mapping[str, Wanted], assignment: Assignment) -> None:
        held = sorted(self._leases)
        if not held:
            return
        pipe = self._client.pipeline(transaction=False)
        for contact in held:
            if contact in wanted:
                await self._topology.add_script(
                    pipe, self._renew_script, lease_key(contact), self.replica_id, self._ttl_ms
                )
            else:
                await self._topology.add_script(
                    pipe, self._release_script, lease_key(contact), self.replica_id
                )
        results = await self._call(pipe.execute())
        for contact, kept in zip(held, results, strict=True):
            if contact not in wanted or not kept:
                self._leases.discard(contact)
                assignment.stop.append(contact)
                if contact not in wanted:
                    assignment.retire.append(contact)

    async def _claim(self, wanted: Mapping[str, Wanted], room: int, assignment: Assignment) -> None:
        # Each replica tries contacts in its own hash order, so replicas starting together
        # mostly try different contacts instead of racing for the same ones.
        candidates = sorted(
            (c for c in wanted if c not in self._leases),
            key=lambda c: hashlib.blake2s(f"{self.replica_id}:{c}".encode()).digest(),
        )
        if not candidates:
            return
        keys = [lease_key(c) for c in candidates]
        # A hint only (SET NX below decides), so on a cluster one MGET per slot is as good.
        holders = await self._topology.mget(keys)
        free = [c for c, holder in zip(candidates, holders, strict=True) if holder is None][:room]
        if not free:
            return
        pipe = self._client.pipeline(transaction=False)
        for contact in free:
            pipe.set(lease_key(contact), self.replica_id, nx=True, px=self._ttl_ms)
            pipe.get(polled_key(contact))
        results = await self._call(pipe.execute())
        claimed = [
            (contact, results[2 * i + 1]) for i, contact in enumerate(free) if results[2 * i]
        ]
        if not claimed:
            return
        states = await self._bus.read_states([c for c, _ in claimed])
        for (contact, last), stored in zip(claimed, states, strict=True):
            if stored is not None and stored.ended:
                await self.ended(contact)  # a tombstone: nobody polls it again
                continue
            self._leases.add(contact)
            last_polled = float(last) / 1000 if last is not None else None
            assignment.start[contact] = Start(wanted[contact], stored, last_polled)

    async def set_explicit(self, contact: str, wanted: Wanted | None) -> None:
        if wanted is None:
            await self._call(self._client.hdel(EXPLICIT_KEY, contact))
        else:
            await self._call(self._client.hset(EXPLICIT_KEY, contact, wanted.encode()))

    async def polled(self, contact: str) -> None:
        await self._call(self._client.set(polled_key(contact), int(time.time() * 1000), px=600_000))

    async def ended(self, contact: str) -> None:
        self._leases.discard(contact)
        pipe = self._client.pipeline(transaction=False)
        pipe.hdel(EXPLICIT_KEY, contact)
        await self._topology.add_script(
            pipe, self._release_script, lease_key(contact), self.replica_id
        )
        await self._call(pipe.execute())

    async def close(self) -> None:
        """Hand every lease over and leave the membership. Idempotent."""
        if self._closed:
            return
        self._closed = True
        pipe = self._client.pipeline(transaction=False)
        pipe.zrem(REPLICAS_KEY, self.replica_id)
        pipe.delete(interest_key(self.replica_id))
        for contact in self._leases:
            await self._topology.add_script(
                pipe, self._release_script, lease_key(contact), self.replica_id
            )
        self._leases.clear()
        await self._call(pipe.execute())

    # -- budget ----------------------------------------------------------------------------

    async def _budget(self, name: BudgetName, op: str) -> tuple[bool, float]:
        rps, burst = self._budgets[name]
        args: list[float | int | str] = [
            rps,
            usable_burst(burst),
            self._recovery,
            op,
            DECREASE,
            FLOOR_FRACTION,
        ]
        result = await self._call(self._budget_script(keys=[budget_key(name)], args=args))
        granted, wait, rate = int(result[0]), float(result[1]), float(result[2])
        self._rates[name] = rate
        return bool(granted), wait

    async def acquire(self, budget: BudgetName, *, wait: bool) -> bool:
        while True:
            granted, delay = await self._budget(budget, "take")
            if granted or not wait:
                return granted
            await asyncio.sleep(min(max(delay, 0.001), 1.0))

    async def throttled(self, budget: BudgetName) -> float | None:
        await self._budget(budget, "throttle")
        return self._rates[budget]

    def shared_rate(self, budget: BudgetName = "metrics") -> float | None:
        return self._rates.get(budget)

    def wanted_total(self) -> int | None:
        return self._wanted_total
