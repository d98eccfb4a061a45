"""The leader's restore step with each kind of backend, on clinic-5 in a ClusterWorld: manual (said once, and
shown by ``piclusterctl status``), a failing backend (said, retried, never stuck), gpio-relay through another
node's daemon, and rtc-wake (a node that wakes too early halts again by itself)."""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from piclusterd.cli import ctl_main
from piclusterd.cluster.agent import NodeAgent
from piclusterd.cluster.kube_api import KubeClusterApi
from piclusterd.cluster.power_on import PowerOnBackends, RelayViaPeer
from piclusterd.cluster.power_on_backends import (
    GpioRelayPower,
    ManualPower,
    PowerOutcome,
    PowerResult,
    RelayLine,
    RtcWakeAlarm,
    RtcWakePower,
)
from piclusterd.cluster.restoring import MIN_POWER_ON_RETRY_S, POWER_ON_ANSWER_S
from piclusterd.config.cluster_key import create_key_file
from piclusterd.config.settings import ShedSettings
from piclusterd.core.errors import PowerControlFailed
from piclusterd.core.node_records import POWER_ON_REQUEST_ANNOTATION, SHED_ANNOTATION, ShedPhase, parse_shed_record
from piclusterd.core.power_on_record import POWER_ON_ANNOTATION
from piclusterd.core.restore import RestorePolicy
from piclusterd.node.daemon import PowerDaemon
from piclusterd.sim.cluster_world import BootInWorld, ClusterWorld, SimulatedPi
from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scenarios import load_scenario
from piclusterd.testing.clusters import with_network_volumes
from piclusterd.testing.gpio_emulator import EmulatedGpio

CLINIC = Path(__file__).resolve().parents[2] / "piclusterd" / "sim" / "data" / "clinic-5.json"
NAMES = ("pi1", "pi2", "pi3", "pi4", "pi5")
RESTORE = RestorePolicy()


@pytest.fixture
def server() -> Iterator[FakeKubeServer]:
    clock = FakeClock(start=1000.0, epoch=1_795_485_600.0 - 1000.0)
    with FakeKubeServer(clock=clock, controller=True, ready_delay_s=20.0) as made:
        made.load_objects(with_network_volumes(CLINIC))  # mariadb movable: mechanics, not storage
        made.run_controller_once()
        yield made


def settings() -> ShedSettings:
    scenario = load_scenario(CLINIC)
    return ShedSettings(scenario.policy, scenario.battery, scenario.hardware, dry_run=False, restore=RESTORE)


def clock_of(server: FakeKubeServer) -> FakeClock:
    clock = server._clock
    assert isinstance(clock, FakeClock)
    return clock


def shed_three_then_mains_back(world: ClusterWorld) -> list[str]:
    """On battery until three nodes are shed, then mains back with a 90 % battery; returns the shed nodes."""
    world.run(5)
    world.ups.drive(ups_status="OB DISCHRG", battery_charge="100", battery_runtime="8000")
    world.run_until(lambda: len(world.events("node.powered_off")) == 3, max_s=1200, step_s=5)
    world.ups.drive(ups_status="OL CHRG", battery_charge="90")
    return [str(e["target"]) for e in world.events("node.powered_off")]


def phase(world: ClusterWorld, name: str) -> ShedPhase | None:
    raw = (world.server.get_object("Node", None, name)["metadata"].get("annotations") or {}).get(SHED_ANNOTATION)
    if raw is None:
        return None
    record = parse_shed_record(raw)
    assert not isinstance(record, type(None))
    return getattr(record, "phase", None)


def stamp(event: dict[str, object]) -> float:
    return datetime.datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def events_named(world: ClusterWorld, reason: str) -> list[dict[str, object]]:
    return [e for e in world.server.list_objects("Event") if e["reason"] == reason]


def no_picluster_annotations(world: ClusterWorld) -> bool:
    """No record of ours is left, but the power-on records, which hold for restore_after so that a new leader
    paces the same (the leader removes them then)."""
    return not any(
        key.startswith("picluster.io/") and key != POWER_ON_ANNOTATION
        for node in world.server.list_objects("Node")
        for key in node["metadata"].get("annotations") or {}
    )


