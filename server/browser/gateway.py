"""The WebSocket gateway at `/ws`: admits sockets and owns their `ClientSession`s.

Before a socket is accepted the gateway checks its Origin and how many sockets its address
(and the server) holds; after, it runs the session (server/browser/session.py) and, on the
way out, releases its subscriptions and closes it with the session's code. It owns the
`SocketFanout` through which sessions subscribe to the bus and which frames each message once
for all of them (server/browser/fanout.py). When the bus is lost it tells every session its
states are stale; after the bus reconnects it raises seq floors and resends what clients
missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from server import metrics
from server.access.policy import LIMIT_HITS
from server.browser.config import GatewayConfig
from server.browser.fanout import SocketFanout
from server.browser.limits import PollQuota, RefusalLog, SocketsPerAddress, client_key
from server.browser.protocol import CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_POLICY, error_frame
from server.browser.session import ClientSession, SessionContext
from server.bus import Bus
from server.connect.poller import ContactPoller
from server.events import ContactEvent

log = logging.getLogger("queuecast.gateway")

SUBPROTOCOL = "queuecast.v1"
CLOSE_TIMEOUT = 1.0  # seconds a closing handshake may take before the socket is dropped
BEARER_PREFIX = "bearer."


def origin_allowed(
    origin: str | None, host: str | None, scheme: str, allowed: tuple[str, ...]
) -> bool:
    """Whether a handshake's Origin may open a socket (cross-site WebSocket hijacking guard).

    Clients that send no Origin (not browsers) are allowed; a browser page must come from the
    service's own origin, scheme included (an `http://` page may not use an `https://`
    service's sockets), or from an origin in `allowed` (`*` allows any, only if configured).

    Args:
        scheme: the handshake's, `ws` or `wss` (behind a trusted proxy, as it forwarded it).
    """
    if origin is None or "*" in allowed or origin in allowed:
        return True
    if host is None:
        return False
    own_scheme = "https" if scheme in ("wss", "https") else "http"
    return origin.lower() == f"{own_scheme}://{host.lower()}"


async def _refuse(websocket: WebSocket, status: int, message: str) -> None:
    """Answer a handshake with an HTTP error (403 where the server cannot send one)."""
    try:
        await websocket.send_denial_response(
            Response(error_frame("limited", message), status, media_type="application/json")
        )
    except RuntimeError:
        await websocket.close(CLOSE_POLICY)


class Gateway:
    """Owns every client session; the Starlette endpoint is `handle`."""

    def __init__(self, config: GatewayConfig, bus: Bus, poller: ContactPoller) -> None:
        self.config = config
        self.bus = bus
        self.poller = poller
        # Before the hooks below: the fan-out takes its writers back when the bus is lost
        # (its own disconnect hook) before sessions are told they are stale.
        self.fanout = SocketFanout(bus)
        quota = PollQuota(
            {
                "token": config.max_polled_per_token,
                "address": config.max_polled_per_ip,
                "anonymous": config.max_polled_anonymous,
            }
        )
        self._session_context = SessionContext(config, bus, self.fanout, poller, quota)
        self.sessions: set[ClientSession] = set()
        self._per_address = SocketsPerAddress(config.max_sockets_per_ip)
        self._admitted = 0  # sockets past admission, sessions or not yet
        self._refusals = RefusalLog()
        self._draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        bus.on_reconnect(self.resync)
        bus.on_disconnect(self.mark_stale)

    async def handle(self, websocket: WebSocket) -> None:
        if self._draining:
            await websocket.close(CLOSE_GOING_AWAY)
            return
        address = websocket.client.host if websocket.client is not None else "unknown"
        client = client_key(address)
        origin, host = websocket.headers.get("origin"), websocket.headers.get("host")
        scheme = websocket.scope.get("scheme", "ws")
        if not origin_allowed(origin, host, scheme, self.config.allowed_origins):
            metrics.SOCKETS_CLOSED.labels("origin").inc()
            self._refused("origin", client)
            # Before accept, Starlette answers the handshake with 403.
            await websocket.close(CLOSE_POLICY)
            return
        if self.config.max_sockets and self._admitted >= self.config.max_sockets:
            self._refused("sockets", client)
            await _refuse(websocket, 503, "this server is full; try again")
            return
        if not self._per_address.try_open(client):
            self._refused("sockets_per_ip", client)
            await _refuse(websocket, 429, "too many sockets from this address")
            return
        self._admitted += 1
        try:
            await self._serve(websocket)
        finally:
            self._admitted -= 1
            self._per_address.close(client)

    def _refused(self, limit: str, client: str) -> None:
        """Count a refused handshake; log it only the first time a minute for this client."""
        LIMIT_HITS.labels(limit).inc()
        if self._refusals.should_log(client, asyncio.get_running_loop().time()):
            log.info(
                "websocket refused (further refusals of this client for a minute are only "
                "counted, in queuecast_limit_hits_total)",
                extra={"limit": limit, "client": client},
            )

    async def _serve(self, websocket: WebSocket) -> None:
        offered: list[str] = list(websocket.scope.get("subprotocols") or ())
        bearer = next(
            (p[len(BEARER_PREFIX) :] for p in offered if p.startswith(BEARER_PREFIX)), None
        )
        # Never echo the bearer subprotocol: the token would travel back in a header.
        await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        session = ClientSession(self._session_context, websocket)
        self.sessions.add(session)
        self._idle.clear()
        metrics.SOCKETS.inc()
        try:
            await session.start(bearer)
            await self._run(session)
        finally:
            session.cancel_deadline()
            await session.release_all()
            self.sessions.discard(session)
            metrics.SOCKETS.dec()
            if not self.sessions:
                self._idle.set()
            if session.close_code is not None:
                metrics.SOCKETS_CLOSED.labels(str(session.close_code)).inc()
            if websocket.application_state is WebSocketState.CONNECTED:
                # Bounded: to a client that stopped reading, the close frame cannot be written
                # either; the server's keep-alive timeout then ends the connection.
                with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect, TimeoutError):
                    await asyncio.wait_for(
                        websocket.close(session.close_code or CLOSE_NORMAL, session.close_reason),
                        CLOSE_TIMEOUT,
                    )

    async def _run(self, session: ClientSession) -> None:
        # The send loop runs here, the receive loop in one task: a second task per socket
        # would cost ~1 KB of RSS per idle socket. Whichever ends first ends the other: the
        # receive loop's end wakes the send loop, which then returns; the send loop's end
        # (a close was requested, or the client is too slow) cancels the receive loop.
        receiving = asyncio.create_task(session.receive_loop(), name="ws-receive")
        receiving.add_done_callback(session.receive_ended)
        results: list[BaseException | None] = []
        try:
            await session.send_loop()
        except Exception as exc:  # judged below with the receive loop's result
            results.append(exc)
        finally:
            receiving.cancel()
            results.extend(await asyncio.gather(receiving, return_exceptions=True))
        for result in results:
            # A client that goes away is a normal end, not an error.
            if isinstance(result, WebSocketDisconnect | asyncio.CancelledError | OSError):
                continue
            # Nor is one the server closed for breaking the protocol (a frame too large,
            # invalid UTF-8) while the send loop was writing to it.
            if isinstance(result, RuntimeError) and (
                "disconnect" in str(result).lower() or "websocket.close" in str(result)
            ):
                continue
            if isinstance(result, BaseException):
                log.error("websocket session failed", exc_info=result)

    def mark_stale(self) -> None:
        """The bus is down: nothing fresh can arrive, so every client is told it is stale."""
        for session in tuple(self.sessions):
            session.mark_stale()

    async def resync(self) -> None:
        """After the bus reconnects: first make every seq rise above what clients hold (a
        store that restarted empty would count from 1 again), then send each session the
        current state it missed, or the fresh one where it was shown stale."""
        floors: dict[str, int] = {}
        for session in tuple(self.sessions):
            session.take_back_writers()  # what the fan-out wrote counts too
            for contact, seq in session.known_seqs().items():
                floors[contact] = max(floors.get(contact, 0), seq)
        contacts = set(floors)
        for queue in {q for s in self.sessions for q in s.queues}:
            contacts.update(await self.bus.queue_members(queue))
        ordered = sorted(contacts)
        fresh = []
        for contact, stored in zip(ordered, await self.bus.read_states(ordered), strict=True):
            floor = floors.get(contact, 0)
            if floor and (stored is None or stored.seq < floor):
                # Republished above the floor when a state is stored; else the next poll's.
                await self.bus.raise_floor(contact, floor)
            elif stored is not None:
                fresh.append(stored)
        self._offer_all(fresh, refresh=True)

    def _offer_all(self, events: Iterable[ContactEvent], *, refresh: bool = False) -> None:
        for event in events:
            text = event.encode().decode()
            for session in tuple(self.sessions):
                session.offer(event, text, refresh=refresh)

    async def drain(self) -> None:
        """Close every socket with 1001 and wait (bounded) for them to go. Idempotent."""
        self._draining = True
        for session in tuple(self.sessions):
            session.request_close(CLOSE_GOING_AWAY, "server shutting down")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self.config.drain_timeout)
