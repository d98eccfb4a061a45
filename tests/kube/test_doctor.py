"""``piclusterctl doctor`` as a user runs it on a first cluster: the installed command, a real upsd, the fake
API server with clinic-5, and problems planted one at a time. It must pass a healthy cluster (exit 0) and
name each planted problem with its fix (exit 1)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from piclusterd.cluster.api_calls import DAEMON_API_CALLS
from piclusterd.config.cluster_key import create_key_file
from piclusterd.sim import fake_rbac
from piclusterd.sim.fake_api_server import DAEMON_TOKEN, FakeKubeServer, make_pdb
from piclusterd.testing.daemon_process import installed_script
from piclusterd.testing.nut_server import NutServer

pytestmark = pytest.mark.realnut

CLINIC = Path(__file__).resolve().parents[2] / "examples" / "clusters" / "clinic-5.json"
NODES = ("pi1", "pi2", "pi3", "pi4", "pi5")


def healthy_objects() -> list[dict[str, Any]]:
    """clinic-5 with a second replica of each critical workload (on another node) and its labels."""
    items: list[dict[str, Any]] = json.loads(CLINIC.read_text())["items"]
    extra = []
    for item in items:
        if item["kind"] == "Pod" and item["spec"].get("priority", 0) >= 1_000_000:
            twin = copy.deepcopy(item)
            twin["metadata"]["name"] += "-twin"
            twin["metadata"]["uid"] = twin["metadata"].get("uid", "") + "-twin"
            twin["spec"]["nodeName"] = "pi1" if item["spec"]["nodeName"] != "pi1" else "pi2"
            extra.append(twin)
    for item in items:  # the database's volume on network storage: it may move (the pinned case is its own test)
        if item["kind"] == "PersistentVolume":
            item["spec"].pop("nodeAffinity", None)
    return items + extra


@dataclass
class Site:
    """One node's view of a cluster: its config, its files, the tools on its PATH."""

    tmp: Path
    cluster: FakeKubeServer
    ups: NutServer

    def config(self, *, node_power: str | None = None, extra: str = "") -> Path:
        kubeconfig = self.cluster.write_kubeconfig(self.tmp / "kubeconfig", token=DAEMON_TOKEN)  # the daemon's
        key = self.tmp / "cluster.key"
        if not key.exists():
            create_key_file(str(key))
        if node_power is None:
            node_power = "".join(
                f'[node_power.{n}]\nmethod = "wol"\nmac = "dc:a6:32:00:00:0{i}"\n' for i, n in enumerate(NODES, 1)
            )
        path = self.tmp / "piclusterd.toml"
        path.write_text(
            f'[node]\nname = "pi1"\n[ups]\nhost = "{self.ups.host}"\nport = {self.ups.port}\n'
            f'name = "{self.ups.ups_name}"\n[battery]\ncapacity_wh = 84\n'
            f'[cluster]\nenabled = true\nkubeconfig = "{kubeconfig}"\nkey_file = "{key}"\n'
            f'ssh_key = "{self.tmp}/id_ed25519"\nssh_known_hosts = "{self.tmp}/known_hosts"\n{extra}'
            f'[daemon]\nruntime_dir = "{self.tmp}/run"\n{node_power}'
        )
        return path

    def tools(self, *, ntp: str = "yes", eeprom: str = "") -> dict[str, str]:
        """timedatectl and rpi-eeprom-config as a Pi has them (this machine may have neither)."""
        bin_dir = self.tmp / "bin"
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / "timedatectl").write_text(f"#!/bin/sh\necho {ntp}\n")
        (bin_dir / "rpi-eeprom-config").write_text(f"#!/bin/sh\nprintf '[all]\\nBOOT_UART=0\\n{eeprom}\\n'\n")
        for tool in bin_dir.iterdir():
            tool.chmod(0o755)
        return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    def doctor(
        self, config: Path, env: dict[str, str] | None = None, *, with_info: bool = False
    ) -> tuple[int, list[dict[str, Any]]]:
        done = subprocess.run(
            [installed_script("piclusterctl"), "doctor", "--config", str(config), "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env if env is not None else self.tools(),
        )
        assert done.returncode in (0, 1), done.stderr
        body = json.loads(done.stdout)
        assert body["exit"] == done.returncode
        return done.returncode, [f for f in body["findings"] if with_info or f["level"] != "info"]


def make_site(
    tmp_path: Path,
    objects: list[dict[str, Any]],
    *,
    rbac: fake_rbac.RbacAuthorizer | None = None,
    ups: Mapping[str, str] | None = None,
) -> Iterator[Site]:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text().split()[:2]
    (tmp_path / "known_hosts").write_text(
        "".join(f"192.168.10.1{i} {' '.join(public)}\n" for i in range(1, 6))  # the nodes' InternalIPs
    )
    with (
        FakeKubeServer(controller=True, rbac=rbac) as cluster,
        NutServer(
            {
                **NutServer.DEFAULT_VARIABLES,
                "ups.status": "OL",
                "battery.charge": "100",
                "battery.runtime": "3600",
                **(ups or {}),
            }
        ) as nut,
    ):
        cluster.load_objects({"kind": "List", "items": objects})
        cluster.run_controller_once()
        yield Site(tmp_path, cluster, nut)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from make_site(tmp_path, healthy_objects())


@pytest.fixture
def clinic(tmp_path: Path) -> Iterator[Site]:
    """clinic-5 as shipped: one replica of each critical workload."""
    yield from make_site(tmp_path, json.loads(CLINIC.read_text())["items"])


def test_a_healthy_cluster_passes(site: Site) -> None:
    code, findings = site.doctor(site.config())
    assert findings == [] and code == 0


def test_the_shipped_rbac_allows_every_call_the_daemon_makes(site: Site) -> None:
    """One SelfSubjectAccessReview per line of piclusterd.cluster.api_calls, as the daemon's ServiceAccount."""
    site.cluster.clear_requests()
    code, findings = site.doctor(site.config(), with_info=True)
    (rbac,) = [f for f in findings if f["check"] == "rbac"]
    reviews = [r for r in site.cluster.requests if r.path.endswith("/selfsubjectaccessreviews")]
    assert code == 0 and rbac["level"] == "info" and f"all {len(reviews)} calls" in rbac["message"]
    assert len(reviews) == len(DAEMON_API_CALLS) and {r.status for r in reviews} == {201}


def test_a_missing_rbac_rule_is_named_with_the_rule_to_add(tmp_path: Path) -> None:
    """deploy/rbac.yaml without pods/eviction create: doctor finds exactly that, with the rule, and exits 1."""
    documents = fake_rbac.shipped_rbac()
    for document in documents:
        if document.get("kind") == "ClusterRole":
            document["rules"] = [r for r in document["rules"] if r["resources"] != ["pods/eviction"]]
    for site in make_site(tmp_path, healthy_objects(), rbac=fake_rbac.RbacAuthorizer(documents)):
        code, findings = site.doctor(site.config())
    (missing,) = findings
    assert code == 1 and (missing["check"], missing["level"]) == ("rbac", "problem")
    assert missing["subject"] == "create pods/eviction"
    assert 'resources: ["pods/eviction"], verbs: ["create"]' in missing["fix"]
    assert "ClusterRole piclusterd in deploy/rbac.yaml" in missing["fix"]


def state(cluster: FakeKubeServer) -> dict[str, list[tuple[str, str, str]]]:
    """Every Node, Pod and PDB with its resourceVersion: what any write would change."""
    return {
        kind: sorted(
            (o["metadata"].get("namespace", ""), o["metadata"]["name"], o["metadata"]["resourceVersion"])
            for o in cluster.list_objects(kind)
        )
        for kind in ("Node", "Pod", "PodDisruptionBudget")
    }


def test_a_dry_run_eviction_a_pdb_refuses_names_the_pod_the_pdb_and_the_fix_and_changes_nothing(
    site: Site,
) -> None:
    """Server-side dry runs (the cordon with ?dryRun=All, each eviction with deleteOptions.dryRun: ["All"]):
    the PDB's refusal (429) is a finding; no pod, node or PDB changes."""
    pdb = make_pdb("mariadb", "clinic", match_labels={"app.kubernetes.io/name": "mariadb"}, max_unavailable=0)
    site.cluster.put_object(pdb)
    site.cluster.run_controller_once()
    site.cluster.clear_requests()
    before = state(site.cluster)
    code, findings = site.doctor(site.config())
    assert state(site.cluster) == before
    refused = [f for f in findings if f["check"] == "dry_run_eviction"]
    assert code == 1 and {f["subject"] for f in refused} == {"pod clinic/mariadb-0", "pod clinic/mariadb-0-twin"}
    assert all("PodDisruptionBudget clinic/mariadb" in f["message"] for f in refused)
    assert all("maxUnavailable: 1" in f["fix"] for f in refused)
    evictions = [r for r in site.cluster.requests if r.path.endswith("/eviction")]
    cordons = [r for r in site.cluster.requests if r.method == "PATCH" and "/nodes/" in r.path]
    assert evictions and all(r.body["deleteOptions"]["dryRun"] == ["All"] for r in evictions)
    assert len(cordons) == len(NODES) and all(r.query.get("dryRun") == "All" for r in cordons)


def test_a_critical_pod_on_a_local_path_volume_names_the_node_it_pins(clinic: Site) -> None:
    """clinic-5 as shipped: mariadb-0's claim is a k3s local-path volume on pi5, so pi5 is never shed."""
    _code, findings = clinic.doctor(clinic.config())
    (pinned,) = [f for f in findings if f["check"] == "pinned_volume"]
    assert pinned["subject"] == "pod clinic/mariadb-0"
    assert "claim clinic/data-mariadb-0" in pinned["message"] and "pi5 stays on during shedding" in pinned["message"]
    assert "network storage" in pinned["fix"]


@pytest.mark.parametrize(
    ("restart", "load", "said"),
    [
        # at or below the UPS's own low-battery level: the Pis would boot into LB
        ({"battery.charge.restart": "5", "battery.charge.low": "10"}, "", "at or below its own low-battery level"),
        # above LB, below critical_runtime (300 s) at 60 W of 84 Wh, 80 % usable: 7.4 %
        ({"battery.charge.restart": "6", "battery.charge.low": "3"}, "load_w = 60\n", "below the 7 % that"),
    ],
)
def test_a_ups_that_restores_its_output_too_early_is_a_warning(
    tmp_path: Path, restart: dict[str, str], load: str, said: str
) -> None:
    """The UPS's restart settings, read from a real upsd, judged as the daemon's start judges them."""
    for site in make_site(tmp_path, healthy_objects(), ups={**restart, "ups.delay.start": "30"}):
        config = site.config()
        config.write_text(config.read_text().replace("capacity_wh = 84\n", f"capacity_wh = 84\n{load}"))
        code, findings = site.doctor(config)
    (early,) = [f for f in findings if f["subject"].endswith("battery.charge.restart")]
    assert code == 1 and early["check"] == "ups_restart" and early["level"] == "warning"
    assert f"restores its output at {restart['battery.charge.restart']} %" in early["message"]
    assert said in early["message"] and "after ups.delay.start 30 s" in early["message"]
    assert "set_charge_restart" in early["fix"]


def test_a_ups_that_does_not_report_its_restart_settings_is_info(site: Site) -> None:
    _code, findings = site.doctor(site.config(), with_info=True)
    (said,) = [f for f in findings if f["check"] == "ups_restart"]
    assert said["level"] == "info" and "does not report battery.charge.restart nor ups.delay.start" in said["message"]


def test_a_pdb_that_blocks_every_drain_is_named_with_its_fix(site: Site) -> None:
    pdb = make_pdb("openmrs", "clinic", match_labels={"app.kubernetes.io/name": "openmrs"}, min_available=2)
    site.cluster.put_object(pdb)
    site.cluster.run_controller_once()
    code, findings = site.doctor(site.config())
    (blocking,) = [f for f in findings if f["check"] == "pdb_blocks_drain"]
    assert code == 1 and blocking["subject"] == "PodDisruptionBudget clinic/openmrs"
    assert "maxUnavailable: 1" in blocking["fix"]


def test_single_replicas_nothing_critical_and_missing_power_on_are_named(clinic: Site) -> None:
    site = clinic
    code, findings = site.doctor(site.config(node_power='[node_power.pi9]\nmethod = "manual"\n'))
    assert code == 1
    assert {f["subject"] for f in findings if f["check"] == "no_power_on_method"} == {
        "node pi2",
        "node pi3",
        "node pi4",
        "node pi5",
    }
    assert [f["subject"] for f in findings if f["check"] == "power_on_unknown_node"] == ["[node_power.pi9]"]
    single = {f["subject"].split("/")[1].split("-")[0] for f in findings if f["check"] == "critical_single_replica"}
    assert single == {"openmrs", "matrix"}  # mariadb-0 cannot move at all: its pinned_volume finding says so
    for pod in site.cluster.list_objects("Pod"):
        pod["spec"]["priority"] = 0
        pod["metadata"]["labels"].pop("picluster.io/critical", None)
        site.cluster.put_object(pod)
    _code, findings = site.doctor(site.config())
    assert [f["check"] for f in findings] == ["nothing_critical"]


def test_this_nodes_problems_are_named(site: Site) -> None:
    env = site.tools(ntp="no", eeprom="POWER_OFF_ON_HALT=1")
    (site.tmp / "id_ed25519").chmod(0o644)
    site.ups.set_many({"ups.status": "OB DISCHRG"})
    code, findings = site.doctor(site.config(), env)
    checks = {f["check"]: f for f in findings}
    assert code == 1
    assert set(checks) == {"clock", "eeprom", "ssh_key_mode", "on_battery"}
    assert "POWER_OFF_ON_HALT=1 but [cluster] power_off_on_halt = false" in checks["eeprom"]["message"]
    assert checks["ssh_key_mode"]["fix"] == f"sudo chmod 600 {site.tmp / 'id_ed25519'}"


def test_an_unreachable_ups_and_api_server_are_problems_not_tracebacks(site: Site, tmp_path: Path) -> None:
    config = site.config()
    text = config.read_text().replace(f"port = {site.ups.port}", "port = 1")
    text = text.replace(f'kubeconfig = "{tmp_path}/kubeconfig"', f'kubeconfig = "{tmp_path}/kubeconfig.dead"')
    (tmp_path / "kubeconfig.dead").write_text(
        (tmp_path / "kubeconfig").read_text().replace(f":{site.cluster.port}", ":1")
    )
    config.write_text(text)
    code, findings = site.doctor(config)
    assert code == 1
    assert {f["check"] for f in findings if f["level"] == "problem"} == {"power_source", "api"}


def test_the_last_minute_budget_is_checked_as_check_config_checks_it(site: Site) -> None:
    """Issue 19: doctor says how this node's pods end before a halt, and warns when critical_runtime leaves
    less than the last minute needs (pods, the OS's own shutdown, the UPS's delay)."""
    config = site.config()
    text = config.read_text().replace("[daemon]", '[shutdown]\nos_shutdown_time = "5m"\n[daemon]')
    config.write_text(text)
    code, findings = site.doctor(config)
    short = [f for f in findings if f["check"] == "last_minute"]
    assert code == 1 and "policy.critical_runtime" in {f["subject"] for f in short}
    done = subprocess.run(
        [installed_script("piclusterctl"), "doctor", "--config", str(config), "--json"],
        capture_output=True, text=True, timeout=120, env=site.tools(),
    )  # fmt: skip
    method = [f for f in json.loads(done.stdout)["findings"] if f["check"] == "pods_before_halt"]
    assert method and method[0]["message"].startswith("self-drain") and "kubelet-arg" in method[0]["fix"]


def test_a_config_it_cannot_read_is_exit_2_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "piclusterd.toml"
    bad.write_text('[cluster]\nenabled = "yes"\n')
    done = subprocess.run(
        [installed_script("piclusterctl"), "doctor", "--config", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "cluster.enabled" in done.stderr
