"""Builders shared by the unit tests."""

from __future__ import annotations

from typing import Any

from server.events import ContactEvent


def make_event(**changes: Any) -> ContactEvent:
    """A valid `update` event, with `changes` applied."""
    base: dict[str, Any] = {
        "type": "update",
        "instance": "i-1",
        "contact": "c-1",
        "queue": "q-1",
        "position": 3,
        "ewt": 120,
        "at": "2024-05-01T12:00:00.000Z",
        "stale": False,
        "reason": None,
        "seq": 7,
    }
    return ContactEvent(**{**base, **changes})
