"""The node lifecycle and taint-eviction controllers in the fake API server (issue 14, finding 5).

Timing may be compressed (``node_monitor_grace_s``) but never skipped.
"""

from __future__ import annotations

from typing import Any

import pytest

from piclusterd.sim.fake_api_server import FakeKubeServer, make_node, make_pod
from piclusterd.sim.fake_clock import FakeClock

NS = "default"
MERGE = "application/merge-patch+json"


def taints(kube: FakeKubeServer, node: str) -> set[tuple[str, str]]:
    found = kube.get_object("nodes", None, node)
    assert found is not None
    return {(t["key"], t["effect"]) for t in found["spec"].get("taints") or []}


def ready(kube: FakeKubeServer, node: str) -> str:
    found = kube.get_object("nodes", None, node)
    assert found is not None
    return next(c["status"] for c in found["status"]["conditions"] if c["type"] == "Ready")


def test_cordon_adds_the_unschedulable_taint_and_uncordon_removes_it(kube: FakeKubeServer) -> None:
    """pkg/controller/nodelifecycle/node_lifecycle_controller.go doNoScheduleTaintingPass: a node with
    spec.unschedulable gets node.kubernetes.io/unschedulable:NoSchedule (the old fake never added it)."""
    kube.put_object(make_node("pi1"))
    assert kube.call("PATCH", "/api/v1/nodes/pi1", {"spec": {"unschedulable": True}}, content_type=MERGE).status == 200
    assert taints(kube, "pi1") == {("node.kubernetes.io/unschedulable", "NoSchedule")}
    assert kube.call("PATCH", "/api/v1/nodes/pi1", {"spec": {"unschedulable": None}}, content_type=MERGE).status == 200
    assert taints(kube, "pi1") == set()


def test_a_powered_off_node_looks_ready_for_the_node_monitor_grace_period(clock: FakeClock) -> None:
    """tryUpdateNodeHealth: Ready turns Unknown only when the kubelet has not posted status for
    --node-monitor-grace-period (40 s in Kubernetes and k3s), so power-off confirmation takes 40 s or more.
    The old fake turned the node NotReady at once."""
    with FakeKubeServer(clock=clock) as kube:
        kube.put_object(make_node("pi1"))
        kube.power_off_node("pi1")
        clock.advance(39.9)
        kube.run_controller_once()
        assert ready(kube, "pi1") == "True" and taints(kube, "pi1") == set()
        clock.advance(0.1)
        kube.run_controller_once()
        assert ready(kube, "pi1") == "Unknown"
        assert taints(kube, "pi1") == {
            ("node.kubernetes.io/unreachable", "NoSchedule"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
        }


def test_the_grace_period_can_be_compressed_but_not_skipped(clock: FakeClock) -> None:
    with FakeKubeServer(clock=clock, node_monitor_grace_s=2.0) as kube:
        kube.put_object(make_node("pi1"))
        kube.power_off_node("pi1")
        kube.run_controller_once()
        assert ready(kube, "pi1") == "True"
        clock.advance(2)
        kube.run_controller_once()
        assert ready(kube, "pi1") == "Unknown"
    with pytest.raises(ValueError, match="never skipped"):
        FakeKubeServer(clock=clock, node_monitor_grace_s=0)


def test_a_not_ready_node_gets_the_not_ready_taints(kube: FakeKubeServer) -> None:
    """doNoScheduleTaintingPass and doNoExecuteTaintingPass: Ready=False -> node.kubernetes.io/not-ready."""
    kube.put_object(make_node("pi1", ready=False))
    assert taints(kube, "pi1") == {
        ("node.kubernetes.io/not-ready", "NoSchedule"),
        ("node.kubernetes.io/not-ready", "NoExecute"),
    }


def pod_on(name: str, node: str, **extra: Any) -> dict[str, Any]:
    return make_pod(name, node=node, owner=("ReplicaSet", "web-5d8f"), labels={"app": "web"}, **extra)


def test_pods_are_evicted_by_taint_after_their_toleration_seconds(clock: FakeClock) -> None:
    """pkg/controller/tainteviction/taint_eviction.go: a pod tolerating the unreachable NoExecute taint for
    300 s (the DefaultTolerationSeconds admission plugin's default) is deleted 300 s after the taint appears,
    with the DisruptionTarget reason DeletionByTaintManager; on a dead node it stays Terminating. A pod that
    tolerates the taint forever stays. The old fake never evicted by taint."""
    with FakeKubeServer(clock=clock, graceful_deletion=True) as kube:
        kube.put_object(make_node("pi1"))
        kube.put_object(pod_on("web-a", "pi1"))
        forever = [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]
        kube.put_object(pod_on("agent", "pi1", tolerations=forever))
        kube.power_off_node("pi1")
        clock.advance(40)
        kube.run_controller_once()  # unreachable from now on
        clock.advance(299)
        kube.run_controller_once()
        pod = kube.get_object("pods", NS, "web-a")
        assert pod is not None and "deletionTimestamp" not in pod["metadata"]
        clock.advance(1)
        kube.run_controller_once()
        pod = kube.get_object("pods", NS, "web-a")
        assert pod is not None and pod["metadata"].get("deletionTimestamp")  # Terminating, its kubelet is dead
        target = next(c for c in pod["status"]["conditions"] if c["type"] == "DisruptionTarget")
        assert target["reason"] == "DeletionByTaintManager"
        agent = kube.get_object("pods", NS, "agent")
        assert agent is not None and "deletionTimestamp" not in agent["metadata"]


def test_a_pod_that_does_not_tolerate_a_no_execute_taint_goes_at_once(clock: FakeClock, kube: FakeKubeServer) -> None:
    """taint_eviction.go: a NoExecute taint a pod does not tolerate deletes it without waiting; the deletion is
    graceful (strategy.go CheckGracefulDelete), so the pod is Terminating at once and gone after its 30 s grace
    period, its kubelet being alive."""
    kube.put_object(make_node("pi1"))
    kube.put_object(pod_on("web-a", "pi1"))
    taint = {"key": "maintenance", "effect": "NoExecute"}
    kube.update_object("nodes", None, "pi1", lambda n: n["spec"].update(taints=[taint]))
    pod = kube.get_object("pods", NS, "web-a")
    assert pod is not None and pod["metadata"].get("deletionTimestamp")  # Terminating at once
    clock.advance(30)
    kube.run_controller_once()
    assert kube.get_object("pods", NS, "web-a") is None
