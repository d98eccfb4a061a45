"""Measure the daemon against a real upsd: detection delay and steady RSS/CPU. Prints a table; asserts nothing.

    .venv/bin/python benchmarks/daemon_figures.py [--runs 9] [--idle 30]

Detection delay: from ``upsrw -s ups.status=OB`` returning to the timestamp of the daemon's
``power.state_changed`` event, at the default 1 s poll interval (needs nut-server; run as root or a user that
may start upsd). Steady RSS and CPU: the daemon process after ``--idle`` seconds of polling on mains.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from piclusterd.testing.daemon_process import DaemonProcess
from piclusterd.testing.nut_server import NutServer

VARIABLES = {**NutServer.DEFAULT_VARIABLES, "ups.status": "OL", "battery.charge": "100", "battery.runtime": "3600"}


def _config(directory: Path, ups: NutServer) -> Path:
    config = directory / "piclusterd.toml"
    config.write_text(
        f'mode = "dry-run"\n[node]\nname = "bench"\n[ups]\nhost = "{ups.host}"\nport = {ups.port}\n'
        f'name = "{ups.ups_name}"\n[daemon]\nruntime_dir = "{directory}/run"\n'
    )
    return config


def _upsrw(ups: NutServer, value: str) -> float:
    subprocess.run(
        ["upsrw", "-s", f"ups.status={value}", "-u", ups.username, "-p", ups.password, ups.address],
        check=True,
        capture_output=True,
    )
    return time.time()


def _stamp(event: dict[str, object]) -> float:
    text = str(event["timestamp"]).replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(text).timestamp()


def _proc(pid: int) -> tuple[int, float]:
    """(RSS in KiB, CPU seconds) of a process."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--idle", type=float, default=30.0)
    args = parser.parse_args()
    delays: list[float] = []
    with tempfile.TemporaryDirectory() as directory, NutServer(VARIABLES) as ups:
        daemon = DaemonProcess(_config(Path(directory), ups))
        with daemon:
            daemon.wait_for("power.state_changed", lambda e: e["new"] == "online")
            _, cpu_start = _proc(daemon.pid)
            time.sleep(args.idle)
            rss_kib, cpu_end = _proc(daemon.pid)
            for _ in range(args.runs):
                changed_at = _upsrw(ups, "OB")
                event = daemon.wait_for("power.state_changed", lambda e: e["new"] == "on_battery")
                delays.append(_stamp(event) - changed_at)
                _upsrw(ups, "OL")
                daemon.wait_for("power.state_changed", lambda e: e["new"] == "online", timeout_s=30)
    print(f"machine: {os.uname().machine}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print("| figure | value |")
    print("|---|---|")
    median = statistics.median(delays)
    print(f"| detection delay upsrw OB -> power.state_changed, median of {args.runs} | {median:.2f} s |")
    print(f"| detection delay min / max | {min(delays):.2f} s / {max(delays):.2f} s |")
    print(f"| steady RSS after {args.idle:.0f} s at 1 s poll | {rss_kib / 1024:.1f} MiB |")
    print(f"| CPU while idle at 1 s poll | {100 * (cpu_end - cpu_start) / args.idle:.2f} % of one core |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
