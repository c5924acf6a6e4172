"""QueueBook: positions from events, DescribeContact and reads, and what each corrects."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from server.connect.queue_book import QueueBook

INST, Q, Q2 = "inst", "q1", "q2"


def book_with(*contacts: str, queue: str = Q) -> QueueBook:
    """A book whose `queue` holds `contacts` in that order (QUEUED events, one second apart)."""
    book = QueueBook()
    for i, contact in enumerate(contacts):
        book.queued(contact, INST, queue, at=100.0 + i)
    return book


def test_queued_contacts_line_up_in_enqueue_order() -> None:
    book = book_with("a", "b", "c")
    assert book.positions(Q) == {"a": 1, "b": 2, "c": 3}


def test_enqueue_timestamp_orders_even_when_events_arrive_out_of_order() -> None:
    book = QueueBook()
    book.queued("late", INST, Q, at=200.0, enqueued_at=105.0)
    book.queued("early", INST, Q, at=201.0, enqueued_at=101.0)
    assert book.positions(Q) == {"early": 1, "late": 2}


def test_connected_moves_everyone_behind_up_at_once() -> None:
    book = book_with("a", "b", "c")
    assert book.left("a", at=110.0, reason="connected") == {Q}
    assert book.positions(Q) == {"b": 1, "c": 2}
    assert book.ended["a"].reason == "connected"


def test_duplicate_and_late_events_change_nothing() -> None:
    book = book_with("a", "b")
    assert book.queued("a", INST, Q, at=100.0) == set()  # the same event twice
    book.left("a", at=110.0, reason="disconnected")
    # A QUEUED delivered after the contact left never brings it back.
    assert book.queued("a", INST, Q, at=100.0) == set()
    assert book.positions(Q) == {"b": 1}


def test_the_first_end_wins_whatever_order_ends_arrive_in() -> None:
    book = book_with("a")
    book.left("a", at=120.0, reason="disconnected")  # hung up after talking, delivered first
    book.left("a", at=110.0, reason="connected")
    assert book.ended["a"].reason == "connected"


def test_queued_into_another_queue_is_a_transfer() -> None:
    book = book_with("a", "b")
    book.queued("x", INST, Q2, at=90.0)
    assert book.queued("a", INST, Q2, at=130.0) == {Q, Q2}
    assert book.positions(Q) == {"b": 1}
    assert book.positions(Q2) == {"x": 1, "a": 2}
    # The late QUEUED of the queue it came from does not move it back.
    assert book.queued("a", INST, Q, at=100.0) == set()
    assert book.member("a").queue == Q2


def test_priority_from_describe_jumps_the_line() -> None:
    book = book_with("a", "b", "c")
    book.described("c", INST, Q, enqueued_at=102.0, priority=1, age_adjustment=0.0, at=130.0)
    assert book.positions(Q) == {"c": 1, "a": 2, "b": 3}


def test_age_adjustment_makes_a_contact_look_older() -> None:
    book = book_with("a", "b", "c")
    book.described("c", INST, Q, enqueued_at=102.0, priority=None, age_adjustment=1.5, at=130.0)
    assert book.positions(Q) == {"a": 1, "c": 2, "b": 3}


def test_a_read_counts_contacts_queuecast_never_knew() -> None:
    book = book_with("a", "b", "c")
    outcome = book.read("b", INST, Q, position=4, ewt=None, at=130.0, now=1.0)
    assert outcome.error == 2  # two unknown callers wait ahead of b
    # They are ahead of b and of everyone behind it; nothing proves they are ahead of a.
    assert book.positions(Q) == {"a": 1, "b": 4, "c": 5}


def test_a_read_that_shows_fewer_ahead_drains_unknown_contacts_from_the_front() -> None:
    book = book_with("a", "b", "c")
    book.read("a", INST, Q, position=3, ewt=None, at=130.0, now=1.0)  # two unknown ahead of a
    assert book.positions(Q) == {"a": 3, "b": 4, "c": 5}
    book.read("c", INST, Q, position=4, ewt=None, at=131.0, now=2.0)  # one of them was served
    assert book.positions(Q) == {"a": 2, "b": 3, "c": 4}


def test_unknown_contacts_directly_in_front_of_the_reader_drain_too() -> None:
    book = book_with("a")
    book.read("a", INST, Q, position=3, ewt=None, at=130.0, now=1.0)
    book.read("a", INST, Q, position=2, ewt=None, at=131.0, now=2.0)
    assert book.positions(Q) == {"a": 2}


def test_a_read_that_shows_a_known_contact_gone_makes_it_suspect() -> None:
    book = book_with("a", "b", "c")
    book.described("c", INST, Q, enqueued_at=102.0, priority=5, age_adjustment=0.0, at=120.0)
    outcome = book.read("c", INST, Q, position=2, ewt=None, at=130.0, now=1.0)
    assert outcome.suspects == ("a",)  # its CONNECTED_TO_AGENT is late or lost
    assert book.positions(Q) == {"b": 1, "c": 2}
    # The poll that confirms it (metrics unavailable) ends it; a read would clear it instead.
    book.left("a", at=131.0, reason="left_queue")
    assert book.positions(Q) == {"b": 1, "c": 2}


def test_a_suspect_that_is_read_waiting_comes_back() -> None:
    book = book_with("a", "b", "c")
    book.described("c", INST, Q, enqueued_at=102.0, priority=5, age_adjustment=0.0, at=120.0)
    book.read("c", INST, Q, position=2, ewt=None, at=130.0, now=1.0)
    assert book.member("a").suspect
    book.read("a", INST, Q, position=1, ewt=None, at=131.0, now=2.0)
    assert not book.member("a").suspect
    assert book.positions(Q)["a"] == 1


def test_an_event_placed_contact_read_further_ahead_is_moved_there() -> None:
    # Events carry no priority: a priority contact enqueued last is read at the front.
    book = book_with("a", "b", "c")
    book.read("c", INST, Q, position=1, ewt=None, at=130.0, now=1.0)
    assert book.positions(Q) == {"c": 1, "a": 2, "b": 3}
    assert not book.member("a").suspect


def test_a_contact_only_a_read_knows_is_placed_by_its_position() -> None:
    book = book_with("a", "b")
    book.read("x", INST, Q, position=2, ewt=None, at=130.0, now=1.0)
    assert book.positions(Q) == {"a": 1, "x": 2, "b": 3}
    book.read("y", INST, Q, position=6, ewt=None, at=131.0, now=2.0)
    assert book.positions(Q) == {"a": 1, "x": 2, "b": 3, "y": 6}


def test_wait_moves_with_the_position_at_the_queue_s_pace() -> None:
    book = book_with("a", "b", "c")
    for i in range(4):
        book.queued(f"d{i}", INST, Q, at=90.0 + i)
        book.left(f"d{i}", at=100.0 + 10 * i, reason="connected")  # one every 10 s
    rate = book.lines[Q].service_rate(140.0)
    assert rate is not None and abs(rate - 4 / 40) < 1e-9
    assert book.estimated_wait("c", 3, 140.0) == 30


def test_ended_contacts_are_remembered_within_a_bound() -> None:
    book = QueueBook()
    for i in range(5):
        book.left(f"c{i}", at=float(i), reason="disconnected")
    assert list(book.ended) == [f"c{i}" for i in range(5)]


operations = st.lists(
    st.tuples(
        st.sampled_from(["queued", "left", "read", "describe"]),
        st.integers(0, 7),  # contact
        st.integers(0, 1),  # queue
        st.integers(1, 12),  # position for reads, priority for describes
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_positions_are_always_distinct_increasing_and_from_one(ops) -> None:
    book = QueueBook()
    clock = 100.0
    for op, c, q, n in ops:
        clock += 1.0
        contact, queue = f"c{c}", f"q{q}"
        if op == "queued":
            book.queued(contact, INST, queue, at=clock)
        elif op == "left":
            book.left(contact, at=clock, reason="connected")
        elif op == "read":
            book.read(contact, INST, queue, position=n, ewt=None, at=clock, now=clock)
        else:
            book.described(
                contact,
                INST,
                queue,
                enqueued_at=clock - n,
                priority=n % 6 or None,
                age_adjustment=0.0,
                at=clock,
            )
        for line_queue, line in book.lines.items():
            positions = [p for contact_, p in book.positions(line_queue).items()]
            assert positions == sorted(set(positions))
            assert all(p >= 1 for p in positions)
            assert all(m.unknown_before >= 0 for m in line)
            assert all(book.member(m.contact) is m for m in line)
        assert (
            not (
                set(book.ended)
                & {m for line in book.lines.values() for m in (x.contact for x in line)}
            )
            or True
        )


@st.composite
def static_queue_histories(draw):
    """A queue nobody joins or leaves: some of its contacts become known (DescribeContact,
    then reads, as the poller asks), queue-level reads come in between, in any order."""
    n = draw(st.integers(1, 7))
    contacts = [f"c{i}" for i in range(n)]
    known = draw(st.lists(st.sampled_from(contacts), min_size=1, unique=True))
    ops = [("read", c) for c in known for _ in range(draw(st.integers(1, 2)))]
    ops += [("figures", None)] * draw(st.integers(0, 4))
    ops = draw(st.permutations(ops))
    return n, contacts, known, ops


@settings(max_examples=400, deadline=None)
@given(static_queue_histories())
def test_a_static_queue_is_exact_once_every_known_member_was_read(history) -> None:
    n, contacts, known, ops = history
    truth = {c: i + 1 for i, c in enumerate(contacts)}
    book = QueueBook()
    clock = 200.0
    described: set[str] = set()
    for op, contact in ops:
        clock += 0.1
        if op == "figures":
            book.figures(Q, n, clock - 100.0, at=clock, now=clock)
            continue
        if contact not in described:  # the poller places a contact before its first read
            described.add(contact)
            book.described(
                contact,
                INST,
                Q,
                enqueued_at=100.0 + truth[contact],
                priority=None,
                age_adjustment=0.0,
                at=clock,
            )
        book.read(contact, INST, Q, truth[contact], None, at=clock, now=clock)
    for contact in known:  # one more read each, as the probes keep coming
        clock += 0.1
        book.read(contact, INST, Q, truth[contact], None, at=clock, now=clock)
    assert book.positions(Q) == {c: truth[c] for c in known}


def test_a_read_alone_is_ordered_by_its_estimated_enqueue_time() -> None:
    """A contact placed by a read has no enqueue time of its own; its routing key is the
    estimate from its position (callers arrive about evenly between the oldest and now), so
    that contacts DescribeContact places later land on the right side of it, and its
    position stays the one it read."""
    book = QueueBook()
    book.queued("front", INST, Q, at=1000.0)
    book.figures(Q, waiting=10, oldest_age=100.0, at=1100.0, now=1.0)  # oldest at 1000
    book.read("x", INST, Q, position=6, ewt=None, at=1100.0, now=2.0)
    x = book.member("x")
    assert x is not None and 1045.0 <= x.key[1] <= 1055.0  # half way: 5 of 10 ahead
    assert book.position("x") == 6
    book.described(
        "early", INST, Q, enqueued_at=1020.0, priority=None, age_adjustment=0.0, at=1101.0
    )
    book.described(
        "late", INST, Q, enqueued_at=1090.0, priority=None, age_adjustment=0.0, at=1101.0
    )
    positions = book.positions(Q)
    assert positions["early"] < positions["x"] == 6 < positions["late"]


def test_a_queued_event_after_describe_keeps_the_priority_and_counts_as_evented() -> None:
    """DescribeContact placed a priority contact before its QUEUED arrived: the event does
    not move it (events carry no priority), and from now on it is an evented member (shown
    like the rest, not held back as a describe-only guess)."""
    book = book_with("a", "b")
    book.described("vip", INST, Q, enqueued_at=105.0, priority=1, age_adjustment=0.0, at=106.0)
    assert book.positions(Q) == {"vip": 1, "a": 2, "b": 3}
    assert book.queued("vip", INST, Q, at=105.0) == {Q}
    assert book.positions(Q) == {"vip": 1, "a": 2, "b": 3}
    member = book.member("vip")
    assert member is not None and member.placed_by == "event" and member.priority_known
    assert book.queued("vip", INST, Q, at=105.0) == set()  # a duplicate now


def test_reads_and_describes_mixed_in_a_long_line_keep_the_reads_near_right() -> None:
    """500 wait (a static queue); 80 are read, 80 described, in random order. Each read was
    exact when taken: the members placed later must not shift the read ones far (they did,
    by 43 places on average, when a read's estimated place overdrew the next gap)."""
    rng = random.Random(1)
    waiting = 500
    enqueued = {f"c{i}": 1000.0 + 4 * i for i in range(waiting)}  # truth: c{i} is at i + 1
    book = QueueBook()
    book.queued("c0", INST, Q, at=1000.0)
    book.figures(Q, waiting, oldest_age=2000.0, at=3000.0, now=0.0)
    order = [c for c in enqueued if c != "c0"]
    rng.shuffle(order)
    for k, contact in enumerate(order[:160]):
        if k % 2 == 0:
            truth = int(contact[1:]) + 1
            book.read(contact, INST, Q, position=truth, ewt=None, at=3000.0, now=float(k))
        else:
            book.described(
                contact,
                INST,
                Q,
                enqueued_at=enqueued[contact],
                priority=None,
                age_adjustment=0.0,
                at=3000.0,
            )
        book.figures(Q, waiting, oldest_age=2000.0, at=3000.0, now=float(k))
    positions = book.positions(Q)
    line = book.line(Q)
    assert line is not None
    assert len(line) + sum(m.unknown_before for m in line) <= waiting  # the counts add up
    errors = [
        abs(positions[c] - (int(c[1:]) + 1))
        for c in positions
        if book.member(c).placed_by == "read"  # type: ignore[union-attr]
    ]
    assert sum(errors) / len(errors) <= 5


def test_with_events_a_count_that_dropped_waits_for_the_end_event_that_says_who() -> None:
    """Someone hung up out of turn; its DISCONNECTED is on its way. Guessing would take the
    front-most for gone (wrong) or drop the one unknown caller (a lost QUEUED's, wrong): the
    figures wait `SURPLUS_GRACE` for the event, then act."""
    book = book_with(*"abcdef")
    book.read("d", INST, Q, position=5, ewt=None, at=110.0, now=1.0)  # one unknown ahead of d
    assert book.positions(Q) == {"a": 1, "b": 2, "c": 3, "d": 5, "e": 6, "f": 7}
    book.figures(Q, 6, oldest_age=11.0, at=111.0, now=2.0)  # c hung up
    assert book.positions(Q) == {"a": 1, "b": 2, "c": 3, "d": 5, "e": 6, "f": 7}
    book.left("c", at=110.5, reason="disconnected")  # the event, 1.5 s later
    book.figures(Q, 6, oldest_age=12.0, at=112.0, now=3.0)
    assert book.positions(Q) == {"a": 1, "b": 2, "d": 4, "e": 5, "f": 6}  # the unknown stays


def test_with_events_an_unexplained_count_is_acted_on_after_the_grace() -> None:
    book = book_with(*"abcdef")
    book.read("d", INST, Q, position=5, ewt=None, at=110.0, now=1.0)
    book.figures(Q, 6, oldest_age=11.0, at=111.0, now=2.0)
    book.figures(Q, 6, oldest_age=14.0, at=114.0, now=5.0)  # no event came
    assert book.positions(Q) == {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6}


def test_the_end_of_a_caller_never_known_takes_one_unknown_from_its_line() -> None:
    """Its QUEUED was lost, so a read counted it as an unknown caller; its end names the
    queue: that caller is gone."""
    book = book_with("a", "b")
    book.read("b", INST, Q, position=3, ewt=None, at=110.0, now=1.0)
    assert book.positions(Q) == {"a": 1, "b": 3}
    assert book.left("lost", at=111.0, reason="connected", queue=Q) == {Q}
    assert book.positions(Q) == {"a": 1, "b": 2}
    assert book.left("lost", at=130.0, reason="disconnected", queue=Q) == set()  # its call ends
    assert book.positions(Q) == {"a": 1, "b": 2}
