"""HTTP routes: contacts, status, health, readiness and metrics.

Errors use the WebSocket error frame's shape, `{"type": "error", "code", "message"}`, and
contact states are the event schema itself. The contacts API and the status need a `service`
token (`server.access.policy.require_service_token`); health, readiness and metrics are open.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.access.instances import InstanceRefused
from server.access.policy import LIMIT_HITS, AccessPolicy, require_service_token
from server.browser.protocol import error_frame
from server.bus import BusUnavailable
from server.events import ContactEvent, as_snapshot
from server.ids import is_valid_id, is_valid_queue_id
from server.runtime import Runtime

MAX_BODY_BYTES = 16 * 1024


def _error(status: int, code: str, message: str) -> Response:
    return Response(error_frame(code, message), status, media_type="application/json")


def _event_response(event: ContactEvent, status: int = 200) -> Response:
    return Response(as_snapshot(event).encode(), status, media_type="application/json")


class BodyError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.response = _error(status, code, message)


async def read_json_body(request: Request, limit: int = MAX_BODY_BYTES) -> Any:
    """The request's JSON body (`None` when empty), read no further than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        LIMIT_HITS.labels("body_size").inc()
        raise BodyError(413, "too_large", f"the body is limited to {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                LIMIT_HITS.labels("body_size").inc()
                raise BodyError(413, "too_large", f"the body is limited to {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        # Gone before its body was in (or cut off for taking too long): a client's doing,
        # not an error of ours; the answer goes nowhere.
        raise BodyError(400, "incomplete", "the connection closed before the body was in") from None
    raw = b"".join(chunks)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: deeply nested JSON
        raise BodyError(400, "bad_json", "the body is not valid JSON") from None


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def contact(request: Request) -> Response:
    runtime = _runtime(request)
    contact_id = request.path_params["contact"]
    if not is_valid_id(contact_id):
        return _error(400, "bad_id", "contact must be a Connect contact id (a UUID)")
    try:
        if request.method == "GET":
            [stored] = await runtime.bus.read_states([contact_id])
            if stored is None:
                return _error(404, "not_found", "no state is known for this contact")
            return _event_response(stored)
        if request.method == "DELETE":
            await runtime.poller.untrack(contact_id)
            return Response(status_code=204)
        return await _track(request, runtime, contact_id)
    except BusUnavailable:
        return _error(503, "unavailable", "the event bus is unreachable; retry")
    except BodyError as exc:
        return exc.response


async def _track(request: Request, runtime: Runtime, contact_id: str) -> Response:
    body = await read_json_body(request)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        return _error(400, "bad_message", "the body is a JSON object")
    requested = body.get("instanceId")
    queue = body.get("queueId")
    if requested is not None and (not isinstance(requested, str) or not is_valid_id(requested)):
        return _error(400, "bad_instance", "instanceId must be a Connect instance id or ARN")
    access: AccessPolicy = request.app.state.access
    try:
        instance = access.instances.for_track(requested)
    except InstanceRefused as refused:
        return _error(400, refused.code, refused.message)
    if queue is not None and not is_valid_queue_id(queue):
        return _error(400, "bad_id", "queueId must be a queue id")
    [stored] = await runtime.bus.read_states([contact_id])
    tracked = await runtime.poller.track(instance, contact_id, stored, queue)
    payload = {
        "contact": contact_id,
        "tracked": tracked,
        "state": None if stored is None else stored.to_dict(),
    }
    return JSONResponse(payload, 202 if tracked else 200)


async def status(request: Request) -> Response:
    runtime = _runtime(request)
    return JSONResponse(
        {
            **runtime.poller.status(),
            "bus": {
                "backend": "redis" if runtime.settings.redis_url else "memory",
                "connected": runtime.bus.connected,
                "channels": len(runtime.bus.channels),
                "lastError": runtime.bus.last_error,
            },
            "coordinationError": runtime.poller.coordination_error,
            "queueFigures": runtime.figures.status(),
            "queueListing": runtime.listing.status(),
            "queueNames": runtime.directory.status(),
            "sockets": len(runtime.gateway.sessions),
            "contactEvents": {
                **runtime.contact_events.status(),
                **runtime.contact_event_feed.status(),
            },
            # What the replicas tell each other of their own reads (none with one replica).
            "bookNews": {
                "shared": runtime.book_news is not None,
                **(runtime.book_news.status() if runtime.book_news else {}),
                "appliedByKind": dict(runtime.poller.news_applied),
            },
        }
    )


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


# Reason codes of /readyz: open to anyone, so codes only; details are in the logs and in
# /v1/status (a service token).
NOT_READY_BUS_DOWN = "bus_down"
NOT_READY_BUS_UNREACHABLE = "bus_unreachable"
NOT_READY_POLLER_STOPPED = "poller_stopped"
READINESS_PING_TIMEOUT = 1.0


async def readyz(request: Request) -> Response:
    """Whether this replica can serve: its bus answers and its poller runs.

    Amazon Connect's answers (access denied, unreachable) are the same for every replica of
    an account: taking all of them out of the load balancer would turn a Connect problem into
    an outage of the sockets too, so they show in `/v1/status` and the logs instead.
    """
    runtime = _runtime(request)
    reasons: list[str] = []
    if not runtime.bus.connected:
        reasons.append(NOT_READY_BUS_DOWN)
    else:
        try:
            await asyncio.wait_for(runtime.bus.ping(), READINESS_PING_TIMEOUT)
        except (BusUnavailable, TimeoutError):
            reasons.append(NOT_READY_BUS_UNREACHABLE)
    if not runtime.poller.running:
        reasons.append(NOT_READY_POLLER_STOPPED)
    if reasons:
        return JSONResponse({"ready": False, "reasons": reasons}, 503)
    return JSONResponse({"ready": True})


async def prometheus(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route(
        "/v1/contacts/{contact}", require_service_token(contact), methods=["GET", "PUT", "DELETE"]
    ),
    Route("/v1/status", require_service_token(status), methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", prometheus, methods=["GET"]),
]
