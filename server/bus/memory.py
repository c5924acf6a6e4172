"""An in-process backend: one process, no Redis, same semantics (used by `serve` and `demo`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from server.bus.base import SEQ_KEPT_BEYOND_STATE, BusBackend, Commit, Message
from server.bus.keys import contact_channel, queue_channel
from server.events import decode_event

PRUNE_EVERY = 10.0  # seconds between two sweeps of what has lapsed


class MemoryBackend(BusBackend):
    """Keeps states, seqs and subscriptions in dicts; delivery through one bounded queue.

    Like Redis keys, everything lapses: states and figures at their TTL, a queue membership
    with its contact's state, a seq a day after its state. A sweep every `PRUNE_EVERY`
    seconds forgets what has lapsed, so a process running for months holds only what is live.
    """

    def __init__(self, max_pending: int = 10_000) -> None:
        self._queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=max_pending)
        self._channels: set[str] = set()
        self._seqs: dict[str, int] = {}
        self._seqs_until: dict[str, float] = {}
        self._states: dict[str, tuple[bytes, float]] = {}
        self._queues: dict[str, dict[str, float]] = {}  # queue -> contact -> membership lapses
        self._pruned_at = time.monotonic()
        self._figures_seqs: dict[str, int] = {}
        self._figures: dict[str, tuple[bytes, float]] = {}

    async def connect(self) -> None:
        return None

    async def disconnect(self) -> None:
        self._channels.clear()

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    async def resubscribe(self, channels: Sequence[str]) -> None:
        self._channels = set(channels)

    async def publish(self, channel: str, data: bytes) -> None:
        if channel in self._channels:
            # A bounded queue: a publisher outrunning the reader waits instead of growing memory.
            await self._queue.put(Message(channel, data))

    async def next_published(self) -> Message:
        return await self._queue.get()

    async def commit(self, commit: Commit) -> bytes:
        contact, queue, ttl = commit.contact, commit.queue, commit.ttl
        now = time.monotonic()
        self._prune(now)
        seq = max(self._seqs.get(contact, 0), commit.floor) + 1
        self._seqs[contact] = seq
        self._seqs_until[contact] = now + ttl + SEQ_KEPT_BEYOND_STATE
        data = commit.message(seq)
        self._states[contact] = (data, now + ttl)
        if queue is not None:
            members = self._queues.setdefault(queue, {})
            if commit.ended:
                members.pop(contact, None)
            else:
                members[contact] = now + ttl
        await self.publish(contact_channel(contact), data)
        if queue is not None:
            await self.publish(queue_channel(queue), data)
        return data

    async def commit_queue_figures(
        self, queue: str, head: bytes, *, ttl: float, floor: int = 0
    ) -> bytes:
        seq = max(self._figures_seqs.get(queue, 0), floor) + 1
        self._figures_seqs[queue] = seq
        data = head + str(seq).encode() + b"}"
        self._figures[queue] = (data, time.monotonic() + ttl)
        await self.publish(queue_channel(queue), data)
        return data

    async def read_queue_figures(self, queues: Sequence[str]) -> list[bytes | None]:
        return _unexpired(self._figures, queues)

    async def read_states(self, contacts: Sequence[str]) -> list[bytes | None]:
        return _unexpired(self._states, contacts)

    async def raise_floor(self, contact: str, floor: int) -> int:
        if self._seqs.get(contact, 0) >= floor:
            return 0
        seq = floor
        [stored] = await self.read_states([contact])
        if stored is not None:
            seq = floor + 1
            head = stored[: stored.rindex(b":") + 1]
            data = head + str(seq).encode() + b"}"
            self._states[contact] = (data, self._states[contact][1])
            await self.publish(contact_channel(contact), data)
            queue = decode_event(data).queue
            if queue is not None:
                await self.publish(queue_channel(queue), data)
        self._seqs[contact] = seq
        self._seqs_until.setdefault(contact, time.monotonic() + SEQ_KEPT_BEYOND_STATE)
        return seq

    async def queue_members(self, queue: str) -> list[str]:
        now = time.monotonic()
        self._prune(now)
        members = self._queues.get(queue, {})
        return sorted(contact for contact, until in members.items() if until > now)

    async def leave_queue(self, queue: str, contact: str) -> None:
        members = self._queues.get(queue)
        if members is not None:
            members.pop(contact, None)
            if not members:
                del self._queues[queue]

    def _prune(self, now: float) -> None:
        if now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        for stored in (self._states, self._figures):
            for key in [k for k, (_, until) in stored.items() if until <= now]:
                del stored[key]
        for contact in [c for c, until in self._seqs_until.items() if until <= now]:
            del self._seqs_until[contact]
            self._seqs.pop(contact, None)
        for queue, members in list(self._queues.items()):
            for contact in [c for c, until in members.items() if until <= now]:
                del members[contact]
            if not members:
                del self._queues[queue]

    def held(self) -> dict[str, int]:
        """How much is held, for tests: states, seqs, queues and their memberships."""
        return {
            "states": len(self._states),
            "seqs": len(self._seqs),
            "queues": len(self._queues),
            "members": sum(len(m) for m in self._queues.values()),
        }

    async def ping(self) -> None:
        return None


def _unexpired(stored: dict[str, tuple[bytes, float]], keys: Sequence[str]) -> list[bytes | None]:
    """What `stored` holds for `keys`, dropping entries whose time is up."""
    now = time.monotonic()
    out: list[bytes | None] = []
    for key in keys:
        entry = stored.get(key)
        if entry is not None and entry[1] <= now:
            del stored[key]
            entry = None
        out.append(None if entry is None else entry[0])
    return out
