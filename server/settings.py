"""The one settings object of `queuecast serve`.

Every setting is declared once, below, and from that declaration come its environment variable
(`QUEUECAST_<NAME>`), its CLI flag (`--name`), its default and its line in the README table.
Precedence: CLI flag, then environment, then default.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import math
import os
import re
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


_ORIGIN = re.compile(r"(https?)://([a-z0-9.-]+|\[[0-9a-f:.]+\])(:[0-9]{1,5})?", re.IGNORECASE)
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def _origins(text: str) -> tuple[str, ...]:
    origins = []
    for given in _csv(text):
        # They go into the CSP header too, so nothing but an origin may pass.
        match = _ORIGIN.fullmatch(given)
        if given != "*" and match is None:
            raise ValueError(f"not an origin (scheme://host[:port]) or `*`: {given!r}")
        if match is None:
            origins.append(given)
            continue
        # Written as a browser writes its Origin header, which is compared as a string:
        # lower case, without the scheme's default port.
        scheme, host, port = (part.lower() if part else "" for part in match.groups())
        origins.append(f"{scheme}://{host}{'' if port == _DEFAULT_PORTS[scheme] else port}")
    return tuple(origins)


def _addresses_or_networks(text: str) -> tuple[str, ...]:
    entries = _csv(text)
    for entry in entries:
        if entry == "*":
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            # uvicorn would take it as a literal that never matches: say so instead.
            raise ValueError(f"not an IP address, a network (CIDR) or `*`: {entry!r}") from None
    return entries


def _account_id(text: str) -> str | None:
    text = text.strip()
    if text and not re.fullmatch(r"[0-9]{12}", text):
        raise ValueError(f"not an AWS account id (12 digits): {text!r}")
    return text or None


def _optional_str(text: str) -> str | None:
    return text or None


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"must be zero or more: {text!r}")
    return value


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}: {text!r}")
        return value

    return parse


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
        "Redis URL (redis://host:port/db), or redis+cluster://host:port[,host:port...] for a "
        "Redis Cluster. Unset: an in-process bus, single process only.",
        _optional_str,
        secret=True,  # it may carry a password (redis://:password@host)
    )
    instance_id: str | None = _option(
        None,
        "Amazon Connect instance id or ARN, or a comma-separated list of them: the only "
        "instances polled (required by serve). With one, subscriptions that name none use it; "
        "with several, contact and queues tokens must name theirs (`instance` claim).",
        _optional_str,
    )
    region: str = _option("us-east-1", "AWS Region of the Connect instance.")
    account_id: str | None = _option(
        None,
        "AWS account id of the Connect instance(s): an instance may be named by ARN only when "
        "it is of this account and the Region (default: the account of a configured ARN).",
        _account_id,
    )
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
    current_metrics_rps: float = _option(
        5.0,
        "GetCurrentMetricData requests per second (its own quota: 5/s, burst 8, not adjustable).",
        _positive_float,
    )
    current_metrics_burst: int = _option(
        8, "Burst of GetCurrentMetricData requests.", _positive_int
    )
    queue_figures_interval: float = _option(
        0.25,
        "Seconds between two reads of the queues' figures (waiting, oldest, agents available; "
        "GetCurrentMetricData, up to 100 queues per call): for wallboards, and for positions "
        "(who has left, how many wait).",
        _positive_float,
    )
    search_rps: float = _option(
        0.5,
        "SearchContacts requests per second (its own quota; a conservative default: set your "
        "account's). Each call lists up to 100 contacts of the watched queues.",
        _positive_float,
    )
    search_burst: int = _option(1, "Burst of SearchContacts requests.", _positive_int)
    queue_listing_interval: float = _option(
        2.0,
        "Seconds between two listings of the watched queues' contacts (SearchContacts): who "
        "left out of turn and why (hung up, or connected), and waiting chats and tasks.",
        _positive_float,
    )
    search_lag: float = _option(
        5.0,
        "Seconds SearchContacts' index may be behind Connect: a contact a listing shows "
        "waiting may have left since.",
        _non_negative_float,
    )
    queue_names_refresh: float = _option(
        300.0,
        "Seconds between two listings of the instance's queue names (ListQueues).",
        _positive_float,
    )
    queue_names_rps: float = _option(
        2.0,
        "ListQueues and DescribeQueue requests per second, each (their own quotas).",
        _positive_float,
    )
    queue_names_burst: int = _option(
        5, "Burst of ListQueues and of DescribeQueue requests.", _positive_int
    )
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
        (),
        "Comma-separated page origins (scheme://host[:port]) that may, besides the service's "
        "own, open WebSockets, load /static/ and read /v1/queues (CORS), and frame the pages; "
        "`*` allows any.",
        _origins,
    )
    # -- access ----------------------------------------------------------------------------
    secret: str | None = _option(
        None,
        "HS256 key (32+ characters) that verifies tokens without a `kid` and signs "
        "`queuecast token`. Prefer the environment variable or --secret-file to the flag.",
        _optional_str,
        secret=True,
    )
    secret_file: str | None = _option(
        None,
        "Read the HS256 secret from this file (surrounding whitespace ignored).",
        _optional_str,
    )
    token_keys: tuple[str, ...] = _option(
        (),
        "Comma-separated `kid:secret` HS256 keys, chosen by a token's `kid` (rotation: add the "
        "new key first, retire the old one when its tokens have expired).",
        _csv,
        secret=True,
    )
    public_key_file: str | None = _option(
        None,
        "PEM public key (RSA: RS256, EC P-256: ES256) verifying tokens signed elsewhere.",
        _optional_str,
    )
    token_audience: str = _option("queuecast", "The `aud` every token must carry.")
    token_max_ttl: int = _option(
        86400, "Longest token lifetime accepted, in seconds (exp - iat).", _positive_int
    )
    token_leeway: float = _option(
        10.0, "Seconds of clock skew forgiven when checking exp, nbf and iat.", _non_negative_float
    )
    allow_anonymous: bool = _option(
        False,
        "Development only: without a token any client may watch anything and use the HTTP "
        "API. Without it, serve refuses to start when no key is configured.",
        _bool,
    )
    auth_timeout: float = _option(
        5.0,
        "Seconds a new WebSocket has to authenticate before it is closed (1008).",
        _positive_float,
    )
    reauth_timeout: float = _option(
        60.0,
        "Seconds a WebSocket whose token expired has to re-authenticate before it is closed.",
        _positive_float,
    )
    handshake_timeout: float = _option(
        10.0,
        "Seconds a client has to send each request (headers and body; a WebSocket handshake "
        "too) after connecting or after the previous response.",
        _positive_float,
    )
    max_sockets_per_ip: int = _option(
        100,
        "Open WebSockets per client (429 beyond; 0: no limit): per IPv4 address, per IPv6 /64. "
        "Behind a proxy, set forwarded_allow_ips, or every client shares the proxy's address.",
        _non_negative_int,
    )
    max_sockets: int = _option(
        20000,
        "Open WebSockets per replica, all clients together (503 beyond; 0: no limit).",
        _non_negative_int,
    )
    forwarded_allow_ips: tuple[str, ...] = _option(
        (),
        "Comma-separated proxy addresses or networks (CIDR) trusted to name the client "
        "(X-Forwarded-For) and scheme (X-Forwarded-Proto); `*` trusts anyone, only for a "
        "service no client can reach but through the proxy. Empty: trust none.",
        _addresses_or_networks,
    )
    max_polled_per_token: int = _option(
        10,
        "Contacts one token may make the service poll by subscribing (explicitly tracked "
        "contacts do not count; service tokens are exempt; 0: no limit).",
        _non_negative_int,
    )
    max_polled_per_ip: int = _option(
        20,
        "Contacts the clients of one address (IPv4, IPv6 /64) may make the service poll by "
        "subscribing (explicitly tracked contacts do not count; 0: no limit).",
        _non_negative_int,
    )
    max_polled_anonymous: int = _option(
        200,
        "With --allow-anonymous: contacts all clients without a token together may make the "
        "service poll by subscribing (0: no limit).",
        _non_negative_int,
    )
    max_messages_per_second: float = _option(
        10.0,
        "Messages per second one WebSocket may send (bursts of twice that); excess ones are "
        "dropped with a `rate_limited` error.",
        _positive_float,
    )
    rate_limit_strikes: int = _option(
        20,
        "Dropped messages (forgiven at one per second) after which a WebSocket is closed (1008).",
        _positive_int,
    )
    log_contact_ids: str = _option(
        "hash",
        "Connect ids (UUIDs) in logs: full, hash (a short stable digest) or none.",
        _choice("full", "hash", "none"),
    )
    content_security_policy: str | None = _option(
        None,
        "Content-Security-Policy of HTTP responses (default: a strict one derived from "
        "allowed_origins).",
        _optional_str,
    )
    # -- contact events --------------------------------------------------------------------
    events_key: str | None = _option(
        None,
        "API key (16+ characters) that `POST /v1/events` takes in the `X-Queuecast-Events-Key` "
        "header: the key of the EventBridge connection (API-key authorization) of the API "
        "destination. A `service` token is accepted too. Prefer the environment variable or "
        "--events-key-file to the flag.",
        _optional_str,
        secret=True,
    )
    events_key_file: str | None = _option(
        None,
        "Read the events API key from this file (surrounding whitespace ignored).",
        _optional_str,
    )

    # -- derived -------------------------------------------------------------------------

    @property
    def instances(self) -> tuple[str, ...]:
        """The configured instances (`instance_id`, comma-separated), in order."""
        return _csv(self.instance_id or "")

    @property
    def primary_instance(self) -> str | None:
        """The first configured instance: the one of queue names and figures."""
        return next(iter(self.instances), None)

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
