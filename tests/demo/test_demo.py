"""The README's main-job command: the real daemon code through storm-2am on an accelerated clock."""

from __future__ import annotations

import io
import itertools
import json
import math
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from piclusterd.core.cluster_view import ClusterView, parse_kubectl_list
from piclusterd.core.durations import format_duration
from piclusterd.core.power_on_record import POWER_ON_ANNOTATION
from piclusterd.sim.cluster_demo import (
    DATA,
    LOW_BATTERY_PCT,
    REPLACEMENT_READY_S,
    STEP_S,
    DemoFigures,
    DemoUps,
    clusters,
    run_cluster_demo,
)
from piclusterd.sim.cluster_world import FULL_SHUTDOWN_WAIT_S
from piclusterd.sim.demo_command import render_demo_summary, run_demo, write_demo_plot
from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.sim.scenarios import load_scenario
from piclusterd.sim.simulator import (
    OUTAGES,
    Outage,
    OutageFigures,
    Policy,
    SimSettings,
    simulate,
    workload_key,
    workloads,
)


def test_storm_ends_in_clean_shutdowns_at_the_analytic_time() -> None:
    out = io.StringIO()
    figures = run_demo("storm-2am", speed=0, out=out)
    text = out.getvalue()
    # LB at 20 % charge: 80 % of 84 Wh x 0.8 at 23 W / 0.85 + 5 W -> 1 h 40 min 36 s after 02:00; then OB + LB is
    # confirmed for low_battery_confirm ("auto": full_shutdown_wait, 3 min; 25 min to empty covers it + 2 x 3 min).
    first_critical = re.search(r"(\S+) \[critical \] power.state_changed", text)
    assert first_critical is not None and first_critical.group(1).startswith("2026-11-24T03:43:3")
    assert "reason='UPS reports low battery (OB LB) for 180 s'" in text
    assert figures["shutdowns"] >= 1
    assert text.count("shutdown.local_started") == figures["shutdowns"]


def test_a_blip_changes_nothing_but_the_log() -> None:
    out = io.StringIO()
    figures = run_demo("blip", speed=0, out=out)
    assert figures["shutdowns"] == 0 and figures["down_s"] == 0
    assert "new=on_battery" in out.getvalue() and "new=online" in out.getvalue()


