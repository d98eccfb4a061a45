"""Properties of the simulator on random outages: energy is conserved, quorum is kept, a run is repeatable."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from piclusterd.sim.scenarios import load_scenario
from piclusterd.sim.simulator import Outage, Policy, SimResult, simulate

CLINIC = load_scenario(Path(__file__).resolve().parents[2] / "examples" / "clusters" / "clinic-5.json")
HOUR = 3600.0


@st.composite
def outages(draw: st.DrawFn) -> Outage:
    """Up to four failures of 1 s to 3 h, separated by 1 s to 1 h of mains."""
    t, intervals = 60.0, []
    for _ in range(draw(st.integers(1, 4))):
        t += draw(st.floats(1.0, HOUR))
        length = draw(st.floats(1.0, 3 * HOUR))
        intervals.append((t, t + length))
        t += length
    return Outage("random", tuple(intervals), end_s=t + 600.0)


def final_energy_wh(result: SimResult, stop_s: float) -> float:
    last = result.timeline[-1]
    return last.energy_wh - last.battery_w * (stop_s - last.t_s) / HOUR


@settings(max_examples=15, deadline=None)
@given(outage=outages(), policy=st.sampled_from(list(Policy)))
def test_energy_is_conserved_on_any_outage(outage: Outage, policy: Policy) -> None:
    result = simulate(CLINIC, outage, policy)
    rows = result.timeline
    ends = [row.t_s for row in rows[1:]] + [outage.stop_s]
    flow_wh = sum(row.battery_w * (end - row.t_s) for row, end in zip(rows, ends, strict=True)) / HOUR
    assert abs(rows[0].energy_wh - final_energy_wh(result, outage.stop_s) - flow_wh) < 1e-6
    assert all(0.0 <= row.charge_pct <= 100.0 for row in rows)
    assert all(row.battery_w <= 0 for row in rows if row.mains)  # mains on: the battery only charges


@settings(max_examples=15, deadline=None)
@given(outage=outages())
def test_piclusterd_never_runs_fewer_than_the_etcd_quorum(outage: Outage) -> None:
    result = simulate(CLINIC, outage, Policy.PICLUSTERD)
    # clinic-5: three etcd servers, quorum two; the cluster is either up with at least two nodes or all down
    assert all(row.nodes_powered >= 2 or row.nodes_powered == 0 for row in result.timeline)


@settings(max_examples=5, deadline=None)
@given(outage=outages())
def test_the_same_inputs_give_the_same_run(outage: Outage) -> None:
    assert simulate(CLINIC, outage, Policy.PICLUSTERD) == simulate(CLINIC, outage, Policy.PICLUSTERD)
