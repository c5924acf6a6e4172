"""The `queuecast` command line (minimal: the lead's version replaces this)."""

from __future__ import annotations

import argparse

from server.emulator.cli import add_simulate_parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="queuecast")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_simulate_parser(subparsers)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
