"""The leader says when a node's role signals disagree (issue 20): journal warning + Warning Event, once."""

from __future__ import annotations

from kubernetes import client

from piclusterd.cluster.kube_api import EventRecorder
from piclusterd.cluster.plan_report import PlanReporter
from piclusterd.core.cluster_view import ClusterView, Node
from piclusterd.sim.captured_audit import CapturedAudit
from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.testing.clusters import make_node


def unlabelled_server() -> Node:
    """A k3s server whose node-role labels were edited away: only k3s.io/node-args says what it is."""
    return Node(
        name="s1",
        allocatable_cpu_m=4000,
        allocatable_memory_b=4 * 1024**3,
        annotations={"k3s.io/node-args": '["server"]'},
    )


def test_a_server_without_role_labels_is_said_once_as_a_warning_and_an_event(
    kube: FakeKubeServer, api: client.ApiClient
) -> None:
    kube.put_object(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "s1"}, "status": {"allocatable": {"cpu": "4"}}}
    )
    audit = CapturedAudit()
    reporter = PlanReporter(
        identity="s1", events=EventRecorder(api, reporter="s1"), log=audit.logger, dry_run=False, topology=None
    )
    view = ClusterView((unlabelled_server(), make_node("a1")))
    for _ in range(3):  # three polls: said once
        reporter.say_role_disagreements(view)
    said = audit.named("cluster.roles_disagree")
    assert len(said) == 1 and said[0]["target"] == "s1"
    assert "k3s.io/node-args says k3s server" in said[0]["notes"][0] and "safer reading" in said[0]["notes"][0]
    events = [e for e in kube.list_objects("Event") if e.get("reason") == "NodeRolesDisagree"]
    assert len(events) == 1 and events[0]["type"] == "Warning" and "node-role.kubernetes.io" in events[0]["message"]
    # Labels fixed: nothing more is said; broken again: said again.
    reporter.say_role_disagreements(ClusterView((make_node("s1", server=True), make_node("a1"))))
    reporter.say_role_disagreements(view)
    assert len(audit.named("cluster.roles_disagree")) == 2
