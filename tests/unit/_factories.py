"""Builders shared by the unit tests."""

from __future__ import annotations

from typing import Any

from server.events import ContactEvent, QueueFiguresEvent


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


def make_figures(**changes: Any) -> QueueFiguresEvent:
    """A valid queue figures event, with `changes` applied."""
    base: dict[str, Any] = {
        "instance": "i-1",
        "queue": "q-1",
        "name": "Sales",
        "waiting": 1,
        "oldest": 1,
        "agents_available": 1,
        "at": "2026-01-01T00:00:00.000Z",
        "stale": False,
        "seq": 1,
    }
    return QueueFiguresEvent(**{**base, **changes})
