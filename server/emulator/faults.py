"""Injected faults: per-error-type rates, added latency and a stall switch (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from random import Random

from server.emulator.wire import ERROR_STATUS


@dataclass
class FaultSettings:
    """`rates` maps an AWS error type to the probability that a request gets it (sum <= 1)."""

    rates: dict[str, float] = field(default_factory=dict)
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    stall: bool = False

    def validate(self) -> None:
        for code, rate in self.rates.items():
            if code not in ERROR_STATUS:
                raise ValueError(f"unknown error type {code!r}; known: {', '.join(ERROR_STATUS)}")
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"rate for {code} must be within 0..1")
        if sum(self.rates.values()) > 1.0 + 1e-9:
            raise ValueError("fault rates must sum to at most 1")
        if self.latency_ms < 0 or self.jitter_ms < 0:
            raise ValueError("latencyMs and jitterMs must be >= 0")


class FaultInjector:
    """Draws faults from its own seeded stream, so faults never perturb the queue model."""

    def __init__(self, seed: int, settings: FaultSettings | None = None) -> None:
        self.rng = Random(f"faults-{seed}")
        self.settings = settings or FaultSettings()
        self.settings.validate()

    def pick_error(self) -> str | None:
        """The error type to inject into this request, if any."""
        rates = self.settings.rates
        if not rates:
            return None
        draw = self.rng.random()
        for code, rate in rates.items():
            if draw < rate:
                return code
            draw -= rate
        return None

    def delay_s(self) -> float:
        """Added latency for this request in seconds: fixed part plus uniform jitter."""
        s = self.settings
        if not s.latency_ms and not s.jitter_ms:
            return 0.0
        return (s.latency_ms + self.rng.uniform(0.0, s.jitter_ms)) / 1000.0
