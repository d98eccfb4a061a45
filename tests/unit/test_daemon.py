"""The daemon's loop, one poll at a time, with a scripted UPS and a fake clock."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from piclusterd.config.model import Config
from piclusterd.config.parse import load_config
from piclusterd.core.power_state import PowerState
from piclusterd.core.reading import ParsedReading
from piclusterd.node.daemon import PowerDaemon
from piclusterd.node.systemd_notify import SystemdNotifier
from piclusterd.sim.captured_audit import CapturedAudit
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scripted_ups import ScriptedUps


class RecordingShutdown:
    def __init__(self, code: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.code = code

    def run(self, argv: Sequence[str]) -> int:
        self.calls.append(list(argv))
        return self.code


class Rig:
    def __init__(
        self,
        tmp_path: Path,
        mode: str = "enforce",
        extra: str = "",
        notify_socket: str = "",
        gate_answer_s: float = 5.0,
    ) -> None:
        self.path = tmp_path / "piclusterd.toml"
        self.path.write_text(
            f'mode = "{mode}"\n[node]\nname = "pi1"\n[daemon]\nruntime_dir = "{tmp_path}/run"\n'
            f'[shutdown]\ncommand = ["/bin/echo", "bye"]\n{extra}'
        )
        self.clock = FakeClock()
        self.ups = ScriptedUps(self.clock)
        self.audit = CapturedAudit("pi1")
        self.shutdown = RecordingShutdown()
        self.daemon = PowerDaemon(
            load_config(self.path),
            source_factory=self.factory,
            clock=self.clock,
            log=self.audit.logger,
            notifier=SystemdNotifier({"NOTIFY_SOCKET": notify_socket} if notify_socket else {}),
            shutdown=self.shutdown,
            gate_answer_s=gate_answer_s,
        )
        self.status_file = tmp_path / "run" / "status.json"

    def factory(self, _config: Config) -> ScriptedUps:
        return self.ups

    def poll(self, times: int = 1, every: float = 1.0) -> PowerState:
        for _ in range(times):
            self.daemon.step()
            self.clock.advance(every)
        return self.daemon.memory.state


def test_outage_is_logged_with_its_fields(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assert rig.poll() is PowerState.ONLINE
    rig.ups.drive(ups_status="OB DISCHRG", battery_charge="63", battery_runtime="2460")
    assert rig.poll() is PowerState.ON_BATTERY
    changes = rig.audit.named("power.state_changed")
    assert [(c["old"], c["new"]) for c in changes] == [("unknown", "online"), ("online", "on_battery")]
    last = changes[-1]
    assert last["charge_pct"] == 63 and last["runtime_s"] == 2460 and last["on_battery"] is True
    assert last["source"] == "scripted:ups" and last["node"] == "pi1" and last["level"] == "warning"


def test_low_battery_runs_the_shutdown_command_exactly_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.poll()
    rig.ups.drive(ups_status="OB LB", battery_charge="8", battery_runtime="120")
    rig.poll(10)
    assert rig.shutdown.calls == [["/bin/echo", "bye"]]
    (started,) = rig.audit.named("shutdown.local_started")
    assert started["reason"] == "UPS reports low battery (OB LB)"
    assert started["level"] == "critical"


def test_dry_run_still_protects_the_node_itself(tmp_path: Path) -> None:
    rig = Rig(tmp_path, mode="dry-run")
    rig.ups.drive(ups_status="OB LB", battery_runtime="120")
    rig.poll(3)
    assert rig.shutdown.calls == [["/bin/echo", "bye"]]
    (started,) = rig.audit.named("shutdown.local_started")
    assert started["mode"] == "dry-run" and started["by"] == "local_protection"


def test_dry_run_only_logs_a_power_off_the_cluster_asks_for(tmp_path: Path) -> None:
    rig = Rig(tmp_path, mode="dry-run")
    rig.poll()
    assert rig.daemon.request_local_shutdown("power-off requested by pi2 (r1)") is False
    assert rig.daemon.request_local_shutdown("power-off requested by pi2 (r2)") is False
    assert rig.shutdown.calls == []
    (skipped,) = rig.audit.named("shutdown.local_skipped")  # once, not once per request
    assert skipped["by"] == "cluster" and skipped["would_run"] == ["/bin/echo", "bye"]
    # A skipped request never blocks the node's own protection.
    rig.ups.drive(ups_status="OB LB", battery_runtime="120")
    rig.poll(2)
    assert rig.shutdown.calls == [["/bin/echo", "bye"]]


@pytest.mark.parametrize("mode", ["dry-run", "enforce"])
def test_local_protection_off_leaves_a_critical_node_to_upsmon(tmp_path: Path, mode: str) -> None:
    rig = Rig(tmp_path, mode=mode, extra="local_protection = false\n")
    rig.ups.drive(ups_status="OB LB", battery_runtime="120")
    rig.poll(3)
    assert rig.shutdown.calls == []
    (skipped,) = rig.audit.named("shutdown.local_skipped")
    assert skipped["by"] == "local_protection" and "upsmon" in skipped["why"]
    # In enforce the cluster may still ask (the leader's ordered full shutdown): that is not local protection.
    asked = rig.daemon.request_local_shutdown("power-off requested by pi2 (r1)")
    assert asked is (mode == "enforce")
    assert len(rig.shutdown.calls) == (1 if mode == "enforce" else 0)


def test_a_failing_shutdown_command_is_reported_not_repeated(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.shutdown.code = 1
    rig.ups.drive(ups_status="OB LB", battery_runtime="120")
    rig.poll(3)
    assert len(rig.shutdown.calls) == 1
    assert rig.audit.named("shutdown.local_failed")[0]["exit_status"] == 1


def test_silent_ups_on_battery_fails_safe_after_stale_after(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.ups.drive(ups_status="OB", battery_charge="80")
    rig.poll()
    rig.ups.go_silent()
    rig.poll(14)
    assert rig.daemon.memory.state is PowerState.ON_BATTERY
    assert rig.shutdown.calls == []
    rig.poll(2)
    assert rig.daemon.memory.state is PowerState.CRITICAL
    assert len(rig.shutdown.calls) == 1
    (lost,) = rig.audit.named("power.source_lost")
    assert lost["last_state"] == "on_battery" and "no answer" in lost["error"]


def test_silent_ups_on_mains_becomes_unknown_and_nothing_is_done(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.poll()
    rig.ups.go_silent()
    rig.poll(20)
    assert rig.daemon.memory.state is PowerState.UNKNOWN
    assert rig.shutdown.calls == []
    rig.ups.come_back()
    assert rig.poll() is PowerState.ONLINE
    assert len(rig.audit.named("power.source_restored")) == 1


def test_garbage_is_rejected_logged_once_and_not_acted_on(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.ups.drive(ups_status="OB", battery_charge="250", battery_runtime="-5")
    rig.poll(5)
    assert rig.daemon.memory.state is PowerState.ON_BATTERY  # not critical: the -5 s runtime was refused
    rejected = rig.audit.named("power.reading_rejected")
    assert sorted(r["variable"] for r in rejected) == ["battery.charge", "battery.runtime"]


def test_unknown_status_words_are_logged_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.ups.drive(ups_status="OL WEIRD")
    assert rig.poll(3) is PowerState.ONLINE
    assert [e["word"] for e in rig.audit.named("power.unknown_status_word")] == ["WEIRD"]


def test_status_file_tells_piclusterctl_the_state(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.ups.drive(ups_status="OB", battery_charge="63", battery_runtime="2460")
    rig.poll()
    status = json.loads(rig.status_file.read_text())
    assert status["state"] == "on_battery" and status["summary"] == "on battery, 63 %, 41 min left"
    assert status["node"] == "pi1" and status["mode"] == "enforce"


def test_reload_with_a_broken_file_keeps_the_old_config(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.poll()
    rig.path.write_text("[ups]\nport = -1\n")
    assert not rig.daemon.reload(lambda: load_config(rig.path))
    (failed,) = rig.audit.named("config.reload_failed")
    assert "ups.port" in failed["error"]
    assert rig.daemon.config.mode.value == "enforce"
    assert rig.poll() is PowerState.ONLINE


def test_reload_applies_new_thresholds(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.ups.drive(ups_status="OB", battery_charge="50", battery_runtime="1000")
    assert rig.poll() is PowerState.ON_BATTERY
    text = rig.path.read_text() + '[policy]\nlow_runtime = "20m"\n'
    rig.path.write_text(text)
    assert rig.daemon.reload(lambda: load_config(rig.path))
    assert rig.poll() is PowerState.LOW_BATTERY


@pytest.mark.parametrize(
    ("status", "expected"), [("OL", "online, 100 %, 60 min left"), ("OB", "on battery, 100 %, 60 min left")]
)
def test_status_line(tmp_path: Path, status: str, expected: str) -> None:
    rig = Rig(tmp_path)
    rig.ups.drive(ups_status=status)
    rig.poll()
    assert json.loads(rig.status_file.read_text())["summary"] == expected


def test_systemd_hears_ready_after_stale_after_even_without_a_ups(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(path)
        listener.settimeout(5)
        rig = Rig(tmp_path, notify_socket=path)
        rig.ups.go_silent()
        assert rig.poll(15) is PowerState.UNKNOWN  # polls at 0..14 s: not ready yet, still hoping for data
        listener.settimeout(0.1)
        early: list[str] = []
        with contextlib.suppress(TimeoutError):
            while True:
                early.append(listener.recv(4096).decode())
        listener.settimeout(5)
        rig.poll()  # 15 s = stale_after: ready, saying what it knows
        ready = listener.recv(4096).decode()
    assert early and not any("READY=1" in m for m in early)  # STATUS lines only, while starting
    assert ready.startswith("READY=1\nSTATUS=unknown: ")


def test_a_refused_reload_still_tells_systemd_the_reload_is_over(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(path)
        listener.settimeout(5)
        rig = Rig(tmp_path, notify_socket=path)
        rig.poll()
        assert listener.recv(4096).startswith(b"READY=1")
        rig.path.write_text(rig.path.read_text() + "[ups]\npol_interval = '1s'\n")
        assert not rig.daemon.reload(lambda: load_config(rig.path))
        after = [listener.recv(4096).decode() for _ in range(2)]
    assert after[0] == "RELOADING=1"
    assert after[1].startswith("READY=1\nSTATUS=online")


class ScriptedGate:
    """A LocalShutdownGate saying whatever the test sets; records what it was asked."""

    def __init__(self, answer: str | None = "the leader will ask", script: Sequence[str | None] = ()) -> None:
        self.answer = answer
        self.script = list(script)  # answers given first, in order, then ``answer``
        self.asked: list[float] = []
        self.error: Exception | None = None
        self.hang = threading.Event()  # set: the next answers never come (an API server that hangs)
        self.release = threading.Event()  # lets hung calls end at teardown
        self.reported: list[str] = []
        self.report_seen = threading.Event()
        self.report_error: Exception | None = None
        self.report_blocks = False  # set: the Event never gets through (until release)

    def defer_local_shutdown(self, critical_for_s: float) -> str | None:
        self.asked.append(critical_for_s)
        if self.hang.is_set():
            self.release.wait()
        if self.error is not None:
            raise self.error
        return self.script.pop(0) if self.script else self.answer

    def report_self_protection(self, message: str) -> None:
        self.reported.append(message)
        self.report_seen.set()
        if self.report_error is not None:
            raise self.report_error
        if self.report_blocks:
            self.release.wait()


def test_a_critical_node_waits_for_the_leader_no_longer_than_full_shutdown_wait(tmp_path: Path) -> None:
    rig = Rig(tmp_path, extra='full_shutdown_wait = "30s"\n')
    gate = ScriptedGate()
    rig.daemon.defer_to(gate)
    rig.poll()
    rig.ups.drive(ups_status="OB LB", battery_charge="8", battery_runtime="120")
    rig.poll(30)
    assert rig.shutdown.calls == [] and max(gate.asked) == 29.0
    (deferred,) = rig.audit.named("shutdown.local_deferred")  # said once, not once per poll
    assert deferred["why"] == "the leader will ask" and deferred["wait_s"] == 30.0
    rig.poll(10)
    assert rig.shutdown.calls == [["/bin/echo", "bye"]]  # at the bound, whatever the gate says; exactly once
    (started,) = rig.audit.named("shutdown.local_started")
    assert started["reason"].endswith("waited 30 s for the leader's full shutdown")


def test_a_critical_node_powers_off_at_once_when_the_gate_says_so(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.daemon.defer_to(ScriptedGate(answer=None))
    rig.poll()
    rig.ups.drive(ups_status="OB LB", battery_charge="8", battery_runtime="120")
    rig.poll()
    assert rig.shutdown.calls == [["/bin/echo", "bye"]] and rig.audit.named("shutdown.local_deferred") == []


def test_a_gate_that_fails_never_keeps_a_critical_node_up(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    gate = ScriptedGate()
    gate.error = RuntimeError("bug in the cluster code")
    rig.daemon.defer_to(gate)
    rig.poll()
    rig.ups.drive(ups_status="OB LB", battery_charge="8", battery_runtime="120")
    rig.poll(3)
    assert rig.shutdown.calls == [["/bin/echo", "bye"]]
    (failed,) = rig.audit.named("shutdown.gate_failed")
    assert "bug in the cluster code" in failed["error"]


def test_a_gate_that_hangs_never_keeps_a_critical_node_up(tmp_path: Path) -> None:
    """The API server accepts the connection and never answers: the node does not wait for full_shutdown_wait,
    nor for the client's timeouts; it powers off on that poll and says why."""
    rig = Rig(tmp_path, extra='full_shutdown_wait = "4m"\n', gate_answer_s=0.2)
    gate = ScriptedGate()
    gate.hang.set()
    rig.daemon.defer_to(gate)
    try:
        rig.poll()
        rig.ups.drive(ups_status="OB LB", battery_charge="8", battery_runtime="120")
        rig.poll()
        assert rig.shutdown.calls == [["/bin/echo", "bye"]]
        (failed,) = rig.audit.named("shutdown.gate_failed")
        assert "no answer within 0.2 s" in failed["error"]
        assert rig.audit.named("shutdown.local_deferred") == []
    finally:
        gate.release.set()


