"""How the emulator delivers contact events, the way EventBridge does: late, lost, twice, out of
order, retried. No I/O: the settings, the draws and the counts; eventbridge.py does the sending.

- **Delay**: each copy of each event waits a delay drawn uniformly from [min_delay, max_delay]
  seconds before it is sent.
- **Reordering** is not a setting of its own: it falls out of the delays. Two events offered
  closer together than `max_delay - min_delay` arrive in either order; how often that happened
  is counted (`reordered`: sent after an event offered later had already been sent).
- **Loss**: with probability `loss` an event is never sent.
- **Duplication**: with probability `duplication` it is sent twice, each copy with its own
  delay (the second may well arrive first).
- **Retries**, as an API destination does: a 429 or 5xx answer, a timeout or a refused
  connection is retried with capped exponential backoff and full jitter (a `Retry-After` is
  honoured), up to `max_attempts` attempts; other 4xx are dropped at once.

All draws come from their own seeded stream, so they never perturb the queue model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from random import Random
from typing import Any

RETRY_BASE_S = 0.5
RETRY_CAP_S = 30.0
_JSON_NAMES = {
    "min_delay": "minDelay",
    "max_delay": "maxDelay",
    "loss": "loss",
    "duplication": "duplication",
    "max_attempts": "maxAttempts",
    "initiated": "initiated",
}


@dataclass(frozen=True)
class DeliverySettings:
    min_delay: float = 0.0
    max_delay: float = 0.0
    loss: float = 0.0
    duplication: float = 0.0
    max_attempts: int = 8
    initiated: bool = True  # send INITIATED before QUEUED, as Connect does for inbound calls

    def validate(self) -> None:
        """Raises ValueError naming what is out of range."""
        for name in ("min_delay", "max_delay", "loss", "duplication"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0")
        if self.max_delay < self.min_delay:
            raise ValueError("max_delay must be >= min_delay")
        if self.loss > 1 or self.duplication > 1:
            raise ValueError("loss and duplication are probabilities (0..1)")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")

    def patched(self, patch: object) -> DeliverySettings:
        """These settings with a `PUT /_sim/config` `eventDelivery` object applied.

        Raises:
            ValueError: not an object, an unknown key, a wrong type or a value out of range.
        """
        if not isinstance(patch, dict):
            raise ValueError("eventDelivery is an object")
        names = {json_name: name for name, json_name in _JSON_NAMES.items()}
        unknown = set(patch) - set(names)
        if unknown:
            raise ValueError(f"unknown eventDelivery keys: {', '.join(sorted(unknown))}")
        changes: dict[str, Any] = {}
        for key, value in patch.items():
            current = getattr(self, names[key])
            if isinstance(current, bool):
                ok = isinstance(value, bool)
            elif isinstance(current, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            else:
                ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok:
                raise ValueError(f"eventDelivery.{key} must be a {type(current).__name__}")
            changes[names[key]] = float(value) if isinstance(current, float) else value
        settings = replace(self, **changes)
        settings.validate()
        return settings

    def as_json(self) -> dict[str, Any]:
        return {json_name: getattr(self, name) for name, json_name in _JSON_NAMES.items()}


@dataclass
class DeliveryStats:
    """What became of the events offered (copies count once each where they are copies)."""

    offered: int = 0  # events the model produced (INITIATED included)
    lost: int = 0  # never sent, on purpose
    duplicated: int = 0  # events sent as two copies
    delayed: int = 0  # copies held back more than 0 s
    sent: int = 0  # copies answered 2xx
    reordered: int = 0  # copies sent after a later-offered event had been
    retried: int = 0  # attempts repeated after a 429, a 5xx or a transport failure
    failed: int = 0  # copies given up after max_attempts
    rejected: int = 0  # copies answered another 4xx (not retried, as EventBridge)
    dropped: int = 0  # copies dropped because too many were pending

    def as_json(self) -> dict[str, int]:
        return asdict(self)


class DeliveryPlanner:
    """Draws each event's fate from a stream seeded apart from the model's."""

    def __init__(self, seed: int, settings: DeliverySettings | None = None) -> None:
        self.rng = Random(f"event-delivery-{seed}")
        self.settings = settings or DeliverySettings()
        self.settings.validate()
        self.stats = DeliveryStats()
        self.pending: Callable[[], int] = lambda: 0  # copies waiting or in flight (the poster's)

    def stats_json(self) -> dict[str, int]:
        return {**self.stats.as_json(), "pending": self.pending()}

    def copies(self) -> list[float]:
        """The delay of each copy of one event to send: none when it is lost."""
        s = self.settings
        self.stats.offered += 1
        if s.loss and self.rng.random() < s.loss:
            self.stats.lost += 1
            return []
        count = 2 if s.duplication and self.rng.random() < s.duplication else 1
        if count == 2:
            self.stats.duplicated += 1
        delays = [self.rng.uniform(s.min_delay, s.max_delay) for _ in range(count)]
        self.stats.delayed += sum(1 for delay in delays if delay > 0)
        return delays

    def retry_delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds before attempt `attempt + 1`, or None when `attempt` was the last."""
        if attempt >= self.settings.max_attempts:
            return None
        if retry_after is not None:
            return min(RETRY_CAP_S, max(0.0, retry_after))
        return self.rng.uniform(0, min(RETRY_CAP_S, RETRY_BASE_S * 2.0 ** (attempt - 1)))
