"""A node's own daemon and powering on: rtc-wake (arm the alarm before halting; check in once after waking)
against a temporary sysfs-like ``wakealarm`` file, and the relay request it obeys at most once, against the
fake API server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from piclusterd.cluster.agent import NodeAgent, decide_check_in
from piclusterd.cluster.authority import RequestVerifier
from piclusterd.cluster.election import LeaseRecord
from piclusterd.cluster.kube_api import KubeClusterApi
from piclusterd.cluster.power_on_backends import CheckIn, GpioRelayPower, RelayLine, RtcWakeAlarm
from piclusterd.core.authority import ClusterKeys
from piclusterd.core.node_records import (
    POWER_ON_REQUEST_ANNOTATION,
    REQUEST_ANNOTATION,
    SHED_ANNOTATION,
    ShedPhase,
    ShedRecord,
    render_shed_record,
)
from piclusterd.core.power_state import PowerState
from piclusterd.sim.captured_audit import CapturedAudit
from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.testing.gpio_emulator import EmulatedGpio
from piclusterd.testing.leadership import Leadership

CLINIC = Path(__file__).resolve().parents[2] / "piclusterd" / "sim" / "data" / "clinic-5.json"


class Halts:
    """The daemon's local shutdown, recorded, with the alarm writes made before it."""

    def __init__(self, rtc: SysfsRtc | None = None) -> None:
        self.reasons: list[str] = []
        self.rtc_writes_before: list[list[str]] = []
        self._rtc = rtc

    def request_local_shutdown(self, reason: str) -> bool:
        self.reasons.append(reason)
        self.rtc_writes_before.append(list(self._rtc.writes) if self._rtc is not None else [])
        return True


class SysfsRtc:
    """A directory laid out like /sys/class/rtc/rtc0 with a ``wakealarm`` file that, like the kernel's,
    refuses a new alarm while one is armed (write ``0`` first) and reads back the armed epoch time."""

    def __init__(self, root: Path, now: int = 1_795_485_600) -> None:
        self.path = root / "class" / "rtc" / "rtc0" / "wakealarm"
        self.path.parent.mkdir(parents=True)
        self.path.write_text("")
        self.now = now
        self.writes: list[str] = []

    def settle(self) -> None:
        """Apply the writes as the kernel would: ``0`` clears, ``+N`` arms now + N (only when clear)."""
        armed: int | None = None
        for text in self.writes:
            if text == "0":
                armed = None
            elif text.startswith("+"):
                assert armed is None, "the kernel refuses a new alarm while one is armed"
                armed = self.now + int(text[1:])
        self.path.write_text("" if armed is None else f"{armed}\n")


class NoLease:
    """The Lease port with no Lease at all: for check-in tests, in which no request is obeyed."""

    def get(self) -> LeaseRecord | None:
        return None

    def create(self, record: LeaseRecord) -> LeaseRecord:
        raise AssertionError("not in this test")

    def replace(self, record: LeaseRecord) -> LeaseRecord:
        raise AssertionError("not in this test")


def unused_verifier(audit: CapturedAudit) -> RequestVerifier:
    return RequestVerifier(ClusterKeys(b"k" * 32), NoLease(), "pi4", log=audit.logger)


def agent_with_alarm(
    api: KubeClusterApi,
    rtc: SysfsRtc,
    audit: CapturedAudit,
    halts: Halts,
    verifier: RequestVerifier | None = None,
) -> NodeAgent:
    alarm = RtcWakeAlarm(rtc.path)
    original = alarm._write

    def recorded(text: str) -> None:
        rtc.writes.append(text)
        original(text)

    alarm._write = recorded  # type: ignore[method-assign]
    return NodeAgent(
        api,
        "pi4",
        halts,
        audit.logger,
        verifier=verifier if verifier is not None else unused_verifier(audit),
        wake_alarm=alarm,
        recheck_s=900,
        check_in_wait_s=15,
    )


def shed(server: FakeKubeServer, phase: ShedPhase, leadership: Leadership | None = None) -> None:
    """pi4's shed record, signed by the leader (``leadership``) or, without one, unsigned (as forged)."""
    record = ShedRecord(phase, "pi1", "on battery", "2026-11-24T02:01:00Z", False)
    value = render_shed_record(record) if leadership is None else leadership.shed_record("pi4", record)
    server.update_object(
        "Node", None, "pi4", lambda n: n["metadata"].setdefault("annotations", {}).update({SHED_ANNOTATION: value})
    )


