"""The daemon's main loop: poll the power source, fold readings into the core, act on transitions.

:class:`PowerDaemon` holds no I/O of its own: the source, clock, logger, notifier and shutdown runner are
handed in by the entry point (``cli.py``), so tests drive :meth:`PowerDaemon.step` with a fake clock and a
real or fake source, one poll at a time.

:meth:`PowerDaemon.run` keeps two loops apart (issue 17, finding 3): the power loop (poll, local protection,
the status file, the watchdog ping) on the main thread at ``poll_interval``, and the cluster side (elect, obey,
lead) on a thread of its own. The power loop never waits for the cluster: an API server that hangs holds the
cluster thread only, the node still reaches its own shutdown, and the watchdog is pinged by the power loop
alone, so systemd restarts piclusterd only if *that* loop stops.
"""

from __future__ import annotations

import json
import os
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from piclusterd import __version__
from piclusterd.config.model import Config, Mode
from piclusterd.config.settings import changed_keys, restart_needed, settings_for
from piclusterd.core.durations import format_duration
from piclusterd.core.errors import ConfigError, DaemonStopping, SourceUnavailable
from piclusterd.core.ports import Clock, LocalShutdown, PowerSource
from piclusterd.core.power_state import (
    BATTERY_STATES,
    Observation,
    PowerMemory,
    PowerPolicy,
    PowerState,
    SourceLost,
    SourceRestored,
    StateChanged,
    decide,
)
from piclusterd.core.reading import ParsedReading, UpsReading
from piclusterd.core.runtime_estimate import (
    BatteryModel,
    EstimatorMemory,
    RuntimeEstimate,
    RuntimeSource,
    estimate_runtime,
)
from piclusterd.node.audit import AuditLogger
from piclusterd.node.systemd_notify import SystemdNotifier

__all__ = [
    "REBOOT_COMMAND",
    "SHUTDOWN_BY_BUTTON",
    "SHUTDOWN_BY_CLUSTER",
    "SHUTDOWN_BY_LOCAL_PROTECTION",
    "ClusterTick",
    "LocalShutdownGate",
    "PowerDaemon",
    "PreShutdownHook",
    "SourceFactory",
    "policy_from_config",
    "status_line",
]

#: How long the same rejected value stays quiet before it is logged again (no journal flood at 1 Hz).
REJECTION_REPEAT_S = 300.0

#: How long a critical node waits for the gate's answer (it reads the API server). An API server that hangs
#: rather than refuses (client timeouts and urllib3's retries add up to 40 s) must not hold the node's own
#: shutdown, nor the watchdog ping: no answer is treated as no API server, where nobody will ask.
GATE_ANSWER_S = 5.0

#: A cluster round running this long is said (``cluster.round_stalled``): the lease is long lost by then.
CLUSTER_STALL_S = 60.0

#: How long a stop waits for the cluster thread to end its round before it gives up on releasing the lease.
CLUSTER_STOP_WAIT_S = 10.0

SourceFactory = Callable[[Config], PowerSource]

#: Who asked for a local shutdown (the ``by`` field of ``shutdown.local_*``). This node's own protection at
#: critical runs in every mode; a cluster request (the leader's, an rtc-wake check-in) is dry in dry-run.
SHUTDOWN_BY_LOCAL_PROTECTION = "local_protection"
SHUTDOWN_BY_CLUSTER = "cluster"
#: The HAT's shutdown button (X728 GPIO5): a person's request at this Pi, honoured in every mode, like the
#: power button it is. A short press reboots (the vendor's xPWR.sh semantics).
SHUTDOWN_BY_BUTTON = "button"
REBOOT_COMMAND = ("systemctl", "reboot")


class ClusterTick(Protocol):
    """The cluster side, run after every power poll (``cluster.controller.ClusterController``)."""

    def tick(self, power: PowerMemory, measured_load_w: float | None) -> None: ...

    def release(self) -> None: ...

    def apply_mode(self, *, dry_run: bool) -> None:
        """``mode`` from a reload: from the next tick on, dry-run plans and reports only; enforce acts."""
        ...