# --- manual ------------------------------------------------------------------------------------------------


def test_a_manual_node_is_announced_once_and_shown_as_waiting_for_the_button(
    server: FakeKubeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = ClusterWorld(
        server,
        clock_of(server),
        NAMES,
        settings(),
        power_on=lambda _w: PowerOnBackends({"pi4": ManualPower({"pi4": "rack B, shelf 2"})}),
    )
    shed = shed_three_then_mains_back(world)
    world.run(RESTORE.restore_after_s + 3 * RESTORE.restore_stagger_s + 300, step_s=5)

    requested = world.events("node.power_on_requested")
    assert sorted(str(e["target"]) for e in requested) == sorted(shed)  # once per node, not once per poll
    assert {e["outcome"] for e in requested} == {"waiting_for_operator"}
    needed = events_named(world, "PowerOnNeeded")
    assert sorted(e["involvedObject"]["name"] for e in needed) == sorted(shed)
    assert all(e["type"] == "Warning" and e.get("count", 1) == 1 for e in needed)
    (pi4,) = [e for e in needed if e["involvedObject"]["name"] == "pi4"]
    assert "waiting for someone to press the power button on pi4 (rack B, shelf 2)" in pi4["message"]
    assert all(phase(world, name) is ShedPhase.RESTORING for name in shed)
    # Why they were still off, said when it changed (not every poll, not the routine pacing).
    assert [e["why"] for e in world.events("restore.waiting")] == ["on_battery", "mains_not_stable"]

    config = tmp_path / "piclusterd.toml"
    create_key_file(str(tmp_path / "cluster.key"))
    config.write_text(
        f'[node]\nname = "pi1"\n[battery]\ncapacity_wh = 84\n[cluster]\nenabled = true\n'
        f'key_file = "{tmp_path}/cluster.key"\n'
        f'kubeconfig = "{server.write_kubeconfig(tmp_path / "kubeconfig")}"\n'
        '[node_power.pi4]\nmethod = "manual"\nwhere = "rack B, shelf 2"\n'
    )
    runtime_dir = Path(world.pis["pi1"].daemon._config.daemon.runtime_dir)  # type: ignore[union-attr]

    def status() -> str:
        ctl_main(["status", "--runtime-dir", str(runtime_dir), "--config", str(config)])
        return capsys.readouterr().out

    assert "pi4: waiting for someone to press the button (rack B, shelf 2)" in status()

    world.reboot("pi4")  # someone pressed it
    world.run(30, step_s=5)
    assert "pi4" in [e["target"] for e in world.events("node.restored")]
    assert "pi4: waiting" not in status()


# --- a backend that fails ---------------------------------------------------------------------------------


class LibraryError(Exception):
    """What a backend's library may raise that is none of ours (PyNUT raises such a PyNUTError)."""


class FailsOnce:
    """The first power-on fails (a relay not answering), then it works like BootInWorld."""

    name = "gpio-relay"

    def __init__(self, world: ClusterWorld, error: Exception) -> None:
        self.boot = BootInWorld(world)
        self.attempts: list[float] = []
        self._clock = world.clock
        self._error = error

    def power_on(self, node: str) -> PowerResult:
        self.attempts.append(self._clock.monotonic())
        if len(self.attempts) == 1:
            raise self._error
        return self.boot.power_on(node)

    def power_off(self, node: str) -> PowerResult:
        raise AssertionError("not used")

    def is_powered(self, node: str) -> bool | None:
        return None


@pytest.mark.parametrize(
    "error", [PowerControlFailed("gpio-relay: GPIO17 is busy"), LibraryError("GPIO17 is busy")], ids=["ours", "library"]
)
def test_a_failed_power_on_is_said_and_retried_without_holding_the_others_back(
    server: FakeKubeServer, error: Exception
) -> None:
    flaky: list[FailsOnce] = []

    def backends(world: ClusterWorld) -> PowerOnBackends:
        flaky.append(FailsOnce(world, error))
        return PowerOnBackends({"pi4": flaky[0]}, default=BootInWorld(world))

    world = ClusterWorld(server, clock_of(server), NAMES, settings(), power_on=backends)
    shed = shed_three_then_mains_back(world)
    world.run_until(lambda: bool(world.events("node.power_on_failed")), max_s=900, step_s=5)
    (failed,) = world.events("node.power_on_failed")
    assert failed["target"] == "pi4" and "GPIO17 is busy" in str(failed["error"])
    assert phase(world, "pi4") is ShedPhase.POWERED_OFF  # put back: the next try starts from the record
    (warning,) = events_named(world, "PowerOnFailed")
    assert warning["type"] == "Warning" and "GPIO17 is busy" in warning["message"]

    world.run_until(lambda: len(world.events("node.restored")) == 3, max_s=1200, step_s=5)
    first, second = flaky[0].attempts
    assert 2 * RESTORE.restore_stagger_s <= second - first < RESTORE.restore_after_s  # retried, soon
    wall_offset = world.clock.wall() - world.clock.monotonic()
    others = [stamp(e) - wall_offset for e in world.events("node.power_on_requested") if e["target"] != "pi4"]
    assert len(others) == 2
    assert any(first < at < second for at in others)  # the next node went first, not held back by pi4
    assert sorted(str(e["target"]) for e in world.events("node.restored")) == sorted(shed)
    assert no_picluster_annotations(world)


# --- gpio-relay through another node -----------------------------------------------------------------------


class WiredRelay:
    """pi2's real GpioRelayPower on an emulated GPIO, wired to pi4's power: a pulse boots pi4."""

    name = "gpio-relay"

    def __init__(self, world: ClusterWorld, gpio: EmulatedGpio) -> None:
        self.relay = GpioRelayPower(gpio, {"pi4": RelayLine(17)}, sleep=world.clock.advance)
        self._world = world

    def power_on(self, node: str) -> PowerResult:
        result = self.relay.power_on(node)
        self._world.boot_later(node, 30.0)
        return result

    def power_off(self, node: str) -> PowerResult:
        return self.relay.power_off(node)

    def is_powered(self, node: str) -> bool | None:
        return None


def test_gpio_relay_via_another_node_is_pulsed_once_by_that_nodes_daemon(server: FakeKubeServer) -> None:
    gpios: list[EmulatedGpio] = []
    holder: list[ClusterWorld] = []

    def agent(pi: SimulatedPi, api: KubeClusterApi, daemon: PowerDaemon) -> NodeAgent:
        relay = None
        if pi.name == "pi2":
            gpios.append(EmulatedGpio())
            relay = WiredRelay(holder[0], gpios[-1])
        return NodeAgent(api, pi.name, daemon, pi.audit.logger, verifier=pi.require_verifier(), relay=relay)

    def backends(world: ClusterWorld) -> PowerOnBackends:
        holder.append(world)
        via = RelayViaPeer(
            KubeClusterApi(world.server.api_client(retries=False)),
            {"pi4": "pi2"},
            leader="pi1",
            wall=world.clock.wall,
            signer=world.signer_for("pi1"),
        )
        return PowerOnBackends({"pi4": via}, default=BootInWorld(world))

    world = ClusterWorld(server, clock_of(server), NAMES, settings(), power_on=backends, node_agent=agent)
    shed_three_then_mains_back(world)
    world.run_until(lambda: "pi4" in [e["target"] for e in world.events("node.restored")], max_s=1200, step_s=5)

    (asked,) = [e for e in world.events("node.power_on_requested") if e["target"] == "pi4"]
    assert asked["outcome"] == "sent" and "asked pi2 to pulse pi4's power relay" in str(asked["detail"])
    (pulsed,) = world.events("node.relay_pulsed")
    assert pulsed["node"] == "pi2" and pulsed["target"] == "pi4"
    presses = [g.output_history(17) for g in gpios if g.output_history(17) != [0]]
    assert presses == [[0, 1, 0]]  # set up released, pressed once, released
    world.run(60, step_s=5)
    assert len(world.events("node.relay_pulsed")) == 1  # the request was removed: never obeyed twice
    pi2 = world.server.get_object("Node", None, "pi2")
    assert POWER_ON_REQUEST_ANNOTATION not in (pi2["metadata"].get("annotations") or {})
    world.run_until(lambda: len(world.events("node.restored")) == 3, max_s=600, step_s=5)
    assert no_picluster_annotations(world)


# --- rtc-wake ------------------------------------------------------------------------------------------------


def rtc_wake_world(server: FakeKubeServer, alarm: Path) -> ClusterWorld:
    """clinic-5 with pi4 on rtc-wake (its RTC alarm at ``alarm``, a 15 min recheck); the others boot when asked."""
    alarm.write_text("")

    def agent(pi: SimulatedPi, api: KubeClusterApi, daemon: PowerDaemon) -> NodeAgent:
        wake = RtcWakeAlarm(alarm) if pi.name == "pi4" else None
        return NodeAgent(
            api, pi.name, daemon, pi.audit.logger, verifier=pi.require_verifier(), wake_alarm=wake, recheck_s=900
        )

    return ClusterWorld(
        server,
        clock_of(server),
        NAMES,
        settings(),
        power_on=lambda w: PowerOnBackends({"pi4": RtcWakePower(900)}, default=BootInWorld(w)),
        node_agent=agent,
    )


def test_an_rtc_wake_node_halts_again_while_mains_is_out_and_rejoins_once_it_is_back(
    server: FakeKubeServer, tmp_path: Path
) -> None:
    alarm = tmp_path / "wakealarm"
    world = rtc_wake_world(server, alarm)
    world.run(5)
    world.ups.drive(ups_status="OB DISCHRG", battery_charge="100", battery_runtime="8000")
    world.run_until(lambda: "pi4" in [e["target"] for e in world.events("node.powered_off")], max_s=900, step_s=5)
    assert alarm.read_text() == "+900"  # armed before it halted
    assert world.pis["pi4"].audit.named("node.wakealarm_armed")

    alarm.write_text("")
    woken = world.reboot("pi4")  # its alarm went off; mains is still out
    world.run(20, step_s=5)
    (checked,) = woken.audit.named("node.checked_in")
    assert checked["action"] == "halt_and_rearm"
    assert woken.shutdowns == ["systemctl poweroff"] and alarm.read_text() == "+900"
    assert "pi4" not in [e["target"] for e in world.events("node.restored")]  # the leader left it alone
    assert phase(world, "pi4") is ShedPhase.POWERED_OFF

    world.run_until(lambda: len(world.events("node.powered_off")) >= 3, max_s=900, step_s=5)
    world.ups.drive(ups_status="OL CHRG", battery_charge="90")
    world.run_until(
        lambda: "pi4" in [e["target"] for e in world.events("node.power_on_requested")], max_s=900, step_s=5
    )
    (asked,) = [e for e in world.events("node.power_on_requested") if e["target"] == "pi4"]
    assert asked["outcome"] == "wakes_itself" and phase(world, "pi4") is ShedPhase.RESTORING
    back = world.reboot("pi4")  # the next alarm
    world.run(20, step_s=5)
    (checked,) = back.audit.named("node.checked_in")
    assert checked["action"] == "rejoin" and back.shutdowns == []
    assert "pi4" in [e["target"] for e in world.events("node.restored")]


# --- a power-on nobody answers ------------------------------------------------------------------------------


class LostPacket:
    """A Wake-on-LAN whose packet never wakes anything."""

    name = "wol"

    def __init__(self) -> None:
        self.sent: list[str] = []

    def power_on(self, node: str) -> PowerResult:
        self.sent.append(node)
        return PowerResult(node, PowerOutcome.SENT, "magic packet sent")

    def power_off(self, node: str) -> PowerResult:
        raise AssertionError("not used")

    def is_powered(self, node: str) -> bool | None:
        return None


def test_a_power_on_without_an_answer_is_said_once_and_never_repeated_by_itself(server: FakeKubeServer) -> None:
    lost = LostPacket()
    world = ClusterWorld(
        server,
        clock_of(server),
        NAMES,
        settings(),
        power_on=lambda w: PowerOnBackends({"pi4": lost}, default=BootInWorld(w)),
    )
    shed_three_then_mains_back(world)
    world.run_until(lambda: lost.sent == ["pi4"], max_s=900, step_s=5)
    world.run(POWER_ON_ANSWER_S - 30, step_s=10)
    assert world.events("node.power_on_unanswered") == []  # not yet: booting takes time
    world.run(POWER_ON_ANSWER_S, step_s=10)
    (unanswered,) = world.events("node.power_on_unanswered")
    assert unanswered["target"] == "pi4" and unanswered["method"] == "wol"
    (warning,) = events_named(world, "PowerOnUnanswered")
    assert warning["type"] == "Warning" and "does not ask again by itself" in warning["message"]
    assert lost.sent == ["pi4"] and phase(world, "pi4") is ShedPhase.RESTORING
    world.reboot("pi4")  # someone went and looked
    world.run(20, step_s=5)
    assert "pi4" in [e["target"] for e in world.events("node.restored")]
    assert no_picluster_annotations(world)


# --- the leader dies in the middle of a restore ----------------------------------------------------------------


class KillsTheLeaderAfterOne(BootInWorld):
    """Boots nodes like BootInWorld; right after the first power-on the leader's daemon dies (SIGKILL)."""

    def power_on(self, node: str) -> PowerResult:
        result = super().power_on(node)
        if len(self.power_ons) == 1:
            self._world.pis["pi1"].alive = False
        return result


def test_a_new_leader_finishes_a_restore_and_powers_nothing_on_twice(server: FakeKubeServer) -> None:
    world = ClusterWorld(
        server,
        clock_of(server),
        NAMES,
        settings(),
        power_on=lambda w: PowerOnBackends({}, default=KillsTheLeaderAfterOne(w)),
    )
    shed = shed_three_then_mains_back(world)
    backend = world.power_on.backend_for("pi4")
    assert isinstance(backend, KillsTheLeaderAfterOne)
    world.run_until(lambda: not world.pis["pi1"].alive, max_s=900, step_s=5)
    (first,) = [node for _, node in backend.power_ons]
    world.run_until(lambda: len(world.events("node.restored")) == 3, max_s=1200, step_s=5)

    assert sorted(node for _, node in backend.power_ons) == sorted(shed)  # each once, the first included
    (rejoined,) = [e for e in world.events("node.restored") if e["target"] == first]
    assert rejoined["node"] != "pi1"  # the new leader found the restoring record and finished it
    takeover = [e["node"] for e in world.events("leader.acquired") if e["node"] != "pi1"]
    assert takeover and all(e["node"] == takeover[0] for e in world.events("node.power_on_requested")[1:])
    world.reboot("pi1")
    world.run(20, step_s=5)
    assert no_picluster_annotations(world)
    assert world.events("node.power_on_failed") == []


def test_asking_the_leader_again_at_the_same_moment_powers_nothing_more_on(server: FakeKubeServer) -> None:
    world = ClusterWorld(
        server, clock_of(server), NAMES, settings(), power_on=lambda w: PowerOnBackends({}, default=BootInWorld(w))
    )
    shed_three_then_mains_back(world)
    boot = world.power_on.backend_for("pi4")
    assert isinstance(boot, BootInWorld)
    world.run_until(lambda: bool(boot.power_ons), max_s=900, step_s=5)
    leader = world.pis["pi1"]
    assert leader.controller is not None and leader.daemon is not None
    for _ in range(5):  # the same observation, the same time
        leader.controller.tick(leader.daemon.memory, leader.daemon.measured_load_w)
    assert len(boot.power_ons) == 1 and len(world.events("node.power_on_requested")) == 1
    assert world.events("node.power_on_failed") == []


def test_a_node_back_by_someones_hand_also_settles_before_it_can_be_shed_again(server: FakeKubeServer) -> None:
    world = ClusterWorld(server, clock_of(server), NAMES, settings())  # every node manual
    shed_three_then_mains_back(world)
    world.run(20, step_s=5)
    world.reboot("pi4")  # someone pressed its button before the leader asked
    world.run_until(lambda: "pi4" in [e["target"] for e in world.events("node.restored")], max_s=60, step_s=5)
    wall_offset = world.clock.wall() - world.clock.monotonic()
    (rejoined,) = [stamp(e) - wall_offset for e in world.events("node.restored") if e["target"] == "pi4"]
    world.run(10, step_s=5)
    world.ups.drive(ups_status="OB DISCHRG", battery_charge="80", battery_runtime="6000")  # the next outage
    world.run(600, step_s=5)

    refused = [r for e in world.events("plan.decided") for r in e["refused"] if r["rule"] == "settling"]
    assert [r["node"] for r in refused][:1] == ["pi4"]
    cordoned = [stamp(e) - wall_offset for e in world.events("node.cordoned") if e["target"] == "pi4"]
    assert cordoned, "pi4 was not shed again at all: the test proves nothing"
    assert cordoned[-1] - rejoined >= RESTORE.restore_after_s


def test_a_manual_request_is_withdrawn_when_mains_fails_again_and_made_again_when_it_is_back(
    server: FakeKubeServer,
) -> None:
    world = ClusterWorld(server, clock_of(server), NAMES, settings())  # every node manual
    shed = shed_three_then_mains_back(world)
    world.run_until(lambda: len(world.events("node.power_on_requested")) == 3, max_s=900, step_s=5)
    assert all(phase(world, name) is ShedPhase.RESTORING for name in shed)

    world.ups.drive(ups_status="OB DISCHRG", battery_charge="85", battery_runtime="7000")  # a 20 s flicker
    world.run(20, step_s=5)
    assert sorted(str(e["target"]) for e in world.events("node.power_on_withdrawn")) == sorted(shed)
    assert all(phase(world, name) is ShedPhase.POWERED_OFF for name in shed)  # status asks nobody now
    assert len(events_named(world, "PowerOnWithdrawn")) == 3

    world.ups.drive(ups_status="OL CHRG", battery_charge="85")
    world.run(RESTORE.restore_after_s - 10, step_s=5)
    assert len(world.events("node.power_on_requested")) == 3  # not before mains is stable again
    world.run_until(lambda: len(world.events("node.power_on_requested")) == 6, max_s=600, step_s=5)
    assert all(phase(world, name) is ShedPhase.RESTORING for name in shed)


def test_an_rtc_wake_node_asked_back_halts_again_if_mains_fails_before_it_wakes(
    server: FakeKubeServer, tmp_path: Path
) -> None:
    alarm = tmp_path / "wakealarm"
    world = rtc_wake_world(server, alarm)
    shed_three_then_mains_back(world)
    world.run_until(
        lambda: "pi4" in [e["target"] for e in world.events("node.power_on_requested")], max_s=900, step_s=5
    )
    assert phase(world, "pi4") is ShedPhase.RESTORING
    world.ups.drive(ups_status="OB DISCHRG", battery_charge="85", battery_runtime="7000")
    world.run(10, step_s=5)
    (withdrawn,) = [e for e in world.events("node.power_on_withdrawn") if e["target"] == "pi4"]
    assert withdrawn["method"] == "rtc-wake" and phase(world, "pi4") is ShedPhase.POWERED_OFF

    woken = world.reboot("pi4")  # its alarm, still during the new outage
    world.run(20, step_s=5)
    (checked,) = woken.audit.named("node.checked_in")
    assert checked["action"] == "halt_and_rearm" and woken.shutdowns == ["systemctl poweroff"]


@pytest.mark.parametrize("if_charge_unknown", [False, True])
def test_a_ups_that_does_not_report_its_charge_restores_only_when_allowed(
    server: FakeKubeServer, if_charge_unknown: bool
) -> None:
    policy = RestorePolicy(restore_if_charge_unknown=if_charge_unknown)
    scenario = load_scenario(CLINIC)
    shed_settings = ShedSettings(scenario.policy, scenario.battery, scenario.hardware, dry_run=False, restore=policy)
    world = ClusterWorld(
        server, clock_of(server), NAMES, shed_settings, power_on=lambda w: PowerOnBackends({}, default=BootInWorld(w))
    )
    shed = shed_three_then_mains_back(world)
    del world.ups.variables["battery.charge"]  # this UPS stops saying its charge on mains
    world.run(RESTORE.restore_after_s + 4 * RESTORE.restore_stagger_s + 120, step_s=5)
    restored = sorted(str(e["target"]) for e in world.events("node.restored"))
    if if_charge_unknown:
        assert restored == sorted(shed)
    else:
        assert restored == [] and world.events("node.power_on_requested") == []
        assert world.events("restore.waiting")[-1]["why"] == "charge_unknown"


def test_with_no_stagger_a_failing_backend_is_still_tried_at_most_every_30_s(server: FakeKubeServer) -> None:
    class AlwaysFails(FailsOnce):
        def power_on(self, node: str) -> PowerResult:
            self.attempts.append(self._clock.monotonic())
            raise PowerControlFailed("gpio-relay: GPIO17 is busy")

    policy = RestorePolicy(restore_stagger_s=0.0)
    scenario = load_scenario(CLINIC)
    shed_settings = ShedSettings(scenario.policy, scenario.battery, scenario.hardware, dry_run=False, restore=policy)
    failing: list[AlwaysFails] = []

    def backends(world: ClusterWorld) -> PowerOnBackends:
        failing.append(AlwaysFails(world, PowerControlFailed("unused")))
        return PowerOnBackends({"pi4": failing[0]}, default=BootInWorld(world))

    world = ClusterWorld(server, clock_of(server), NAMES, shed_settings, power_on=backends)
    shed_three_then_mains_back(world)
    world.run(RESTORE.restore_after_s + 300, step_s=1)
    attempts = failing[0].attempts
    assert len(attempts) >= 5  # it keeps trying
    assert all(b - a >= MIN_POWER_ON_RETRY_S for a, b in itertools.pairwise(attempts))


def test_a_new_leader_lets_the_nodes_the_old_one_brought_back_settle(server: FakeKubeServer) -> None:
    """Issue 17, finding 4: the restore memory lived in the leader's process. The old leader brings every shed
    node back and dies; mains fails again at once. The new leader reads from the Nodes which came back when,
    and sheds none of them sooner than restore_after after its return (anti-flap), as the old one would have."""
    world = ClusterWorld(
        server, clock_of(server), NAMES, settings(), power_on=lambda w: PowerOnBackends({}, default=BootInWorld(w))
    )
    shed = shed_three_then_mains_back(world)
    world.run_until(lambda: len(world.events("node.restored")) == 3, max_s=1200, step_s=5)
    assert {e["node"] for e in world.events("node.restored")} == {"pi1"}
    wall_offset = world.clock.wall() - world.clock.monotonic()
    back = {str(e["target"]): stamp(e) - wall_offset for e in world.events("node.restored")}
    world.pis["pi1"].alive = False  # the leader's daemon dies (SIGKILL): its process memory is gone
    world.run_until(lambda: world.events("leader.acquired")[-1]["node"] != "pi1", max_s=60, step_s=1)
    world.restart_daemon("pi1")  # back, as a follower: the node itself stays up, nothing to shed there
    world.ups.drive(ups_status="OB DISCHRG", battery_charge="80", battery_runtime="6000")  # the next outage
    world.run(600, step_s=5)

    new_leader = world.events("leader.acquired")[-1]["node"]
    assert new_leader != "pi1"
    cordoned = [(str(e["target"]), stamp(e) - wall_offset) for e in world.events("node.cordoned")]
    assert {e["node"] for e in world.events("node.cordoned") if stamp(e) - wall_offset > min(back.values())} == {
        new_leader
    }
    again = [(name, at) for name, at in cordoned if name in shed and at > back[name]]
    assert again, "no node was shed again at all: the test proves nothing"
    assert all(at - back[name] >= RESTORE.restore_after_s for name, at in again), (again, back)
    refused = {r["node"] for e in world.events("plan.decided") for r in e["refused"] if r["rule"] == "settling"}
    assert refused, "the new leader never said a node was settling"