def test_an_rtc_wake_node_arms_its_alarm_before_it_obeys_a_power_off(
    server: FakeKubeServer, api: KubeClusterApi, tmp_path: Path, leadership: Leadership
) -> None:
    rtc, audit = SysfsRtc(tmp_path), CapturedAudit("pi4")
    halts = Halts(rtc)
    agent = agent_with_alarm(api, rtc, audit, halts, leadership.verifier("pi4", audit.logger))
    request_poweroff(server, "pi4", leadership.poweroff("pi4", "abc123"))
    assert agent.tick(PowerState.ON_BATTERY) == "abc123"
    assert rtc.writes == ["0", "+900"]  # cleared first: the kernel refuses a second alarm
    rtc.settle()
    assert RtcWakeAlarm(rtc.path).armed_at() == rtc.now + 900
    assert halts.rtc_writes_before == [["0", "+900"]]  # armed before the halt
    assert audit.named("node.wakealarm_armed")[0]["wake_in_s"] == 900
    assert agent.tick(PowerState.ON_BATTERY) is None and len(halts.reasons) == 1  # obeyed once


def test_an_alarm_that_cannot_be_armed_is_said_and_the_power_off_still_happens(
    server: FakeKubeServer, api: KubeClusterApi, tmp_path: Path, leadership: Leadership
) -> None:
    audit, halts = CapturedAudit("pi4"), Halts()
    agent = NodeAgent(
        api,
        "pi4",
        halts,
        audit.logger,
        verifier=leadership.verifier("pi4", audit.logger),
        wake_alarm=RtcWakeAlarm(tmp_path / "no-rtc" / "wakealarm"),
    )
    request_poweroff(server, "pi4", leadership.poweroff("pi4", "abc123"))
    agent.tick(PowerState.ON_BATTERY)
    (failed,) = audit.named("node.wakealarm_failed")
    assert "does not exist (a Pi 4 has no RTC)" in failed["error"]
    assert len(halts.reasons) == 1  # drained and asked: it halts; a person brings it back


@pytest.mark.parametrize(
    ("power", "phase", "action"),
    [
        (PowerState.ON_BATTERY, ShedPhase.POWERED_OFF, CheckIn.HALT_AND_REARM),
        (PowerState.LOW_BATTERY, ShedPhase.POWERED_OFF, CheckIn.HALT_AND_REARM),
        (PowerState.UNKNOWN, ShedPhase.POWERED_OFF, CheckIn.HALT_AND_REARM),  # after waiting: fails safe
        (PowerState.ONLINE, ShedPhase.POWERED_OFF, CheckIn.HALT_AND_REARM),  # the leader has not asked yet
        (PowerState.ONLINE, ShedPhase.RESTORING, CheckIn.REJOIN),  # the leader wants it back
        (PowerState.ON_BATTERY, ShedPhase.RESTORING, CheckIn.REJOIN),
        (PowerState.ON_BATTERY, None, CheckIn.REJOIN),  # record cleared: no longer shed
    ],
)
def test_check_in_after_waking(
    server: FakeKubeServer,
    api: KubeClusterApi,
    tmp_path: Path,
    leadership: Leadership,
    power: PowerState,
    phase: ShedPhase | None,
    action: CheckIn,
) -> None:
    if phase is not None:
        shed(server, phase, leadership)
    rtc, audit = SysfsRtc(tmp_path), CapturedAudit("pi4")
    halts = Halts(rtc)
    agent = agent_with_alarm(api, rtc, audit, halts, leadership.verifier("pi4", audit.logger))
    decision = agent.check_in(power, waited_s=20)
    assert decision is not None and decision.action is action
    (logged,) = audit.named("node.checked_in")
    assert logged["action"] == action.value
    if action is CheckIn.HALT_AND_REARM:
        assert rtc.writes == ["0", "+900"] and halts.rtc_writes_before == [["0", "+900"]]
        assert "check in again" in halts.reasons[0]
    else:
        assert rtc.writes == [] and halts.reasons == []
    assert agent.check_in(power, waited_s=60) is None  # once per daemon life