class PreShutdownHook(Protocol):
    """Runs just before the local shutdown command (the cluster layer drains this node here). Before a reboot
    (the shutdown button's short press) only hooks whose ``runs_before_reboot`` is true run: the pods' graceful
    end, not the HAT's power cut."""

    runs_before_reboot: bool

    def before_local_shutdown(self, reason: str) -> None: ...


class LocalShutdownGate(Protocol):
    """Whether a critical node waits for the leader's ordered full shutdown (``OutageCoordinator``).

    Returns why it waits, or None to power off now. The daemon caps the wait at ``full_shutdown_wait``.
    """

    def defer_local_shutdown(self, critical_for_s: float) -> str | None: ...

    def report_self_protection(self, message: str) -> None:
        """Say in the cluster (a Kubernetes Event) that this node stopped waiting and powers itself off.
        Best effort: called on a thread of its own, never waited for."""
        ...


def policy_from_config(config: Config) -> tuple[PowerPolicy, BatteryModel]:
    p, b = config.policy, config.battery
    return (
        PowerPolicy(
            stale_after_s=config.ups.stale_after_s,
            critical_runtime_s=p.critical_runtime_s,
            low_runtime_s=p.low_runtime_s,
            low_charge_pct=p.low_charge_pct,
            charge_hysteresis_pct=p.charge_hysteresis_pct,
            recovery_debounce_s=p.recovery_debounce_s,
            lb_confirm_s=(
                config.shutdown.full_shutdown_wait_s if p.low_battery_confirm_s is None else p.low_battery_confirm_s
            ),
            orderly_shutdown_s=config.shutdown.full_shutdown_wait_s,
        ),
        BatteryModel(
            capacity_wh=b.capacity_wh,
            usable_fraction=b.usable_fraction,
            inverter_efficiency=b.inverter_efficiency,
            overhead_w=b.overhead_w,
            load_w=b.load_w,
        ),
    )


def status_line(memory: PowerMemory) -> str:
    """One line for ``systemctl status``: "on battery, 63 %, 41 min left"."""
    words = memory.state.value.replace("_", " ")
    reading = memory.last_reading
    if memory.state is PowerState.UNKNOWN or reading is None:
        return f"{words}: {memory.reason}"
    parts = [words]
    if reading.charge_pct is not None:
        parts.append(f"{reading.charge_pct:.0f} %")
    if memory.last_runtime_s is not None:
        parts.append(f"{format_duration(memory.last_runtime_s)} left")
    return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class _Pending:
    """What the last poll produced, before the core folds it in."""

    reading: UpsReading | None
    error: str | None


