"""`POST /v1/events`: the target of an EventBridge API destination (docs/protocol.md).

An API destination sends one envelope per request, with the connection's API key in a header,
and wants an answer within 5 s: 2xx when taken, 4xx for what is never to be retried (dropped),
429/5xx to be retried later (with `Retry-After`). So: 200 with what became of the envelopes;
400 for what can never be taken; 401 without valid credentials; 413 for too much; 503 with
`Retry-After` while the shared log cannot take it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server import metrics
from server.access.policy import authorize_events
from server.browser.protocol import error_frame
from server.bus import BusUnavailable
from server.connect.contact_events import EnvelopeError
from server.http.api import BodyError, read_json_body
from server.runtime import Runtime

# EventBridge caps an event at 256 KB; a batch from another sender gets a few of those.
MAX_EVENTS_BODY_BYTES = 1024 * 1024
MAX_EVENTS_PER_REQUEST = 500
RETRY_AFTER_S = 5


def _error(status: int, code: str, message: str, outcome: str) -> Response:
    metrics.CONTACT_EVENTS.labels(outcome).inc()
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    return Response(
        error_frame(code, message), status, headers=headers, media_type="application/json"
    )


async def post_events(request: Request) -> Response:
    denied = authorize_events(request)
    if denied is not None:
        metrics.CONTACT_EVENTS.labels("unauthorized").inc()
        return denied
    runtime: Runtime = request.app.state.runtime
    try:
        body = await read_json_body(request, MAX_EVENTS_BODY_BYTES)
    except BodyError as exc:
        metrics.CONTACT_EVENTS.labels(
            "too_large" if exc.response.status_code == 413 else "malformed"
        ).inc()
        return exc.response
    envelopes = body if isinstance(body, list) else [body]
    if len(envelopes) > MAX_EVENTS_PER_REQUEST:
        message = f"at most {MAX_EVENTS_PER_REQUEST} envelopes per request"
        return _error(413, "too_many_events", message, "too_large")
    try:
        result = await runtime.contact_events.take(envelopes)
    except EnvelopeError as exc:
        return _error(400, "bad_event", str(exc), "malformed")
    except BusUnavailable:
        message = "the contact-event log is unreachable; retry"
        return _error(503, "unavailable", message, "unavailable")
    for outcome, count in (
        ("accepted", result.accepted),
        ("duplicate", result.duplicates),
        ("ignored", result.ignored),
    ):
        if count:
            metrics.CONTACT_EVENTS.labels(outcome).inc(count)
    return JSONResponse(result.to_json())


routes = [Route("/v1/events", post_events, methods=["POST"])]