def test_check_in_waits_for_the_power_state_then_fails_safe(
    server: FakeKubeServer, api: KubeClusterApi, tmp_path: Path, leadership: Leadership
) -> None:
    shed(server, ShedPhase.POWERED_OFF, leadership)
    rtc, audit, halts = SysfsRtc(tmp_path), CapturedAudit("pi4"), Halts()
    agent = agent_with_alarm(api, rtc, audit, halts, leadership.verifier("pi4", audit.logger))
    assert agent.check_in(PowerState.UNKNOWN, waited_s=3) is None  # the UPS has not answered yet
    assert halts.reasons == []
    decision = agent.check_in(PowerState.UNKNOWN, waited_s=15)
    assert decision is not None and decision.action is CheckIn.HALT_AND_REARM


def test_check_in_when_the_api_is_down_counts_as_still_shed(tmp_path: Path) -> None:
    with FakeKubeServer() as server, server.api_client(retries=False) as client:
        server.load_objects(CLINIC)
        api = KubeClusterApi(client)
        rtc, audit, halts = SysfsRtc(tmp_path), CapturedAudit("pi4"), Halts()
        agent = agent_with_alarm(api, rtc, audit, halts)
        server.stop()
        decision = agent.check_in(PowerState.ON_BATTERY, waited_s=20)
    assert decision is not None and decision.action is CheckIn.HALT_AND_REARM
    assert "shed state unknown" in decision.reason and len(halts.reasons) == 1


def test_a_check_in_that_cannot_arm_the_alarm_stays_up(
    server: FakeKubeServer, api: KubeClusterApi, tmp_path: Path, leadership: Leadership
) -> None:
    shed(server, ShedPhase.POWERED_OFF, leadership)
    audit, halts = CapturedAudit("pi4"), Halts()
    agent = NodeAgent(
        api,
        "pi4",
        halts,
        audit.logger,
        verifier=leadership.verifier("pi4", audit.logger),
        wake_alarm=RtcWakeAlarm(tmp_path / "missing" / "wakealarm"),
    )
    decision = agent.check_in(PowerState.ON_BATTERY, waited_s=20)
    assert decision is not None and decision.action is CheckIn.HALT_AND_REARM
    assert audit.named("node.wakealarm_failed") and halts.reasons == []  # halted without an alarm: never back


@pytest.mark.parametrize("power", [PowerState.ONLINE, PowerState.ON_BATTERY])
def test_a_forged_powered_off_answer_does_not_halt_a_waking_node(
    server: FakeKubeServer, api: KubeClusterApi, tmp_path: Path, leadership: Leadership, power: PowerState
) -> None:
    """The check-in's answer is pi4's shed record: an unsigned ``powered_off`` (anyone who can write Node
    annotations) used to halt an rtc-wake node at every boot, on mains too. It is refused, said once (journal and
    a Warning Event naming the check), and read as no record: the node stays up."""
    shed(server, ShedPhase.POWERED_OFF)
    rtc, audit = SysfsRtc(tmp_path), CapturedAudit("pi4")
    halts = Halts(rtc)
    agent = agent_with_alarm(api, rtc, audit, halts, leadership.verifier("pi4", audit.logger))
    decision = agent.check_in(power, waited_s=20)
    assert decision is not None and decision.action is CheckIn.REJOIN
    assert halts.reasons == [] and rtc.writes == []
    (refused,) = audit.named("cluster.record_refused")
    assert refused["check"] == "signature" and refused["target"] == "pi4"
    (event,) = [e for e in server.list_objects("Event") if e["reason"] == "RecordRefused"]
    assert event["type"] == "Warning" and event["involvedObject"]["name"] == "pi4"


def test_a_node_without_rtc_wake_never_checks_in(api: KubeClusterApi) -> None:
    audit = CapturedAudit("pi4")
    agent = NodeAgent(api, "pi4", Halts(), audit.logger, verifier=unused_verifier(audit))
    assert agent.check_in(PowerState.ON_BATTERY, waited_s=600) is None


# --- relay requests ---------------------------------------------------------------------------------------


