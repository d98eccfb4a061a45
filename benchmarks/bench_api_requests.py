#!/usr/bin/env python3
"""API requests per minute of a whole cluster of real daemons, on mains and on battery. A script, not a test.

    .venv/bin/python benchmarks/bench_api_requests.py [--cluster clinic-5] [--minutes 1]

One ``piclusterd run`` process per node of ``examples/clusters/<cluster>.json`` (the installed script, as a
user runs it), all fed by one real upsd (the shared UPS) and pointed at the fake API server loaded with that
cluster; ``mode = "dry-run"``, so on battery the leader plans and reports but changes nothing (steady state:
what an outage costs the API server while nothing needs doing). The server's request log is counted over
``--minutes`` on mains, then over ``--minutes`` on battery after a settling period, by verb and resource.
Watches are counted when they start (a watch is one long request).

Exits 1 when the traffic on mains exceeds issue 17's goal, counted by request kind
(:mod:`piclusterd.testing.api_budget`: a Lease PUT per retry period, watch reconnects, nothing else; these
configs plan with the shared battery only, so no power-record refresh is allowed).

Run it against another tree (the code before issue 17) with ``PYTHONPATH=/path/to/tree``: the daemons
inherit it.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

from piclusterd.config.cluster_key import create_key_file
from piclusterd.sim.fake_api_server import FakeKubeServer, RequestRecord
from piclusterd.testing.api_budget import mains_allowance, over_budget, request_kind
from piclusterd.testing.daemon_process import DaemonProcess
from piclusterd.testing.nut_server import NutServer

CLUSTERS = Path(__file__).resolve().parents[1] / "examples" / "clusters"
SETTLE_S = 20.0
#: The daemons' retry period with these configs: [cluster] retry_period's default (2 s) > [ups] poll_interval (1 s).
RETRY_PERIOD_S = 2.0


def event_reason(record: RequestRecord) -> str:
    body = record.body if isinstance(record.body, dict) else {}
    return str(body.get("reason") or "?")


def count(records: list[RequestRecord], minutes: float) -> dict[str, float]:
    counted = collections.Counter(request_kind(r) for r in records)
    return {key: round(value / minutes, 1) for key, value in sorted(counted.items())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cluster", default="clinic-5")
    parser.add_argument("--minutes", type=float, default=1.0)
    args = parser.parse_args()
    snapshot = CLUSTERS / f"{args.cluster}.json"
    names = [i["metadata"]["name"] for i in json.loads(snapshot.read_text())["items"] if i["kind"] == "Node"]
    window = args.minutes * 60.0
    with tempfile.TemporaryDirectory() as tmp, FakeKubeServer(controller=True) as server:
        directory = Path(tmp)
        server.load_objects(snapshot)
        server.run_controller_once()
        kubeconfig = server.write_kubeconfig(directory / "kubeconfig")
        create_key_file(str(directory / "cluster.key"))
        variables = {**NutServer.DEFAULT_VARIABLES, "ups.status": "OL", "ups.realpower": "60"}
        with NutServer(variables) as ups:
            daemons = []
            for name in names:
                config = directory / f"{name}.toml"
                config.write_text(
                    f'mode = "dry-run"\n[node]\nname = "{name}"\n'
                    f'[ups]\nhost = "{ups.host}"\nport = {ups.port}\nname = "{ups.ups_name}"\n'
                    "[battery]\ncapacity_wh = 216\n"
                    f'[cluster]\nenabled = true\nkubeconfig = "{kubeconfig}"\n'
                    f'ssh_key = "{directory}/missing"\nkey_file = "{directory}/cluster.key"\n'
                    f'[daemon]\nruntime_dir = "{directory}/run-{name}"\n'
                )
                daemons.append(DaemonProcess(config))
            try:
                for daemon in daemons:
                    daemon.start()
                daemons[0].wait_for("daemon.started", timeout_s=300)
                deadline = time.monotonic() + 300
                while not any(d.named("leader.acquired") for d in daemons):
                    if time.monotonic() > deadline:
                        raise SystemExit("no leader within 300 s")
                    time.sleep(0.5)
                time.sleep(SETTLE_S)
                start = len(server.requests)
                time.sleep(window)
                mains = list(server.requests[start:])
                ups.set("ups.status", "OB DISCHRG")
                time.sleep(SETTLE_S)
                start = len(server.requests)
                time.sleep(window)
                battery = list(server.requests[start:])
            finally:
                for daemon in daemons:
                    daemon.stop()
    result = {
        "cluster": args.cluster,
        "nodes": len(names),
        "python": sys.version.split()[0],
        "mains_per_min": len(mains) / args.minutes,
        "battery_per_min": len(battery) / args.minutes,
        "mains": count(mains, args.minutes),
        "battery": count(battery, args.minutes),
        # What each Event said (its reason), to tell a one-off (a plan that changed) from a rate.
        "battery_events": dict(
            collections.Counter(event_reason(r) for r in battery if r.method == "POST" and "/events" in r.path)
        ),
    }
    allowance = mains_allowance(window_s=window, nodes=len(names), retry_period_s=RETRY_PERIOD_S, refresh_every_s=None)
    excess = over_budget(mains, allowance)
    result["mains_allowed"] = allowance
    result["mains_over_goal"] = [f"{e.kind}: {e.count} > {e.allowed}" for e in excess]
    print(json.dumps(result, indent=1))
    return 1 if excess else 0


if __name__ == "__main__":
    raise SystemExit(main())
