"""Who may do what: the access policy (token keys, anonymous mode), the HTTP API guard, the
security headers of HTTP responses, and the counters of refused requests.

The WebSocket side of the same policy lives in `server.browser.gateway` (Origin, sockets per
address) and `server.browser.session_access` (tokens, expiry).
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from prometheus_client import Counter
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.access.instances import InstanceAllowlist
from server.access.tokens import ANONYMOUS, Grant, TokenError, TokenVerifier
from server.access.tokens import Scope as TokenScope
from server.browser.protocol import error_frame
from server.settings import Settings

AUTH_RESULTS = Counter(
    "queuecast_auth_total",
    "Token checks (WebSocket and HTTP) by outcome: ok, missing, or why the token was refused.",
    ["outcome"],
)
LIMIT_HITS = Counter(
    "queuecast_limit_hits_total",
    "Requests refused or connections closed by a limit or policy, by limit.",
    ["limit"],
)

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """The token verifier, the instances that may be polled, and whether clients without a
    token get everything (demo only)."""

    verifier: TokenVerifier
    allow_anonymous: bool = False
    events_key: str | None = field(default=None, repr=False)
    instances: InstanceAllowlist = field(default_factory=lambda: InstanceAllowlist((), ""))

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessPolicy:
        """Load the keys the settings name (reading --secret-file and --public-key-file).

        Raises:
            ValueError: a key is missing, unreadable, malformed or too short; the message
                names the setting, never a secret.
        """
        public = _read(settings.public_key_file, "--public-key-file")
        return cls(
            TokenVerifier(
                hmac_secrets(settings),
                public.encode() if public is not None else None,
                audience=settings.token_audience,
                max_ttl=settings.token_max_ttl,
                leeway=settings.token_leeway,
            ),
            allow_anonymous=settings.allow_anonymous,
            events_key=load_events_key(settings),
            instances=InstanceAllowlist.of(
                settings.instances, settings.region, settings.account_id
            ),
        )


def hmac_secrets(settings: Settings) -> dict[str | None, str]:
    """The HS256 keys by `kid` (None: the default secret), in the order configured.

    Raises:
        ValueError: both --secret and --secret-file, or a malformed --token-keys entry.
    """
    secrets: dict[str | None, str] = {}
    from_file = _read(settings.secret_file, "--secret-file")
    if settings.secret and from_file is not None:
        raise ValueError("give --secret or --secret-file, not both")
    default = settings.secret or (from_file.strip() if from_file is not None else None)
    if default:
        secrets[None] = default
    for position, entry in enumerate(settings.token_keys, 1):
        kid, sep, secret = entry.partition(":")
        if not sep or not kid.strip() or not secret.strip():
            raise ValueError(f"--token-keys: entry {position} is not `kid:secret`")
        if kid.strip() in secrets:
            raise ValueError(f"--token-keys: the kid {kid.strip()!r} is given twice")
        secrets[kid.strip()] = secret.strip()
    return secrets


MIN_EVENTS_KEY_LENGTH = 16


def load_events_key(settings: Settings) -> str | None:
    """The API key `POST /v1/events` takes (--events-key or --events-key-file), if any.

    Raises:
        ValueError: both given, an unreadable file, or a key shorter than 16 characters.
    """
    from_file = _read(settings.events_key_file, "--events-key-file")
    if settings.events_key and from_file is not None:
        raise ValueError("give --events-key or --events-key-file, not both")
    key = settings.events_key or (from_file.strip() if from_file is not None else None)
    if key is not None and len(key) < MIN_EVENTS_KEY_LENGTH:
        raise ValueError(f"the events key needs {MIN_EVENTS_KEY_LENGTH}+ characters")
    return key or None


def secrets_to_scrub(settings: Settings) -> list[str]:
    """Every configured secret, for the log redactor: token keys, the events key and a Redis
    password."""
    secrets = list(hmac_secrets(settings).values())
    key = load_events_key(settings)
    if key:
        secrets.append(key)
    if settings.redis_url:
        password = urlsplit(settings.redis_url).password
        if password:
            secrets.append(password)
    return secrets


def _read(path: str | None, flag: str) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise ValueError(f"{flag}: cannot read {path}: {reason}") from None


def check_serve_settings(settings: Settings) -> AccessPolicy:
    """The policy `queuecast serve` will enforce; refuses an open service unless asked for.

    Raises:
        ValueError: no key and no --allow-anonymous, a key that does not load, or no
            instance (or one of another Region or account).
    """
    policy = AccessPolicy.from_settings(settings)
    if not policy.verifier.enabled and not settings.allow_anonymous:
        raise ValueError(
            "no token key is configured, so nobody could be told apart: set QUEUECAST_SECRET "
            "(32+ characters), --secret-file, --token-keys or --public-key-file; or pass "
            "--allow-anonymous to let any client watch anything (development only)"
        )
    if not policy.instances.entries:
        raise ValueError(
            "no Amazon Connect instance is configured: set QUEUECAST_INSTANCE_ID (an id or ARN, "
            "or a comma-separated list): only the instances listed there are ever polled"
        )
    return policy


ANONYMOUS_WARNING = (
    "WARNING: --allow-anonymous is on: any client may watch any contact and queue and use the "
    "HTTP API without a token. Never expose this service like this."
)


# -- HTTP API --------------------------------------------------------------------------------


def _denied(status: int, code: str, message: str) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="queuecast"'} if status == 401 else None
    return Response(
        error_frame(code, message), status, headers=headers, media_type="application/json"
    )


def authorize_request(request: Request, scopes: Sequence[TokenScope]) -> Grant | Response:
    """The grant of a request's `Authorization: Bearer` token, or the 401/403 to answer."""
    policy: AccessPolicy = request.app.state.access
    header = request.headers.get("authorization")
    if policy.allow_anonymous and (header is None or not policy.verifier.enabled):
        return ANONYMOUS  # with keys, a token that is presented is still checked
    if header is None:
        AUTH_RESULTS.labels("missing").inc()
        return _denied(401, "unauthorized", "send `Authorization: Bearer <token>`")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        AUTH_RESULTS.labels("malformed").inc()
        return _denied(401, "unauthorized", "send `Authorization: Bearer <token>`")
    try:
        grant = policy.verifier.verify(token.strip())
    except TokenError as exc:
        AUTH_RESULTS.labels(exc.outcome).inc()
        return _denied(401, "unauthorized", exc.message)
    AUTH_RESULTS.labels("ok").inc()
    if grant.scope not in scopes:
        LIMIT_HITS.labels("scope").inc()
        return _denied(403, "forbidden", f"this needs a {' or '.join(scopes)} token")
    return grant


