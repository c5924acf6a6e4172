"""HTTP routes for queues: `GET /v1/queues` and `GET /v1/queues/{queueId}`.

A queue's view is built from the bus alone (its member set, the members' stored states and the
queue's stored figures), so every replica answers the same for a queue it is asked about by
id; its name comes from the queue directory. The *list* of queues is the set this replica
knows of: the queues of the contacts its poller tracks, plus any named in `?ids=`; `names`
adds every queue name the directory knows. Both need a `queues` token (for the queues it
names) or a `service` token.
A contact flow that routes to the least congested of some queues names them with
`?ids=a,b,c` and reads `leastCongested`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.access.policy import AccessPolicy, authorize_request
from server.access.tokens import Grant
from server.browser.protocol import error_frame
from server.bus import BusUnavailable
from server.events import ContactEvent, QueueFiguresEvent, as_snapshot, utc_iso, waiting_in
from server.ids import is_valid_queue_id
from server.runtime import Runtime

MAX_LISTED_QUEUES = 100

InstanceFilter = Callable[[str], bool]  # whether a contact or figures of that instance show


@dataclass(frozen=True, slots=True)
class QueueView:
    """The waiting contacts of one queue, in position order, and their summary."""

    queue: str
    contacts: tuple[ContactEvent, ...]
    name: str | None = None
    figures: QueueFiguresEvent | None = None  # Connect's own figures of the queue

    @classmethod
    def of(
        cls,
        queue: str,
        states: Iterable[ContactEvent | None],
        name: str | None = None,
        figures: QueueFiguresEvent | None = None,
    ) -> QueueView:
        waiting = waiting_in(queue, states)
        # Position order; an unknown position sorts last, then by enqueue time and id.
        waiting.sort(
            key=lambda s: (s.position is None, s.position or 0, s.enqueued or "", s.contact)
        )
        return cls(queue, tuple(waiting), name or (figures.name if figures else None), figures)

    def summary(self, now: datetime) -> dict[str, Any]:
        ewts = [c.ewt for c in self.contacts if c.ewt is not None]
        enqueued = [c.enqueued for c in self.contacts if c.enqueued]
        oldest = min(enqueued) if enqueued else None
        longest = None
        if oldest is not None:
            started = datetime.fromisoformat(oldest.replace("Z", "+00:00"))
            longest = max(0, round((now - started).total_seconds()))
        return {
            "queue": self.queue,
            "name": self.name,
            "waiting": len(self.contacts),
            "longestWait": longest,
            "oldestEnqueued": oldest,
            "ewtMin": min(ewts) if ewts else None,
            "ewtMax": max(ewts) if ewts else None,
            "stale": any(c.stale for c in self.contacts),
            "figures": None if self.figures is None else self.figures.to_dict(),
        }


def least_congested(summaries: Sequence[dict[str, Any]]) -> str | None:
    """The queue a new contact would wait least in: lowest highest-EWT, then fewest waiting.

    The highest EWT of a queue is that of its last contact, the best available guess for one
    more; an empty queue counts as 0.
    """
    if not summaries:
        return None
    best = min(summaries, key=lambda s: (s["ewtMax"] or 0, s["waiting"], s["queue"]))
    return str(best["queue"])


async def read_queue(
    runtime: Runtime, queue: str, now: datetime, shown: InstanceFilter | None = None
) -> QueueView:
    """The queue's view from the bus. Raises `BusUnavailable`.

    Args:
        shown: which instances' contacts and figures may be shown (a `queues` token that
            names its instance sees that instance's only); None: all.
    """
    members = await runtime.bus.queue_members(queue)
    states = await runtime.bus.read_states(members)
    [figures] = await runtime.bus.read_queue_figures([queue])
    if shown is not None:
        states = [s for s in states if s is not None and shown(s.instance)]
        if figures is not None and not shown(figures.instance):
            figures = None
    if figures is not None and not figures.stale:
        # Stored figures outlive a reader that stopped (a leader that died): say so.
        age = (now - datetime.fromisoformat(figures.at.replace("Z", "+00:00"))).total_seconds()
        if age > runtime.figures.stale_after:
            figures = replace(figures, stale=True)
    instance = figures.instance if figures is not None else runtime.settings.primary_instance
    return QueueView.of(queue, states, runtime.directory.name(instance, queue), figures)


def known_queues(runtime: Runtime) -> set[str]:
    """Queues of the contacts this replica's poller tracks."""
    return {c.queue for c in runtime.poller.contacts.values() if c.queue is not None}


