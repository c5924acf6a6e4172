"""Routing order in the model: priority, then the age-adjusted enqueue time, then creation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.emulator.model import NotWaitingError, Queue, QueueModel, QueueSpec

QUIET = QueueSpec("q", agents=0, arrivals_per_minute=0, mean_patience_s=None)


def model_with(n: int, gap_s: float = 10.0) -> tuple[QueueModel, list[str]]:
    """A model with one agentless queue and `n` contacts enqueued `gap_s` apart."""
    model = QueueModel(7, [[QUIET]], start=1_000.0)
    queue = model.find_queue("q")
    ids = []
    for _ in range(n):
        ids.append(model.enqueue(queue).contact_id)
        model.advance(model.now + gap_s)
    return model, ids


def order(model: QueueModel) -> list[str]:
    return order_of(model.find_queue("q"))


def order_of(queue: Queue) -> list[str]:
    return [c.contact_id for c in queue.waiting_in_order()]


def test_adjustment_makes_a_contact_look_older_for_ordering_only():
    model, (a, b, c) = model_with(3)  # enqueued at 1000, 1010, 1020
    contact = model.update_routing(c, age_adjustment_s=15)  # orders as if at 1005
    assert order(model) == [a, c, b]
    assert [model.position(model.contacts[i]) for i in (a, c, b)] == [1, 2, 3]
    assert contact.enqueued_at == 1_020.0  # the reported enqueue time does not move
    model.update_routing(c, age_adjustment_s=25)  # absolute, not added: as if at 995
    assert order(model) == [c, a, b]
    model.update_routing(c, age_adjustment_s=0)
    assert order(model) == [a, b, c]


def test_negative_adjustment_makes_a_contact_look_younger():
    model, (a, b, c) = model_with(3)
    model.update_routing(a, age_adjustment_s=-15)  # as if at 1015
    assert order(model) == [b, a, c]


def test_priority_beats_any_age():
    model, (a, b, c) = model_with(3)
    model.update_routing(a, age_adjustment_s=10_000)
    model.update_routing(c, priority=1)
    assert order(model) == [c, a, b]
    model.update_routing(c, priority=9)
    assert order(model) == [a, b, c]


def test_equal_routing_age_keeps_creation_order():
    model, (a, b) = model_with(2)
    model.update_routing(b, age_adjustment_s=10)  # same routing age as a
    assert order(model) == [a, b]


def test_adjusted_contact_is_served_first():
    spec = QueueSpec(
        "q", agents=1, arrivals_per_minute=0, mean_service_s=1_000, mean_patience_s=None
    )
    model = QueueModel(3, [[spec]], start=0.0)
    queue = model.find_queue("q")
    model.enqueue(queue)  # takes the only agent
    first = model.enqueue(queue)
    model.advance(1.0)
    late = model.enqueue(queue)
    assert queue.busy == 1 and order_of(queue) == [first.contact_id, late.contact_id]
    model.update_routing(late.contact_id, age_adjustment_s=60)
    model.drain_events()
    model.advance(100_000.0)  # the agent frees up twice and takes the head each time
    events = model.drain_events()
    connected = [e.contact.contact_id for e in events if e.kind == "CONNECTED_TO_AGENT"]
    assert connected == [late.contact_id, first.contact_id]


def test_update_errors():
    model, (a,) = model_with(1)
    with pytest.raises(KeyError):
        model.update_routing("nope", priority=1)
    with pytest.raises(ValueError, match="priority"):
        model.update_routing(a, priority=0)
    model.abandon(a)
    with pytest.raises(NotWaitingError):
        model.update_routing(a, priority=1)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    changes=st.lists(
        st.tuples(st.integers(0, 9), st.one_of(st.none(), st.integers(1, 9)), st.integers(-99, 99)),
        max_size=12,
    ),
)
def test_order_is_always_the_sorted_routing_keys(seed, changes):
    spec = QueueSpec("q", agents=1, arrivals_per_minute=3, mean_patience_s=60, priorities=(1, 5))
    model = QueueModel(seed, [[spec]], start=0.0)
    queue = model.find_queue("q")
    for index, priority, adjustment in changes:
        model.advance(model.now + 7)
        waiting = queue.waiting_in_order()
        if waiting:
            contact = waiting[index % len(waiting)]
            model.update_routing(contact.contact_id, priority, adjustment)
        waiting = queue.waiting_in_order()
        expected = sorted(
            waiting, key=lambda c: (c.priority, c.enqueued_at - c.age_adjustment_s, c.seq)
        )
        assert waiting == expected
        assert [model.position(c) for c in waiting] == list(range(1, len(waiting) + 1))


def test_history_with_routing_changes_is_deterministic():
    spec = QueueSpec("q", agents=2, arrivals_per_minute=6, mean_patience_s=300, priorities=(1, 5))

    def run() -> list[tuple[str, float, str]]:
        model = QueueModel(11, [[spec]], start=0.0)
        queue = model.find_queue("q")
        out = []
        for step in range(60):
            model.advance(step * 13.0)
            waiting = queue.waiting_in_order()
            if waiting and step % 3 == 0:
                model.update_routing(waiting[-1].contact_id, priority=1, age_adjustment_s=step)
            out += [(e.kind, e.at, e.contact.contact_id) for e in model.drain_events()]
        return out

    assert run() == run()


def test_priority_share_and_abandonment_are_expressible():
    # The "harder scenario": 10 % of arrivals at priority 1, about 10 % hanging up.
    spec = QueueSpec(
        "q",
        agents=4,
        arrivals_per_minute=20,
        mean_service_s=10,
        mean_patience_s=60,
        priorities=(1, 5, 5, 5, 5, 5, 5, 5, 5, 5),
    )
    model = QueueModel(5, [[spec]], start=0.0)
    model.advance(6 * 3600)
    contacts = list(model.contacts.values())
    share = sum(c.priority == 1 for c in contacts) / len(contacts)
    queue = model.find_queue("q")
    assert 0.08 < share < 0.12
    assert 0.03 < queue.abandoned / queue.arrived < 0.2


def test_set_spec_keeps_staffing():
    model, _ = model_with(0)
    queue = model.find_queue("q")
    model.set_spec(queue, QueueSpec("q", agents=0, priorities=(1,)))
    assert queue.spec.priorities == (1,)
    with pytest.raises(ValueError, match="agents"):
        model.set_spec(queue, QueueSpec("q", agents=3))
