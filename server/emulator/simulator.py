"""The emulator's state apart from HTTP: simulated clock, model, quotas, faults, leaves, stats.

Synchronous and free of I/O; the HTTP layer calls `advance()` before it reads the model, and a
background task calls it on a tick so events flow while nobody asks.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.emulator.config import EmulatorConfig
from server.emulator.delivery import DeliveryPlanner
from server.emulator.faults import FaultInjector, FaultSettings
from server.emulator.model import Contact, ContactStatus, ModelEvent, QueueModel
from server.emulator.search_index import ContactSearchIndex
from server.events import utc_iso
from server.ids import bare_id, instance_arn, queue_arn
from server.ratelimit import TokenBucket

OPERATIONS = (
    "getContactMetrics",
    "describeContact",
    "getCurrentMetricData",
    "listQueues",
    "describeQueue",
    "updateContactRoutingData",
    "searchContacts",
)


class SimClock:
    """Simulated epoch seconds = start + real elapsed x speed (frozen while paused)."""

    def __init__(
        self, mono: Callable[[], float], start: float, speed: float, paused: bool = False
    ) -> None:
        self._mono = mono
        self._anchor_mono = mono()
        self._anchor_sim = start
        self.speed = speed
        self.paused = paused

    @property
    def rate(self) -> float:
        return 0.0 if self.paused else self.speed

    def now(self) -> float:
        return self._anchor_sim + (self._mono() - self._anchor_mono) * self.rate

    def set(self, speed: float | None = None, paused: bool | None = None) -> None:
        # Re-anchor so a change of pace never makes simulated time jump.
        self._anchor_sim, self._anchor_mono = self.now(), self._mono()
        if speed is not None:
            self.speed = speed
        if paused is not None:
            self.paused = paused


class Quota:
    """An account-wide request quota for one operation, in real requests per second."""

    def __init__(self, enabled: bool, rps: float, burst: int, now: float) -> None:
        self.enabled = enabled
        self.bucket = TokenBucket(rps, burst, now)

    def allow(self, now: float) -> bool:
        return not self.enabled or self.bucket.try_take(now)

    def as_json(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "rps": self.bucket.rate, "burst": int(self.bucket.burst)}


@dataclass
class OperationStats:
    """Requests one operation received, by outcome (`ok` or the AWS error type) and contact."""

    total: int = 0
    by_outcome: Counter[str] = field(default_factory=Counter)
    by_contact: Counter[str] = field(default_factory=Counter)

    def record(self, outcome: str, contact_id: str | None) -> None:
        self.total += 1
        self.by_outcome[outcome] += 1
        if contact_id is not None:
            self.by_contact[contact_id] += 1

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "byOutcome": dict(self.by_outcome),
            "byContact": dict(self.by_contact),
        }


class Emulator:
    """Owns the model and every run-time setting; all times from the injected `mono` clock.

    Args:
        config: start-up configuration.
        mono: monotonic clock (real seconds) for quotas, leave grace and simulated time.
        wall: wall clock (epoch seconds) that simulated time starts from.
    """

    def __init__(
        self,
        config: EmulatorConfig,
        mono: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.mono = mono
        self.clock = SimClock(mono, wall(), config.speed, config.paused)
        self.started_at = self.clock.now()  # simulated; the queues' LastModifiedTime
        self.model = QueueModel(
            config.seed,
            [list(config.queues) for _ in range(config.instances)],
            start=self.started_at,
            max_history=config.max_history,
        )
        now = mono()
        self.metrics_quota = Quota(config.quota_enabled, config.rps, config.burst, now)
        self.describe_quota = Quota(
            config.describe_quota_enabled, config.describe_rps, config.describe_burst, now
        )
        # Every operation's quota by operation name (the two above included), one bucket each.
        self.quotas: dict[str, Quota] = {
            "getContactMetrics": self.metrics_quota,
            "describeContact": self.describe_quota,
        }
        for operation, (rps, burst) in config.operation_quotas.items():
            self.quotas[operation] = Quota(config.operation_quotas_enabled, rps, burst, now)
        faults = FaultSettings(dict(config.fault_rates), config.latency_ms, config.jitter_ms)
        self.faults = FaultInjector(config.seed, faults)
        self.leave_mode = config.leave_mode
        self.leave_grace = config.leave_grace
        self.stats = {name: OperationStats() for name in OPERATIONS}
        self.event_sink: Callable[[ModelEvent], None] | None = None
        self.delivery = DeliveryPlanner(config.seed, config.event_delivery)
        self._left_at: OrderedDict[str, float] = OrderedDict()  # contact id -> mono time
        self.search_index = ContactSearchIndex(config.max_history)
        self.search_lag_s = config.search_lag_s
        self.search_includes_queued = config.search_includes_queued

    def advance(self) -> None:
        """Bring the model up to the simulated now; note leave times; pass events on."""
        sim_now = self.clock.now()
        self.model.advance(sim_now)
        events = self.model.drain_events()
        if not events:
            return
        mono_now, rate = self.mono(), self.clock.rate
        for event in events:
            self.search_index.record(event)
            contact_id = event.contact.contact_id
            if event.kind != "QUEUED" and contact_id not in self._left_at:
                # The event may lie in the simulated past: map it back onto the real clock.
                lag = (sim_now - event.at) / rate if rate else 0.0
                self._left_at[contact_id] = mono_now - lag
                if len(self._left_at) > self.config.max_history:
                    self._left_at.popitem(last=False)
            if self.event_sink is not None:
                self.event_sink(event)

    def find_contact(self, instance_id: str, contact_id: str) -> Contact | None:
        contact = self.model.contacts.get(bare_id(contact_id))
        if contact is None or contact.instance_id != bare_id(instance_id):
            return None
        return contact

    def leave_outcome(self, contact: Contact) -> str:
        """What GetContactMetrics answers for a contact no longer waiting: a LEAVE_MODES value
        without the compound one (`empty`, `not-found` or `invalid`)."""
        if self.leave_mode != "empty-then-not-found":
            return self.leave_mode
        left = self._left_at.get(contact.contact_id)
        fresh = left is not None and self.mono() - left < self.leave_grace
        return "empty" if fresh else "not-found"

    def metric_value(self, contact: Contact, name: str) -> float:
        if name == "POSITION_IN_QUEUE":
            return float(self.model.position(contact))
        return round(self.model.ewt(contact), 3)

    def contact_truth(self, contact_id: str) -> dict[str, Any]:
        """One contact as `GET /_sim/contacts/{id}`: status and, while waiting, position and EWT
        at the current simulated time. The contact must be known."""
        contact = self.model.contacts[contact_id]
        waiting = contact.status is ContactStatus.WAITING
        times = {
            "enqueuedAt": contact.enqueued_at,
            "connectedAt": contact.connected_at,
            "leftAt": contact.left_at,
            "disconnectedAt": contact.disconnected_at,
        }
        return {
            "contactId": contact.contact_id,
            "instanceId": contact.instance_id,
            "queueId": contact.queue_id,
            "status": contact.status.value,
            "position": self.model.position(contact) if waiting else None,
            "ewt": round(self.model.ewt(contact), 3) if waiting else None,
            "priority": contact.priority,
            "ageAdjustmentSeconds": contact.age_adjustment_s,
            **{key: None if at is None else utc_iso(at) for key, at in times.items()},
        }

    def snapshot(self) -> list[dict[str, Any]]:
        """Every instance and queue with agents and waiting contacts, as `GET /_sim/state`."""
        region, account = self.config.region, self.config.account_id
        out = []
        for instance_id, queues in self.model.instances.items():
            out.append(
                {
                    "id": instance_id,
                    "arn": instance_arn(region, account, instance_id),
                    "queues": [
                        {
                            "id": q.queue_id,
                            "name": q.spec.name,
                            "arn": queue_arn(region, account, instance_id, q.queue_id),
                            "agents": {"total": q.spec.agents, "busy": q.busy, "free": q.free},
                            "counts": {
                                "arrived": q.arrived,
                                "served": q.served,
                                "abandoned": q.abandoned,
                            },
                            "waiting": [
                                {
                                    "contactId": c.contact_id,
                                    "position": position,
                                    "ewt": round(self.model.ewt(c), 3),
                                    "priority": c.priority,
                                    "ageAdjustmentSeconds": c.age_adjustment_s,
                                    "enqueuedAt": utc_iso(c.enqueued_at),
                                }
                                for position, c in enumerate(q.waiting_in_order(), 1)
                            ],
                        }
                        for q in queues
                    ],
                }
            )
        return out
