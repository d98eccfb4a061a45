"""Invariants of ``decide_restore`` in a small simulated world, and the brownout-flap outage counted.

The world: one control-plane node that is never shed, some agents (and a second server) that a shedder powers
off once the cluster has been on battery for the planner's grace period, and an executor that powers a node on
as soon as restore says so. The shedder honours :func:`is_settling` as the planner will once it is wired.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from piclusterd.core.cluster_view import ClusterView, Node
from piclusterd.core.power_state import BATTERY_STATES, PowerState
from piclusterd.core.restore import (
    PowerOn,
    RestoreInputs,
    RestoreMemory,
    RestorePolicy,
    decide_restore,
    is_settling,
)
from piclusterd.testing.clusters import make_node

POLICY = RestorePolicy()
GRACE_S = 60.0  # the planner's on_battery_grace_s default
SHEDDABLE = ("s2", "a1", "a2", "a3", "a4")


@dataclass
class World:
    off: set[str] = field(default_factory=set)
    memory: RestoreMemory = field(default_factory=RestoreMemory)
    on_battery_since: float | None = None
    last_shed_at: float | None = None
    events: list[tuple[float, str, str]] = field(default_factory=list)  # (time, node, "off" | "on")
    power_ons: list[tuple[float, PowerOn]] = field(default_factory=list)

    def view(self) -> ClusterView:
        nodes: list[Node] = [make_node("cp1", server=True)]
        for name in SHEDDABLE:
            phase = "powered_off" if name in self.off else None
            nodes.append(make_node(name, server=name.startswith("s"), tier=2, shed_phase=phase))
        return ClusterView(nodes=tuple(nodes))

    def shed(self, now: float, state: PowerState) -> None:
        """The shedder: after the grace period on battery, one node every 10 s, never a settling one."""
        if state not in BATTERY_STATES:
            self.on_battery_since = None
            return
        if self.on_battery_since is None:
            self.on_battery_since = now
        if now - self.on_battery_since < GRACE_S:
            return
        if self.last_shed_at is not None and now - self.last_shed_at < 10.0:
            return
        for name in SHEDDABLE:
            if name not in self.off and not is_settling(self.memory, name, now, POLICY):
                self.off.add(name)
                self.last_shed_at = now
                self.events.append((now, name, "off"))
                return

    def step(self, now: float, state: PowerState, charge: float | None = 80.0) -> None:
        self.shed(now, state)
        self.memory, actions = decide_restore(self.view(), RestoreInputs(state, charge), POLICY, self.memory, now)
        for action in actions:
            assert action.node in self.off, f"{action.node} powered on while not shed"
            self.off.discard(action.node)
            self.events.append((now, action.node, "on"))
            self.power_ons.append((now, action))


def run(world: World, segments: list[tuple[PowerState, float]], poll_s: float = 1.0, start: float = 0.0) -> float:
    """Feed the world one poll every ``poll_s`` through each (state, duration) segment; return the end time."""
    now = start
    for state, duration in segments:
        end = now + duration
        while now < end:
            world.step(now, state)
            now += poll_s
    return now


STATES = st.sampled_from([PowerState.ONLINE, PowerState.ON_BATTERY, PowerState.LOW_BATTERY, PowerState.UNKNOWN])
SEGMENTS = st.lists(st.tuples(STATES, st.floats(1.0, 400.0)), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(segments=SEGMENTS, poll_s=st.sampled_from([1.0, 2.0, 5.0]))
def test_no_node_is_cycled_within_restore_after(segments: list[tuple[PowerState, float]], poll_s: float) -> None:
    """Off then on, or on then off, of the same node: never less than restore_after_s apart."""
    world = World()
    run(world, segments, poll_s)
    last: dict[str, tuple[float, str]] = {}
    for at, node, what in world.events:
        if node in last:
            before, previous = last[node]
            assert previous != what
            assert at - before >= POLICY.restore_after_s, f"{node}: {previous} at {before}, {what} at {at}"
        last[node] = (at, what)


@settings(max_examples=60, deadline=None)
@given(segments=SEGMENTS, poll_s=st.sampled_from([1.0, 5.0]))
def test_an_unchanged_observation_adds_no_action(segments: list[tuple[PowerState, float]], poll_s: float) -> None:
    """Whatever the history, asking again with the same cluster, power and time powers nothing more on."""
    world = World()
    end = run(world, segments, poll_s)
    for state in (PowerState.ONLINE, PowerState.ON_BATTERY):
        inputs = RestoreInputs(state, 80.0)
        first, _ = decide_restore(world.view(), inputs, POLICY, world.memory, end)
        again, actions = decide_restore(world.view(), inputs, POLICY, first, end)
        assert actions == ()
        # Only the label of why nothing came back may change (powered_on -> stagger after a power-on);
        # from then on the memory is a fixed point.
        assert replace(again, hold=first.hold) == first
        third, actions = decide_restore(world.view(), inputs, POLICY, again, end)
        assert actions == () and third == again


@settings(max_examples=60, deadline=None)
@given(segments=SEGMENTS)
def test_power_ons_are_at_least_the_stagger_apart(segments: list[tuple[PowerState, float]]) -> None:
    world = World()
    run(world, segments)
    times = [at for at, _ in world.power_ons]
    assert all(b - a >= POLICY.restore_stagger_s for a, b in itertools.pairwise(times))


def brownout_flap(rng: random.Random, flap_s: float = 180.0) -> list[tuple[PowerState, float]]:
    """scenarios.md brownout-flap: on battery / on line alternating every 5-15 s for 3 minutes."""
    segments: list[tuple[PowerState, float]] = []
    elapsed, state = 0.0, PowerState.ON_BATTERY
    while elapsed < flap_s:
        duration = min(float(rng.randint(5, 15)), flap_s - elapsed)
        segments.append((state, duration))
        elapsed += duration
        state = PowerState.ONLINE if state is PowerState.ON_BATTERY else PowerState.ON_BATTERY
    return segments


def world_after_long_outage() -> tuple[World, float]:
    """Two hours on battery: the shedder has powered off every sheddable node."""
    world = World()
    end = run(world, [(PowerState.ON_BATTERY, 7200.0)], poll_s=10.0)
    assert world.off == set(SHEDDABLE)
    return world, end


def test_brownout_flap_after_an_outage_powers_each_shed_node_on_once_after_mains_settles() -> None:
    """The count: 5 shed nodes, 5 power-ons, none during the 3 minutes of flapping, all after 120 s stable."""
    world, start = world_after_long_outage()
    flap_end = run(world, brownout_flap(random.Random(4)), start=start)
    assert world.power_ons == []
    end = run(world, [(PowerState.ONLINE, 600.0)], start=flap_end)
    times = [at - flap_end for at, _ in world.power_ons]
    assert [action.node for _, action in world.power_ons] == ["s2", "a1", "a2", "a3", "a4"]
    assert times == [120.0, 150.0, 180.0, 210.0, 240.0]
    assert world.off == set() and end - flap_end == 600.0


def test_brownout_flap_in_the_middle_of_a_restore_stops_it_and_sheds_nothing_restored() -> None:
    """Mains back 150 s (two nodes come back), then the flap: restore stops; the flap's on-battery spells are
    shorter than the grace period, so nothing is shed; restore resumes 120 s after the flap."""
    world, start = world_after_long_outage()
    now = run(world, [(PowerState.ONLINE, 151.0)], start=start)
    assert len(world.power_ons) == 2
    flap_end = run(world, brownout_flap(random.Random(7)), start=now)
    assert len(world.power_ons) == 2
    run(world, [(PowerState.ONLINE, 600.0)], start=flap_end)
    assert len(world.power_ons) == 5
    assert all(at >= flap_end + POLICY.restore_after_s for at, _ in world.power_ons[2:])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), flaps=st.integers(1, 6))
def test_repeated_brownout_flaps_power_each_node_on_at_most_once_per_outage(seed: int, flaps: int) -> None:
    """However the flapping goes, power-ons are bounded by the shed nodes and none happens while it flaps."""
    rng = random.Random(seed)
    world, now = world_after_long_outage()
    flapping: list[tuple[float, float]] = []
    for _ in range(flaps):
        begin = now
        now = run(world, brownout_flap(rng), start=now)
        flapping.append((begin, now))
        now = run(world, [(PowerState.ONLINE, float(rng.randint(0, 300)))], start=now)
    run(world, [(PowerState.ONLINE, 600.0)], start=now)
    assert len(world.power_ons) == len(SHEDDABLE)
    assert not [at for at, _ in world.power_ons if any(a <= at < b for a, b in flapping)]
