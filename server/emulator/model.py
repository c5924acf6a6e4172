"""A discrete-event model of a contact center: the truth the emulator answers from.

Pure Python: no I/O, no asyncio, no clock of its own. The caller moves simulated time forward
with `advance(to)`; every random draw comes from one `random.Random(seed)` and happens while
processing events in time order, so the history depends only on the seed and the sequence of
calls, never on how finely time was stepped.

Estimated wait time (EWT), the estimator the emulator reports: a waiting contact at position
`p` in a queue with `n` staffed agents, `f` of them free, and mean service time `S` has
`EWT = max(0, p - f) * S / max(n, 1)`. It assumes agents free up as a Poisson stream of rate
`n / S` (exact for exponential service times), ignores abandonment of the contacts ahead, and
does not peek at the model's drawn service times, as a real forecaster cannot either.

Routing order within a queue, as Amazon Connect routes: lower priority value first, then the
older contact, where a routing-age adjustment (`QueueTimeAdjustmentSeconds`) makes a contact
look older (positive) or younger (negative) for ordering only; its reported enqueue time and
wait do not change. Ties go to the contact created first.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum
from random import Random

DEFAULT_PRIORITY = 5  # Amazon Connect's default routing priority; 1 is routed first.
AGENT_NAMESPACE = uuid.UUID("5b0c3f9e-2f43-4c1a-9d5e-6a0f7b1e8c24")  # agent ids: uuid5 in it


class ContactStatus(StrEnum):
    WAITING = "waiting"
    CONNECTED = "connected"
    ABANDONED = "abandoned"


@dataclass(frozen=True)
class QueueSpec:
    """One queue: staffing and the distributions that drive it.

    Args:
        name: unique within its instance.
        agents: staffed agents serving only this queue.
        arrivals_per_minute: Poisson arrival rate; 0 means contacts only arrive through the API.
        mean_service_s: mean handle time; exponential unless `service_cv` is set.
        service_cv: coefficient of variation of handle time (gamma distribution) if set.
        mean_patience_s: mean time a caller waits before hanging up (exponential); None = forever.
        priorities: routing priorities drawn uniformly for modelled arrivals; empty = all default.
    """

    name: str
    agents: int = 2
    arrivals_per_minute: float = 2.0
    mean_service_s: float = 120.0
    service_cv: float | None = None
    mean_patience_s: float | None = 600.0
    priorities: tuple[int, ...] = ()


@dataclass
class Contact:
    contact_id: str
    instance_id: str
    queue_id: str
    priority: int
    enqueued_at: float
    seq: int
    status: ContactStatus = ContactStatus.WAITING
    connected_at: float | None = None
    left_at: float | None = None  # left the queue: connected or abandoned
    disconnected_at: float | None = None
    age_adjustment_s: int = 0  # QueueTimeAdjustmentSeconds: > 0 routes as if it came earlier
    agent_id: str | None = None  # the agent it was routed to; None when forced in without one

    @property
    def routing_key(self) -> tuple[int, float, int]:
        return (self.priority, self.enqueued_at - self.age_adjustment_s, self.seq)


@dataclass(frozen=True)
class ModelEvent:
    """Something that happened to a contact; `kind` is a Connect contact-event type."""

    kind: str  # QUEUED, CONNECTED_TO_AGENT, DISCONNECTED
    at: float
    contact: Contact


@dataclass
class Queue:
    queue_id: str
    instance_id: str
    spec: QueueSpec
    arrivals_per_minute: float
    busy: int = 0
    waiting_keys: list[tuple[int, float, int]] = field(default_factory=list)
    waiting: dict[tuple[int, float, int], Contact] = field(default_factory=dict)
    arrival_epoch: int = 0  # bumped when the rate changes, so a stale arrival event is ignored
    idle_agents: list[int] = field(default_factory=list)  # heap of free agents' indexes
    arrived: int = 0
    served: int = 0
    abandoned: int = 0

    @property
    def free(self) -> int:
        return max(0, self.spec.agents - self.busy)

    def waiting_in_order(self) -> list[Contact]:
        return [self.waiting[k] for k in self.waiting_keys]

    def agent_id(self, index: int) -> str:
        """The id of the queue's agent number `index`: a UUID derived from the queue id, so
        naming agents draws no random number and the seed's history stays as it was."""
        return str(uuid.uuid5(AGENT_NAMESPACE, f"{self.queue_id}/{index}"))


class UnknownQueueError(LookupError):
    pass


class NotWaitingError(RuntimeError):
    pass


