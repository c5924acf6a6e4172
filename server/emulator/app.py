"""The emulator's Starlette app: Connect's GetContactMetrics and DescribeContact on the wire.

Order of checks on an AWS route: injected stall and latency, then SigV4 presence (403), then
input validation (400/413), then the quota (429), then injected errors, then the model (404,
leave mode). Every answer is counted in `/_sim/stats` by outcome and contact.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server._lifecycle import AsyncCloseable, cancel_and_wait
from server.emulator.config import EmulatorConfig
from server.emulator.control import control_routes
from server.emulator.eventbridge import ContactEventPoster
from server.emulator.model import Contact, ContactStatus
from server.emulator.simulator import Emulator, Quota
from server.emulator.wire import (
    AwsError,
    aws_response,
    check_auth,
    error_response,
    input_validator,
    read_json_body,
)
from server.ids import bare_id, contact_arn

STALL_POLL_S = 0.05


class ConnectApi:
    """Handlers for the two Connect operations, answering from an `Emulator`."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self._validate_metrics = input_validator("GetContactMetrics")
        self._validate_describe = input_validator("DescribeContact")

    async def get_contact_metrics(self, request: Request) -> Response:
        em = self.emulator
        contact_key: str | None = None
        try:
            await self._injected_delay()
            check_auth(request)
            body = await read_json_body(request, em.config.max_body_bytes)
            self._validate_metrics(body)
            contact_key = bare_id(body["ContactId"])
            self._admit(em.metrics_quota)
            contact = self._lookup(body["InstanceId"], body["ContactId"])
            results = []
            if contact.status is ContactStatus.WAITING:
                for metric in body["Metrics"]:
                    value = em.metric_value(contact, metric["Name"])
                    results.append({"Name": metric["Name"], "Value": {"Number": value}})
            else:
                outcome = em.leave_outcome(contact)
                if outcome == "not-found":
                    raise AwsError("ResourceNotFoundException", "Contact not found in queue")
                if outcome == "invalid":
                    raise AwsError("InvalidRequestException", "Contact is not in queue")
        except AwsError as error:
            em.stats["getContactMetrics"].record(error.code, contact_key)
            return error_response(error)
        em.stats["getContactMetrics"].record("ok", contact_key)
        arn = contact_arn(em.config.region, em.config.account_id, contact.instance_id, contact_key)
        return aws_response({"MetricResults": results, "Id": contact.contact_id, "Arn": arn})

    async def describe_contact(self, request: Request) -> Response:
        em = self.emulator
        contact_key: str | None = None
        try:
            await self._injected_delay()
            check_auth(request)
            # The raw path keeps %2F inside a label (an instance ARN) from splitting it.
            parts = request.scope.get("raw_path", b"").decode("latin-1").split("?")[0].split("/")
            if len(parts) != 4:
                raise AwsError(
                    "InvalidRequestException", "Expected /contacts/{InstanceId}/{ContactId}"
                )
            params = {"InstanceId": unquote(parts[2]), "ContactId": unquote(parts[3])}
            self._validate_describe(params)
            contact_key = bare_id(params["ContactId"])
            self._admit(em.describe_quota)
            contact = self._lookup(params["InstanceId"], params["ContactId"])
        except AwsError as error:
            em.stats["describeContact"].record(error.code, contact_key)
            return error_response(error)
        em.stats["describeContact"].record("ok", contact_key)
        return aws_response({"Contact": self._describe(contact)})

    def _describe(self, contact: Contact) -> dict[str, object]:
        config = self.emulator.config
        described: dict[str, object] = {
            "Id": contact.contact_id,
            "Arn": contact_arn(
                config.region, config.account_id, contact.instance_id, contact.contact_id
            ),
            "Channel": "VOICE",
            "InitiationMethod": "INBOUND",
            "InitiationTimestamp": contact.enqueued_at,
            "QueueInfo": {"Id": contact.queue_id, "EnqueueTimestamp": contact.enqueued_at},
            "QueuePriority": contact.priority,
        }
        if contact.connected_at is not None:
            described["AgentInfo"] = {"ConnectedToAgentTimestamp": contact.connected_at}
        if contact.disconnected_at is not None:
            described["DisconnectTimestamp"] = contact.disconnected_at
        return described

    async def _injected_delay(self) -> None:
        faults = self.emulator.faults
        # Polled: the switch is a plain setting flipped from sync code; waiting costs nothing.
        while faults.settings.stall:  # noqa: ASYNC110
            await asyncio.sleep(STALL_POLL_S)
        delay = faults.delay_s()
        if delay:
            await asyncio.sleep(delay)

    def _admit(self, quota: Quota) -> None:
        if not quota.allow(self.emulator.mono()):
            raise AwsError("ThrottlingException", "Rate exceeded")
        injected = self.emulator.faults.pick_error()
        if injected is not None:
            raise AwsError(injected, f"Injected fault: {injected}")

    def _lookup(self, instance_id: str, contact_id: str) -> Contact:
        self.emulator.advance()
        if bare_id(instance_id) not in self.emulator.model.instances:
            raise AwsError("ResourceNotFoundException", "Instance not found")
        contact = self.emulator.find_contact(instance_id, contact_id)
        if contact is None:
            raise AwsError("ResourceNotFoundException", "Contact not found")
        return contact


class ModelTicker(AsyncCloseable):
    """Owns the task that advances the model on a tick, so events flow while nobody asks."""

    def __init__(self, emulator: Emulator, tick_s: float) -> None:
        self.emulator, self.tick_s = emulator, tick_s
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ModelTicker:
        self._task = asyncio.create_task(self._run(), name="emulator-model-ticker")
        return self

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            self.emulator.advance()
            await asyncio.sleep(self.tick_s)


async def _unknown_route(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    error = AwsError("InvalidRequestException", f"No operation at {request.url.path}", status)
    response = error_response(error)
    response.headers["x-amzn-ErrorType"] = "UnknownOperationException"
    return response


def create_emulator_app(config: EmulatorConfig | None = None) -> Starlette:
    """The emulator as an ASGI app; its lifespan runs the model ticker and the event poster.

    The `Emulator` is at `app.state.emulator` for in-process callers.
    """
    config = config or EmulatorConfig()
    emulator = Emulator(config)
    api = ConnectApi(emulator)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if config.events_url:
                poster = ContactEventPoster(
                    config.events_url,
                    config.region,
                    config.account_id,
                    config.events_timeout_s,
                    config.events_queue_size,
                )
                await stack.enter_async_context(poster)
                emulator.event_sink = poster.offer
                stack.callback(setattr, emulator, "event_sink", None)
            await stack.enter_async_context(ModelTicker(emulator, config.tick_s))
            yield

    routes = [
        Route("/metrics/contact", api.get_contact_metrics, methods=["POST"]),
        Route("/contacts/{rest:path}", api.describe_contact, methods=["GET"]),
        *control_routes(emulator),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: _unknown_route, 405: _unknown_route},
    )
    app.state.emulator = emulator
    return app
