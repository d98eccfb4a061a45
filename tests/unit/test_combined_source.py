"""Several sources as one: the combination rule as decision tables (one factor each) and its safety property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from piclusterd.core.errors import SourceUnavailable
from piclusterd.core.power_state import Observation, PowerMemory, PowerPolicy, PowerState, decide
from piclusterd.core.reading import MainsState, ParsedReading, Rejection, UpsFlag, UpsReading
from piclusterd.node.combined_source import CombinedPowerSource, MemberPoll, combine
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scripted_ups import ScriptedUps

STALE = 15.0
NOW = 100.0


def reading(
    source: str, status: str, *, charge: float | None = 90.0, runtime: float | None = 3000.0, at: float = NOW
) -> UpsReading:
    return UpsReading(
        source=source,
        timestamp=at,
        wall_time=at,
        flags=frozenset(UpsFlag(w) for w in status.split()),
        charge_pct=charge,
        runtime_s=runtime,
    )


def fresh(r: UpsReading) -> MemberPoll:
    return MemberPoll(r.source, ParsedReading(r), None, None)


def silent(name: str, last: UpsReading | None, error: str = "no answer") -> MemberPoll:
    return MemberPoll(name, None, error, last)


def run(*members: MemberPoll) -> ParsedReading | None:
    return combine(members, name="both", now=NOW, wall_time=NOW + 1e9, stale_after_s=STALE)


def combined(*members: MemberPoll) -> UpsReading:
    parsed = run(*members)
    assert parsed is not None and parsed.reading is not None
    return parsed.reading


# --- factor: what each fresh source says about mains ------------------------------------------------------


@pytest.mark.parametrize(
    ("nut", "hat", "mains"),
    [
        ("OL", "OL", MainsState.PRESENT),
        ("OB", "OL", MainsState.LOST),  # the HAT is fed by the UPS: it cannot see the outage
        ("OL", "OB", MainsState.LOST),
        ("OB", "OB", MainsState.LOST),
        ("OL CHRG", "OL LB", MainsState.PRESENT),
    ],
)
def test_mains_is_lost_if_any_source_says_ob(nut: str, hat: str, mains: MainsState) -> None:
    result = combined(fresh(reading("nut", nut)), fresh(reading("hat", hat)))
    assert result.mains is mains
    assert (UpsFlag.OL in result.flags) is (mains is MainsState.PRESENT)


# --- factor: LB and FSD ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nut", "hat", "lb", "fsd"),
    [
        ("OB LB", "OL", True, False),  # low battery of the battery that is discharging counts
        ("OB", "OL LB", False, False),  # the HAT's low battery is charging on mains: not a reason
        ("OL", "OB LB", True, False),
        ("OL FSD", "OL", False, True),  # FSD is the primary's order, it counts from any source
        ("OB FSD", "OL", False, True),
        ("OL LB", "OL", False, False),
    ],
)
def test_low_battery_counts_only_from_a_source_on_battery(nut: str, hat: str, lb: bool, fsd: bool) -> None:
    result = combined(fresh(reading("nut", nut)), fresh(reading("hat", hat)))
    assert (UpsFlag.LB in result.flags) is lb
    assert (UpsFlag.FSD in result.flags) is fsd


# --- factor: which battery's figures are reported ---------------------------------------------------------


@pytest.mark.parametrize(
    ("nut", "hat", "charge", "runtime"),
    [
        (("OB", 80, 2400), ("OL", 50, None), 80, 2400),  # only the UPS discharges: its figures
        (("OL", 80, 2400), ("OB", 50, 900), 50, 900),  # only the HAT discharges
        (("OB", 80, 600), ("OB", 50, 900), 50, 600),  # both: the lowest of each
        (("OB", None, None), ("OB", 40, None), 40, None),  # unknown figures do not hide known ones
        (("OL", 80, 2400), ("OL", 50, 900), 80, 2400),  # on mains: the first source's
    ],
)
def test_charge_and_runtime_are_those_of_the_discharging_battery(
    nut: tuple[str, float | None, float | None],
    hat: tuple[str, float | None, float | None],
    charge: float | None,
    runtime: float | None,
) -> None:
    result = combined(
        fresh(reading("nut", nut[0], charge=nut[1], runtime=nut[2])),
        fresh(reading("hat", hat[0], charge=hat[1], runtime=hat[2])),
    )
    assert (result.charge_pct, result.runtime_s) == (charge, runtime)


# --- factor: a source that fails --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last", "silent_for", "mains", "lb"),
    [
        (None, 0.0, MainsState.PRESENT, False),  # never heard: reported, the HAT decides
        ("OL", 5.0, MainsState.PRESENT, False),  # last seen on mains: reported, the HAT decides
        ("OL", 60.0, MainsState.PRESENT, False),
        ("OB", 5.0, MainsState.LOST, False),  # on battery, silent: held on battery, not masked by the HAT
        ("OB", 14.9, MainsState.LOST, False),
        ("OB", 15.0, MainsState.LOST, True),  # silent for stale_after on battery: OB LB (fail-safe)
    ],
)
def test_a_silent_source_keeps_its_on_battery_meaning(
    last: str | None, silent_for: float, mains: MainsState, lb: bool
) -> None:
    previous = None if last is None else reading("nut", last, at=NOW - silent_for)
    parsed = run(silent("nut", previous, "upsd refused"), fresh(reading("hat", "OL")))
    assert parsed is not None and parsed.reading is not None
    assert parsed.reading.mains is mains
    assert (UpsFlag.LB in parsed.reading.flags) is lb
    (notice,) = [r for r in parsed.rejections if r.variable == "nut"]
    assert "upsd refused" in notice.reason


def test_a_rejected_reading_is_reported_and_the_other_source_used() -> None:
    bad = MemberPoll(
        "nut", ParsedReading(None, (Rejection("ups.status", "BOGUS", "says neither OL nor OB"),)), None, None
    )
    parsed = run(bad, fresh(reading("hat", "OB")))
    assert parsed is not None and parsed.reading is not None and parsed.reading.mains is MainsState.LOST
    assert parsed.rejections == (Rejection("nut ups.status", "BOGUS", "says neither OL nor OB"),)


def test_no_source_counting_gives_nothing() -> None:
    assert run(silent("nut", reading("nut", "OL", at=0.0)), silent("hat", None)) is None


def test_each_battery_reading_is_kept_in_parts() -> None:
    nut_last = reading("nut", "OB", at=NOW - 3)
    hat_now = reading("hat", "OL", charge=55)
    result = combined(silent("nut", nut_last), fresh(hat_now))
    assert result.parts == (nut_last, hat_now)
    assert result.source == "both" and result.timestamp == NOW


# --- the safety property ----------------------------------------------------------------------------------

_statuses = st.sampled_from(["OL", "OB", "OL CHRG", "OB DISCHRG", "OB LB", "OL LB", "OL FSD", "OB FSD", "OL OB"])
_figures = st.one_of(st.none(), st.floats(0, 100))


@st.composite
def _members(draw: st.DrawFn) -> list[MemberPoll]:
    count = draw(st.integers(1, 4))
    members = []
    for i in range(count):
        status = draw(_statuses)
        r = reading(f"s{i}", status, charge=draw(_figures), runtime=draw(_figures))
        if draw(st.booleans()):
            members.append(fresh(r))
        else:
            last = draw(st.one_of(st.none(), st.just(reading(f"s{i}", status, at=NOW - draw(st.floats(0, 60))))))
            members.append(silent(f"s{i}", last))
    return members


@given(_members())
def test_never_online_when_a_trustworthy_source_says_on_battery(members: list[MemberPoll]) -> None:
    parsed = run(*members)
    fresh_readings = [m.parsed.reading for m in members if m.parsed is not None and m.parsed.reading is not None]
    says_ob = any(UpsFlag.OB in r.flags for r in fresh_readings)
    silent_on_battery = any(
        m.parsed is None and m.last_good is not None and UpsFlag.OB in m.last_good.flags for m in members
    )
    if says_ob or silent_on_battery:
        assert parsed is not None and parsed.reading is not None
        assert parsed.reading.mains is MainsState.LOST and UpsFlag.OL not in parsed.reading.flags


# --- the adapter ------------------------------------------------------------------------------------------


def test_the_daemon_core_reaches_critical_when_the_ups_goes_silent_on_battery_behind_a_hat_on_mains() -> None:
    clock = FakeClock()
    ups = ScriptedUps(clock, name="nut:ups")
    hat = ScriptedUps(clock, name="hat:x")  # a HAT fed by the UPS: it never sees the outage
    both = CombinedPowerSource([ups, hat], clock=clock, stale_after_s=STALE)
    policy = PowerPolicy(stale_after_s=STALE, recovery_debounce_s=5)
    memory = PowerMemory()
    ups.drive(ups_status="OB DISCHRG")
    states = []
    for _ in range(20):
        try:
            got = both.poll().reading
        except SourceUnavailable:
            got = None
        memory, _events = decide(
            memory, Observation(clock.monotonic(), got, None if got is None else got.runtime_s), policy
        )
        states.append(memory.state)
        ups.go_silent()
        clock.advance(1.0)
    assert states[0] is PowerState.ON_BATTERY
    assert PowerState.ONLINE not in states
    assert states[-1] is PowerState.CRITICAL


def test_all_sources_silent_raises_with_every_error() -> None:
    clock = FakeClock()
    ups, hat = ScriptedUps(clock, name="nut:ups"), ScriptedUps(clock, name="hat:x")
    ups.go_silent()
    hat.go_silent()
    with pytest.raises(SourceUnavailable, match=r"nut:ups.*hat:x"):
        CombinedPowerSource([ups, hat], clock=clock, stale_after_s=STALE).poll()


def test_close_closes_every_source() -> None:
    clock = FakeClock()
    ups, hat = ScriptedUps(clock, name="nut:ups"), ScriptedUps(clock, name="hat:x")
    CombinedPowerSource([ups, hat], clock=clock, stale_after_s=STALE).close()
    assert ups.closed and hat.closed


def test_sources_with_the_same_name_are_refused() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="distinct names"):
        CombinedPowerSource([ScriptedUps(clock), ScriptedUps(clock)], clock=clock, stale_after_s=STALE)


@given(_statuses, _figures, _figures)
def test_a_combination_of_one_source_decides_as_that_source(
    status: str, charge: float | None, runtime: float | None
) -> None:
    alone = reading("nut", status, charge=charge, runtime=runtime)
    result = combined(fresh(alone))
    policy = PowerPolicy(stale_after_s=STALE)
    for previous in PowerState:
        memory = PowerMemory(state=previous, since=0.0, last_reading=alone)
        expected, _ = decide(memory, Observation(NOW, alone, runtime), policy)
        got, _ = decide(memory, Observation(NOW, result, runtime), policy)
        assert (got.state, got.reason) == (expected.state, expected.reason)
