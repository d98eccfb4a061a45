"""The fake API server's tables print ages and columns as kube-apiserver does (kubectl shows them as is)."""

from __future__ import annotations

import pytest

from piclusterd.sim.kubectl_tables import human_duration, render_table, wants_table


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5, "<invalid>"),
        (-0.5, "0s"),
        (45, "45s"),
        (119, "119s"),
        (120, "2m"),
        (303, "5m3s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600 + 20 * 60, "3h20m"),
        (5 * 3600, "5h"),
        (30 * 3600, "30h"),
        (5 * 86400 + 7 * 3600, "5d7h"),
        (40 * 86400, "40d"),
        (3 * 365 * 86400 + 10 * 86400, "3y10d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_ages_read_as_in_kubectl(seconds: float, shown: str) -> None:
    assert human_duration(seconds) == shown


def test_only_a_meta_v1_table_is_served() -> None:
    kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io"
    assert wants_table(kubectl)
    assert not wants_table("application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")
    assert not wants_table("application/json")


def test_a_terminating_pod_reads_terminating_and_wide_columns_have_priority_1() -> None:
    pod = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": "web-a",
            "namespace": "default",
            "creationTimestamp": "2026-11-24T02:00:00Z",
            "deletionTimestamp": "2026-11-24T02:10:00Z",
        },
        "spec": {"nodeName": "pi2", "containers": [{"name": "main"}, {"name": "sidecar"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "podIP": "10.42.0.7"},
    }
    now = 1_795_000_000.0  # any time: only the age depends on it
    table = render_table("pods", [pod], now, include_object="Object")
    columns = [(c["name"], c["priority"]) for c in table["columnDefinitions"]]
    assert columns[:5] == [("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0), ("Age", 0)]
    assert ("Node", 1) in columns and ("IP", 1) in columns
    [row] = table["rows"]
    assert row["cells"][:4] == ["web-a", "2/2", "Terminating", 0]
    assert row["cells"][5:7] == ["10.42.0.7", "pi2"]
    assert row["object"] is pod
