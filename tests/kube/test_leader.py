"""Leader election: the pure decision, and candidates electing over HTTP on the fake API server."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client

from piclusterd.cluster.election import (
    Action,
    ElectionTimings,
    KubeLeaseStore,
    LeaseElector,
    LeaseKeepingSleep,
    LeaseRecord,
    LeaseStore,
    Reason,
    Transition,
    decide,
    observed_change_time,
    trusted_duration,
)
from piclusterd.core.errors import DaemonStopping, NotLeader
from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.sim.fake_clock import FakeClock

TIMINGS = ElectionTimings()  # 15 s / 10 s / 2 s
WALL = 1_800_000_000.0
LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/piclusterd/leases/piclusterd-leader"


def held(holder: str, *, duration: int = 15, transitions: int = 3) -> LeaseRecord:
    return LeaseRecord(holder, duration, WALL - 100, WALL - 5, transitions, "42")


# ---------------------------------------------------------------------------- pure decision


@pytest.mark.parametrize(
    ("duration", "is_node", "counted", "distrusted"),
    [
        (15, True, 15, False),
        (1, True, 1, False),  # a released lease's 1 s
        (150, True, 150, False),  # 10 x ours: still believed
        (151, True, 15, True),
        (2**31 - 1, True, 15, True),
        (0, True, 15, True),
        (-5, True, 15, True),
        (15, False, 15, True),  # a holder that is no node of ours
        (2**31 - 1, False, 15, True),
    ],
)
def test_trusted_duration(duration: int, is_node: bool, counted: int, distrusted: bool) -> None:
    got, why = trusted_duration(held("pi2", duration=duration), TIMINGS, is_node)
    assert got == counted and (why is not None) == distrusted


def test_an_absurd_lease_is_taken_over_after_our_duration() -> None:
    ghost = held("ghost", duration=2**31 - 1)
    waiting = decide(ghost, 100.0, 114.0, WALL, "pi1", TIMINGS, holder_is_node=False)
    assert waiting.action is Action.WAIT and waiting.expires_at == 115.0 and waiting.distrust
    assert decide(ghost, 100.0, 115.0, WALL, "pi1", TIMINGS, holder_is_node=False).action is Action.TAKE_OVER


def test_no_lease_is_created_held_by_us_with_no_transitions() -> None:
    decision = decide(None, 0.0, 50.0, WALL, "pi1", TIMINGS)
    assert decision.action is Action.CREATE and decision.reason is Reason.NO_LEASE
    assert decision.record == LeaseRecord("pi1", 15, WALL, WALL, 0, "")


@pytest.mark.parametrize(
    ("holder", "seconds_since_change", "action", "reason"),
    [
        ("pi1", 0.0, Action.RENEW, Reason.HELD_BY_US),
        ("pi1", 100.0, Action.RENEW, Reason.HELD_BY_US),
        ("pi2", 0.0, Action.WAIT, Reason.HELD_BY_OTHER),
        ("pi2", 14.999, Action.WAIT, Reason.HELD_BY_OTHER),
        ("pi2", 15.0, Action.TAKE_OVER, Reason.EXPIRED),
        ("pi2", 100.0, Action.TAKE_OVER, Reason.EXPIRED),
        ("", 0.0, Action.TAKE_OVER, Reason.RELEASED),
        ("", 100.0, Action.TAKE_OVER, Reason.RELEASED),
    ],
)
def test_decision_by_holder_and_time_since_the_record_changed(
    holder: str, seconds_since_change: float, action: Action, reason: Reason
) -> None:
    decision = decide(held(holder), 1_000.0, 1_000.0 + seconds_since_change, WALL, "pi1", TIMINGS)
    assert (decision.action, decision.reason) == (action, reason)


@pytest.mark.parametrize(
    ("holder_duration", "seconds", "action"),
    [(1, 0.5, Action.WAIT), (1, 1.0, Action.TAKE_OVER), (60, 59.0, Action.WAIT)],
)
def test_expiry_uses_the_holders_lease_duration_not_ours(holder_duration: int, seconds: float, action: Action) -> None:
    decision = decide(held("pi2", duration=holder_duration), 0.0, seconds, WALL, "pi1", TIMINGS)
    assert decision.action is action


def test_renewal_keeps_acquire_time_and_transitions() -> None:
    decision = decide(held("pi1"), 0.0, 3.0, WALL, "pi1", TIMINGS)
    assert decision.record == LeaseRecord("pi1", 15, WALL - 100, WALL, 3, "42")


def test_take_over_sets_acquire_time_and_counts_a_transition() -> None:
    decision = decide(held("pi2"), 0.0, 30.0, WALL, "pi1", TIMINGS)
    assert decision.record == LeaseRecord("pi1", 15, WALL, WALL, 4, "42")


def test_wait_says_when_the_other_lease_runs_out() -> None:
    assert decide(held("pi2"), 100.0, 101.0, WALL, "pi1", TIMINGS).expires_at == 115.0


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        (None, held("pi2"), 50.0),
        (held("pi2"), held("pi2"), 10.0),
        (held("pi2"), replace(held("pi2"), renew_time=WALL), 50.0),
        (held("pi2"), replace(held("pi2"), resource_version="43"), 10.0),  # e.g. a label changed
        (held("pi2"), held("pi3"), 50.0),
    ],
)
def test_time_of_the_last_observed_change(previous: LeaseRecord | None, current: LeaseRecord, expected: float) -> None:
    assert observed_change_time(previous, 10.0, current, 50.0) == expected


@pytest.mark.parametrize(
    ("lease", "renew", "retry", "message"),
    [
        (10, 10.0, 2.0, r"lease_duration_s \(10\) must be greater than renew_deadline_s \(10.0\)"),
        (15, 2.4, 2.0, r"renew_deadline_s \(2.4\) must be greater than 1.2 x retry_period_s \(2.0\)"),
        (15, 10.0, 0.0, r"retry_period_s must be a positive number"),
        (15.5, 10.0, 2.0, r"whole number of seconds"),
    ],
)
def test_timings_that_break_the_rules_are_refused(lease: int, renew: float, retry: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ElectionTimings(lease, renew, retry)


# ------------------------------------------------------------------------- over HTTP: helpers


@dataclass
class Candidate:
    elector: LeaseElector
    transitions: list[Transition]


@pytest.fixture
def candidates(kube: FakeKubeServer, clock: FakeClock) -> Iterator[Callable[..., Candidate]]:
    """Builds candidates on the fake server, each with its own ApiClient (no urllib3 retries)."""
    clients: list[client.ApiClient] = []

    def make(
        identity: str,
        *,
        wrap: Callable[[LeaseStore], LeaseStore] | None = None,
        timings: ElectionTimings = TIMINGS,
    ) -> Candidate:
        api = kube.api_client(retries=False)
        clients.append(api)
        store: LeaseStore = KubeLeaseStore(api)
        if wrap is not None:
            store = wrap(store)
        seen: list[Transition] = []
        elector = LeaseElector(
            store,
            clock,
            identity,
            timings=timings,
            on_transition=lambda change, _elector: seen.append(change),
        )
        return Candidate(elector, seen)

    yield make
    for api in clients:
        api.close()


def lease_spec(kube: FakeKubeServer) -> dict[str, object]:
    lease = kube.get_object("Lease", "piclusterd", "piclusterd-leader")
    assert lease is not None
    return dict(lease["spec"])


def leaders(cands: list[Candidate], clock: FakeClock) -> list[str]:
    now = clock.monotonic()
    return [c.elector.identity for c in cands if c.elector.is_leader(now)]


# --------------------------------------------------------------------------- over HTTP: tests


def test_first_try_creates_the_lease_and_leads(kube: FakeKubeServer, candidates: Callable[..., Candidate]) -> None:
    pi1 = candidates("pi1")
    attempt = pi1.elector.try_acquire_or_renew()
    assert attempt.leader and attempt.decision is not None and attempt.decision.action is Action.CREATE
    assert attempt.transition is Transition.ACQUIRED and pi1.transitions == [Transition.ACQUIRED]
    spec = lease_spec(kube)
    assert (spec["holderIdentity"], spec["leaseDurationSeconds"], spec["leaseTransitions"]) == ("pi1", 15, 0)


def test_lease_times_are_written_as_micro_time_even_on_a_whole_second(
    kube: FakeKubeServer, candidates: Callable[..., Candidate], clock: FakeClock
) -> None:
    assert clock.wall() == int(clock.wall())  # isoformat() would drop the fraction here
    assert candidates("pi1").elector.try_acquire_or_renew().leader
    spec = lease_spec(kube)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", str(spec["renewTime"]))


def test_a_long_step_renews_the_lease_once_per_retry_period_not_once_per_tick(
    kube: FakeKubeServer, candidates: Callable[..., Candidate], clock: FakeClock
) -> None:
    """A drain's keep-alive ticks every 0.5 s; the leader still writes its Lease once per retry period (2 s),
    as client-go's RetryPeriod, not four times as often (issue 17: API traffic during a drain)."""
    pi1 = candidates("pi1")
    assert pi1.elector.try_acquire_or_renew().leader
    start = len(kube.requests)
    for _ in range(40):  # 20 s of drain ticks
        clock.advance(0.5)
        pi1.elector.renew_when_due()
    writes = [r for r in kube.requests[start:] if r.path.startswith(LEASE_PATH) and r.method == "PUT"]
    assert len(writes) == 10
    assert pi1.elector.is_leader(clock.monotonic())


