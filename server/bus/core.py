"""The bus core: local fan-out, reference-counted subscriptions and reconnection, done once.

Every event reaches this process through the backend's subscription (even events this process
committed), is decoded once, and is handed to each local listener with the same text
(`Channel`, server/bus/channel.py), so nothing downstream decodes again. The bus delivers
events and nothing else: framing them and writing them to sockets is the browser side's
(server/browser/fanout.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from server import metrics
from server._lifecycle import AsyncCloseable, cancel_and_wait
from server.backoff import Backoff
from server.bus.base import BusBackend, BusUnavailable, Commit, Message
from server.bus.channel import Channel, Delivery, Listener
from server.bus.read_batch import ReadBatcher
from server.events import (
    ContactEvent,
    EventDecodeError,
    QueueFiguresEvent,
    decode_event,
    decode_message,
)

log = logging.getLogger("queuecast.bus")


ReconnectHook = Callable[[], Awaitable[None]]
DisconnectHook = Callable[[], None]


class Bus(AsyncCloseable):
    """Async context manager over a `BusBackend`.

    Args:
        backend: the transport and store.
        reconnect_base: first reconnect delay ceiling, seconds (then doubling, full jitter).
        reconnect_cap: largest reconnect delay ceiling, seconds.
    """

    def __init__(
        self,
        backend: BusBackend,
        *,
        reconnect_base: float = 0.1,
        reconnect_cap: float = 5.0,
    ) -> None:
        self.backend = backend
        self._channels: dict[str, Channel] = {}
        self._subscribed: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._lock_users: dict[str, int] = {}  # holders and waiters of each channel's lock
        self._reader: asyncio.Task[None] | None = None
        self._backoff = Backoff(reconnect_base, reconnect_cap)
        self._reconnect_hooks: list[ReconnectHook] = []
        self._disconnect_hooks: list[DisconnectHook] = []
        self._connected = False
        self._closed = False
        self.last_error: str | None = None
        self._reads: ReadBatcher[ContactEvent | None] = ReadBatcher(self._read_decoded)

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Bus:
        try:
            await self.backend.connect()
        except BusUnavailable as exc:
            # Start anyway: the reader keeps reconnecting and /readyz says why meanwhile.
            self._mark_down(str(exc))
        else:
            self._connected = True
            metrics.BUS_CONNECTED.set(1)
        self._reader = asyncio.create_task(self._read_loop(), name="bus-reader")
        return self

    async def close(self) -> None:
        """Stop the reader and close the backend. Idempotent."""
        if self._closed:
            return
        self._closed = True
        reader, self._reader = self._reader, None
        await cancel_and_wait(reader)
        await self._reads.close()
        self._connected = False
        metrics.BUS_CONNECTED.set(0)
        await self.backend.disconnect()

    @property
    def connected(self) -> bool:
        """Whether the subscriber connection is up and listening."""
        return self._connected and self._reader is not None and not self._reader.done()

    def on_disconnect(self, hook: DisconnectHook) -> None:
        """Call `hook` (synchronously, in the reader) each time the connection is lost."""
        self._disconnect_hooks.append(hook)

    def on_reconnect(self, hook: ReconnectHook) -> None:
        """Run `hook` after every reconnection, once all channels are subscribed again."""
        self._reconnect_hooks.append(hook)

    # -- subscriptions ---------------------------------------------------------------------

    @property
    def channels(self) -> Sequence[str]:
        return tuple(self._subscribed)

    def is_listening(self, channel: str, listener: Listener) -> bool:
        found = self._channels.get(channel)
        return found is not None and listener in found

    def listener_count(self, channel: str) -> int:
        found = self._channels.get(channel)
        return 0 if found is None else len(found)

    async def subscribe(self, channel: str, listener: Listener) -> None:
        """Add a local listener; the first one for a channel subscribes the process.

        Returns once events published from now on will reach the listener.

        Raises:
            BusUnavailable: the backend could not subscribe; nothing is left registered.
        """
        async with self._channel_lock(channel):
            if channel not in self._subscribed:
                await self.backend.subscribe(channel)
                self._subscribed.add(channel)
            found = self._channels.get(channel)
            if found is None:
                found = self._channels[channel] = Channel(channel)
            found.add(listener)

    async def unsubscribe(self, channel: str, listener: Listener) -> None:
        """Remove a local listener; the last one unsubscribes the process."""
        async with self._channel_lock(channel):
            found = self._channels.get(channel)
            if found is None:
                return
            found.forget(listener)
            if found:
                return
            del self._channels[channel]
            if channel in self._subscribed:
                self._subscribed.discard(channel)
                # On failure the next reconnect subscribes only what is still wanted.
                with contextlib.suppress(BusUnavailable):
                    await self.backend.unsubscribe(channel)

    @contextlib.asynccontextmanager
    async def _channel_lock(self, channel: str) -> AsyncIterator[None]:
        """Serialise the (un)subscriptions of one channel.

        The lock is dropped only when nobody holds or awaits it: a lock dropped while a task
        still waits on it would let the next caller take a fresh one and run concurrently.
        """
        lock = self._locks.setdefault(channel, asyncio.Lock())
        self._lock_users[channel] = self._lock_users.get(channel, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._lock_users[channel] -= 1
            if not self._lock_users[channel]:
                del self._lock_users[channel]
                del self._locks[channel]

    # -- reading ---------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        if not self._connected:
            await self._reconnect()
        while True:
            try:
                message = await self.backend.next_published()
            except BusUnavailable as exc:
                self._mark_down(str(exc))
                await self._reconnect()
                continue
            self._dispatch(message)

    def _dispatch(self, message: Message) -> None:
        found = self._channels.get(message.channel)
        if not found:
            return
        try:
            text = message.data.decode()
            event = decode_message(text)
        except (UnicodeDecodeError, EventDecodeError) as exc:
            metrics.BUS_MALFORMED.inc()
            log.warning(
                "dropped a malformed bus message",
                extra={"channel": message.channel, "error": str(exc)},
            )
            return
        found.fan_out(Delivery(message.channel, event, text))

    def _mark_down(self, reason: str) -> None:
        was_connected, self._connected = self._connected, False
        self.last_error = reason
        metrics.BUS_CONNECTED.set(0)
        if not was_connected:
            return
        log.warning("bus connection lost", extra={"error": reason})
        for hook in self._disconnect_hooks:
            try:
                hook()
            except Exception:
                log.exception("disconnect hook failed")

    async def _reconnect(self) -> None:
        while True:
            await asyncio.sleep(self._backoff.next_delay())
            metrics.BUS_RECONNECTS.inc()
            wanted = sorted(self._channels)
            try:
                await self.backend.resubscribe(wanted)
            except BusUnavailable as exc:
                self.last_error = str(exc)
                continue
            break
        self._subscribed = set(wanted)
        self._backoff.reset()
        self._connected = True
        self.last_error = None
        metrics.BUS_CONNECTED.set(1)
        log.info("bus reconnected", extra={"channels": len(wanted)})
        for hook in self._reconnect_hooks:
            try:
                await hook()
            except BusUnavailable as exc:
                log.warning("resync after reconnect failed", extra={"error": str(exc)})
            except Exception:
                log.exception("reconnect hook failed")

    # -- store -----------------------------------------------------------------------------

    async def commit(self, commit: Commit) -> bytes:
        """Store and publish a contact's new state (see `Commit`); returns the message."""
        data = await self.backend.commit(commit)
        metrics.EVENTS_PUBLISHED.inc()
        return data

    async def read_states(self, contacts: Sequence[str]) -> list[ContactEvent | None]:
        """Stored states, decoded; a malformed stored state reads as `None`.

        A read of one contact (a socket's snapshot after its SUBSCRIBE: thousands at once when
        sockets arrive in a burst) shares one MGET with the other single reads of the moment
        (`ReadBatcher`), and the decoded event with the other readers of its contact. A read of
        many (a queue's members, a resync) is one MGET already and goes straight through: no
        extra loop turn, no split into batches, nothing to gain from sharing.
        """
        if len(contacts) == 1:
            return [await self._reads.read(contacts[0])]
        return await self._read_decoded(contacts)

    async def _read_decoded(self, contacts: Sequence[str]) -> list[ContactEvent | None]:
        out: list[ContactEvent | None] = []
        for raw in await self.backend.read_states(contacts):
            try:
                out.append(None if raw is None else decode_event(raw))
            except EventDecodeError:
                metrics.BUS_MALFORMED.inc()
                out.append(None)
        return out

    async def queue_members(self, queue: str) -> list[str]:
        return await self.backend.queue_members(queue)

    async def leave_queue(self, queue: str, contact: str) -> None:
        """See `BusBackend.leave_queue`."""
        await self.backend.leave_queue(queue, contact)

    async def commit_queue_figures(
        self, queue: str, head: bytes, *, ttl: float, floor: int = 0
    ) -> bytes:
        """Store and publish a queue's figures (see `BusBackend.commit_queue_figures`)."""
        data = await self.backend.commit_queue_figures(queue, head, ttl=ttl, floor=floor)
        metrics.EVENTS_PUBLISHED.inc()
        return data

    async def read_queue_figures(self, queues: Sequence[str]) -> list[QueueFiguresEvent | None]:
        """Stored figures, decoded; malformed ones read as `None`."""
        out: list[QueueFiguresEvent | None] = []
        for raw in await self.backend.read_queue_figures(queues):
            figures = None
            if raw is not None:
                try:
                    decoded = decode_message(raw)
                except EventDecodeError:
                    decoded = None
                if isinstance(decoded, QueueFiguresEvent):
                    figures = decoded
                else:
                    metrics.BUS_MALFORMED.inc()
            out.append(figures)
        return out

    async def raise_floor(self, contact: str, floor: int) -> int:
        """Make the contact's next seq exceed `floor` (see `BusBackend.raise_floor`)."""
        return await self.backend.raise_floor(contact, floor)

    async def ping(self) -> None:
        await self.backend.ping()


__all__ = ["Bus", "BusUnavailable", "Delivery", "Listener"]
