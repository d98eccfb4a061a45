"""`piclusterctl plan` on real-shaped k3s dumps (issue 20): what an operator must be able to read from it.

The snapshots are tests/planner/fixtures/k3s-3*.json (generate.py there says what each holds). Each test is
one finding of issue 20 and runs the installed console script, as an operator does.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from piclusterd.core.cluster_view import parse_kubectl_list
from piclusterd.testing.daemon_process import installed_script

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SERVER, AGENT1, AGENT2 = "k3s-server", "k3s-agent-1", "k3s-agent-2"
# 20 Wh does not last the 4 h target: the plan sheds what it can.
SHORT = ("--on-battery", "--battery-wh", "20")


def plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [installed_script("piclusterctl"), "plan", *args], capture_output=True, text=True, timeout=120, check=False
    )


def plan_json(fixture: str, *args: str) -> dict[str, Any]:
    done = plan("--snapshot", str(FIXTURES / fixture), *args, "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_fixtures_are_what_generate_py_writes() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("k3s_fixtures", FIXTURES / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    for name, content in generate.snapshots().items():
        assert json.loads((FIXTURES / name).read_text()) == content, f"run tests/planner/fixtures/generate.py: {name}"


# --- Finding 1: roles from every signal k3s gives ---------------------------------------------------------


def test_a_k3s_server_without_role_labels_is_never_shed() -> None:
    result = plan_json("k3s-3-server-unlabelled.json", *SHORT)
    assert SERVER not in result["shed"]
    assert {(r["node"], r["rule"]) for r in result["refused"]} == {(SERVER, "last_control_plane")}
    # Its pods stay where the API server is: none is sent to an agent.
    moved_from_server = [m for a in result["actions"] if a["node"] == SERVER for m in a["moves"]]
    assert moved_from_server == []
    # And the plan says it read the role from k3s.io/node-args, the safer reading.
    server = next(r for r in result["roles"] if r["node"] == SERVER)
    assert server["role"].startswith("server")
    assert any("k3s.io/node-args says k3s server" in note and "safer reading" in note for note in server["notes"])


def test_the_text_output_says_the_role_labels_and_node_args_disagree() -> None:
    done = plan("--snapshot", str(FIXTURES / "k3s-3-server-unlabelled.json"), *SHORT)
    assert done.returncode == 0, done.stderr
    assert f"{SERVER}: k3s.io/node-args says k3s server, but no node-role.kubernetes.io/control-plane" in done.stdout


@pytest.mark.parametrize(
    ("labels", "annotations", "control_plane", "etcd", "noted"),
    [
        ({}, {"k3s.io/node-args": '["server"]'}, True, False, True),
        ({}, {"k3s.io/node-args": '["server","--cluster-init"]'}, True, True, True),
        ({}, {"k3s.io/node-args": '["server","--cluster-init","--datastore-endpoint","********"]'}, True, False, True),
        ({}, {"k3s.io/node-args": '["agent","--server","https://10.0.0.10:6443"]'}, False, False, False),
        ({"node-role.kubernetes.io/control-plane": "true"}, {"k3s.io/node-args": '["agent"]'}, True, False, True),
        ({}, {"k3s.io/node-args": "not json"}, True, False, True),
        ({}, {"etcd.k3s.cattle.io/node-name": "pi1-abc"}, True, True, True),
        ({"picluster.io/etcd-member": "false"}, {"etcd.k3s.cattle.io/node-name": "pi1-abc"}, True, False, True),
        (
            {"node-role.kubernetes.io/etcd": "true", "node-role.kubernetes.io/control-plane": "true"},
            {"k3s.io/node-args": '["server","--cluster-init"]', "etcd.k3s.cattle.io/node-name": "pi1-abc"},
            True,
            True,
            False,
        ),
    ],
)
def test_roles_come_from_labels_node_args_and_etcd_annotation_the_safer_reading_winning(
    labels: dict[str, str], annotations: dict[str, str], control_plane: bool, etcd: bool, noted: bool
) -> None:
    raw = {
        "kind": "Node",
        "metadata": {"name": "n1", "labels": labels, "annotations": annotations},
        "status": {"allocatable": {"cpu": "4", "memory": "4Gi"}},
    }
    node = parse_kubectl_list({"kind": "List", "items": [raw]}).node("n1")
    assert (node.is_control_plane, node.is_etcd_member, bool(node.role_notes)) == (control_plane, etcd, noted)


# --- Finding 2: which pods move, where, and why they are critical ----------------------------------------


def test_each_evicted_pod_is_named_with_its_destination_and_why_it_is_critical() -> None:
    result = plan_json("k3s-3-system-on-agent.json", *SHORT)
    agent1 = next(a for a in result["actions"] if a["node"] == AGENT1)
    moves = {m["pod"].split("/")[1].rsplit("-", 2)[0]: m for m in agent1["moves"]}
    assert set(moves) == {"coredns", "traefik", "metrics-server", "local-path-provisioner", "records"}
    assert all(m["to"] == SERVER and m["critical"] for m in moves.values())
    assert "PriorityClass system-cluster-critical" in moves["coredns"]["why"]
    assert "label picluster.io/critical=true" in moves["records"]["why"]
    agent2 = next(a for a in result["actions"] if a["node"] == AGENT2)
    # 20 Wh cannot reach the target: the non-critical whoami is stopped (its ReplicaSet scaled down until the
    # restore, issue 16), not moved, and the plan names it and the controller.
    whoami = next(m for m in agent2["given_up"] if m["pod"].startswith("default/whoami"))
    assert not whoami["critical"] and "priority 0 < 1000000" in whoami["why"]
    assert whoami["to"] is None and whoami["stopped_by"].startswith("ReplicaSet default/whoami-")
    (stop,) = result["scale_down"]
    assert (stop["kind"], stop["pods"]) == ("ReplicaSet", [whoami["pod"]])


def test_the_text_names_the_moves_the_rule_behind_each_refusal_and_what_the_decision_means() -> None:
    done = plan("--snapshot", str(FIXTURES / "k3s-3-system-on-agent.json"), *SHORT)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "kube-system/coredns-" in out and f"-> {SERVER}  [critical: priority 2000000000" in out
    assert "last_control_plane: the last control-plane node (k3s server) that is up stays on" in out
    assert "escalate means: the target cannot be reached safely" in out


def test_json_carries_the_optimum_and_the_reasons() -> None:
    result = plan_json("k3s-3.json", *SHORT)
    assert result["optimum"]["nodes_on"] == [SERVER] and result["optimum"]["runtime_s"] > 0
    assert all(a["reason"] for a in result["actions"])
    assert all(r["rule_means"] and r["detail"] for r in result["refused"])
    assert result["decision_means"]


def test_every_decision_is_explained_in_the_output_code_and_in_docs() -> None:
    from piclusterd.core.plan_values import Decision
    from piclusterd.core.plan_view import DECISION_MEANINGS, FULL_SHUTDOWN

    docs = (Path(__file__).resolve().parents[2] / "docs" / "plan.md").read_text()
    for decision in [*Decision, FULL_SHUTDOWN]:
        assert DECISION_MEANINGS[decision]
        assert f"`{decision}`" in docs


# --- Finding 3: the assumptions ---------------------------------------------------------------------------


def test_the_assumed_charge_is_printed_and_said_to_be_assumed() -> None:
    result = plan_json("k3s-3.json", *SHORT)
    charge = result["assumptions"]["charge"]
    assert charge["pct"] is not None and charge["pct"] > 95 and charge["source"].startswith("assumed")
    given = plan_json("k3s-3.json", *SHORT, "--charge", "70")["assumptions"]["charge"]
    assert given == {"pct": 70.0, "source": "--charge"}


def test_an_x86_node_is_not_presented_as_a_raspberry_pi() -> None:
    done = plan("--snapshot", str(FIXTURES / "k3s-3-x86.json"), *SHORT)
    assert done.returncode == 0, done.stderr
    assert "k3s-agent-2 is amd64, not a Raspberry Pi: its figures are a pi4b's, an assumption" in done.stdout
    nodes = {n["node"]: n for n in plan_json("k3s-3-x86.json", *SHORT)["assumptions"]["nodes"]}
    assert not nodes[AGENT2]["raspberry_pi"] and nodes[AGENT1]["raspberry_pi"]
    assert nodes[AGENT1]["model_source"] == "default"  # no picluster.io/pi-model label: said to be assumed


def test_each_node_model_and_the_halt_draw_are_stated_with_their_source() -> None:
    result = plan_json("k3s-3.json", *SHORT)
    server = next(n for n in result["assumptions"]["nodes"] if n["node"] == SERVER)
    assert (server["model"], server["model_source"], server["halted_w"]) == ("pi4b", "default", 1.9)
    assert result["assumptions"]["battery"]["capacity_wh"] == 20.0
    assert result["assumptions"]["battery"]["capacity_source"] == "--battery-wh"


def test_the_watts_power_off_on_halt_would_save_are_stated() -> None:
    result = plan_json("k3s-3.json", *SHORT)
    saving = result["halt_saving"]
    # Two halted Pi 4s: 1.9 W each without POWER_OFF_ON_HALT=1, 0.2 W with it (hardware.md section 3).
    assert saving["nodes"] == [AGENT1, AGENT2] and saving["saving_w"] == pytest.approx(3.4)
    assert saving["runtime_with_it_s"] > result["projected_runtime_s"]
    text = plan("--snapshot", str(FIXTURES / "k3s-3.json"), *SHORT).stdout
    assert "without POWER_OFF_ON_HALT=1" in text and "would save 3.4 W" in text


def test_with_power_off_on_halt_set_there_is_nothing_to_save(tmp_path: Path) -> None:
    config = tmp_path / "piclusterd.toml"
    config.write_text("[battery]\ncapacity_wh = 20\n[cluster]\npower_off_on_halt = true\n")
    result = plan_json("k3s-3.json", "--on-battery", "--config", str(config))
    assert result["halt_saving"] is None
    assert result["assumptions"]["battery"]["capacity_source"].startswith("[battery] capacity_wh")


# --- Finding 4: inputs it should question -----------------------------------------------------------------


def test_a_pod_list_without_nodes_is_refused() -> None:
    done = plan("--snapshot", str(FIXTURES / "k3s-3-pods-only.json"), *SHORT)
    assert done.returncode == 2
    assert "no Node objects" in done.stderr and done.stderr.count("\n") == 1 and done.stdout == ""


def test_pods_on_nodes_missing_from_the_snapshot_are_named(tmp_path: Path) -> None:
    data = json.loads((FIXTURES / "k3s-3.json").read_text())
    data["items"] = [i for i in data["items"] if i["metadata"]["name"] != AGENT2]
    path = tmp_path / "partial.json"
    path.write_text(json.dumps(data))
    done = plan("--snapshot", str(path), *SHORT)
    assert done.returncode == 0, done.stderr
    assert f"bound to node '{AGENT2}', which is not in the snapshot" in done.stderr


def test_a_phase_kubernetes_does_not_define_is_questioned() -> None:
    done = plan("--snapshot", str(FIXTURES / "k3s-3-completed.json"), *SHORT)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "'Completed' is not a Kubernetes pod phase" in line]
    assert len(lines) == 2 and all("helm-install-traefik" in line for line in lines)


@pytest.mark.parametrize("charge", ["150", "-1", "nan", "inf"])
def test_a_charge_outside_0_to_100_is_refused(charge: str) -> None:
    done = plan("--snapshot", str(FIXTURES / "k3s-3.json"), "--on-battery", "--battery-wh", "20", "--charge", charge)
    assert done.returncode == 2 and "--charge" in done.stderr and "0 to 100" in done.stderr


@pytest.mark.parametrize("capacity", ["-1", "0", "nan"])
def test_a_battery_that_is_not_positive_is_refused(capacity: str) -> None:
    done = plan("--snapshot", str(FIXTURES / "k3s-3.json"), "--on-battery", "--battery-wh", capacity)
    assert done.returncode == 2 and "--battery-wh" in done.stderr and "positive" in done.stderr


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("[]", "got a list"),
        ('"cluster"', "got a string"),
        ("null", "got null"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"kind": "List", "items": [{"kind": "Pod", "metadata": {"name": {"deep": [[[[1]]]]}}}]}', "metadata.name"),
    ],
)
def test_json_of_the_wrong_shape_is_one_line_and_exit_2(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "snap.json"
    path.write_text(content)
    done = plan("--snapshot", str(path), *SHORT)
    assert done.returncode == 2 and words in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_a_device_is_refused_at_once_not_read_forever() -> None:
    done = plan("--snapshot", "/dev/zero", *SHORT)
    assert done.returncode == 2 and "not a regular file" in done.stderr


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "snap.json"
    os.mkfifo(fifo)
    done = plan("--snapshot", str(fifo), *SHORT)
    assert done.returncode == 2 and "not a regular file" in done.stderr


def test_a_huge_file_is_refused(tmp_path: Path) -> None:
    from piclusterd.cli import SNAPSHOT_MAX_BYTES

    path = tmp_path / "huge.json"
    with path.open("wb") as file:
        file.truncate(SNAPSHOT_MAX_BYTES + 1)  # sparse: no disk used
    done = plan("--snapshot", str(path), *SHORT)
    assert done.returncode == 2 and "MiB a snapshot may be" in done.stderr


def test_at_the_shutdown_level_the_answer_is_the_orderly_full_shutdown() -> None:
    result = plan_json("k3s-3.json", *SHORT, "--charge", "10")
    assert result["decision"] == "full_shutdown" and result["shed"] == []
    assert "at or below the shutdown level 20 %" in result["reason"]
    text = plan("--snapshot", str(FIXTURES / "k3s-3.json"), *SHORT, "--charge", "20").stdout
    assert "full_shutdown" in text and "orderly full-shutdown order" in text


# --- Finding 5: lost endpoints ----------------------------------------------------------------------------


def test_host_port_endpoints_of_daemonset_pods_on_shed_nodes_are_listed_as_lost() -> None:
    result = plan_json("k3s-3.json", *SHORT)
    lost = {a["node"]: a["lost_endpoints"] for a in result["actions"]}
    assert lost[AGENT1] and lost[AGENT1][0]["endpoints"] == ["10.0.0.11:80/TCP", "10.0.0.11:443/TCP"]
    assert lost[AGENT1][0]["pod"].startswith("kube-system/svclb-traefik-")
    text = plan("--snapshot", str(FIXTURES / "k3s-3.json"), *SHORT).stdout
    assert "LOST ENDPOINTS 10.0.0.12:80/TCP, 10.0.0.12:443/TCP" in text


def test_finished_job_pods_are_removed_not_moved() -> None:
    result = plan_json("k3s-3-server-unlabelled.json", *SHORT)
    moved = [m["pod"] for a in result["actions"] for m in a["moves"]]
    assert not any("helm-install" in pod for pod in moved)


def test_an_x86_node_with_its_own_figures_in_labels_uses_them_and_is_not_flagged(tmp_path: Path) -> None:
    data = json.loads((FIXTURES / "k3s-3-x86.json").read_text())
    node = next(i for i in data["items"] if i["metadata"]["name"] == AGENT2)
    node["metadata"]["labels"] |= {
        "picluster.io/idle-w": "9",
        "picluster.io/full-w": "25",
        "picluster.io/halted-w": "1",
    }
    path = tmp_path / "x86-described.json"
    path.write_text(json.dumps(data))
    done = plan("--snapshot", str(path), *SHORT, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    agent2 = next(n for n in result["assumptions"]["nodes"] if n["node"] == AGENT2)
    assert (agent2["figures_source"], agent2["idle_w"], agent2["full_w"], agent2["halted_w"]) == ("label", 9, 25, 1)
    assert agent2["notes"] == [] and not agent2["raspberry_pi"]
    # The EEPROM setting is a Pi's: an x86 node's halted draw is not counted as something it would save.
    assert AGENT2 not in (result["halt_saving"] or {}).get("nodes", [])


def test_a_pod_with_a_host_port_that_moves_takes_its_endpoint_off_the_shed_node(tmp_path: Path) -> None:
    data = json.loads((FIXTURES / "k3s-3.json").read_text())
    records = next(i for i in data["items"] if i["metadata"]["name"].startswith("records-2-"))
    records["spec"]["containers"][0]["ports"] = [{"containerPort": 8080, "hostPort": 8080, "protocol": "TCP"}]
    path = tmp_path / "hostport.json"
    path.write_text(json.dumps(data))
    done = plan("--snapshot", str(path), *SHORT)
    assert done.returncode == 0, done.stderr
    assert "its host ports 8080/TCP move from 10.0.0.12 to k3s-server's address" in done.stdout


def test_on_mains_the_plan_says_how_to_ask_about_an_outage() -> None:
    done = plan("--snapshot", str(FIXTURES / "k3s-3.json"), "--battery-wh", "20")
    assert done.returncode == 0, done.stderr
    assert "hold_online means: mains is present" in done.stdout and "add --on-battery" in done.stdout
