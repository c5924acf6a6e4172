"""The per-socket delivery rules (`DeliveryState`), driven directly: no socket, no bus, no loop.

Each test feeds events in and checks what comes out (an event to write now, or a Wake, Detach
or Attach command) and what the socket would be sent (the outbox drained in order).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.browser.delivery import Attach, DeliveryState, Detach, Holdup, Wake
from server.browser.outbox import OutboxFull
from server.events import ContactEvent, QueueFiguresEvent
from tests.unit._factories import make_event, make_figures

CONTACT = "c-1"
INSTANCE = "i-1"


def event(seq: int, type_: str = "update", contact: str = CONTACT, **changes: Any) -> ContactEvent:
    return make_event(type=type_, contact=contact, seq=seq, **changes)


def text(ev: ContactEvent) -> str:
    return ev.encode().decode()


def offer(state: DeliveryState, ev: ContactEvent, **flags: bool) -> object:
    return state.offer(ev, text(ev), **flags)


def sent(state: DeliveryState) -> list[dict[str, Any]]:
    """What the send loop would send now, in order (and the outbox is then empty)."""
    frames = []
    while (frame := state.next_frame()) is not None:
        frames.append(json.loads(frame))
        state.frame_sent()
    return frames


def subscribed(*, frame_writer: bool = True, since: int = 0) -> DeliveryState:
    """An authorized socket subscribed to CONTACT, nothing sent yet."""
    state = DeliveryState(frame_writer=frame_writer, authorized=True)
    state.add_contact(CONTACT, INSTANCE, since)
    return state


def streaming(holds: int = 1) -> DeliveryState:
    """A socket subscribed to CONTACT, holding seq `holds`, streaming and attached."""
    state = subscribed()
    offer(state, event(holds))
    sent(state)
    assert state.try_stream() == Attach(((CONTACT, holds),))
    state.attached(CONTACT)
    return state


# -- seq never goes back -----------------------------------------------------------------------


def test_an_event_older_or_equal_to_what_the_socket_holds_is_dropped() -> None:
    state = subscribed()
    assert isinstance(offer(state, event(5)), Wake)
    sent(state)
    assert offer(state, event(4)) is None
    assert offer(state, event(5)) is None
    assert sent(state) == []
    assert isinstance(offer(state, event(6)), Wake)
    assert [m["seq"] for m in sent(state)] == [6]


def test_since_counts_as_held() -> None:
    state = subscribed(since=10)
    assert offer(state, event(10)) is None
    assert offer(state, event(11)) is not None


def test_what_the_fan_out_wrote_counts_once_it_is_reported() -> None:
    state = streaming(holds=1)
    state.detached(CONTACT, event(3))  # the fan-out wrote 2 and 3 meanwhile
    assert state.holds(CONTACT) == 3
    assert offer(state, event(3)) is None
    assert state.attached_contacts == frozenset()


def test_a_detach_never_lowers_the_seq_held() -> None:
    state = subscribed()
    offer(state, event(5))
    state.detached(CONTACT, event(2))
    assert state.holds(CONTACT) == 5


def test_seq_is_kept_after_unsubscribing_what_the_fan_out_wrote_too() -> None:
    state = streaming(holds=1)
    detach = state.release_contact(CONTACT)
    assert detach == Detach((CONTACT,))
    state.detached(CONTACT, event(4))  # reported as the session takes the writer back
    assert state.holds(CONTACT) == 4
    assert state.known_seqs() == {CONTACT: 4}


# -- snapshot conversion -----------------------------------------------------------------------


def test_the_first_state_a_socket_gets_of_a_contact_is_a_snapshot() -> None:
    state = subscribed()
    offer(state, event(3), direct=True)
    assert sent(state) == []  # written directly: see below
    state = subscribed(frame_writer=False)
    offer(state, event(3), direct=True)
    [first] = sent(state)
    assert first["type"] == "snapshot" and first["seq"] == 3
    offer(state, event(4))
    assert [m["type"] for m in sent(state)] == ["update"]


def test_a_direct_write_is_a_snapshot_too_when_it_is_the_first() -> None:
    state = subscribed()
    offered = event(3)
    command = offer(state, offered, direct=True)
    assert isinstance(command, ContactEvent), "to be written now"
    assert command.type == "snapshot" and command is not offered
    assert json.loads(command.encode())["type"] == "snapshot"


def test_an_ended_tombstone_is_shown_as_ended() -> None:
    state = subscribed(frame_writer=False)
    offer(state, event(3, "ended", position=None))
    assert [m["type"] for m in sent(state)] == ["ended"]


# -- coalescing --------------------------------------------------------------------------------


def test_a_socket_that_does_not_keep_up_gets_the_latest_state_per_contact() -> None:
    state = subscribed(frame_writer=False)
    first = offer(state, event(1))
    second = offer(state, event(2, position=2))
    third = offer(state, event(3, position=1))
    assert first == Wake() and second == third == Wake(coalesced=True)
    [only] = sent(state)
    # The snapshot not yet sent takes the newer state and stays a snapshot.
    assert (only["type"], only["seq"], only["position"]) == ("snapshot", 3, 1)


def test_control_frames_go_before_events_and_are_bounded() -> None:
    state = subscribed(frame_writer=False)
    offer(state, event(1))
    state.queue_control('{"type":"pong"}')
    assert [m["type"] for m in sent(state)] == ["pong", "snapshot"]
    for _ in range(64):
        state.queue_control('{"type":"pong"}')
    with pytest.raises(OutboxFull):
        state.queue_control('{"type":"pong"}')


# -- direct writes -----------------------------------------------------------------------------


def test_a_bus_delivery_is_written_directly_only_when_nothing_waits() -> None:
    state = subscribed()
    offer(state, event(1))
    assert isinstance(offer(state, event(2), direct=True), Wake), "the snapshot waits"
    sent(state)
    assert isinstance(offer(state, event(3), direct=True), ContactEvent)
    state.request_started()
    assert isinstance(offer(state, event(4), direct=True), Wake), "a request's answers go first"
    state.request_finished()
    sent(state)
    state.next_frame()  # nothing: the send loop holds no frame
    state.queue_control('{"type":"pong"}')
    assert state.next_frame() == '{"type":"pong"}'  # the send loop holds it now
    assert isinstance(offer(state, event(5), direct=True), Wake), "it would overtake the pong"


def test_a_refused_write_waits_in_the_outbox() -> None:
    state = subscribed()
    command = offer(state, event(1), direct=True)
    assert isinstance(command, ContactEvent)
    assert state.refused(command, text(command)) == Wake()
    assert [m["seq"] for m in sent(state)] == [1]


def test_an_answer_to_a_request_is_never_written_directly() -> None:
    state = subscribed()
    assert isinstance(offer(state, event(1)), Wake)


# -- ended -------------------------------------------------------------------------------------


def test_ended_releases_the_subscription_once_the_frame_is_on_its_way() -> None:
    state = streaming(holds=1)
    command = offer(state, event(2, "ended", position=None))
    assert command == Wake((CONTACT,)), "the writer is taken back first"
    assert state.has_finished
    assert state.take_finished() == frozenset({CONTACT})
    assert state.end_contact(CONTACT) is None
    assert CONTACT not in state.contacts
    assert [m["type"] for m in sent(state)] == ["ended"], "the frame stays queued"
    assert offer(state, event(3)) is None, "nothing more of the contact"


def test_ended_written_directly_still_wakes_the_send_loop() -> None:
    state = streaming(holds=1)
    command = offer(state, event(2, "ended", position=None), direct=True)
    assert isinstance(command, ContactEvent)
    assert state.written(command) == Wake((CONTACT,))
    assert state.has_finished


def test_a_queue_member_that_ends_is_forgotten() -> None:
    state = DeliveryState(frame_writer=False, authorized=True)
    state.add_queue("q-1")
    offer(state, event(4, contact="c-9"))
    offer(state, event(5, "ended", contact="c-9", position=None))
    assert "c-9" not in state.known_seqs()
    assert not state.has_finished
    assert offer(state, event(1, contact="c-9")) is not None, "a new contact with the same id"


def test_an_event_of_a_contact_neither_subscribed_nor_in_a_subscribed_queue_is_dropped() -> None:
    state = DeliveryState(frame_writer=False, authorized=True)
    state.add_queue("q-1")
    assert offer(state, event(1, contact="c-2", queue="q-2")) is None


# -- stale -------------------------------------------------------------------------------------


def test_a_lost_bus_shows_every_state_held_as_stale_with_the_same_seq() -> None:
    state = streaming(holds=1)
    command = state.bus_lost()
    assert command == Wake((CONTACT,))
    [stale] = sent(state)
    assert (stale["stale"], stale["seq"]) == (True, 1)
    assert state.holdup() is Holdup.SHOWN_STALE


def test_the_fresh_state_after_an_outage_replaces_the_stale_one_with_the_same_seq() -> None:
    state = subscribed(frame_writer=False)
    offer(state, event(1))
    sent(state)
    state.bus_lost()
    sent(state)
    assert offer(state, event(1)) is None, "not a refresh: the same seq is not sent again"
    assert offer(state, event(1), refresh=True) is not None
    [fresh] = sent(state)
    assert (fresh["stale"], fresh["seq"]) == (False, 1)
    assert state.holdup() is None or state.holdup() is Holdup.NO_FRAME_WRITER
    assert offer(state, event(1), refresh=True) is None, "refreshed once only"


def test_a_lost_bus_does_nothing_to_a_socket_that_may_not_receive_events() -> None:
    state = DeliveryState(frame_writer=True, authorized=False)
    state.add_contact(CONTACT, INSTANCE, 0)
    assert state.bus_lost() is None
    assert offer(state, event(1)) is None


# -- streaming: attach and detach --------------------------------------------------------------


def test_streaming_needs_nothing_in_the_way() -> None:
    state = subscribed()
    offer(state, event(1))
    assert state.holdup() is Holdup.OUTBOX_PENDING
    assert state.try_stream() is None and not state.streaming
    sent(state)
    assert state.holdup() is None
    assert state.try_stream() == Attach(((CONTACT, 1),))
    assert state.streaming


@pytest.mark.parametrize(
    ("setup", "holdup"),
    [
        (lambda s: s.request_started(), Holdup.HANDLING_REQUEST),
        (lambda s: s.receive_ended(), Holdup.CLOSING),
        (lambda s: s.close_requested(1000, "bye"), Holdup.CLOSING),
        (lambda s: s.add_queue("q-1"), Holdup.QUEUE_SUBSCRIBED),
        (lambda s: s.suspend(), Holdup.NOT_AUTHORIZED),
        (lambda s: s.queue_control("{}"), Holdup.OUTBOX_PENDING),
        (lambda s: [s.queue_control("{}"), s.next_frame()], Holdup.SENDING),
    ],
)
def test_each_holdup_keeps_the_socket_from_streaming(setup: Any, holdup: Holdup) -> None:
    state = subscribed()
    offer(state, event(1))
    sent(state)
    setup(state)
    assert state.holdup() is holdup
    assert state.try_stream() is None
    assert not state.streaming


def test_no_frame_writer_never_streams() -> None:
    state = subscribed(frame_writer=False)
    assert state.holdup() is Holdup.NO_FRAME_WRITER
    assert isinstance(offer(state, event(1), direct=True), Wake)


def test_only_contacts_the_socket_holds_a_state_of_are_attached() -> None:
    state = subscribed()
    state.add_contact("c-2", INSTANCE, 0)
    offer(state, event(1))
    sent(state)
    assert state.try_stream() == Attach(((CONTACT, 1),))


def test_while_streaming_a_direct_write_attaches_its_contact() -> None:
    state = subscribed()
    state.add_contact("c-2", INSTANCE, 0)
    offer(state, event(1))
    sent(state)
    state.try_stream()
    state.attached(CONTACT)
    command = offer(state, event(1, contact="c-2"), direct=True)
    assert isinstance(command, ContactEvent)
    assert state.written(command) == Attach((("c-2", 1),))
    state.attached("c-2")
    assert state.attached_contacts == {CONTACT, "c-2"}


def test_everything_that_can_get_in_the_way_takes_the_writers_back_first() -> None:
    cases = {
        "request": lambda s: s.request_started(),
        "control frame": lambda s: s.queue_control("{}"),
        "close": lambda s: s.close_requested(1000, ""),
        "receive ended": lambda s: s.receive_ended(),
        "sink lost": lambda s: s.sink_lost(),
        "token expired": lambda s: s.suspend(),
        "bus lost": lambda s: s.bus_lost(),
    }
    for name, happen in cases.items():
        state = streaming()
        command = happen(state)
        assert isinstance(command, Wake | Detach), name
        detach = command.detach if isinstance(command, Wake) else command.contacts
        assert detach == (CONTACT,), name
        assert state.attached_contacts == frozenset(), name
        assert not state.streaming, name


def test_a_request_ending_streams_again() -> None:
    state = streaming()
    assert state.request_started() == Detach((CONTACT,))
    assert state.request_finished() == Attach(((CONTACT, 1),))


def test_take_back_detaches_but_keeps_streaming() -> None:
    state = streaming()
    assert state.take_back() == Detach((CONTACT,))
    assert state.streaming
    assert state.take_back() is None


def test_known_seqs_has_no_side_effects() -> None:
    state = streaming(holds=2)
    assert state.known_seqs() == {CONTACT: 2}
    assert state.known_seqs() == {CONTACT: 2}
    assert state.attached_contacts == {CONTACT}
    assert state.streaming


def test_the_first_close_asked_for_wins() -> None:
    state = subscribed()
    state.close_requested(1013, "slow")
    state.close_requested(1001, "shutdown")
    assert (state.close_code, state.close_reason) == (1013, "slow")


# -- access ------------------------------------------------------------------------------------


def test_an_unauthorized_socket_gets_nothing() -> None:
    state = DeliveryState(frame_writer=True, authorized=False)
    state.add_contact(CONTACT, INSTANCE, 0)
    assert offer(state, event(1)) is None
    state.authorize()
    assert offer(state, event(1)) is not None


def test_an_expired_token_drops_what_is_queued_control_frames_too() -> None:
    state = subscribed(frame_writer=False)
    offer(state, event(1))
    state.queue_control('{"type":"pong"}')
    assert isinstance(state.suspend(), Wake)
    assert sent(state) == []
    assert offer(state, event(2)) is None


def test_after_a_reauth_the_next_state_is_a_snapshot_again() -> None:
    state = subscribed(frame_writer=False)
    offer(state, event(1))
    sent(state)
    state.suspend()
    state.authorize()
    assert state.resumable() == [CONTACT]
    state.forget_seqs(state.resumable())
    offer(state, event(1))
    assert [(m["type"], m["seq"]) for m in sent(state)] == [("snapshot", 1)]


# -- subscriptions -----------------------------------------------------------------------------


def test_unsubscribing_drops_what_waits_for_the_contact() -> None:
    state = subscribed(frame_writer=False)
    offer(state, event(1))
    assert state.release_contact(CONTACT) is None, "nothing attached"
    assert sent(state) == []
    assert offer(state, event(2)) is None


def test_queue_figures_go_through_the_outbox_latest_per_queue_and_never_back() -> None:
    def figures(seq: int, waiting: int) -> QueueFiguresEvent:
        return make_figures(queue="q-1", seq=seq, waiting=waiting)

    state = DeliveryState(frame_writer=True, authorized=True)
    assert state.offer_figures(figures(1, 1), figures(1, 1).encode().decode()) is None
    state.add_queue("q-1")
    assert state.offer_figures(figures(2, 2), figures(2, 2).encode().decode()) == Wake()
    assert state.offer_figures(figures(3, 3), figures(3, 3).encode().decode()) == Wake(
        coalesced=True
    )
    assert state.offer_figures(figures(3, 9), figures(3, 9).encode().decode()) is None
    assert [(m["seq"], m["waiting"]) for m in sent(state)] == [(3, 3)]
    state.release_queue("q-1")
    state.add_queue("q-1")
    assert state.offer_figures(figures(1, 1), figures(1, 1).encode().decode()) == Wake()