def test_a_long_steps_sleep_renews_the_lease_on_time_so_no_follower_takes_it_mid_step(
    kube: FakeKubeServer, candidates: Callable[..., Candidate], clock: FakeClock
) -> None:
    """The netns long night (1 run in 4): lease 4 s, renew deadline 3 s, retry period 2 s. A drain tick came just
    before the renewal was due, then the wait for acknowledgements slept 2 s per poll, so the next renewal came
    4 s after the last and a follower, reading the Lease every 0.5 s, took it over in the middle of the full
    shutdown. The step's sleep now renews when the renewal is due."""
    tight = ElectionTimings(4, 3.0, 2.0)
    leader, follower = candidates("pi1", timings=tight), candidates("pi2", timings=tight)

    def wait(seconds: float) -> bool:  # the follower's own loop goes on meanwhile: one attempt per 0.5 s
        while seconds > 0:
            clock.advance(min(0.5, seconds))
            seconds -= 0.5
            follower.elector.try_acquire_or_renew()
        return False

    sleep = LeaseKeepingSleep(leader.elector, clock, wait)
    assert leader.elector.try_acquire_or_renew().leader
    follower.elector.try_acquire_or_renew()
    wait(1.98)  # the drain's last tick, just before a renewal is due, renews nothing
    assert leader.elector.renew_when_due() is None
    wait(0.05)  # the power-off request's API calls
    for _ in range(10):  # 20 s of acknowledgement polls: sleep 2 s, tick, fence the next step
        sleep(2.0)
        leader.elector.renew_when_due()
        leader.elector.ensure_leader()
    assert lease_spec(kube)["holderIdentity"] == "pi1"
    assert follower.transitions == [] and leader.transitions == [Transition.ACQUIRED]