def test_a_gate_that_starts_hanging_mid_wait_ends_the_wait_at_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path, extra='full_shutdown_wait = "4m"\n', gate_answer_s=0.2)
    gate = ScriptedGate()
    rig.daemon.defer_to(gate)
    try:
        rig.poll()
        rig.ups.drive(ups_status="OB LB", battery_charge="8", battery_runtime="120")
        rig.poll(10)
        assert rig.shutdown.calls == []
        gate.hang.set()
        rig.poll()
        assert rig.shutdown.calls == [["/bin/echo", "bye"]]
        assert gate.report_seen.wait(10)  # it had waited: the cluster is told too
        assert "waited 10 s for the leader's full shutdown" in gate.reported[0]
    finally:
        gate.release.set()


def test_a_node_that_stops_waiting_tells_the_cluster_without_waiting_for_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path, extra='full_shutdown_wait = "30s"\n')
    gate = ScriptedGate()
    gate.report_blocks = True  # the Event never gets through: the shutdown must not wait for it
    rig.daemon.defer_to(gate)
    try:
        rig.poll()
        rig.ups.drive(ups_status="OB LB", battery_charge="8", battery_runtime="120")
        rig.poll(30)
        assert gate.reported == []  # still waiting: nothing to tell
        rig.poll()
        assert rig.shutdown.calls == [["/bin/echo", "bye"]]
        assert gate.report_seen.wait(10)
        (message,) = gate.reported
        assert message.startswith("pi1 powers itself off: ") and "waited 30 s" in message
        assert "last wait: the leader will ask" in message
    finally:
        gate.release.set()


