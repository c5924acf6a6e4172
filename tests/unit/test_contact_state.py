"""The diff rule and staleness of one tracked contact."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.connect.contact_state import ContactState, Observation, change_for, is_stale
from server.events import ContactEvent
from tests.unit._factories import make_event

THRESHOLD = 5.0


def published(position: int | None, ewt: int | None, stale: bool = False) -> ContactState:
    state = ContactState(instance="i", contact="c")
    state.published = True
    state.published_position = position
    state.published_ewt = ewt
    state.published_stale = stale
    state.last_fresh = 0.0
    return state


def publish(state: ContactState, seen: Observation) -> None:
    """What the poller records after publishing `seen`."""
    state.published = True
    state.published_position = seen.position
    state.published_ewt = seen.ewt
    state.published_stale = False


def test_first_observation_is_a_snapshot() -> None:
    state = ContactState(instance="i", contact="c")
    assert change_for(state, Observation(3, 60), THRESHOLD) == "snapshot"
    assert change_for(state, Observation(0, None), THRESHOLD) == "snapshot"


def test_nothing_changed_publishes_nothing() -> None:
    assert change_for(published(3, 60), Observation(3, 60), THRESHOLD) is None
    assert change_for(published(3, None), Observation(3, None), THRESHOLD) is None


@pytest.mark.parametrize("position", [0, 2, 4, 100])
def test_position_change_is_an_update(position) -> None:
    assert change_for(published(3, 60), Observation(position, 60), THRESHOLD) == "update"


@pytest.mark.parametrize(
    ("ewt", "expected"),
    [(64, None), (56, None), (65, "update"), (55, "update"), (61, None), (200, "update")],
)
def test_ewt_must_move_by_the_threshold(ewt, expected) -> None:
    assert change_for(published(3, 60), Observation(3, ewt), THRESHOLD) == expected


def test_zero_threshold_publishes_any_ewt_move() -> None:
    assert change_for(published(3, 60), Observation(3, 61), 0.0) == "update"
    assert change_for(published(3, 60), Observation(3, 60), 0.0) is None


def test_ewt_appearing_or_disappearing_is_an_update() -> None:
    assert change_for(published(3, None), Observation(3, 60), THRESHOLD) == "update"
    assert change_for(published(3, 60), Observation(3, None), THRESHOLD) == "update"


@pytest.mark.parametrize("direction", [1, -1])
def test_slow_drift_publishes_once_cumulative_move_reaches_threshold(direction) -> None:
    state = published(3, 100)
    published_at = []
    ewt = 100
    for poll in range(1, 21):
        ewt += direction
        seen = Observation(3, ewt)
        if change_for(state, seen, THRESHOLD) is not None:
            publish(state, seen)
            published_at.append(poll)
    # Compared with the last *published* value, not the last polled one.
    assert published_at == [5, 10, 15, 20]


def test_stale_state_publishes_when_fresh_again_even_if_equal() -> None:
    state = published(3, 60, stale=True)
    assert change_for(state, Observation(3, 60), THRESHOLD) == "update"


@given(
    before=st.tuples(st.integers(0, 50), st.none() | st.integers(0, 3600)),
    after=st.tuples(st.integers(0, 50), st.none() | st.integers(0, 3600)),
    threshold=st.floats(min_value=0, max_value=600),
)
def test_change_rule_matches_its_definition(before, after, threshold) -> None:
    state = published(*before)
    seen = Observation(*after)
    ewt_moved = (before[1] is None) != (after[1] is None) or (
        before[1] is not None
        and after[1] is not None
        and abs(after[1] - before[1]) >= max(threshold, 1e-9)
    )
    expected = "update" if before[0] != after[0] or ewt_moved else None
    assert change_for(state, seen, threshold) == expected


# -- staleness -------------------------------------------------------------------------------


def test_is_stale_after_the_age() -> None:
    state = published(3, 60)
    state.last_fresh = 100.0
    assert not is_stale(state, 109.9, 10)
    assert is_stale(state, 110.0, 10)


def test_not_stale_when_never_published_or_already_stale_or_never_fresh() -> None:
    never = ContactState(instance="i", contact="c", last_fresh=0.0)
    assert not is_stale(never, 1000, 10)
    already = published(3, 60, stale=True)
    assert not is_stale(already, 1000, 10)
    unknown = published(3, 60)
    unknown.last_fresh = None
    assert not is_stale(unknown, 1000, 10)


# -- resume ----------------------------------------------------------------------------------


def stored_event(**changes) -> ContactEvent:
    return make_event(
        **{
            "instance": "i",
            "contact": "c",
            "queue": "q-stored",
            "position": 4,
            "ewt": 90,
            "stale": True,
            "seq": 12,
            **changes,
        }
    )


def test_resume_without_stored_state_starts_fresh() -> None:
    state = ContactState.resume("i", "c", None, None)
    assert not state.published
    assert change_for(state, Observation(1, 1), THRESHOLD) == "snapshot"


def test_resume_continues_from_the_stored_event() -> None:
    state = ContactState.resume("i", "c", None, stored_event())
    assert state.published
    assert (state.published_position, state.published_ewt) == (4, 90)
    assert state.published_stale
    assert state.queue == "q-stored"
    # Already published: a fresh value is an update (stale → fresh), not a second snapshot.
    assert change_for(state, Observation(4, 90), THRESHOLD) == "update"


def test_resume_prefers_the_given_queue() -> None:
    state = ContactState.resume("i", "c", "q-given", stored_event())
    assert state.queue == "q-given"


def test_resume_with_a_fresh_stored_event_diffs_against_it() -> None:
    state = ContactState.resume("i", "c", None, stored_event(stale=False))
    assert change_for(state, Observation(4, 92), THRESHOLD) is None
    assert change_for(state, Observation(3, 92), THRESHOLD) == "update"


def test_ended_stored_event_is_not_resumed() -> None:
    ended = stored_event(type="ended", reason="left_queue", position=None, ewt=None)
    state = ContactState.resume("i", "c", "q", ended)
    assert not state.published
    assert state.queue == "q"
    assert change_for(state, Observation(1, 10), THRESHOLD) == "snapshot"