def test_a_long_steps_sleep_raises_daemon_stopping_when_the_daemon_stops(
    candidates: Callable[..., Candidate], clock: FakeClock
) -> None:
    sleep = LeaseKeepingSleep(candidates("pi1").elector, clock, lambda seconds: True)
    with pytest.raises(DaemonStopping):
        sleep(5.0)


def test_three_candidates_elect_exactly_one_leader_who_keeps_it(
    kube: FakeKubeServer, candidates: Callable[..., Candidate], clock: FakeClock
) -> None:
    cands = [candidates(name) for name in ("pi1", "pi2", "pi3")]
    for _ in range(30):  # one minute of retry periods
        for cand in cands:
            cand.elector.try_acquire_or_renew()
        assert leaders(cands, clock) == ["pi1"]
        clock.advance(TIMINGS.retry_period_s)
    spec = lease_spec(kube)
    assert spec["holderIdentity"] == "pi1" and spec["leaseTransitions"] == 0
    assert [c.transitions for c in cands] == [[Transition.ACQUIRED], [], []]


def test_a_dead_leader_is_replaced_after_the_lease_duration_and_not_before(
    kube: FakeKubeServer, candidates: Callable[..., Candidate], clock: FakeClock
) -> None:
    pi1, pi2 = candidates("pi1"), candidates("pi2")
    pi1.elector.try_acquire_or_renew()
    acquired_at = lease_spec(kube)["acquireTime"]
    pi2.elector.try_acquire_or_renew()  # pi2 sees pi1's record now; pi1 then dies
    clock.advance(14.9)
    attempt = pi2.elector.try_acquire_or_renew()
    assert not attempt.leader and attempt.decision is not None and attempt.decision.action is Action.WAIT
    clock.advance(0.1)
    attempt = pi2.elector.try_acquire_or_renew()
    assert attempt.leader and attempt.transition is Transition.ACQUIRED
    assert attempt.decision is not None and attempt.decision.reason is Reason.EXPIRED
    spec = lease_spec(kube)
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("pi2", 1)
    assert spec["acquireTime"] != acquired_at
    assert not pi1.elector.is_leader()


