"""The log scrubber catches a configured secret however the line escaped it (issue 14, item
11): the JSON formatter writes `"` as `\\"`, `\\` as `\\\\` and non-ASCII as `\\uXXXX`, the text
formatter's extras are JSON too, and a traceback shows the repr of its arguments. Through the
service's own logging set-up (`configure_logging` + `install_log_redaction`)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from server.access.redaction import Redactor, install_log_redaction
from server.logs import configure_logging

SECRETS = [
    'k3y-with-"quotes"-and-\\backslashes\\-0123456789',
    "ключ-не-ascii-0123456789-abcdefghijklmnopqrstuvwxyz",
    "tab\tand\nnewline-and-\u2028-separator-0123456789abcdef",
]


def pieces(secret: str) -> list[str]:
    """Runs of the secret long enough to matter, in each form a formatter may give them."""
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    forms.add(repr(secret)[1:-1])
    return [form[i : i + 12] for form in forms for i in range(0, len(form) - 12, 6)]


@pytest.mark.parametrize("fmt", ["json", "text"])
@pytest.mark.parametrize("secret", SECRETS)
def test_a_secret_is_scrubbed_however_the_line_escaped_it(fmt, secret):
    stream = io.StringIO()
    configure_logging("INFO", fmt)
    root = logging.getLogger()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    try:
        install_log_redaction(Redactor([secret], "full"))
        log = logging.getLogger("queuecast.test")
        log.info("plain %s", secret)
        log.info("as an extra", extra={"detail": f"password={secret}"})
        log.info("nested", extra={"detail": json.dumps({"password": secret})})
        try:
            raise ValueError(secret)
        except ValueError:
            log.exception("failed with %r", (secret,))
    finally:
        configure_logging("INFO", "json")  # back to a fresh stderr handler
    text = stream.getvalue()
    assert text.count("***") >= 5, text
    leaks = [piece for piece in pieces(secret) if piece in text]
    assert not leaks, (leaks, text)