def _error(status: int, code: str, message: str) -> Response:
    return Response(error_frame(code, message), status, media_type="application/json")


def _now() -> datetime:
    return datetime.now(UTC)


def _instance_filter(request: Request, grant: Grant) -> InstanceFilter | None:
    """What of a queue a grant may see: with an `instance` claim, that instance's only."""
    if grant.instance is None:
        return None
    instances = _access(request).instances
    return functools.partial(instances.allows_event_instance, grant)


def _access(request: Request) -> AccessPolicy:
    access: AccessPolicy = request.app.state.access
    return access


def _names_instance(request: Request, runtime: Runtime, grant: Grant) -> str | None:
    if grant.instance is None:
        return runtime.settings.primary_instance
    return _access(request).instances.resolve(grant.instance)


async def list_queues(request: Request) -> Response:
    grant = authorize_request(request, ("queues", "service"))
    if isinstance(grant, Response):
        return grant
    if _access(request).instances.lacks_claim(grant):
        return _error(400, "bad_instance", "several instances are served: the token must name one")
    runtime: Runtime = request.app.state.runtime
    shown = _instance_filter(request, grant)
    named = [q for q in request.query_params.get("ids", "").split(",") if q]
    if len(named) > MAX_LISTED_QUEUES or not all(is_valid_queue_id(q) for q in named):
        return _error(
            400, "bad_id", f"ids is a comma-separated list of up to {MAX_LISTED_QUEUES} queue ids"
        )
    candidates = set(named) if named else known_queues(runtime)
    queues = sorted(q for q in candidates if grant.allows_queue(q))[:MAX_LISTED_QUEUES]
    now = _now()
    try:
        summaries = [(await read_queue(runtime, q, now, shown)).summary(now) for q in queues]
    except BusUnavailable:
        return _error(503, "unavailable", "the event bus is unreachable; retry")
    names = runtime.directory.names(_names_instance(request, runtime, grant))
    return JSONResponse(
        {
            "at": utc_iso(now.timestamp()),
            "queues": summaries,
            "leastCongested": least_congested(summaries),
            "names": {q: n for q, n in sorted(names.items()) if grant.allows_queue(q)},
        }
    )


async def one_queue(request: Request) -> Response:
    grant = authorize_request(request, ("queues", "service"))
    if isinstance(grant, Response):
        return grant
    if _access(request).instances.lacks_claim(grant):
        return _error(400, "bad_instance", "several instances are served: the token must name one")
    runtime: Runtime = request.app.state.runtime
    queue = request.path_params["queue"]
    if not is_valid_queue_id(queue):
        return _error(400, "bad_id", "queue must be a queue id")
    if not grant.allows_queue(queue):
        return _error(403, "forbidden", "this token does not allow that queue")
    now = _now()
    try:
        view = await read_queue(runtime, queue, now, _instance_filter(request, grant))
    except BusUnavailable:
        return _error(503, "unavailable", "the event bus is unreachable; retry")
    return JSONResponse(
        {
            "at": utc_iso(now.timestamp()),
            **view.summary(now),
            "contacts": [as_snapshot(c).to_dict() for c in view.contacts],
        }
    )


routes = [
    Route("/v1/queues", list_queues, methods=["GET"]),
    Route("/v1/queues/{queue}", one_queue, methods=["GET"]),
]
