"""The access half of a WebSocket session: authenticate, expire, re-authenticate.

A socket authenticates with its first message (`{"op":"auth","token":...}`) or the
`bearer.<token>` subprotocol, within `auth_timeout`, and from then on may subscribe only to
what its token's `Grant` allows. When the token runs out the stream stops (subscriptions are
kept) and the client has `reauth_timeout` to send a new one, which may allow less: what it
does not cover is released. The deadlines are loop timers, not tasks.

`SessionAccess` is a base class of `ClientSession` (server/browser/session.py), apart so that each
file holds one concept; its slots hold the access state, which the session's `__init__` sets.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING

from server.access.policy import AUTH_RESULTS, LIMIT_HITS
from server.access.tokens import Grant, TokenError
from server.browser.outbox import Outbox
from server.browser.protocol import CLOSE_POLICY
from server.bus import BusUnavailable
from server.events import as_snapshot, waiting_in

if TYPE_CHECKING:
    from server.browser.gateway import Gateway
    from server.events import ContactEvent


class SessionAccess:
    """Authentication and token expiry of one socket (see the module docstring)."""

    # Set up by `ClientSession.__init__`.
    __slots__ = ("_deadline", "_expired", "_expires_at", "grant")
    grant: Grant | None  # None until authenticated
    _expired: bool
    _expires_at: float | None  # loop time the grant runs out
    _deadline: asyncio.TimerHandle | None  # authenticate, token expiry or re-authenticate

    if TYPE_CHECKING:
        # Provided by `ClientSession`.
        _gateway: Gateway
        _loop: asyncio.AbstractEventLoop
        outbox: Outbox
        contacts: dict[str, str]
        queues: AbstractSet[str]
        _finished: AbstractSet[str]
        _last_seq: dict[str, int]

        def _send_error(self, code: str, message: str, contact: str | None = None) -> None: ...
        def _send_control(self, frame: str) -> None: ...
        def request_close(self, code: int, reason: str) -> None: ...
        async def _release_contact(self, contact: str) -> None: ...
        async def _release_queue(self, queue: str) -> None: ...
        def offer(
            self, event: ContactEvent, text: str, *, refresh: bool = False, direct: bool = False
        ) -> None: ...

    async def start(self, bearer: str | None) -> None:
        """Authenticate with the handshake's token, or give the client `auth_timeout`."""
        if bearer is not None:
            await self._authenticate(bearer)
        elif self.grant is None:
            self._set_deadline(self._gateway.config.auth_timeout, self._auth_timed_out)

    def _set_deadline(self, delay: float, callback: Callable[[], None]) -> None:
        self.cancel_deadline()
        self._deadline = self._loop.call_later(max(0.0, delay), callback)

    def cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _auth_timed_out(self) -> None:
        self._deadline = None
        if self.grant is None:
            LIMIT_HITS.labels("auth_timeout").inc()
            self._send_error("unauthorized", 'authenticate first: {"op":"auth","token":...}')
            self.request_close(CLOSE_POLICY, "authentication timeout")

    def _reauth_timed_out(self) -> None:
        self._deadline = None
        if self._expired:
            LIMIT_HITS.labels("reauth_timeout").inc()
            self.request_close(CLOSE_POLICY, "token expired")

    def _expire(self) -> None:
        """The token ran out: stop the stream, keep the subscriptions for a re-auth."""
        self._deadline = None
        if self._expired or self.grant is None:
            return
        self._expired = True
        self._expires_at = None
        # Events already queued are not for an expired client either; pending control
        # frames (a pong, an error) go with them.
        self.outbox.clear()
        LIMIT_HITS.labels("token_expired").inc()
        self._send_error("token_expired", "the token expired; send a new one with op auth")
        self._set_deadline(self._gateway.config.reauth_timeout, self._reauth_timed_out)

    async def _authenticate(self, token: str) -> None:
        access = self._gateway.config.access
        if not access.verifier.enabled:
            self._send_error("unsupported", "this server has no token keys (anonymous mode)")
            return
        try:
            grant = access.verifier.verify(token)
        except TokenError as exc:
            AUTH_RESULTS.labels(exc.outcome).inc()
            self._send_error("unauthorized", exc.message)
            self.request_close(CLOSE_POLICY, "unauthorized")
            return
        AUTH_RESULTS.labels("ok").inc()
        resuming = self._expired
        self.grant, self._expired = grant, False
        self.cancel_deadline()
        self._expires_at = None
        if grant.exp is not None:
            remaining = grant.exp + access.verifier.leeway - time.time()
            self._expires_at = self._loop.time() + remaining
            self._set_deadline(remaining, self._expire)
        self._send_control(
            json.dumps(
                {"type": "authenticated", "scope": grant.scope, "exp": grant.exp},
                separators=(",", ":"),
            )
        )
        await self._drop_outside(grant)
        if resuming:
            await self._resend_snapshots()

    async def _drop_outside(self, grant: Grant) -> None:
        """A new token may allow less than the last one: release what it does not cover."""
        contacts = [c for c, i in self.contacts.items() if not grant.allows_contact(c, i)]
        queues = [q for q in self.queues if not grant.allows_queue(q)]
        for contact in contacts:
            await self._release_contact(contact)
        for queue in queues:
            await self._release_queue(queue)
        if contacts or queues:
            self._send_error("forbidden", "subscriptions the new token does not allow were ended")

    async def _resend_snapshots(self) -> None:
        """After a re-auth: the current state of everything subscribed, as snapshots."""
        contacts = [c for c in self.contacts if c not in self._finished]
        bus = self._gateway.bus
        try:
            for contact in contacts:
                self._last_seq.pop(contact, None)
            states = [s for s in await bus.read_states(contacts) if s is not None]
            for queue in tuple(self.queues):
                members = [m for m in await bus.queue_members(queue) if m not in self.contacts]
                for member in members:
                    self._last_seq.pop(member, None)
                states.extend(waiting_in(queue, await bus.read_states(members)))
        except BusUnavailable:
            self._send_error("unavailable", "the event bus is unreachable; resubscribe")
            return
        for state in states:
            shown = as_snapshot(state)
            self.offer(shown, shown.encode().decode())

    def _forbidden(self) -> None:
        # The same answer whether or not the contact or queue exists, and without its id.
        LIMIT_HITS.labels("scope").inc()
        self._send_error("forbidden", "this token does not allow that subscription")
