"""Per-queue scenario settings in `PUT /_sim/config` (`"queues"`): who arrives, how they wait.

`{"queues": {<queue name or id>: {"priorities": [int >= 1, ...], "meanPatience": seconds | null,
"meanService": seconds}}}`. Priorities are drawn uniformly from the list, so repeats weigh
(`[1, 5, 5, 5, 5, 5, 5, 5, 5, 5]`: 10 % at priority 1); `meanPatience` null or 0 means nobody
hangs up. Changes apply to contacts that arrive from then on; a queue name applies to that
queue in every instance. Validated completely before anything changes.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from server.emulator.model import Queue, QueueSpec
from server.emulator.simulator import Emulator

QUEUE_KEYS = {"priorities", "meanPatience", "meanService"}


class ScenarioError(ValueError):
    pass


def scenario_json(emulator: Emulator) -> dict[str, Any]:
    """Every queue's scenario settings by queue id."""
    return {
        q.queue_id: {
            "priorities": list(q.spec.priorities),
            "meanPatience": q.spec.mean_patience_s,
            "meanService": q.spec.mean_service_s,
        }
        for q in emulator.model.queues.values()
    }


def parse_scenario(emulator: Emulator, value: object) -> list[tuple[Queue, QueueSpec]]:
    """The new spec of every queue `value` names.

    Raises:
        ScenarioError: unknown queue or key, or a value out of range.
    """
    if not isinstance(value, dict):
        raise ScenarioError("queues must map a queue name or id to its settings")
    out: list[tuple[Queue, QueueSpec]] = []
    for key, settings in value.items():
        if not isinstance(settings, dict) or set(settings) - QUEUE_KEYS:
            raise ScenarioError(f"queue {key!r}: settings are {', '.join(sorted(QUEUE_KEYS))}")
        matches = [q for q in emulator.model.queues.values() if key in (q.queue_id, q.spec.name)]
        if not matches:
            raise ScenarioError(f"unknown queue {key!r}")
        for queue in matches:
            out.append((queue, _spec(queue.spec, settings, key)))
    return out


def _spec(spec: QueueSpec, settings: dict[str, Any], key: str) -> QueueSpec:
    priorities = settings.get("priorities", list(spec.priorities))
    if not isinstance(priorities, list) or not all(
        isinstance(p, int) and not isinstance(p, bool) and p >= 1 for p in priorities
    ):
        raise ScenarioError(f"queue {key!r}: priorities must be a list of integers >= 1")
    patience = settings.get("meanPatience", spec.mean_patience_s)
    if patience is not None and not (_finite(patience) and patience >= 0):
        raise ScenarioError(f"queue {key!r}: meanPatience must be a number >= 0 or null")
    service = settings.get("meanService", spec.mean_service_s)
    if not (_finite(service) and service > 0):
        raise ScenarioError(f"queue {key!r}: meanService must be a number > 0")
    return replace(
        spec,
        priorities=tuple(priorities),
        mean_patience_s=float(patience) if patience else None,
        mean_service_s=float(service),
    )


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
