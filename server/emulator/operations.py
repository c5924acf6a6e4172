"""What every emulated Connect operation does around its answer, in one place.

Order of checks on an AWS route: injected stall and latency, then SigV4 presence (403), then
input validation (400/413), then the operation's quota (429), then injected errors, then the
model (404 and the rest). Every answer is counted in `/_sim/stats` by outcome (and contact or
queue where there is one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response

from server.emulator.simulator import Emulator
from server.emulator.wire import AwsError, aws_response, check_auth, error_response
from server.ids import bare_id

STALL_POLL_S = 0.05

# Parses and validates a request: its parameters and the key it is counted under in stats.
Parse = Callable[[Request], Awaitable[tuple[dict[str, Any], str | None]]]
# Answers validated parameters from the model (already advanced to now): the response body.
Answer = Callable[[dict[str, Any]], dict[str, Any]]


class ConnectOperations:
    """Base of the handler classes: the shared gate every Connect operation passes."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    async def serve(
        self, operation: str, request: Request, parse: Parse, answer: Answer
    ) -> Response:
        """Run one request of `operation` through the gate, `parse` and `answer`."""
        em = self.emulator
        key: str | None = None
        try:
            await self._injected_delay()
            check_auth(request)
            params, key = await parse(request)
            self._admit(operation)
            em.advance()
            body = answer(params)
        except AwsError as error:
            em.stats[operation].record(error.code, key)
            return error_response(error)
        em.stats[operation].record("ok", key)
        return aws_response(body)

    def instance(self, instance_id: str) -> str:
        """The bare id of a known instance.

        Raises:
            AwsError: ResourceNotFoundException.
        """
        bare = bare_id(instance_id)
        if bare not in self.emulator.model.instances:
            raise AwsError("ResourceNotFoundException", "Instance not found")
        return bare

    @staticmethod
    def path_labels(request: Request, template: str) -> dict[str, str]:
        """The URI labels of `request` by the names in `template` (`/queues/{InstanceId}/...`).

        The raw path keeps %2F inside a label (an instance ARN) from splitting it.

        Raises:
            AwsError: InvalidRequestException when the path does not fit the template.
        """
        raw = request.scope.get("raw_path", b"").decode("latin-1").split("?")[0]
        parts, names = raw.split("/"), template.split("/")
        if len(parts) != len(names):
            raise AwsError("InvalidRequestException", f"Expected {template}")
        labels = {}
        for part, name in zip(parts, names, strict=True):
            if name.startswith("{"):
                labels[name.strip("{}")] = unquote(part)
            elif part != name:
                raise AwsError("InvalidRequestException", f"Expected {template}")
        return labels

    async def _injected_delay(self) -> None:
        faults = self.emulator.faults
        # Polled: the switch is a plain setting flipped from sync code; waiting costs nothing.
        while faults.settings.stall:  # noqa: ASYNC110
            await asyncio.sleep(STALL_POLL_S)
        delay = faults.delay_s()
        if delay:
            await asyncio.sleep(delay)

    def _admit(self, operation: str) -> None:
        if not self.emulator.quotas[operation].allow(self.emulator.mono()):
            raise AwsError("ThrottlingException", "Rate exceeded")
        injected = self.emulator.faults.pick_error()
        if injected is not None:
            raise AwsError(injected, f"Injected fault: {injected}")