def test_a_node_that_powers_off_without_waiting_sends_no_event(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    gate = ScriptedGate(answer=None)
    rig.daemon.defer_to(gate)
    rig.poll()
    rig.ups.drive(ups_status="OB LB", battery_charge="8", battery_runtime="120")
    rig.poll(3)
    assert rig.shutdown.calls == [["/bin/echo", "bye"]]
    assert not gate.report_seen.wait(0.5) and gate.reported == []


def test_an_event_that_cannot_be_sent_is_said_in_the_journal(tmp_path: Path) -> None:
    rig = Rig(tmp_path, extra='full_shutdown_wait = "3s"\n')
    gate = ScriptedGate()
    gate.report_error = RuntimeError("403 events is forbidden")
    rig.daemon.defer_to(gate)
    rig.poll()
    rig.ups.drive(ups_status="OB LB", battery_charge="8", battery_runtime="120")
    rig.poll(5)
    assert rig.shutdown.calls == [["/bin/echo", "bye"]]
    assert gate.report_seen.wait(10)
    for _ in range(100):  # the thread logs right after raising; wait for the line, not for luck
        if rig.audit.named("shutdown.self_protection_unreported"):
            break
        threading.Event().wait(0.05)
    (unreported,) = rig.audit.named("shutdown.self_protection_unreported")
    assert "403 events is forbidden" in unreported["error"]


def test_a_leaders_request_is_obeyed_at_once_even_while_deferring(tmp_path: Path) -> None:
    rig = Rig(tmp_path, extra='full_shutdown_wait = "4m"\n')
    rig.daemon.defer_to(ScriptedGate())
    rig.poll()
    rig.ups.drive(ups_status="OB LB", battery_charge="8", battery_runtime="120")
    rig.poll(5)
    assert rig.daemon.request_local_shutdown("power-off requested by pi2 (abc)") is True
    rig.poll(400)
    assert rig.shutdown.calls == [["/bin/echo", "bye"]]


@settings(max_examples=60, deadline=None)
@given(
    answers=st.lists(st.sampled_from([None, "the leader will ask"]), min_size=1, max_size=40),
    wait_s=st.integers(0, 60),
)
def test_whatever_the_gate_says_the_shutdown_runs_once_and_never_after_the_bound(
    tmp_path_factory: pytest.TempPathFactory, answers: list[str | None], wait_s: int
) -> None:
    rig = Rig(tmp_path_factory.mktemp("gate"), extra=f'full_shutdown_wait = "{wait_s}s"\n')
    rig.daemon.defer_to(ScriptedGate(script=answers))
    rig.poll()
    rig.ups.drive(ups_status="OB LB", battery_charge="8", battery_runtime="120")
    critical_at = rig.clock.monotonic()
    ran_at: float | None = None
    for _ in range(wait_s + 5):
        rig.poll()
        if rig.shutdown.calls and ran_at is None:
            ran_at = rig.clock.monotonic() - 1.0  # the poll that ran it
    assert len(rig.shutdown.calls) == 1
    assert ran_at is not None and ran_at - critical_at <= wait_s


def test_piclusterctl_status_says_a_critical_node_is_waiting_for_the_leader_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from piclusterd.cli import ctl_main

    rig = Rig(tmp_path, extra='full_shutdown_wait = "1m"\n')
    rig.daemon.defer_to(ScriptedGate("pi1 leads the full shutdown and will ask this node in turn"))
    rig.poll()
    rig.ups.drive(ups_status="OB LB", battery_charge="8", battery_runtime="120")
    rig.poll(3)
    assert json.loads(rig.status_file.read_text())["shutdown_deferred"].startswith("pi1 leads")
    ctl_main(["status", "--runtime-dir", str(tmp_path / "run")])  # exits 1 here: the fake clock is "old"
    assert "critical, waiting: pi1 leads the full shutdown" in capsys.readouterr().out
    rig.poll(60)
    assert json.loads(rig.status_file.read_text())["shutdown_deferred"] is None  # started now


def test_mains_back_while_waiting_for_the_leader_powers_nothing_off(tmp_path: Path) -> None:
    rig = Rig(tmp_path, extra='full_shutdown_wait = "1m"\n')
    rig.daemon.defer_to(ScriptedGate())
    rig.poll()
    rig.ups.drive(ups_status="OB LB", battery_charge="8", battery_runtime="120")
    rig.poll(10)
    rig.ups.drive(ups_status="OL CHRG", battery_charge="9")
    rig.poll(120)
    assert rig.shutdown.calls == []  # the node stays up; only a leader's request could still take it down
    assert json.loads(rig.status_file.read_text())["shutdown_deferred"] is None


class BrokenSource:
    """A power source whose driver has a bug: every poll raises what no one expected."""

    name = "broken"

    def __init__(self) -> None:
        self.closed = 0

    def poll(self) -> ParsedReading:
        raise KeyError("battery.charge")

    def close(self) -> None:
        self.closed += 1


def test_a_source_raising_the_unexpected_is_no_data_said_once_never_the_daemons_end(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    broken = BrokenSource()
    rig.daemon = PowerDaemon(
        load_config(rig.path),
        source_factory=lambda _config: broken,
        clock=rig.clock,
        log=rig.audit.logger,
        notifier=SystemdNotifier({}),
        shutdown=rig.shutdown,
    )
    assert rig.poll(20) is PowerState.UNKNOWN  # no data past stale_after: unknown, as for a silent upsd
    (failed,) = rig.audit.named("power.source_failed")
    assert failed["error"] == "KeyError: 'battery.charge'" and "Traceback" in failed["traceback"]
    assert broken.closed == 20  # the connection is reopened on every next poll
    assert rig.audit.named("power.source_lost")
