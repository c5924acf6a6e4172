"""The one settings object of `queuecast serve`.

Every setting is declared once, below, and from that declaration come its environment variable
(`QUEUECAST_<NAME>`), its CLI flag (`--name`), its default and its line in the README table.
Precedence: CLI flag, then environment, then default.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ENV_PREFIX = "QUEUECAST_"


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or math.isnan(value):
        raise ValueError(f"must be a positive number: {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0 or math.isnan(value):
        raise ValueError(f"must be zero or more: {text!r}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"must be a positive integer: {text!r}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError(f"not a TCP port: {text!r}")
    return value


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _optional_str(text: str) -> str | None:
    return text or None


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError(f"unknown log level: {text!r}")
    return level


def _option(
    default: Any,
    help: str,
    parse: Callable[[str], Any] = str,
    *,
    secret: bool = False,
    metavar: str | None = None,
) -> Any:
    return field(
        default=default,
        metadata={"help": help, "parse": parse, "secret": secret, "metavar": metavar},
    )


@dataclass(frozen=True)
class Settings:
    """Configuration of the queue-status service."""

    host: str = _option("127.0.0.1", "Address to listen on.")
    port: int = _option(8000, "TCP port to listen on (0 picks a free one).", _port)
    redis_url: str | None = _option(
        None,
        "Redis URL (redis://host:port/db). Unset: an in-process bus, single process only.",
        _optional_str,
        secret=True,  # it may carry a password (redis://:password@host)
    )
    instance_id: str | None = _option(
        None,
        "Default Amazon Connect instance id for subscriptions that name none.",
        _optional_str,
    )
    region: str = _option("us-east-1", "AWS Region of the Connect instance.")
    connect_endpoint_url: str | None = _option(
        None,
        "Override the Connect endpoint (the emulator's URL). Unset: the real AWS endpoint.",
        _optional_str,
    )
    rps: float = _option(
        2.0,
        "GetContactMetrics requests per second allowed for the whole AWS account.",
        _positive_float,
    )
    burst: int = _option(5, "Burst of GetContactMetrics requests above the rate.", _positive_int)
    describe_rps: float = _option(
        2.0, "DescribeContact requests per second (its own quota).", _positive_float
    )
    describe_burst: int = _option(5, "Burst of DescribeContact requests.", _positive_int)
    poll_interval: float = _option(
        2.0, "Seconds between two polls of one contact, at the most often.", _positive_float
    )
    ewt_threshold: float = _option(
        5.0,
        "Publish an update when the wait estimate moved this many seconds.",
        _non_negative_float,
    )
    stale_after: float = _option(
        10.0,
        "Seconds without a fresh value before subscribers are told the state is stale.",
        _positive_float,
    )
    tombstone_ttl: float = _option(
        300.0,
        "Seconds an ended contact is remembered, so late subscribers get `ended`.",
        _positive_float,
    )
    state_ttl: float = _option(
        3600.0,
        "Seconds the latest state of a contact is kept after its last change.",
        _positive_float,
    )
    linger: float = _option(
        10.0,
        "Seconds a contact stays polled after its last subscriber left (explicit tracks stay).",
        _non_negative_float,
    )
    lease_ttl: float = _option(
        5.0,
        "With Redis: seconds a replica's hold on a contact lasts unless renewed; a dead "
        "replica's contacts move to others within about this long.",
        _positive_float,
    )
    replica_id: str | None = _option(
        None, "With Redis: this replica's name (default: random per start).", _optional_str
    )
    connect_timeout: float = _option(
        2.0, "Seconds to open a connection to Amazon Connect.", _positive_float
    )
    read_timeout: float = _option(
        5.0, "Seconds to wait for an Amazon Connect answer.", _positive_float
    )
    max_in_flight: int = _option(8, "GetContactMetrics calls in flight at once.", _positive_int)
    send_timeout: float = _option(
        10.0,
        "Seconds a WebSocket client may stay unreadable before it is closed (1013).",
        _positive_float,
    )
    max_subscriptions: int = _option(50, "Subscriptions one WebSocket may hold.", _positive_int)
    max_frame_bytes: int = _option(
        4096,
        "Largest client WebSocket frame, in bytes (larger closes with 1009).",
        _positive_int,
    )
    ws_ping_interval: float = _option(
        20.0, "Seconds between WebSocket keep-alive pings.", _positive_float
    )
    ws_ping_timeout: float = _option(
        20.0, "Seconds to wait for a pong before closing the socket.", _positive_float
    )
    log_level: str = _option("INFO", "Log level: DEBUG, INFO, WARNING, ERROR.", _log_level)
    log_format: str = _option("json", "Log format: json or text.")
    static_dir: str | None = _option(
        None,
        "Serve the widget and pages from this folder (default: the packaged static/).",
        _optional_str,
    )
    allowed_origins: tuple[str, ...] = _option(
        (), "Comma-separated page origins allowed to open WebSockets (`*` for any).", _csv
    )

    # -- sources -------------------------------------------------------------------------

    @classmethod
    def options(cls) -> Sequence[dataclasses.Field[Any]]:
        return dataclasses.fields(cls)

    @staticmethod
    def env_name(name: str) -> str:
        return ENV_PREFIX + name.upper()

    @staticmethod
    def flag_name(name: str) -> str:
        return "--" + name.replace("_", "-")

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add one flag per setting; unset flags stay `None` so env and defaults apply."""
        for f in cls.options():
            meta = f.metadata
            default = "unset" if f.default is None else f.default
            if isinstance(default, tuple):
                default = ",".join(default) or "none"
            help_text = f"{meta['help']} [env {cls.env_name(f.name)}; default {default}]"
            if meta["parse"] is _bool:
                parser.add_argument(
                    cls.flag_name(f.name),
                    dest=f.name,
                    action="store_const",
                    const="true",
                    default=None,
                    help=help_text,
                )
            else:
                parser.add_argument(
                    cls.flag_name(f.name),
                    dest=f.name,
                    default=None,
                    metavar=meta["metavar"] or f.name.upper(),
                    help=help_text,
                )

    @classmethod
    def load(
        cls,
        args: argparse.Namespace | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Build settings from CLI args, then the environment, then defaults.

        Raises:
            ValueError: a value does not parse; the message names the flag and variable.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in cls.options():
            parse: Callable[[str], Any] = f.metadata["parse"]
            raw: str | None = getattr(args, f.name, None) if args is not None else None
            source = cls.flag_name(f.name)
            if raw is None:
                raw = environ.get(cls.env_name(f.name))
                source = cls.env_name(f.name)
            if raw is None:
                continue
            try:
                values[f.name] = parse(raw)
            except ValueError as exc:
                raise ValueError(f"{source}: {exc}") from None
        values.update(overrides)
        return cls(**values)

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict safe to log: secrets are replaced."""
        out: dict[str, Any] = {}
        for f in self.options():
            value = getattr(self, f.name)
            out[f.name] = "***" if f.metadata["secret"] and value else value
        return out

    @classmethod
    def markdown_table(cls) -> str:
        """The README's configuration table, generated so it cannot drift from the code."""
        rows = ["| Environment variable | Flag | Default | Meaning |", "|---|---|---|---|"]
        for f in cls.options():
            default = f.default
            if default is None:
                shown = "unset"
            elif isinstance(default, tuple):
                shown = ",".join(default) or "empty"
            else:
                shown = str(default)
            rows.append(
                f"| `{cls.env_name(f.name)}` | `{cls.flag_name(f.name)}` | `{shown}` "
                f"| {f.metadata['help']} |"
            )
        return "\n".join(rows)
