"""Entry points: ``piclusterd`` (the daemon) and ``piclusterctl`` (the operator's tool).

This is the one place where adapters are built and wired to the core, and the only place that turns
errors into exit codes: 0 fine, 1 failure, 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from piclusterd import __version__
from piclusterd.config.model import Config, Mode
from piclusterd.config.parse import DEFAULT_CONFIG_PATH, load_config
from piclusterd.config.settings import (
    AgentSettings,
    ClusterSettings,
    DrainSettings,
    KubeSettings,
    Settings,
    UpsReturnSettings,
    kube_settings,
    settings_for,
    settings_from_config,
)
from piclusterd.core.errors import ConfigError, PiclusterError
from piclusterd.core.ports import PowerSource
from piclusterd.core.power_state import PowerState
from piclusterd.node.audit import AuditLogger, AuditObserver, LogFormat, make_audit_logger
from piclusterd.node.clock import SystemClock
from piclusterd.node.daemon import SHUTDOWN_BY_CLUSTER, PowerDaemon, PreShutdownHook
from piclusterd.node.shutdown_command import CommandShutdown, TickingCommand
from piclusterd.node.systemd_notify import SystemdNotifier
from piclusterd.notify.notifier import Notifier

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from piclusterd.cluster.agent import NodeAgent
    from piclusterd.cluster.authority import RequestVerifier
    from piclusterd.cluster.controller import ClusterController
    from piclusterd.cluster.kube_api import KubeClusterApi
    from piclusterd.cluster.outage_coordinator import UpsShutdownReturn
    from piclusterd.core.cluster_view import ClusterView
    from piclusterd.drivers.shutdown_button import ButtonPress, ShutdownButton
    from piclusterd.node.metrics import NodeMetrics

__all__ = ["ctl_main", "daemon_main"]

JOURNAL_SOCKET = "/run/systemd/journal/socket"
EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_REFUSED = 0, 1, 2, 3


def _default_log_format() -> LogFormat:
    # systemd sets JOURNAL_STREAM when standard error goes to the journal; under sshd (remote-poweroff)
    # standard error goes back to the caller, so the journal is the place for the audit record.
    if os.environ.get("JOURNAL_STREAM") or (os.environ.get("SSH_CONNECTION") and Path(JOURNAL_SOCKET).exists()):
        return LogFormat.JOURNAL
    return LogFormat.CONSOLE


def build_power_source(config: Config) -> PowerSource:
    """The adapter for ``[ups] driver``; several drivers are read as one (``CombinedPowerSource``)."""
    drivers = config.ups.drivers
    if len(drivers) == 1:
        return _build_driver(config, drivers[0])
    from piclusterd.node.combined_source import CombinedPowerSource

    sources: list[PowerSource] = []
    try:
        for driver in drivers:
            sources.append(_build_driver(config, driver))
    except BaseException:
        for source in sources:
            source.close()
        raise
    return CombinedPowerSource(sources, clock=SystemClock(), stale_after_s=config.ups.stale_after_s)


def _build_driver(config: Config, driver: str) -> PowerSource:
    """One adapter: ``"hat"`` or ``"nut"``."""
    if driver == "hat":
        from piclusterd.drivers.gpio_power import open_gpio
        from piclusterd.drivers.hat import open_hat_source

        profile = config.hat.profile
        assert profile is not None  # validated by the config
        gpio = open_gpio() if profile.power_loss is not None else None
        return open_hat_source(
            profile, SystemClock(), bus_number=config.hat.i2c_bus, gpio=gpio, debounce_s=config.hat.debounce_s
        )

    from piclusterd.drivers.nut import NutPowerSource

    ups = config.ups
    return NutPowerSource(
        ups.host,
        ups.port,
        ups.name,
        ups.username,
        None if ups.password is None else ups.password.value,
        clock=SystemClock(),
        timeout_s=ups.timeout_s,
    )


def kube_api_client(settings: KubeSettings) -> ApiClient:
    """A Kubernetes client from ``[cluster] kubeconfig`` (empty: in-cluster), with urllib3's retries off."""
    from kubernetes import client as k8s
    from kubernetes import config as kubeconfig

    path = settings.kubeconfig
    configuration = k8s.Configuration()
    try:
        if path:
            kubeconfig.load_kube_config(config_file=path, client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            kubeconfig.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except Exception as error:  # the loader raises ConfigException, OSError, yaml errors...
        raise ConfigError(
            settings.file,
            "cluster.kubeconfig",
            f"cannot load {path or 'in-cluster config'}: {error}",
            "a kubeconfig made as deploy/README.md shows",
        ) from error
    configuration.retries = False  # bounded latency: our own loop retries, urllib3 must not hide outages
    return k8s.ApiClient(configuration)


def ups_shutdown_return(ups: UpsReturnSettings | None, node: str) -> UpsShutdownReturn | None:
    """``[shutdown] ups_shutdown_return`` through NUT, or None when off or when there is no NUT UPS: the flag
    that the system-shutdown hook sends from the very end of this node's halt (``cluster/ups_kill.py``)."""
    if ups is None:
        return None
    from piclusterd.cluster.ups_kill import UpsKillFlag

    return UpsKillFlag(ups, node)


def _local_shutdown_words(status: dict[str, Any]) -> str:
    if status.get("shutdown_started"):
        return "started"
    if status.get("shutdown_deferred"):
        return f"critical, waiting: {status['shutdown_deferred']}"
    return "not started"


def _node_agent(
    settings: AgentSettings,
    api: KubeClusterApi,
    daemon: PowerDaemon,
    log: AuditLogger,
    verifier: RequestVerifier,
    outage_namespace: str,
) -> NodeAgent:
    """This node's agent: its RTC alarm if it is an rtc-wake node, the relay lines it drives for others, and
    the verifier every request it obeys must pass."""
    from piclusterd.cluster.agent import NodeAgent
    from piclusterd.cluster.power_on import relay_lines
    from piclusterd.cluster.power_on_backends import GpioRelayPower, NodePower, RtcWakeAlarm

    lines = relay_lines(settings.relays)
    relay: NodePower | None = None
    if lines:
        from piclusterd.drivers.gpio_power import open_gpio

        try:
            relay = GpioRelayPower(open_gpio(), lines, time.sleep)
        except PiclusterError as error:  # the relay is a helper for others: this node's own protection goes on
            log.error("node.relay_unavailable", targets=sorted(lines), error=str(error))
    return NodeAgent(
        api,
        settings.identity,
        daemon,
        log,
        verifier=verifier,
        outage_namespace=outage_namespace,
        relay=relay,
        wake_alarm=None if settings.wakealarm is None else RtcWakeAlarm(Path(settings.wakealarm)),
        recheck_s=settings.recheck_s,
        check_in_wait_s=settings.check_in_wait_s,
    )


def build_cluster(
    settings: ClusterSettings,
    daemon: PowerDaemon,
    log: AuditLogger,
    stop: threading.Event,
    planned: Callable[[float], None] | None = None,
    notifier: Notifier | None = None,
) -> ClusterController:
    """Wire the cluster side: the Kubernetes client, the elector, drain, power-off, the node agent.

    Each part is built from its own settings (:mod:`piclusterd.config.settings`) and nothing else."""

    from piclusterd.cluster.authority import DEFAULT_REQUEST_MAX_AGE_S, RequestSigner, RequestVerifier
    from piclusterd.cluster.controller import ClusterController
    from piclusterd.cluster.drain import FULL_SHUTDOWN_DRAIN_MAX_S, SHED_DRAIN_MAX_S, Drainer, DrainOptions
    from piclusterd.cluster.election import ElectionTimings, KubeLeaseStore, LeaseElector, LeaseKeepingSleep
    from piclusterd.cluster.informer import ClusterCache, watched_kinds
    from piclusterd.cluster.kube_api import EventRecorder, KubeClusterApi
    from piclusterd.cluster.outage_coordinator import OutageCoordinator
    from piclusterd.cluster.power_off_request import PeerPowerOff
    from piclusterd.cluster.power_off_ssh import SshPowerOff
    from piclusterd.cluster.power_on import build_power_on
    from piclusterd.cluster.self_drain import build_self_drain
    from piclusterd.core.power_record import PodShutdownRecord, PublishPolicy
    from piclusterd.node.power_publisher import PowerPublisher

    api_client = kube_api_client(settings.kube)
    clock = SystemClock()
    identity = settings.identity
    node_log = log.bind(component="cluster")
    api = KubeClusterApi(api_client)
    # Reads come from watches, not a LIST a poll (issue 17): this node's own Node from the start, the leader's
    # kinds once it first reads the cluster.
    election = settings.election
    kinds = watched_kinds(
        api_client, identity, settings.full_shutdown.namespace, lease=(election.namespace, election.name)
    )
    cache = ClusterCache(kinds, log=node_log)
    cache.start("own-node", "lease")
    api.use_cache(cache, identity)
    events = EventRecorder(api_client, reporter=identity)
    lease_store = KubeLeaseStore(api_client, namespace=election.namespace, name=election.name)
    lease_store.read_from(cache.lease)  # followers see the Lease by watch, not a GET per retry period
    elector = LeaseElector(
        lease_store,
        clock,
        identity,
        timings=ElectionTimings(election.lease_duration_s, election.renew_deadline_s, election.retry_period_s),
        holder_is_node=api.node_exists,
    )

    signer = RequestSigner(settings.keys, elector)
    verifier = RequestVerifier(
        settings.keys,
        KubeLeaseStore(api_client, namespace=election.namespace, name=election.name),  # read fresh for each check
        identity,
        log=node_log,
        events=events,
        max_age_s=max(DEFAULT_REQUEST_MAX_AGE_S, 2 * settings.power_off.ack_timeout_s),
    )

    sleep = LeaseKeepingSleep(elector, clock, stop.wait)

    def keep_alive() -> None:
        daemon.keep_alive()
        elector.renew_when_due()  # each drain tick; the Lease once per retry period

    off = settings.power_off
    ssh = None
    if off.ssh_key and Path(off.ssh_key).exists() and Path(off.ssh_known_hosts).exists():
        ssh = SshPowerOff(key_file=off.ssh_key, known_hosts_file=off.ssh_known_hosts, user=off.ssh_user)
    else:
        node_log.warning(
            "cluster.ssh_fallback_off",
            key=off.ssh_key,
            known_hosts=off.ssh_known_hosts,
            why="key or known_hosts file missing: peers that do not answer cannot be powered off over SSH",
        )

    def make_drainer(drain: DrainSettings, max_timeout_s: float) -> Drainer:
        options = DrainOptions(
            max_timeout_s=max_timeout_s,
            ignore_daemonsets=True,
            delete_emptydir_data=drain.delete_emptydir_data,
            allow_unreplicated=drain.allow_unreplicated,
            timeout_s=drain.timeout_s,
            wait_for_critical_replacements=drain.wait_for_replacements,
            critical_priority_threshold=drain.critical_priority,
        )
        return Drainer(
            api,
            clock,
            sleep=sleep,
            options=options,
            fence=elector.ensure_leader,
            tick=keep_alive,
            log=node_log,
            signer=signer,
        )

    power_off = PeerPowerOff(
        api,
        clock,
        leader=identity,
        signer=signer,
        sleep=sleep,
        fence=elector.ensure_leader,
        tick=keep_alive,
        ssh=ssh,
        ssh_port=off.ssh_port,
        ack_timeout_s=off.ack_timeout_s,
        off_timeout_s=off.off_timeout_s,
        events=events,
        log=node_log,
    )
    outage = OutageCoordinator(
        identity=identity,
        api=api,
        elector=elector,
        drainer=make_drainer(settings.shutdown_drain, FULL_SHUTDOWN_DRAIN_MAX_S),
        power_off=power_off,
        events=events,
        local=daemon,
        hook_runner=TickingCommand(keep_alive),  # a slow snapshot must not trip the watchdog or drop the lease
        ups_return=ups_shutdown_return(settings.ups_return, identity),
        settings=settings.full_shutdown,
        clock=clock,
        sleep=sleep,
        log=log,
        tick=keep_alive,
        verifier=verifier,
        boot_id=_own_boot_id(),
        carrying_file=Path(settings.runtime_dir) / "full-shutdown",
    )
    daemon.defer_to(outage)
    self_drain = build_self_drain(
        settings.self_drain,
        api,
        settings.identity,
        clock,
        runtime_left=lambda: daemon.memory.last_runtime_s,
        log=node_log,
        sleep=sleep,
        tick=keep_alive,
    )
    daemon.add_pre_shutdown_hook(self_drain)
    kubelet = self_drain.kubelet
    if notifier is not None:
        notifier.use_ledger(outage.ledger)  # cluster-wide messages once per outage, whoever leads
    return ClusterController(
        identity=identity,
        api=api,
        elector=elector,
        agent=_node_agent(settings.agent, api, daemon, node_log, verifier, settings.full_shutdown.namespace),
        drainer=make_drainer(settings.drain, SHED_DRAIN_MAX_S),
        power_off=power_off,
        events=events,
        settings=settings.shed,
        clock=clock,
        log=log,
        power_on=build_power_on(settings.power_on, api, identity=identity, wall=clock.wall, signer=signer),
        publisher=PowerPublisher(
            api,
            identity,
            clock=clock,
            log=node_log,
            pod_shutdown=PodShutdownRecord(kubelet.method, kubelet.grace_s, kubelet.critical_s),
            # The record's age is read only by a leader planning with per-node batteries: only then a refresh.
            policy=PublishPolicy() if settings.shed.node_battery is not None else PublishPolicy(publish_every_s=None),
        ),
        outage=outage,
        planned=planned,
    )


def load(path: str | Path) -> tuple[Config, Settings]:
    """The configuration at ``path`` and each part's settings from it: the one validation ``run``,
    ``check-config`` and a reload all go through. Raises :class:`ConfigError`."""
    config = load_config(path)
    _check_metrics_library(config)
    return config, settings_for(config)


def _check_metrics_library(config: Config) -> None:
    """``[metrics]`` needs Python's Prometheus client: said by check-config, not first by a failed start."""
    from piclusterd.node.metrics import METRICS_INSTALL_HINT

    key = "metrics.listen" if config.metrics.listen is not None else "metrics.textfile"
    if config.metrics.listen is None and config.metrics.textfile is None:
        return
    try:
        import prometheus_client  # noqa: F401 (only whether it is there)
    except ImportError:
        raise ConfigError(
            config.path,
            key,
            "is set, but Python's Prometheus client is not installed",
            f'{METRICS_INSTALL_HINT}, or {key} = ""',
        ) from None


def _power_cut_hooks(config: Config, log: AuditLogger) -> tuple[PreShutdownHook, ...]:
    """The power-cut flag, when this node runs on a HAT with a power-cut pin (X728): see drivers/power_cut.py."""
    profile = config.hat.profile
    if "hat" not in config.ups.drivers or profile is None or profile.power_cut is None:
        return ()
    from piclusterd.node.power_cut_flag import PowerCutFlag

    return (PowerCutFlag(profile.power_cut, log),)


def _run(args: argparse.Namespace) -> int:
    try:
        config, settings = load(args.config)
    except ConfigError as error:
        print(f"piclusterd: refusing to start: {error}", file=sys.stderr)
        return EXIT_CONFIG
    fmt = LogFormat(args.log_format) if args.log_format else _default_log_format()
    metrics = None
    if config.metrics.listen is not None or config.metrics.textfile is not None:
        from piclusterd.node.metrics import NodeMetrics

        try:
            metrics = NodeMetrics(config)
        except PiclusterError as error:
            print(f"piclusterd: refusing to start: {config.path}: {error}", file=sys.stderr)
            return EXIT_CONFIG
    notifier = build_notifier(config)
    try:
        observers = (*_observers(metrics), notifier.observe)
        log = make_audit_logger(fmt, config.node.name, level=args.log_level, observers=observers)
    except RuntimeError as error:
        print(f"piclusterd: {error}", file=sys.stderr)
        return EXIT_CONFIG
    notifier.start(log)
    try:
        return _run_logged(args, config, settings, log, notifier, metrics)
    finally:
        notifier.stop()  # what it has not sent waits on disk for the next start


def build_notifier(config: Config) -> Notifier:
    """The notifier of ``[notify]`` (one with no sinks does nothing)."""
    from piclusterd.notify.senders import build_senders

    return Notifier(config.notify, config.node.name, build_senders(config.notify.sinks), wall=SystemClock().wall)


def _run_logged(
    args: argparse.Namespace,
    config: Config,
    settings: Settings,
    log: AuditLogger,
    notifier: Notifier,
    metrics: NodeMetrics | None,
) -> int:
    stop = threading.Event()
    reload_requested = threading.Event()

    def on_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    def on_hup(_signum: int, _frame: FrameType | None) -> None:
        reload_requested.set()  # the loop sees it on its next poll

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    try:
        daemon = PowerDaemon(
            config,
            source_factory=build_power_source,
            clock=SystemClock(),
            log=log,
            notifier=SystemdNotifier(),
            shutdown=CommandShutdown(),
            pre_shutdown_hooks=_power_cut_hooks(config, log),
        )
    except PiclusterError as error:  # e.g. the HAT's I2C bus or GPIO pin is missing: the message has the fix
        log.critical("daemon.failed", error=str(error))
        print(f"piclusterd: cannot start: {error}", file=sys.stderr)
        return EXIT_FAILURE
    _log_last_minute(config, log)
    button = _shutdown_button(config, daemon, log)
    from piclusterd.node.ups_restart_check import check_ups_restart_in_background

    check_ups_restart_in_background(config, log)
    cluster = None
    if settings.cluster is not None:
        try:
            planned = None if metrics is None else metrics.planned
            cluster = build_cluster(settings.cluster, daemon, log, stop, planned=planned, notifier=notifier)
        except ConfigError as error:
            print(f"piclusterd: refusing to start: {error}", file=sys.stderr)
            return EXIT_CONFIG
    try:
        with _serving_metrics(metrics, config, daemon, log):
            daemon.run(stop, reload_requested, lambda: load(args.config)[0], cluster)
    except PiclusterError as error:
        log.critical("daemon.failed", error=str(error))
        return EXIT_FAILURE
    finally:
        if button is not None:
            button.close()
    return EXIT_OK


def _observers(metrics: NodeMetrics | None) -> tuple[AuditObserver, ...]:
    return () if metrics is None else (metrics.observe,)


@contextlib.contextmanager
def _serving_metrics(
    metrics: NodeMetrics | None, config: Config, daemon: PowerDaemon, log: AuditLogger
) -> Iterator[None]:
    """The ``/metrics`` endpoint and the textfile, for as long as the daemon runs ([metrics])."""
    if metrics is None:
        yield
        return
    from piclusterd.node.metrics import MetricsServer, TextfileWriter

    metrics.watch(daemon.status)
    server = None if config.metrics.listen is None else MetricsServer(metrics, config.metrics.listen)
    if server is not None:
        host, _port = config.metrics.listen  # type: ignore[misc]
        log.info("metrics.serving", address=f"http://{host if ':' not in host else f'[{host}]'}:{server.port}/metrics")
    textfile = None
    if config.metrics.textfile is not None:
        textfile = TextfileWriter(
            metrics, config.metrics.textfile, lambda why: log.warning("metrics.textfile_failed", error=why)
        )
    try:
        yield
    finally:
        if server is not None:
            server.close()
        if textfile is not None:
            textfile.close()
def _shutdown_button(config: Config, daemon: PowerDaemon, log: AuditLogger) -> ShutdownButton | None:
    """The HAT's shutdown button (X728: GPIO5), when the profile has one and [hat] shutdown_button is on: a
    press is this node's orderly shutdown, drained first (the daemon's hooks). A pin that cannot be set up is
    said, never fatal: the node's power protection does not depend on the button."""
    profile = config.hat.profile
    if "hat" not in config.ups.drivers or profile is None or profile.shutdown_button is None:
        return None
    if not config.hat.shutdown_button:
        return None
    from piclusterd.drivers.gpio_power import open_gpio
    from piclusterd.drivers.shutdown_button import ShutdownButton

    spec = profile.shutdown_button

    def pressed(press: ButtonPress) -> None:
        log.warning("shutdown.button_pressed", press=press.value, pin=spec.pin)
        daemon.press_button(press.value)

    try:
        button = ShutdownButton(open_gpio(), spec, SystemClock(), pressed)
    except PiclusterError as error:
        log.error("shutdown.button_unavailable", pin=spec.pin, error=str(error))
        return None
    button.start()
    return button


def _log_last_minute(config: Config, log: AuditLogger) -> None:
    """Say once at start how this node's pods end before a halt and whether the reserve covers the last minute
    (what check-config prints, in the journal: a warning there is not a refusal)."""
    from piclusterd.config.last_minute import last_minute_report
    from piclusterd.node.kubelet_config import read_kubelet_shutdown

    report = last_minute_report(config, read_kubelet_shutdown(Path(config.shutdown.k3s_config)))
    level = log.warning if report.warnings else log.info
    level(
        "shutdown.last_minute",
        method=report.budget.pods_from,
        budget_s=round(report.budget.total_s),
        parts=report.budget.describe(),
        warnings=[f"{c.key}: {c.message}" for c in report.warnings],
    )


def _remote_poweroff(args: argparse.Namespace) -> int:
    """The forced command of piclusterd's SSH key on this node: power off cleanly, nothing else.

    sshd passes what the leader asked for in SSH_ORIGINAL_COMMAND: ``poweroff <node> <request-id>``. A
    request that names another node is refused (an address reused by another machine must not power it
    off), and so is anything else the key might be used to run. The id must be that of a signed, current
    request on this node's Node object, checked as the agent checks it (:func:`_remote_request_refused`).
    """
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"piclusterd remote-poweroff: refused: {error}", file=sys.stderr)
        return EXIT_CONFIG
    fmt = LogFormat(args.log_format) if args.log_format else _default_log_format()
    notifier = build_notifier(config)  # a refusal is news: queued for the running daemon to send
    log = make_audit_logger(fmt, config.node.name, observers=(notifier.observe,)).bind(component="remote-poweroff")
    try:
        return _remote_poweroff_checked(config, log)
    finally:
        notifier.hand_over()


