"""Access tokens: signed JWTs that say what one client may watch. No I/O.

A token is minted by a backend that knows who the viewer is (the customer's own contact, a
wallboard's queues, a service) and verified here on every WebSocket and HTTP API request.

Claims: `aud`, `exp` (required, bounded by a maximum lifetime), `iat`, `scope` (`contact`,
`queues` or `service`), `sub` (the contact id, `contact` scope), `instance` (optional, narrows
a `contact` or `queues` token to one Connect instance) and `queues` (`queues` scope: a list of
queue ids, or `["*"]` for every queue).

Keys: HS256 secrets, picked by the token's `kid` header (no `kid`: the default secret), so a
secret can be rotated by adding the new one before retiring the old; optionally one RS256 or
ES256 public key, so the minting backend alone holds the private key. The algorithm a token
may use is decided by the key it selects, never by the token alone.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from server.ids import bare_id, is_valid_id, is_valid_queue_id

Scope = Literal["contact", "queues", "service"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
DEFAULT_AUDIENCE = "queuecast"
MIN_SECRET_LENGTH = 32
MAX_TOKEN_LENGTH = 8192
MAX_QUEUES = 1000
ANY_QUEUE = "*"

# Outcomes of a failed check: bounded, so they can be metric labels.
TokenOutcome = Literal[
    "malformed",
    "bad_algorithm",
    "unknown_kid",
    "bad_signature",
    "expired",
    "immature",
    "wrong_audience",
    "too_long_lived",
    "bad_claims",
]


class TokenError(Exception):
    """A token that grants nothing; `outcome` says why, `message` is safe to show a client."""

    def __init__(self, outcome: TokenOutcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.message = message


@dataclass(frozen=True, slots=True)
class Grant:
    """What a verified token (or anonymous mode) allows.

    Attributes:
        scope: `contact`, `queues` or `service`.
        contact: the one contact of a `contact` token.
        instance: the one instance the token is limited to, if any.
        queues: the queues of a `queues` token; None means any queue.
        exp: expiry, epoch seconds; None for anonymous access.
        token_id: names the token (its `jti`, else a digest of its signature), for limits
            per token; None for anonymous access.
    """

    scope: Scope
    contact: str | None = None
    instance: str | None = None
    queues: frozenset[str] | None = None
    exp: int | None = None
    token_id: str | None = None

    def allows_contact(self, contact: str, instance: str | None) -> bool:
        """Whether this grant may watch `contact` (in `instance`, if the request names one)."""
        if self.scope == "service":
            return True
        if self.scope != "contact" or contact != self.contact:
            return False
        return instance is None or self.instance is None or _same_instance(instance, self.instance)

    def allows_queue(self, queue: str) -> bool:
        if self.scope == "service":
            return True
        if self.scope != "queues":
            return False
        return self.queues is None or queue in self.queues


ANONYMOUS = Grant(scope="service")


TIME_CLAIMS = ("exp", "iat", "nbf")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _same_instance(a: str, b: str) -> bool:
    return bare_id(a) == bare_id(b)


def mint(
    secret: str,
    *,
    scope: Scope,
    contact: str | None = None,
    instance: str | None = None,
    queues: Sequence[str] | None = None,
    ttl: int = 3600,
    kid: str | None = None,
    audience: str = DEFAULT_AUDIENCE,
    now: float | None = None,
) -> str:
    """A signed (HS256) token.

    Args:
        secret: the HS256 key (at least 32 characters); the one `kid` names, if given.
        scope: `contact` (needs `contact`), `queues` (needs `queues`) or `service`.
        instance: limit the token to this Connect instance.
        queues: queue ids, or `["*"]` for every queue.
        ttl: lifetime in seconds; the verifier refuses tokens longer-lived than its maximum.
        kid: the key id to put in the header, for verifiers holding several keys.
        now: the issue time (epoch seconds); default the current time.

    Raises:
        ValueError: a missing or malformed claim for the scope, or a short secret.
    """
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"the secret must be at least {MIN_SECRET_LENGTH} characters")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"aud": audience, "iat": issued, "exp": issued + ttl, "scope": scope}
    if scope == "contact":
        if not is_valid_id(contact):
            raise ValueError("a contact token needs the contact id (a UUID)")
        claims["sub"] = contact
    if instance is not None:
        if not is_valid_id(instance):
            raise ValueError("instance must be a Connect instance id or ARN")
        claims["instance"] = instance
    if scope == "queues":
        claims["queues"] = _queue_list(list(queues or ()))
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers)


def _queue_list(value: object) -> list[str]:
    if (
        not isinstance(value, list)
        or not 0 < len(value) <= MAX_QUEUES
        or not all(is_valid_queue_id(q) for q in value)
    ):
        raise ValueError(f"queues must be a list of 1 to {MAX_QUEUES} queue ids (or ['*'])")
    return list(value)


def public_key_algorithm(pem: bytes) -> tuple[Any, str]:
    """Load a PEM public key and name its JWT algorithm (RS256 for RSA, ES256 for P-256).

    Raises:
        ValueError: not a PEM public key, or of another kind or curve.
    """
    key = load_pem_public_key(pem)
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ValueError("RSA public keys must have at least 2048 bits")
        return key, "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key, "ES256"
    raise ValueError("the public key must be RSA (RS256) or EC P-256 (ES256)")


class TokenVerifier:
    """Checks tokens against the configured keys; stateless, so shared by every request.

    Args:
        secrets: HS256 keys by `kid`; the key under `None` verifies tokens without a `kid`.
        public_key: a PEM public key (RSA or EC P-256), for tokens signed elsewhere.
        audience: the required `aud`.
        max_ttl: the longest lifetime (`exp` - `iat`, or `exp` - now without `iat`) accepted.
        leeway: seconds of clock skew forgiven on `exp`, `nbf` and `iat`.

    Raises:
        ValueError: a secret shorter than 32 characters or an unusable public key.
    """

    def __init__(
        self,
        secrets: Mapping[str | None, str] | None = None,
        public_key: bytes | None = None,
        *,
        audience: str = DEFAULT_AUDIENCE,
        max_ttl: float = 86400,
        leeway: float = 10,
    ) -> None:
        self._secrets = dict(secrets or {})
        for kid, secret in self._secrets.items():
            if len(secret) < MIN_SECRET_LENGTH:
                named = f"the key {kid!r}" if kid is not None else "the secret"
                raise ValueError(f"{named} must be at least {MIN_SECRET_LENGTH} characters")
        self._public: tuple[Any, str] | None = None
        if public_key is not None:
            self._public = public_key_algorithm(public_key)
        self.audience = audience
        self.max_ttl = max_ttl
        self.leeway = leeway

    @property
    def enabled(self) -> bool:
        """Whether any key is configured (without one, no token can be checked)."""
        return bool(self._secrets) or self._public is not None

    def verify(self, token: str, now: float | None = None) -> Grant:
        """The grant a token carries.

        Raises:
            TokenError: the token is malformed, forged, expired, for another audience,
                too long-lived, or its claims do not fit its scope.
        """
        if not self.enabled:
            raise TokenError("unknown_kid", "this server has no token keys")
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
            raise TokenError("malformed", "the token is not a JWT")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("malformed", "the token is not a JWT") from None
        key, algorithm = self._key_for(header)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                leeway=self.leeway,
                options={"require": ["exp", "aud", "scope"], "verify_sub": False},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("expired", "the token has expired") from None
        except jwt.InvalidAudienceError:
            raise TokenError("wrong_audience", "the token is for another audience") from None
        except jwt.InvalidSignatureError:
            raise TokenError("bad_signature", "the token's signature is not valid") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("immature", "the token is not valid yet") from None
        except jwt.DecodeError:
            raise TokenError("malformed", "the token is not a JWT") from None
        except jwt.PyJWTError:
            raise TokenError("bad_claims", "the token's claims are not valid") from None
        grant = self._grant(claims, time.time() if now is None else now)
        jti = claims.get("jti")
        if isinstance(jti, str) and 0 < len(jti) <= 128:
            token_id = "jti:" + jti
        else:
            token_id = hashlib.sha256(token.rsplit(".", 1)[-1].encode()).hexdigest()[:24]
        return replace(grant, token_id=token_id)

    def _key_for(self, header: dict[str, Any]) -> tuple[Any, str]:
        algorithm, kid = header.get("alg"), header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenError("malformed", "the token's kid is not a string")
        if algorithm == "HS256":
            secret = self._secrets.get(kid)
            if secret is None:
                raise TokenError("unknown_kid", "the token's key is not known here")
            return secret, algorithm
        if self._public is not None and algorithm == self._public[1]:
            return self._public
        raise TokenError("bad_algorithm", "the token's algorithm is not accepted")

    def _grant(self, claims: dict[str, Any], now: float) -> Grant:
        # PyJWT accepts a numeric string as `exp` (and ignores an odd `iat`): numbers only here.
        for name in TIME_CLAIMS:
            if name in claims and not _is_number(claims[name]):
                raise TokenError("bad_claims", f"the token's {name} is not a number")
        exp, iat = claims["exp"], claims.get("iat")
        start = now if iat is None else iat
        if exp - start > self.max_ttl + self.leeway:
            raise TokenError("too_long_lived", "the token lives longer than this server allows")
        scope = claims["scope"]
        if scope not in SCOPES:
            raise TokenError("bad_claims", "unknown scope")
        instance = claims.get("instance")
        if instance is not None and not is_valid_id(instance):
            raise TokenError("bad_claims", "instance is not a Connect instance id")
        contact: str | None = None
        queues: frozenset[str] | None = None
        if scope == "contact":
            contact = claims.get("sub")
            if not is_valid_id(contact):
                raise TokenError("bad_claims", "a contact token needs its contact id in sub")
        elif scope == "queues":
            try:
                listed = _queue_list(claims.get("queues"))
            except ValueError:
                raise TokenError("bad_claims", "a queues token needs a list of queues") from None
            queues = None if ANY_QUEUE in listed else frozenset(listed)
        return Grant(scope=scope, contact=contact, instance=instance, queues=queues, exp=int(exp))