class PowerDaemon:
    """One node's power watch: NUT upsmon's job, with piclusterd's state machine and audit trail."""

    def __init__(
        self,
        config: Config,
        *,
        source_factory: SourceFactory,
        clock: Clock,
        log: AuditLogger,
        notifier: SystemdNotifier,
        shutdown: LocalShutdown,
        pre_shutdown_hooks: Sequence[PreShutdownHook] = (),
        gate_answer_s: float = GATE_ANSWER_S,
    ) -> None:
        self._config = config
        self._gate_answer_s = gate_answer_s
        self._source_factory = source_factory
        self._source = source_factory(config)
        self._clock = clock
        self._log = log.bind(component="power", source=self._source.name)
        self._notifier = notifier
        self._shutdown = shutdown
        self._hooks = tuple(pre_shutdown_hooks)
        self._policy, self._battery = policy_from_config(config)
        self.memory = PowerMemory()
        self._estimator = EstimatorMemory()
        self._estimate = RuntimeEstimate(None, RuntimeSource.NONE)
        self._ready = False
        self._first_poll_at: float | None = None
        self._shutdown_started = False
        self._last_error: str | None = None
        self._rejections_logged: dict[tuple[str, str, str], float] = {}
        self._unknown_words_logged: set[str] = set()
        self._source_failures_logged: set[str] = set()
        self._status_file_failed = False
        self._gate: LocalShutdownGate | None = None
        self._deferred = False
        self._deferred_why: str | None = None  # while waiting for the leader's full shutdown, why
        self._skipped: set[str] = set()  # the kinds of shutdown already logged as not run (once each)
        self._button: str | None = None  # a press of the HAT's shutdown button, acted on at the next poll
        self._shutdown_lock = threading.Lock()  # the power loop and the cluster thread may both ask
        self._power_loop_running = False  # run() has the power loop on its own cadence
        self._cluster_wake = threading.Event()
        self._cluster_round_started: float | None = None
        self._stall_said: float | None = None

    def add_pre_shutdown_hook(self, hook: PreShutdownHook) -> None:
        """Run ``hook`` before the local shutdown command, ahead of the hooks given at construction (the
        cluster side's self-drain, wired once the cluster is built, goes before the power-cut flag)."""
        self._hooks = (hook, *self._hooks)

    def defer_to(self, gate: LocalShutdownGate) -> None:
        """Let the cluster side order this node's shutdown when critical (wired after the cluster is built)."""
        self._gate = gate

    @property
    def config(self) -> Config:
        return self._config

    @property
    def shutdown_started(self) -> bool:
        return self._shutdown_started

    # --- one poll ---------------------------------------------------------------------------------------

    def _poll(self, now: float) -> _Pending:
        try:
            parsed: ParsedReading = self._source.poll()
        except SourceUnavailable as error:
            self._log.debug("power.poll_failed", error=str(error))
            return _Pending(None, str(error))
        except Exception as error:  # a driver's bug, or bytes it did not expect: no data, never the daemon's end
            return _Pending(None, self._source_failed(error))
        for rejection in parsed.rejections:
            key = (rejection.variable, rejection.value, rejection.reason)
            last = self._rejections_logged.get(key)
            if last is None or now - last >= REJECTION_REPEAT_S:
                self._rejections_logged[key] = now
                self._log.warning(
                    "power.reading_rejected",
                    variable=rejection.variable,
                    value=rejection.value,
                    reason=rejection.reason,
                    whole_reading=parsed.reading is None,
                )
        for word in parsed.unknown_status_words:
            if word not in self._unknown_words_logged:
                self._unknown_words_logged.add(word)
                self._log.warning("power.unknown_status_word", word=word)
        if parsed.reading is None:
            return _Pending(None, "reading rejected" if parsed.rejections else "UPS driver has no data yet (WAIT)")
        return _Pending(parsed.reading, None)

    def _source_failed(self, error: Exception) -> str:
        """An unexpected error from the source: said once per kind (with its traceback), the connection dropped
        so the next poll starts clean; the poll counts as no answer, so staleness and DEADTIME apply as ever."""
        why = f"{type(error).__name__}: {error}"[:300]
        if type(error).__name__ not in self._source_failures_logged:
            self._source_failures_logged.add(type(error).__name__)
            where = "".join(traceback.format_exception(error))[-3000:]
            self._log.error("power.source_failed", error=why, traceback=where)
        try:
            self._source.close()
        except Exception as close_error:  # closing is best effort; the next poll reconnects either way
            self._log.debug("power.poll_failed", error=f"closing after a failure: {close_error!r}")
        return why

    def step(self) -> PowerMemory:
        """Poll once, update the state, log transitions, act on critical. Returns the new memory."""
        now = self._clock.monotonic()
        pending = self._poll(now)
        if pending.error is not None:
            self._last_error = pending.error
        if pending.reading is not None:
            self._estimator, self._estimate = estimate_runtime(self._estimator, pending.reading, self._battery)
        observation = Observation(now, pending.reading, self._estimate.seconds if pending.reading is not None else None)
        self.memory, events = decide(self.memory, observation, self._policy)
        for event in events:
            self._log_event(event)
        if self._first_poll_at is None:
            self._first_poll_at = now
        if not self._ready and (pending.reading is not None or now - self._first_poll_at >= self._policy.stale_after_s):
            # READY once the daemon knows the power state. A UPS still silent after stale_after is a state to
            # report ("unknown: ..."), not a failed start that would block `apt install` and loop on restart.
            self._ready = True
            self._notifier.ready(status_line(self.memory))
        else:
            self._notifier.status(status_line(self.memory))
        if self._button is not None and not self._shutdown_started:
            self._pressed(self._button)
        if self.memory.state is PowerState.CRITICAL and not self._shutdown_started:
            self._protect_or_defer(now)
        else:
            self._deferred_why = None  # mains back before our turn: nothing to wait for (the leader may still ask)
        self._write_status_file()
        return self.memory

    def _log_event(self, event: StateChanged | SourceLost | SourceRestored) -> None:
        if isinstance(event, SourceLost):
            self._log.warning(
                "power.source_lost",
                error=self._last_error,
                last_state=event.last_state,
                stale_after_s=self._policy.stale_after_s,
            )
        elif isinstance(event, SourceRestored):
            self._log.info("power.source_restored", silent_s=event.silent_s)
        else:
            reading = event.reading
            level = {
                PowerState.ONLINE: self._log.info,
                PowerState.CRITICAL: self._log.critical,
            }.get(event.new, self._log.warning)
            level(
                "power.state_changed",
                old=event.old,
                new=event.new,
                reason=event.reason,
                charge_pct=None if reading is None else reading.charge_pct,
                runtime_s=None if event.runtime_s is None else round(event.runtime_s),
                runtime_source=self._estimate.source if reading is not None else None,
                load_w=None if self._estimate.load_w is None else round(self._estimate.load_w, 1),
                on_battery=event.new in BATTERY_STATES,
                ups_status=None if reading is None else " ".join(sorted(f.value for f in reading.flags)),
            )

    def _protect_or_defer(self, now: float) -> None:
        """Critical: power off now, unless the leader will ask in turn; never wait past full_shutdown_wait."""
        if not self._config.shutdown.local_protection:
            self._skip_once(SHUTDOWN_BY_LOCAL_PROTECTION, self.memory.reason)
            return
        waited = now - (self.memory.since if self.memory.since is not None else now)
        limit = self._config.shutdown.full_shutdown_wait_s
        why: str | None = None
        if self._gate is not None and waited < limit:
            why = self._ask_gate(self._gate, waited)
        last_why, self._deferred_why = self._deferred_why, why
        if why is None:
            reason = self.memory.reason
            if self._deferred:
                reason = f"{reason}; waited {waited:.0f} s for the leader's full shutdown"
                self._report_self_protection(f"{reason} (last wait: {last_why or 'none'})")
            self._local_shutdown(reason, by=SHUTDOWN_BY_LOCAL_PROTECTION)
            return
        if not self._deferred:
            self._deferred = True
            self._log.warning("shutdown.local_deferred", why=why, wait_s=limit)

    def _ask_gate(self, gate: LocalShutdownGate, waited: float) -> str | None:
        """The gate's answer, or None (power off now) if it fails or does not answer within gate_answer_s."""
        answers: list[str | None] = []
        failures: list[Exception] = []

        def ask() -> None:
            try:
                answers.append(gate.defer_local_shutdown(waited))
            except Exception as error:  # a fault in the cluster code must never keep a critical node up
                failures.append(error)

        # A thread of its own, so a hung API server cannot hold this poll: it is left behind if it hangs.
        worker = threading.Thread(target=ask, name="piclusterd-shutdown-gate", daemon=True)
        worker.start()
        worker.join(self._gate_answer_s)
        if failures:
            self._log.error("shutdown.gate_failed", error=repr(failures[0]))
            return None
        if not answers:
            self._log.error(
                "shutdown.gate_failed",
                error=f"no answer within {self._gate_answer_s:g} s (the API server hangs?): protecting this node",
            )
            return None
        return answers[0]

    def _report_self_protection(self, reason: str) -> None:
        """A Kubernetes Event too, if the API server answers; on a thread of its own, never waited for."""
        gate = self._gate
        if gate is None:
            return
        message = f"{self._config.node.name} powers itself off: {reason}"

        def report() -> None:
            try:
                gate.report_self_protection(message)
            except Exception as error:  # best effort: the shutdown is already under way
                self._log.warning("shutdown.self_protection_unreported", error=repr(error))

        threading.Thread(target=report, name="piclusterd-self-protection-event", daemon=True).start()

    def press_button(self, press: str) -> None:
        """The HAT's shutdown button was pressed (``"shutdown"`` or ``"reboot"``); called from the button's
        thread, acted on by the next poll in the daemon's own loop (one string store: no lock needed)."""
        self._button = press

    def _pressed(self, press: str) -> None:
        """An orderly local shutdown (the self-drain first), or a reboot after the same drain, in every mode."""
        self._button = None
        reason = f"the HAT's shutdown button: {press}"
        if press != "reboot":
            self._local_shutdown(reason, by=SHUTDOWN_BY_BUTTON)
            return
        self._shutdown_started = True
        argv = list(REBOOT_COMMAND)
        self._log.critical(
            "shutdown.local_started", reason=reason, command=argv, mode=self._config.mode.value, by=SHUTDOWN_BY_BUTTON
        )
        self._run_hooks(reason, reboot=True)
        code = self._shutdown.run(argv)
        if code != 0:
            self._log.critical("shutdown.local_failed", command=argv, exit_status=code)

    def request_local_shutdown(self, reason: str) -> bool:
        """Power this node off now, asked by the cluster (the leader, or an rtc-wake check-in): a cluster
        action, so dry in dry-run. False if nothing was started (dry-run, or a shutdown already under way)."""
        if self._shutdown_started:
            return False
        if self._config.mode is Mode.DRY_RUN:
            self._skip_once(SHUTDOWN_BY_CLUSTER, reason)
            return False
        self._local_shutdown(reason, by=SHUTDOWN_BY_CLUSTER)
        return True

    def _skip_once(self, by: str, reason: str) -> None:
        """Say once per daemon life what was not run, and why. A skipped request never blocks protection."""
        if by in self._skipped:
            return
        self._skipped.add(by)
        why = (
            "local_protection = false: another tool (NUT upsmon) protects this node"
            if by == SHUTDOWN_BY_LOCAL_PROTECTION
            else 'mode is "dry-run": cluster actions are only logged'
        )
        self._log.warning(
            "shutdown.local_skipped",
            reason=reason,
            would_run=list(self._config.shutdown.command),
            mode=self._config.mode.value,
            by=by,
            why=why,
        )

    def _local_shutdown(self, reason: str, *, by: str) -> None:
        """Upsmon parity: run the shutdown command once per daemon life, never twice, after saying why.

        ``by`` says which it is: this node's own last-resort protection, which runs in every mode (dry-run
        only keeps the cluster's actions dry), or the cluster's request."""
        with self._shutdown_lock:  # once per daemon life, whichever thread asks first
            if self._shutdown_started:
                return
            self._shutdown_started = True
        argv = list(self._config.shutdown.command)
        self._log.critical("shutdown.local_started", reason=reason, command=argv, mode=self._config.mode.value, by=by)
        self._run_hooks(reason, reboot=False)
        code = self._shutdown.run(argv)
        if code != 0:
            self._log.critical("shutdown.local_failed", command=argv, exit_status=code)

    def _run_hooks(self, reason: str, *, reboot: bool) -> None:
        for hook in self._hooks:
            if reboot and not getattr(hook, "runs_before_reboot", False):
                continue
            try:
                hook.before_local_shutdown(reason)
            except Exception as error:  # a hook's fault must never cost the power-off itself
                self._log.error("shutdown.pre_shutdown_hook_failed", hook=type(hook).__name__, error=repr(error)[:300])

    def status(self) -> dict[str, Any]:
        """The live view: what ``piclusterctl status`` shows and the metrics read."""
        memory = self.memory
        reading = memory.last_reading
        status = {
            "node": self._config.node.name,
            "version": __version__,
            "mode": self._config.mode.value,
            "state": memory.state.value,
            "reason": memory.reason,
            "since_wall": None if memory.since is None else self._wall_of(memory.since),
            "source": self._source.name,
            "source_ok": memory.source_ok,
            "last_error": None if memory.source_ok else self._last_error,
            "charge_pct": None if reading is None else reading.charge_pct,
            "runtime_s": memory.last_runtime_s,
            "runtime_source": self._estimate.source.value,
            "load_w": self._estimate.load_w,
            "reading_wall": None if reading is None else reading.wall_time,
            "shutdown_started": self._shutdown_started,
            "shutdown_deferred": None if self._shutdown_started else self._deferred_why,
            "updated_wall": self._clock.wall(),
            "summary": status_line(memory),
        }
        return status

    def _write_status_file(self) -> None:
        """The live view for ``piclusterctl status`` (tmpfs under /run; failures are reported once)."""
        status = self.status()
        directory = Path(self._config.daemon.runtime_dir)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            temporary = directory / "status.json.tmp"
            temporary.write_text(json.dumps(status, indent=1) + "\n", encoding="utf-8")
            os.replace(temporary, directory / "status.json")
        except OSError as error:
            if not self._status_file_failed:
                self._status_file_failed = True
                self._log.warning("daemon.status_file_failed", path=str(directory), error=error.strerror)

    def _wall_of(self, monotonic: float) -> float:
        return self._clock.wall() - (self._clock.monotonic() - monotonic)

    # --- life cycle -------------------------------------------------------------------------------------

    def reload(self, load: Callable[[], Config], cluster: ClusterTick | None = None) -> bool:
        """Re-read the configuration and apply all of it, or none: on any problem keep running on the old one
        and say why (``config.reload_failed``). ``mode`` reaches the running cluster side; any other change to
        the cluster side's settings (or to [notify]) needs a restart, and such a reload is refused, naming the
        keys."""
        self._notifier.reloading()
        source: PowerSource | None = None
        try:
            new = load()
            old_settings, new_settings = settings_for(self._config), settings_for(new)
            # [notify] too: its notifier was built at start, like the cluster side.
            if restart_needed(old_settings, new_settings) or new.notify != self._config.notify:
                keys = [k for k in changed_keys(self._config, new) if k != "mode"]
                raise ConfigError(
                    new.path,
                    ", ".join(keys) or "cluster",
                    "changed, and the running cluster side cannot take this change: nothing of this file was applied",
                    "restart piclusterd to apply (systemctl restart piclusterd); mode alone can be reloaded",
                )
            if (new.ups, new.node) != (self._config.ups, self._config.node):
                source = self._source_factory(new)
        except Exception as error:  # a reload must never end the daemon, whatever the file holds
            why = str(error) if isinstance(error, ConfigError) else f"{type(error).__name__}: {error}"
            self._log.error("config.reload_failed", error=why, kept=self._config.path)
            # The reload is over, on the old file: systemd waits for READY=1 after RELOADING=1, and would
            # otherwise show the service as "reloading" and queue every later reload behind this one.
            self._notifier.ready(status_line(self.memory))
            return False
        if source is not None:
            self._source.close()
            self._source = source
            self._log = self._log.bind(source=self._source.name, node=new.node.name)
        self._config = new
        self._policy, self._battery = policy_from_config(new)
        self._log.info("config.reloaded", **new.summary())
        if cluster is not None:
            cluster.apply_mode(dry_run=new.mode is Mode.DRY_RUN)
        self._notifier.ready(status_line(self.memory))
        return True

    @property
    def measured_load_w(self) -> float | None:
        return self._estimate.load_w

    def keep_alive(self) -> None:
        """One power poll and a watchdog ping: called from inside long cluster steps (a drain). Under
        :meth:`run` the power loop has its own thread and cadence, so this does nothing there."""
        if self._power_loop_running:
            return
        self.step()
        self._notifier.watchdog()

    def wake_cluster(self) -> None:
        """Start the cluster side's next round now (an input changed), not at the end of its poll interval."""
        self._cluster_wake.set()

    def _cluster_loop(self, stop: threading.Event, cluster: ClusterTick) -> None:
        """The cluster side's own loop: a round per poll interval, or at once when the power state changes.
        Whatever it waits for (an API server that hangs), the power loop goes on without it."""
        try:
            while not stop.is_set():
                started = self._clock.monotonic()
                self._cluster_round_started = started
                cluster.tick(self.memory, self._estimate.load_w)
                self._cluster_round_started = None
                elapsed = self._clock.monotonic() - started
                self._cluster_wake.wait(max(0.0, self._config.ups.poll_interval_s - elapsed))
                self._cluster_wake.clear()
        except DaemonStopping:
            pass  # asked to stop mid-drain: the record on the Node lets the next leader resume it
        except Exception as error:  # tick contains its own errors; this is a bug: said, the power loop goes on
            self._log.error("cluster.loop_failed", error=repr(error)[:500])
        finally:
            self._cluster_round_started = None

    def _say_cluster_stall(self, now: float) -> None:
        """A cluster round running far past its interval (an API server that hangs): said once per stall."""
        started = self._cluster_round_started
        if started is None or now - started < CLUSTER_STALL_S or self._stall_said == started:
            return
        self._stall_said = started
        self._log.warning("cluster.round_stalled", stalled_s=round(now - started))

    def run(
        self,
        stop: threading.Event,
        reload_requested: threading.Event,
        load: Callable[[], Config],
        cluster: ClusterTick | None = None,
    ) -> None:
        """Poll until ``stop`` is set. The watchdog is pinged once per power poll, by the power loop only, so a
        hung poll is noticed; the cluster side runs on its own thread and never holds a poll."""
        self._log.info("daemon.started", version=__version__, **self._config.summary())
        worker: threading.Thread | None = None
        if cluster is not None:
            self._power_loop_running = True
            worker = threading.Thread(
                target=self._cluster_loop, args=(stop, cluster), name="piclusterd-cluster", daemon=True
            )
            worker.start()
        try:
            while not stop.is_set():
                started = self._clock.monotonic()
                if reload_requested.is_set():
                    reload_requested.clear()
                    self.reload(load, cluster)
                state = self.memory.state
                self.step()
                self._notifier.watchdog()
                if self.memory.state is not state:
                    self.wake_cluster()  # plan on change: the cluster side hears of it at once
                self._say_cluster_stall(self._clock.monotonic())
                elapsed = self._clock.monotonic() - started
                stop.wait(max(0.0, self._config.ups.poll_interval_s - elapsed))
        except DaemonStopping:
            pass  # asked to stop mid-drain: the record on the Node lets the next leader resume it
        finally:
            self._notifier.stopping()
            stop.set()
            self._cluster_wake.set()
            if worker is not None:
                worker.join(CLUSTER_STOP_WAIT_S)
            if cluster is not None and (worker is None or not worker.is_alive()):
                cluster.release()  # a cluster thread still hung: the lease expires by itself instead
            self._power_loop_running = False
            self._source.close()
            self._log.info("daemon.stopped", state=self.memory.state)
