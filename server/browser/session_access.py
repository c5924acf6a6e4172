"""A WebSocket session's access: authenticate, expire, re-authenticate.

A socket authenticates with its first message (`{"op":"auth","token":...}`) or the
`bearer.<token>` subprotocol, within `auth_timeout`, and from then on may subscribe only to
what its token's `Grant` allows. When the token runs out the stream stops (subscriptions are
kept) and the client has `reauth_timeout` to send a new one, which may allow less: what it
does not cover is released (by the session, told through `AccessOwner.granted`). The
deadlines are loop timers, not tasks.

`SessionAccess` is an object the session holds; what it needs of the session is the small
`AccessOwner` protocol, passed to each call rather than stored, so that an access holds no
reference back to its session (only a pending timer does, until `cancel_deadline`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Protocol

from server.access.policy import AUTH_RESULTS, LIMIT_HITS
from server.access.tokens import ANONYMOUS, Grant, TokenError
from server.browser.config import GatewayConfig
from server.browser.protocol import CLOSE_POLICY


class AccessOwner(Protocol):
    """What `SessionAccess` needs of its session."""

    def send_error(self, code: str, message: str, contact: str | None = None) -> None: ...

    def send_control(self, frame: str) -> None: ...

    def request_close(self, code: int, reason: str) -> None: ...

    def token_expired(self) -> None:
        """Stop sending events (the subscriptions stay)."""

    async def granted(self, grant: Grant, resuming: bool) -> None:
        """After an authentication: release what `grant` does not cover; if `resuming` (the
        token had expired), send what was missed meanwhile."""


class SessionAccess:
    """One socket's grant and the deadline it waits on (see the module docstring)."""

    __slots__ = ("_config", "_deadline", "expired", "expires_at", "grant")

    def __init__(self, config: GatewayConfig) -> None:
        self._config = config
        # None until authenticated; anonymous mode grants everything to a silent client.
        self.grant: Grant | None = ANONYMOUS if config.access.allow_anonymous else None
        self.expired = False
        self.expires_at: float | None = None  # loop time the grant runs out
        self._deadline: asyncio.TimerHandle | None = None

    @property
    def admits_events(self) -> bool:
        """Authenticated, and the token has not expired."""
        return self.grant is not None and not self.expired

    async def start(self, bearer: str | None, owner: AccessOwner) -> None:
        """Authenticate with the handshake's token, or give the client `auth_timeout`."""
        if bearer is not None:
            await self.authenticate(bearer, owner)
        elif self.grant is None:
            self._set_deadline(self._config.auth_timeout, self._auth_timed_out, owner)

    def lapsed(self, owner: AccessOwner) -> bool:
        """Whether the token has run out by the clock, even if its timer has not run yet
        (the clock is what counts); expires it if so."""
        expires_at = self.expires_at
        if expires_at is not None and asyncio.get_running_loop().time() >= expires_at:
            self._expire(owner)
            return True
        return False

    def cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    async def authenticate(self, token: str, owner: AccessOwner) -> None:
        access = self._config.access
        if not access.verifier.enabled:
            owner.send_error("unsupported", "this server has no token keys (anonymous mode)")
            return
        try:
            grant = access.verifier.verify(token)
        except TokenError as exc:
            AUTH_RESULTS.labels(exc.outcome).inc()
            owner.send_error("unauthorized", exc.message)
            owner.request_close(CLOSE_POLICY, "unauthorized")
            return
        AUTH_RESULTS.labels("ok").inc()
        resuming = self.expired
        self.grant, self.expired = grant, False
        self.cancel_deadline()
        self.expires_at = None
        if grant.exp is not None:
            remaining = grant.exp + access.verifier.leeway - time.time()
            self.expires_at = asyncio.get_running_loop().time() + remaining
            self._set_deadline(remaining, self._expire, owner)
        owner.send_control(
            json.dumps(
                {"type": "authenticated", "scope": grant.scope, "exp": grant.exp},
                separators=(",", ":"),
            )
        )
        await owner.granted(grant, resuming)

    def forbidden(self, owner: AccessOwner) -> None:
        """Refuse a subscription the grant does not allow."""
        # The same answer whether or not the contact or queue exists, and without its id.
        LIMIT_HITS.labels("scope").inc()
        owner.send_error("forbidden", "this token does not allow that subscription")

    def _set_deadline(
        self, delay: float, callback: Callable[[AccessOwner], None], owner: AccessOwner
    ) -> None:
        self.cancel_deadline()
        self._deadline = asyncio.get_running_loop().call_later(max(0.0, delay), callback, owner)

    def _auth_timed_out(self, owner: AccessOwner) -> None:
        self._deadline = None
        if self.grant is None:
            LIMIT_HITS.labels("auth_timeout").inc()
            owner.send_error("unauthorized", 'authenticate first: {"op":"auth","token":...}')
            owner.request_close(CLOSE_POLICY, "authentication timeout")

    def _reauth_timed_out(self, owner: AccessOwner) -> None:
        self._deadline = None
        if self.expired:
            LIMIT_HITS.labels("reauth_timeout").inc()
            owner.request_close(CLOSE_POLICY, "token expired")

    def _expire(self, owner: AccessOwner) -> None:
        """The token ran out: stop the stream, keep the subscriptions for a re-auth."""
        self._deadline = None
        if self.expired or self.grant is None:
            return
        self.expired = True
        self.expires_at = None
        # Events already queued are not for an expired client either; pending control
        # frames (a pong, an error) go with them.
        owner.token_expired()
        LIMIT_HITS.labels("token_expired").inc()
        owner.send_error("token_expired", "the token expired; send a new one with op auth")
        self._set_deadline(self._config.reauth_timeout, self._reauth_timed_out, owner)