def request_poweroff(server: FakeKubeServer, on: str, value: str) -> None:
    server.update_object(
        "Node", None, on, lambda n: n["metadata"].setdefault("annotations", {}).update({REQUEST_ANNOTATION: value})
    )


def request_pulse(server: FakeKubeServer, on: str, value: str) -> None:
    server.update_object(
        "Node",
        None,
        on,
        lambda n: n["metadata"].setdefault("annotations", {}).update({POWER_ON_REQUEST_ANNOTATION: value}),
    )


def annotations_of(server: FakeKubeServer, name: str) -> dict[str, str]:
    node = server.get_object("Node", None, name)
    assert node is not None
    return dict(node["metadata"].get("annotations") or {})


def test_a_relay_request_is_removed_then_pulsed_once(
    server: FakeKubeServer, api: KubeClusterApi, leadership: Leadership
) -> None:
    gpio, audit = EmulatedGpio(), CapturedAudit("pi2")
    relay = GpioRelayPower(gpio, {"pi4": RelayLine(17)}, sleep=lambda _s: None)
    agent = NodeAgent(api, "pi2", Halts(), audit.logger, verifier=leadership.verifier("pi2", audit.logger), relay=relay)
    server.power_off_node("pi4")
    time.sleep(0.05)  # past the node-monitor grace period (10 ms here)
    request_pulse(server, "pi2", leadership.poweron("pi2", "r1", "pi4"))
    agent.tick(PowerState.ONLINE)
    agent.tick(PowerState.ONLINE)
    assert gpio.output_history(17) == [0, 1, 0]
    assert POWER_ON_REQUEST_ANNOTATION not in annotations_of(server, "pi2")
    (pulsed,) = audit.named("node.relay_pulsed")
    assert pulsed["target"] == "pi4" and pulsed["request_id"] == "r1" and pulsed["leader"] == "pi1"


def test_a_relay_request_for_a_node_that_is_up_pulses_nothing(
    server: FakeKubeServer, api: KubeClusterApi, leadership: Leadership
) -> None:
    """An old request (this daemon was down), or someone pressed the button meanwhile: pi4 is Ready, and a
    pulse would switch it off without a clean shutdown."""
    gpio, audit = EmulatedGpio(), CapturedAudit("pi2")
    relay = GpioRelayPower(gpio, {"pi4": RelayLine(17)}, sleep=lambda _s: None)
    agent = NodeAgent(api, "pi2", Halts(), audit.logger, verifier=leadership.verifier("pi2", audit.logger), relay=relay)
    request_pulse(server, "pi2", leadership.poweron("pi2", "r5", "pi4"))
    agent.tick(PowerState.ONLINE)
    assert gpio.output_history(17) == [0]
    assert POWER_ON_REQUEST_ANNOTATION not in annotations_of(server, "pi2")  # removed all the same: not obeyed later
    (failed,) = audit.named("node.relay_failed")
    assert failed["target"] == "pi4" and "pi4 is Ready: a pulse would switch it off" in failed["error"]
    assert audit.named("node.relay_pulsed") == []


def test_a_relay_request_for_a_node_this_one_does_not_drive_pulses_nothing(
    server: FakeKubeServer, api: KubeClusterApi, leadership: Leadership
) -> None:
    gpio, audit = EmulatedGpio(), CapturedAudit("pi2")
    relay = GpioRelayPower(gpio, {"pi4": RelayLine(17)}, sleep=lambda _s: None)
    agent = NodeAgent(api, "pi2", Halts(), audit.logger, verifier=leadership.verifier("pi2", audit.logger), relay=relay)
    server.power_off_node("pi5")
    time.sleep(0.05)  # past the node-monitor grace period (10 ms here)
    request_pulse(server, "pi2", leadership.poweron("pi2", "r2", "pi5"))
    agent.tick(PowerState.ONLINE)
    assert gpio.output_history(17) == [0]  # the pin comes from this node's configuration, never the request
    (failed,) = audit.named("node.relay_failed")
    assert failed["target"] == "pi5" and "no relay line configured" in failed["error"]


