"""What pages of other origins may load and read (CORS) or embed (CORP), by path.

A shop embeds the widget with `<script type="module" src="https://queuecast…/static/…">`.
Module scripts are fetched in CORS mode, so without `Access-Control-Allow-Origin` the browser
refuses to run the widget on any origin but the service's own. The answer differs by path:

- `/static/…` (widget, wallboard, demo page; nothing secret): `Access-Control-Allow-Origin`
  for the allowed origins (`*` when any is allowed), `Vary: Origin`, and
  `Cross-Origin-Resource-Policy: cross-origin`, so pages that isolate themselves
  (`Cross-Origin-Embedder-Policy: require-corp`) can load them too.
- `GET /v1/queues`, `GET /v1/queues/{id}`: what a wallboard hosted on another allowed origin
  reads with its `queues` token (an `Authorization` header, so the browser asks first with a
  preflight, answered here for allowed origins).
- everything else (`/v1/contacts/…`, `/v1/status`, `/metrics`, …): backends and probes call
  these, never a page of another origin, so no CORS, and `Cross-Origin-Resource-Policy:
  same-origin`.

A preflight from an origin that is not allowed, or for another method or header, gets 403.
Only tokens carry authority (never cookies), so CORS here decides which pages may *read*
answers, not who may act. The WebSocket has no CORS: its Origin check is in
`server.browser.gateway`; the same `allowed_origins` list drives both.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.access.policy import LIMIT_HITS
from server.browser.protocol import error_frame

PREFLIGHT_MAX_AGE_SECONDS = 600
_READ_METHODS = frozenset({"GET", "HEAD"})


class Exposure(enum.Enum):
    """How far beyond the service's own origin a path's responses reach."""

    PUBLIC_ASSET = "public_asset"  # /static/: any allowed page may load it
    BROWSER_API = "browser_api"  # what a wallboard elsewhere reads, with its token
    SAME_ORIGIN = "same_origin"  # everything else


def exposure_of(path: str) -> Exposure:
    if path.startswith("/static/"):
        return Exposure.PUBLIC_ASSET
    if path == "/v1/queues" or path.startswith("/v1/queues/"):
        return Exposure.BROWSER_API
    return Exposure.SAME_ORIGIN


@dataclass(frozen=True, slots=True)
class Preflight:
    """The answer to a preflight: 204 with these headers, or 403 with `refusal`."""

    status: int
    headers: tuple[tuple[str, str], ...]
    refusal: str | None = None


@dataclass(frozen=True, slots=True)
class CrossOriginPolicy:
    """Decisions only (no I/O): which headers a response gets, how a preflight is answered.

    Args:
        allowed_origins: page origins as `Settings.allowed_origins` holds them (normalised
            `scheme://host[:port]`, or `*` for any).
    """

    allowed_origins: tuple[str, ...]

    def allow_origin(self, origin: str | None) -> str | None:
        """The `Access-Control-Allow-Origin` value for a page of `origin`, or None."""
        if origin is None:
            return None
        if "*" in self.allowed_origins:
            return "*"
        return origin if origin in self.allowed_origins else None

    def response_headers(self, path: str, origin: str | None) -> list[tuple[str, str]]:
        """Headers to add to the response to a (non-preflight) request for `path`."""
        exposure = exposure_of(path)
        if exposure is Exposure.SAME_ORIGIN:
            return [("cross-origin-resource-policy", "same-origin")]
        headers = [("vary", "Origin")]
        if exposure is Exposure.PUBLIC_ASSET:
            headers.append(("cross-origin-resource-policy", "cross-origin"))
        else:
            # CORP only binds no-cors loads; a wallboard elsewhere reads with CORS.
            headers.append(("cross-origin-resource-policy", "same-origin"))
        allowed = self.allow_origin(origin)
        if allowed is not None:
            headers.append(("access-control-allow-origin", allowed))
        return headers

    def preflight(
        self, path: str, origin: str, method: str, requested_headers: Sequence[str]
    ) -> Preflight:
        """Answer `OPTIONS` with `Access-Control-Request-Method` from a page of `origin`."""
        exposure = exposure_of(path)
        allowed = self.allow_origin(origin)
        if exposure is Exposure.SAME_ORIGIN:
            return Preflight(403, (), "this path is not for pages of other origins")
        if allowed is None:
            return Preflight(403, (), "this origin is not in allowed_origins")
        may_send = {"authorization"} if exposure is Exposure.BROWSER_API else set()
        asked = {name.strip().lower() for name in requested_headers if name.strip()}
        if method.upper() not in _READ_METHODS or not asked <= may_send:
            return Preflight(403, (), "only GET (with an Authorization header) is allowed")
        headers = [
            ("access-control-allow-origin", allowed),
            ("access-control-allow-methods", "GET, HEAD"),
            ("access-control-max-age", str(PREFLIGHT_MAX_AGE_SECONDS)),
            ("vary", "Origin"),
        ]
        if may_send:
            headers.append(("access-control-allow-headers", "Authorization"))
        return Preflight(204, tuple(headers))


class CrossOriginMiddleware:
    """Answers preflights and adds `CrossOriginPolicy.response_headers` to HTTP responses."""

    def __init__(self, app: ASGIApp, policy: CrossOriginPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_headers = Headers(scope=scope)
        origin = request_headers.get("origin")
        requested_method = request_headers.get("access-control-request-method")
        if scope["method"] == "OPTIONS" and origin is not None and requested_method is not None:
            await self._answer_preflight(scope, receive, send, origin, requested_method)
            return
        extra = self.policy.response_headers(scope["path"], origin)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra:
                    if name == "vary":
                        headers.add_vary_header(value)
                    else:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _answer_preflight(
        self, scope: Scope, receive: Receive, send: Send, origin: str, method: str
    ) -> None:
        requested = Headers(scope=scope).get("access-control-request-headers", "")
        answer = self.policy.preflight(scope["path"], origin, method, requested.split(","))
        if answer.refusal is not None:
            LIMIT_HITS.labels("origin").inc()
            response = Response(
                error_frame("forbidden", answer.refusal),
                answer.status,
                media_type="application/json",
            )
        else:
            response = Response(status_code=answer.status, headers=dict(answer.headers))
        await response(scope, receive, send)
