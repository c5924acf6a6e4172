"""The WebSocket side's settings, as the gateway, its sessions and their access read them."""

from __future__ import annotations

from dataclasses import dataclass, field

from server.access.policy import AccessPolicy
from server.access.tokens import TokenVerifier


def _deny_everyone() -> AccessPolicy:
    return AccessPolicy(TokenVerifier())


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    default_instance: str | None = None
    max_subscriptions: int = 50
    send_timeout: float = 10.0
    drain_timeout: float = 5.0
    allowed_origins: tuple[str, ...] = ()
    access: AccessPolicy = field(default_factory=_deny_everyone)
    auth_timeout: float = 5.0
    reauth_timeout: float = 60.0
    max_sockets_per_ip: int = 100
    max_sockets: int = 0
    max_messages_per_second: float = 10.0
    rate_limit_strikes: int = 20
    # Contacts one token, one address and all anonymous clients may make the service poll by
    # subscribing (explicitly tracked contacts do not count; 0: no limit).
    max_polled_per_token: int = 0
    max_polled_per_ip: int = 0
    max_polled_anonymous: int = 0