def test_a_renewing_leader_keeps_acquire_time_and_transitions(
    kube: FakeKubeServer, candidates: Callable[..., Candidate], clock: FakeClock
) -> None:
    pi1 = candidates("pi1")
    pi1.elector.try_acquire_or_renew()
    first = lease_spec(kube)
    clock.advance(2)
    pi1.elector.try_acquire_or_renew()
    second = lease_spec(kube)
    assert (second["acquireTime"], second["leaseTransitions"]) == (
        first["acquireTime"],
        first["leaseTransitions"],
    )
    assert second["renewTime"] != first["renewTime"]


class RaceFirst:
    """A LeaseStore that lets another candidate run a whole attempt between our read and our write."""

    def __init__(self, inner: LeaseStore, rival: Callable[[], object]) -> None:
        self._inner = inner
        self._rival = rival

    def get(self) -> LeaseRecord | None:
        return self._inner.get()

    def create(self, record: LeaseRecord) -> LeaseRecord:
        self._rival()
        return self._inner.create(record)

    def replace(self, record: LeaseRecord) -> LeaseRecord:
        self._rival()
        return self._inner.replace(record)


def test_the_loser_of_a_take_over_race_gets_a_409_and_does_not_lead(
    kube: FakeKubeServer, candidates: Callable[..., Candidate], clock: FakeClock
) -> None:
    pi1, pi2 = candidates("pi1"), candidates("pi2")
    pi1.elector.try_acquire_or_renew()
    pi2.elector.try_acquire_or_renew()
    pi3 = candidates("pi3", wrap=lambda inner: RaceFirst(inner, pi2.elector.try_acquire_or_renew))
    pi3.elector.try_acquire_or_renew()
    clock.advance(20)  # pi1 died; pi2 and pi3 both see its lease expired
    attempt = pi3.elector.try_acquire_or_renew()
    assert not attempt.leader and attempt.error is not None and "changed since" in attempt.error
    assert any(r.method == "PUT" and r.status == 409 for r in kube.requests)
    assert leaders([pi1, pi2, pi3], clock) == ["pi2"]


def test_the_loser_of_a_create_race_gets_a_409_and_does_not_lead(
    kube: FakeKubeServer, candidates: Callable[..., Candidate], clock: FakeClock
) -> None:
    pi1 = candidates("pi1")
    pi2 = candidates("pi2", wrap=lambda inner: RaceFirst(inner, pi1.elector.try_acquire_or_renew))
    attempt = pi2.elector.try_acquire_or_renew()
    assert not attempt.leader and attempt.error is not None and "already exists" in attempt.error
    assert leaders([pi1, pi2], clock) == ["pi1"]


def test_release_lets_another_candidate_take_over_at_once(
    kube: FakeKubeServer, candidates: Callable[..., Candidate], clock: FakeClock
) -> None:
    pi1, pi2 = candidates("pi1"), candidates("pi2")
    pi1.elector.try_acquire_or_renew()
    pi2.elector.try_acquire_or_renew()
    assert pi1.elector.release()
    assert pi1.transitions == [Transition.ACQUIRED, Transition.LOST]
    spec = lease_spec(kube)
    assert (spec["holderIdentity"], spec["leaseDurationSeconds"]) == ("", 1)
    attempt = pi2.elector.try_acquire_or_renew()  # same instant
    assert attempt.leader and attempt.decision is not None and attempt.decision.reason is Reason.RELEASED
    assert lease_spec(kube)["leaseTransitions"] == 1
    assert leaders([pi1, pi2], clock) == ["pi2"]


