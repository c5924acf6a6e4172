"""The bus backend interface: pub/sub plus the latest-state store that publishes are tied to.

A backend only moves bytes. Fan-out to local subscribers, reference counting and reconnection
live once, in `server.bus.core.Bus`, not in each backend (as in encode/broadcaster).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass

# A contact's seq counter outlives its stored state by at least this long (seconds), so that a
# contact that comes back never reuses a seq a client has seen.
SEQ_KEPT_BEYOND_STATE = 86_400.0


class BusUnavailable(ConnectionError):
    """The backend cannot be reached; the operation may be retried later."""


@dataclass(frozen=True, slots=True)
class Message:
    channel: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Commit:
    """One new state of a contact, to be stored and published atomically (`Bus.commit`).

    The event goes to the contact's channel and, with a `queue`, to the queue's channel too;
    the queue's member set gains the contact, or loses it when `ended`.

    Attributes:
        head: the event encoded up to `"seq":` (see `server.events.encode_head`); the store
            appends the seq it assigns.
        ttl: seconds to keep the stored state.
        ended: the contact left its queue (an `ended` event, kept as a tombstone).
        floor: the highest seq the caller knows was published; the new seq exceeds it even
            when the store lost its counter.
    """

    contact: str
    queue: str | None
    head: bytes
    _: KW_ONLY
    ttl: float
    ended: bool
    floor: int = 0

    def message(self, seq: int) -> bytes:
        """The complete event as published with `seq` (seq is always its last member)."""
        return self.head + str(seq).encode() + b"}"


class BusBackend(abc.ABC):
    """Pub/sub transport and state store. Implementations: memory and Redis."""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open connections; raise `BusUnavailable` when the backend cannot be reached."""

    @abc.abstractmethod
    async def disconnect(self) -> None:
        """Close connections. Idempotent."""

    @abc.abstractmethod
    async def subscribe(self, channel: str) -> None:
        """Subscribe this process; returns once messages published afterwards will arrive."""

    @abc.abstractmethod
    async def unsubscribe(self, channel: str) -> None: ...

    @abc.abstractmethod
    async def publish(self, channel: str, data: bytes) -> None: ...

    @abc.abstractmethod
    async def next_published(self) -> Message:
        """Wait for the next message on a subscribed channel.

        Raises:
            BusUnavailable: the subscriber connection was lost or has gone deaf; the caller
                reconnects with `resubscribe`.
        """

    @abc.abstractmethod
    async def resubscribe(self, channels: Sequence[str]) -> None:
        """Reopen the subscriber connection and subscribe `channels` again."""

    @abc.abstractmethod
    async def commit(self, commit: Commit) -> bytes:
        """Atomically: next seq (above `commit.floor`), store the event with it as the
        contact's state, publish it (see `Commit`).

        Returns:
            The complete message as published.
        """

    @abc.abstractmethod
    async def commit_queue_figures(
        self, queue: str, head: bytes, *, ttl: float, floor: int = 0
    ) -> bytes:
        """Atomically: next figures seq of the queue (above `floor`), store head+seq as its
        figures, publish them on the queue's channel. Returns the message as published."""

    @abc.abstractmethod
    async def read_queue_figures(self, queues: Sequence[str]) -> list[bytes | None]:
        """The stored figures of each queue, `None` where none are stored."""

    @abc.abstractmethod
    async def read_states(self, contacts: Sequence[str]) -> list[bytes | None]:
        """The stored state of each contact, `None` where none is stored."""

    @abc.abstractmethod
    async def raise_floor(self, contact: str, floor: int) -> int:
        """Make seq rise above `floor`: what clients already hold, told by the gateways after
        an outage in which the store may have lost its counters.

        If the counter is below `floor`, it is raised; if a state is stored, it is stored and
        published again with seq `floor + 1`, so every client gets it. Returns the new seq,
        or 0 when the counter was already at or above `floor`.
        """

    @abc.abstractmethod
    async def queue_members(self, queue: str) -> list[str]:
        """Contacts currently waiting in `queue`, as far as the store knows: a membership
        lapses with the contact's stored state, and `leave_queue` or an end removes it."""

    @abc.abstractmethod
    async def leave_queue(self, queue: str, contact: str) -> None:
        """Drop `contact` from `queue`'s members without an end (nobody polls it any more)."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Round-trip to the store; raises `BusUnavailable` when it does not answer."""
