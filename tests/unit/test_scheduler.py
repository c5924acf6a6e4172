"""PollScheduler with the local Budget on a simulated clock: budget, fairness, membership
and AIMD on throttling (the poller asks the budget after the scheduler picks a contact)."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.connect.budget import LocalBudget
from server.connect.scheduler import PollScheduler as Scheduler

EPS = 1e-6


class PollScheduler:
    """The scheduler paced by the local budget, as the poller drives the two."""

    def __init__(
        self, rate: float, burst: int, interval: float, now: float, recovery: float = 10.0
    ) -> None:
        self.inner = Scheduler(interval)
        self.budget = LocalBudget(rate, burst, now, recovery)
        self.configured_rate = rate
        self.interval = interval

    def __len__(self) -> int:
        return len(self.inner)

    def __contains__(self, key: str) -> bool:
        return key in self.inner

    def add(self, key: str, now: float) -> None:
        self.inner.add(key, now)

    def remove(self, key: str) -> None:
        self.inner.remove(key)

    def done(self, key: str, now: float, retry_in: float | None = None) -> None:
        self.inner.done(key, now, retry_in)

    @property
    def rate(self) -> float:
        return self.budget._bucket.rate

    def effective_interval(self) -> float:
        return self.inner.effective_interval(self.rate)

    def next_due(self, now: float) -> tuple[str | None, float]:
        self.budget.rate(now)  # the poller asks the rate at every turn (status, metrics)
        key, wait = self.inner.next_due(now)
        if key is None:
            return key, wait
        wait = self.budget.take_now(now)
        if wait > 0:
            self.inner.give_back(key)
            return None, wait
        return key, 0.0

    def throttled(self, now: float) -> None:
        self.budget.throttle_now(now)


def assert_within_budget(takes: list[float], rate: float, burst: int) -> None:
    """No window [takes[i], takes[j]] holds more requests than the bucket allows."""
    takes = sorted(takes)
    for i in range(len(takes)):
        for j in range(i, len(takes)):
            allowed = burst + rate * (takes[j] - takes[i]) + EPS
            assert j - i + 1 <= allowed, (
                f"{j - i + 1} requests in {takes[j] - takes[i]:.3f}s exceeds {allowed:.3f}"
            )


class Simulation:
    """Drives a scheduler the way the poller does: poll what is due, finish after `duration`."""

    def __init__(self, scheduler: PollScheduler, duration: float = 0.05) -> None:
        self.scheduler = scheduler
        self.duration = duration
        self.now = 0.0
        self.polls: dict[str, list[float]] = defaultdict(list)
        self.takes: list[float] = []
        self.order: list[str] = []
        self._finishing: list[tuple[float, str]] = []

    def run_until(self, end: float) -> None:
        while self.now < end:
            self._finish_due()
            key, wait = self.scheduler.next_due(self.now)
            if key is not None:
                self.polls[key].append(self.now)
                self.takes.append(self.now)
                self.order.append(key)
                self._finishing.append((self.now + self.duration, key))
                continue
            finishing = [t for t, _ in self._finishing]
            self.now = min([self.now + max(wait, EPS), *finishing, end])

    def gaps(self, key: str, since: float = -math.inf) -> list[float]:
        times = [t for t in self.polls[key] if t > since]
        return [b - a for a, b in itertools.pairwise(times)]

    def _finish_due(self) -> None:
        still = []
        for t, key in self._finishing:
            if t <= self.now:
                self.scheduler.done(key, self.now)
            else:
                still.append((t, key))
        self._finishing = still


def keys(n: int) -> list[str]:
    return [f"c{i:03d}" for i in range(n)]


def simulate(n: int, duration: float, **config) -> Simulation:
    """A scheduler with `n` keys added at time 0, driven by a Simulation."""
    scheduler = PollScheduler(now=0, **config)
    for key in keys(n):
        scheduler.add(key, 0)
    return Simulation(scheduler, duration=duration)


def test_empty_scheduler_waits_forever() -> None:
    scheduler = PollScheduler(rate=2, burst=5, interval=2, now=0)
    assert scheduler.next_due(0) == (None, math.inf)
    assert len(scheduler) == 0


def test_added_key_is_due_now_then_after_interval() -> None:
    scheduler = PollScheduler(rate=2, burst=5, interval=2, now=0)
    scheduler.add("a", 0)
    assert scheduler.next_due(0) == ("a", 0.0)
    assert scheduler.next_due(0) == (None, math.inf)  # in flight, nothing else
    scheduler.done("a", 0.3)
    key, wait = scheduler.next_due(1.0)
    assert key is None
    assert wait == pytest.approx(1.3)
    assert scheduler.next_due(2.3) == ("a", 0.0)


def test_add_is_idempotent_while_due_or_in_flight() -> None:
    scheduler = PollScheduler(rate=100, burst=100, interval=2, now=0)
    scheduler.add("a", 0)
    scheduler.add("a", 0)
    assert len(scheduler) == 1
    assert scheduler.next_due(0)[0] == "a"
    scheduler.add("a", 0)  # in flight: no second entry
    assert scheduler.next_due(0) == (None, math.inf)
    assert len(scheduler) == 1
    assert "a" in scheduler


def test_burst_then_rate() -> None:
    scheduler = PollScheduler(rate=2, burst=5, interval=100, now=0)
    for key in keys(10):
        scheduler.add(key, 0)
    taken = []
    while (key := scheduler.next_due(0)[0]) is not None:
        taken.append(key)
    # The burst may be spent at once (the scheduler may keep a token of it in reserve).
    assert 1 <= len(taken) <= 5
    assert taken == keys(len(taken))  # earliest-due first, ties in insertion order
    key, wait = scheduler.next_due(0)
    assert key is None
    assert wait == pytest.approx(0.5)
    assert scheduler.next_due(0.5)[0] == keys(10)[len(taken)]


def test_remove_waiting_key_is_never_polled() -> None:
    scheduler = PollScheduler(rate=2, burst=5, interval=2, now=0)
    scheduler.add("a", 0)
    scheduler.add("b", 0)
    scheduler.remove("a")
    assert "a" not in scheduler
    assert len(scheduler) == 1
    assert scheduler.next_due(0)[0] == "b"
    assert scheduler.next_due(0) == (None, math.inf)


def test_remove_in_flight_is_not_readded_by_done() -> None:
    scheduler = PollScheduler(rate=2, burst=5, interval=2, now=0)
    scheduler.add("a", 0)
    assert scheduler.next_due(0)[0] == "a"
    scheduler.remove("a")
    assert "a" not in scheduler
    assert len(scheduler) == 0
    scheduler.done("a", 1)
    assert "a" not in scheduler
    assert len(scheduler) == 0
    assert scheduler.next_due(100) == (None, math.inf)


def test_remove_then_add_while_in_flight_keeps_it() -> None:
    scheduler = PollScheduler(rate=2, burst=5, interval=2, now=0)
    scheduler.add("a", 0)
    scheduler.next_due(0)
    scheduler.remove("a")
    scheduler.add("a", 0.5)
    assert "a" in scheduler
    assert len(scheduler) == 1
    scheduler.done("a", 1)
    assert scheduler.next_due(3.0) == ("a", 0.0)


def test_remove_then_readd_waiting_key_is_polled_once() -> None:
    scheduler = PollScheduler(rate=100, burst=100, interval=2, now=0)
    scheduler.add("a", 0)
    scheduler.remove("a")
    scheduler.add("a", 0)  # a stale heap entry with the same due time remains
    assert scheduler.next_due(0)[0] == "a"
    assert scheduler.next_due(0) == (None, math.inf)
    assert len(scheduler) == 1


def test_retry_in_overrides_interval() -> None:
    scheduler = PollScheduler(rate=2, burst=5, interval=2, now=0)
    scheduler.add("a", 0)
    scheduler.next_due(0)
    scheduler.done("a", 1, retry_in=7)
    key, wait = scheduler.next_due(1)
    assert key is None
    assert wait == pytest.approx(7)
    assert scheduler.next_due(7.9)[0] is None
    assert scheduler.next_due(8)[0] == "a"
    scheduler.done("a", 8, retry_in=0.0)
    assert scheduler.next_due(8)[0] == "a"  # zero retry: due at once (tokens permitting)


def test_each_key_polled_at_most_every_interval_under_a_large_budget() -> None:
    sim = simulate(10, 0.1, rate=1000, burst=1000, interval=2)
    sim.run_until(60)
    for key in keys(10):
        gaps = sim.gaps(key)
        assert len(gaps) >= 24
        # Due `interval` after the poll *ended*.
        assert min(gaps) >= 2 + 0.1 - EPS
        assert max(gaps) <= 2 + 0.1 + EPS
    assert sim.scheduler.effective_interval() == 2


@pytest.mark.parametrize(("n", "rate", "burst"), [(20, 2, 5), (50, 2, 5), (13, 3, 1), (40, 10, 10)])
def test_overloaded_budget_stretches_interval_evenly(n, rate, burst) -> None:
    interval = 2.0
    assert n > rate * interval
    sim = simulate(n, 0.2, rate=rate, burst=burst, interval=interval)
    stretched = n / rate
    assert sim.scheduler.effective_interval() == pytest.approx(stretched)
    sim.run_until(10 * stretched)
    assert_within_budget(sim.takes, rate, burst)
    # Round-robin: every key polled, in the same order each round, earliest-due first.
    assert sim.order[:n] == keys(n)
    assert sim.order[n : 2 * n] == keys(n)
    for key in keys(n):
        gaps = sim.gaps(key)
        assert len(gaps) >= 8
        assert max(gaps) <= stretched + 1 / rate + EPS
        # After the first round (the burst lets a few go early) the spacing is even.
        assert min(gaps[1:]) >= stretched - 1 / rate - EPS


def test_adding_keys_later_still_serves_every_key() -> None:
    sim = simulate(10, 0.1, rate=2, burst=5, interval=2)
    sim.run_until(20)
    for key in keys(30)[10:]:
        sim.scheduler.add(key, sim.now)
    sim.run_until(120)
    assert_within_budget(sim.takes, 2, 5)
    for key in keys(30):
        gaps = sim.gaps(key, since=40)
        assert gaps
        assert max(gaps) <= 30 / 2 + 0.5 + EPS


# -- throttling ------------------------------------------------------------------------------


def test_throttled_halves_rate_and_empties_bucket() -> None:
    scheduler = PollScheduler(rate=4, burst=5, interval=1, now=0, recovery=10)
    scheduler.add("a", 0)
    scheduler.throttled(0)
    assert scheduler.rate == 2
    key, wait = scheduler.next_due(0)
    assert key is None
    assert wait == pytest.approx(0.5)  # bucket empty, one token at the halved rate
    assert scheduler.next_due(0.5)[0] == "a"


def test_throttled_floor_is_a_sixteenth_of_configured() -> None:
    scheduler = PollScheduler(rate=8, burst=5, interval=1, now=0)
    for _ in range(10):
        scheduler.throttled(0)
    assert scheduler.rate == pytest.approx(0.5)


def test_rate_recovers_linearly_within_recovery() -> None:
    scheduler = PollScheduler(rate=4, burst=5, interval=1, now=0, recovery=10)
    scheduler.throttled(100)
    assert scheduler.rate == 2
    for elapsed, expected in [(2.5, 2.5), (5, 3), (7.5, 3.5), (10, 4), (30, 4)]:
        scheduler.next_due(100 + elapsed)
        assert scheduler.rate == pytest.approx(expected)


def test_recovery_does_not_depend_on_how_often_it_is_observed() -> None:
    coarse = PollScheduler(rate=4, burst=5, interval=1, now=0, recovery=10)
    fine = PollScheduler(rate=4, burst=5, interval=1, now=0, recovery=10)
    coarse.throttled(0)
    fine.throttled(0)
    for i in range(1, 61):
        fine.next_due(i * 0.1)
    coarse.next_due(6.0)
    assert fine.rate == pytest.approx(coarse.rate)
    assert fine.rate == pytest.approx(3.2)


def test_throttled_while_recovering_halves_the_current_rate() -> None:
    scheduler = PollScheduler(rate=4, burst=5, interval=1, now=0, recovery=10)
    scheduler.throttled(0)
    scheduler.throttled(5)  # recovered to 3 by then, halved to 1.5
    assert scheduler.rate == pytest.approx(1.5)


def test_throttled_keeps_every_key_polled_within_the_reduced_budget() -> None:
    sim = simulate(8, 0.05, rate=4, burst=4, interval=1, recovery=20)
    sim.run_until(5)
    sim.scheduler.throttled(sim.now)
    start = sim.now
    sim.run_until(start + 10)
    after = [t for t in sim.takes if t > start]
    # Empty bucket, rate 2 then climbing to 3 over the 10 s: at most ∫rate dt requests.
    assert len(after) <= 2 * 10 + 0.5 * 0.1 * 10**2 + 1
    for key in keys(8):
        assert any(t > start for t in sim.polls[key])


# -- property: the budget holds whatever the poller does --------------------------------------

KEYS = ["a", "b", "c", "d", "e", "f"]

operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from(KEYS)),
        st.tuples(st.just("remove"), st.sampled_from(KEYS)),
        st.tuples(st.just("advance"), st.floats(min_value=0, max_value=3)),
        st.tuples(st.just("poll"), st.none()),
        st.tuples(st.just("done"), st.none() | st.floats(min_value=0, max_value=5)),
        st.tuples(st.just("throttled"), st.none()),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(
    ops=operations,
    rate=st.sampled_from([0.5, 1.0, 2.0, 5.0]),
    burst=st.integers(min_value=1, max_value=6),
    interval=st.sampled_from([0.5, 2.0, 3.0]),
)
def test_scheduler_invariants_hold_for_any_operation_sequence(ops, rate, burst, interval) -> None:
    now = 0.0
    scheduler = PollScheduler(rate=rate, burst=burst, interval=interval, now=now, recovery=5)
    members: set[str] = set()
    in_flight: list[str] = []
    removed_in_flight: set[str] = set()
    earliest_next: dict[str, float] = {}
    takes: list[float] = []

    for op, arg in ops:
        if op == "add":
            scheduler.add(arg, now)
            if arg not in members:
                earliest_next.setdefault(arg, now)
            members.add(arg)
            removed_in_flight.discard(arg)
        elif op == "remove":
            scheduler.remove(arg)
            members.discard(arg)
            if arg in in_flight:
                removed_in_flight.add(arg)
            else:
                earliest_next.pop(arg, None)
        elif op == "advance":
            now += arg
        elif op == "poll":
            key, wait = scheduler.next_due(now)
            if key is None:
                assert wait > 0
                continue
            assert wait == 0.0
            assert key in members, "polled a key that is not scheduled"
            assert key not in in_flight, "polled a key twice at once"
            assert now >= earliest_next[key] - EPS, "polled before it was due"
            in_flight.append(key)
            takes.append(now)
        elif op == "done" and in_flight:
            key = in_flight.pop(0)
            scheduler.done(key, now, retry_in=arg)
            if key in removed_in_flight or key not in members:
                removed_in_flight.discard(key)
                earliest_next.pop(key, None)
            else:
                earliest_next[key] = now + (interval if arg is None else arg)
        elif op == "throttled":
            scheduler.throttled(now)
        assert len(scheduler) == len(members)
        for key in KEYS:
            assert (key in scheduler) == (key in members)
        assert scheduler.rate <= rate + EPS
    assert_within_budget(takes, rate, burst)

    # Liveness: with nothing in flight, every member is eventually polled.
    for key in in_flight:
        scheduler.done(key, now)
        if key in members:
            earliest_next[key] = now + interval
    seen: set[str] = set()
    for _ in range(1000):
        if seen >= members:
            break
        key, wait = scheduler.next_due(now)
        if key is None:
            assert not math.isinf(wait) or not members
            now += max(wait, EPS)
        else:
            seen.add(key)
            scheduler.done(key, now)
    assert seen >= members