def test_release_by_a_candidate_not_holding_the_lease_writes_nothing(
    kube: FakeKubeServer, candidates: Callable[..., Candidate]
) -> None:
    pi1, pi2 = candidates("pi1"), candidates("pi2")
    pi1.elector.try_acquire_or_renew()
    pi2.elector.try_acquire_or_renew()
    kube.clear_requests()
    assert not pi2.elector.release()
    assert kube.requests == ()
    assert lease_spec(kube)["holderIdentity"] == "pi1"


@pytest.mark.parametrize("outage", ["http_500", "server_stopped"])
def test_a_leader_that_cannot_renew_stops_leading_at_the_renew_deadline(
    kube: FakeKubeServer, candidates: Callable[..., Candidate], clock: FakeClock, outage: str
) -> None:
    pi1 = candidates("pi1")
    pi1.elector.try_acquire_or_renew()
    if outage == "http_500":
        kube.fail_next(1000, 500, path=LEASE_PATH)
    elif outage == "server_stopped":
        kube.stop()
    for step in (2.5, 2.5, 2.5, 2.0):  # binary-exact, so 9.5 + 0.5 is exactly the deadline
        clock.advance(step)
        assert pi1.elector.try_acquire_or_renew().error is not None
    assert pi1.elector.is_leader()  # 9.5 s after the last renewal
    pi1.elector.ensure_leader()
    clock.advance(0.5)
    assert not pi1.elector.is_leader()
    with pytest.raises(NotLeader, match="renew deadline"):
        pi1.elector.ensure_leader()
    assert pi1.transitions == [Transition.ACQUIRED, Transition.LOST]  # the refused fence is the loss
    attempt = pi1.elector.try_acquire_or_renew()
    assert attempt.transition is None and not attempt.leader  # and it is reported once
    assert pi1.transitions == [Transition.ACQUIRED, Transition.LOST]


def test_a_leader_whose_api_comes_back_before_anyone_took_over_leads_again(
    kube: FakeKubeServer, candidates: Callable[..., Candidate], clock: FakeClock
) -> None:
    pi1 = candidates("pi1")
    pi1.elector.try_acquire_or_renew()
    kube.fail_next(6, 503, path=LEASE_PATH)
    for _ in range(6):
        clock.advance(2)
        pi1.elector.try_acquire_or_renew()
    assert not pi1.elector.is_leader()
    clock.advance(2)
    attempt = pi1.elector.try_acquire_or_renew()
    assert attempt.leader and attempt.transition is Transition.ACQUIRED
    assert pi1.transitions == [Transition.ACQUIRED, Transition.LOST, Transition.ACQUIRED]


def test_a_follower_knows_when_it_last_read_the_lease_from_an_answer_only(
    kube: FakeKubeServer, candidates: Callable[..., Candidate], clock: FakeClock
) -> None:
    """What live_holder() says is as old as lease_read_at: the critical-node gate looks again when that is older
    than the low battery (a leader elected a second before the battery fell was not known yet)."""
    pi2 = candidates("pi2")
    pi2.elector.try_acquire_or_renew()
    pi2.elector.release()  # nobody leads now
    pi1 = candidates("pi1")
    assert pi1.elector.lease_read_at is None and pi1.elector.live_holder() is None
    kube.fail_next(1, 503, path=LEASE_PATH)
    pi1.elector.try_acquire_or_renew()
    assert pi1.elector.lease_read_at is None  # a failed read is no look
    clock.advance(2)
    pi1.elector.try_acquire_or_renew()
    assert pi1.elector.lease_read_at == clock.monotonic()
    clock.advance(2)
    assert pi1.elector.renew_when_due() is not None  # the leader's own write (fast path) is a look too
    assert pi1.elector.lease_read_at == clock.monotonic()


def test_candidate_that_never_led_is_refused_by_the_fence(candidates: Callable[..., Candidate]) -> None:
    pi1, pi2 = candidates("pi1"), candidates("pi2")
    pi1.elector.try_acquire_or_renew()
    pi2.elector.try_acquire_or_renew()
    with pytest.raises(NotLeader, match="holder: pi1"):
        pi2.elector.ensure_leader()


# ------------------------------------------------------------------------------ the property

_lease_names = itertools.count()

