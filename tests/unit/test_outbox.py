"""The per-socket outbox: latest state per contact wins, control frames first, bounded."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.browser.outbox import Outbox, OutboxFull
from server.events import ContactEvent, decode_event
from tests.unit._factories import make_event


def event(contact: str, seq: int, type_: str = "update", position: int = 3) -> ContactEvent:
    return make_event(type=type_, contact=contact, seq=seq, position=position, queue=None)


def put(outbox: Outbox, ev: ContactEvent) -> bool:
    return outbox.put_event(ev, ev.encode().decode())


def drain(outbox: Outbox) -> list[str]:
    frames = []
    while (frame := outbox.pop()) is not None:
        frames.append(frame)
    return frames


def test_empty_outbox_pops_none() -> None:
    outbox = Outbox()
    assert outbox.pop() is None
    assert len(outbox) == 0


def test_latest_state_per_contact_wins_and_order_is_kept() -> None:
    outbox = Outbox()
    assert put(outbox, event("a", 1)) is False
    assert put(outbox, event("b", 1)) is False
    assert put(outbox, event("a", 2, position=2)) is True
    assert put(outbox, event("a", 3, position=1)) is True
    assert len(outbox) == 2
    frames = [decode_event(frame) for frame in drain(outbox)]
    # `a` keeps its place in line, with its latest state.
    assert [(e.contact, e.seq, e.position) for e in frames] == [("a", 3, 1), ("b", 1, 3)]


def test_text_is_passed_through_untouched() -> None:
    outbox = Outbox()
    ev = event("a", 1)
    shared = ev.encode().decode()
    outbox.put_event(ev, shared)
    assert outbox.pop() is shared


def test_control_frames_go_first() -> None:
    outbox = Outbox()
    put(outbox, event("a", 1))
    outbox.put_control('{"type":"pong"}')
    put(outbox, event("b", 1))
    outbox.put_control('{"type":"error"}')
    frames = drain(outbox)
    assert frames[:2] == ['{"type":"pong"}', '{"type":"error"}']
    assert [json.loads(f)["contact"] for f in frames[2:]] == ["a", "b"]


def test_control_frames_are_bounded() -> None:
    outbox = Outbox(max_control=3)
    for _ in range(3):
        outbox.put_control("x")
    with pytest.raises(OutboxFull):
        outbox.put_control("x")
    assert len(outbox) == 3
    outbox.pop()
    outbox.put_control("y")  # room again once one is sent
    assert drain(outbox) == ["x", "x", "y"]


def test_pending_snapshot_replaced_by_update_stays_a_snapshot() -> None:
    outbox = Outbox()
    put(outbox, event("a", 1, "snapshot", position=5))
    put(outbox, event("a", 2, "update", position=4))
    put(outbox, event("a", 3, "update", position=3))
    (frame,) = drain(outbox)
    sent = decode_event(frame)
    assert sent.type == "snapshot"
    assert (sent.seq, sent.position) == (3, 3)
    # The text is the re-typed event, byte for byte.
    assert frame == event("a", 3, "snapshot", position=3).encode().decode()


def test_pending_snapshot_replaced_by_ended_is_ended() -> None:
    outbox = Outbox()
    put(outbox, event("a", 1, "snapshot"))
    put(outbox, event("a", 2, "ended"))
    (frame,) = drain(outbox)
    assert decode_event(frame).type == "ended"


def test_pending_update_replaced_by_update_keeps_shared_text() -> None:
    outbox = Outbox()
    put(outbox, event("a", 1))
    newer = event("a", 2)
    shared = newer.encode().decode()
    outbox.put_event(newer, shared)
    assert outbox.pop() is shared


def test_clear_drops_events_and_control_frames_and_keeps_the_bound() -> None:
    outbox = Outbox(max_control=2)
    put(outbox, event("a", 1))
    outbox.put_control("x")
    outbox.put_control("x")
    outbox.clear()
    assert not outbox and len(outbox) == 0 and outbox.pop() is None
    outbox.put_control("y")
    outbox.put_control("y")
    with pytest.raises(OutboxFull):
        outbox.put_control("y")


def test_discard_drops_only_that_contact() -> None:
    outbox = Outbox()
    put(outbox, event("a", 1))
    put(outbox, event("b", 1))
    outbox.discard("a")
    outbox.discard("missing")
    assert [json.loads(f)["contact"] for f in drain(outbox)] == ["b"]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(["snapshot", "update", "ended"])
        ),
        max_size=60,
    )
)
def test_bounded_by_contacts_and_last_state_delivered(puts) -> None:
    outbox = Outbox()
    last: dict[str, int] = {}
    for seq, (contact, type_) in enumerate(puts, start=1):
        put(outbox, event(contact, seq, type_))
        last[contact] = seq
        assert len(outbox) <= 4
    sent = [decode_event(f) for f in drain(outbox)]
    assert {e.contact: e.seq for e in sent} == last
    assert len(sent) == len(last)


def test_queue_figures_latest_per_queue_after_states_and_discardable() -> None:
    outbox = Outbox()
    outbox.put_figures("q-1", "figures 1 old")
    assert outbox.put_figures("q-1", "figures 1 new") is True
    assert outbox.put_figures("q-2", "figures 2") is False
    outbox.put_event(make_event(contact="c-1"), "state")
    outbox.put_control("pong")
    assert len(outbox) == 4
    assert [outbox.pop() for _ in range(4)] == ["pong", "state", "figures 1 new", "figures 2"]
    assert outbox.pop() is None and not outbox
    outbox.put_figures("q-1", "figures")
    outbox.discard_figures("q-1")
    outbox.discard_figures("q-unknown")
    assert not outbox
    outbox.put_figures("q-1", "figures")
    outbox.clear()
    assert outbox.pop() is None
