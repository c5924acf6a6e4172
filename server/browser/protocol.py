"""The WebSocket protocol, client to server: decoding and the server's control frames. No I/O.

Events (snapshot, update, ended) are `server.events`; this module covers the rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from server.ids import is_valid_id, is_valid_queue_id

PONG = '{"type":"pong"}'

# WebSocket close codes the server sends (RFC 6455 7.4.1; docs/protocol.md).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # the server is shutting down
CLOSE_POLICY = 1008  # unauthorized, token expired, rate limit, too many unread replies
CLOSE_FRAME_TOO_BIG = 1009
CLOSE_TRY_AGAIN_LATER = 1013  # the client did not read for send_timeout


class ProtocolError(ValueError):
    """A client message that cannot be served; answered with an `error` frame."""

    def __init__(self, code: str, message: str, contact: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.contact = contact


@dataclass(frozen=True, slots=True)
class Subscribe:
    contact: str | None = None
    queue: str | None = None
    instance: str | None = None
    since: int = 0


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    contact: str | None = None
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Auth:
    token: str


ClientMessage = Subscribe | Unsubscribe | Ping | Auth


def _target(payload: dict[str, Any]) -> tuple[str | None, str | None]:
    contact, queue = payload.get("contact"), payload.get("queue")
    if (contact is None) == (queue is None):
        raise ProtocolError("bad_message", "give exactly one of `contact` and `queue`")
    if contact is not None and not is_valid_id(contact):
        raise ProtocolError(
            "bad_id",
            "contact must be a Connect contact id (a UUID)",
            contact if isinstance(contact, str) and len(contact) <= 250 else None,
        )
    if queue is not None and not is_valid_queue_id(queue):
        raise ProtocolError("bad_id", "queue must be a queue id")
    return contact, queue


def parse_client_message(text: str | bytes) -> ClientMessage:
    """Decode one client frame.

    Raises:
        ProtocolError: with code `bad_json`, `bad_message`, `unknown_op` or `bad_id`.
    """
    if isinstance(text, bytes):
        raise ProtocolError("bad_message", "send JSON text frames, not binary")
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_json", "the frame is not valid JSON") from None
    if not isinstance(payload, dict):
        raise ProtocolError("bad_message", "a message is a JSON object with an `op`")
    op = payload.get("op")
    if op == "subscribe":
        contact, queue = _target(payload)
        instance = payload.get("instance")
        if instance is not None and not is_valid_id(instance):
            raise ProtocolError("bad_id", "instance must be a Connect instance id or ARN")
        since = payload.get("since", 0)
        if since is None:
            since = 0
        if isinstance(since, bool) or not isinstance(since, int) or not 0 <= since < 2**53:
            raise ProtocolError("bad_message", "since must be a non-negative integer")
        return Subscribe(contact=contact, queue=queue, instance=instance, since=since)
    if op == "unsubscribe":
        contact, queue = _target(payload)
        return Unsubscribe(contact=contact, queue=queue)
    if op == "ping":
        return Ping()
    if op == "auth":
        token = payload.get("token")
        if not isinstance(token, str) or not token:
            raise ProtocolError("bad_message", "auth needs a `token` string")
        return Auth(token)
    if not isinstance(op, str):
        raise ProtocolError("bad_message", "a message needs an `op` string")
    raise ProtocolError("unknown_op", "unknown op; use subscribe, unsubscribe, ping or auth")


def error_frame(code: str, message: str, contact: str | None = None) -> str:
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if contact is not None:
        body["contact"] = contact
    return json.dumps(body, separators=(",", ":"))
