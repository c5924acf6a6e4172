"""Connect's contact operations on the wire: GetContactMetrics, DescribeContact and
UpdateContactRoutingData, answered from the emulator's model."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server.emulator.model import Contact, ContactStatus, NotWaitingError
from server.emulator.operations import ConnectOperations
from server.emulator.simulator import Emulator
from server.emulator.wire import AwsError, input_validator, read_json_body
from server.ids import bare_id, contact_arn


class ContactApi(ConnectOperations):
    """Handlers for the contact operations."""

    def __init__(self, emulator: Emulator) -> None:
        super().__init__(emulator)
        self._validate_metrics = input_validator("GetContactMetrics")
        self._validate_describe = input_validator("DescribeContact")
        self._validate_routing = input_validator("UpdateContactRoutingData")

    async def get_contact_metrics(self, request: Request) -> Response:
        async def parse(request: Request) -> tuple[dict[str, Any], str | None]:
            body = await read_json_body(request, self.emulator.config.max_body_bytes)
            self._validate_metrics(body)
            return body, bare_id(body["ContactId"])

        return await self.serve("getContactMetrics", request, parse, self._metrics)

    def _metrics(self, body: dict[str, Any]) -> dict[str, Any]:
        em = self.emulator
        contact = self._contact(body["InstanceId"], body["ContactId"])
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
        config = em.config
        arn = contact_arn(
            config.region, config.account_id, contact.instance_id, bare_id(body["ContactId"])
        )
        return {"MetricResults": results, "Id": contact.contact_id, "Arn": arn}

    async def describe_contact(self, request: Request) -> Response:
        async def parse(request: Request) -> tuple[dict[str, Any], str | None]:
            params = self.path_labels(request, "/contacts/{InstanceId}/{ContactId}")
            self._validate_describe(params)
            return params, bare_id(params["ContactId"])

        def answer(params: dict[str, Any]) -> dict[str, Any]:
            contact = self._contact(params["InstanceId"], params["ContactId"])
            return {"Contact": self._describe(contact)}

        return await self.serve("describeContact", request, parse, answer)

    async def update_contact_routing_data(self, request: Request) -> Response:
        async def parse(request: Request) -> tuple[dict[str, Any], str | None]:
            labels = self.path_labels(request, "/contacts/{InstanceId}/{ContactId}/routing-data")
            body = await read_json_body(request, self.emulator.config.max_body_bytes)
            params = {**body, **labels}
            self._validate_routing(params)
            if params.get("RoutingCriteria") is not None:
                raise AwsError(
                    "InvalidRequestException", "The emulator does not model RoutingCriteria"
                )
            return params, bare_id(params["ContactId"])

        def answer(params: dict[str, Any]) -> dict[str, Any]:
            contact = self._contact(params["InstanceId"], params["ContactId"])
            try:
                self.emulator.model.update_routing(
                    contact.contact_id,
                    priority=params.get("QueuePriority"),
                    age_adjustment_s=params.get("QueueTimeAdjustmentSeconds"),
                )
            except NotWaitingError:
                raise AwsError("ResourceConflictException", "Contact is not in queue") from None
            return {}

        return await self.serve("updateContactRoutingData", request, parse, answer)

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
            "QueueTimeAdjustmentSeconds": contact.age_adjustment_s,
        }
        if contact.connected_at is not None:
            described["AgentInfo"] = {"ConnectedToAgentTimestamp": contact.connected_at}
        if contact.disconnected_at is not None:
            described["DisconnectTimestamp"] = contact.disconnected_at
        return described

    def _contact(self, instance_id: str, contact_id: str) -> Contact:
        self.instance(instance_id)
        contact = self.emulator.find_contact(instance_id, contact_id)
        if contact is None:
            raise AwsError("ResourceNotFoundException", "Contact not found")
        return contact
