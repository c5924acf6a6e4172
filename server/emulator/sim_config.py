"""The run-time settings behind `GET`/`PUT /_sim/config`: JSON out, validated partial updates in."""

from __future__ import annotations

import math
from typing import Any

from server.emulator.config import LEAVE_MODES
from server.emulator.faults import FaultSettings
from server.emulator.model import Queue
from server.emulator.scenario_config import ScenarioError, parse_scenario, scenario_json
from server.emulator.simulator import Emulator, Quota


class ConfigError(ValueError):
    pass


def config_json(emulator: Emulator) -> dict[str, Any]:
    faults = emulator.faults.settings
    return {
        "quota": emulator.metrics_quota.as_json(),
        "describeQuota": emulator.describe_quota.as_json(),
        "quotas": {operation: quota.as_json() for operation, quota in emulator.quotas.items()},
        "faults": {
            "rates": dict(faults.rates),
            "latencyMs": faults.latency_ms,
            "jitterMs": faults.jitter_ms,
            "stall": faults.stall,
        },
        "leaveMode": emulator.leave_mode,
        "leaveGrace": emulator.leave_grace,
        "speed": emulator.clock.speed,
        "paused": emulator.clock.paused,
        "arrivals": {q.queue_id: q.arrivals_per_minute for q in emulator.model.queues.values()},
        "queues": scenario_json(emulator),
        "eventDelivery": emulator.delivery.settings.as_json(),
        "searchLagSeconds": emulator.search_lag_s,
        "searchIncludesQueued": emulator.search_includes_queued,
    }


def apply_config(emulator: Emulator, patch: object) -> None:
    """Apply a partial update, all or nothing.

    Raises:
        ConfigError: unknown key, wrong type or value out of range; nothing was changed.
    """
    if not isinstance(patch, dict):
        raise ConfigError("config must be a JSON object")
    known = {"quota", "describeQuota", "faults", "leaveMode", "leaveGrace", "speed", "paused"}
    unknown = set(patch) - known - {"arrivals", "quotas", "queues", "eventDelivery"}
    unknown -= {"searchLagSeconds", "searchIncludesQueued"}
    if unknown:
        raise ConfigError(f"unknown config keys: {', '.join(sorted(unknown))}")
    # Validate everything first so a bad field leaves the emulator untouched.
    quotas = {
        key: _quota(patch[key], quota)
        for key, quota in (
            ("quota", emulator.metrics_quota),
            ("describeQuota", emulator.describe_quota),
        )
        if key in patch
    }
    operation_quotas = _operation_quotas(emulator, patch.get("quotas", {}))
    try:
        specs = parse_scenario(emulator, patch.get("queues", {}))
    except ScenarioError as exc:
        raise ConfigError(str(exc)) from None
    faults = _faults(patch["faults"], emulator.faults.settings) if "faults" in patch else None
    delivery = emulator.delivery.settings
    if "eventDelivery" in patch:
        try:
            delivery = delivery.patched(patch["eventDelivery"])
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    leave_mode = patch.get("leaveMode", emulator.leave_mode)
    if leave_mode not in LEAVE_MODES:
        raise ConfigError(f"leaveMode must be one of {', '.join(LEAVE_MODES)}")
    grace = _number(patch.get("leaveGrace", emulator.leave_grace), "leaveGrace", low=0.0)
    speed = _number(patch.get("speed", emulator.clock.speed), "speed", low=0.0)
    paused = patch.get("paused", emulator.clock.paused)
    if not isinstance(paused, bool):
        raise ConfigError("paused must be a boolean")
    arrivals = _arrivals(emulator, patch.get("arrivals", {}))
    search_lag = _number(
        patch.get("searchLagSeconds", emulator.search_lag_s), "searchLagSeconds", low=0.0
    )
    includes_queued = patch.get("searchIncludesQueued", emulator.search_includes_queued)
    if not isinstance(includes_queued, bool):
        raise ConfigError("searchIncludesQueued must be a boolean")

    emulator.advance()  # settle the past under the old settings
    emulator.delivery.settings = delivery
    now = emulator.mono()
    for key, (enabled, rps, burst) in quotas.items():
        quota = emulator.metrics_quota if key == "quota" else emulator.describe_quota
        quota.enabled = enabled
        quota.bucket.reconfigure(rps, burst, now)
    for operation, (enabled, rps, burst) in operation_quotas.items():
        emulator.quotas[operation].enabled = enabled
        emulator.quotas[operation].bucket.reconfigure(rps, burst, now)
    if faults is not None:
        emulator.faults.settings = faults
    emulator.leave_mode, emulator.leave_grace = leave_mode, grace
    emulator.search_lag_s, emulator.search_includes_queued = search_lag, includes_queued
    emulator.clock.set(speed=speed, paused=paused)
    for queue, rate in arrivals:
        emulator.model.set_arrival_rate(queue, rate)
    for queue, spec in specs:
        emulator.model.set_spec(queue, spec)


