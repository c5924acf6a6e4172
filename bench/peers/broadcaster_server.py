"""The peer: the Starlette + encode/broadcaster server most Python teams would write first.

Same wire as queuecast for what the fan-out benchmark uses: `{"op":"subscribe","contact":ID}`
streams the contact's events from the Redis channel queuecast commits to (`qc:{ID}:events`), and
`{"op":"ping"}` is answered by `{"type":"pong"}`. One broadcaster subscription and one task per
subscribe, uvicorn with its defaults. Deliberately no snapshot, no bound, no coalescing: that
is the point of comparison.

    python bench/peers/broadcaster_server.py --redis-url redis://127.0.0.1:6379/0 --port 0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from broadcaster import Broadcast
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from server.http.serving import bind_socket, print_ready, serve_until_stopped


def create_app(redis_url: str) -> Starlette:
    broadcast = Broadcast(redis_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with broadcast:
            yield

    async def forward(websocket: WebSocket, channel: str) -> None:
        async with broadcast.subscribe(channel) as subscriber:
            async for event in subscriber:  # type: ignore[union-attr]
                await websocket.send_text(event.message)

    async def ws_endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        tasks: dict[str, asyncio.Task[None]] = {}
        try:
            async for text in websocket.iter_text():
                message = json.loads(text)
                if message.get("op") == "ping":
                    await websocket.send_text('{"type":"pong"}')
                elif message.get("op") == "subscribe" and "contact" in message:
                    channel = f"qc:{{{message['contact']}}}:events"
                    if channel not in tasks:
                        tasks[channel] = asyncio.create_task(forward(websocket, channel))
        except WebSocketDisconnect:
            pass
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)

    return Starlette(routes=[WebSocketRoute("/ws", ws_endpoint)], lifespan=lifespan)


async def main_async(args: argparse.Namespace) -> None:
    sock = bind_socket(args.host, args.port)
    config = uvicorn.Config(
        create_app(args.redis_url),
        log_level="warning",
        ws=args.ws,
        ws_ping_interval=args.ws_ping_interval,
        ws_ping_timeout=args.ws_ping_timeout,
    )
    server = uvicorn.Server(config)

    def announce(url: str) -> None:
        print_ready("broadcaster-peer", {"url": url, "ws": url.replace("http", "ws", 1) + "/ws"})

    await serve_until_stopped(server, sock, announce)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    # uvicorn's WebSocket implementations, compared in docs/websocket-stack.md.
    parser.add_argument(
        "--ws", choices=["auto", "websockets-sansio", "websockets", "wsproto"], default="auto"
    )
    # uvicorn's own defaults; bench/ping_spread.py shortens both for a bounded run.
    parser.add_argument("--ws-ping-interval", type=float, default=20.0)
    parser.add_argument("--ws-ping-timeout", type=float, default=20.0)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main_async(parser.parse_args()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
