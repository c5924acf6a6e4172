"""A WebSocket client's outbox: bounded, latest state per contact wins. No I/O.

A slow client never holds more than one pending state per contact, one pending figures event
per queue, plus a few control frames, so its memory is bounded by its subscriptions, and it
still ends up with the latest state.
"""

from __future__ import annotations

from collections import deque

from server.events import ContactEvent, as_snapshot


class OutboxFull(Exception):
    """Too many control frames are waiting: the client is not reading."""


class Outbox:
    def __init__(self, max_control: int = 64) -> None:
        # Pending states by contact, in arrival order (a replaced one keeps its place). Made on
        # the first event and dropped once empty, as the figures and control frames below: an
        # idle socket holds none of them (a dict that held one entry keeps ~180 bytes of
        # table; the OrderedDict this was had linked-list nodes besides).
        self._events: dict[str, tuple[ContactEvent, str]] | None = None
        # Created on the first control frame: most sockets never get one, and an empty
        # deque is ~600 bytes (docs/benchmarks.md, RSS per idle socket).
        self._control: deque[str] | None = None
        self._max_control = max_control
        # Queue figures, latest per queue; created on the first (only wallboards get them).
        self._figures: dict[str, str] | None = None

    def __len__(self) -> int:
        events = len(self._events) if self._events else 0
        control = len(self._control) if self._control else 0
        return events + control + (len(self._figures) if self._figures else 0)

    def __bool__(self) -> bool:
        return bool(self._events or self._control or self._figures)

    def put_event(self, event: ContactEvent, text: str) -> bool:
        """Queue an event; returns True when it replaced an older pending one."""
        events = self._events
        if events is None:
            self._events = {event.contact: (event, text)}
            return False
        pending = events.get(event.contact)
        if pending is None:
            events[event.contact] = (event, text)
            return False
        older = pending[0]
        if older.type == "snapshot" and event.type == "update":
            # The client has not seen the snapshot yet; the newer state takes its role.
            event = as_snapshot(event)
            text = event.encode().decode()
        events[event.contact] = (event, text)
        return True

    def put_figures(self, queue: str, text: str) -> bool:
        """Queue a queue's figures; returns True when they replaced older pending ones."""
        figures = self._figures
        if figures is None:
            figures = self._figures = {}
        replaced = queue in figures
        figures[queue] = text
        return replaced

    def put_control(self, text: str) -> None:
        """Queue an error or pong.

        Raises:
            OutboxFull: the client has left too many control frames unread.
        """
        control = self._control
        if control is None:
            control = self._control = deque()
        if len(control) >= self._max_control:
            raise OutboxFull
        control.append(text)

    def discard(self, contact: str) -> None:
        events = self._events
        if events is not None:
            events.pop(contact, None)
            if not events:
                self._events = None

    def discard_figures(self, queue: str) -> None:
        figures = self._figures
        if figures is not None:
            figures.pop(queue, None)
            if not figures:
                self._figures = None

    def clear(self) -> None:
        """Drop everything pending, events and control frames alike."""
        self._events = None
        self._control = None
        self._figures = None

    def pop(self) -> str | None:
        """The next frame to send: control frames first, then states in arrival order, then
        queue figures."""
        if self._control:
            text = self._control.popleft()
            if not self._control:
                self._control = None
            return text
        events = self._events
        if events:
            text = events.pop(next(iter(events)))[1]
            if not events:
                self._events = None
            return text
        figures = self._figures
        if figures:
            text = figures.pop(next(iter(figures)))
            if not figures:
                self._figures = None
            return text
        return None
