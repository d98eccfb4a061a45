"""The kubelet's graceful-shutdown settings, read from k3s's files as k3s and the kubelet read them."""

from __future__ import annotations

from pathlib import Path

import pytest

from piclusterd.core.kubelet_shutdown import (
    KubeletShutdown,
    inhibitor_problem,
    k3s_kubelet_args,
    kubelet_shutdown,
    parse_go_duration,
)
from piclusterd.node.kubelet_config import MAX_FILE_BYTES, read_kubelet_shutdown


def k3s(tmp_path: Path, main: str | None, **drop_ins: str) -> Path:
    config = tmp_path / "etc" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    if main is not None:
        config.write_text(main)
    if drop_ins:
        (tmp_path / "etc" / "config.yaml.d").mkdir(exist_ok=True)
        for name, text in drop_ins.items():
            (tmp_path / "etc" / "config.yaml.d" / f"{name}.yaml").write_text(text)
    return config


def test_k3s_default_has_the_kubelets_graceful_shutdown_off(tmp_path: Path) -> None:
    found = read_kubelet_shutdown(k3s(tmp_path, "write-kubeconfig-mode: '0644'\n"))
    assert not found.configured and found.method == "self-drain" and found.problems == ()


def test_no_k3s_config_at_all_is_off_and_no_problem(tmp_path: Path) -> None:
    found = read_kubelet_shutdown(tmp_path / "nothing" / "config.yaml")
    assert found == KubeletShutdown()


def test_kubelet_arg_lines_turn_it_on(tmp_path: Path) -> None:
    config = k3s(
        tmp_path,
        'kubelet-arg:\n  - "shutdown-grace-period=60s"\n  - "shutdown-grace-period-critical-pods=30s"\n',
    )
    found = read_kubelet_shutdown(config)
    assert (found.grace_s, found.critical_s, found.method) == (60.0, 30.0, "kubelet")
    assert found.sources == (str(config),)


def test_a_drop_in_replaces_and_plus_appends_as_k3s_merges(tmp_path: Path) -> None:
    config = k3s(
        tmp_path,
        'kubelet-arg:\n  - "shutdown-grace-period=60s"\n',
        **{
            "10-replace": 'kubelet-arg:\n  - "max-pods=50"\n',
            "20-append": 'kubelet-arg+:\n  - "--shutdown-grace-period=2m"\n',
        },
    )
    assert read_kubelet_shutdown(config).grace_s == 120.0


def test_a_drop_in_that_replaces_the_list_turns_it_off(tmp_path: Path) -> None:
    config = k3s(tmp_path, 'kubelet-arg: ["shutdown-grace-period=60s"]\n', **{"50-x": 'kubelet-arg: ["max-pods=50"]\n'})
    assert not read_kubelet_shutdown(config).configured


def test_a_kubelet_config_file_and_k3s_drop_in_dir(tmp_path: Path) -> None:
    kubelet = tmp_path / "kubelet.yaml"
    kubelet.write_text(
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nshutdownGracePeriod: 45s\n"
    )
    data = tmp_path / "data"
    (data / "agent" / "etc" / "kubelet.conf.d").mkdir(parents=True)
    (data / "agent" / "etc" / "kubelet.conf.d" / "50-grace.conf").write_text("shutdownGracePeriodCriticalPods: 15s\n")
    config = k3s(tmp_path, f'data-dir: "{data}"\nkubelet-arg: ["config={kubelet}"]\n')
    found = read_kubelet_shutdown(config)
    assert (found.grace_s, found.critical_s) == (45.0, 15.0)


def test_a_flag_wins_over_the_file() -> None:
    found = kubelet_shutdown(["shutdown-grace-period=10s"], [("f", {"shutdownGracePeriod": "90s"})])
    assert found.grace_s == 10.0


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("kubelet-arg: 12\n", "not a list of strings"),
        ("- just\n- a list\n", "not a YAML mapping"),
        ("kubelet-arg: [\n", "not YAML"),
        ('kubelet-arg: ["shutdown-grace-period=forever"]\n', "not a Go duration"),
        ('kubelet-arg: ["shutdown-grace-period=-5s"]\n', "not a Go duration"),
        ('kubelet-arg: ["shutdown-grace-period=100000h"]\n', "not a Go duration"),
        ('kubelet-arg: ["shutdown-grace-period=10s", "shutdown-grace-period-critical-pods=20s"]\n', "exceeds"),
    ],
)
def test_what_cannot_be_read_is_a_problem_and_counts_as_off(tmp_path: Path, text: str, problem: str) -> None:
    found = read_kubelet_shutdown(k3s(tmp_path, text))
    assert any(problem in p for p in found.problems), found.problems
    assert found.critical_s <= found.grace_s


def test_a_huge_or_binary_file_is_refused_not_read(tmp_path: Path) -> None:
    config = k3s(tmp_path, "a: " + "x" * (MAX_FILE_BYTES + 10) + "\n")
    assert any("larger than" in p for p in read_kubelet_shutdown(config).problems)
    config.write_bytes(b"\xff\xfe\x00kubelet-arg")
    assert any("not YAML" in p for p in read_kubelet_shutdown(config).problems)


def test_yaml_tags_never_build_objects(tmp_path: Path) -> None:
    config = k3s(tmp_path, "kubelet-arg: !!python/object/apply:os.system ['true']\n")
    assert any("not YAML" in p for p in read_kubelet_shutdown(config).problems)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30.0), ("1m30s", 90.0), ("0", 0.0), ("1.5m", 90.0), ("500ms", 0.5), ("2h", 7200.0)]
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == seconds


def test_k3s_args_ignore_a_null_drop_in() -> None:
    assert k3s_kubelet_args([("a", {"kubelet-arg": "x=1"}), ("b", None)]) == (("x=1",), ())


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["systemctl", "poweroff"], None),
        (["shutdown", "-h", "now"], None),
        (["systemctl", "poweroff", "--force"], "without logind"),
        (["systemctl", "-ff", "poweroff"], "without logind"),
        (["systemctl", "poweroff", "-i"], "ignores inhibitor"),
        (["systemctl", "poweroff", "--ignore-inhibitors"], "ignores inhibitor"),
    ],
)
def test_which_shutdown_commands_the_kubelets_lock_can_hold(argv: list[str], problem: str | None) -> None:
    found = inhibitor_problem(argv)
    assert (found is None) if problem is None else (found is not None and problem in found)
