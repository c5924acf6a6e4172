"""QueueBook: the waiting contacts queuecast knows, per queue, in routing order. No I/O.

Amazon Connect gives a contact's place in line only through GetContactMetrics, one contact per
call, under a small account quota. Everything else that is known about a queue is put together
here, so that one piece of information moves every position it implies:

- contact events (QUEUED, CONNECTED_TO_AGENT, DISCONNECTED) add and remove members at once;
- DescribeContact places a member exactly: routing priority first (lower is routed first),
  then enqueue time as adjusted by `QueueTimeAdjustmentSeconds`;
- one read of one member (its position) tells how many contacts are ahead of it, including the
  ones queuecast does not know (callers without a widget, events that were lost). The
  difference from what the book expected corrects every member behind it.

Unknown contacts are counted, not named: each member carries `unknown_before`, how many unknown
contacts wait between it and the known member in front of it. A member's position is then
`1 + known members ahead + unknown contacts ahead`. When a read shows fewer contacts ahead than
the book counts, the surplus is taken from the front (queues are served from the front, so that
is where contacts most likely left): first unknown ones, then known members, which are marked
*suspect* (presumed gone: their end event is late or was lost) and left out of every count
until a poll confirms or refutes it. When a read shows more, the extra unknown contacts are put
just in front of the member that was read: that moves it and everyone behind it, and nobody in
front, which is all the read proves.

- a queue-level read (GetCurrentMetricData: contacts in queue, age of the oldest) tells, with
  no per-contact call at all, which members have left (everyone enqueued before the oldest
  still waiting) and how many unknown contacts wait in all (so a line whose every member is
  known has no unknown gaps left).

Events are best effort: late, twice, out of order. Each member and each ended contact keeps the
time of what the book last learnt of it, and older news is ignored: a late QUEUED never brings
back an ended contact, a late QUEUED for the queue a contact was transferred from does not move
it back.
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

DEFAULT_PRIORITY = 5  # Amazon Connect's default routing priority; 1 is routed first.
SERVICE_WINDOW = 300.0  # seconds of departures that make a queue's service rate
MIN_DEPARTURES = 3  # below this many in the window there is no rate to speak of
MAX_ENDED = 100_000  # ended contacts remembered (oldest forgotten first)
CLOCK_TOLERANCE = 1.0  # seconds of disagreement between Connect's clock and ours
UNKNOWN_FEW = 4  # unknown callers are "few" below a quarter of a line's members
# How long a count that dropped waits for the end event that explains it when events flow:
# EventBridge delivers within a second or two (the p95 delay); the emulator's harder scenario
# delays up to 2 s.
SURPLUS_GRACE = 2.5
GUESS_WINDOW = 30.0  # seconds an end may precede the count drop it explains (late news)

Placement = Literal["event", "search", "describe", "read"]
EndReason = Literal["connected", "disconnected", "left_queue"]


@dataclass(slots=True)
class Member:
    """One waiting contact as the book knows it.

    Attributes:
        key: routing order, `(priority, routing time, contact id)`; lower goes first.
        priority_known: the priority came from DescribeContact (events do not carry it).
        learnt_at: Connect's time of the newest contact event applied, to drop older events
            (reads and DescribeContact are timed by our clock, which may differ: they never
            set it).
        unknown_before: contacts queuecast does not know between this member and the known
            member in front of it.
        suspect: a read behind this member showed it is most likely gone already.
        guessed_gone_at: when it became a suspect only because a count said someone ahead
            left (the front-most is the guess): a later listing that shows it waiting
            clears it.
        read_at, read_position, read_ewt: this member's own last GetContactMetrics answer
            (monotonic time).
    """

    contact: str
    instance: str
    queue: str
    key: tuple[int, float, str]
    placed_by: Placement
    learnt_at: float
    priority_known: bool = False
    enqueued_at: float | None = None
    unknown_before: int = 0
    suspect: bool = False
    guessed_gone_at: float | None = None  # wall time a count (not its own end) made it suspect
    read_at: float | None = None
    read_position: int | None = None
    read_ewt: int | None = None


@dataclass(slots=True)
class Line:
    """One queue: members in routing order, and how fast it is served."""

    queue: str
    keys: list[tuple[int, float, str]] = field(default_factory=list)
    members: dict[tuple[int, float, str], Member] = field(default_factory=dict)
    departures: deque[float] = field(default_factory=deque)  # wall times of connections
    confirmed_at: float | None = None  # monotonic time the book was last confirmed right
    # Connect's own wait estimate per position, from the latest read that had one: the wait
    # of a member whose position changed since its read is this times its position.
    seconds_per_position: float | None = None
    waiting: int | None = None  # contacts in queue, from the latest queue-level read
    oldest_at: float | None = None  # our wall time the oldest waiting was enqueued (same read)
    surplus_since: float | None = None  # wall time the count first fell below the book's

    def __iter__(self) -> Iterator[Member]:
        return (self.members[key] for key in self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def index(self, member: Member) -> int:
        return bisect.bisect_left(self.keys, member.key)

    def insert(self, member: Member) -> None:
        bisect.insort(self.keys, member.key)
        self.members[member.key] = member

    def remove(self, member: Member) -> Member | None:
        """Take `member` out; returns the member that was behind it, if any."""
        i = self.index(member)
        del self.keys[i]
        del self.members[member.key]
        return self.members[self.keys[i]] if i < len(self.keys) else None

    def service_rate(self, now_wall: float) -> float | None:
        """Contacts connected to an agent per second, over the recent window."""
        while self.departures and self.departures[0] < now_wall - SERVICE_WINDOW:
            self.departures.popleft()
        if len(self.departures) < MIN_DEPARTURES:
            return None
        span = max(now_wall - self.departures[0], 1.0)
        return len(self.departures) / span


class ConnectClock:
    """How far our wall clock is ahead of the clock Connect's timestamps are on.

    A queue-level read gives the age of the oldest waiting contact; comparing it with
    enqueue timestamps needs Connect's "now". Each read offers one sample: our time minus the
    oldest's age minus the enqueue time of the book's front member. The sample is exact when
    that member is the oldest waiting, which is the usual case once a line is known; it is off
    when unknown contacts are ahead (early) or the front member has just left (late). The most
    frequent recent sample is therefore taken, and none until a few agree.
    """

    RESOLUTION = 0.05  # seconds: samples closer than this agree
    WINDOW = 64
    AGREEING = 3

    def __init__(self) -> None:
        self._samples: deque[int] = deque(maxlen=self.WINDOW)

    def observe(self, sample: float) -> None:
        self._samples.append(round(sample / self.RESOLUTION))

    def offset(self) -> float | None:
        """The offset, or None while the samples do not agree (too few, or the latest one
        far from the rest: Connect's clock is not running at ours, as an emulator sped up)."""
        if not self._samples:
            return None
        counts: dict[int, int] = {}
        for bucket in self._samples:
            counts[bucket] = counts.get(bucket, 0) + 1
        bucket, count = max(counts.items(), key=lambda item: (item[1], item[0]))
        if count < self.AGREEING or count * 2 < len(self._samples) // 2:
            return None
        return bucket * self.RESOLUTION


@dataclass(frozen=True, slots=True)
class Ended:
    at: float  # wall time the contact left its queue
    reason: EndReason


@dataclass(frozen=True, slots=True)
class ReadOutcome:
    """What a read taught: how far the book was off for this member (0: it was right)."""

    error: int
    suspects: tuple[str, ...] = ()


class QueueBook:
    """Every queue's line. Times: `at` is wall-clock epoch seconds of the news itself (event
    time, or when a read was answered); `now` is monotonic, for freshness."""

    def __init__(self) -> None:
        self.lines: dict[str, Line] = {}
        self._where: dict[str, Member] = {}
        self.ended: OrderedDict[str, Ended] = OrderedDict()
        self._clock = ConnectClock()
        # Contact events place members: then nearly every caller is a member and their ends
        # are announced, so a count that dropped is most likely a member whose end event is
        # on its way, not one of the few unknown callers (a lost QUEUED event's).
        self.events_flow = False

    # -- queries ---------------------------------------------------------------------------

    def __contains__(self, contact: str) -> bool:
        return contact in self._where

    def __len__(self) -> int:
        return len(self._where)

    def member(self, contact: str) -> Member | None:
        return self._where.get(contact)

    def line(self, queue: str) -> Line | None:
        return self.lines.get(queue)

    def positions(self, queue: str) -> dict[str, int]:
        """Every member's position in `queue` (suspects are left out)."""
        line = self.lines.get(queue)
        if line is None:
            return {}
        out: dict[str, int] = {}
        ahead = 0
        for member in line:
            ahead += member.unknown_before
            if member.suspect:
                continue
            out[member.contact] = ahead + 1
            ahead += 1
        return out

    def known(self, queue: str) -> int:
        """Members of `queue` not presumed gone."""
        line = self.lines.get(queue)
        return 0 if line is None else sum(1 for m in line if not m.suspect)

    def position(self, contact: str) -> int | None:
        member = self._where.get(contact)
        if member is None or member.suspect:
            return None
        return self.positions(member.queue).get(contact)

    def estimated_wait(self, contact: str, position: int, now_wall: float) -> int | None:
        """Seconds until connected, from the position and the queue's observed service rate;
        `None` while the queue has not been seen serving long enough to tell."""
        member = self._where.get(contact)
        if member is None:
            return None
        rate = self.lines[member.queue].service_rate(now_wall)
        if rate is None:
            return None
        return round(position / rate)

    def connect_offset(self) -> float | None:
        """Seconds our wall clock is ahead of Connect's, once reads agree on it."""
        return self._clock.offset()

    # -- news ------------------------------------------------------------------------------

    def queued(
        self,
        contact: str,
        instance: str,
        queue: str,
        at: float,
        *,
        enqueued_at: float | None = None,
        placed_by: Placement = "event",
    ) -> set[str]:
        """A QUEUED event (or a listing that shows the contact waiting): the contact waits in
        `queue` since `enqueued_at` (or `at`).

        Returns:
            The queues whose positions changed.
        """
        ended = self.ended.get(contact)
        if ended is not None and ended.at >= at:
            return set()  # late news of a contact that has left
        if placed_by == "event":
            self.events_flow = True
        member = self._where.get(contact)
        routing_time = enqueued_at if enqueued_at is not None else at
        if member is not None:
            if member.queue == queue and member.placed_by == "describe":
                # DescribeContact placed it before its QUEUED arrived: the events know it now,
                # so it is shown like every contact they placed (its key stays: it has the
                # priority, which events do not carry).
                member.placed_by = "event"
                member.learnt_at = max(member.learnt_at, at)
                return {queue}
            if member.learnt_at > at or member.queue == queue:
                return set()  # older news, or a duplicate
            changed = self._take_out(member)  # transferred to another queue
        else:
            changed = set()
        self._put(
            Member(
                contact=contact,
                instance=instance,
                queue=queue,
                key=(DEFAULT_PRIORITY, routing_time, contact),
                placed_by=placed_by,
                learnt_at=at,
                enqueued_at=routing_time,
            )
        )
        return changed | {queue}

    def left(
        self, contact: str, at: float, reason: EndReason, *, queue: str | None = None
    ) -> set[str]:
        """The contact left its queue at `at` (connected to an agent, disconnected, or a poll
        said it is no longer queued); `queue` is the queue its end event names, if any.
        Returns the queues whose positions changed.

        The end of a contact that was never a member, in a line that counts unknown callers,
        is most likely one of them (its QUEUED event was lost): one is taken, from the
        front."""
        known = self.ended.get(contact)
        if known is None or at < known.at or (known.reason == "left_queue" != reason):
            # The earliest end is how the wait ended (CONNECTED_TO_AGENT comes before the
            # DISCONNECTED of the same call, whatever order they are delivered in).
            self.ended[contact] = Ended(at, reason)
            self.ended.move_to_end(contact)
            while len(self.ended) > MAX_ENDED:
                self.ended.popitem(last=False)
        member = self._where.get(contact)
        if member is None and known is None and queue is not None and queue in self.lines:
            line = self.lines[queue]
            if self._drain_unknown(line, None, 1, at) == 0:
                return {queue}
        if member is None or member.learnt_at > at:
            return set()
        line = self.lines[member.queue]
        if reason != "disconnected" and not member.suspect:
            line.departures.append(at)  # connected (or, from a poll, most likely so)
        if not member.suspect:
            # A count that dropped was put down to the front-most member (a guess); this end
            # is the departure it saw, so the guess was wrong: the back-most guess goes.
            guessed = [
                m
                for m in line
                if m.guessed_gone_at is not None and m.guessed_gone_at >= at - GUESS_WINDOW
            ]
            if guessed:
                guessed[-1].suspect, guessed[-1].guessed_gone_at = False, None
        return self._take_out(member)

    def described(
        self,
        contact: str,
        instance: str,
        queue: str,
        *,
        enqueued_at: float,
        priority: int | None,
        age_adjustment: float,
        at: float,
    ) -> set[str]:
        """DescribeContact's answer: the member's exact place in routing order."""
        if contact in self.ended:
            return set()
        member = self._where.get(contact)
        changed: set[str] = set()
        if member is not None:
            changed = self._take_out(member)
        placed = Member(
            contact=contact,
            instance=instance,
            queue=queue,
            key=(priority or DEFAULT_PRIORITY, enqueued_at - age_adjustment, contact),
            placed_by="describe",
            learnt_at=member.learnt_at if member else float("-inf"),
            priority_known=priority is not None,
            enqueued_at=enqueued_at,
        )
        if member is not None:
            placed.read_at, placed.read_position = member.read_at, member.read_position
            placed.read_ewt = member.read_ewt
        # A member that was already in a line moves; it was not among anyone's unknown.
        self._put(placed, newly_known=member is None)
        return changed | {queue}

    def read(
        self,
        contact: str,
        instance: str,
        queue: str | None,
        position: int,
        ewt: int | None,
        *,
        at: float,
        now: float,
    ) -> ReadOutcome:
        """One GetContactMetrics answer for `contact`: `position - 1` contacts are ahead.

        A contact the book does not have yet (no event, not described) is placed where the
        read puts it, when its queue is known.
        """
        member = self._where.get(contact)
        if member is None:
            if queue is None or contact in self.ended:
                return ReadOutcome(error=0)
            member = self._place_by_position(contact, instance, queue, position, at)
            error = 0
            suspects: tuple[str, ...] = ()
        else:
            member.suspect, member.guessed_gone_at = False, None
            line = self.lines[member.queue]
            expected = self.positions(member.queue).get(contact, position)
            error = position - expected
            suspects = ()
            if error > 0:
                self._move_ahead(line, member, error)
            elif error < 0 and self._relocate_behind(line, member, -error):
                pass  # the count was right, the unknown contacts were misplaced
            elif error < 0:
                surplus = self._drain_unknown(line, member, -error, at)
                if surplus and _may_have_jumped(member):
                    # Events carry no priority: a new contact read further ahead than the
                    # book puts it most likely jumped the line. Move it; DescribeContact
                    # will confirm.
                    self._take_out(member)
                    member = self._place_by_position(contact, instance, line.queue, position, at)
                elif surplus:
                    suspects = self._mark_suspects(line, member, surplus, at)
        member.read_at, member.read_position, member.read_ewt = now, position, ewt
        line = self.lines[member.queue]
        line.confirmed_at = now
        if ewt is not None and position > 0:
            line.seconds_per_position = ewt / position
        return ReadOutcome(error=error, suspects=suspects)

    def figures(
        self, queue: str, waiting: int, oldest_age: float, *, at: float, now: float
    ) -> tuple[str, ...]:
        """GetCurrentMetricData for `queue`: `waiting` contacts in queue, the oldest enqueued
        `oldest_age` seconds before `at`.

        Members enqueued before the oldest one still waiting have left: they become suspects
        (a read confirms; clocks may differ by a little, hence `CLOCK_TOLERANCE`). The unknown
        contacts are what `waiting` leaves over for them: when the book counts more, the
        surplus is drained from the front; when every waiting contact is a known member, the
        line is exact and is marked confirmed.

        Returns:
            The members newly presumed gone.
        """
        line = self.lines.get(queue)
        if line is None:
            return ()
        line.waiting = waiting
        line.oldest_at = at - oldest_age if waiting > 0 else None
        suspects: list[str] = []
        offset = self._clock.offset()
        front = next((m for m in line if not m.suspect), None)
        if (
            front is not None
            and front.enqueued_at is not None
            and front.unknown_before == 0
            and (front.placed_by == "event" or front.read_position == 1)
            and waiting > 0
        ):
            # Only a front member known to head the line (by events, or read first) makes a
            # sample: with unknown callers ahead of it the sample would be biased.
            self._clock.observe(at - oldest_age - front.enqueued_at)
        if waiting == 0:
            cutoff: float | None = math.inf  # nobody waits: everyone here has left
        elif offset is None:
            cutoff = None  # Connect's clock is not known yet: no member can be judged
        else:
            cutoff = at - offset - oldest_age - CLOCK_TOLERANCE
        for member in line:
            if (
                cutoff is not None
                and not member.suspect
                and member.enqueued_at is not None
                and member.enqueued_at < cutoff
            ):
                member.suspect = True
                suspects.append(member.contact)
        known = sum(1 for m in line if not m.suspect)
        unknown = sum(m.unknown_before for m in line)
        surplus = known + unknown - waiting
        if surplus <= 0:
            line.surplus_since = None
        elif self._members_first(line) and at - (line.surplus_since or at) < SURPLUS_GRACE:
            # Most likely a member whose end event is on its way (an abandon, out of turn):
            # it will say who. Guessing now moved the wrong callers: the front-most member
            # taken for gone, or the one unknown caller (a lost QUEUED's) dropped again at
            # every departure, everyone behind it shown a place too far ahead for 3-11 s.
            line.surplus_since = line.surplus_since or at
        else:
            line.surplus_since = None
            surplus = self._drain_unknown(line, None, surplus, at)
            # More known members than wait: the front-most are most likely gone already.
            suspects.extend(self._mark_suspects(line, None, surplus, at))
        if known >= waiting:
            line.confirmed_at = now
        return tuple(suspects)

    def listed(
        self,
        queue: str,
        instance: str,
        waiting: list[tuple[str, float]],
        *,
        seen_at: float,
    ) -> set[str]:
        """Contacts a listing (SearchContacts) shows waiting in `queue`, as `(contact, enqueue
        time)`; `seen_at` is our wall time the listing's index showed.

        A listing is no roll-call: Amazon Connect does not list queued voice contacts (only
        chat, tasks and email), and its index lags. So it only adds: contacts not yet members
        join (like a QUEUED event), a member placed by a read alone gets its own enqueue time,
        and a member a count guessed gone before `seen_at` is not.

        Returns:
            The queues whose positions changed.
        """
        changed: set[str] = set()
        for contact, enqueued_at in waiting:
            member = self._where.get(contact)
            if member is None or member.queue != queue:
                changed |= self.queued(
                    contact,
                    instance,
                    queue,
                    enqueued_at,
                    enqueued_at=enqueued_at,
                    placed_by="search",
                )
                continue
            if member.enqueued_at is None:
                # Placed by a read, its routing key borrowed from its neighbours: now its own.
                line = self.lines[queue]
                line.remove(member)
                member.key = (member.key[0], enqueued_at, contact)
                member.enqueued_at = enqueued_at
                line.insert(member)
                changed.add(queue)
            if member.guessed_gone_at is not None and member.guessed_gone_at < seen_at:
                member.suspect = False  # the count's guess was wrong: it still waits
                member.guessed_gone_at = None
                changed.add(queue)
        return changed

    def confirmed(self, queue: str, now: float) -> None:
        """News of `queue` arrived that the book took in (an event): it is current."""
        line = self.lines.get(queue)
        if line is not None:
            line.confirmed_at = now

    # -- internals -------------------------------------------------------------------------

    def _put(self, member: Member, *, newly_known: bool = True) -> None:
        line = self.lines.get(member.queue)
        if line is None:
            line = self.lines[member.queue] = Line(member.queue)
        line.insert(member)
        self._where[member.contact] = member
        if newly_known and member.placed_by != "read":
            self._now_known(line, member)

    def _now_known(self, line: Line, member: Member) -> None:
        """`member` was waiting, so reads behind it counted it among the unknown contacts:
        it leaves that count, and the rest of that gap is shared out by enqueue time."""
        i = line.index(member)
        before = line.members[line.keys[i - 1]] if i > 0 else None
        for key in line.keys[i + 1 :]:
            holder = line.members[key]
            if holder.unknown_before > 0:
                holder.unknown_before -= 1
                break
        else:
            return
        if holder is not line.members[line.keys[i + 1]] or member.enqueued_at is None:
            return  # the gap is not the one this member sits in: nothing to share
        start = before.enqueued_at if before is not None else None
        end = holder.enqueued_at
        if start is None or end is None or end <= start:
            return
        share = (member.enqueued_at - start) / (end - start)
        moved = round(holder.unknown_before * min(1.0, max(0.0, share)))
        holder.unknown_before -= moved
        member.unknown_before += moved

    def _take_out(self, member: Member) -> set[str]:
        line = self.lines[member.queue]
        behind = line.remove(member)
        if behind is not None:
            # The unknown contacts in front of the one who left are now in front of the next.
            behind.unknown_before += member.unknown_before
        del self._where[member.contact]
        if not line.keys:
            del self.lines[member.queue]
        return {member.queue}

    def _place_by_position(
        self, contact: str, instance: str, queue: str, position: int, at: float
    ) -> Member:
        """Insert a member at the place that gives it `position`. Its routing key (it has none
        of its own yet) is the estimated enqueue time when the members ahead of that fit the
        position, else borrowed from the neighbours that give it the position."""
        line = self.lines.get(queue)
        guess = self._estimated_enqueue(line, position, at)
        if line is not None and guess is not None:
            key = (DEFAULT_PRIORITY, guess, contact)
            i = bisect.bisect_left(line.keys, key)
            counted = sum(
                m.unknown_before + (0 if m.suspect else 1)
                for m in (line.members[k] for k in line.keys[:i])
            )
            following = line.members[line.keys[i]] if i < len(line.keys) else None
            gap = position - 1 - counted
            # Only where the gap it lands in holds it and the unknown callers before it (the
            # next member's read counted them): else the counts would no longer add up.
            if gap >= 0 and (following is None or following.unknown_before >= gap + 1):
                return self._insert_read(
                    contact,
                    instance,
                    queue,
                    key,
                    unknown_before=gap,
                    after=following,
                )
        ahead = 0
        before: Member | None = None
        after: Member | None = None
        unknown_before = position - 1
        if line is not None:
            for candidate in line:
                counted = candidate.unknown_before + (0 if candidate.suspect else 1)
                if ahead + counted > position - 1:
                    after = candidate
                    break
                ahead += counted
                before = candidate
            unknown_before = max(0, position - 1 - ahead)
        key = _key_between(before, after, contact, at if guess is None else guess)
        return self._insert_read(
            contact, instance, queue, key, unknown_before=unknown_before, after=after
        )

    def _insert_read(
        self,
        contact: str,
        instance: str,
        queue: str,
        key: tuple[int, float, str],
        *,
        unknown_before: int,
        after: Member | None,
    ) -> Member:
        member = Member(
            contact=contact,
            instance=instance,
            queue=queue,
            key=key,
            placed_by="read",
            learnt_at=float("-inf"),
            unknown_before=unknown_before,
        )
        if after is not None:
            # Its own gap comes out of the next member's, and it was one of those unknown.
            after.unknown_before = max(0, after.unknown_before - unknown_before - 1)
        self._put(member)
        return member

    def _estimated_enqueue(self, line: Line | None, position: int, at: float) -> float | None:
        """Connect's enqueue time of a contact read at `position`, when nothing else tells
        it: callers arrive about evenly, so the p-th of N waiting was enqueued about (p-1)/N
        of the way from the oldest to now. A routing key that is only a guess, but one that
        orders it about right among the members DescribeContact places later (the time of
        the read itself would put it behind all of them)."""
        if line is None or line.oldest_at is None or not line.waiting:
            return None
        oldest = line.oldest_at - (self._clock.offset() or 0.0)
        now = at - (self._clock.offset() or 0.0)
        share = min(1.0, (position - 1) / max(line.waiting, position))
        return oldest + share * max(0.0, now - oldest)

    def _move_ahead(self, line: Line, reader: Member, extra: int) -> None:
        """`extra` more contacts are ahead of `reader` than the book counts. Unknown contacts
        counted behind it (by reads further back, which could not tell where they wait) are
        the likeliest: move those first, nearest first; only the rest are new."""
        start = line.index(reader) + 1
        for key in line.keys[start:]:
            if extra <= 0:
                break
            holder = line.members[key]
            moved = min(holder.unknown_before, extra)
            holder.unknown_before -= moved
            extra -= moved
            reader.unknown_before += moved
        reader.unknown_before += max(0, extra)

    def _relocate_behind(self, line: Line, reader: Member, fewer: int) -> bool:
        """`fewer` contacts are ahead of `reader` than the book counts, and the queue-level
        count says nobody left: the unknown ones the book put in front of `reader` wait
        behind it. Returns False when that does not explain it (someone left)."""
        if line.waiting is None:
            return False
        counted = sum(1 for m in line if not m.suspect) + sum(m.unknown_before for m in line)
        if counted > line.waiting:
            return False
        i = line.index(reader)
        ahead = [line.members[k] for k in line.keys[: i + 1]]
        if sum(m.unknown_before for m in ahead) < fewer:
            return False
        behind = line.members[line.keys[i + 1]] if i + 1 < len(line.keys) else None
        for member in reversed(ahead):  # nearest first
            moved = min(member.unknown_before, fewer)
            member.unknown_before -= moved
            fewer -= moved
            if behind is not None:
                behind.unknown_before += moved
            if fewer <= 0:
                break
        return True

    def _members_first(self, line: Line) -> bool:
        """Whether members' ends are announced here: contact events flow, and unknown callers
        are few (a lost QUEUED event's) beside the members they placed."""
        if not self.events_flow:
            return False
        unknown = sum(m.unknown_before for m in line)
        return unknown * UNKNOWN_FEW < len(line)

    def _drain_unknown(self, line: Line, reader: Member | None, surplus: int, at: float) -> int:
        """`surplus` fewer contacts are ahead of `reader` than the book counts: take unknown
        ones from the front (served first; counted as served). Returns what is left over."""
        for member in line:
            if surplus <= 0:
                break
            taken = min(member.unknown_before, surplus)  # the reader's own are ahead of it too
            member.unknown_before -= taken
            surplus -= taken
            line.departures.extend([at] * taken)
            if member is reader:
                break
        return surplus

    def _mark_suspects(
        self, line: Line, reader: Member | None, surplus: int, at: float
    ) -> tuple[str, ...]:
        """Known members in front of `reader` that are most likely gone: the front-most."""
        suspects: list[str] = []
        for member in line:
            if member is reader or surplus <= 0:
                break
            if not member.suspect:
                member.suspect = True
                member.guessed_gone_at = at
                suspects.append(member.contact)
                surplus -= 1
        return tuple(suspects)


def _may_have_jumped(member: Member) -> bool:
    """Placed by its QUEUED event or a listing alone (no priority known, never read): its place
    is a guess."""
    return (
        member.placed_by in ("event", "search")
        and not member.priority_known
        and member.read_at is None
    )


def _key_between(
    before: Member | None, after: Member | None, contact: str, guess: float
) -> tuple[int, float, str]:
    """A routing key between two neighbours, as near `guess` (a routing time) as they allow."""
    if before is None and after is None:
        return (DEFAULT_PRIORITY, guess, contact)
    if before is None:
        assert after is not None
        return (after.key[0], min(guess, after.key[1] - 1e-3), contact)
    if after is None or after.key[0] != before.key[0]:
        return (before.key[0], max(guess, before.key[1] + 1e-3), contact)
    low, high = before.key[1], after.key[1]
    if low < guess < high:
        return (before.key[0], guess, contact)
    return (before.key[0], (low + high) / 2, contact)
