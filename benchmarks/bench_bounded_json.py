#!/usr/bin/env python3
"""What the bounded JSON reader costs against a bare json.loads, on real records and on hostile ones. A script.

    .venv/bin/python benchmarks/bench_bounded_json.py

Records are what the leader reads on every poll (a shed record, a power record, an outage record); the hostile
inputs are refused before or during decoding, and must be refused fast.
"""

from __future__ import annotations

import json
import platform
import timeit
from collections.abc import Callable

from piclusterd.core.bounded_json import load_bounded_json
from piclusterd.core.node_records import ShedPhase, ShedRecord, parse_shed_record, render_shed_record

SHED = render_shed_record(
    ShedRecord(ShedPhase.DRAINED, "pi1", "on battery: shedding to reach 4 h", "2026-11-24T02:01:00Z", False)
)
POWER = json.dumps(
    {
        "v": 2,
        "state": "on_battery",
        "charge": 63.0,
        "runtime": 2460.0,
        "source": "nut:ups@10.0.0.1",
        "at": "2026-11-24T02:01:00Z",
        "batteries": [
            {"source": "hat", "status": "OB DISCHRG", "charge": 80.0, "runtime": 5400.0, "at": "2026-11-24T02:01:00Z"}
        ],
    }
)
HOSTILE = {
    "100,000-deep array (200 KB)": "[" * 100_000 + "]" * 100_000,
    "5,000-digit integer": '{"v":' + "9" * 5000 + "}",
    "300 KB string": '"' + "x" * 300_000 + '"',
}


def per_call_us(call: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


def main() -> None:
    print(f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}")
    print("| input | bytes | json.loads (us) | load_bounded_json (us) |")
    print("|---|---|---|---|")
    for name, text in (("shed record", SHED), ("power record", POWER)):
        print(
            f"| {name} | {len(text)} | {per_call_us(lambda t=text: json.loads(t), 20_000):.1f} "
            f"| {per_call_us(lambda t=text: load_bounded_json(t), 20_000):.1f} |"
        )
    print(f"| parse_shed_record, whole | {len(SHED)} | | {per_call_us(lambda: parse_shed_record(SHED), 20_000):.1f} |")
    for name, text in HOSTILE.items():
        print(f"| {name}: refused | {len(text)} | | {per_call_us(lambda t=text: parse_shed_record(t), 20):.0f} |")


if __name__ == "__main__":
    main()