def _remote_poweroff_checked(config: Config, log: AuditLogger) -> int:
    words = os.environ.get("SSH_ORIGINAL_COMMAND", "").split()
    origin = os.environ.get("SSH_CLIENT", "local").split(" ")[0]
    if len(words) != 3 or words[0] != "poweroff":
        log.error("shutdown.remote_refused", origin=origin, request=" ".join(words)[:200], why="not a poweroff request")
        print("refused: this key may only request a power-off", file=sys.stderr)
        return EXIT_REFUSED
    _, node, request_id = words
    if node != config.node.name:
        log.error(
            "shutdown.remote_refused",
            origin=origin,
            request_id=request_id,
            asked_for=node,
            why=f"this node is {config.node.name}",
        )
        print(f"refused: this is {config.node.name}, not {node}", file=sys.stderr)
        return EXIT_REFUSED
    # The marker keeps a repeated request from running the shutdown twice: without a usable runtime dir,
    # refuse before asking the API server anything.
    marker = Path(config.daemon.runtime_dir) / "remote-poweroff"
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        first = marker.read_text(encoding="utf-8", errors="replace")[:200].strip() if marker.is_file() else None
    except OSError as error:
        return _remote_runtime_dir_unusable(log, origin, request_id, marker, error)
    refused = _remote_request_refused(config, request_id, log)
    if refused is not None:
        log.error("shutdown.remote_refused", origin=origin, request_id=request_id, why=refused)
        print(f"refused: {refused}", file=sys.stderr)
        return EXIT_REFUSED
    if first is not None:
        log.info("shutdown.remote_duplicate", origin=origin, request_id=request_id, first=first)
        print("accepted: power-off already under way", file=sys.stderr)
        return EXIT_OK
    argv = list(config.shutdown.command)
    if config.mode is Mode.DRY_RUN:
        log.warning(
            "shutdown.local_skipped",
            reason=f"power-off requested by {origin} ({request_id})",
            would_run=argv,
            mode="dry-run",
            by=SHUTDOWN_BY_CLUSTER,
            why='mode is "dry-run": cluster actions are only logged',
        )
        print("accepted (dry-run: nothing done)", file=sys.stderr)
        return EXIT_OK
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{request_id} {origin}\n")
    except OSError as error:
        return _remote_runtime_dir_unusable(log, origin, request_id, marker, error)
    log.critical(
        "shutdown.local_started",
        reason=f"power-off requested by {origin} ({request_id})",
        command=argv,
        mode=config.mode.value,
        by=SHUTDOWN_BY_CLUSTER,
    )
    code = CommandShutdown().run(argv)
    if code != 0:
        marker.unlink(missing_ok=True)
        log.critical("shutdown.local_failed", command=argv, exit_status=code)
        print(f"failed: shutdown command exited {code}", file=sys.stderr)
        return EXIT_FAILURE
    print("accepted: powering off", file=sys.stderr)
    return EXIT_OK


