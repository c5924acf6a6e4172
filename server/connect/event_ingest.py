"""What `POST /v1/events` does with envelopes, apart from HTTP: parse, filter, append.

All-or-nothing per request: every envelope is parsed before anything is appended, so a request
refused for one bad envelope appended none and may be sent again whole once fixed (appending is
idempotent by event id either way).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from server.bus import BusUnavailable
from server.connect.contact_events import (
    ConnectContactEvent,
    EnvelopeError,
    ForeignEnvelope,
    parse_envelope,
)
from server.connect.event_log import ContactEventLog
from server.ids import bare_id

APPEND_TIMEOUT_S = 3.0  # EventBridge gives an API destination 5 s to answer


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int  # new to the log
    duplicates: int  # taken before (a retry, or the same event twice in this request)
    ignored: int  # not a Connect contact event, or of another instance

    def to_json(self) -> dict[str, int]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "ignored": self.ignored}


class ContactEventIngest:
    """Takes envelopes into the shared log and counts what became of them (this process).

    Args:
        event_log: where taken events go.
        instance_id: the one instance whose events are taken (an id or an ARN); `None`: all.
        append_timeout: seconds an append may take before the request is answered 503.
    """

    def __init__(
        self,
        event_log: ContactEventLog,
        instance_id: str | None,
        *,
        append_timeout: float = APPEND_TIMEOUT_S,
    ) -> None:
        self._log = event_log
        self._instance = bare_id(instance_id) if instance_id else None
        self._append_timeout = append_timeout
        self.accepted = self.duplicates = self.ignored = 0
        self.rejected = self.unavailable = 0  # requests

    def parse(self, envelopes: Sequence[object]) -> tuple[list[ConnectContactEvent], int]:
        """The events to append, and how many envelopes were ignored.

        Raises:
            EnvelopeError: one envelope can never be taken (its index is in the message when
                there are several); counted as a rejected request.
        """
        events: list[ConnectContactEvent] = []
        ignored = 0
        for index, envelope in enumerate(envelopes):
            try:
                event = parse_envelope(envelope)
            except ForeignEnvelope:
                ignored += 1
                continue
            except EnvelopeError as exc:
                self.rejected += 1
                if len(envelopes) == 1:
                    raise
                raise EnvelopeError(f"envelope {index}: {exc}") from None
            if self._instance is not None and event.instance_id != self._instance:
                ignored += 1
            else:
                events.append(event)
        return events, ignored

    async def take(self, envelopes: Sequence[object]) -> IngestResult:
        """Parse and append.

        Raises:
            EnvelopeError: see `parse`; nothing was appended.
            BusUnavailable: the log could not take them now (down, or slower than
                `append_timeout`); the sender should retry. An append that timed out may
                still complete: the retry then counts as duplicates.
        """
        events, ignored = self.parse(envelopes)
        try:
            added = 0
            if events:
                async with asyncio.timeout(self._append_timeout):
                    added = await self._log.append(events)
        except TimeoutError:
            self.unavailable += 1
            raise BusUnavailable(f"the log took longer than {self._append_timeout:g} s") from None
        except BusUnavailable:
            self.unavailable += 1
            raise
        result = IngestResult(added, len(events) - added, ignored)
        self.accepted += result.accepted
        self.duplicates += result.duplicates
        self.ignored += result.ignored
        return result

    def status(self) -> dict[str, int | str | None]:
        return {
            "instance": self._instance,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "ignored": self.ignored,
            "rejectedRequests": self.rejected,
            "unavailableRequests": self.unavailable,
        }
