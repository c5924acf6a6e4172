"""Connect's queue operations on the wire: GetCurrentMetricData, ListQueues, DescribeQueue.

Every queue of the model is a STANDARD queue, ENABLED, named as its `QueueSpec`; there are no
agent queues. Queue ids in requests may be bare ids or queue ARNs.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server.emulator.current_metrics import current_metric_results
from server.emulator.model import Queue
from server.emulator.operations import ConnectOperations
from server.emulator.paging import page
from server.emulator.simulator import Emulator
from server.emulator.wire import AwsError, input_validator, read_json_body
from server.ids import bare_id, queue_arn

LIST_QUEUES_DEFAULT_PAGE = 100  # Connect's documented default MaxResults
# Fixed ids for what the model does not have, derived (not drawn: draws would change history).
_ID_NAMESPACE = uuid.UUID("6f0d2f1e-3c1b-4c55-9a59-2b8e2f4f7a10")


def _int_or_text(text: str | None) -> int | str | None:
    """A query-string integer as an int, or the text itself so validation reports it."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return text


class QueueApi(ConnectOperations):
    """Handlers for the queue operations."""

    def __init__(self, emulator: Emulator) -> None:
        super().__init__(emulator)
        self._validate_current = input_validator("GetCurrentMetricData")
        self._validate_list = input_validator("ListQueues")
        self._validate_describe = input_validator("DescribeQueue")

    async def get_current_metric_data(self, request: Request) -> Response:
        async def parse(request: Request) -> tuple[dict[str, Any], str | None]:
            labels = self.path_labels(request, "/metrics/current/{InstanceId}")
            body = await read_json_body(request, self.emulator.config.max_body_bytes)
            params = {**body, **labels}
            self._validate_current(params)
            return params, None

        def answer(params: dict[str, Any]) -> dict[str, Any]:
            config = self.emulator.config
            instance_id = self.instance(params["InstanceId"])
            return current_metric_results(
                params, self.emulator.model, instance_id, config.region, config.account_id
            )

        return await self.serve("getCurrentMetricData", request, parse, answer)

    async def list_queues(self, request: Request) -> Response:
        async def parse(request: Request) -> tuple[dict[str, Any], str | None]:
            params: dict[str, Any] = self.path_labels(request, "/queues-summary/{InstanceId}")
            query = request.query_params
            if "queueTypes" in query:
                params["QueueTypes"] = query.getlist("queueTypes")
            if "maxResults" in query:
                params["MaxResults"] = _int_or_text(query["maxResults"])
            if "nextToken" in query:
                params["NextToken"] = query["nextToken"]
            self._validate_list(params)
            return params, None

        def answer(params: dict[str, Any]) -> dict[str, Any]:
            instance_id = self.instance(params["InstanceId"])
            types = params.get("QueueTypes") or ["STANDARD", "AGENT"]
            queues = self.emulator.model.instances[instance_id] if "STANDARD" in types else []
            summaries, token = page(
                [self._summary(q) for q in queues], params, LIST_QUEUES_DEFAULT_PAGE
            )
            body: dict[str, Any] = {"QueueSummaryList": summaries}
            if token is not None:
                body["NextToken"] = token
            return body

        return await self.serve("listQueues", request, parse, answer)

    async def describe_queue(self, request: Request) -> Response:
        async def parse(request: Request) -> tuple[dict[str, Any], str | None]:
            params = self.path_labels(request, "/queues/{InstanceId}/{QueueId}")
            self._validate_describe(params)
            return params, bare_id(params["QueueId"])

        def answer(params: dict[str, Any]) -> dict[str, Any]:
            instance_id = self.instance(params["InstanceId"])
            queue = self.emulator.model.queues.get(bare_id(params["QueueId"]))
            if queue is None or queue.instance_id != instance_id:
                raise AwsError("ResourceNotFoundException", "Queue not found")
            return {"Queue": self._describe(queue)}

        return await self.serve("describeQueue", request, parse, answer)

    def _arn(self, queue: Queue) -> str:
        config = self.emulator.config
        return queue_arn(config.region, config.account_id, queue.instance_id, queue.queue_id)

    def _summary(self, queue: Queue) -> dict[str, Any]:
        return {
            "Id": queue.queue_id,
            "Arn": self._arn(queue),
            "Name": queue.spec.name,
            "QueueType": "STANDARD",
            "LastModifiedTime": self.emulator.started_at,
            "LastModifiedRegion": self.emulator.config.region,
        }

    def _describe(self, queue: Queue) -> dict[str, Any]:
        hours = uuid.uuid5(_ID_NAMESPACE, f"hours-of-operation/{queue.instance_id}")
        return {
            "Name": queue.spec.name,
            "QueueArn": self._arn(queue),
            "QueueId": queue.queue_id,
            "Description": f"{queue.spec.name} ({queue.spec.agents} agents, emulated)",
            "HoursOfOperationId": str(hours),
            "Status": "ENABLED",
            "LastModifiedTime": self.emulator.started_at,
            "LastModifiedRegion": self.emulator.config.region,
        }
