"""Page tokens of the emulator's List/Get operations: opaque, and tied to one request.

Connect documents that a token only works with "the same request parameters as the request
that generated the token"; a token from other parameters, or not a token at all, answers
InvalidParameterException here (AWS documents no code for it).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from server.emulator.wire import AwsError

TOKEN_FIELDS = ("NextToken", "MaxResults")  # may change between pages of one listing


def _fingerprint(params: dict[str, Any]) -> str:
    rest = {k: v for k, v in params.items() if k not in TOKEN_FIELDS}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:16]


def page_token(offset: int, params: dict[str, Any]) -> str:
    """The NextToken that continues the listing `params` asked for at `offset`."""
    raw = json.dumps({"offset": offset, "request": _fingerprint(params)}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def page_start(params: dict[str, Any]) -> int:
    """Where the page `params` asks for starts (0 without a NextToken).

    Raises:
        AwsError: InvalidParameterException for a malformed or foreign token.
    """
    token = params.get("NextToken")
    if token is None:
        return 0
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset, fingerprint = decoded["offset"], decoded["request"]
    except (ValueError, TypeError, KeyError):
        raise AwsError("InvalidParameterException", "Invalid NextToken") from None
    if not isinstance(offset, int) or offset < 0 or fingerprint != _fingerprint(params):
        raise AwsError(
            "InvalidParameterException", "NextToken does not belong to these request parameters"
        )
    return offset


def page(
    items: list[Any], params: dict[str, Any], default_size: int
) -> tuple[list[Any], str | None]:
    """The slice of `items` this request's page holds, and the token of the next page."""
    start = page_start(params)
    size = params.get("MaxResults") or default_size
    token = page_token(start + size, params) if start + size < len(items) else None
    return items[start : start + size], token
