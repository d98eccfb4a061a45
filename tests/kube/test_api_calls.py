"""The table of the daemon's Kubernetes calls (``piclusterd.cluster.api_calls``) cannot drift from the code:
every client method the daemon calls is on a line of it, and every request the daemons make through a whole
long night (shedding, the full shutdown, the restore) is covered by a line. ``piclusterctl doctor`` asks the
API server about each line, so a call missing here would be a 403 doctor never warned of."""

from __future__ import annotations

import datetime
import re
import urllib.parse
from pathlib import Path

from kubernetes import client as k8s

from piclusterd.cluster.api_calls import DAEMON_API_CALLS, needed_permissions
from piclusterd.config.settings import ShedSettings
from piclusterd.sim import fake_rbac
from piclusterd.sim.cluster_world import ClusterWorld
from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scenarios import load_scenario
from piclusterd.testing.clusters import with_network_volumes

REPO = Path(__file__).resolve().parents[2]
CLINIC = REPO / "piclusterd" / "sim" / "data" / "clinic-5.json"
NAMES = ("pi1", "pi2", "pi3", "pi4", "pi5")
DAEMON_USER = "system:serviceaccount:piclusterd:piclusterd"
#: doctor's own calls: a SelfSubjectAccessReview is allowed to every authenticated user (system:basic-user).
DOCTOR_ONLY = {"create_self_subject_access_review"}
API_CLASSES = (
    k8s.CoreV1Api,
    k8s.PolicyV1Api,
    k8s.CoordinationV1Api,
    k8s.AuthorizationV1Api,
    k8s.AppsV1Api,
    k8s.BatchV1Api,
)


def client_methods_called(root: Path) -> set[str]:
    """Every name in the daemon's code that is a method of the client's API classes."""
    verbs = ("read_", "list_", "create_", "replace_", "patch_", "delete_", "connect_")
    known = {name for cls in API_CLASSES for name in dir(cls) if name.startswith(verbs)}
    sources = [*(root / "piclusterd" / "cluster").glob("*.py"), *(root / "piclusterd" / "node").glob("*.py")]
    sources.append(root / "piclusterd" / "cli.py")
    found: set[str] = set()
    for source in sources:
        found |= set(re.findall(r"\.([a-z_]+)\b", source.read_text())) & known
    return found


def test_every_client_method_the_daemon_calls_is_in_the_table() -> None:
    tabled = {method for call in DAEMON_API_CALLS for method in call.methods}
    assert client_methods_called(REPO) - DOCTOR_ONLY <= tabled
    assert tabled <= client_methods_called(REPO)  # and no line for a call the code no longer makes


def test_every_request_of_a_long_night_is_covered_by_the_table() -> None:
    """Shedding, the full shutdown (the outage record), the restore and the Events, as the daemons' own
    ServiceAccount: each request's RBAC attributes (as kube-apiserver derives them) match a line."""
    scenario = load_scenario(CLINIC)
    settings = ShedSettings(scenario.policy, scenario.battery, scenario.hardware, dry_run=False)
    evening = datetime.datetime(2026, 11, 24, 17, 0, tzinfo=datetime.UTC).timestamp()
    clock = FakeClock(start=1000.0, epoch=evening - 1010.0)
    with FakeKubeServer(clock=clock, controller=True, ready_delay_s=20.0) as server:
        server.load_objects(with_network_volumes(CLINIC))
        server.run_controller_once()
        world = ClusterWorld(server, clock, NAMES, settings)
        try:
            server.clear_requests()
            world.run(10)
            world.ups.drive(ups_status="OB DISCHRG", battery_charge="100", battery_runtime="8000", ups_realpower="23")
            world.run_until(lambda: len(world.events("node.powered_off")) == 3, max_s=1200, step_s=5)
            world.ups.drive(ups_status="OB DISCHRG LB", battery_charge="18", battery_runtime="200", ups_realpower="14")
            world.run_until(lambda: not any(pi.alive for pi in world.pis.values()), max_s=900)
            clock.advance(9 * 3600)
            world.ups.drive(ups_status="OL CHRG", battery_charge="5", battery_runtime="60", ups_realpower="0")
            for name in NAMES:
                world.reboot(name)
            world.run_until(lambda: bool(world.events("outage.summary")), max_s=600, step_s=2)
        finally:
            world.close()
        requests = [r for r in server.requests if r.user == DAEMON_USER]
    permissions = needed_permissions(
        DAEMON_API_CALLS, lease_namespace="piclusterd", lease_name="piclusterd-leader", outage_namespace="piclusterd"
    )
    seen = set()
    uncovered = set()
    for record in requests:
        parts = [urllib.parse.unquote(p) for p in record.path.split("/") if p]
        attrs = fake_rbac.request_attributes(record.method, parts, record.query)
        key = (attrs.verb, attrs.api_group, attrs.resource, attrs.subresource, attrs.namespace, attrs.name)
        matching = [p for p in permissions if p.covers(*key)]
        if matching:
            seen.update(matching)
        else:
            uncovered.add(key)
    assert requests and uncovered == set()
    # The path reached most of the table (watches and the self-drain's delete are the informer's and the
    # last minute's, covered by the method check above).
    assert {(p.verb, p.resource_path) for p in seen} >= {
        ("patch", "nodes"),
        ("create", "pods/eviction"),
        ("create", "configmaps"),
        ("update", "leases"),
        ("create", "events"),
    }
