"""The `queuecast` command line: serve, demo, simulate, token."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys

import uvicorn

from server import __version__
from server.access.policy import ANONYMOUS_WARNING, check_serve_settings
from server.app import create_app
from server.browser.ws_protocol import FramingProtocol
from server.cli.token import add_token_parser
from server.demo import add_demo_parser
from server.emulator.cli import add_simulate_parser
from server.http.header_timeout import with_handshake_timeout
from server.http.serving import (
    DrainingServer,
    bind_socket,
    print_ready,
    serve_until_stopped,
    tune_gc_for_many_sockets,
)
from server.logs import configure_logging
from server.runtime import Runtime
from server.settings import Settings

log = logging.getLogger("queuecast")

GRACEFUL_SHUTDOWN_SECONDS = 5


def uvicorn_config(app: object, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        http=with_handshake_timeout(settings.handshake_timeout),
        # uvicorn's websockets-sansio protocol, plus writing a shared frame to many sockets.
        ws=FramingProtocol,
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        # Messages are ~200 bytes; compression would cost ~50 KiB of zlib state per socket.
        ws_per_message_deflate=False,
        lifespan="on",
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


async def serve(settings: Settings) -> None:
    """Run the service until SIGTERM/SIGINT; prints `queuecast-serve ready {json}`."""
    app = create_app(settings)
    sock = bind_socket(settings.host, settings.port)
    tune_gc_for_many_sockets()

    async def drain() -> None:
        runtime: Runtime | None = getattr(app.state, "runtime", None)
        if runtime is not None:
            await runtime.drain()

    def announce(url: str) -> None:
        print_ready("queuecast-serve", {"url": url, "ws": url.replace("http", "ws", 1) + "/ws"})

    server = DrainingServer(uvicorn_config(app, settings), before_shutdown=drain)
    await serve_until_stopped(server, sock, announce)


def run_serve(args: argparse.Namespace) -> int:
    try:
        settings = Settings.load(args)
        check_serve_settings(settings)
    except (TypeError, ValueError) as exc:
        print(f"queuecast serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if settings.allow_anonymous:
        print(ANONYMOUS_WARNING, file=sys.stderr, flush=True)
        log.warning(ANONYMOUS_WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="queuecast",
        description="Real-time queue position and wait time for Amazon Connect contacts.",
    )
    parser.add_argument("--version", action="version", version=f"queuecast {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_parser = commands.add_parser(
        "serve",
        help="run the queue-status service",
        description="Run the queue-status service. Every flag is also an environment variable.",
    )
    Settings.add_arguments(serve_parser)
    serve_parser.set_defaults(func=run_serve)
    add_demo_parser(commands)
    add_simulate_parser(commands)
    add_token_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result
