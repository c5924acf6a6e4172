"""One WebSocket client of the gateway: the adapter between its socket and its rules.

`ClientSession` does a socket's I/O: its receive loop (the one task per socket besides the
connection's own), its send loop (run in the connection's task), and the bus and fan-out calls
of its subscriptions. What each thing that happens means is decided without I/O elsewhere, and
the session does what it is told:

- delivery by `DeliveryState` (server/browser/delivery.py), whose commands (write, wake,
  attach, detach) `_run` performs;
- access by `SessionAccess` (server/browser/session_access.py), an object the session holds,
  whose deadlines (authenticate, token expiry, re-authenticate) are loop timers, not tasks.

A session is the bus `Listener` of the channels it subscribes to, through the gateway's
`SocketFanout` (server/browser/fanout.py), which also writes a streaming socket's updates
itself. Until the socket has authenticated (and while its token is expired) it gets no event.
What a session needs of its gateway is `SessionContext`; it never imports the gateway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from starlette.types import Message, Scope

from server import metrics
from server.access.instances import InstanceRefused
from server.access.policy import LIMIT_HITS
from server.access.tokens import Grant
from server.browser._waitable import Flag
from server.browser.config import GatewayConfig
from server.browser.delivery import Attach, Command, DeliveryState, Detach, Wake
from server.browser.fanout import SocketFanout
from server.browser.limits import Admission, MessageRate, PollQuota, QuotaKey, client_key
from server.browser.outbox import OutboxFull
from server.browser.protocol import (
    CLOSE_FRAME_TOO_BIG,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN_LATER,
    PONG,
    Auth,
    ClientMessage,
    Ping,
    ProtocolError,
    Unsubscribe,
    error_frame,
    parse_client_message,
)
from server.browser.session_access import SessionAccess
from server.browser.ws_protocol import FRAME_WRITER, FrameWriter, Sink
from server.bus import Bus, BusUnavailable, Delivery, contact_channel, queue_channel
from server.events import ContactEvent, QueueFiguresEvent, as_snapshot, waiting_in

_NOTHING: frozenset[str] = frozenset()
# The `limit` label of a refusal by the poll quota, by the kind of key that was full.
QUOTA_LIMITS = {
    "token": "polled_per_token",
    "address": "polled_per_ip",
    "anonymous": "polled_anonymous",
}


class Watchers(Protocol):
    """The poller, as a session sees it."""

    def watch(self, instance: str, contact: str, stored: ContactEvent | None) -> bool:
        """A socket wants this contact; False if it has ended (nothing to poll)."""

    def unwatch(self, contact: str) -> None: ...

    def tracked_explicitly(self, contact: str) -> bool:
        """Whether the backend tracks it: then a subscription adds no poll (no quota)."""


class ClientSocket(Protocol):
    """What a session uses of Starlette's `WebSocket`."""

    @property
    def scope(self) -> Scope: ...

    async def receive(self) -> Message: ...

    async def send_text(self, data: str) -> None: ...


@dataclass(frozen=True, slots=True)
class SessionContext:
    """What sessions need of their gateway: one per gateway, shared by all of them."""

    config: GatewayConfig
    bus: Bus  # the stored states
    fanout: SocketFanout  # subscriptions and the write-through
    watchers: Watchers
    quota: PollQuota  # how many contacts each client may make the service poll