def test_a_relay_request_on_a_node_without_relays_is_said_and_removed(
    server: FakeKubeServer, api: KubeClusterApi, leadership: Leadership
) -> None:
    audit = CapturedAudit("pi3")
    agent = NodeAgent(api, "pi3", Halts(), audit.logger, verifier=leadership.verifier("pi3", audit.logger))
    request_pulse(server, "pi3", leadership.poweron("pi3", "r3", "pi4"))
    agent.tick(PowerState.ONLINE)
    (failed,) = audit.named("node.relay_failed")
    assert "no [node_power] gpio-relay table has via = 'pi3'" in failed["error"]
    assert POWER_ON_REQUEST_ANNOTATION not in annotations_of(server, "pi3")


@pytest.mark.parametrize("value", ["pulse!", '{"v": 1, "id": "r4", "leader": "pi1", "at": "x"}', '{"v": 2}'])
def test_a_relay_request_that_cannot_be_read_pulses_nothing_and_is_said_once(
    server: FakeKubeServer, api: KubeClusterApi, leadership: Leadership, value: str
) -> None:
    gpio, audit = EmulatedGpio(), CapturedAudit("pi2")
    relay = GpioRelayPower(gpio, {"pi4": RelayLine(17)}, sleep=lambda _s: None)
    agent = NodeAgent(api, "pi2", Halts(), audit.logger, verifier=leadership.verifier("pi2", audit.logger), relay=relay)
    request_pulse(server, "pi2", value)
    agent.tick(PowerState.ONLINE)
    agent.tick(PowerState.ONLINE)
    assert gpio.output_history(17) == [0]
    assert len(audit.named("node.poweron_request_invalid")) == 1


@pytest.mark.parametrize("power", list(PowerState))
@pytest.mark.parametrize("phase", [None, *ShedPhase])
@pytest.mark.parametrize("readable", [True, False])
def test_decide_check_in_table(power: PowerState, phase: ShedPhase | None, readable: bool) -> None:
    """Every combination: comes up only when the leader asked, when it is no longer shed, or when mains is
    back and the record cannot be read; otherwise halts again, re-armed."""
    decision = decide_check_in(power, phase, readable, 900)
    shed = phase in (ShedPhase.POWEROFF_REQUESTED, ShedPhase.POWERED_OFF)
    if not readable:
        expected = CheckIn.REJOIN if power is PowerState.ONLINE else CheckIn.HALT_AND_REARM
    elif phase is ShedPhase.RESTORING:
        expected = CheckIn.REJOIN
    else:
        expected = CheckIn.HALT_AND_REARM if shed else CheckIn.REJOIN
    assert decision.action is expected, decision.reason
    assert decision.rearm_s == (900 if expected is CheckIn.HALT_AND_REARM else None)


def test_a_forged_relay_request_pulses_nothing_and_is_said_once(
    server: FakeKubeServer, api: KubeClusterApi, leadership: Leadership
) -> None:
    """Issue 13, finding 1: any NotReady target used to be pulsed on an unsigned request."""
    gpio, audit = EmulatedGpio(), CapturedAudit("pi2")
    relay = GpioRelayPower(gpio, {"pi4": RelayLine(17)}, sleep=lambda _s: None)
    agent = NodeAgent(api, "pi2", Halts(), audit.logger, verifier=leadership.verifier("pi2", audit.logger), relay=relay)
    server.power_off_node("pi4")
    time.sleep(0.05)  # past the node-monitor grace period (10 ms here)
    forged = '{"v":1,"id":"forged2","target":"pi4","leader":"mallory","at":"2099-01-01T00:00:00Z"}'
    request_pulse(server, "pi2", forged)
    agent.tick(PowerState.ONLINE)
    agent.tick(PowerState.ONLINE)
    assert gpio.output_history(17) == [0]
    (refused,) = audit.named("node.request_refused")
    assert refused["check"] == "signature" and refused["request_id"] == "forged2"
    (event,) = [e for e in server.list_objects("Event") if e["reason"] == "RequestRefused"]
    assert event["involvedObject"]["name"] == "pi2" and event["type"] == "Warning"
    # A request signed for another node's relay (copied from pi3) does not verify on pi2 either.
    request_pulse(server, "pi2", leadership.poweron("pi3", "copied", "pi4"))
    agent.tick(PowerState.ONLINE)
    assert gpio.output_history(17) == [0]
