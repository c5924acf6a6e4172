"""Scrub log lines: tokens and configured secrets never reach the log; Connect ids may be
hashed or dropped (`log_contact_ids`).

It works on the formatted line, whatever formatter and whatever caller produced it (uvicorn
prints request paths, tracebacks print arguments), so a secret cannot slip through an
unusual path. Contact ids cannot be told apart from instance and queue ids in free text, so
the setting applies to every UUID.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable

# A JWT is base64url segments whose header starts `{"` (eyJ). Partial ones count too: the
# websockets library's DEBUG frame log elides the middle of long frames with `...`.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*){0,2}(?:\.\.\.[A-Za-z0-9_.-]*)?")
# Whatever a client sent as its `token`, JWT-shaped or not (a JSON member, maybe escaped).
_TOKEN_MEMBER = re.compile(r'(token\\?"\s*:\s*\\?")[^"\\]+')
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# The end of an elided frame may be the end of a token (its signature): long base64url runs
# right after `...` go too.
_ELIDED_TAIL = re.compile(r"\.\.\.[A-Za-z0-9_-]{12,}")
_PARTIAL_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F-]{0,27}(?=\.\.\.)")
TOKEN_MARK = "[token]"  # noqa: S105 (a placeholder, not a password)
SECRET_MARK = "***"  # noqa: S105
ID_MARK = "[id]"


def _hashed_id(match: re.Match[str]) -> str:
    return "id:" + hashlib.sha256(match.group().lower().encode()).hexdigest()[:12]


# How a formatter may have written a secret: JSON (ASCII-only, as the JSON formatter and the
# text formatter's extras write, or not), or a Python repr (tracebacks, `%r`), once or twice
# over (a JSON string holding JSON, a repr inside a JSON line).
_ESCAPES: tuple[Callable[[str], str], ...] = (
    lambda text: json.dumps(text)[1:-1],
    lambda text: json.dumps(text, ensure_ascii=False)[1:-1],
    lambda text: repr(text)[1:-1],
)
_ESCAPE_DEPTH = 2


def written_forms(secret: str) -> set[str]:
    """`secret` as it is, and as every formatter may have escaped it (up to twice)."""
    forms = {secret}
    latest = {secret}
    for _ in range(_ESCAPE_DEPTH):
        latest = {escape(form) for form in latest for escape in _ESCAPES} - forms
        forms |= latest
    return forms


class Redactor:
    """Rewrites text: JWTs and the given secrets always; ids per `contact_ids`.

    The text is a formatted line, so a secret may be in it escaped (a `"` as `\\"`, `é` as
    `\\u00e9`): each secret is looked for in every form a formatter may have written it.
    """

    def __init__(self, secrets: Iterable[str] = (), contact_ids: str = "full") -> None:
        forms = {form for secret in secrets if secret for form in written_forms(secret)}
        # Longest first, so a secret (or a form) containing another is replaced whole.
        self._secrets = sorted(forms, key=len, reverse=True)
        self._contact_ids = contact_ids

    def __call__(self, text: str) -> str:
        text = _JWT.sub(TOKEN_MARK, text)
        text = _TOKEN_MEMBER.sub(r"\1" + TOKEN_MARK, text)
        text = _ELIDED_TAIL.sub("..." + TOKEN_MARK, text)
        for secret in self._secrets:
            text = text.replace(secret, SECRET_MARK)
        if self._contact_ids != "full":
            # An id cut short by an eliding logger cannot be hashed like the whole one.
            text = _PARTIAL_UUID.sub(ID_MARK, text)
        if self._contact_ids == "hash":
            text = _UUID.sub(_hashed_id, text)
        elif self._contact_ids == "none":
            text = _UUID.sub(ID_MARK, text)
        return text


class RedactingFormatter(logging.Formatter):
    """Wraps another formatter and scrubs what it produced."""

    def __init__(self, inner: logging.Formatter, redactor: Redactor) -> None:
        super().__init__()
        self.inner = inner
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor(self.inner.format(record))


def install_log_redaction(redactor: Redactor, logger: logging.Logger | None = None) -> None:
    """Scrub every line the handlers of `logger` (default: the root logger) write. Idempotent:
    installing again replaces the redactor."""
    for handler in (logger or logging.getLogger()).handlers:
        current = handler.formatter or logging.Formatter()
        if isinstance(current, RedactingFormatter):
            current = current.inner
        handler.setFormatter(RedactingFormatter(current, redactor))
