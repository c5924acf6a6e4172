"""`queuecast serve`: run the queue-status service under uvicorn until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys

from server._internals import fast_paths
from server.access.policy import ANONYMOUS_WARNING, check_serve_settings
from server.app import create_app
from server.http.serving import (
    DrainingServer,
    bind_socket,
    print_ready,
    serve_until_stopped,
    tune_gc_for_many_sockets,
    uvicorn_config,
)
from server.http.static_assets import static_directory
from server.logs import configure_logging
from server.runtime import Runtime
from server.settings import Settings

log = logging.getLogger("queuecast")


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
        static_directory(settings)  # a wrong --static-dir fails here, not as 500s later
    except (TypeError, ValueError) as exc:
        print(f"queuecast serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    fast_paths()  # probed now, so a warning about a public path is among the first lines
    if settings.allow_anonymous:
        print(ANONYMOUS_WARNING, file=sys.stderr, flush=True)
        log.warning(ANONYMOUS_WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings))
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `serve` subcommand."""
    parser = subparsers.add_parser(
        "serve",
        help="run the queue-status service",
        description="Run the queue-status service. Every flag is also an environment variable.",
    )
    Settings.add_arguments(parser)
    parser.set_defaults(func=run_serve)
