"""One socket's delivery state: what it holds, what waits for it, whether it streams. No I/O.

Events go in as method calls (an event offered, a frame written or refused, a frame taken from
the outbox, a request begun or ended, the socket's sink lost, a close, the bus lost, a
subscription added or released); what the session (server/browser/session.py) must do comes
back as a value:

- an event (from `offer` only): write its frame now if the socket takes it
  (`FrameWriter.write_frame`), then report `written`, or `refused`, which queues it; it is
  the event offered, or the snapshot it became (then its text is the snapshot's). Not a
  command object: this is the path of every delivery a socket takes directly, and an
  allocation per delivery was a third of it;
- `Wake(detach)`: take the contacts `detach` back from the fan-out's writers (each reported
  with `detached`), then wake the send loop, which drains the outbox;
- `Detach(contacts)`: the same, without waking the send loop;
- `Attach(holds)`: lend the socket's sink to these contacts' channels (`SocketFanout.attach`),
  reporting each that attached with `attached`;
- `None`: nothing.

The rules, each in one place below:

- seq never goes back: an event older than what the socket holds of its contact is dropped,
  and one with the same seq too, unless it replaces a state the socket was shown stale;
- the first state a socket gets of a contact is a `snapshot`, even when an update overtook
  the stored state between subscribing and reading it;
- a socket that does not keep up gets the latest state per contact (`Outbox`), and control
  frames (a pong, an error) before events; a queue's figures go through the outbox too,
  latest per queue, their seq never going back either;
- `ended` ends the contact's subscription once the frame is on its way;
- while the bus is down every state held is queued again with `stale: true`, same seq;
- a socket *streams* (the fan-out writes its contacts' updates itself, with no Python per
  socket) only while nothing stands between an update and the socket (`holdup` is None);
  everything that could put something in between takes the writers back first.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace

from server.browser.outbox import Outbox
from server.events import ContactEvent, QueueFiguresEvent, as_snapshot

# Shared by every socket's sets until they get a member: an empty set is 216 bytes per
# socket, and most sockets never fill these; they are replaced, not mutated.
_NOTHING: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Wake:
    """Take `detach` back from the fan-out's writers, then wake the send loop."""

    detach: tuple[str, ...] = ()
    coalesced: bool = False  # the event queued replaced an older pending one (a metric)


@dataclass(frozen=True, slots=True)
class Detach:
    """Take these contacts back from the fan-out's writers; report each with `detached`."""

    contacts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Attach:
    """Lend the socket's sink to these contacts' channels: (contact, seq the socket holds)."""

    holds: tuple[tuple[str, int], ...]


Command = Wake | Detach | Attach

_WAKE = Wake()
_WAKE_COALESCED = Wake(coalesced=True)


class Holdup(enum.Enum):
    """What keeps the fan-out from writing a socket's updates itself (`DeliveryState.holdup`)."""

    NO_FRAME_WRITER = "the server offers no shared-frame writer (another server, a test)"
    NOT_AUTHORIZED = "not authenticated yet, or the token expired"
    CLOSING = "a close was requested, or the client went away"
    SENDING = "the send loop holds a frame a direct write would overtake"
    HANDLING_REQUEST = "a request is being handled: its answers go first"
    OUTBOX_PENDING = "frames wait in the outbox"
    QUEUE_SUBSCRIBED = "queue events come by a second channel: only `offer` checks seqs across"
    SHOWN_STALE = "a state shown stale waits for its fresh one, same seq"


