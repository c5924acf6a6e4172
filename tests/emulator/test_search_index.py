"""The search index and the agents behind AgentInfo.Id, on the model alone (no sockets, no
clock): which version of a contact a search sees at a given lag, and forgetting in step with
the model."""

from __future__ import annotations

from server.emulator.model import QueueModel, QueueSpec
from server.emulator.search_index import ContactSearchIndex

START = 1_700_000_000.0
ONE_AGENT = QueueSpec(
    "q", agents=1, arrivals_per_minute=0, mean_service_s=1e5, mean_patience_s=None
)


def model_and_index(max_history: int = 100) -> tuple[QueueModel, ContactSearchIndex]:
    return QueueModel(7, [[ONE_AGENT]], START, max_history), ContactSearchIndex(max_history)


def feed(model: QueueModel, index: ContactSearchIndex) -> None:
    for event in model.drain_events():
        index.record(event)


def test_a_search_sees_the_version_its_lag_allows():
    model, index = model_and_index()
    (queue,) = model.queues.values()
    model.advance(START + 10)
    served = model.enqueue(queue)  # the free agent takes it at once
    waiting = model.enqueue(queue)
    model.advance(START + 20)
    model.abandon(waiting.contact_id)
    feed(model, index)
    instance = served.instance_id

    def seen(now: float, lag: float) -> dict[str, tuple[float | None, float | None]]:
        return {
            r.contact_id: (r.connected_at, r.disconnected_at)
            for r in index.visible(instance, now, lag)
        }

    assert seen(START + 9, 0) == {}
    assert seen(START + 12, 2) == {
        served.contact_id: (START + 10, None),
        waiting.contact_id: (None, None),
    }
    assert seen(START + 21, 2)[waiting.contact_id] == (None, None)  # the end is 1 s old
    assert seen(START + 22, 2)[waiting.contact_id] == (None, START + 20)
    assert list(index.visible("another-instance", START + 30, 0)) == []


def test_agents_are_named_without_random_draws_and_freed_when_done():
    model, _ = model_and_index()
    (queue,) = model.queues.values()
    first = model.enqueue(queue)
    second = model.enqueue(queue)  # waits: the only agent is busy
    assert first.agent_id == queue.agent_id(0) and second.agent_id is None
    model.advance(START + 10**7)  # the first call ends; the agent takes the second
    assert second.agent_id == first.agent_id
    again, _ = model_and_index()
    assert next(iter(again.queues.values())).agent_id(0) == queue.agent_id(0)  # same seed, same id


def test_forgets_in_step_with_the_model():
    model, index = model_and_index(max_history=2)
    (queue,) = model.queues.values()
    contacts = [model.enqueue(queue) for _ in range(4)]
    for contact in contacts[1:]:
        model.abandon(contact.contact_id)  # the first is with the agent: three have left
    feed(model, index)
    kept = {r.contact_id for r in index.visible(queue.instance_id, START, 0)}
    assert kept == set(model.contacts) == {c.contact_id for c in contacts[2:]}