def _number(value: object, name: str, low: float, integer: bool = False) -> float:
    kind = "an integer" if integer else "a finite number"
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        raise ConfigError(f"{name} must be {kind} >= {low:g}")
    number = float(value)
    if not math.isfinite(number) or number < low:
        raise ConfigError(f"{name} must be {kind} >= {low:g}")
    return number


def _quota(value: object, current: Quota) -> tuple[bool, float, int]:
    if not isinstance(value, dict) or set(value) - {"enabled", "rps", "burst"}:
        raise ConfigError("a quota is an object with enabled, rps, burst")
    enabled = value.get("enabled", current.enabled)
    if not isinstance(enabled, bool):
        raise ConfigError("quota enabled must be a boolean")
    rps = _number(value.get("rps", current.bucket.rate), "rps", low=0.0)
    burst = _number(value.get("burst", int(current.bucket.burst)), "burst", low=1, integer=True)
    if rps <= 0:
        raise ConfigError("rps must be > 0 (disable the quota instead)")
    return enabled, rps, int(burst)


def _operation_quotas(emulator: Emulator, value: object) -> dict[str, tuple[bool, float, int]]:
    if not isinstance(value, dict):
        raise ConfigError("quotas must map an operation name to a quota")
    unknown = set(value) - set(emulator.quotas)
    if unknown:
        raise ConfigError(f"no quota for {', '.join(sorted(unknown))}")
    return {key: _quota(quota, emulator.quotas[key]) for key, quota in value.items()}


def _faults(value: object, current: FaultSettings) -> FaultSettings:
    if not isinstance(value, dict) or set(value) - {"rates", "latencyMs", "jitterMs", "stall"}:
        raise ConfigError("faults is an object with rates, latencyMs, jitterMs, stall")
    rates = value.get("rates", current.rates)
    if not isinstance(rates, dict):
        raise ConfigError("faults.rates must be an object")
    stall = value.get("stall", current.stall)
    if not isinstance(stall, bool):
        raise ConfigError("faults.stall must be a boolean")
    settings = FaultSettings(
        rates={str(k): _number(v, f"rate of {k}", low=0.0) for k, v in rates.items()},
        latency_ms=_number(value.get("latencyMs", current.latency_ms), "latencyMs", low=0.0),
        jitter_ms=_number(value.get("jitterMs", current.jitter_ms), "jitterMs", low=0.0),
        stall=stall,
    )
    try:
        settings.validate()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return settings


def _arrivals(emulator: Emulator, value: object) -> list[tuple[Queue, float]]:
    if not isinstance(value, dict):
        raise ConfigError("arrivals must map a queue name or id to a per-minute rate")
    out: list[tuple[Queue, float]] = []
    for key, rate in value.items():
        per_minute = _number(rate, f"arrival rate of {key}", low=0.0)
        matches = [q for q in emulator.model.queues.values() if key in (q.queue_id, q.spec.name)]
        if not matches:
            raise ConfigError(f"unknown queue {key!r}")
        out.extend((q, per_minute) for q in matches)
    return out
