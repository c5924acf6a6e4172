"""Start-up configuration of the emulator (the run-time part can change via `PUT /_sim/config`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from server.emulator.delivery import DeliverySettings
from server.emulator.model import QueueSpec

LEAVE_MODES = ("empty-then-not-found", "empty", "not-found", "invalid")

DEFAULT_QUEUES = (QueueSpec("sales"), QueueSpec("support"), QueueSpec("billing"))

# Quotas (requests/s, burst) of the operations beyond GetContactMetrics and DescribeContact,
# which have their own fields below. GetCurrentMetricData: 5/s burst 8, documented and not
# adjustable. The others: Connect's documented default for its APIs, 2/s burst 5 (the Service
# Quotas console of some accounts shows 10/s for ListQueues and DescribeQueue: set it so).
DEFAULT_OPERATION_QUOTAS: dict[str, tuple[float, int]] = {
    "getCurrentMetricData": (5.0, 8),
    "listQueues": (2.0, 5),
    "describeQueue": (2.0, 5),
    "updateContactRoutingData": (2.0, 5),
    # SearchContacts: AWS publishes no figure we could check for this API; a conservative
    # 0.5/s, burst 1, so a caller that polls it too fast learns so here before production.
    "searchContacts": (0.5, 1),
}


@dataclass
class EmulatorConfig:
    """Everything `create_emulator_app` needs.

    Each of the `instances` Connect instances gets its own copy of `queues` (with its own ids).
    Quotas are real requests per second, shared by every caller ("per account and Region").
    `speed` scales simulated time against real time; `leave_grace` is in real seconds.
    """

    seed: int = 1
    speed: float = 1.0
    paused: bool = False
    instances: int = 1
    queues: tuple[QueueSpec, ...] = DEFAULT_QUEUES
    quota_enabled: bool = True
    rps: float = 2.0
    burst: int = 5
    describe_quota_enabled: bool = True
    describe_rps: float = 2.0
    describe_burst: int = 5
    operation_quotas_enabled: bool = True
    operation_quotas: dict[str, tuple[float, int]] = field(
        default_factory=lambda: dict(DEFAULT_OPERATION_QUOTAS)
    )
    leave_mode: str = "empty-then-not-found"
    leave_grace: float = 30.0
    fault_rates: dict[str, float] = field(default_factory=dict)
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    events_url: str | None = None
    events_key: str | None = None  # sent as X-Queuecast-Events-Key, as an API destination does
    event_delivery: DeliverySettings = field(default_factory=DeliverySettings)
    events_timeout_s: float = 5.0  # EventBridge waits 5 s for an API destination's answer
    # EventBridge does not drop what it cannot deliver yet (it retries for 24 h): the bound only
    # keeps memory finite (a copy is under 1 KB). At 1,000, a backlog of 2,000 waiting contacts
    # (4,000 events) lost its oldest events, the front of every line.
    events_queue_size: int = 20_000
    # An API destination sends in parallel, up to its invocation rate (300/s by default).
    events_concurrency: int = 32
    region: str = "us-east-1"
    account_id: str = "123456789012"
    tick_s: float = 0.05
    max_body_bytes: int = 64 * 1024
    max_history: int = 100_000
    # SearchContacts' index lags the model by this many Connect-clock seconds (search_index.py).
    search_lag_s: float = 2.0
    # Connect documents that a voice contact waiting in its queue is not searchable (only once
    # connected to an agent or disconnected); True shows waiting contacts too.
    search_includes_queued: bool = False

    def __post_init__(self) -> None:
        if self.leave_mode not in LEAVE_MODES:
            raise ValueError(f"leave_mode must be one of {', '.join(LEAVE_MODES)}")
        self.event_delivery.validate()
        if self.instances < 1 or not self.queues:
            raise ValueError("need at least one instance with at least one queue")
        names = [q.name for q in self.queues]
        if len(set(names)) != len(names):
            raise ValueError("queue names must be unique")
        if self.speed < 0 or self.rps <= 0 or self.burst < 1:
            raise ValueError("speed must be >= 0, rps > 0, burst >= 1")
        if not 0.0 <= self.search_lag_s < float("inf"):
            raise ValueError("search_lag_s must be a finite number >= 0")
        if self.describe_rps <= 0 or self.describe_burst < 1:
            raise ValueError("describe_rps must be > 0 and describe_burst >= 1")
        if self.events_concurrency < 1 or self.events_queue_size < 1:
            raise ValueError("events_concurrency and events_queue_size must be >= 1")
        unknown = set(self.operation_quotas) - set(DEFAULT_OPERATION_QUOTAS)
        if unknown:
            raise ValueError(f"no quota for operations {', '.join(sorted(unknown))}")
        self.operation_quotas = {**DEFAULT_OPERATION_QUOTAS, **self.operation_quotas}
        if any(rps <= 0 or burst < 1 for rps, burst in self.operation_quotas.values()):
            raise ValueError("every operation quota needs rps > 0 and burst >= 1")