def require_scope(*scopes: TokenScope) -> Callable[[Endpoint], Endpoint]:
    """Guard an HTTP endpoint: 401 without a valid token, 403 for a token of another scope.

    An endpoint that needs the grant itself (what the token allows) calls `authorize_request`
    instead.
    """

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            verdict = authorize_request(request, scopes)
            if isinstance(verdict, Response):
                return verdict
            return await endpoint(request)

        return guarded

    return decorate


require_service_token = require_scope("service")
"""`Route(path, require_service_token(endpoint))`: the endpoint needs a `service` token."""

EVENTS_KEY_HEADER = "x-queuecast-events-key"


def authorize_events(request: Request) -> Response | None:
    """`None` when the request may post contact events, else the 401/403 to answer.

    The EventBridge connection's API key in `X-Queuecast-Events-Key` (compared in constant
    time), or what any HTTP API request may present (a `service` token; anything under
    --allow-anonymous). A key that is presented is checked even when a token would do.
    """
    policy: AccessPolicy = request.app.state.access
    presented = request.headers.get(EVENTS_KEY_HEADER)
    if presented is None:
        verdict = authorize_request(request, ("service",))
        return verdict if isinstance(verdict, Response) else None
    expected = policy.events_key
    if expected is not None and hmac.compare_digest(presented.encode(), expected.encode()):
        AUTH_RESULTS.labels("ok").inc()
        return None
    AUTH_RESULTS.labels("bad_events_key").inc()
    return _denied(401, "unauthorized", "the events key is wrong (or none is configured)")


# -- response headers ------------------------------------------------------------------------


def _websocket_form(origin: str) -> str | None:
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if origin.startswith(http):
            return ws + origin.removeprefix(http)
    return None


def default_content_security_policy(allowed_origins: Sequence[str]) -> str:
    """A strict CSP: only the service's own scripts; sockets to itself and the allowed
    origins; framed only by itself and the allowed origins (any, with `*`)."""
    extra = [o for o in allowed_origins if o != "*"]
    sockets = [w for o in extra if (w := _websocket_form(o)) is not None]
    framers = "*" if "*" in allowed_origins else " ".join(["'self'", *extra])
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "connect-src " + " ".join(["'self'", *extra, *sockets]),
            f"frame-ancestors {framers}",
            "base-uri 'none'",
            "object-src 'none'",
            "form-action 'self'",
        ]
    )


def security_headers(settings: Settings) -> list[tuple[str, str]]:
    csp = settings.content_security_policy or default_content_security_policy(
        settings.allowed_origins
    )
    return [
        ("content-security-policy", csp),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
    ]


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response (unless the endpoint set its own)."""

    def __init__(self, app: ASGIApp, headers: Sequence[tuple[str, str]]) -> None:
        self.app = app
        self.headers = tuple(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers:
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
