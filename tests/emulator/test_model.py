"""The queue model on its own: no sockets, no clock, no asyncio."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.emulator.model import ContactStatus, NotWaitingError, QueueModel, QueueSpec
from server.ids import is_valid_id

FIFO = QueueSpec("fifo", agents=2, arrivals_per_minute=6, mean_service_s=60, mean_patience_s=120)
PRIO = QueueSpec(
    "prio",
    agents=1,
    arrivals_per_minute=4,
    mean_service_s=90,
    service_cv=0.5,
    mean_patience_s=300,
    priorities=(1, 3, 5),
)
UUID_RE = re.compile(r"[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}")

operation = st.one_of(
    st.tuples(st.just("advance"), st.floats(0, 120)),
    st.tuples(st.just("enqueue"), st.sampled_from(["fifo", "prio"]), st.sampled_from([None, 1, 9])),
    st.tuples(st.just("connect"), st.integers(0, 50)),
    st.tuples(st.just("abandon"), st.integers(0, 50)),
    st.tuples(st.just("rate"), st.sampled_from(["fifo", "prio"]), st.floats(0, 30)),
)


def new_model(seed: int) -> QueueModel:
    return QueueModel(seed, [[FIFO, PRIO], [FIFO]], start=1_700_000_000.0)


def apply(model: QueueModel, op: tuple) -> None:
    kind = op[0]
    if kind == "advance":
        model.advance(model.now + op[1])
    elif kind == "enqueue":
        priority = None if op[1] == "fifo" else op[2]  # the FIFO queue never gets priorities
        model.enqueue(model.find_queue(op[1]), priority)
    elif kind in ("connect", "abandon"):
        ids = list(model.contacts)
        if ids:
            with contextlib.suppress(NotWaitingError):
                getattr(model, kind)(ids[op[1] % len(ids)])
    else:
        model.set_arrival_rate(model.find_queue(op[1]), op[2])


def history(model: QueueModel) -> list[tuple[str, float, str]]:
    return [(e.kind, e.at, e.contact.contact_id) for e in model.drain_events()]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), ops=st.lists(operation, max_size=30))
def test_invariants_hold_at_every_step(seed, ops):
    model = new_model(seed)
    previous: dict[str, int] = {}
    for op in ops:
        apply(model, op)
        for queue in model.queues.values():
            waiting = queue.waiting_in_order()
            positions = [model.position(c) for c in waiting]
            assert positions == list(range(1, len(waiting) + 1))
            assert all(c.status is ContactStatus.WAITING for c in waiting)
            assert all(model.ewt(c) >= 0 for c in waiting)
            assert queue.arrived == len(waiting) + queue.served + queue.abandoned
            assert 0 <= queue.busy <= queue.spec.agents
            if queue.spec.name == "fifo":
                for contact, position in zip(waiting, positions, strict=True):
                    assert position <= previous.get(contact.contact_id, position)
                    previous[contact.contact_id] = position


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), ops=st.lists(operation, max_size=20))
def test_same_seed_same_history(seed, ops):
    first, second = new_model(seed), new_model(seed)
    for op in ops:
        apply(first, op)
        apply(second, op)
    assert history(first) == history(second)
    assert list(first.contacts) == list(second.contacts)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), cuts=st.lists(st.floats(0, 3600), max_size=20))
def test_history_does_not_depend_on_step_size(seed, cuts):
    coarse, fine = new_model(seed), new_model(seed)
    coarse.advance(coarse.now + 3600)
    for cut in sorted(cuts):
        fine.advance(1_700_000_000.0 + cut)
    fine.advance(1_700_000_000.0 + 3600)
    assert history(coarse) == history(fine)


def test_ids_are_seeded_uuids_accepted_by_connect():
    model = new_model(7)
    model.advance(model.now + 600)
    ids = [*model.instances, *model.queues, *model.contacts]
    assert ids and all(UUID_RE.fullmatch(i) and is_valid_id(i) for i in ids)
    assert list(new_model(7).instances) == list(model.instances)
    assert list(new_model(8).instances) != list(model.instances)


def test_priority_then_enqueue_time():
    model = QueueModel(1, [[QueueSpec("q", agents=0, arrivals_per_minute=0, mean_patience_s=None)]])
    queue = model.find_queue("q")
    a = model.enqueue(queue, 5)
    model.advance(1)
    b = model.enqueue(queue, 1)
    model.advance(2)
    c = model.enqueue(queue, 5)
    d = model.enqueue(queue, 1)
    assert [model.position(x) for x in (b, d, a, c)] == [1, 2, 3, 4]
    model.abandon(b.contact_id)
    assert [model.position(x) for x in (d, a, c)] == [1, 2, 3]
    with pytest.raises(NotWaitingError):
        model.connect(b.contact_id)
    with pytest.raises(KeyError):
        model.connect("nope")


def test_ewt_estimator():
    spec = QueueSpec("q", agents=2, arrivals_per_minute=0, mean_service_s=100, mean_patience_s=None)
    model = QueueModel(1, [[spec]])
    queue = model.find_queue("q")
    contacts = [model.enqueue(queue) for _ in range(5)]
    assert queue.busy == 2 and queue.served == 2  # two went straight to agents
    waiting = queue.waiting_in_order()
    assert waiting == contacts[2:]
    # position p, no free agent: p * S / n
    assert [model.ewt(c) for c in waiting] == [50.0, 100.0, 150.0]


def test_agents_serve_and_patience_abandons():
    spec = QueueSpec("q", agents=1, arrivals_per_minute=0, mean_service_s=60, mean_patience_s=30)
    model = QueueModel(3, [[spec]])
    queue = model.find_queue("q")
    for _ in range(20):
        model.enqueue(queue)
    model.advance(10_000)
    assert not queue.waiting_keys
    assert queue.served + queue.abandoned == 20
    assert queue.abandoned > 0 and queue.served > 0 and queue.busy == 0
    kinds = {e.kind for e in model.drain_events()}
    assert kinds == {"QUEUED", "CONNECTED_TO_AGENT", "DISCONNECTED"}


def test_arrival_rate_zero_means_api_only_and_history_is_bounded():
    spec = QueueSpec("q", agents=1, arrivals_per_minute=60, mean_service_s=1, mean_patience_s=None)
    model = QueueModel(1, [[spec]], max_history=10)
    model.advance(600)
    queue = model.find_queue("q")
    assert queue.arrived > 100
    assert len(model.contacts) <= 10 + len(queue.waiting_keys) + 1
    model.set_arrival_rate(queue, 0)
    arrived = queue.arrived
    model.advance(100_000)
    assert queue.arrived == arrived
