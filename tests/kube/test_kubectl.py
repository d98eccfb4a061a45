"""Debian's kubectl (package kubernetes-client, 1.20) against the fake API server.

A client no one here wrote is the best check that the fake speaks real Kubernetes: what ``kubectl get``
prints must match the fake's objects, ``cordon``/``uncordon`` must change ``spec.unschedulable``, and
``kubectl drain`` must go through the Eviction API and wait on a PodDisruptionBudget until the controller's
replacement is Ready. The binary comes from ``tools/get-test-kubectl`` (``.ci/run`` calls it).
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from piclusterd.cluster.kube_api import EventRecorder
from piclusterd.sim.fake_api_server import FakeKubeServer, make_node, make_pdb, make_pod
from piclusterd.sim.fake_clock import FakeClock

REPO = Path(__file__).resolve().parents[2]
CLINIC_5 = REPO / "examples" / "clusters" / "clinic-5.json"
KUBECTL = Path(os.environ.get("PICLUSTERD_TEST_KUBECTL", "/var/cache/piclusterd-test/kubectl/root/usr/bin/kubectl"))
WAIT_S = 60.0  # generous real-time bound for kubectl to react; never a speed assertion


@pytest.fixture(scope="module")
def kubectl_binary() -> Path:
    if not os.access(KUBECTL, os.X_OK):
        pytest.fail(
            f"Debian's kubectl is not at {KUBECTL}. Get it with `sudo tools/get-test-kubectl` (apt-get download "
            "kubernetes-client, unpacked into /var/cache/piclusterd-test/kubectl; .ci/run does it), or point "
            "PICLUSTERD_TEST_KUBECTL at a kubectl 1.20 binary."
        )
    return KUBECTL


class Kubectl:
    def __init__(self, binary: Path, server: FakeKubeServer, home: Path) -> None:
        self.binary = binary
        self.kubeconfig = server.write_kubeconfig(home / "kubeconfig")
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}

    def argv(self, *args: str) -> list[str]:
        return [str(self.binary), "--kubeconfig", str(self.kubeconfig), *args]

    def __call__(self, *args: str) -> str:
        done = subprocess.run(self.argv(*args), capture_output=True, text=True, env=self.env, timeout=WAIT_S)
        assert done.returncode == 0, f"kubectl {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env
        )


def table(text: str) -> list[dict[str, str]]:
    """kubectl's column output as rows keyed by header (columns split on runs of 2+ spaces)."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1 : i + 1] == " " + ch)]
    starts = [s for s in starts if s == 0 or header[s - 2 : s] == "  "]
    names = [header[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return [
        {name: line[a:b].strip() for name, a, b in zip(names, starts, [*starts[1:], None], strict=True)}
        for line in lines[1:]
    ]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=0.0, epoch=1_795_000_000.0)


@pytest.fixture
def server(clock: FakeClock) -> Iterator[FakeKubeServer]:
    with FakeKubeServer(clock=clock, controller=True, ready_delay_s=30.0) as fake:
        yield fake


@pytest.fixture
def kubectl(kubectl_binary: Path, server: FakeKubeServer, tmp_path: Path) -> Kubectl:
    return Kubectl(kubectl_binary, server, tmp_path)


def test_get_nodes_and_pods_wide_show_the_fakes_objects(
    server: FakeKubeServer, kubectl: Kubectl, clock: FakeClock
) -> None:
    server.load_objects(CLINIC_5)
    server.power_off_node("pi4")
    clock.advance(40)  # NotReady after the node-monitor grace period
    server.run_controller_once()
    server.update_object("Node", None, "pi5", lambda n: n["spec"].update(unschedulable=True))

    nodes = {row["NAME"]: row for row in table(kubectl("get", "nodes", "-o", "wide"))}
    assert set(nodes) == {n["metadata"]["name"] for n in server.list_objects("Node")}
    assert nodes["pi1"]["STATUS"] == "Ready" and nodes["pi1"]["ROLES"] == "control-plane,etcd,master"
    assert nodes["pi4"]["STATUS"] == "NotReady" and nodes["pi4"]["ROLES"] == "<none>"
    assert nodes["pi5"]["STATUS"] == "Ready,SchedulingDisabled"
    assert nodes["pi1"]["INTERNAL-IP"] == "192.168.10.11"

    pods = {(row["NAMESPACE"], row["NAME"]): row for row in table(kubectl("get", "pods", "-A", "-o", "wide"))}
    expected = {
        (p["metadata"]["namespace"], p["metadata"]["name"]): p["spec"]["nodeName"] for p in server.list_objects("Pod")
    }
    assert {key: row["NODE"] for key, row in pods.items()} == expected
    # As on a real cluster, the pods of a node that went away still read Running from their last status.
    assert all(row["READY"] == "1/1" and row["STATUS"] == "Running" for row in pods.values())


def test_ages_come_from_the_servers_clock(server: FakeKubeServer, kubectl: Kubectl, clock: FakeClock) -> None:
    server.put_object(make_node("pi1"))
    clock.advance(3 * 3600 + 20 * 60)
    assert table(kubectl("get", "nodes"))[0]["AGE"] == "3h20m"


def test_get_events_shows_what_piclusterd_recorded(server: FakeKubeServer, kubectl: Kubectl, clock: FakeClock) -> None:
    server.put_object(make_node("pi3"))
    api = server.api_client()
    try:
        recorder = EventRecorder(api, reporter="pi1", wall=clock.wall)  # on the cluster's clock, as in the demo
        recorder.emit("pi3", "PowerShedPlanned", "power off pi3: battery lasts 4h")
    finally:
        api.close()  # type: ignore[no-untyped-call]
    clock.advance(90)
    rows = table(kubectl("get", "events", "-A"))
    assert [(r["LAST SEEN"], r["TYPE"], r["REASON"], r["OBJECT"], r["MESSAGE"]) for r in rows] == [
        ("90s", "Normal", "PowerShedPlanned", "node/pi3", "power off pi3: battery lasts 4h")
    ]


def test_get_pdb_shows_the_disruption_controllers_status(server: FakeKubeServer, kubectl: Kubectl) -> None:
    server.put_object(make_node("pi1"))
    for name in ("web-a", "web-b"):
        server.put_object(make_pod(name, node="pi1", labels={"app": "web"}, owner=("ReplicaSet", "web-1")))
    server.put_object(make_pdb("web", match_labels={"app": "web"}, min_available=1))
    [row] = table(kubectl("get", "pdb", "-A"))
    assert (row["NAMESPACE"], row["NAME"], row["MIN AVAILABLE"], row["MAX UNAVAILABLE"]) == (
        "default",
        "web",
        "1",
        "N/A",
    )
    assert row["ALLOWED DISRUPTIONS"] == "1"


def test_cordon_and_uncordon_set_unschedulable(server: FakeKubeServer, kubectl: Kubectl) -> None:
    server.put_object(make_node("pi2"))
    assert "node/pi2 cordoned" in kubectl("cordon", "pi2")
    assert server.get_object("Node", None, "pi2")["spec"].get("unschedulable") is True  # type: ignore[index]
    assert "node/pi2 uncordoned" in kubectl("uncordon", "pi2")
    assert not server.get_object("Node", None, "pi2")["spec"].get("unschedulable")  # type: ignore[index]


def wait_for(done: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not done():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"kubectl did not {what} within {WAIT_S:.0f} s")
        time.sleep(0.05)


def test_drain_evicts_and_waits_on_the_pdb_until_the_replacement_is_ready(
    server: FakeKubeServer, kubectl: Kubectl, clock: FakeClock
) -> None:
    for name in ("pi1", "pi2"):
        server.put_object(make_node(name))
    for name in ("web-a", "web-b"):
        server.put_object(make_pod(name, node="pi2", labels={"app": "web"}, owner=("ReplicaSet", "web-1")))
    server.put_object(make_pod("exporter-x", node="pi2", owner=("DaemonSet", "exporter")))
    server.put_object(make_pdb("web", match_labels={"app": "web"}, min_available=1))

    drain = kubectl.start("drain", "pi2", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=120s")
    try:

        def blocked() -> bool:
            return any(r.status == 429 and r.path.endswith("/eviction") for r in server.requests)

        wait_for(blocked, "hit the PodDisruptionBudget")
        # One pod went (the budget allowed one disruption); its replacement is bound but not Ready yet,
        # so the other stays, and kubectl keeps retrying instead of giving up or deleting it.
        assert server.get_object("Node", None, "pi2")["spec"]["unschedulable"] is True  # type: ignore[index]
        web = [p for p in server.list_objects("Pod") if p["metadata"]["labels"].get("app") == "web"]
        staying = [p for p in web if p["spec"].get("nodeName") == "pi2" and "deletionTimestamp" not in p["metadata"]]
        assert len(staying) == 1  # the evicted one is Terminating for its 30 s grace period
        assert drain.poll() is None

        # Time passes: the replacement's containers start, the evicted pods finish terminating (graceful
        # termination), and kubectl, which waits for them to be gone, sees them go.
        deadline = time.monotonic() + WAIT_S
        while drain.poll() is None and time.monotonic() < deadline:
            clock.advance(5.0)
            server.run_controller_once()
            time.sleep(0.2)
        output, _ = drain.communicate(timeout=WAIT_S)
    finally:
        if drain.poll() is None:
            drain.kill()
            drain.communicate()
    assert drain.returncode == 0, output
    assert "node/pi2 evicted" in output or "node/pi2 drained" in output
    assert "ignoring DaemonSet-managed Pods: default/exporter-x" in output
    pods = {p["metadata"]["name"]: p for p in server.list_objects("Pod")}
    assert "web-a" not in pods and "web-b" not in pods and "exporter-x" in pods
    replacements = [p for p in pods.values() if p["metadata"]["labels"].get("app") == "web"]
    assert len(replacements) == 2 and {p["spec"]["nodeName"] for p in replacements} == {"pi1"}
    writes = [(r.method, r.path) for r in server.requests if r.method != "GET"]
    assert ("DELETE", "/api/v1/namespaces/default/pods/web-a") not in writes  # evicted, never deleted
    evicted = {path.split("/")[-2] for method, path in writes if path.endswith("/eviction") and method == "POST"}
    assert evicted == {"web-a", "web-b"}


def test_get_nodes_watch_prints_changes_as_they_happen(
    server: FakeKubeServer, kubectl: Kubectl, clock: FakeClock
) -> None:
    for name in ("pi1", "pi2"):
        server.put_object(make_node(name))
    lines: queue.Queue[str] = queue.Queue()
    watch = kubectl.start("get", "nodes", "-w")
    assert watch.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in watch.stdout], daemon=True)  # type: ignore[union-attr]
    reader.start()

    def next_line() -> str:
        return lines.get(timeout=WAIT_S).rstrip("\n")

    try:
        assert next_line().split()[:2] == ["NAME", "STATUS"]
        assert {next_line().split()[0], next_line().split()[0]} == {"pi1", "pi2"}
        server.update_object("Node", None, "pi2", lambda n: n["spec"].update(unschedulable=True))
        assert next_line().split()[:2] == ["pi2", "Ready,SchedulingDisabled"]
        assert next_line().split()[:2] == ["pi2", "Ready,SchedulingDisabled"]  # + the unschedulable taint
        server.power_off_node("pi1")
        clock.advance(40)  # NotReady after the node-monitor grace period
        server.run_controller_once()
        assert next_line().split()[:2] == ["pi1", "NotReady"]
    finally:
        watch.kill()
        watch.communicate()


