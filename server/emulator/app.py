"""The emulator's Starlette app: Connect's operations on the wire, the model ticker, `/_sim/`.

The operations live in `contact_api.py`, `queue_api.py` and `search_api.py`; what every one
of them does around its answer (faults, auth, quota, stats) in `operations.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server._lifecycle import AsyncCloseable, cancel_and_wait
from server.emulator.config import EmulatorConfig
from server.emulator.contact_api import ContactApi
from server.emulator.control import control_routes
from server.emulator.eventbridge import ContactEventPoster
from server.emulator.queue_api import QueueApi
from server.emulator.search_api import SearchApi
from server.emulator.simulator import Emulator
from server.emulator.wire import AwsError, error_response


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
    contacts, queues, search = ContactApi(emulator), QueueApi(emulator), SearchApi(emulator)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if config.events_url:
                poster = ContactEventPoster(
                    config.events_url,
                    config.region,
                    config.account_id,
                    emulator.delivery,
                    api_key=config.events_key,
                    timeout_s=config.events_timeout_s,
                    max_pending=config.events_queue_size,
                    concurrency=config.events_concurrency,
                )
                await stack.enter_async_context(poster)
                emulator.event_sink = poster.offer
                stack.callback(setattr, emulator, "event_sink", None)
            await stack.enter_async_context(ModelTicker(emulator, config.tick_s))
            yield

    routes = [
        Route("/metrics/contact", contacts.get_contact_metrics, methods=["POST"]),
        Route("/metrics/current/{rest:path}", queues.get_current_metric_data, methods=["POST"]),
        Route(
            "/contacts/{rest:path}/routing-data",
            contacts.update_contact_routing_data,
            methods=["POST"],
        ),
        Route("/contacts/{rest:path}", contacts.describe_contact, methods=["GET"]),
        Route("/queues-summary/{rest:path}", queues.list_queues, methods=["GET"]),
        Route("/queues/{rest:path}", queues.describe_queue, methods=["GET"]),
        Route("/search-contacts", search.search_contacts, methods=["POST"]),
        *control_routes(emulator),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: _unknown_route, 405: _unknown_route},
    )
    app.state.emulator = emulator
    return app