class DeliveryState:
    """The delivery rules of one socket (see the module docstring)."""

    # Thousands per process: slots keep each one small.
    __slots__ = (
        "_attached",
        "_authorized",
        "_figures_seq",
        "_finished",
        "_frame_writer",
        "_handling",
        "_last_seq",
        "_latest",
        "_marked_stale",
        "_receiving",
        "_sending",
        "close_code",
        "close_reason",
        "contacts",
        "outbox",
        "queues",
        "streaming",
    )

    def __init__(self, *, frame_writer: bool, authorized: bool) -> None:
        """Args:
        frame_writer: the socket can take shared frames (`write_frame`, a sink).
        authorized: events may be sent from the start (anonymous mode).
        """
        self._frame_writer = frame_writer
        self._authorized = authorized
        self.contacts: dict[str, str] = {}  # contact -> instance
        self.queues: AbstractSet[str] = _NOTHING
        self._last_seq: dict[str, int] = {}  # the highest seq the socket holds (or resumes from)
        self._latest: dict[str, ContactEvent] = {}  # to show stale while the bus is down
        self._marked_stale: AbstractSet[str] = _NOTHING
        self._finished: AbstractSet[str] = _NOTHING  # subscriptions that got `ended`
        self._figures_seq: dict[str, int] | None = None  # queue -> seq of its figures sent
        self.outbox = Outbox()
        self._sending = False
        self._handling = False
        self._receiving = True
        self.close_code: int | None = None  # the first close requested, and its reason
        self.close_reason = ""
        # True from `try_stream` finding no holdup until anything could put one in place;
        # while it holds, subscribed contacts are attached as soon as the socket holds their
        # channel's newest update.
        self.streaming = False
        self._attached: AbstractSet[str] = _NOTHING  # contacts the fan-out writes

    # -- queries (no side effects) ---------------------------------------------------------

    @property
    def authorized(self) -> bool:
        return self._authorized

    @property
    def attached_contacts(self) -> AbstractSet[str]:
        return self._attached

    @property
    def receiving(self) -> bool:
        """False once the client's side of the socket has ended."""
        return self._receiving

    @property
    def subscriptions(self) -> int:
        return len(self.contacts) + len(self.queues)

    def holdup(self) -> Holdup | None:
        """What keeps the socket from streaming now, or None."""
        if not self._frame_writer:
            return Holdup.NO_FRAME_WRITER
        if not self._authorized:
            return Holdup.NOT_AUTHORIZED
        if self.close_code is not None or not self._receiving:
            return Holdup.CLOSING
        if self._sending:
            return Holdup.SENDING
        if self._handling:
            return Holdup.HANDLING_REQUEST
        if self.outbox:
            return Holdup.OUTBOX_PENDING
        if self.queues:
            return Holdup.QUEUE_SUBSCRIBED
        if self._marked_stale:
            return Holdup.SHOWN_STALE
        return None

    @property
    def has_finished(self) -> bool:
        """Some subscription got `ended` and waits to be released (`take_finished`)."""
        return bool(self._finished)

    def holds(self, contact: str) -> int:
        """The highest seq the socket holds of `contact` (0: none)."""
        return self._last_seq.get(contact, 0)

    def known_seqs(self) -> dict[str, int]:
        """The highest seq held per contact (or asked to resume from), as far as this state
        knows: what the fan-out wrote since the last `detached` is not in it (`take_back`)."""
        return dict(self._last_seq)

    def resumable(self) -> list[str]:
        """Subscribed contacts that have not ended."""
        return [c for c in self.contacts if c not in self._finished]

    # -- events from the bus ---------------------------------------------------------------

    def offer(
        self, event: ContactEvent, text: str, *, refresh: bool = False, direct: bool = False
    ) -> ContactEvent | Wake | None:
        """An event for this socket, unless it has it (or a newer one) already, or may not
        receive events now. Returns an event to write now (see the module docstring), a
        `Wake` (it waits in the outbox), or None (dropped).

        Args:
            text: the event as published (its frame is built from it once for all sockets).
            refresh: after an outage, a state with the seq the socket holds is sent again if
                the socket was shown it as stale meanwhile.
            direct: a bus delivery, which may be written at once when nothing is waiting and
                no request is being handled. Answers to a request (snapshots after a
                subscribe) go through the outbox, so that control frames go first.
        """
        if not self._authorized:
            return None
        contact = event.contact
        subscribed = contact in self.contacts
        if not subscribed and event.queue not in self.queues:
            return None
        last = self._last_seq.get(contact, 0)
        stale = self._marked_stale
        if event.seq < last or (event.seq == last and not (refresh and contact in stale)):
            return None
        if contact in stale:
            self._marked_stale = stale - {contact}
        if last == 0 and event.type == "update":
            event = as_snapshot(event)
            text = event.encode().decode()
        # What the socket holds now (inline: this is every delivery's path).
        if event.type == "ended":
            self._latest.pop(contact, None)
            if subscribed:
                self._finished = self._finished | {contact}
                self._last_seq[contact] = event.seq
            else:
                self._last_seq.pop(contact, None)  # a queue member left; forget it
        else:
            self._last_seq[contact] = event.seq
            self._latest[contact] = event
        if (
            direct
            and self._frame_writer
            and not self._sending
            and not self._handling
            and not self.outbox
        ):
            return event
        return self._wake(coalesced=self.outbox.put_event(event, text))

    def offer_figures(self, event: QueueFiguresEvent, text: str) -> Wake | None:
        """A subscribed queue's figures, unless the socket has these or newer ones.

        They go through the outbox (latest per queue wins): a socket with a queue
        subscription never streams anyway.
        """
        if not self._authorized or event.queue not in self.queues:
            return None
        sent = self._figures_seq
        if sent is None:
            sent = self._figures_seq = {}
        if event.seq <= sent.get(event.queue, 0):
            return None
        sent[event.queue] = event.seq
        return self._wake(coalesced=self.outbox.put_figures(event.queue, text))

    def written(self, event: ContactEvent) -> Wake | Attach | None:
        """The socket took the frame of an event `offer` returned."""
        if event.type == "ended":
            return self._wake()  # the send loop releases the subscription
        if not self.streaming:
            return None
        contact = event.contact
        if contact in self.contacts and contact not in self._attached:
            # It holds the newest update now: the fan-out can write the next ones itself.
            return Attach(((contact, event.seq),))
        return None

    def refused(self, event: ContactEvent, text: str) -> Wake:
        """The socket did not take the frame of an event `offer` returned: it waits in the
        outbox."""
        return self._wake(coalesced=self.outbox.put_event(event, text))

    def attached(self, contact: str) -> None:
        """The fan-out writes `contact`'s updates to the socket from now on."""
        self._attached = self._attached | {contact}

    def detached(self, contact: str, latest: ContactEvent | None) -> None:
        """The fan-out stopped writing `contact`'s updates; `latest` is the last one it wrote."""
        if contact in self._attached:
            self._attached = self._attached - {contact}
        if latest is not None and latest.seq > self._last_seq.get(contact, 0):
            self._last_seq[contact] = latest.seq
            if contact in self.contacts:  # not after `release_contact`
                self._latest[contact] = latest

    def take_back(self) -> Detach | None:
        """Take every writer back, so that `known_seqs` counts what they wrote; the socket
        keeps streaming (its contacts attach again with their next update)."""
        detach = self._take_attached()
        return Detach(detach) if detach else None

    def bus_lost(self) -> Wake | Detach | None:
        """The bus is down: every state held goes again with `stale: true`, same seq (the
        values are unchanged; only `stale` differs), until fresh states come back."""
        if not self._authorized:
            return None
        detach = self._take_attached()
        for contact, event in self._latest.items():
            if not event.stale:
                stale = replace(event, stale=True)
                self.outbox.put_event(stale, stale.encode().decode())
                self._marked_stale = self._marked_stale | {contact}
        if self._marked_stale:
            self.streaming = False
            return Wake(detach) if detach else _WAKE
        return Detach(detach) if detach else None

    # -- events from the socket ------------------------------------------------------------

    def queue_control(self, frame: str) -> Wake:
        """A pong or an error for the client.

        Raises:
            OutboxFull: the client has left too many control frames unread.
        """
        self.outbox.put_control(frame)
        return self._wake()

    def request_started(self) -> Detach | None:
        self._handling = True
        self.streaming = False
        detach = self._take_attached()
        return Detach(detach) if detach else None

    def request_finished(self) -> Attach | None:
        self._handling = False
        return self.try_stream()

    def next_frame(self) -> str | None:
        """The next frame for the send loop, which holds it until `frame_sent`."""
        frame = self.outbox.pop()
        self._sending = frame is not None
        return frame

    def frame_sent(self) -> None:
        self._sending = False

    def sink_lost(self) -> Wake:
        """The socket stopped taking frames directly (a full buffer, a client message, a close)."""
        return self._wake()

    def receive_ended(self) -> Wake:
        self._receiving = False
        return self._wake()

    def close_requested(self, code: int, reason: str) -> Wake:
        """The socket is to be closed: the send loop does it, with the first code asked for."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        return self._wake()

    def try_stream(self) -> Attach | None:
        """The send loop is idle or a request is done: stream if nothing is in the way."""
        self.streaming = self.holdup() is None
        if not self.streaming:
            return None
        last_seq, attached = self._last_seq, self._attached
        holds: list[tuple[str, int]] = []
        for contact in self.contacts:
            if contact not in attached and (seq := last_seq.get(contact, 0)):
                holds.append((contact, seq))
        return Attach(tuple(holds)) if holds else None

    # -- access ----------------------------------------------------------------------------

    def authorize(self) -> None:
        self._authorized = True

    def suspend(self) -> Wake:
        """The token expired: nothing more is sent, not even what is queued (control frames
        too); subscriptions stay for a re-authentication."""
        self._authorized = False
        self.outbox.clear()
        return self._wake()

    def forget_seqs(self, contacts: Iterable[str]) -> None:
        """After a re-authentication: the next state of these contacts is a snapshot again."""
        for contact in contacts:
            self._last_seq.pop(contact, None)

    # -- subscriptions ---------------------------------------------------------------------

    def add_contact(self, contact: str, instance: str, since: int) -> None:
        self.contacts[contact] = instance
        self._last_seq[contact] = max(self._last_seq.get(contact, 0), since)

    def release_contact(self, contact: str) -> Detach | None:
        """Unsubscribed: nothing of `contact` is sent any more (the seq held is kept)."""
        detach = self._take_attached_one(contact)
        self.contacts.pop(contact, None)
        self.outbox.discard(contact)
        self._finished = self._finished - {contact}
        self._latest.pop(contact, None)
        self._marked_stale = self._marked_stale - {contact}
        return detach

    def take_finished(self) -> AbstractSet[str]:
        """The subscriptions that got `ended`, now to be released (`end_contact`)."""
        finished, self._finished = self._finished, _NOTHING
        return finished

    def end_contact(self, contact: str) -> Detach | None:
        """Release an ended subscription; its `ended` frame stays queued."""
        detach = self._take_attached_one(contact)
        self.contacts.pop(contact, None)
        return detach

    def add_queue(self, queue: str) -> None:
        self.queues = self.queues | {queue}

    def release_queue(self, queue: str) -> None:
        self.queues = self.queues - {queue}
        if self._figures_seq is not None:
            self._figures_seq.pop(queue, None)
        self.outbox.discard_figures(queue)

    # -- helpers ---------------------------------------------------------------------------

    def _wake(self, *, coalesced: bool = False) -> Wake:
        """Something is for the send loop: until it is done, no contact is attached."""
        self.streaming = False
        detach = self._take_attached()
        if detach:
            return Wake(detach, coalesced)
        return _WAKE_COALESCED if coalesced else _WAKE

    def _take_attached(self) -> tuple[str, ...]:
        attached, self._attached = self._attached, _NOTHING
        return tuple(attached)

    def _take_attached_one(self, contact: str) -> Detach | None:
        if contact not in self._attached:
            return None
        self._attached = self._attached - {contact}
        return Detach((contact,))