def test_demo_command_runs_as_a_user_would() -> None:
    script = Path(sys.executable).with_name("piclusterd")
    done = subprocess.run(
        [str(script), "demo", "--speed", "0", "--outage", "blip", "--cluster", "district-10", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "district-10 (10 nodes, 216 Wh battery)" in done.stdout and "leader.acquired" in done.stdout
    summary = json.loads(done.stdout.splitlines()[-1])  # --json: the summary as one object, last
    assert summary["cluster"] == "district-10" and summary["outage"] == "blip"
    assert summary["full_shutdowns"] == [] and summary["longest_failure"]["lasted_until_mains_returned"] is True
    assert "nodes shed (power-offs)            none (0)" in done.stdout  # an 8 s blip sheds nothing
    assert re.search(r"kubectl --kubeconfig \S+/kubeconfig get nodes -o wide -w", done.stdout)


def test_an_unknown_cluster_is_refused_with_the_ones_there_are() -> None:
    script = Path(sys.executable).with_name("piclusterd")
    done = subprocess.run(
        [str(script), "demo", "--cluster", "clinic-50"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "invalid choice: 'clinic-50'" in done.stderr and "clinic-5" in done.stderr and "district-10" in done.stderr


@pytest.fixture(scope="module")
def storm() -> tuple[DemoFigures, str]:
    out = io.StringIO()
    figures = run_cluster_demo("storm-2am", speed=0, out=out)
    return figures, out.getvalue()


def test_cluster_demo_sheds_after_the_grace_period_and_keeps_critical_services_up(
    storm: tuple[DemoFigures, str],
) -> None:
    figures, text = storm
    first_off = re.search(r"^(\d\d:\d\d:\d\d)  pi1  node.powered_off", text, re.MULTILINE)
    assert first_off is not None and "02:01:00" <= first_off.group(1) <= "02:05:00"  # after the 60 s grace
    assert "02:00:00  pi1  plan.decided             shed nothing [hold_grace]" in text
    assert figures.runtime_planned_s is not None and figures.runtime_without_s is not None
    assert figures.runtime_without_s < figures.runtime_planned_s <= (figures.runtime_optimum_s or 0) + 60
    assert set(figures.shed[:3]) <= {"pi2", "pi3", "pi4", "pi5"} and "pi1" not in figures.shed  # never the leader
    main = figures.main_failure
    assert main is not None  # the edges are seen at the next 5 s poll
    assert main.off_at_s == pytest.approx(600.0, abs=5) and main.on_at_s == pytest.approx(600.0 + 4 * 3600, abs=5)
    # Critical services stay up as long as the cluster does: every second of the runtime achieved.
    assert figures.main_critical_up_s >= main.runtime_s - 120
    # pi5 stays on for mariadb-0's local-path volume: 29 min gained, not the 46 min of moving the database.
    assert main.runtime_s > main.no_shedding_runtime_s + 25 * 60
    assert "node.restored" in text  # shed nodes rejoin when mains returns


def test_the_storm_demo_keeps_mariadb_on_the_node_holding_its_volume(storm: tuple[DemoFigures, str]) -> None:
    """Issue 14, finding 1: mariadb-0's data is a k3s local-path volume on pi5, which no other node can mount.
    Before, the demo's leader shed pi5, evicted mariadb-0 and the fake "rescheduled" it onto pi4, which a
    real cluster never does (the replacement stays Pending). Now no shed drains pi5 or evicts mariadb-0;
    only the full shutdown at the end of the battery stops it, with everything else."""
    _figures, text = storm
    before_full_shutdown = text[: text.index("shutdown.cluster_started")]
    assert "target=pi5" not in before_full_shutdown
    assert "clinic/mariadb-0" not in before_full_shutdown
    assert re.search(r"^02:01:\d\d  pi1  plan.decided +shed pi4, pi3;", text, re.MULTILINE)


def test_the_demos_clusters_are_the_reference_clusters() -> None:
    """The demo runs the packaged copies (an installed demo has no examples/); they must be the examples."""
    data = Path(__file__).resolve().parents[2] / "piclusterd" / "sim" / "data"
    examples = Path(__file__).resolve().parents[2] / "examples" / "clusters"
    references = sorted(p.name for p in examples.iterdir() if p.suffix in (".json", ".toml"))
    assert len(references) >= 4
    for name in references:
        packaged = data / name
        assert packaged.is_file(), f"copy examples/clusters/{name} to piclusterd/sim/data/ for the demo"
        assert packaged.read_text() == (examples / name).read_text(), f"piclusterd/sim/data/{name} is stale"
    assert clusters() == sorted({name.rsplit(".", 1)[0] for name in references})


def test_plot_draws_the_run(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="--plot is optional; tests/sim covers the message without it")
    scenario = load_scenario(DATA / "clinic-5.json")
    figures = run_cluster_demo("blip", speed=0, out=io.StringIO())
    target = tmp_path / "demo.png"
    write_demo_plot(figures, scenario, OUTAGES["blip"], target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and target.stat().st_size > 10_000


def test_plot_without_matplotlib_says_how_to_install_it_before_running(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from piclusterd.sim.demo_command import demo_main\n"
        f"sys.exit(demo_main(['--outage', 'blip', '--speed', '0', '--plot', '{tmp_path / 'x.png'}']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "pip install matplotlib" in done.stderr and "apt install python3-matplotlib" in done.stderr
    assert "leader.acquired" not in done.stdout  # refused up front, not after the whole run


# ------------------------------------------------------------------------- the demo agrees with the simulator
#
# The demo (every node's real code, the fake API server, 5 s polls) and the simulator (event-driven, the same planner
# and power model) share the core, so on the same cluster and outage their figures must agree; a mismatch means one of
# them has a bug. Compared: the runtime achieved in the longest failure, whether the cluster lasted, the energy left
# when mains returned from it, and critical-service availability during it. These are defined the same way in both and
# do not depend on when shed nodes come back after mains returns (the simulator restores them after restore_after = 2
# min; the demo through the restore policy, which also waits for 50 % charge), which only affects later failures.
# After a full shutdown both boot when mains returns (the UPS output is back) in the smallest safe set while the charge
# is under restore_min_charge (issue 16): the demo's leader sheds the nodes shed before it again right after the
# boot, the simulator keeps them off; so both count the same full shutdowns over the whole profile.
# Both end a failure at the same physical point:
# the UPS's LB at 20 %, or critical_runtime (5 min) of runtime *to empty* (what a UPS's battery.runtime reports),
# whichever comes first. The simulator runs with the demo's two physical facts: shutdown_at_pct = 20 (the nodes shut
# down at the UPS's low-battery signal, 20 % charge) and pod_move = 20 s (the fake cluster's replacements are Ready 20
# s after they are bound).
#
# Tolerances, from what the two still model differently: the simulator decides every 10 s and takes a drain as exactly
# pod_move; the demo polls every 5 s, a drain takes as long as its evictions and replacements really do (2 s for a
# node with nothing to move) plus the power-off handshake, and it sees mains edges on its polls. At LB the demo's
# leader shuts the cluster down in order (the hook, the other nodes' power-off handshakes, itself last): about 12 s
# more at ~20 W, under 0.1 Wh. Drains are sequential, so per node shed the timing differs by up to ~10 s,
# accumulating: for 7 nodes of under 8 W, at most 28 x 10 s x 8 W = 0.6 Wh. Hence energy within 1 Wh, runtime within 3
# min (1 Wh at the ~20 W left after shedding), critical availability within 3 percentage points (a critical pod's move
# counts as down for pod_move in the simulator, until its replacement is Ready in the demo).

# Since graceful termination is on in the fake (issue 14), a demo drain lasts until its evicted pods are gone,
# their 30 s grace periods, where the simulator's takes pod_move (20 s): about 10 s more per node shed at up to 8 W,
# and over an hour district-10 sheds and restores its nodes several times (measured: 1.42 Wh apart). Hence 2 Wh.
ENERGY_TOLERANCE_WH = 2.0
RUNTIME_TOLERANCE_S = 180.0
CRITICAL_TOLERANCE = 0.03


@dataclass(frozen=True)
class Simulated:
    main: OutageFigures
    critical_share: float  # of the longest failure, with every critical workload up
    critical_down_s: float  # of the longest failure
    full_shutdowns: int  # over the whole outage profile


def simulated_main_failure(cluster: str, outage: Outage) -> Simulated:
    """The simulator's longest failure and the share of it with every critical workload up."""
    scenario = load_scenario(DATA / f"{cluster}.json")
    settings = SimSettings(
        shutdown_at_pct=LOW_BATTERY_PCT,
        pod_move_s=REPLACEMENT_READY_S,
        # The demo's daemons: [policy] low_battery_confirm = "auto", [shutdown] full_shutdown_wait as ClusterWorld's.
        lb_confirm_s=FULL_SHUTDOWN_WAIT_S,
        orderly_shutdown_s=FULL_SHUTDOWN_WAIT_S,
        # The demo's leaders do not stop non-critical work yet (cluster_demo: can_stop_work off), though the
        # daemon's do: in the demo a ReplicaSet picks which replica goes, and may take one from a kept node.
        stop_work=False,
    )
    result = simulate(scenario, outage, Policy.PICLUSTERD, settings)
    main = result.summary.main_outage
    assert main is not None
    rows = result.timeline
    off = up = 0.0
    for row, following in zip(rows, [*rows[1:], None], strict=True):
        end = following.t_s if following is not None else outage.stop_s
        overlap = min(end, main.on_at_s) - max(row.t_s, main.off_at_s)
        if overlap > 0 and not row.mains:
            off += overlap
            up += overlap if row.critical_up == row.critical_total else 0.0
    return Simulated(main, up / off, off - up, result.summary.full_shutdowns)


def assert_agree(demo: DemoFigures, simulated_run: Simulated) -> None:
    simulated, simulated_critical = simulated_run.main, simulated_run.critical_share
    main = demo.main_failure
    assert main is not None
    # Issue 16: the same number of full shutdowns over the whole profile (storm-2am's flickers after 06:00 cost
    # none in either), and the same critical downtime in the longest failure.
    assert len(demo.full_shutdowns) == simulated_run.full_shutdowns, (demo.full_shutdowns, simulated_run)
    demo_down_s = demo.main_off_s - demo.main_critical_up_s
    assert abs(demo_down_s - simulated_run.critical_down_s) <= CRITICAL_TOLERANCE * demo.main_off_s, (
        demo_down_s,
        simulated_run.critical_down_s,
    )
    assert main.off_at_s == pytest.approx(simulated.off_at_s, abs=STEP_S)  # the demo sees edges on its 5 s polls
    assert main.on_at_s == pytest.approx(simulated.on_at_s, abs=STEP_S)
    assert main.survived == simulated.survived
    assert abs(main.runtime_s - simulated.runtime_s) <= RUNTIME_TOLERANCE_S, (main.runtime_s, simulated.runtime_s)
    assert abs(main.energy_left_wh - simulated.energy_left_wh) <= ENERGY_TOLERANCE_WH, (main, simulated)
    # The demo's optimum also runs through the failure's measured orderly full shutdown (as its run does); the
    # simulator's runs and optimum both end at LB plus the confirmation.
    shutdown_s = sum(b - a for a, b in demo.full_shutdown_spans if main.off_at_s <= a < main.on_at_s)
    assert main.optimum_runtime_s - shutdown_s == pytest.approx(simulated.optimum_runtime_s, abs=1.0)
    assert main.no_shedding_runtime_s == pytest.approx(simulated.no_shedding_runtime_s, abs=1.0)
    critical = demo.main_critical_up_s / demo.main_off_s
    assert abs(critical - simulated_critical) <= CRITICAL_TOLERANCE, (critical, simulated_critical)


def test_the_storm_demo_agrees_with_the_simulator(storm: tuple[DemoFigures, str]) -> None:
    figures, _ = storm
    simulated = simulated_main_failure("clinic-5", OUTAGES["storm-2am"])
    assert not simulated.main.survived  # clinic-5's 84 Wh cannot carry even the optimum through 4 h
    assert simulated.full_shutdowns == 2  # the 4 h failure and the 45 min one at 06:30; the flickers cost none
    assert_agree(figures, simulated)


def test_an_hour_on_district_10_agrees_with_the_simulator() -> None:
    """A failure the cluster survives, so that the energy left is a real comparison, not the cut-off."""
    hour = Outage("one-hour", ((600.0, 600.0 + 3600.0),), end_s=600.0 + 3600.0 + 300.0)
    figures = run_cluster_demo(hour, speed=0, out=io.StringIO(), cluster="district-10")
    simulated = simulated_main_failure("district-10", hour)
    assert simulated.main.survived and simulated.main.energy_left_wh > 50
    assert figures.power_offs >= 2  # it did shed: the comparison covers drains and power-offs
    assert_agree(figures, simulated)


def test_the_demo_ups_reports_its_runtime_to_empty_as_a_real_ups_does() -> None:
    """NUT's battery.runtime runs to the UPS's own cut-off. Counted to the nodes' 20 % shutdown level instead,
    every daemon saw its runtime under critical_runtime 5 min before LB and the cluster went down 5 min early."""
    battery = load_scenario(DATA / "clinic-5.json").battery
    assert battery.shutdown_charge_pct == LOW_BATTERY_PCT and battery.shutdown_runtime_s == 300
    ups = DemoUps(battery)
    ups.energy_wh = ups.full_wh / 2
    reported = float(ups.variables(mains=False, load_w=17.0)["battery.runtime"])
    to_empty = ups.energy_wh * 3600 / (17.0 / battery.inverter_efficiency + battery.ups_overhead_w)
    assert reported == pytest.approx(to_empty, abs=1.0)


def test_the_long_night_demo_shuts_the_cluster_down_in_order_and_brings_it_back() -> None:
    """long-night on clinic-5: shed at 20:01, the battery ends around 22:30 (an orderly full shutdown: the
    hook, the other nodes, the UPS's shutdown-return, the leader last), mains at 06:00 powers every Pi again,
    the leader undoes the full shutdown on each node and logs the outage summary; the shed nodes stay off on
    the low battery, and the rest of the cluster is as it started."""
    scenario = load_scenario(DATA / "clinic-5.json")
    critical = {k for k, c in workloads(scenario.view, scenario.policy.critical_priority_threshold).items() if c}
    servers: list[FakeKubeServer] = []
    at_end: list[ClusterView] = []

    def look(_figures: DemoFigures) -> None:
        server = servers[0]
        at_end.append(
            parse_kubectl_list({"kind": "List", "items": server.list_objects("Node") + server.list_objects("Pod")})
        )

    out = io.StringIO()
    figures = run_cluster_demo(
        "long-night", speed=0, out=out, on_serving=lambda server, _k: servers.append(server), before_close=look
    )
    text = out.getvalue()
    assert re.search(r"^20:01:\d\d  pi1  node.drain_started", text, re.MULTILINE)  # shed after the grace, at 20:00
    assert figures.full_shutdowns == [["pi5", "pi3", "pi1"]]  # the nodes still on first, the leader last
    order = [
        "shutdown.cluster_started",
        "shutdown.hook_finished",
        "node.poweroff_requested  target=pi3",
        "shutdown.ups_return      outcome=requested",
        "shutdown.leader_last",
        "06:00:0",  # mains back (the UPS output returns) at 06:00, seen at the next poll
        "node.restored            target=pi5",
        "outage.summary           10 h 00 min on battery, shed pi2, pi4, ended in a full shutdown",
    ]
    start = text.find("shutdown.cluster_started")
    found = [text.find(line, start) for line in order]
    assert -1 not in found and found == sorted(found), list(zip(order, found, strict=True))
    # The leader halts last, by its full shutdown or, when that outlasts [shutdown] full_shutdown_wait, by its
    # own protection: with graceful termination (issue 14) the drains take the pods' 30 s grace periods, longer
    # than ClusterWorld's 60 s wait (the packaged default is 3 min), so here it is its protection.
    leader_down = text.find("pi1  shutdown.local_started", start)
    assert start < leader_down < found[order.index("06:00:0")]
    assert "mains back: the UPS output returns and every Pi boots" in text
    assert set(figures.restored) == {"pi1", "pi2", "pi3", "pi4", "pi5"}
    assert figures.summaries and figures.summaries[0]["full_shutdown"] is True
    # Mains came back at 06:00 with the battery near empty: the nodes shed before the full shutdown are powered
    # off again after the boot and kept off until it holds restore_min_charge (issue 16: the smallest safe set,
    # so a flicker costs the least); the rest is back to the start: Ready, schedulable and free of piclusterd's
    # records; every critical workload has a Ready pod.
    kept_off = {"pi2", "pi4"}
    for name in sorted(kept_off):
        assert re.search(
            rf"^06:\d\d:\d\d  pi1  node.poweroff_requested  target={name} reason=kept off after a full shutdown",
            text,
            re.MULTILINE,
        ), name
    (view,) = at_end
    back = [n for n in view.nodes if n.name not in kept_off]
    assert all(n.ready and not n.unschedulable for n in back), back
    assert not any(n.ready for n in view.nodes if n.name in kept_off)
    # ... but the power-on records, which hold for restore_after (a new leader paces the same), then go.
    ours = [
        n.name
        for n in back
        if any(k.startswith("picluster.io/") for k in n.annotations if k != POWER_ON_ANNOTATION)
    ]
    assert not ours
    ready_nodes = {n.name for n in view.nodes if n.ready}
    assert critical <= {workload_key(p) for p in view.pods if p.ready and p.node in ready_nodes}


def test_shed_nodes_of_a_cluster_that_lasted_come_back_one_at_a_time_through_the_restore_policy() -> None:
    """Half an hour without mains: clinic-5 lasts, so the UPS output never drops and the shed Pis stay halted
    when mains returns, until the leader powers them on (the demo's backend is BootInWorld, as Wake-on-LAN):
    after restore_after (2 min) of stable mains, one per restore_stagger (30 s), each back in service."""
    half_hour = Outage("half-hour", ((600.0, 600.0 + 1800.0),), end_s=600.0 + 1800.0 + 900.0)
    out = io.StringIO()
    figures = run_cluster_demo(half_hour, speed=0, out=out)
    text = out.getvalue()
    assert "the UPS output returns" not in text  # the cluster lasted: nothing was power-cycled
    shed = set(figures.shed)
    assert len(shed) >= 2 and "pi1" not in shed
    assert "restore.waiting          why=mains_not_stable" in text
    requests = re.findall(r"^(\d\d):(\d\d):(\d\d)  pi1  node.power_on_requested  target=(pi\d)", text, re.MULTILINE)
    assert {r[3] for r in requests} == shed == set(figures.powered_on)  # each shed node powered on once
    times = [int(h) * 3600 + int(m) * 60 + int(s) for h, m, s, _ in requests]
    assert times[0] >= 2 * 3600 + 30 * 60 + 120  # mains back at 02:30, then 2 min stable
    assert all(b - a >= 30 for a, b in itertools.pairwise(times))  # one at a time
    assert set(figures.restored) == shed
    assert figures.summaries and figures.summaries[0]["full_shutdown"] is False
    assert figures.summaries[0]["critical_downtime_s"] == 0


def test_the_storm_demo_tells_the_full_shutdown_and_the_morning_after(storm: tuple[DemoFigures, str]) -> None:
    """clinic-5 cannot last the 4 h failure: at LB the leader shuts the cluster down in order, leader last;
    at 06:00 the UPS output returns, every Pi boots and is back in service, and the outage is summarised."""
    figures, text = storm
    assert figures.full_shutdowns[0] == ["pi5", "pi3", "pi1"]  # the nodes not shed first, the leader last
    # Issue 16: the three 20 s flickers after 06:00, on a battery at about 20 %, are ridden through (OB + LB is
    # confirmed first); only the 45 min failure at 06:30 ends in a second full shutdown. Before: 5.
    assert len(figures.full_shutdowns) == 2
    assert not re.search(r"^06:0\d:\d\d  pi1  shutdown.cluster_started", text, re.MULTILINE)
    first = re.search(r"^(\d\d:\d\d:\d\d)  pi1  shutdown.cluster_started", text, re.MULTILINE)
    assert first is not None and "04:10:00" <= first.group(1) <= "04:25:00"  # 2 h 15 min after 02:00
    # The second depends on the poll phase (the UPS's return now follows the leader's own halt through the
    # system-shutdown hook, issue 19): 06:00:03 before, 06:00:04 with it.
    assert re.search(r"^06:00:0\d  mains back: the UPS output returns and every Pi boots", text, re.MULTILINE)
    assert re.search(r"^06:00:0\d  pi1  node.restored +target=pi4", text, re.MULTILINE)
    summary = figures.summaries[0]
    assert summary["full_shutdown"] is True and summary["nodes_shed"] == ["pi2", "pi4"]
    # The full shutdowns' power-offs are not counted as shedding. pi5 holds mariadb's local-path volume: the fake's
    # scheduler (issue 14) never moves mariadb-0 off it, so pi5 is never shed, before or after the full shutdown.
    assert set(figures.shed) == {"pi2", "pi3", "pi4"}
    rendered = render_demo_summary(figures, load_scenario(DATA / "clinic-5.json"), OUTAGES["storm-2am"])
    assert "  orderly full shutdown              pi5, then pi3, then pi1 (the leader, last)" in rendered
    assert "  outage summary (the leader's)      4 h 03 min, " in rendered
    # One source for the figures: the simulator's, never cut a second time to LB; the optimum is never below
    # what was achieved (before: "86 min" without shedding and an optimum of "2 h 06 min" under 2 h 33 min).
    main = figures.main_failure
    # With pi5 kept for mariadb's volume the plan *is* the optimum's node set, and the demo runs on past the
    # optimum's 20 % point for the OB + LB confirmation it polls every 5 s: 64 s measured; 2 min allowed.
    assert main is not None and main.optimum_runtime_s + 120 >= main.runtime_s
    assert f"  without piclusterd (no shedding)   {format_duration(main.no_shedding_runtime_s)} (" in rendered
    assert f"  physical optimum                   {format_duration(main.optimum_runtime_s)} (" in rendered


def test_the_storm_summary_is_what_its_plot_draws_and_never_beats_the_optimum(storm: tuple[DemoFigures, str]) -> None:
    """Issue 16: every figure of the summary comes from the timeline the plot draws (the rows of
    ``DemoFigures.timeline``), counted here by hand: the longest failure's runtime with a node on, whether it
    lasted, the energy at the first row with mains back, the critical services' share; and the physical
    optimum, ended as the run is (at LB, after the daemons' confirmation), is never below what was achieved."""
    figures, _ = storm
    rows = figures.timeline
    stop = OUTAGES["storm-2am"].stop_s
    failures: list[tuple[float, float, float, bool, float]] = []
    off = up = main_off = main_up = 0.0
    k = 0
    while k < len(rows):
        if rows[k].mains:
            k += 1
            continue
        start, runtime, lasted, here_off, here_up = rows[k].t_s, 0.0, True, 0.0, 0.0
        while k < len(rows) and not rows[k].mains:
            dt = (rows[k + 1].t_s if k + 1 < len(rows) else stop) - rows[k].t_s
            runtime += dt if rows[k].nodes_powered else 0.0
            lasted = lasted and rows[k].nodes_powered > 0
            here_off += dt
            here_up += dt if rows[k].critical_up == rows[k].critical_total else 0.0
            k += 1
        energy = rows[k].energy_wh if k < len(rows) else math.nan
        failures.append((start, runtime, lasted, energy, here_off))
        off, up = off + here_off, up + here_up
        if here_off > main_off:
            main_off, main_up = here_off, here_up
    main = figures.main_failure
    assert main is not None
    start, runtime, lasted, energy, _ = max(failures, key=lambda f: f[4])
    assert (main.off_at_s, main.survived) == (start, lasted)
    assert main.runtime_s == pytest.approx(runtime, abs=1e-6)
    assert main.energy_left_wh == pytest.approx(energy, abs=1e-9)
    assert figures.main_critical_up_s / figures.main_off_s == pytest.approx(main_up / main_off, abs=1e-12)
    assert figures.critical_up_s / figures.on_battery_s == pytest.approx(up / off, abs=1e-12)
    assert main.optimum_runtime_s >= main.runtime_s
    rendered = render_demo_summary(figures, load_scenario(DATA / "clinic-5.json"), OUTAGES["storm-2am"])
    assert f"  runtime achieved, with piclusterd  {format_duration(runtime)} (" in rendered
    assert f"  critical services up               {100 * main_up / main_off:.1f} % of it" in rendered
    assert f"  energy left when mains returned    {energy:.1f} Wh" in rendered
