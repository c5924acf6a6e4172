"""Structured logs: one JSON object per line, with the `extra` fields of each call.

Nothing secret is ever passed to a log call; settings are logged through `Settings.redacted`.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = {
            k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")
        }
        return base + ("" if not extras else " " + json.dumps(extras, default=str))


class HandshakeLineFilter(logging.Filter):
    """Drops uvicorn's line per WebSocket handshake (`"WebSocket /ws" [accepted]`, `403`,
    `429`): an access log by another name (the access log is off), which a reconnect storm
    or a client retrying against a limit turns into thousands of lines. Refusals are
    counted in /metrics and logged by the gateway, once a minute per client."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith('%s - "WebSocket %s"'))


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    uvicorn_error = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, HandshakeLineFilter) for f in uvicorn_error.filters):
        uvicorn_error.addFilter(HandshakeLineFilter())
    # The access log would print query strings; the service never puts secrets there, but
    # one line per request is noise at this scale.
    logging.getLogger("uvicorn.access").setLevel("WARNING")
