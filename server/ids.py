"""Amazon Connect identifiers: validation and ARNs, the one home of every id rule.

Instance and contact ids: the pattern and lengths come from botocore's own Connect service
model, so they stay in step with AWS rather than with a copy typed here. Queue ids: any
printable text up to `MAX_QUEUE_ID_LENGTH` characters (a queue id is only ever a name here:
a channel and a set in the bus, a claim in a token).
"""

from __future__ import annotations

import functools
import re
from typing import TypeGuard

import botocore.session


@functools.cache
def _id_shape_rules() -> tuple[re.Pattern[str], int, int]:
    model = botocore.session.get_session().get_service_model("connect")
    shape = model.operation_model("GetContactMetrics").input_shape.members["ContactId"]
    meta = shape.metadata
    return re.compile(meta["pattern"]), int(meta.get("min", 1)), int(meta.get("max", 250))


def is_valid_id(value: object) -> bool:
    """Whether `value` is an instance or contact id that GetContactMetrics accepts."""
    if not isinstance(value, str):
        return False
    pattern, low, high = _id_shape_rules()
    return low <= len(value) <= high and pattern.fullmatch(value) is not None


MAX_QUEUE_ID_LENGTH = 250


def is_valid_queue_id(value: object) -> TypeGuard[str]:
    """Whether `value` is a queue id: printable text of 1 to `MAX_QUEUE_ID_LENGTH` characters."""
    return isinstance(value, str) and 0 < len(value) <= MAX_QUEUE_ID_LENGTH and value.isprintable()


def bare_id(value: str) -> str:
    """The UUID part of an id that may carry an instance-ARN prefix."""
    return value.rsplit("/", 1)[-1]


def contact_arn(region: str, account: str, instance_id: str, contact_id: str) -> str:
    return (
        f"arn:aws:connect:{region}:{account}:instance/{bare_id(instance_id)}"
        f"/contact/{bare_id(contact_id)}"
    )


def instance_arn(region: str, account: str, instance_id: str) -> str:
    return f"arn:aws:connect:{region}:{account}:instance/{bare_id(instance_id)}"


def queue_arn(region: str, account: str, instance_id: str, queue_id: str) -> str:
    return f"arn:aws:connect:{region}:{account}:instance/{bare_id(instance_id)}/queue/{queue_id}"