def _remote_runtime_dir_unusable(log: AuditLogger, origin: str, request_id: str, marker: Path, error: OSError) -> int:
    """Without its marker a second request could run the shutdown twice: refuse, loudly, and change nothing."""
    why = f"cannot use {marker}: {error.strerror or error}"
    log.error("shutdown.remote_refused", origin=origin, request_id=request_id, why=why)
    print(f"refused: {why}; expected a writable [daemon] runtime_dir", file=sys.stderr)
    return EXIT_CONFIG


def _own_boot_id() -> str | None:
    """This machine's boot id (the unit's ``%b``; /proc/sys elsewhere), None if it cannot be read."""
    from piclusterd.drivers.power_cut import read_boot_id

    try:
        return read_boot_id()
    except (OSError, ValueError):
        return None


def _own_power_state(config: Config) -> PowerState | None:
    """This node's power state from its daemon's status file, None if the daemon is not running (no file, or
    not rewritten within ``stale_after``: the same machine's clock on both sides)."""
    try:
        with open(Path(config.daemon.runtime_dir) / "status.json", "rb") as stream:
            status = json.loads(stream.read(65536))
        updated = float(status["updated_wall"])
        state = PowerState(status["state"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not abs(time.time() - updated) <= config.ups.stale_after_s:
        return None
    return state


def _remote_request_refused(config: Config, request_id: str, log: AuditLogger) -> str | None:
    """None when this node's Node carries a signed, current power-off request with ``request_id`` (the agent's
    checks: signature, replay, leader, term, freshness, situation); else why it is refused."""
    from piclusterd.cluster.agent import poweroff_situation
    from piclusterd.cluster.authority import RequestVerifier
    from piclusterd.cluster.election import KubeLeaseStore
    from piclusterd.cluster.kube_api import EventRecorder, KubeClusterApi
    from piclusterd.core.node_records import REQUEST_ANNOTATION, InvalidRecord, parse_poweroff_request

    keys = config.cluster.signing_keys
    if not config.cluster.enabled or keys is None:
        return "[cluster] is not enabled on this node: it obeys only a request signed by the leader"
    try:
        api_client = kube_api_client(kube_settings(config))
        api = KubeClusterApi(api_client, request_timeout_s=5.0)
        node = api.get_node(config.node.name)
        raw = ((node.get("metadata") or {}).get("annotations") or {}).get(REQUEST_ANNOTATION)
        if not isinstance(raw, str):
            return f"there is no power-off request on Node {config.node.name}"
        request = parse_poweroff_request(raw)
        if isinstance(request, InvalidRecord):
            return f"the power-off request on Node {config.node.name} cannot be read: {request.reason}"
        if request.request_id != request_id:
            return f"the request on Node {config.node.name} is {request.request_id[:64]!r}, not {request_id[:64]!r}"
        lease = KubeLeaseStore(api_client, namespace=config.cluster.lease_namespace, name=config.cluster.lease_name)
        events = EventRecorder(api_client, reporter=config.node.name, request_timeout_s=5.0)
        verifier = RequestVerifier(keys, lease, config.node.name, log=log, events=events)
        situation = poweroff_situation(api, config.cluster.lease_namespace, _own_power_state(config), verifier)
        refusal = verifier.check_poweroff(request, situation)
    except PiclusterError as error:
        return f"cannot check the request with the API server: {error}"
    return None if refusal is None else f"check {refusal.check.value}: {refusal.detail}"


def _check_config(args: argparse.Namespace) -> int:
    try:
        config, _settings = load(args.config)  # the validation `run` does, to the last part's settings
    except ConfigError as error:
        print(str(error), file=sys.stderr)
        return EXIT_CONFIG
    print(
        f"{config.path}: OK (node {config.node.name}, mode {config.mode.value}, ups {config.ups.name}@"
        f"{config.ups.host}:{config.ups.port})"
    )
    # The last minute: offline (local files only), so a silent upsd or API server never holds the start.
    # Warnings, never a refusal: a node whose daemon does not start has no protection at all.
    from piclusterd.config.last_minute import last_minute_report
    from piclusterd.node.kubelet_config import read_kubelet_shutdown

    report = last_minute_report(config, read_kubelet_shutdown(Path(config.shutdown.k3s_config)))
    for line in report.lines():
        print(line)
    return EXIT_OK


def _demo(argv: list[str]) -> int:
    from piclusterd.sim.demo_command import demo_main

    return demo_main(argv)


def daemon_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="piclusterd", description="Power-aware Raspberry Pi cluster daemon.")
    parser.add_argument("--version", action="version", version=f"piclusterd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("--config", default=str(DEFAULT_CONFIG_PATH), help="configuration file (default: %(default)s)")
    run.add_argument(
        "--log-format",
        choices=[f.value for f in LogFormat],
        help="journal under systemd, console on a terminal (default), or one JSON object per line",
    )
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.set_defaults(handler=_run)
    check = commands.add_parser("check-config", help="validate a configuration file (exit 0 valid, 2 invalid)")
    check.add_argument("--config", default=str(DEFAULT_CONFIG_PATH), help="configuration file (default: %(default)s)")
    check.set_defaults(handler=_check_config)
    remote = commands.add_parser("remote-poweroff", help="the forced command of the cluster's SSH key (see deploy/)")
    remote.add_argument("--config", default=str(DEFAULT_CONFIG_PATH), help="configuration file (default: %(default)s)")
    remote.add_argument("--log-format", choices=[f.value for f in LogFormat])
    remote.set_defaults(handler=_remote_poweroff)
    commands.add_parser("demo", help="watch the real daemon code ride out a scripted outage (demo --help)")
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["demo"]:  # the demo has its own options
        return _demo(arguments[1:])
    args = parser.parse_args(arguments)
    code: int = args.handler(args)
    return code


# --- piclusterctl ---------------------------------------------------------------------------------------

STATUS_STALE_S = 30.0


def _cluster_status(config_path: str) -> dict[str, object] | None:
    """Lease holder and every node's state and draw, read live from the API; None without [cluster]."""
    from dataclasses import asdict

    from kubernetes import client as k8s

    from piclusterd.cluster.kube_api import KubeClusterApi, request_timeout
    from piclusterd.cluster.status_view import node_statuses
    from piclusterd.core.cluster_view import parse_kubectl_list

    try:
        config = load_config(config_path)
    except ConfigError:
        return None
    if not config.cluster.enabled:
        return None
    try:
        client_for_status = kube_api_client(kube_settings(config))
    except ConfigError as error:
        return {"error": str(error)}
    with client_for_status as api_client:
        try:
            view = parse_kubectl_list(KubeClusterApi(api_client).snapshot())
            lease = k8s.CoordinationV1Api(api_client).read_namespaced_lease(
                config.cluster.lease_name, config.cluster.lease_namespace, _request_timeout=request_timeout(5)
            )
            holder = (lease.spec.holder_identity if lease.spec is not None else None) or None
        except Exception as error:  # API down: say so, the local part is still useful
            return {"error": f"Kubernetes API: {error}"}
    try:
        hardware = settings_from_config(config, capacity_wh=config.battery.capacity_wh or 1.0).hardware
    except ConfigError:
        return {"error": "no [battery] capacity_wh"}
    nodes = [asdict(row) for row in node_statuses(view, hardware, config.power_method)]
    return {"leader": holder, "nodes": nodes, "total_draw_w": round(sum(float(n["draw_w"]) for n in nodes), 1)}


def _status(args: argparse.Namespace) -> int:
    path = Path(args.runtime_dir) / "status.json"
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        print(f"piclusterctl: {path} not found: is piclusterd running? (systemctl status piclusterd)", file=sys.stderr)
        return EXIT_FAILURE
    except (OSError, ValueError) as error:
        print(f"piclusterctl: cannot read {path}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    age = time.time() - float(status.get("updated_wall") or 0)
    cluster = _cluster_status(args.config)
    if args.json:
        print(json.dumps({**status, "cluster": cluster}, indent=1))
    else:
        rows = [
            ("node", status.get("node")),
            ("mode", status.get("mode")),
            ("power", status.get("summary")),
            ("state", f"{status.get('state')} ({status.get('reason')})"),
            (
                "source",
                f"{status.get('source')}" + ("" if status.get("source_ok") else f": {status.get('last_error')}"),
            ),
            ("runtime from", status.get("runtime_source")),
            ("load", "unknown" if status.get("load_w") is None else f"{status['load_w']:.0f} W"),
            ("local shutdown", _local_shutdown_words(status)),
            ("updated", f"{age:.0f} s ago"),
        ]
        for name, value in rows:
            print(f"{name + ':':16}{value}")
        if cluster is not None and "error" in cluster:
            print(f"{'cluster:':16}{cluster['error']}")
        elif cluster is not None:
            print(f"{'leader:':16}{cluster['leader'] or 'none'}")
            print(f"\n{'node':<12}{'role':<15}{'ready':<7}{'cordoned':<10}{'shed':<13}draw")
            for node in cluster["nodes"]:  # type: ignore[attr-defined]
                print(
                    f"{node['name']:<12}{node['role']:<15}{'yes' if node['ready'] else 'NO':<7}"
                    f"{'yes' if node['cordoned'] else '-':<10}{node['shed']:<13}{node['draw_w']:.1f} W"
                )
            print(f"{'':<57}{cluster['total_draw_w']:.1f} W in all (estimated)")
            for node in cluster["nodes"]:  # type: ignore[attr-defined]
                if node.get("note"):
                    print(f"{node['name']}: {node['note']}")
    if age > STATUS_STALE_S:
        print(f"piclusterctl: warning: status is {age:.0f} s old: the daemon may be stopped or hung", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


#: A snapshot larger than this is refused: ``kubectl get nodes,pods,pdb,pv,pvc -A -o json`` of a few hundred pods is
#: a few MiB; parsing hundreds of MiB of JSON would take a Pi's memory.
SNAPSHOT_MAX_BYTES = 64 * 1024 * 1024


def _read_snapshot(path: str) -> object:
    """The JSON in ``path``: a regular file (never a device or pipe, which could hang or never end) of at most
    :data:`SNAPSHOT_MAX_BYTES`. Raises ValueError with the reason."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as error:
        raise ValueError(error.strerror or str(error)) from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file: save the snapshot to a file first")
        if info.st_size > SNAPSHOT_MAX_BYTES:
            raise ValueError(f"{info.st_size} bytes, more than the {SNAPSHOT_MAX_BYTES // 2**20} MiB a snapshot may be")
        data = file.read(SNAPSHOT_MAX_BYTES + 1)
    if len(data) > SNAPSHOT_MAX_BYTES:
        raise ValueError(f"more than the {SNAPSHOT_MAX_BYTES // 2**20} MiB a snapshot may be")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8 text: {error.reason} at byte {error.start}") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


#: ``--as-of`` is refused outside these years: a typo, not a snapshot's time.
AS_OF_YEARS = (2000, 2200)


def parse_as_of(text: str) -> float:
    """``--as-of``: RFC 3339 with a zone (``2026-12-06T02:14:00Z``, ``...+01:00``) or ``@`` UNIX seconds, as
    UNIX time. Raises ValueError with the reason."""
    import datetime
    import math

    text = text.strip()[:64]
    if text.startswith("@"):
        try:
            wall = float(text[1:])
        except ValueError:
            raise ValueError(f"{text!r} is not @ and a number of UNIX seconds") from None
    else:
        try:
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an RFC 3339 time (2026-12-06T02:14:00Z)") from None
        if moment.tzinfo is None:
            raise ValueError(f"{text!r} has no time zone: add Z for UTC or an offset such as +01:00")
        wall = moment.timestamp()
    low, high = (datetime.datetime(year, 1, 1, tzinfo=datetime.UTC).timestamp() for year in AS_OF_YEARS)
    if not (math.isfinite(wall) and low <= wall < high):
        raise ValueError(f"{text!r} is not between {AS_OF_YEARS[0]} and {AS_OF_YEARS[1]}")
    return wall


def _plan_arguments(args: argparse.Namespace) -> str | None:
    """What is wrong with the numbers on the command line, or None."""
    import math

    if args.as_of is not None:
        try:
            parse_as_of(args.as_of)
        except ValueError as error:
            return f"--as-of {error}"

    if args.charge is not None and not (math.isfinite(args.charge) and 0 <= args.charge <= 100):
        return f"--charge {args.charge:g}: a battery charge is a percentage from 0 to 100"
    if args.battery_wh is not None and not (math.isfinite(args.battery_wh) and args.battery_wh > 0):
        return f"--battery-wh {args.battery_wh:g}: the battery's capacity is a positive number of Wh (12 V 7 Ah = 84)"
    return None


def _plan(args: argparse.Namespace) -> int:
    """What-if: the plan the leader would make for a snapshot, from the config or the packaged defaults."""
    from piclusterd.config.parse import parse_config
    from piclusterd.core.cluster_view import parse_kubectl_list
    from piclusterd.core.errors import ClusterError
    from piclusterd.core.plan_view import (
        PlanInputs,
        full_shutdown_view,
        plan_view,
        question_snapshot,
        render_text,
    )
    from piclusterd.core.planner import plan
    from piclusterd.core.power_draw import PowerSituation
    from piclusterd.core.power_on_record import settling_from_records

    problem = _plan_arguments(args)
    if problem is not None:
        print(f"piclusterctl plan: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        config = load_config(args.config) if args.config else parse_config({}, "(packaged defaults)")
        snapshot = _read_snapshot(args.snapshot)
        view = parse_kubectl_list(snapshot)
    except ConfigError as error:
        print(f"piclusterctl plan: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except (OSError, ValueError, ClusterError) as error:
        print(f"piclusterctl plan: cannot read {args.snapshot}: {error}", file=sys.stderr)
        return EXIT_CONFIG
    questions = question_snapshot(snapshot, view)
    for line in questions.fatal:
        print(f"piclusterctl plan: {args.snapshot}: {line}", file=sys.stderr)
    if questions.fatal:
        return EXIT_CONFIG
    for line in questions.warnings:
        print(f"warning: {line}", file=sys.stderr)
    try:
        settings = settings_from_config(config, args.battery_wh)
    except ConfigError as error:
        print(f"piclusterctl plan: {error}; or pass --battery-wh", file=sys.stderr)
        return EXIT_CONFIG
    battery = settings.battery
    inputs = PlanInputs(
        charge_given=args.charge,
        on_battery=args.on_battery,
        battery=battery,
        capacity_source="--battery-wh" if args.battery_wh is not None else f"[battery] capacity_wh in {config.path}",
        hardware=settings.hardware,
        policy=settings.policy,
    )

    last_minute = _plan_last_minute(config, view, snapshot)

    def show(report: dict[str, Any]) -> int:
        report = {**report, "last_minute": last_minute}
        if args.json:
            print(json.dumps(report, indent=1))
        else:
            print("\n".join(render_text(report)))
            if last_minute is not None:
                print(f"last minute (leader {last_minute['leader']} last): {last_minute['parts']}")
        return EXIT_OK

    # At or below the shutdown level every node is already shutting down: no shedding plan is the answer.
    if args.on_battery and args.charge is not None and args.charge <= battery.shutdown_charge_pct:
        return show(full_shutdown_view(view, args.charge, inputs, questions.warnings))
    now = 0.0
    grace = settings.policy.on_battery_grace_s
    situation = PowerSituation(
        state="on_battery" if args.on_battery else "online",
        on_battery_since=now - grace - 1 if args.on_battery else None,  # past the grace period
        charge_pct=args.charge,
    )
    node_batteries = None
    if settings.node_battery is None and settings.topology is None:
        from piclusterd.core.node_batteries import nodes_with_own_battery

        # What the daemon warns of (battery.node_capacity_unset): the what-if must not silently differ.
        hats = nodes_with_own_battery(view)
        if hats:
            print(
                f"warning: {', '.join(hats)} publish a battery of their own (HAT), but [battery] node_capacity_wh "
                "is not set: this plan uses the shared battery only (set node_capacity_wh, or topology = "
                '"shared" if that is meant)',
                file=sys.stderr,
            )
    # The records' ages are judged as of --as-of (the snapshot's time, so a per-node decision replays), or now:
    # a saved snapshot's records are then old, so they count as unknown (and the plan says so).
    wall = time.time() if args.as_of is None else parse_as_of(args.as_of)
    if settings.node_battery is not None:
        from piclusterd.core.node_batteries import read_node_batteries

        # Each node's own battery from the records in the snapshot, as the leader reads them.
        node_batteries = read_node_batteries(
            view,
            wall,
            settings.node_battery,
            max_age_s=settings.power_record_max_age_s,
            topology=settings.topology,
        )
    # Nodes the power-on records say came back less than restore_after ago settle, as the leader lets them.
    settling = settling_from_records(view, wall, settings.restore)
    decided = plan(
        view,
        situation,
        battery,
        settings.policy,
        now,
        hardware=settings.hardware,
        node_batteries=node_batteries,
        settling=settling,
    )
    return show(plan_view(view, decided, inputs, questions.warnings))


def _plan_last_minute(config: Config, view: ClusterView, snapshot: object) -> dict[str, Any] | None:
    """Where the reserve at critical goes, for the node whose last minute is longest when it is the leader: its
    pods (their grace periods, or its kubelet's, from its power record), every other node's turn, the OS, the
    UPS's delay; and whether critical_runtime covers it."""
    from piclusterd.core.last_minute_budget import check_reserve, cluster_last_minute, grace_periods
    from piclusterd.core.power_record import POWER_ANNOTATION, PowerRecord, parse_power_record

    kubelet: dict[str, float] = {}
    for node in view.nodes:
        record = parse_power_record(node.annotations.get(POWER_ANNOTATION, "")) if node.annotations else None
        if isinstance(record, PowerRecord) and record.pod_shutdown and record.pod_shutdown.method == "kubelet":
            kubelet[node.name] = record.pod_shutdown.grace_s
    shutdown = config.shutdown
    found = cluster_last_minute(
        view,
        grace_periods(snapshot if isinstance(snapshot, Mapping) else {}),
        critical_priority=config.cluster.critical_priority,
        os_shutdown_s=shutdown.os_shutdown_s,
        drain_s=shutdown.drain_timeout_s,
        ack_s=config.cluster.poweroff_ack_timeout_s,
        ups_delay_s=shutdown.ups_off_delay_s if shutdown.ups_shutdown_return else 0.0,
        kubelet_grace_by_node=kubelet,
    )
    if found is None:
        return None
    leader, budget = found
    critical = config.policy.critical_runtime_s
    (check,) = check_reserve(budget, critical_runtime_s=critical)
    return {
        "leader": leader,
        "budget_s": budget.total_s,
        "pods_s": budget.pods_s,
        "os_shutdown_s": budget.os_shutdown_s,
        "others_first_s": budget.others_first_s,
        "ups_delay_s": budget.ups_delay_s,
        "critical_runtime_s": config.policy.critical_runtime_s,
        "covered": check.verdict.value == "ok",
        "parts": budget.describe()
        + ("" if check.verdict.value == "ok" else f"; WARNING: critical_runtime is {round(critical)} s"),
    }


def _probe(args: argparse.Namespace) -> int:
    from piclusterd.drivers.gpio_power import open_gpio
    from piclusterd.drivers.hat import probe
    from piclusterd.drivers.i2c import open_i2c_bus

    try:
        gpio = open_gpio()
    except PiclusterError as error:
        print(f"piclusterctl: GPIO not available, pins not checked: {error}", file=sys.stderr)
        gpio = None
    report = probe(lambda number: open_i2c_bus(number), gpio, args.model_path, bus_number=args.bus)
    for line in report.lines():
        print(line)
    return EXIT_OK


def _keygen(args: argparse.Namespace) -> int:
    """A new cluster key, mode 0600; an existing file is never overwritten (every Pi would need the new key)."""
    from piclusterd.config.cluster_key import create_key_file

    try:
        create_key_file(args.out)
    except FileExistsError:
        print(
            f"piclusterctl keygen: {args.out} exists: refusing to overwrite a cluster key; remove it first (every Pi "
            "then needs the new key) or give --out another path",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    except OSError as error:
        print(f"piclusterctl keygen: cannot write {args.out}: {error.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{args.out}: new cluster key (mode 0600). Copy it to the same path on every Pi, root-only.")
    return EXIT_OK


def _doctor(args: argparse.Namespace) -> int:
    """Findings, each with its fix; exit 0 when nothing needs a person, 1 when something does, 2 when the
    configuration cannot be read (the one validation run uses)."""
    from dataclasses import asdict

    from piclusterd.cluster.doctor import run_doctor
    from piclusterd.core.doctor_rules import Level, exit_status

    try:
        config, settings = load(args.config)
    except ConfigError as error:
        print(f"piclusterctl doctor: {error}", file=sys.stderr)
        return EXIT_CONFIG
    findings = run_doctor(config, settings, build_power_source, lambda cluster: kube_api_client(cluster.kube))
    if args.json:
        print(json.dumps({"findings": [asdict(f) for f in findings], "exit": exit_status(findings)}, indent=1))
    else:
        for finding in findings:
            label = {Level.PROBLEM: "PROBLEM", Level.WARNING: "WARNING", Level.INFO: "ok     "}[finding.level]
            print(f"{label} {finding.subject}: {finding.message}")
            if finding.fix:
                print(f"        fix: {finding.fix}")
        needing = sum(f.level is not Level.INFO for f in findings)
        print(f"{needing} finding(s) need a person" if needing else "nothing needs a person")
    return exit_status(findings)


def _report(args: argparse.Namespace) -> int:
    from piclusterd.node.report_command import main

    return main(args)


def _simulate(args: argparse.Namespace) -> int:
    from piclusterd.sim.simulate_command import main

    return main(args)


def _authorized_keys(args: argparse.Namespace) -> int:
    from piclusterd.cluster.authorized_keys import (
        AuthorizedKeysError,
        authorized_keys_line,
        parse_cidrs,
        read_public_key,
    )

    try:
        line = authorized_keys_line(parse_cidrs(args.networks), read_public_key(args.key))
    except AuthorizedKeysError as error:
        print(f"piclusterctl authorized-keys: {error}", file=sys.stderr)
        return EXIT_CONFIG
    print(line)
    return EXIT_OK


def _notify_test(args: argparse.Namespace) -> int:
    """A test message through every sink, each result on its own line; exit 1 if any sink failed."""
    try:
        config, _settings = load(args.config)  # check-config's validation, every sink included
    except ConfigError as error:
        print(str(error), file=sys.stderr)
        return EXIT_CONFIG
    if not config.notify.sinks:
        print(f"{config.path}: no [notify.<name>] sink to test; see man piclusterd.toml, NOTIFY", file=sys.stderr)
        return EXIT_CONFIG
    failed = 0
    for sink, problem in build_notifier(config).send_test():
        if problem is None:
            print(f"{sink}: sent")
        else:
            failed += 1
            print(f"{sink}: FAILED: {problem}")
    return EXIT_FAILURE if failed else EXIT_OK


def ctl_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="piclusterctl", description="Operate and inspect piclusterd.")
    parser.add_argument("--version", action="version", version=f"piclusterctl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="this node's power state, the leader and every node's state")
    status.add_argument("--runtime-dir", default="/run/piclusterd", help="the daemon's [daemon] runtime_dir")
    status.add_argument("--json", action="store_true", help="print the raw status as JSON")
    status.add_argument(
        "--config", default=str(DEFAULT_CONFIG_PATH), help="for the cluster view (default: %(default)s)"
    )
    status.set_defaults(handler=_status)
    what_if = commands.add_parser("plan", help="what the leader would shed for a cluster snapshot")
    what_if.add_argument("--snapshot", required=True, help="kubectl get nodes,pods,pdb,pv,pvc -A -o json > FILE")
    what_if.add_argument("--config", help="piclusterd.toml for the policy and battery (default: packaged defaults)")
    what_if.add_argument(
        "--charge", type=float, default=None, help="battery charge %%, 0-100 (default: estimated, and said so)"
    )
    what_if.add_argument("--on-battery", action="store_true", help="mains has failed (default: on mains)")
    what_if.add_argument("--battery-wh", type=float, help="battery capacity in Wh, if not in the config")
    what_if.add_argument("--json", action="store_true", help="machine-readable output")
    what_if.add_argument(
        "--as-of",
        metavar="TIME",
        help="judge the records' ages as of TIME, the snapshot's (RFC 3339, 2026-12-06T02:14:00Z, or @UNIX seconds; "
        "default: now)",
    )
    what_if.set_defaults(handler=_plan)
    probe = commands.add_parser("probe", help="scan I2C and GPIO for a UPS HAT and suggest a [hat] profile")
    probe.add_argument("--bus", type=int, default=1, help="I2C bus number (default: %(default)s)")
    probe.add_argument("--model-path", default="/proc/device-tree/model", help=argparse.SUPPRESS)
    probe.set_defaults(handler=_probe)
    keygen = commands.add_parser("keygen", help="make the cluster key the leader signs its requests with")
    keygen.add_argument(
        "--out", default="/etc/piclusterd/cluster.key", help="where to write it, mode 0600 (default: %(default)s)"
    )
    keygen.set_defaults(handler=_keygen)
    sim = commands.add_parser("simulate", help="replay an outage on simulated time, with and without piclusterd")
    sim.add_argument("scenario", metavar="SCENARIO.toml", help="a simulation file (see examples/scenarios/)")
    outage = sim.add_mutually_exclusive_group()
    outage.add_argument("--outage", metavar="NAME", help="storm-2am, brownout-flap, long-night or blip")
    outage.add_argument("--outage-csv", metavar="FILE", help="mains times: rows time,on|off or off_at,on_at")
    sim.add_argument("--plot", metavar="OUT.png", help="draw every run on the same axes (needs matplotlib)")
    sim.add_argument("--csv", metavar="OUT.csv", help="write every run's timeline")
    sim.add_argument("--compare", metavar="target_runtime=2h,4h,8h", help="one piclusterd run per target")
    sim.add_argument("--find-battery-for", metavar="DURATION", help="smallest battery (Wh) lasting DURATION")
    sim.set_defaults(handler=_simulate)
    doctor = commands.add_parser("doctor", help="check this node and the cluster before trusting piclusterd")
    doctor.add_argument("--config", default=str(DEFAULT_CONFIG_PATH), help="default: %(default)s")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.set_defaults(handler=_doctor)
    report = commands.add_parser("report", help="what happened in an outage, from the journal")
    report.add_argument("--outage", default="latest", metavar="latest|ID", help="which outage (an id or a date)")
    report.add_argument("--json", action="store_true", help="machine-readable output")
    report.add_argument("--plot", metavar="FILE.png", help="draw the outage (needs matplotlib)")
    report.add_argument("--config", help=f"for [battery] capacity_wh (default: {DEFAULT_CONFIG_PATH}, if present)")
    journal = report.add_mutually_exclusive_group()
    journal.add_argument("--journal-file", metavar="FILE", help="read this journal file (journalctl --file)")
    journal.add_argument("--journal-dir", metavar="DIR", help="read the journal in DIR (journalctl --directory)")
    report.set_defaults(handler=_report)
    keys = commands.add_parser(
        "authorized-keys", help="print the authorized_keys line for the SSH fallback key (see deploy/README.md)"
    )
    keys.add_argument(
        "--from",
        dest="networks",
        action="append",
        required=True,
        metavar="CIDR",
        help="the cluster's network (the only source the key is accepted from); repeat or separate with commas",
    )
    keys.add_argument(
        "--key",
        default="/var/lib/piclusterd/id_ed25519.pub",
        metavar="PUBKEYFILE",
        help="the leader's public key (default: %(default)s)",
    )
    keys.set_defaults(handler=_authorized_keys)
    notify_test = commands.add_parser("notify-test", help="send a test message through every [notify] sink")
    notify_test.add_argument("--config", default=str(DEFAULT_CONFIG_PATH), help="(default: %(default)s)")
    notify_test.set_defaults(handler=_notify_test)
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code
