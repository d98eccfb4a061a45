"""Soak: random outages and faults on the netns cluster for N minutes, the invariants checked all along.

    sudo .venv/bin/python -m tests.integration.soak --minutes 30 [--seed 7] [--workdir /tmp/soak]

Not part of the test suite (it runs for as long as you ask). Each round injects one random fault (a mains
outage or its end, a daemon killed then restarted, a daemon paused then resumed, a host's link cut then
healed, upsd restarted while on mains, latency on a host's link if tc netem works), waits 3-12 s, undoes it, and checks:

- no node powered off twice for one request, no host running its shutdown twice in one life;
- every power-off request follows a completed drain of that node (never power off an undrained node);
- the harness itself had no error.

Hosts powered off come back by the leader's own restore: Wake-on-LAN to the hosts' NICs (``wake_on_lan``),
once mains has held ``restore_after`` (10 s here), one every ``restore_stagger`` (3 s). At the end: mains on,
every fault undone, and every host back on its own (a magic packet sent while the leader's own link was cut is
lost, as on a real LAN: such a host is then powered on by hand and named in the summary's notes), and no node
lost or left cordoned by piclusterd. Exit status 0 if every check held, 1 otherwise; the summary is printed and written
to WORKDIR/summary.json.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from .cluster import REACHABLE_TARGET, NetnsCluster, running_cluster
from .faults import Faults, FaultUnavailable, duplicates, event_wall

#: Restore's timings are short so that shed hosts come back within the soak's rounds.
TARGET = {
    "cluster": {"target_runtime": REACHABLE_TARGET, "on_battery_grace": '"5s"'},
    "restore": {"restore_after": '"10s"', "restore_stagger": '"3s"'},
}


def undrained_power_offs(cluster: NetnsCluster) -> list[str]:
    """Power-off requests for a node with no completed drain of it before (in any leader's log)."""
    events = sorted(cluster.events(), key=event_wall)
    drained: set[str] = set()
    found: list[str] = []
    for event in events:
        if event["event"] == "node.drained":
            drained.add(str(event["target"]))
        elif event["event"] == "node.restored":
            drained.discard(str(event["target"]))
        elif event["event"] == "node.poweroff_requested" and event["target"] not in drained:
            found.append(f"{event['target']}: power-off {event['request_id']} without a completed drain")
    return found


#: A leader acts on its last reading for up to stale_after (4 s) when upsd does not answer (say, latency on
#: its link), plus a poll: a magic packet this soon after mains failed may rest on a reading from before it.
READING_AGE_S = 6.0


def woken_during_outage(cluster: NetnsCluster, faults: Faults) -> list[str]:
    """Magic packets sent while the UPS was on battery (restore must wait for mains to hold)."""
    mains = sorted((f.wall, f.kind) for f in faults.injected if f.kind in ("mains_fail", "mains_return"))
    found = []
    for wake in cluster.wakes:
        before = [(wall, kind) for wall, kind in mains if wall <= wake.wall]
        if before and before[-1][1] == "mains_fail" and wake.wall - before[-1][0] > READING_AGE_S:
            found.append(f"{wake.node}: woken at {wake.wall:.1f}, {wake.wall - before[-1][0]:.1f} s into an outage")
    return found


def violations(cluster: NetnsCluster) -> list[str]:
    return [*duplicates(cluster, cluster.events()), *undrained_power_offs(cluster), *cluster.watch_errors]


def one_round(cluster: NetnsCluster, faults: Faults, rng: random.Random, on_battery: bool) -> bool:
    """Inject one fault, wait, undo it; returns whether the UPS is on battery afterwards."""
    alive = [n for n, h in cluster.hosts.items() if not h.powered_off and h.daemon is not None]
    choice = rng.choice(["outage", "outage", "kill", "pause", "cut", "upsd", "latency"])
    hold = rng.uniform(3, 12)
    if choice == "outage":
        (faults.mains_return if on_battery else faults.mains_fail)()
        time.sleep(hold)
        return not on_battery
    if choice == "upsd" and on_battery:
        choice = "pause"  # upsd gone while on battery shuts every host down (NUT's rule): the round ends the soak
    if not alive:
        time.sleep(hold)
        return on_battery
    node = rng.choice(alive)
    if choice == "kill":
        faults.kill_daemon(node)
        time.sleep(hold)
        if not cluster.hosts[node].powered_off:
            cluster.start_daemon(node)
    elif choice == "pause":
        faults.pause_daemon(node)
        time.sleep(hold)
        if not cluster.hosts[node].powered_off:
            faults.resume_daemon(node)
    elif choice == "latency":
        try:
            faults.add_latency(node, rng.choice([50, 300, 1500]))
        except FaultUnavailable as error:
            print(f"soak: no latency round: {error}", flush=True)
            time.sleep(hold)
            return on_battery
        time.sleep(hold)
        if not cluster.hosts[node].powered_off:
            faults.clear_latency(node)
    elif choice == "cut":
        faults.cut_link(node)
        time.sleep(hold)
        faults.heal_link(node)
    else:
        faults.stop_upsd()
        time.sleep(hold)
        faults.start_upsd()
    return on_battery


def power_on_by_hand(cluster: NetnsCluster) -> list[str]:
    """Power on what restore left off; returns a note per host (none when restore brought every host back)."""
    notes = []
    for name, host in cluster.hosts.items():
        if host.powered_off:
            asked = cluster.named("node.power_on_requested", target=name)
            notes.append(f"{name}: still off after the automatic restore ({len(asked)} power-on(s) asked); on by hand")
            cluster.power_on(name)
    return notes


def soak(workdir: Path, minutes: float, seed: int) -> int:
    rng = random.Random(seed)
    with running_cluster(workdir, config_extra=TARGET, wake_on_lan=True) as cluster:
        faults = Faults(cluster)
        end = time.monotonic() + minutes * 60
        on_battery = False
        problems: list[str] = []
        while time.monotonic() < end and not problems:
            on_battery = one_round(cluster, faults, rng, on_battery)
            problems = violations(cluster) + woken_during_outage(cluster, faults)
        if on_battery:
            faults.mains_return()

        def settled() -> bool:
            return all(cluster.ready(n) and not cluster.cordoned(n) for n in cluster.node_names)

        by_hand: list[str] = []
        try:
            cluster.wait_until("every node back by restore, uncordoned", settled, 120)
        except AssertionError:
            by_hand = power_on_by_hand(cluster)
            try:
                cluster.wait_until("every node back, uncordoned", settled, 60)
            except AssertionError as error:
                problems.append(str(error)[:500])
        summary = faults.summary(f"soak {minutes:g} min, seed {seed}")
        problems += violations(cluster) + woken_during_outage(cluster, faults) + summary.nodes_lost
        summary.notes.extend(by_hand + problems)
        summary.report(workdir)
        for problem in problems:
            print(f"VIOLATION: {problem}", file=sys.stderr)
        return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.integration.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new directory under /tmp")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="piclusterd-soak-"))
    print(f"soak: {args.minutes:g} min, seed {args.seed}, events and summary in {workdir}", flush=True)
    return soak(workdir, args.minutes, args.seed)


if __name__ == "__main__":
    sys.exit(main())