Step = tuple[int, str, float]
steps = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(["try", "try", "try", "release", "kill", "api_error"]),
        st.sampled_from([0.0, 0.5, 1.0, 2.0, 2.5, 5.0, 9.5, 10.0, 14.5, 15.0, 15.5, 30.0]),
    ),
    max_size=30,
)


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FakeKubeServer]:
    with FakeKubeServer() as server:
        yield server


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps)
def test_two_candidates_never_both_believe_they_lead(shared_server: FakeKubeServer, script: list[Step]) -> None:
    clock = FakeClock(start=1000.0, epoch=1_800_000_000.0 - 1000.0)
    name = f"prop-{next(_lease_names)}"
    path = f"/apis/coordination.k8s.io/v1/namespaces/piclusterd/leases/{name}"
    apis = [shared_server.api_client(retries=False) for _ in range(3)]
    try:
        electors = [
            LeaseElector.on_kubernetes(api, clock, f"pi{index}", name=name, timings=TIMINGS)
            for index, api in enumerate(apis)
        ]
        alive = [True, True, True]
        for index, op, advance in script:
            clock.advance(advance)
            if not alive[index]:
                continue
            if op == "kill":
                alive[index] = False
            elif op == "release":
                electors[index].release()
            else:
                if op == "api_error":
                    shared_server.fail_next(1, 500, path=path)
                electors[index].try_acquire_or_renew()
            now = clock.monotonic()
            believers = [e.identity for e in electors if e.is_leader(now)]
            assert len(believers) <= 1, believers
    finally:
        shared_server.clear_faults()
        for api in apis:
            api.close()


def test_live_holder_is_the_holder_until_its_lease_runs_out_on_our_clock(
    candidates: Callable[..., Candidate], clock: FakeClock
) -> None:
    """What a critical node asks before waiting for a leader's full shutdown."""
    pi1, pi2 = candidates("pi1"), candidates("pi2")
    assert pi2.elector.live_holder() is None  # never read the lease: nobody known
    pi1.elector.try_acquire_or_renew()
    pi2.elector.try_acquire_or_renew()
    assert pi1.elector.live_holder() == "pi1" and pi2.elector.live_holder() == "pi1"
    clock.advance(14.9)  # pi1 has died, silently
    assert pi2.elector.live_holder() == "pi1"
    clock.advance(0.1)
    assert pi2.elector.live_holder() is None
    assert pi1.elector.live_holder() is None  # pi1 itself is past its renew deadline and its lease


def test_a_released_lease_has_no_live_holder(candidates: Callable[..., Candidate]) -> None:
    pi1 = candidates("pi1")
    pi1.elector.try_acquire_or_renew()
    assert pi1.elector.live_holder() == "pi1"
    assert pi1.elector.release()
    assert pi1.elector.live_holder() is None  # a daemon stopping cleanly leads no full shutdown


def test_a_stalled_leader_that_wins_a_released_lease_back_acquires_it_anew(
    candidates: Callable[..., Candidate], clock: FakeClock
) -> None:
    # pi1 stalls mid-step past its renew deadline (the fence refuses it), pi2 takes the lease over and
    # releases it on a clean stop, and pi1 wins it back: that is a new term, not the old one going on.
    pi1, pi2 = candidates("pi1"), candidates("pi2")
    pi1.elector.try_acquire_or_renew()
    pi2.elector.try_acquire_or_renew()
    clock.advance(TIMINGS.lease_duration_s)
    with pytest.raises(NotLeader, match="renew deadline"):
        pi1.elector.ensure_leader()
    assert pi1.transitions == [Transition.ACQUIRED, Transition.LOST]
    assert pi2.elector.try_acquire_or_renew().leader
    assert pi2.elector.release()
    attempt = pi1.elector.try_acquire_or_renew()
    assert attempt.leader and attempt.transition is Transition.ACQUIRED
    assert pi1.transitions == [Transition.ACQUIRED, Transition.LOST, Transition.ACQUIRED]


def test_a_refused_fence_on_a_candidate_that_never_led_is_no_transition(
    candidates: Callable[..., Candidate],
) -> None:
    pi1, pi2 = candidates("pi1"), candidates("pi2")
    pi1.elector.try_acquire_or_renew()
    pi2.elector.try_acquire_or_renew()
    with pytest.raises(NotLeader):
        pi2.elector.ensure_leader()
    assert pi2.transitions == []
