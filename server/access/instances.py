"""Which Amazon Connect instance a subscription or a track polls in. No I/O.

Only the configured instances are ever polled (`QUEUECAST_INSTANCE_ID`: an id or an ARN, or a
comma-separated list of them). A name given by a client refers to one of them or to nothing:
a bare id matches a configured instance with that id; an ARN must also be of the configured
Region and account (`QUEUECAST_ACCOUNT_ID`, or the account of a configured ARN), so that an
alias such as `arn:aws:connect:<other region>:<other account>:instance/<id>` is not polled.

Whose word counts, in order: a token's `instance` claim, used as written (a request may name
the same instance again, in any form, but no other); then an explicit track by the backend;
then what a subscriber names; then the one configured instance. With several configured, a
`contact` or `queues` token must carry the claim: a subscriber's guess would decide where its
contact is polled (a wrong guess ends it as not found, for every viewer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.access.tokens import Grant
from server.ids import bare_id, is_valid_id

_INSTANCE_ARN = re.compile(
    r"arn:(?P<partition>[a-z-]+):connect:(?P<region>[a-z0-9-]+):(?P<account>[0-9]+):"
    r"instance/(?P<id>[A-Za-z0-9-]+)"
)


class InstanceRefused(Exception):
    """A subscription or track names no instance this service polls; `code` for the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class InstanceAllowlist:
    """The configured instances, their Region and account.

    Raises:
        ValueError: (from `of`) a malformed entry, or an ARN of another Region or account.
    """

    entries: tuple[str, ...]
    region: str
    account: str | None = None

    @classmethod
    def of(cls, entries: tuple[str, ...], region: str, account: str | None) -> InstanceAllowlist:
        accounts = {account} if account else set()
        for entry in entries:
            if not is_valid_id(entry):
                raise ValueError(f"--instance-id: not a Connect instance id or ARN: {entry!r}")
            arn = _INSTANCE_ARN.fullmatch(entry)
            if arn is not None:
                if arn["region"] != region:
                    raise ValueError(f"--instance-id: {entry} is not in --region {region}")
                accounts.add(arn["account"])
        if len(accounts) > 1:
            raise ValueError(
                "--instance-id and --account-id name more than one account: "
                + ", ".join(sorted(accounts))
            )
        return cls(tuple(entries), region, next(iter(accounts), None))

    @property
    def single(self) -> str | None:
        """The one configured instance, or None when there are several (or none)."""
        return self.entries[0] if len(self.entries) == 1 else None

    def resolve(self, named: str) -> str | None:
        """The configured instance `named` refers to (as configured), or None."""
        arn = _INSTANCE_ARN.fullmatch(named)
        if arn is not None and (
            arn["region"] != self.region or self.account is None or arn["account"] != self.account
        ):
            return None
        if arn is None and not is_valid_id(named):
            return None
        wanted = bare_id(named)
        return next((entry for entry in self.entries if bare_id(entry) == wanted), None)

    def same(self, a: str, b: str) -> bool:
        """Whether two names refer to the same configured instance."""
        resolved = self.resolve(a)
        return resolved is not None and resolved == self.resolve(b)

    def for_subscription(self, grant: Grant, requested: str | None) -> str:
        """The instance a contact subscription under `grant` polls in.

        Raises:
            InstanceRefused: `forbidden` (the request names another instance than the token),
                or `bad_instance` (not one of ours, or none named where one must be).
        """
        if grant.instance is not None:
            if self.resolve(grant.instance) is None:
                raise InstanceRefused("bad_instance", "the token's instance is not served here")
            if requested is not None and not self.same(requested, grant.instance):
                raise InstanceRefused("forbidden", "this token does not allow that subscription")
            return grant.instance  # as the token says it
        if requested is not None:
            resolved = self.resolve(requested)
            if resolved is None:
                raise InstanceRefused("bad_instance", "that instance is not served here")
            if grant.scope != "service" and len(self.entries) > 1:
                raise InstanceRefused(
                    "bad_instance", "this service serves several instances: the token must name one"
                )
            return resolved
        if self.single is None:
            raise InstanceRefused("bad_instance", "name the `instance` of the contact")
        return self.single

    def for_track(self, requested: str | None) -> str:
        """The instance an explicit track (`PUT /v1/contacts/{id}`) polls in.

        Raises:
            InstanceRefused: `bad_instance`.
        """
        if requested is None:
            if self.single is None:
                raise InstanceRefused("bad_instance", "give the instanceId of the contact")
            return self.single
        resolved = self.resolve(requested)
        if resolved is None:
            raise InstanceRefused("bad_instance", "that instanceId is not served here")
        return resolved

    def lacks_claim(self, grant: Grant) -> bool:
        """Whether `grant` is a `contact` or `queues` token without the `instance` claim that
        a service with several instances requires."""
        return len(self.entries) > 1 and grant.scope != "service" and grant.instance is None

    def allows_event_instance(self, grant: Grant, instance: str) -> bool:
        """Whether a state of a contact polled in `instance` may be shown under `grant`
        (a `queues` token narrowed to one instance sees that instance's contacts only)."""
        if grant.instance is None:
            return True
        if not self.entries:  # no allowlist (an app built without settings): by id alone
            return bare_id(instance) == bare_id(grant.instance)
        return self.same(instance, grant.instance)
