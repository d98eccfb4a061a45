"""What Prometheus reads from a daemon: the audit trail counted, the live view at each scrape, the config.

The metrics come from the real audit logger (the events the journal gets) and are read back through
prometheus_client's own text parser, as a scrape would see them.
"""

from __future__ import annotations

import io
import math
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from piclusterd.config.parse import load_config
from piclusterd.core.errors import ConfigError, PiclusterError
from piclusterd.node.audit import LogFormat, make_audit_logger
from piclusterd.node.metrics import MetricsServer, NodeMetrics, TextfileWriter

CONFIG = '[node]\nname = "pi1"\n[cluster]\ntarget_runtime = "4h"\n[policy]\ncritical_runtime = "5m"\n'


def samples(text: str | bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    if isinstance(text, bytes):
        text = text.decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(text: str | bytes, name: str, **labels: str) -> float:
    return samples(text)[(name, tuple(sorted(labels.items())))]


class Status:
    """The daemon's live view as :meth:`PowerDaemon.status` gives it."""

    def __init__(self) -> None:
        self.view: dict[str, Any] = {"state": "unknown", "source_ok": False}

    def __call__(self) -> dict[str, Any]:
        return dict(self.view)


@pytest.fixture
def metrics(tmp_path: Path) -> tuple[NodeMetrics, Any, Status]:
    path = tmp_path / "piclusterd.toml"
    path.write_text(CONFIG)
    status = Status()
    node_metrics = NodeMetrics(load_config(path), wall=lambda: 10_000.0)
    node_metrics.watch(status)
    log = make_audit_logger(LogFormat.JSON, "pi1", stream=io.StringIO(), observers=(node_metrics.observe,))
    return node_metrics, log, status


def test_the_live_view_is_read_at_each_scrape(metrics: tuple[NodeMetrics, Any, Status]) -> None:
    node_metrics, _log, status = metrics
    before = node_metrics.exposition()
    assert value(before, "piclusterd_power_state", state="unknown") == 1
    assert value(before, "piclusterd_ups_data_ok") == 0
    assert math.isnan(value(before, "piclusterd_battery_charge_percent"))
    status.view = {
        "state": "on_battery",
        "source_ok": True,
        "charge_pct": 84.0,
        "runtime_s": 9000,
        "load_w": 31.5,
        "since_wall": 10_000.0 - 125,
    }
    after = node_metrics.exposition()
    assert value(after, "piclusterd_power_state", state="on_battery") == 1
    assert value(after, "piclusterd_power_state", state="online") == 0
    assert value(after, "piclusterd_ups_data_ok") == 1
    assert value(after, "piclusterd_battery_charge_percent") == 84
    assert value(after, "piclusterd_runtime_estimate_seconds") == 9000
    assert value(after, "piclusterd_load_watts") == 31.5
    assert value(after, "piclusterd_on_battery_seconds") == 125
    status.view = {**status.view, "state": "online"}
    assert value(node_metrics.exposition(), "piclusterd_on_battery_seconds") == 0


def test_the_configuration_and_a_reload_set_the_targets(metrics: tuple[NodeMetrics, Any, Status]) -> None:
    node_metrics, log, _status = metrics
    text = node_metrics.exposition()
    assert value(text, "piclusterd_target_runtime_seconds") == 4 * 3600
    assert value(text, "piclusterd_critical_runtime_seconds") == 300
    assert value(text, "piclusterd_cluster_enabled") == 0
    (info,) = [k for k in samples(text) if k[0] == "piclusterd_info"]
    assert dict(info[1])["mode"] == "dry-run" and dict(info[1])["node"] == "pi1"
    log.info("config.reloaded", mode="enforce", **{"policy.critical_runtime_s": 600.0})
    text = node_metrics.exposition()
    assert value(text, "piclusterd_critical_runtime_seconds") == 600
    (info,) = [k for k in samples(text) if k[0] == "piclusterd_info"]
    assert dict(info[1])["mode"] == "enforce"


def test_each_counted_event_counts_once_from_the_audit_trail(metrics: tuple[NodeMetrics, Any, Status]) -> None:
    node_metrics, log, _status = metrics
    log.info("node.drained", target="pi4")
    log.warning("node.drain_failed", target="pi5")
    log.warning("shutdown.cluster_drain_incomplete", target="pi3")
    log.info("node.powered_off", target="pi4")
    log.info("node.power_on_requested", target="pi4")
    log.info("node.relay_pulsed", target="pi5")
    log.info("node.restored", target="pi4")
    log.warning("node.request_refused", check="signature")
    log.warning("node.request_refused", check="term")
    log.error("cluster.api_failed", error="503")
    log.debug("node.drained", target="ignored: below the level, so not in the journal either")
    text = node_metrics.exposition()
    assert value(text, "piclusterd_drains_total", result="completed") == 1
    assert value(text, "piclusterd_drains_total", result="failed") == 2
    assert value(text, "piclusterd_power_offs_total") == 1
    assert value(text, "piclusterd_power_ons_total") == 2
    assert value(text, "piclusterd_nodes_restored_total") == 1
    assert value(text, "piclusterd_refusals_total", event="node.request_refused") == 2
    assert value(text, "piclusterd_api_errors_total") == 1


def test_leading_and_the_plan_follow_the_leaders_events(metrics: tuple[NodeMetrics, Any, Status]) -> None:
    node_metrics, log, _status = metrics
    assert value(node_metrics.exposition(), "piclusterd_leader") == 0
    log.info("leader.acquired", term=3)
    log.info(
        "plan.decided",
        decision="shed",
        shed=["pi4", "pi5"],
        in_progress=["pi5", "pi3"],
        projected_runtime_s=9300,
        runtime_without_shedding_s=5400,
    )
    text = node_metrics.exposition()
    assert value(text, "piclusterd_leader") == 1
    assert value(text, "piclusterd_nodes_shed") == 3
    assert value(text, "piclusterd_plan_projected_runtime_seconds") == 9300
    assert value(text, "piclusterd_plan_runtime_without_shedding_seconds") == 5400
    log.info("leader.lost", why="renew failed")
    text = node_metrics.exposition()
    assert value(text, "piclusterd_leader") == 0 and value(text, "piclusterd_nodes_shed") == 0
    assert math.isnan(value(text, "piclusterd_plan_projected_runtime_seconds"))


def test_garbage_in_an_event_is_not_a_number_and_logging_goes_on(metrics: tuple[NodeMetrics, Any, Status]) -> None:
    node_metrics, log, _status = metrics
    log.info("plan.decided", shed="pi4", projected_runtime_s="a lot", runtime_without_shedding_s=True)
    log.info("outage.summary", energy_used_wh=41.5, duration_s=5400, critical_downtime_s=0)
    text = node_metrics.exposition()
    assert value(text, "piclusterd_nodes_shed") == 0
    assert math.isnan(value(text, "piclusterd_plan_projected_runtime_seconds"))
    assert math.isnan(value(text, "piclusterd_plan_runtime_without_shedding_seconds"))
    assert value(text, "piclusterd_last_outage_energy_wh") == 41.5
    assert value(text, "piclusterd_last_outage_duration_seconds") == 5400


def test_an_observer_that_fails_never_loses_the_journal_line() -> None:
    out = io.StringIO()

    def broken(_event: object) -> None:
        raise RuntimeError("a metrics bug")

    log = make_audit_logger(LogFormat.JSON, "pi1", stream=out, observers=(broken,))
    log.warning("power.source_lost", error="timeout")
    assert '"event": "power.source_lost"' in out.getvalue()


def test_the_planner_duration_is_a_histogram(metrics: tuple[NodeMetrics, Any, Status]) -> None:
    node_metrics, _log, _status = metrics
    node_metrics.planned(0.03)
    node_metrics.planned(0.7)
    node_metrics.planned(float("nan"))
    text = node_metrics.exposition()
    assert value(text, "piclusterd_planner_duration_seconds_count") == 2
    assert value(text, "piclusterd_planner_duration_seconds_bucket", le="0.05") == 1


def test_the_endpoint_serves_metrics_and_nothing_else(metrics: tuple[NodeMetrics, Any, Status]) -> None:
    node_metrics, _log, _status = metrics
    server = MetricsServer(node_metrics, ("127.0.0.1", 0))
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/plain")
            assert value(response.read(), "piclusterd_target_runtime_seconds") == 4 * 3600
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=5)
        assert caught.value.code == 404
    finally:
        server.close()


