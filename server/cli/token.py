"""`queuecast token`: mint a token with the service's own key, for tests, scripts and ops.

The key comes from the same settings as `queuecast serve` (QUEUECAST_SECRET,
QUEUECAST_SECRET_FILE or QUEUECAST_TOKEN_KEYS, or --secret-file here); only the token is
printed, on stdout.
"""

from __future__ import annotations

import argparse
import sys

from server.access.policy import hmac_secrets
from server.access.tokens import SCOPES, mint
from server.settings import Settings, _csv


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "token",
        help="mint an access token",
        description=(
            "Print a signed token. The key is the service's: QUEUECAST_SECRET, "
            "QUEUECAST_SECRET_FILE (or --secret-file) or QUEUECAST_TOKEN_KEYS (with --kid, or "
            "the first key listed)."
        ),
    )
    parser.add_argument("--scope", required=True, choices=SCOPES)
    parser.add_argument("--contact", help="the contact id (scope contact)")
    parser.add_argument("--instance", help="limit the token to this Connect instance")
    parser.add_argument("--queues", help="comma-separated queue ids, or * (scope queues)")
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds [3600]")
    parser.add_argument("--kid", help="sign with this key of QUEUECAST_TOKEN_KEYS")
    parser.add_argument("--secret-file", help="read the HS256 secret from this file")
    parser.add_argument("--audience", help="the aud claim [the service's token_audience]")
    parser.set_defaults(func=run_token)


def run_token(args: argparse.Namespace) -> int:
    try:
        overrides = {"secret_file": args.secret_file} if args.secret_file else {}
        settings = Settings.load(None, **overrides)
        secrets = hmac_secrets(settings)
        if args.kid is not None:
            if args.kid not in secrets:
                raise ValueError(f"no key {args.kid!r} in QUEUECAST_TOKEN_KEYS")
            kid: str | None = args.kid
        elif secrets:
            kid = next(iter(secrets))  # the default secret, else the first key listed
        else:
            raise ValueError(
                "no key: set QUEUECAST_SECRET, QUEUECAST_SECRET_FILE or QUEUECAST_TOKEN_KEYS"
            )
        if args.ttl > settings.token_max_ttl:
            raise ValueError(f"--ttl is above the service's maximum ({settings.token_max_ttl} s)")
        token = mint(
            secrets[kid],
            scope=args.scope,
            contact=args.contact,
            instance=args.instance,
            queues=_csv(args.queues) if args.queues else None,
            ttl=args.ttl,
            kid=kid,
            audience=args.audience or settings.token_audience,
        )
    except ValueError as exc:
        print(f"queuecast token: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0
