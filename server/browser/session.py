"""One WebSocket client of the gateway: its access, subscriptions, outbox and two loops.

A session is a bus `Listener`: the bus hands it each event's shared text, and the session
writes the event's shared frame straight to the socket when nothing is waiting (the
`streaming` state), or else queues it in its bounded outbox for the send loop. Per socket
there is exactly one task besides the connection's own (the receive loop; the send loop runs
in the connection's task), none per subscription; its deadlines (authenticate, token expiry,
re-authenticate) are loop timers, not tasks.

Access (authenticate, token expiry, re-authenticate) is `SessionAccess`, its base class in
server/browser/session_access.py. Until a socket has authenticated (and while its token is expired)
it receives no event at all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Set as AbstractSet
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket

from server import metrics
from server.access.policy import LIMIT_HITS
from server.access.tokens import ANONYMOUS, Grant
from server.browser._waitable import Flag
from server.browser.limits import Admission, MessageRate
from server.browser.outbox import Outbox, OutboxFull
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
from server.browser.ws_protocol import FRAME_WRITER, FrameWriter
from server.bus import BusUnavailable, Delivery, contact_channel, queue_channel
from server.bus.channel import Sink
from server.events import ContactEvent, QueueFiguresEvent, as_snapshot, waiting_in

if TYPE_CHECKING:
    from server.browser.gateway import Gateway


# Shared by every session's sets until they get a member.
_NOTHING: frozenset[str] = frozenset()


class ClientSession(SessionAccess):
    """One WebSocket client: its subscriptions, its outbox, its receive and send loops."""

    # Thousands per process: slots keep each one small and its hot fields close together.
    __slots__ = (
        "_attached",
        "_figures_seq",
        "_finished",
        "_gateway",
        "_handling",
        "_last_seq",
        "_latest",
        "_loop",
        "_marked_stale",
        "_rate",
        "_receiving",
        "_sending",
        "_sink",
        "_wake",
        "_watching",
        "_writer",
        "_ws",
        "close_code",
        "close_reason",
        "contacts",
        "outbox",
        "queues",
        "streaming",
    )

    def __init__(self, gateway: Gateway, websocket: WebSocket) -> None:
        self._gateway = gateway
        self._ws = websocket
        config = gateway.config
        self._loop = asyncio.get_running_loop()
        # None until authenticated; anonymous mode grants everything to a silent client.
        self.grant: Grant | None = ANONYMOUS if config.access.allow_anonymous else None
        self._expired = False
        self._expires_at: float | None = None  # loop time the grant runs out
        self._deadline: asyncio.TimerHandle | None = None
        self._rate = MessageRate(
            config.max_messages_per_second, config.rate_limit_strikes, self._loop.time()
        )
        self.contacts: dict[str, str] = {}  # contact -> instance
        # Sets that most sockets never fill start as one shared empty frozenset and are
        # replaced, not mutated (an empty set is 216 bytes per socket; changes are rare).
        self.queues: AbstractSet[str] = _NOTHING
        self._watching: AbstractSet[str] = _NOTHING
        self._last_seq: dict[str, int] = {}
        self._latest: dict[str, ContactEvent] = {}  # to mark stale while the bus is down
        self._marked_stale: AbstractSet[str] = _NOTHING
        self._finished: AbstractSet[str] = _NOTHING  # contact subscriptions that got `ended`
        self._figures_seq: dict[str, int] | None = None  # queue -> seq of its figures sent
        self.outbox = Outbox()
        # Set while the send loop holds a frame it took from the outbox (a frame written
        # directly meanwhile would overtake it), and while a request is being handled (its
        # answers, e.g. a pong after a subscribe, go first among what is pending).
        self._sending = False
        self._handling = False
        extensions = websocket.scope.get("extensions") or {}
        self._writer: FrameWriter | None = extensions.get(FRAME_WRITER)
        self._wake = Flag()
        # True while nothing stands between a bus event and the socket: authenticated, no
        # queue subscription, nothing pending or being sent, no request being handled, no
        # contact shown stale. Every change that can make it false wakes the send loop (or
        # sets `_handling`), which clears it; only the idle send loop and the end of a
        # request set it again (`_update_streaming`). While it holds, each subscribed contact
        # whose newest update the client has is attached to the bus (`_attach`).
        self.streaming = False
        # While streaming: the socket's sink, lent by its protocol, and the contacts whose
        # updates the bus writes to it (`Bus.attach`).
        self._sink: Sink | None = None
        self._attached: AbstractSet[str] = _NOTHING
        self._receiving = True  # False once the receive loop has ended
        self.close_code: int | None = None
        self.close_reason = ""

    # -- bus listener ----------------------------------------------------------------------

    def deliver(self, delivery: Delivery) -> None:
        event = delivery.event
        if isinstance(event, QueueFiguresEvent):
            self.offer_figures(event, delivery.text)
        else:
            self.offer(event, delivery.text, direct=True)

    # -- attached: the bus writes this socket's frames (server/bus/channel.py) ---------------

    def _attach(self, contact: str) -> None:
        if self._sink is None:
            if self._writer is None:
                return
            self._sink = self._writer.frame_sink(self._sink_blocked)
            if self._sink is None:
                return
        # A token that runs out is stopped by its timer (`_expire`), which detaches; an
        # update dispatched in the same loop turn may still go (the token's leeway covers it).
        last = self._last_seq.get(contact, 0)
        if last and self._gateway.bus.attach(
            contact_channel(contact), self, last, self._sink, partial(self._detached, contact)
        ):
            self._attached = self._attached | {contact}

    def _detached(self, contact: str, latest: ContactEvent | None) -> None:
        """The bus stopped writing `contact`'s updates: hold what it wrote, as `deliver` would."""
        self._attached = self._attached - {contact}
        if latest is not None and latest.seq > self._last_seq.get(contact, 0):
            self._last_seq[contact] = latest.seq
            self._latest[contact] = latest

    def _detach(self, contact: str) -> None:
        if contact in self._attached:
            self._detached(contact, self._gateway.bus.detach(contact_channel(contact), self))

    def _detach_all(self) -> None:
        for contact in self._attached:
            self._detach(contact)

    def _sink_blocked(self) -> None:
        # The socket stopped taking frames directly (full buffer, a client message, a close).
        self._sink = None
        self._wake_sender()

    def _update_streaming(self) -> None:
        self.streaming = (
            self._writer is not None
            and self.grant is not None
            and not self._expired
            and not self._sending
            and not self._handling
            and self._receiving
            and self.close_code is None
            and not self.queues
            and not self._marked_stale
            and not self.outbox
        )
        if self.streaming:
            for contact in self.contacts:
                if contact not in self._attached:
                    self._attach(contact)

    def _wake_sender(self) -> None:
        """Something is for the send loop to do: until it is done, events take `offer`."""
        self.streaming = False
        if self._attached:
            self._detach_all()
        self._wake.set()

    def offer(
        self, event: ContactEvent, text: str, *, refresh: bool = False, direct: bool = False
    ) -> None:
        """Queue an event unless this client has it (or a newer one) already, or may not
        receive events now (not authenticated, or its token expired).

        Args:
            refresh: after an outage, a state with the seq the client has is sent again if
                the client was shown it as stale meanwhile.
            direct: a bus delivery, which may be written to the socket at once when nothing
                is waiting in the outbox and no request is being handled. Answers to a
                request (snapshots after a subscribe) go through the outbox, so that control
                frames (a pong, an error) still go first among what is pending.
        """
        if self.grant is None or self._expired:
            return
        if self._expires_at is not None and self._loop.time() >= self._expires_at:
            self._expire()  # the timer has not run yet; the clock is what counts
            return
        contact = event.contact
        subscribed = contact in self.contacts
        if not subscribed and event.queue not in self.queues:
            return
        last = self._last_seq.get(contact, 0)
        if event.seq < last or (
            event.seq == last and not (refresh and contact in self._marked_stale)
        ):
            return
        if contact in self._marked_stale:
            self._marked_stale = self._marked_stale - {contact}
        if last == 0 and event.type == "update":
            # The first state this client gets of a contact is a snapshot, even when an
            # update overtook the stored state between subscribing and reading it.
            event = as_snapshot(event)
            text = event.encode().decode()
        writer = self._writer
        if (
            direct
            and writer is not None
            and not self._sending
            and not self._handling
            and not self.outbox
            and writer.write_frame(self._gateway.bus.encode(text))
        ):
            # Nothing is waiting and the socket takes it now: no task step, no re-framing.
            self._gateway.count_written()
            queued = False
        else:
            if self.outbox.put_event(event, text):
                metrics.OUTBOX_COALESCED.inc()
            queued = True
        ended = event.type == "ended"
        if ended:
            self._latest.pop(contact, None)
            if subscribed:
                self._finished = self._finished | {contact}
                self._last_seq[contact] = event.seq
            else:
                self._last_seq.pop(contact, None)  # a queue member left; forget it
        else:
            self._last_seq[contact] = event.seq
            self._latest[contact] = event
        if queued or ended:
            self._wake_sender()
        elif self.streaming and subscribed:
            # It holds the newest update now: the bus can write the next ones itself.
            self._attach(contact)

    def offer_figures(self, event: QueueFiguresEvent, text: str) -> None:
        """Queue a subscribed queue's figures unless this client has these or newer ones.

        They go through the outbox (latest per queue wins): a socket with a queue
        subscription never streams anyway.
        """
        if self.grant is None or self._expired or event.queue not in self.queues:
            return
        if self._expires_at is not None and self._loop.time() >= self._expires_at:
            self._expire()
            return
        sent = self._figures_seq
        if sent is None:
            sent = self._figures_seq = {}
        if event.seq <= sent.get(event.queue, 0):
            return
        sent[event.queue] = event.seq
        if self.outbox.put_figures(event.queue, text):
            metrics.OUTBOX_COALESCED.inc()
        self._wake_sender()

    def mark_stale(self) -> None:
        """The bus is down: show every state this client holds as stale, same seq (the
        values are unchanged; only `stale` differs), until fresh states come back."""
        if self.grant is None or self._expired:
            return
        self._detach_all()
        for contact, event in self._latest.items():
            if not event.stale:
                stale = replace(event, stale=True)
                self.outbox.put_event(stale, stale.encode().decode())
                self._marked_stale = self._marked_stale | {contact}
        if self._marked_stale:
            self._wake_sender()

    def known_seqs(self) -> dict[str, int]:
        """The highest seq this client holds per contact (or asked to resume from)."""
        self._detach_all()  # what the bus wrote counts too; it re-attaches when it can
        return dict(self._last_seq)

    # -- control ---------------------------------------------------------------------------

    def request_close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self._wake_sender()

    def _send_error(self, code: str, message: str, contact: str | None = None) -> None:
        metrics.CLIENT_ERRORS.labels(code).inc()
        self._send_control(error_frame(code, message, contact))

    def _send_control(self, frame: str) -> None:
        try:
            self.outbox.put_control(frame)
        except OutboxFull:
            self.request_close(CLOSE_POLICY, "too many unread replies")
            return
        self._wake_sender()

    # -- loops -----------------------------------------------------------------------------

    async def receive_loop(self) -> None:
        config = self._gateway.config
        while self.close_code is None:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                if message.get("code") == CLOSE_FRAME_TOO_BIG:
                    LIMIT_HITS.labels("frame_size").inc()
                return
            admission = self._rate.admit(self._loop.time())
            if admission is not Admission.ADMIT:
                LIMIT_HITS.labels("message_rate").inc()
                if admission is Admission.CLOSE:
                    LIMIT_HITS.labels("message_rate_close").inc()
                    self._send_error("rate_limited", "too many messages; closing")
                    self.request_close(CLOSE_POLICY, "rate limit")
                    return
                if admission is Admission.DROP_AND_TELL:
                    self._send_error(
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
                self._send_error(exc.code, exc.message, exc.contact)
                continue
            self._handling = True
            self.streaming = False
            self._detach_all()
            try:
                await self._handle(request)
            finally:
                self._handling = False
                self._update_streaming()

    def receive_ended(self, _task: asyncio.Task[None]) -> None:
        """Done-callback of the receive loop's task: the send loop stops at its next turn."""
        self._receiving = False
        self._wake_sender()

    async def send_loop(self) -> None:
        send_timeout = self._gateway.config.send_timeout
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._receiving:
                return
            if self._finished:
                await self._release_finished()
            try:
                # One timeout moved per frame: `wait_for` would make a task per frame, which
                # was 40% of the gateway's CPU at 10,000 frames/s (docs/benchmarks.md).
                async with asyncio.timeout(None) as deadline:
                    while (frame := self.outbox.pop()) is not None:
                        self._sending = True
                        deadline.reschedule(loop.time() + send_timeout)
                        await self._ws.send_text(frame)
                        self._sending = False
                        metrics.FRAMES_SENT.inc()
            except TimeoutError:
                self.request_close(CLOSE_TRY_AGAIN_LATER, "client too slow to read")
                return
            finally:
                self._sending = False
            if self.close_code is not None:
                return
            self._update_streaming()

    # -- requests --------------------------------------------------------------------------

    async def _handle(self, request: ClientMessage) -> None:
        if isinstance(request, Ping):
            self._send_control(PONG)
        elif isinstance(request, Auth):
            await self._authenticate(request.token)
        elif self.grant is None:
            LIMIT_HITS.labels("unauthenticated").inc()
            self._send_error("unauthorized", 'authenticate first: {"op":"auth","token":...}')
            self.request_close(CLOSE_POLICY, "unauthorized")
        elif isinstance(request, Unsubscribe):
            if request.contact is not None:
                await self._release_contact(request.contact)
            elif request.queue is not None:
                await self._release_queue(request.queue)
        elif self._expired:
            self._send_error("token_expired", "the token expired; send a new one with op auth")
        elif request.contact is not None:
            if not self.grant.allows_contact(request.contact, request.instance):
                self._forbidden()
                return
            instance = request.instance or self.grant.instance
            await self._subscribe_contact(request.contact, instance, request.since)
        elif request.queue is not None:
            if not self.grant.allows_queue(request.queue):
                self._forbidden()
                return
            await self._subscribe_queue(request.queue, request.since)

    def _room_for_one_more(self) -> bool:
        if len(self.contacts) + len(self.queues) >= self._gateway.config.max_subscriptions:
            self._send_error("too_many_subscriptions", "unsubscribe from something first")
            return False
        return True

    async def _subscribe_contact(self, contact: str, instance: str | None, since: int) -> None:
        if contact in self.contacts:
            return  # already streaming; a second subscribe changes nothing
        instance = instance or self._gateway.config.default_instance
        if instance is None:
            self._send_error("bad_instance", "name the `instance` of the contact", contact)
            return
        if not self._room_for_one_more():
            return
        bus, poller = self._gateway.bus, self._gateway.poller
        self.contacts[contact] = instance
        self._last_seq[contact] = max(self._last_seq.get(contact, 0), since)
        try:
            # Subscribe first, then read the stored state: an event committed in between
            # arrives both ways, and the seq check keeps only the newer.
            await bus.subscribe(contact_channel(contact), self)
            [stored] = await bus.read_states([contact])
        except BusUnavailable:
            await self._release_contact(contact)
            self._send_error("unavailable", "the event bus is unreachable; retry", contact)
            return
        metrics.SUBSCRIPTIONS.inc()
        if stored is not None:
            shown = as_snapshot(stored)
            self.offer(shown, shown.encode().decode())
            if stored.ended:
                return  # a tombstone: tell the client, never poll it again
        if poller.watch(instance, contact, stored):
            self._watching = self._watching | {contact}

    async def _subscribe_queue(self, queue: str, since: int) -> None:
        del since  # a queue has no seq of its own; each contact's seq is checked instead
        if queue in self.queues:
            return
        if not self._room_for_one_more():
            return
        bus = self._gateway.bus
        self.queues = self.queues | {queue}
        try:
            await bus.subscribe(queue_channel(queue), self)
            members = await bus.queue_members(queue)
            states = await bus.read_states(members)
        except BusUnavailable:
            await self._release_queue(queue)
            self._send_error("unavailable", "the event bus is unreachable; retry")
            return
        metrics.SUBSCRIPTIONS.inc()
        for state in waiting_in(queue, states):
            shown = as_snapshot(state)
            self.offer(shown, shown.encode().decode())
        try:
            [figures] = await bus.read_queue_figures([queue])
        except BusUnavailable:
            figures = None  # the next ones come with the next read of the queue
        if figures is not None:
            self.offer_figures(figures, figures.encode().decode())

    async def _release_contact(self, contact: str) -> None:
        if contact not in self.contacts:
            return
        self._detach(contact)
        del self.contacts[contact]
        metrics.SUBSCRIPTIONS.dec()
        self.outbox.discard(contact)
        self._finished = self._finished - {contact}
        self._latest.pop(contact, None)
        self._marked_stale = self._marked_stale - {contact}
        if contact in self._watching:
            self._watching = self._watching - {contact}
            self._gateway.poller.unwatch(contact)
        with contextlib.suppress(BusUnavailable):
            await self._gateway.bus.unsubscribe(contact_channel(contact), self)

    async def _release_queue(self, queue: str) -> None:
        if queue not in self.queues:
            return
        self.queues = self.queues - {queue}
        if self._figures_seq is not None:
            self._figures_seq.pop(queue, None)
        self.outbox.discard_figures(queue)
        metrics.SUBSCRIPTIONS.dec()
        with contextlib.suppress(BusUnavailable):
            await self._gateway.bus.unsubscribe(queue_channel(queue), self)

    async def _release_finished(self) -> None:
        finished, self._finished = self._finished, _NOTHING
        for contact in finished:
            # Keep the `ended` frame queued: only the subscription goes.
            self._detach(contact)
            self.contacts.pop(contact, None)
            metrics.SUBSCRIPTIONS.dec()
            if contact in self._watching:
                self._watching = self._watching - {contact}
                self._gateway.poller.unwatch(contact)
            with contextlib.suppress(BusUnavailable):
                await self._gateway.bus.unsubscribe(contact_channel(contact), self)

    async def release_all(self) -> None:
        for contact in list(self.contacts):
            await self._release_contact(contact)
        for queue in list(self.queues):
            await self._release_queue(queue)
