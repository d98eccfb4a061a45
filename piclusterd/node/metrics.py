"""Prometheus metrics of this node's daemon: an HTTP ``/metrics`` endpoint and node_exporter's textfile.

Two inputs, no new plumbing through the loop:

* the audit trail: :meth:`NodeMetrics.observe` is an observer of the audit logger
  (:func:`piclusterd.node.audit.make_audit_logger`), so every counted thing (a drain, a power-off, a refusal)
  is counted from the very event that puts it in the journal, and the two can never disagree;
* the daemon's live view (:meth:`piclusterd.node.daemon.PowerDaemon.status`), read at scrape time: state,
  charge, runtime, load.

The library is Debian's ``python3-prometheus-client`` (0.16 on bookworm): only its registry, metric types and
``generate_latest``/``write_to_textfile`` are used, which are the same from 0.16 to today. The HTTP server is
the standard library's, so it can be bounded (a slow client cannot hold a thread forever) and closed in tests.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from piclusterd.config.model import Config
from piclusterd.core.errors import PiclusterError
from piclusterd.core.power_state import PowerState

__all__ = ["METRICS_INSTALL_HINT", "TEXTFILE_EVERY_S", "MetricsServer", "NodeMetrics", "TextfileWriter"]

METRICS_INSTALL_HINT = "apt install python3-prometheus-client (or pip install 'piclusterd[metrics]')"
#: node_exporter reads the textfile at each scrape; rewriting it more often only wears the SD card.
TEXTFILE_EVERY_S = 30.0
#: A scrape that takes longer than this is dropped: the endpoint must never tie up the daemon.
_HTTP_TIMEOUT_S = 10.0

StatusView = Callable[[], Mapping[str, Any]]

# Events that count, each to one counter (with a label where the event says which kind).
_REFUSALS = (
    "node.request_refused",
    "cluster.record_refused",
    "node.shed_refused_on_resume",
    "node.poweroff_request_invalid",
    "node.poweron_request_invalid",
    "node.record_invalid",
    "outage.full_shutdown_refused",
    "outage.record_invalid",
    "shutdown.remote_refused",
    "node.poweroff_ssh_refused",
)
_API_ERRORS = ("cluster.api_failed", "leader.unavailable", "node.power_publish_failed")
_LEADER_GAINED = ("leader.acquired",)
_LEADER_GONE = ("leader.lost", "leader.released", "leader.stepping_down")


class NodeMetrics:
    """The registry of one daemon's metrics. Thread-safe: the audit observer and the scrape may run at once."""

    def __init__(self, config: Config, status: StatusView | None = None, *, wall: Callable[[], float] = time.time):
        try:
            import prometheus_client
        except ImportError:
            missing = f"[metrics] is set but the Prometheus client is missing: {METRICS_INSTALL_HINT}"
            raise PiclusterError(missing) from None
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self._client = prometheus_client
        self._status = status
        self._wall = wall
        self._lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._info = Gauge(
            "piclusterd_info",
            "Always 1: this node's daemon, its version and mode.",
            ["node", "version", "mode"],
            registry=r,
        )
        self._state = Gauge(
            "piclusterd_power_state", "1 for this node's power state, 0 for the others.", ["state"], registry=r
        )
        self._source_ok = Gauge(
            "piclusterd_ups_data_ok",
            "1 while the UPS or HAT answers with fresh, valid data; 0 when it is lost.",
            registry=r,
        )
        self._charge = Gauge("piclusterd_battery_charge_percent", "Battery charge; NaN when unknown.", registry=r)
        self._runtime = Gauge(
            "piclusterd_runtime_estimate_seconds",
            "Seconds the battery lasts at the present load; NaN when unknown.",
            registry=r,
        )
        self._load = Gauge("piclusterd_load_watts", "The load the runtime estimate uses; NaN when unknown.", registry=r)
        self._on_battery = Gauge("piclusterd_on_battery_seconds", "Seconds since mains failed; 0 on mains.", registry=r)
        self._local_shutdown = Gauge(
            "piclusterd_local_shutdown_started", "1 once this node has started its own shutdown.", registry=r
        )
        self._cluster = Gauge(
            "piclusterd_cluster_enabled", "1 when this daemon takes part in the cluster side.", registry=r
        )
        self._leader = Gauge("piclusterd_leader", "1 while this node holds the Lease and leads.", registry=r)
        self._shed = Gauge(
            "piclusterd_nodes_shed", "Nodes the leader's last plan sheds or is shedding (0 on followers).", registry=r
        )
        self._projected = Gauge(
            "piclusterd_plan_projected_runtime_seconds",
            "Runtime the leader's last plan projects; NaN when none.",
            registry=r,
        )
        self._without = Gauge(
            "piclusterd_plan_runtime_without_shedding_seconds",
            "Runtime the leader's last plan projects without shedding; NaN when none.",
            registry=r,
        )
        self._target = Gauge("piclusterd_target_runtime_seconds", "[cluster] target_runtime.", registry=r)
        self._critical = Gauge("piclusterd_critical_runtime_seconds", "[policy] critical_runtime.", registry=r)
        self._drains = Counter("piclusterd_drains", "Drains of a node, by how they ended.", ["result"], registry=r)
        self._power_offs = Counter("piclusterd_power_offs", "Nodes confirmed powered off by the leader.", registry=r)
        self._power_ons = Counter(
            "piclusterd_power_ons", "Power-on attempts for a node (WoL, relay, RTC, NUT).", registry=r
        )
        self._restored = Counter("piclusterd_nodes_restored", "Nodes back and uncordoned after an outage.", registry=r)
        self._refusals = Counter(
            "piclusterd_refusals", "Requests and records refused, by the event that says so.", ["event"], registry=r
        )
        self._api_errors = Counter("piclusterd_api_errors", "Failed calls to the Kubernetes API.", registry=r)
        self._planning = Histogram(
            "piclusterd_planner_duration_seconds",
            "Time the leader spent on one plan.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self._energy = Gauge(
            "piclusterd_last_outage_energy_wh", "Energy the last outage took from the battery.", registry=r
        )
        self._outage_s = Gauge(
            "piclusterd_last_outage_duration_seconds", "How long mains was away last time.", registry=r
        )
        self._critical_down = Gauge(
            "piclusterd_last_outage_critical_downtime_seconds",
            "How long critical services were down in the last outage.",
            registry=r,
        )
        self.configure(config)
        for gauge in (self._projected, self._without, self._energy, self._outage_s, self._critical_down):
            gauge.set(math.nan)
        # Every labelled series exists from the start, so increase() sees the first one count.
        for result in ("completed", "failed"):
            self._drains.labels(result)
        for event in _REFUSALS:
            self._refusals.labels(event)

    def watch(self, status: StatusView) -> None:
        """Read the daemon's live view at each scrape (set once the daemon exists: it logs through us)."""
        self._status = status

    def configure(self, config: Config) -> None:
        """The figures that come from the configuration (at start and after a reload)."""
        from piclusterd import __version__

        with self._lock:
            self._info.clear()
            self._info.labels(config.node.name, __version__, config.mode.value).set(1)
            self._cluster.set(1 if config.cluster.enabled else 0)
            self._target.set(config.cluster.target_runtime_s)
            self._critical.set(config.policy.critical_runtime_s)

    # --- the audit trail --------------------------------------------------------------------------------

    def observe(self, event: Mapping[str, Any]) -> None:
        """One audit event (the dict the journal gets): count it where it counts."""
        name = event.get("event")
        with self._lock:
            if name == "node.drained":
                self._drains.labels("completed").inc()
            elif name in ("node.drain_failed", "shutdown.cluster_drain_incomplete"):
                self._drains.labels("failed").inc()
            elif name == "node.powered_off":
                self._power_offs.inc()
            elif name in ("node.power_on_requested", "node.relay_pulsed"):
                self._power_ons.inc()
            elif name == "node.restored":
                self._restored.inc()
            elif name in _REFUSALS:
                self._refusals.labels(name).inc()
            elif name in _API_ERRORS:
                self._api_errors.inc()
            elif name in _LEADER_GAINED:
                self._leader.set(1)
            elif name in _LEADER_GONE:
                self._leader.set(0)
                self._shed.set(0)
                self._projected.set(math.nan)
                self._without.set(math.nan)
            elif name == "plan.decided":
                shed = set(_names(event.get("shed"))) | set(_names(event.get("in_progress")))
                self._shed.set(len(shed))
                self._projected.set(_number(event.get("projected_runtime_s")))
                self._without.set(_number(event.get("runtime_without_shedding_s")))
            elif name == "outage.summary":
                self._energy.set(_number(event.get("energy_used_wh")))
                self._outage_s.set(_number(event.get("duration_s")))
                self._critical_down.set(_number(event.get("critical_downtime_s")))
            elif name == "shutdown.local_started":
                self._local_shutdown.set(1)
            elif name == "config.reloaded":  # the event carries the effective configuration (Config.summary)
                self._reconfigure(event)

    def _reconfigure(self, summary: Mapping[str, Any]) -> None:
        from piclusterd import __version__

        mode, node = summary.get("mode"), summary.get("node")
        if isinstance(mode, str) and isinstance(node, str):
            self._info.clear()
            self._info.labels(node, __version__, mode).set(1)
        for gauge, key in ((self._target, "cluster.target_runtime_s"), (self._critical, "policy.critical_runtime_s")):
            value = _number(summary.get(key))
            if not math.isnan(value):
                gauge.set(value)

    def planned(self, seconds: float) -> None:
        """The leader's planner took ``seconds`` for one plan."""
        if math.isfinite(seconds) and seconds >= 0:
            self._planning.observe(seconds)

    # --- the live view ----------------------------------------------------------------------------------

    def _refresh(self) -> None:
        status = self._status() if self._status is not None else None
        if not status:
            return
        state = str(status.get("state"))
        for known in PowerState:
            self._state.labels(known.value).set(1 if known.value == state else 0)
        self._source_ok.set(1 if status.get("source_ok") else 0)
        self._charge.set(_number(status.get("charge_pct")))
        self._runtime.set(_number(status.get("runtime_s")))
        self._load.set(_number(status.get("load_w")))
        since = status.get("since_wall")
        on_battery = state in ("on_battery", "low_battery", "critical") and isinstance(since, int | float)
        self._on_battery.set(max(0.0, self._wall() - float(since)) if on_battery else 0.0)  # type: ignore[arg-type]
        if status.get("shutdown_started"):
            self._local_shutdown.set(1)

    def exposition(self) -> bytes:
        """The text a scrape gets (Prometheus text format 0.0.4)."""
        with self._lock:
            self._refresh()
            text: bytes = self._client.generate_latest(self.registry)
        return text

    def write_textfile(self, path: str) -> None:
        """Write the metrics for node_exporter's textfile collector (the library writes a temporary file and
        renames it, so node_exporter never reads half a file)."""
        with self._lock:
            self._refresh()
            self._client.write_to_textfile(path, self.registry)


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def _names(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list | tuple) else []


