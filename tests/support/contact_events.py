"""Amazon Connect contact events in the shapes AWS documents them, for tests.

The samples follow AWS's own documentation ("Amazon Connect contact events", admin guide) and a
real 2021 capture: camelCase and PascalCase keys mixed, `instanceARN`, `"channel": "Voice"`,
placeholder `resources`, QUEUED without `enqueueTimestamp`.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

INSTANCE = "12345678-1234-1234-1234-123456789012"
CONTACT = "11111111-1111-1111-1111-111111111111"
INITIAL = "11111111-2222-3333-4444-555555555555"
QUEUE = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
INSTANCE_ARN = f"arn:aws:connect:us-west-2:123456789012:instance/{INSTANCE}"
CONTACT_ARN = f"{INSTANCE_ARN}/contact/{CONTACT}"
QUEUE_ARN = f"{INSTANCE_ARN}/queue/{QUEUE}"


# The admin guide's "voice call is connected to an agent" sample (2021): `instanceARN`,
# `"channel": "Voice"`, PascalCase `AgentInfo` without a timestamp, placeholder resources.
CONNECTED_SAMPLE: dict[str, Any] = {
    "version": "0",
    "id": "abcabcab-abca-abca-abca-abcabcabcabc",
    "detail-type": "Amazon Connect Contact Event",
    "source": "aws.connect",
    "account": "111122223333",
    "time": "2021-05-01T18:43:48Z",
    "region": "us-west-1",
    "resources": ["arn:aws...", "contactArn", "instanceArn"],
    "detail": {
        "eventType": "CONNECTED_TO_AGENT",
        "contactId": CONTACT,
        "initialContactId": INITIAL,
        "previousContactId": INITIAL,
        "channel": "Voice",
        "instanceARN": INSTANCE_ARN,
        "initiationMethod": "INBOUND",
        "queueInfo": {"queueArn": QUEUE_ARN, "queueType": "type"},
        "AgentInfo": {"AgentArn": "arn", "RoutingProfileArn": "arn"},
    },
}

# The newer "voice call is disconnected" sample: every timestamp, extra members this service
# does not use (customerVoiceActivity, disconnectReason, tags).
DISCONNECTED_SAMPLE: dict[str, Any] = {
    "version": "0",
    "id": "5a5b5c5d-0000-4000-8000-000000000001",
    "detail-type": "Amazon Connect Contact Event",
    "source": "aws.connect",
    "account": "123456789012",
    "time": "2021-08-04T17:43:48Z",
    "region": "us-west-2",
    "resources": [CONTACT_ARN, INSTANCE_ARN],
    "detail": {
        "eventType": "DISCONNECTED",
        "contactId": CONTACT,
        "initialContactId": CONTACT,
        "channel": "VOICE",
        "instanceArn": INSTANCE_ARN,
        "initiationMethod": "INBOUND",
        "initiationTimestamp": "2021-08-04T17:17:53.000Z",
        "connectedToSystemTimestamp": "2021-08-04T17:17:55.000Z",
        "disconnectTimestamp": "2021-08-04T17:43:47.250Z",
        "queueInfo": {
            "queueArn": QUEUE_ARN,
            "enqueueTimestamp": "2021-08-04T17:29:04.000Z",
            "queueType": "STANDARD",
        },
        "agentInfo": {
            "agentArn": f"{INSTANCE_ARN}/agent/0000",
            "connectedToAgentTimestamp": "2021-08-04T17:29:09.000Z",
        },
        "customerVoiceActivity": {"greetingStartTimestamp": "2021-08-04T17:29:20.000Z"},
        "disconnectReason": "CUSTOMER_DISCONNECT",
        "tags": {"aws:connect:instanceId": INSTANCE},
    },
}

# A real QUEUED capture (2021): queueInfo has no enqueueTimestamp.
QUEUED_CAPTURE: dict[str, Any] = {
    "version": "0",
    "id": "0e0e0e0e-1111-4222-8333-444444444444",
    "detail-type": "Amazon Connect Contact Event",
    "source": "aws.connect",
    "account": "123456789012",
    "time": "2021-03-10T09:15:30Z",
    "region": "eu-central-1",
    "resources": [CONTACT_ARN, INSTANCE_ARN],
    "detail": {
        "initiationTimestamp": "2021-03-10T09:15:02.118Z",
        "contactId": CONTACT,
        "channel": "VOICE",
        "instanceArn": INSTANCE_ARN,
        "initiationMethod": "INBOUND",
        "eventType": "QUEUED",
        "queueInfo": {"queueType": "STANDARD", "queueArn": QUEUE_ARN},
    },
}

# The "routing step expires" sample's PascalCase detail (CONTACT_DATA_UPDATED).
DATA_UPDATED_SAMPLE: dict[str, Any] = {
    "version": "0",
    "id": "9f9f9f9f-0000-4000-8000-00000000abcd",
    "detail-type": "Amazon Connect Contact Event",
    "source": "aws.connect",
    "account": "123456789012",
    "time": "2023-10-30T21:05:41Z",
    "region": "us-east-1",
    "resources": [CONTACT_ARN, INSTANCE_ARN],
    "detail": {
        "EventType": "CONTACT_DATA_UPDATED",
        "ContactId": CONTACT,
        "InitialContactId": CONTACT,
        "Channel": "VOICE",
        "InstanceArn": INSTANCE_ARN,
        "InitiationMethod": "INBOUND",
        "QueueInfo": {
            "QueueArn": QUEUE_ARN,
            "EnqueueTimestamp": "2023-10-30T21:04:59.000Z",
            "QueueType": "STANDARD",
        },
        "UpdatedProperties": ["RoutingCriteria"],
        "RoutingCriteria": {"ActivationTimestamp": "2023-10-30T21:05:41.000Z", "Steps": []},
    },
}


def envelope(n: int, sample: dict[str, Any] = QUEUED_CAPTURE, **changes: Any) -> dict[str, Any]:
    """A copy of `sample` with its own event id (`ev-<n>`) and contact; `changes` replace
    envelope members."""
    out = copy.deepcopy(sample)
    out["id"] = f"ev-{n}"
    out["detail"]["contactId"] = f"00000000-0000-4000-8000-{n:012d}"
    out.update(changes)
    return out


def queued_for(region: str, instance_id: str, event_id: str | None = None) -> dict[str, Any]:
    """A QUEUED event of `instance_id` for a new contact, with its own event id."""
    out = copy.deepcopy(QUEUED_CAPTURE)
    out["id"] = event_id or str(uuid.uuid4())
    out["detail"]["contactId"] = str(uuid.uuid4())
    out["detail"]["instanceArn"] = f"arn:aws:connect:{region}:123456789012:instance/{instance_id}"
    return out