class ClientSession:
    """One WebSocket client: its delivery state, its access, its receive and send loops."""

    # Thousands per process: slots keep each one small.
    __slots__ = (
        "_access",
        "_context",
        "_counted",
        "_rate",
        "_sink",
        "_wake",
        "_watching",
        "_writer",
        "_ws",
        "state",
    )

    def __init__(self, context: SessionContext, websocket: ClientSocket) -> None:
        self._context = context
        self._ws = websocket
        config = context.config
        self._access = SessionAccess(config)
        self._rate = MessageRate(
            config.max_messages_per_second,
            config.rate_limit_strikes,
            asyncio.get_running_loop().time(),
        )
        extensions = websocket.scope.get("extensions") or {}
        self._writer: FrameWriter | None = extensions.get(FRAME_WRITER)
        self.state = DeliveryState(
            frame_writer=self._writer is not None, authorized=self._access.admits_events
        )
        # The socket's sink, lent by its protocol while the fan-out may write to it.
        self._sink: Sink | None = None
        self._watching: AbstractSet[str] = _NOTHING  # contacts this socket asked the poller for
        # Of those, the ones counted against the poll quota, with the keys they count under.
        self._counted: dict[str, tuple[QuotaKey, ...]] | None = None
        self._wake = Flag()

    @property
    def queues(self) -> AbstractSet[str]:
        return self.state.queues

    @property
    def close_code(self) -> int | None:
        """The close code the socket is to be closed with, once one was asked for."""
        return self.state.close_code

    @property
    def close_reason(self) -> str:
        return self.state.close_reason

    @property
    def grant(self) -> Grant | None:
        return self._access.grant

    # -- what the delivery state says to do ------------------------------------------------

    def _run(self, command: Command | None) -> None:
        if command is None:
            return
        if isinstance(command, Wake):
            for contact in command.detach:
                self._detach(contact)
            if command.coalesced:
                metrics.OUTBOX_COALESCED.inc()
            self._wake.set()
        elif isinstance(command, Attach):
            self._attach(command)
        elif isinstance(command, Detach):
            for contact in command.contacts:
                self._detach(contact)

    def _write(self, event: ContactEvent, text: str) -> None:
        """Write the frame of an event `DeliveryState.offer` returned, if the socket takes it."""
        writer = self._writer
        fanout = self._context.fanout
        if writer is not None and writer.write_frame(fanout.frames.frame(text)):
            # Nothing was waiting and the socket took it: no task step, no re-framing.
            fanout.count_written()
            command = self.state.written(event)
        else:
            command = self.state.refused(event, text)
        if command is not None:
            self._run(command)

    def _attach(self, attach: Attach) -> None:
        if self._sink is None:
            if self._writer is None:
                return
            self._sink = self._writer.frame_sink(self._sink_lost)
            if self._sink is None:
                return
        # A token that runs out is stopped by its timer, which detaches; an update fanned
        # out in the same loop turn may still go (the token's leeway covers it).
        fanout, sink, state = self._context.fanout, self._sink, self.state
        for contact, holds in attach.holds:
            if fanout.attach(
                contact_channel(contact), self, holds, sink, partial(state.detached, contact)
            ):
                state.attached(contact)

    def _detach(self, contact: str) -> None:
        latest = self._context.fanout.detach(contact_channel(contact), self)
        self.state.detached(contact, latest)

    def _sink_lost(self) -> None:
        # The socket stopped taking frames directly (full buffer, a client message, a close).
        self._sink = None
        self._run(self.state.sink_lost())

    # -- the bus, through the fan-out ------------------------------------------------------

    def deliver(self, delivery: Delivery) -> None:
        event = delivery.event
        if isinstance(event, QueueFiguresEvent):
            self.offer_figures(event, delivery.text)
        else:
            self.offer(event, delivery.text, direct=True)

    def offer(
        self, event: ContactEvent, text: str, *, refresh: bool = False, direct: bool = False
    ) -> None:
        """An event for this client (`DeliveryState.offer`), unless its token ran out."""
        access = self._access
        if access.expires_at is not None and access.lapsed(self):
            return
        if not self._shows_instance(event.instance, event.contact):
            return
        result = self.state.offer(event, text, refresh=refresh, direct=direct)
        if result is None:
            return
        if isinstance(result, ContactEvent):  # to be written now
            self._write(result, text if result is event else result.encode().decode())
        else:
            self._run(result)

    def offer_figures(self, event: QueueFiguresEvent, text: str) -> None:
        """A queue's figures for this client (`DeliveryState.offer_figures`)."""
        if self._access.lapsed(self) or not self._shows_instance(event.instance, None):
            return
        self._run(self.state.offer_figures(event, text))

    def _shows_instance(self, instance: str, contact: str | None) -> bool:
        """A `queues` token that names its instance sees that instance's contacts and
        figures only (a contact subscription's instance was checked when it was made)."""
        grant = self._access.grant
        if grant is None or grant.instance is None or contact in self.state.contacts:
            return True
        return self._context.config.access.instances.allows_event_instance(grant, instance)

    def mark_stale(self) -> None:
        """The bus is down: show every state this client holds as stale."""
        self._run(self.state.bus_lost())

    def take_back_writers(self) -> None:
        """Make the fan-out hand back what it wrote to this socket (before `known_seqs`)."""
        self._run(self.state.take_back())

    def known_seqs(self) -> dict[str, int]:
        """The highest seq this client holds per contact (or asked to resume from); what the
        fan-out wrote counts once `take_back_writers` has run."""
        return self.state.known_seqs()

    # -- what the access asks of the session (`AccessOwner`) -------------------------------

    async def start(self, bearer: str | None) -> None:
        """Authenticate with the handshake's token, or give the client `auth_timeout`."""
        await self._access.start(bearer, self)

    def cancel_deadline(self) -> None:
        self._access.cancel_deadline()

    def send_error(self, code: str, message: str, contact: str | None = None) -> None:
        metrics.CLIENT_ERRORS.labels(code).inc()
        self.send_control(error_frame(code, message, contact))

    def send_control(self, frame: str) -> None:
        try:
            command = self.state.queue_control(frame)
        except OutboxFull:
            self.request_close(CLOSE_POLICY, "too many unread replies")
            return
        self._run(command)

    def request_close(self, code: int, reason: str) -> None:
        self._run(self.state.close_requested(code, reason))

    def token_expired(self) -> None:
        self._run(self.state.suspend())

    async def granted(self, grant: Grant, resuming: bool) -> None:
        self.state.authorize()
        await self._drop_outside(grant)
        if resuming:
            await self._resend_snapshots()

    async def _drop_outside(self, grant: Grant) -> None:
        """A new token may allow less than the last one: release what it does not cover."""
        state = self.state
        contacts = [c for c, i in state.contacts.items() if not grant.allows_contact(c, i)]
        queues = [q for q in state.queues if not grant.allows_queue(q)]
        for contact in contacts:
            await self._release_contact(contact)
        for queue in queues:
            await self._release_queue(queue)
        if contacts or queues:
            self.send_error("forbidden", "subscriptions the new token does not allow were ended")

    async def _resend_snapshots(self) -> None:
        """After a re-auth: the current state of everything subscribed, as snapshots."""
        state, bus = self.state, self._context.bus
        contacts = state.resumable()
        try:
            state.forget_seqs(contacts)
            states = [s for s in await bus.read_states(contacts) if s is not None]
            for queue in tuple(state.queues):
                members = [m for m in await bus.queue_members(queue) if m not in state.contacts]
                state.forget_seqs(members)
                states.extend(waiting_in(queue, await bus.read_states(members)))
        except BusUnavailable:
            self.send_error("unavailable", "the event bus is unreachable; resubscribe")
            return
        for stored in states:
            shown = as_snapshot(stored)
            self.offer(shown, shown.encode().decode())

    # -- loops -----------------------------------------------------------------------------

    async def receive_loop(self) -> None:
        # No more locals than needed: this frame is suspended for the socket's lifetime.
        config = self._context.config
        while self.state.close_code is None:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                if message.get("code") == CLOSE_FRAME_TOO_BIG:
                    LIMIT_HITS.labels("frame_size").inc()
                return
            admission = self._rate.admit(asyncio.get_running_loop().time())
            if admission is not Admission.ADMIT:
                LIMIT_HITS.labels("message_rate").inc()
                if admission is Admission.CLOSE:
                    LIMIT_HITS.labels("message_rate_close").inc()
                    self.send_error("rate_limited", "too many messages; closing")
                    self.request_close(CLOSE_POLICY, "rate limit")
                    return
                if admission is Admission.DROP_AND_TELL:
                    self.send_error(
                        "rate_limited",
                        f"at most {config.max_messages_per_second:g} messages per second; "
                        "messages over it are dropped",
                    )
                continue
            text = message.get("text")
            try:
                if text is None:
                    raise ProtocolError("bad_message", "send JSON text frames, not binary")
                request = parse_client_message(text)
            except ProtocolError as exc:
                self.send_error(exc.code, exc.message, exc.contact)
                continue
            self._run(self.state.request_started())
            try:
                await self._handle(request)
            finally:
                self._run(self.state.request_finished())

    def receive_ended(self, _task: asyncio.Task[None]) -> None:
        """Done-callback of the receive loop's task: the send loop stops at its next turn."""
        self._run(self.state.receive_ended())

    async def send_loop(self) -> None:
        send_timeout = self._context.config.send_timeout
        # No more locals than needed: this frame is suspended for the socket's lifetime.
        state, loop = self.state, asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not state.receiving:
                return
            if state.has_finished:
                await self._release_finished(state.take_finished())
            try:
                # One timeout moved per frame: `wait_for` would make a task per frame, which
                # was 40% of the gateway's CPU at 10,000 frames/s (docs/benchmarks.md).
                async with asyncio.timeout(None) as deadline:
                    while (frame := state.next_frame()) is not None:
                        deadline.reschedule(loop.time() + send_timeout)
                        await self._ws.send_text(frame)
                        state.frame_sent()
                        metrics.FRAMES_SENT.inc()
            except TimeoutError:
                self.request_close(CLOSE_TRY_AGAIN_LATER, "client too slow to read")
                return
            finally:
                state.frame_sent()
            if state.close_code is not None:
                return
            self._run(state.try_stream())

    # -- requests --------------------------------------------------------------------------

    async def _handle(self, request: ClientMessage) -> None:
        access = self._access
        grant = access.grant
        if isinstance(request, Ping):
            self.send_control(PONG)
        elif isinstance(request, Auth):
            await access.authenticate(request.token, self)
        elif grant is None:
            LIMIT_HITS.labels("unauthenticated").inc()
            self.send_error("unauthorized", 'authenticate first: {"op":"auth","token":...}')
            self.request_close(CLOSE_POLICY, "unauthorized")
        elif isinstance(request, Unsubscribe):
            if request.contact is not None:
                await self._release_contact(request.contact)
            elif request.queue is not None:
                await self._release_queue(request.queue)
        elif access.expired:
            self.send_error("token_expired", "the token expired; send a new one with op auth")
        elif request.contact is not None:
            if not grant.allows_contact(request.contact, None):
                access.forbidden(self)
                return
            instances = self._context.config.access.instances
            if not instances.entries:  # no allowlist (an app built without settings)
                instance = request.instance or grant.instance
            else:
                try:
                    instance = instances.for_subscription(grant, request.instance)
                except InstanceRefused as refused:
                    if refused.code == "forbidden":
                        access.forbidden(self)
                    else:
                        self.send_error(refused.code, refused.message, request.contact)
                    return
            await self._subscribe_contact(request.contact, instance, request.since)
        elif request.queue is not None:
            if not grant.allows_queue(request.queue):
                access.forbidden(self)
                return
            if self._context.config.access.instances.lacks_claim(grant):
                self.send_error(
                    "bad_instance", "this service serves several instances: the token must name one"
                )
                return
            await self._subscribe_queue(request.queue)

    def _room_for_one_more(self) -> bool:
        if self.state.subscriptions >= self._context.config.max_subscriptions:
            self.send_error("too_many_subscriptions", "unsubscribe from something first")
            return False
        return True

    async def _subscribe_contact(self, contact: str, instance: str | None, since: int) -> None:
        state = self.state
        if contact in state.contacts:
            return  # already subscribed; a second subscribe changes nothing
        instance = instance or self._context.config.default_instance
        if instance is None:
            self.send_error("bad_instance", "name the `instance` of the contact", contact)
            return
        if not self._room_for_one_more() or not self._within_quota(contact):
            return
        state.add_contact(contact, instance, since)
        bus = self._context.bus
        try:
            # Subscribe first, then read the stored state: an event committed in between
            # arrives both ways, and the seq check keeps only the newer.
            await self._context.fanout.subscribe(contact_channel(contact), self)
            [stored] = await bus.read_states([contact])
        except BusUnavailable:
            await self._release_contact(contact)
            self.send_error("unavailable", "the event bus is unreachable; retry", contact)
            return
        metrics.SUBSCRIPTIONS.inc()
        if stored is not None:
            shown = as_snapshot(stored)
            self.offer(shown, shown.encode().decode())
            if stored.ended:
                self._uncount(contact)
                return  # a tombstone: tell the client, never poll it again
        if self._context.watchers.watch(instance, contact, stored):
            self._watching = self._watching | {contact}
        else:
            self._uncount(contact)

    def _quota_keys(self) -> tuple[QuotaKey, ...]:
        grant = self._access.grant
        if grant is not None and grant.scope == "service" and grant.token_id is not None:
            return ()  # a backend's token: it could track contacts explicitly anyway
        client = self._ws.scope.get("client")
        address: QuotaKey = ("address", client_key(client[0] if client else "unknown"))
        if grant is None or grant.token_id is None:
            return (("anonymous", ""), address)
        return (("token", grant.token_id), address)

    def _within_quota(self, contact: str) -> bool:
        """Count a contact this subscription would make the service poll; False (and the
        client told) when one of its keys has no room left."""
        if self._context.watchers.tracked_explicitly(contact):
            return True  # polled anyway, and first
        keys = self._quota_keys()
        if not keys:
            return True
        full = self._context.quota.try_take(keys, contact)
        if full is not None:
            LIMIT_HITS.labels(QUOTA_LIMITS[full[0]]).inc()
            self.send_error(
                "too_many_contacts",
                "this client already has as many contacts polled as it may; unsubscribe first",
                contact,
            )
            return False
        if self._counted is None:
            self._counted = {}
        self._counted[contact] = keys
        return True

    def _uncount(self, contact: str) -> None:
        if self._counted is not None and (keys := self._counted.pop(contact, None)):
            self._context.quota.release(keys, contact)

    async def _subscribe_queue(self, queue: str) -> None:
        # A queue has no seq of its own (a `since` is ignored); each contact's is checked.
        state = self.state
        if queue in state.queues:
            return
        if not self._room_for_one_more():
            return
        state.add_queue(queue)
        bus = self._context.bus
        try:
            await self._context.fanout.subscribe(queue_channel(queue), self)
            members = await bus.queue_members(queue)
            states = await bus.read_states(members)
        except BusUnavailable:
            await self._release_queue(queue)
            self.send_error("unavailable", "the event bus is unreachable; retry")
            return
        metrics.SUBSCRIPTIONS.inc()
        for stored in waiting_in(queue, states):
            shown = as_snapshot(stored)
            self.offer(shown, shown.encode().decode())
        try:
            [figures] = await bus.read_queue_figures([queue])
        except BusUnavailable:
            figures = None  # the next ones come with the next read of the queue
        if figures is not None:
            self.offer_figures(figures, figures.encode().decode())

    async def _release_contact(self, contact: str) -> None:
        if contact not in self.state.contacts:
            return
        self._run(self.state.release_contact(contact))
        metrics.SUBSCRIPTIONS.dec()
        self._unwatch(contact)
        await self._context.fanout.unsubscribe(contact_channel(contact), self)

    async def _release_queue(self, queue: str) -> None:
        if queue not in self.state.queues:
            return
        self.state.release_queue(queue)
        metrics.SUBSCRIPTIONS.dec()
        await self._context.fanout.unsubscribe(queue_channel(queue), self)

    async def _release_finished(self, finished: AbstractSet[str]) -> None:
        for contact in finished:
            # The `ended` frame stays queued: only the subscription goes.
            self._run(self.state.end_contact(contact))
            metrics.SUBSCRIPTIONS.dec()
            self._unwatch(contact)
            await self._context.fanout.unsubscribe(contact_channel(contact), self)

    def _unwatch(self, contact: str) -> None:
        self._uncount(contact)
        if contact in self._watching:
            self._watching = self._watching - {contact}
            self._context.watchers.unwatch(contact)

    async def release_all(self) -> None:
        for contact in list(self.state.contacts):
            await self._release_contact(contact)
        for queue in list(self.state.queues):
            await self._release_queue(queue)