class MetricsServer:
    """``GET /metrics`` on the configured address; everything else is a 404. Closed with :meth:`close`."""

    def __init__(self, metrics: NodeMetrics, address: tuple[str, int]) -> None:
        content_type = str(metrics._client.CONTENT_TYPE_LATEST)

        class Handler(BaseHTTPRequestHandler):
            timeout = _HTTP_TIMEOUT_S

            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] not in ("/metrics", "/metrics/"):
                    self.send_error(404, "only /metrics is served here")
                    return
                body = metrics.exposition()
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a scrape every 15 s is not an audit event

        family = ThreadingHTTPServer.address_family
        if ":" in address[0]:
            import socket

            family = socket.AF_INET6

        class Server(ThreadingHTTPServer):
            address_family = family
            daemon_threads = True

        try:
            self._server = Server(address, Handler)
        except OSError as error:
            raise PiclusterError(
                f"[metrics] listen: cannot listen on {address[0]}:{address[1]}: {error.strerror}; "
                "choose a free port (ss -ltn shows the ones in use)"
            ) from None
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class TextfileWriter:
    """Rewrites the textfile every :data:`TEXTFILE_EVERY_S` on its own thread, and once more at :meth:`close`.

    A failure (a full disk, a directory removed) is said once in the journal and retried at the next turn."""

    def __init__(
        self, metrics: NodeMetrics, path: str, on_error: Callable[[str], None], every_s: float = TEXTFILE_EVERY_S
    ) -> None:
        self._metrics = metrics
        self._path = path
        self._on_error = on_error
        self._every_s = every_s
        self._failing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-textfile", daemon=True)
        self._thread.start()

    def write_once(self) -> None:
        try:
            self._metrics.write_textfile(self._path)
        except OSError as error:
            if not self._failing:
                self._failing = True
                self._on_error(f"{self._path}: {error.strerror or error}")
            return
        self._failing = False

    def _run(self) -> None:
        while True:
            self.write_once()
            if self._stop.wait(self._every_s):
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.write_once()