def test_a_port_in_use_is_one_line_with_the_fix(metrics: tuple[NodeMetrics, Any, Status]) -> None:
    node_metrics, _log, _status = metrics
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(PiclusterError, match=r"cannot listen on 127\.0\.0\.1:\d+: .*choose a free port"):
            MetricsServer(node_metrics, ("127.0.0.1", taken.getsockname()[1]))


def test_the_textfile_is_written_and_a_failure_is_said_once(
    metrics: tuple[NodeMetrics, Any, Status], tmp_path: Path
) -> None:
    node_metrics, _log, _status = metrics
    target = tmp_path / "collector" / "piclusterd.prom"
    errors: list[str] = []
    writer = TextfileWriter(node_metrics, str(target), errors.append, every_s=3600)
    writer.write_once()
    writer.close()
    assert len(errors) == 1 and "piclusterd.prom" in errors[0]  # the directory does not exist: said once
    target.parent.mkdir()
    writer = TextfileWriter(node_metrics, str(target), errors.append, every_s=3600)
    writer.close()
    assert len(errors) == 1
    assert value(target.read_text(), "piclusterd_target_runtime_seconds") == 4 * 3600


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('listen = "localhost:9847"', "an IP address and port"),
        ('listen = "127.0.0.1"', "an IP address and port"),
        ('listen = "127.0.0.1:0"', "an IP address and port"),
        ('listen = "127.0.0.1:70000"', "an IP address and port"),
        ("listen = 9847", "an IP address and port"),
        ('textfile = "piclusterd.prom"', "an absolute path ending in .prom"),
        ('textfile = "/var/lib/prometheus/node-exporter/piclusterd.txt"', "an absolute path ending in .prom"),
    ],
)
def test_bad_metrics_settings_name_the_key_and_the_fix(tmp_path: Path, line: str, expected: str) -> None:
    path = tmp_path / "piclusterd.toml"
    path.write_text(f"[metrics]\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (message,) = str(caught.value).splitlines()
    key = line.split(" ", 1)[0]
    assert f"metrics.{key}: invalid value" in message and expected in message


@pytest.mark.parametrize(
    ("line", "address"),
    [('listen = "127.0.0.1:9847"', ("127.0.0.1", 9847)), ('listen = "[::1]:9847"', ("::1", 9847))],
)
def test_metrics_listen_takes_ipv4_and_ipv6_literals(tmp_path: Path, line: str, address: tuple[str, int]) -> None:
    path = tmp_path / "piclusterd.toml"
    path.write_text(f"[metrics]\n{line}\n")
    assert load_config(path).metrics.listen == address


def test_metrics_are_off_by_default(tmp_path: Path) -> None:
    path = tmp_path / "piclusterd.toml"
    path.write_text("")
    metrics = load_config(path).metrics
    assert metrics.listen is None and metrics.textfile is None


def test_check_config_says_when_the_prometheus_client_is_missing(tmp_path: Path) -> None:
    """check-config runs run's validation: a [metrics] that cannot work is refused before any start."""
    path = tmp_path / "piclusterd.toml"
    path.write_text('[metrics]\nlisten = "127.0.0.1:9847"\n')
    without_the_library = (
        "import sys; sys.modules['prometheus_client'] = None; "  # as on a Pi without python3-prometheus-client
        "from piclusterd.cli import daemon_main; sys.exit(daemon_main(['check-config', '--config', sys.argv[1]]))"
    )
    done = subprocess.run([sys.executable, "-c", without_the_library, str(path)], capture_output=True, text=True)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "metrics.listen: is set, but Python's Prometheus client is not installed" in line
    assert "apt install python3-prometheus-client" in line
