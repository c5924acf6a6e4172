"""The control and truth API under `/_sim/`, a prefix AWS never uses: JSON in, JSON out.

Errors here are plain JSON `{"error": <kind>, "message": ...}` (this is not an AWS API).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.emulator.delivery import DeliveryStats
from server.emulator.model import NotWaitingError, UnknownQueueError
from server.emulator.sim_config import ConfigError, apply_config, config_json
from server.emulator.simulator import OPERATIONS, Emulator, OperationStats
from server.events import utc_iso

MAX_CONTROL_BODY = 64 * 1024


class ControlError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def _error(exc: ControlError) -> JSONResponse:
    return JSONResponse({"error": exc.kind, "message": exc.message}, exc.status)


async def _json(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_CONTROL_BODY:
        raise ControlError(413, "too-large", "body too large")
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        raise ControlError(400, "bad-json", "body is not JSON") from None


def control_routes(emulator: Emulator) -> list[BaseRoute]:
    """The `/_sim/` routes bound to `emulator`."""

    async def create_contact(request: Request) -> Response:
        try:
            body = await _json(request)
            if not isinstance(body, dict) or not isinstance(body.get("queue"), str):
                raise ControlError(400, "bad-request", 'expected {"queue": <name or id>}')
            priority, instance = body.get("priority"), body.get("instance")
            if priority is not None and (
                isinstance(priority, bool) or not isinstance(priority, int)
            ):
                raise ControlError(400, "bad-request", "priority must be an integer")
            if instance is not None and not isinstance(instance, str):
                raise ControlError(400, "bad-request", "instance must be an instance id")
            waited = body.get("waitedSeconds", 0)
            if isinstance(waited, bool) or not isinstance(waited, int | float) or waited < 0:
                raise ControlError(400, "bad-request", "waitedSeconds must be a number >= 0")
            emulator.advance()
            try:
                queue = emulator.model.find_queue(body["queue"], instance)
            except UnknownQueueError:
                raise ControlError(404, "unknown-queue", f"no queue {body['queue']!r}") from None
            contact = emulator.model.enqueue(queue, priority, float(waited))
            emulator.advance()
        except ControlError as exc:
            return _error(exc)
        return JSONResponse(
            {
                "instanceId": contact.instance_id,
                "contactId": contact.contact_id,
                "queueId": contact.queue_id,
            }
        )

    def take_out(action: str) -> Any:
        async def endpoint(request: Request) -> Response:
            contact_id = request.path_params["contact_id"]
            emulator.advance()
            try:
                if action == "connect":
                    contact = emulator.model.connect(contact_id)
                else:
                    contact = emulator.model.abandon(contact_id)
            except KeyError:
                return _error(ControlError(404, "unknown-contact", f"no contact {contact_id}"))
            except NotWaitingError as exc:
                return _error(ControlError(409, "not-waiting", f"contact is {exc}"))
            emulator.advance()
            return JSONResponse({"contactId": contact.contact_id, "state": contact.status.value})

        return endpoint

    async def update_routing(request: Request) -> Response:
        contact_id = request.path_params["contact_id"]
        try:
            body = await _json(request)
            if not isinstance(body, dict) or set(body) - {"priority", "adjustmentSeconds"}:
                raise ControlError(
                    400, "bad-request", 'expected {"priority"?: int, "adjustmentSeconds"?: int}'
                )
            for key in ("priority", "adjustmentSeconds"):
                value = body.get(key)
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                    raise ControlError(400, "bad-request", f"{key} must be an integer")
            emulator.advance()
            try:
                emulator.model.update_routing(
                    contact_id, body.get("priority"), body.get("adjustmentSeconds")
                )
            except KeyError:
                raise ControlError(404, "unknown-contact", f"no contact {contact_id}") from None
            except NotWaitingError as exc:
                raise ControlError(409, "not-waiting", f"contact is {exc}") from None
            except ValueError as exc:
                raise ControlError(400, "bad-request", str(exc)) from None
        except ControlError as exc:
            return _error(exc)
        return JSONResponse(emulator.contact_truth(contact_id))

    async def contact(request: Request) -> Response:
        contact_id = request.path_params["contact_id"]
        emulator.advance()
        if contact_id not in emulator.model.contacts:
            return _error(ControlError(404, "unknown-contact", f"no contact {contact_id}"))
        return JSONResponse(emulator.contact_truth(contact_id))

    async def state(request: Request) -> Response:
        emulator.advance()
        return JSONResponse(
            {
                "now": utc_iso(emulator.model.now),
                "speed": emulator.clock.speed,
                "paused": emulator.clock.paused,
                "instances": emulator.snapshot(),
            }
        )

    def stats_json() -> dict[str, Any]:
        counts: dict[str, Any] = {name: emulator.stats[name].as_json() for name in OPERATIONS}
        counts["contactEvents"] = emulator.delivery.stats_json()
        return counts

    async def stats(request: Request) -> Response:
        return JSONResponse(stats_json())

    async def reset_stats(request: Request) -> Response:
        emulator.stats = {name: OperationStats() for name in OPERATIONS}
        emulator.delivery.stats = DeliveryStats()
        return JSONResponse(stats_json())

    async def get_config(request: Request) -> Response:
        return JSONResponse(config_json(emulator))

    async def put_config(request: Request) -> Response:
        try:
            apply_config(emulator, await _json(request))
        except ControlError as exc:
            return _error(exc)
        except ConfigError as exc:
            return _error(ControlError(400, "bad-config", str(exc)))
        return JSONResponse(config_json(emulator))

    return [
        Route("/_sim/contacts", create_contact, methods=["POST"]),
        Route("/_sim/contacts/{contact_id}/connect", take_out("connect"), methods=["POST"]),
        Route("/_sim/contacts/{contact_id}/abandon", take_out("abandon"), methods=["POST"]),
        Route("/_sim/contacts/{contact_id}/routing", update_routing, methods=["POST"]),
        Route("/_sim/contacts/{contact_id}", contact, methods=["GET"]),
        Route("/_sim/state", state, methods=["GET"]),
        Route("/_sim/stats", stats, methods=["GET"]),
        Route("/_sim/stats/reset", reset_stats, methods=["POST"]),
        Route("/_sim/config", get_config, methods=["GET"]),
        Route("/_sim/config", put_config, methods=["PUT"]),
    ]
