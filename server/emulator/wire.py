"""Amazon Connect's rest-json wire format: input validation from botocore's model, AWS errors.

Validators are compiled once per operation from botocore's Connect service model (the same
model the SDKs serialize with), so shapes, lengths and patterns are never re-typed here.
Choices where AWS documents nothing: constraint violations (missing member, wrong type, length,
pattern, enum, too few items) answer 400 InvalidParameterException with a Coral-style message;
a body that is not a JSON object answers 400 InvalidRequestException; an over-large body answers
413 with error type InvalidRequestException, so SDKs still raise a modelled exception.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import botocore.session
from starlette.requests import Request
from starlette.responses import Response

ERROR_STATUS = {
    "InvalidRequestException": 400,
    "InvalidParameterException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ResourceConflictException": 409,
    "ThrottlingException": 429,
    "InternalServiceException": 500,
}

# Enum values newer than the pinned botocore; AWS accepts them, so must we.
EXTRA_ENUM_VALUES = {"ContactMetricName": ("ESTIMATED_WAIT_TIME",)}

CONTENT_TYPE = "application/json"

Check = Callable[[object, str, list[str]], None]


class AwsError(Exception):
    """An error answered in AWS rest-json form."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = ERROR_STATUS[code] if status is None else status


def aws_response(body: object, status: int = 200) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        headers={"x-amzn-RequestId": str(uuid.uuid4())},
        media_type=CONTENT_TYPE,
    )


def error_response(error: AwsError) -> Response:
    response = aws_response({"message": error.message}, error.status)
    response.headers["x-amzn-ErrorType"] = error.code
    return response


def check_auth(request: Request) -> None:
    """Refuse requests without a SigV4 Authorization header; the signature is not verified."""
    if not request.headers.get("authorization", "").startswith("AWS4-HMAC-SHA256"):
        raise AwsError(
            "AccessDeniedException", "Missing Authentication Token: a SigV4 signature is required"
        )


async def read_json_body(request: Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object, read without buffering more than `limit` bytes."""
    too_large = AwsError("InvalidRequestException", f"Request body exceeds {limit} bytes", 413)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks) or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise AwsError("InvalidRequestException", "The request body is not valid JSON") from None
    except RecursionError:  # 64 KiB of "[[[[..." nests deeper than the parser goes
        raise AwsError("InvalidRequestException", "The request body nests too deeply") from None
    if not isinstance(body, dict):
        raise AwsError("InvalidRequestException", "The request body must be a JSON object")
    return body


@functools.cache
def input_validator(operation: str) -> Callable[[dict[str, Any]], None]:
    """A function that raises InvalidParameterException unless `params` fit `operation`."""
    model = botocore.session.get_session().get_service_model("connect")
    check = _compile(model.operation_model(operation).input_shape, {})

    def validate(params: dict[str, Any]) -> None:
        problems: list[str] = []
        try:
            check(params, "", problems)
        except RecursionError:  # recursive shapes (routing criteria) nested absurdly deep
            raise AwsError("InvalidParameterException", "The request nests too deeply") from None
        if problems:
            count = len(problems)
            noun = "error" if count == 1 else "errors"
            message = f"{count} validation {noun} detected: " + "; ".join(problems)
            raise AwsError("InvalidParameterException", message)

    return validate


def _value(value: object) -> str:
    if value is None:
        return "null"
    text = f"'{value}'" if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."  # never echo a huge input back


def _problem(value: object, path: str, constraint: str) -> str:
    return (
        f"Value {_value(value)} at '{path}' failed to satisfy constraint: Member must {constraint}"
    )


def _compile(shape: Any, done: dict[str, Check]) -> Check:  # botocore shapes are untyped
    """The check of `shape`; `done` holds the structures compiled so far, so a recursive shape
    (a routing-criteria Expression holds Expressions) refers to itself instead of recursing."""
    kind = shape.type_name
    if kind == "structure":
        if shape.name not in done:
            late: list[Check] = []

            def check_later(value: object, path: str, out: list[str]) -> None:
                late[0](value, path, out)  # compiled just below, before any request

            done[shape.name] = check_later
            late.append(_compile_shape(shape, done))
        return done[shape.name]
    return _compile_shape(shape, done)


def _compile_shape(shape: Any, done: dict[str, Check]) -> Check:
    kind = shape.type_name
    meta = shape.metadata
    low, high = meta.get("min"), meta.get("max")

    def bounds(value: Any, size: int, path: str, out: list[str], what: str) -> bool:
        if (low is not None and size < low) or (high is not None and size > high):
            rng = f"{low if low is not None else 0} and {high if high is not None else 'infinity'}"
            out.append(_problem(value, path, f"have {what} between {rng}"))
            return False
        return True

    if kind == "structure":
        members = {
            name: (_compile(m, done), name[:1].lower() + name[1:])
            for name, m in shape.members.items()
        }
        required = list(shape.required_members)

        def check_structure(value: object, path: str, out: list[str]) -> None:
            if not isinstance(value, dict):
                out.append(_problem(value, path or "body", "be a structure"))
                return
            prefix = f"{path}." if path else ""
            for name in required:
                if value.get(name) is None:
                    out.append(_problem(None, prefix + members[name][1], "not be null"))
            for name, item in value.items():
                if name in members and item is not None:
                    check, wire_name = members[name]
                    check(item, prefix + wire_name, out)

        return check_structure
    if kind == "list":
        check_member = _compile(shape.member, done)

        def check_list(value: object, path: str, out: list[str]) -> None:
            if not isinstance(value, list):
                out.append(_problem(value, path, "be a list"))
                return
            if bounds(value, len(value), path, out, "length"):
                for index, item in enumerate(value, 1):
                    check_member(item, f"{path}.{index}.member", out)

        return check_list
    if kind == "string":
        pattern = re.compile(meta["pattern"]) if "pattern" in meta else None
        enum = frozenset(shape.enum or ()) | frozenset(EXTRA_ENUM_VALUES.get(shape.name, ()))

        def check_string(value: object, path: str, out: list[str]) -> None:
            if not isinstance(value, str):
                out.append(_problem(value, path, "be a string"))
            elif not bounds(value, len(value), path, out, "length"):
                return
            elif pattern is not None and pattern.fullmatch(value) is None:
                out.append(
                    _problem(value, path, f"satisfy regular expression pattern: {pattern.pattern}")
                )
            elif enum and value not in enum:
                out.append(
                    _problem(value, path, f"satisfy enum value set: [{', '.join(sorted(enum))}]")
                )

        return check_string
    if kind in ("integer", "long"):
        # The service is Java: an integer is 32 bits, a long 64, whatever the model's bounds.
        bits = 31 if kind == "integer" else 63
        low = max(low, -(2**bits)) if low is not None else -(2**bits)
        high = min(high, 2**bits - 1) if high is not None else 2**bits - 1

        def check_integer(value: object, path: str, out: list[str]) -> None:
            if isinstance(value, bool) or not isinstance(value, int):
                out.append(_problem(value, path, "be an integer"))
            else:
                bounds(value, value, path, out, "value")

        return check_integer
    if kind in ("double", "float"):

        def check_number(value: object, path: str, out: list[str]) -> None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                out.append(_problem(value, path, "be a number"))

        return check_number
    if kind == "boolean":

        def check_boolean(value: object, path: str, out: list[str]) -> None:
            if not isinstance(value, bool):
                out.append(_problem(value, path, "be a boolean"))

        return check_boolean
    return lambda value, path, out: None  # maps, timestamps, blobs: not used by our operations
