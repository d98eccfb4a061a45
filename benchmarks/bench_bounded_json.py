#!/usr/bin/env python3
"""What the bounded JSON reader costs against a bare json.loads, on real records and on hostile ones. A script.

    .venv/bin/python benchmarks/bench_bounded_json.py

Records are what the leader reads on every poll (a shed record, a power record, an outage record); the hostile
inputs are refused before or during decoding, and must be refused fast.
"""

from __future__ import annotations

import copy
import json
import platform
import timeit
from collections.abc import Callable
from pathlib import Path

from piclusterd.core.bounded_json import load_api_json, load_bounded_json
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
    print()
    print("| API page (500 objects) | MB | json.loads (ms) | load_api_json (ms) |")
    print("|---|---|---|---|")
    for name, page in api_pages().items():
        loads = per_call_us(lambda p=page: json.loads(p), 1) / 1000
        bounded = per_call_us(lambda p=page: load_api_json(p), 1) / 1000
        print(f"| {name} | {len(page) / 1e6:.1f} | {loads:.0f} | {bounded:.0f} |")


CLINIC = Path(__file__).resolve().parents[1] / "piclusterd" / "sim" / "data" / "clinic-5.json"


def api_pages() -> dict[str, bytes]:
    """List pages as the API server sends them: the clinic's objects, and the same with ``managedFields`` as
    large as a busy cluster's (about 16 KB a pod, 40 KB a Node)."""
    items = json.loads(CLINIC.read_text())["items"]
    pod = next(i for i in items if i["kind"] == "Pod")
    node = next(i for i in items if i["kind"] == "Node")

    def page(obj: dict[str, object], fields: int) -> bytes:
        listed = []
        for k in range(500):
            item = copy.deepcopy(obj)
            item["metadata"]["name"] = f"x{k}"  # type: ignore[index]
            managed = {f"f:{j}": {"f:a": {}, "f:b": {"f:c": {}}} for j in range(fields)}
            item["metadata"]["managedFields"] = [{"manager": "kubelet", "fieldsV1": managed}]  # type: ignore[index]
            listed.append(item)
        return json.dumps({"kind": "List", "metadata": {}, "items": listed}, separators=(",", ":")).encode()

    return {
        "clinic pods (3 KB)": page(pod, 0),
        "pods with managedFields (10 KB)": page(pod, 200),
        "Nodes with managedFields (25 KB)": page(node, 600),
    }


if __name__ == "__main__":
    main()
