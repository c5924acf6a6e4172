"""The `queuecast` command line: serve, demo, simulate, token.

Each command lives in its own module, imported only when that command runs: `queuecast serve`
never imports the emulator or the demo, which are not part of the service.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from server import __version__

if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

# name -> (module with `add_parser(subparsers)`, one-line help shown before it is imported)
COMMANDS: Final[dict[str, tuple[str, str]]] = {
    "serve": ("server.cli.serve", "run the queue-status service"),
    "demo": (
        "server.demo",
        "run an emulated contact center and the service, with the demo page",
    ),
    "simulate": (
        "server.emulator.cli",
        "run an Amazon Connect emulator (GetContactMetrics, DescribeContact, /_sim/)",
    ),
    "token": ("server.cli.token", "mint an access token"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with `command` only that command's module imported.

    Args:
        command: the subcommand about to run; the others get a stub that lists them in
            `--help` without importing their module.
    """
    parser = argparse.ArgumentParser(
        prog="queuecast",
        description="Real-time queue position and wait time for Amazon Connect contacts.",
    )
    parser.add_argument("--version", action="version", version=f"queuecast {__version__}")
    commands: _Subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        if command is None or name == command:
            add_parser: Callable[[_Subparsers], None] = importlib.import_module(module).add_parser
            add_parser(commands)
        else:
            commands.add_parser(name, help=help_)
    return parser


def main(argv: list[str] | None = None) -> int:
    import sys  # noqa: PLC0415 (argv only when main runs)

    args_in = sys.argv[1:] if argv is None else argv
    command = next((a for a in args_in if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(args_in)
    result: int = args.func(args)
    return result