def test_kubectl_needs_no_fallbacks(server: FakeKubeServer, kubectl: Kubectl) -> None:
    """Every request kubectl made in a session was answered: no 404 on discovery, no 405, no 500."""
    server.load_objects(CLINIC_5)
    for args in (
        ("get", "nodes,pods", "-A", "-o", "wide"),
        ("get", "ds", "-A"),
        ("get", "leases", "-A"),
        ("get", "node", "pi1"),
        ("describe", "node", "pi1"),
        ("describe", "pod", "-n", "clinic", "mariadb-0"),
    ):
        kubectl(*args)
    # The one object kubectl looks for that is not there: the kubelet's heartbeat Lease (describe node shows
    # it), not modelled by the fake, whose nodes have no kubelet. Everything else was served.
    heartbeat = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/pi1"
    failed = [(r.method, r.path, r.status) for r in server.requests if r.status >= 400]
    assert failed == [("GET", heartbeat, 404)]


def test_a_user_follows_the_demo_with_kubectl(kubectl_binary: Path, tmp_path: Path) -> None:
    """``piclusterd demo --hold`` prints a kubectl command; that command works and shows the demo's cluster."""
    script = Path(sys.executable).with_name("piclusterd")
    demo = subprocess.Popen(
        [str(script), "demo", "--outage", "blip", "--speed", "0", "--hold"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert demo.stdout is not None
    printed: list[str] = []
    try:
        for line in demo.stdout:
            printed.append(line)
            if "Ctrl-C to end" in line:
                break
        text = "".join(printed)
        command = re.search(r"^  (kubectl --kubeconfig (\S+) get nodes -o wide -w)$", text, re.MULTILINE)
        assert command is not None, text
        kubeconfig = command.group(2)
        done = subprocess.run(
            [str(kubectl_binary), "--kubeconfig", kubeconfig, "get", "nodes", "-o", "wide"],
            capture_output=True,
            text=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin"), "HOME": str(tmp_path)},
            timeout=WAIT_S,
        )
        assert done.returncode == 0, done.stderr
        rows = table(done.stdout)
        assert [(r["NAME"], r["STATUS"]) for r in rows] == [(f"pi{i}", "Ready") for i in range(1, 6)]
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=WAIT_S)
    finally:
        if demo.poll() is None:
            demo.kill()
        demo.communicate()
    assert demo.returncode == 0
    assert not Path(kubeconfig).exists()  # the demo cleans up after itself


def test_get_all_and_describe_node_show_what_runs_where(server: FakeKubeServer, kubectl: Kubectl) -> None:
    server.load_objects(CLINIC_5)
    listed = kubectl("get", "all", "-A")
    pods = [p["metadata"]["name"] for p in server.list_objects("Pod")]
    assert all(f"pod/{name}" in listed for name in pods)
    assert "daemonset.apps/node-exporter" in listed  # the owner kubectl drain checks, made from the pods
    described = kubectl("describe", "node", "pi4")
    on_pi4 = [p["metadata"]["name"] for p in server.list_objects("Pod") if p["spec"]["nodeName"] == "pi4"]
    assert f"Non-terminated Pods:          ({len(on_pi4)} in total)" in described
    assert all(name in described for name in on_pi4)


def test_create_apply_and_delete_a_pdb_from_a_file(server: FakeKubeServer, kubectl: Kubectl, tmp_path: Path) -> None:
    """As an operator would at 2 AM: no --validate=false needed (kubectl fetches /openapi/v2 first)."""
    server.put_object(make_node("pi1"))
    for name in ("web-a", "web-b"):
        server.put_object(make_pod(name, node="pi1", labels={"app": "web"}, owner=("ReplicaSet", "web-1")))
    manifest = tmp_path / "pdb.json"
    pdb = make_pdb("web", match_labels={"app": "web"}, min_available=1)
    manifest.write_text(json.dumps(pdb))
    assert "poddisruptionbudget.policy/web created" in kubectl("create", "-f", str(manifest))
    assert server.get_object("pdb", "default", "web")["status"]["disruptionsAllowed"] == 1  # type: ignore[index]
    pdb["spec"]["minAvailable"] = 2
    manifest.write_text(json.dumps(pdb))
    assert "poddisruptionbudget.policy/web configured" in kubectl("apply", "-f", str(manifest))
    [row] = table(kubectl("get", "pdb"))
    assert (row["MIN AVAILABLE"], row["ALLOWED DISRUPTIONS"]) == ("2", "0")
    assert 'poddisruptionbudget.policy "web" deleted' in kubectl("delete", "-f", str(manifest))
    assert server.list_objects("pdb") == []


def test_drain_refuses_a_pod_no_controller_would_recreate(server: FakeKubeServer, kubectl: Kubectl) -> None:
    """kubectl's own safety check works against the fake: an unmanaged pod stops the drain, nothing is evicted."""
    server.put_object(make_node("pi2"))
    server.put_object(make_pod("scratch", node="pi2", owner=None))
    done = subprocess.run(
        kubectl.argv("drain", "pi2", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=30s"),
        capture_output=True,
        text=True,
        env=kubectl.env,
        timeout=WAIT_S,
    )
    assert done.returncode != 0
    assert "cannot delete Pods not managed by ReplicationController" in done.stderr
    assert server.get_object("Pod", "default", "scratch") is not None
    assert not any(r.path.endswith("/eviction") for r in server.requests)
    # kubectl cordons first and leaves the node cordoned, as on a real cluster.
    assert server.get_object("Node", None, "pi2")["spec"]["unschedulable"] is True  # type: ignore[index]


def test_a_watch_ends_when_the_demos_cluster_goes_away(server: FakeKubeServer, kubectl: Kubectl) -> None:
    """A user following the demo with kubectl -w gets their prompt back when it ends, not a hung terminal."""
    server.put_object(make_node("pi1"))
    watch = kubectl.start("get", "nodes", "-w")
    assert watch.stdout is not None
    first = watch.stdout.readline()
    assert first.split()[:2] == ["NAME", "STATUS"]
    assert watch.stdout.readline().split()[:2] == ["pi1", "Ready"]
    server.stop()
    try:
        ended = watch.wait(timeout=WAIT_S)  # raises (the test fails) if kubectl hangs on
    finally:
        if watch.poll() is None:
            watch.kill()
        watch.communicate()
    assert ended == 0, "kubectl -w should end quietly when the server closes the watch"


def test_scale_a_deployment_and_get_deploy_as_an_operator_would(
    server: FakeKubeServer, kubectl: Kubectl, clock: FakeClock
) -> None:
    """``kubectl scale deployment/x --replicas=N`` goes through the scale subresource; ``get deploy`` shows
    the Deployment controller's status, the pods going and coming back."""
    server.load_objects(CLINIC_5)
    rows = {row["NAME"]: row for row in table(kubectl("get", "deploy", "-n", "clinic"))}
    assert (rows["lab-reports"]["READY"], rows["lab-reports"]["UP-TO-DATE"], rows["lab-reports"]["AVAILABLE"]) == (
        "2/2",
        "2",
        "2",
    )
    assert "deployment.apps/lab-reports scaled" in kubectl(
        "scale", "-n", "clinic", "deployment/lab-reports", "--replicas=0"
    )
    assert any(r.path.endswith("/deployments/lab-reports/scale") and r.method == "PATCH" for r in server.requests)
    clock.advance(31)
    server.run_controller_once()
    [row] = [r for r in table(kubectl("get", "deploy", "-n", "clinic")) if r["NAME"] == "lab-reports"]
    assert row["READY"] == "0/0"
    assert not [p for p in server.list_objects("pods", "clinic") if p["metadata"]["name"].startswith("lab-reports-")]
    kubectl("scale", "-n", "clinic", "deployment/lab-reports", "--replicas=2")
    clock.advance(31)  # scheduled, then Ready after the server's 30 s ready delay
    server.run_controller_once()
    server.run_controller_once()
    [row] = [r for r in table(kubectl("get", "deploy", "-n", "clinic")) if r["NAME"] == "lab-reports"]
    assert row["READY"] == "2/2"
    jobs = kubectl("get", "rs,sts,jobs", "-n", "clinic")
    assert "replicaset.apps/lab-reports-qb89fn5sgz" in jobs and "statefulset.apps/mariadb" in jobs
