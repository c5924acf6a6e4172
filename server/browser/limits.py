"""Per-client limits: message rate with strikes, sockets per address, which refusals to log.
No I/O.

The clock is passed in by the caller (any monotonic reading in seconds), as in `TokenBucket`.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import Counter

from server.ratelimit import TokenBucket

STRIKE_FORGIVENESS_PER_SECOND = 1.0


class Admission(enum.Enum):
    ADMIT = "admit"
    DROP_AND_TELL = "drop_and_tell"  # the first dropped message of a run: answer `rate_limited`
    DROP = "drop"  # further drops in the same run: answered by silence
    CLOSE = "close"  # persistent abuse


class MessageRate:
    """Messages per second of one socket, with a burst of twice the rate.

    A message over the rate is dropped and counts a strike; strikes are forgiven at one per
    second, and a socket with more than `strikes` of them is to be closed. So a client that
    briefly bursts is only told `rate_limited`, while one that keeps flooding is cut off.
    """

    def __init__(self, rate: float, strikes: int, now: float) -> None:
        self._bucket = TokenBucket(rate, max(1.0, 2 * rate), now)
        self._max_strikes = strikes
        self._strikes = 0.0
        self._stamp = now
        self._dropping = False

    def admit(self, now: float) -> Admission:
        if now > self._stamp:
            forgiven = (now - self._stamp) * STRIKE_FORGIVENESS_PER_SECOND
            self._strikes = max(0.0, self._strikes - forgiven)
            self._stamp = now
        if self._bucket.try_take(now):
            self._dropping = False
            return Admission.ADMIT
        self._strikes += 1
        if self._strikes > self._max_strikes:
            return Admission.CLOSE
        if self._dropping:
            return Admission.DROP
        self._dropping = True
        return Admission.DROP_AND_TELL


IPV6_CLIENT_PREFIX = 64  # one subscriber's network: ISPs hand out a /64 (or more) per line


def client_key(address: str) -> str:
    """The key a client's sockets are counted under: its IPv4 address, or its IPv6 /64.

    An IPv6 client can use any of the 2**64 addresses of its network, so a limit per address
    would limit nothing. An IPv4-mapped IPv6 address counts as the IPv4 address it maps.
    Anything that is not an IP address (a Unix socket's peer) counts as itself.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))
    return str(ip)


class SocketsPerAddress:
    """Open sockets by client key (`client_key`), refusing more than `limit` (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    def try_open(self, address: str) -> bool:
        if self.limit and self._open[address] >= self.limit:
            return False
        self._open[address] += 1
        return True

    def close(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]

    def __len__(self) -> int:
        return len(self._open)


class RefusalLog:
    """Whether a refusal is worth a log line: at most one per client key per `every` seconds.

    Refusals are routine (a client over a limit retries), and anyone can cause them, so each
    one is counted in /metrics but only the first of a minute per client is logged. Memory and
    lines are bounded: past `max_keys` clients, those not logged within `every` seconds are
    forgotten, and while all of them were, new clients go unlogged (still counted): at most
    `max_keys` lines per `every` seconds, whoever floods.
    """

    def __init__(self, every: float = 60.0, max_keys: int = 10_000) -> None:
        self.every = every
        self.max_keys = max_keys
        self._logged: dict[str, float] = {}

    def should_log(self, key: str, now: float) -> bool:
        last = self._logged.get(key)
        if last is not None and now - last < self.every:
            return False
        if last is None and len(self._logged) >= self.max_keys:
            self._logged = {k: t for k, t in self._logged.items() if now - t < self.every}
            if len(self._logged) >= self.max_keys:
                return False
        self._logged[key] = now
        return True

    def __len__(self) -> int:
        return len(self._logged)


QuotaKey = tuple[str, str]  # ("token", id), ("address", client key) or ("anonymous", "")


class PollQuota:
    """How many contacts each client may make the service poll, at subscribe time.

    Whoever can create contacts (a public chat entry point) and get tokens minted for them
    could otherwise spread everyone's polls thinner. A subscription that makes the service
    poll a contact nobody tracks explicitly counts against each of its keys: its token, its
    address (`client_key`) and, without a token, all anonymous clients together. A contact
    counts once per key however many of that key's sockets watch it. A limit of 0 is none.
    """

    def __init__(self, limits: dict[str, int]) -> None:
        self.limits = limits  # by key kind: "token", "address", "anonymous"
        self._held: dict[QuotaKey, Counter[str]] = {}

    def try_take(self, keys: tuple[QuotaKey, ...], contact: str) -> QuotaKey | None:
        """Count `contact` against every key; or return the first key already at its limit
        (then nothing is counted)."""
        for key in keys:
            limit = self.limits.get(key[0], 0)
            held = self._held.get(key)
            if limit and held is not None and contact not in held and len(held) >= limit:
                return key
        for key in keys:
            self._held.setdefault(key, Counter())[contact] += 1
        return None

    def release(self, keys: tuple[QuotaKey, ...], contact: str) -> None:
        for key in keys:
            held = self._held.get(key)
            if held is None or contact not in held:
                continue
            held[contact] -= 1
            if held[contact] <= 0:
                del held[contact]
            if not held:
                del self._held[key]

    def held(self, key: QuotaKey) -> int:
        return len(self._held.get(key, ()))

    def __len__(self) -> int:
        return len(self._held)