class QueueModel:
    """Instances with queues, agents and contacts, moved forward in simulated time.

    Args:
        seed: drives ids, arrivals, service and patience draws.
        instances: one list of queue specs per instance.
        start: simulated time at creation (epoch seconds).
        max_history: departed contacts kept for lookups; the oldest are forgotten first.
    """

    def __init__(
        self,
        seed: int,
        instances: list[list[QueueSpec]],
        start: float = 0.0,
        max_history: int = 100_000,
    ) -> None:
        self.rng = Random(seed)
        self.now = start
        self.max_history = max_history
        self.instances: dict[str, list[Queue]] = {}
        self.queues: dict[str, Queue] = {}
        self.contacts: dict[str, Contact] = {}
        self._departed: OrderedDict[str, None] = OrderedDict()
        self._heap: list[tuple[float, int, str, str, int]] = []
        self._seq = itertools.count()
        self._events: list[ModelEvent] = []
        for specs in instances:
            instance_id = self._new_id()
            self.instances[instance_id] = []
            for spec in specs:
                queue = Queue(self._new_id(), instance_id, spec, spec.arrivals_per_minute)
                queue.idle_agents = list(range(spec.agents))  # sorted: already a heap
                self.instances[instance_id].append(queue)
                self.queues[queue.queue_id] = queue
        for queue in self.queues.values():
            self._schedule_arrival(queue)

    # --- lookups -------------------------------------------------------------------------------

    def find_queue(self, name_or_id: str, instance_id: str | None = None) -> Queue:
        """The queue with this id, or with this name in `instance_id` (default: first instance)."""
        queue = self.queues.get(name_or_id)
        if queue is not None and instance_id in (None, queue.instance_id):
            return queue
        if instance_id is None:
            instance_id = next(iter(self.instances))
        for queue in self.instances.get(instance_id, []):
            if queue.spec.name == name_or_id:
                return queue
        raise UnknownQueueError(name_or_id)

    def position(self, contact: Contact) -> int:
        """1-based rank among the contacts waiting in the same queue, in routing order."""
        keys = self.queues[contact.queue_id].waiting_keys
        return bisect.bisect_left(keys, contact.routing_key) + 1

    def ewt(self, contact: Contact) -> float:
        """Estimated seconds until connected to an agent; see the module docstring."""
        queue = self.queues[contact.queue_id]
        ahead = self.position(contact) - queue.free
        if ahead <= 0:
            return 0.0
        return ahead * queue.spec.mean_service_s / max(queue.spec.agents, 1)

    def drain_events(self) -> list[ModelEvent]:
        events, self._events = self._events, []
        return events

    # --- changes from outside ------------------------------------------------------------------

    def set_arrival_rate(self, queue: Queue, per_minute: float) -> None:
        if per_minute < 0:
            raise ValueError("arrival rate must be >= 0")
        queue.arrivals_per_minute = per_minute
        queue.arrival_epoch += 1  # Poisson arrivals are memoryless: redrawing is exact
        self._schedule_arrival(queue)

    def enqueue(self, queue: Queue, priority: int | None = None, waited: float = 0.0) -> Contact:
        """Put a new contact in `queue` now (it may be routed to a free agent at once).

        Args:
            waited: seconds the contact has already waited (its enqueue time is that much
                earlier), so that a queue filled at once looks like one that built up.
        """
        if waited < 0:
            raise ValueError("waited must be >= 0")
        if priority is None:
            priority = (
                self.rng.choice(queue.spec.priorities)
                if queue.spec.priorities
                else DEFAULT_PRIORITY
            )
        contact = Contact(
            self._new_id(),
            queue.instance_id,
            queue.queue_id,
            priority,
            self.now - waited,
            next(self._seq),
        )
        self.contacts[contact.contact_id] = contact
        queue.arrived += 1
        bisect.insort(queue.waiting_keys, contact.routing_key)
        queue.waiting[contact.routing_key] = contact
        self._events.append(ModelEvent("QUEUED", self.now, contact))
        patience = queue.spec.mean_patience_s
        if patience:
            at = self.now + self.rng.expovariate(1.0 / patience)
            self._push(at, "abandon", contact.contact_id)
        self._dispatch(queue)
        return contact

    def connect(self, contact_id: str) -> Contact:
        """Take a waiting contact out of its queue to an agent now, even if none is free."""
        contact = self._waiting(contact_id)
        queue = self.queues[contact.queue_id]
        self._connect(queue, contact, with_agent=queue.free > 0)
        return contact

    def abandon(self, contact_id: str) -> Contact:
        contact = self._waiting(contact_id)
        self._abandon(contact)
        return contact

    def update_routing(
        self, contact_id: str, priority: int | None = None, age_adjustment_s: int | None = None
    ) -> Contact:
        """Change a waiting contact's routing priority and/or routing-age adjustment now.

        Both are absolute values (the adjustment replaces the previous one, it does not add to
        it). Only the contact's place in its queue moves; no agent is freed or taken, and no
        random number is drawn, so the rest of the history stays as the seed made it.

        Raises:
            KeyError: no such contact.
            NotWaitingError: the contact has left its queue.
            ValueError: a priority below 1 (Connect's minimum).
        """
        if priority is not None and priority < 1:
            raise ValueError("priority must be >= 1")
        contact = self._waiting(contact_id)
        queue = self.queues[contact.queue_id]
        old_key = contact.routing_key
        del queue.waiting_keys[bisect.bisect_left(queue.waiting_keys, old_key)]
        del queue.waiting[old_key]
        if priority is not None:
            contact.priority = priority
        if age_adjustment_s is not None:
            contact.age_adjustment_s = age_adjustment_s
        bisect.insort(queue.waiting_keys, contact.routing_key)
        queue.waiting[contact.routing_key] = contact
        return contact

    def set_spec(self, queue: Queue, spec: QueueSpec) -> None:
        """Replace a queue's spec (staffing stays as configured at start: `agents` must match).

        Priorities and patience apply to contacts that arrive from now on; the arrival rate is
        set with `set_arrival_rate`.
        """
        if spec.agents != queue.spec.agents:
            raise ValueError("agents cannot change at run time")
        queue.spec = spec

    def advance(self, to: float) -> None:
        """Process every event up to simulated time `to`; going backwards is a no-op."""
        heap = self._heap
        while heap and heap[0][0] <= to:
            at, _, kind, key, epoch = heapq.heappop(heap)
            self.now = max(self.now, at)
            if kind == "arrival":
                queue = self.queues[key]
                if epoch == queue.arrival_epoch:
                    self.enqueue(queue)
                    self._schedule_arrival(queue)
            elif kind == "done":
                queue_id, contact_id, agent = key.split(" ")
                self._finish(self.queues[queue_id], self.contacts.get(contact_id), int(agent))
            elif kind == "abandon":
                contact = self.contacts.get(key)
                if contact is not None and contact.status is ContactStatus.WAITING:
                    self._abandon(contact)
        self.now = max(self.now, to)

    # --- internals -----------------------------------------------------------------------------

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _push(self, at: float, kind: str, key: str, epoch: int = 0) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), kind, key, epoch))

    def _schedule_arrival(self, queue: Queue) -> None:
        per_second = queue.arrivals_per_minute / 60.0
        # A positive rate so small that it underflows per second means no arrivals (found by
        # hypothesis: 5e-324 per minute).
        if per_second > 0:
            gap = self.rng.expovariate(per_second)
            self._push(self.now + gap, "arrival", queue.queue_id, queue.arrival_epoch)

    def _service_time(self, spec: QueueSpec) -> float:
        if spec.service_cv:
            shape = 1.0 / spec.service_cv**2
            return self.rng.gammavariate(shape, spec.mean_service_s / shape)
        return self.rng.expovariate(1.0 / spec.mean_service_s)

    def _waiting(self, contact_id: str) -> Contact:
        contact = self.contacts.get(contact_id)
        if contact is None:
            raise KeyError(contact_id)
        if contact.status is not ContactStatus.WAITING:
            raise NotWaitingError(contact.status.value)
        return contact

    def _dispatch(self, queue: Queue) -> None:
        while queue.free > 0 and queue.waiting_keys:
            self._connect(queue, queue.waiting[queue.waiting_keys[0]], with_agent=True)

    def _remove_waiting(self, contact: Contact) -> Queue:
        queue = self.queues[contact.queue_id]
        key = contact.routing_key
        del queue.waiting_keys[bisect.bisect_left(queue.waiting_keys, key)]
        del queue.waiting[key]
        contact.left_at = self.now
        self._departed[contact.contact_id] = None
        while len(self._departed) > self.max_history:
            old, _ = self._departed.popitem(last=False)
            del self.contacts[old]
        return queue

    def _connect(self, queue: Queue, contact: Contact, with_agent: bool) -> None:
        self._remove_waiting(contact)
        contact.status = ContactStatus.CONNECTED
        contact.connected_at = self.now
        queue.served += 1
        self._events.append(ModelEvent("CONNECTED_TO_AGENT", self.now, contact))
        if with_agent:
            queue.busy += 1
            agent = heapq.heappop(queue.idle_agents)  # the lowest-numbered free agent
            contact.agent_id = queue.agent_id(agent)
            done_at = self.now + self._service_time(queue.spec)
            self._push(done_at, "done", f"{queue.queue_id} {contact.contact_id} {agent}")

    def _finish(self, queue: Queue, contact: Contact | None, agent: int) -> None:
        queue.busy -= 1
        heapq.heappush(queue.idle_agents, agent)
        if contact is not None:  # None: forgotten already (history is bounded)
            contact.disconnected_at = self.now
            self._events.append(ModelEvent("DISCONNECTED", self.now, contact))
        self._dispatch(queue)

    def _abandon(self, contact: Contact) -> None:
        queue = self._remove_waiting(contact)
        contact.status = ContactStatus.ABANDONED
        contact.disconnected_at = self.now
        queue.abandoned += 1
        self._events.append(ModelEvent("DISCONNECTED", self.now, contact))
