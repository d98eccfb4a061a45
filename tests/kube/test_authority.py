"""Only the current leader is obeyed (issue 13, finding 1): a node checks every request before it acts on it.

pi1 holds the Lease in a five-node world (the real daemon's parts on the fake API server); someone who can
write Node annotations, but has no cluster key, or a node that does not lead, asks pi3 to power off."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from piclusterd.cluster.agent import NodeAgent
from piclusterd.cluster.kube_api import KubeClusterApi
from piclusterd.config.settings import ShedSettings
from piclusterd.core.authority import sign
from piclusterd.core.node_records import (
    ACK_ANNOTATION,
    REQUEST_ANNOTATION,
    SHED_ANNOTATION,
    PowerOffRequest,
    ShedPhase,
    ShedRecord,
    poweroff_request_fields,
    render_poweroff_request,
    render_shed_record,
    rfc3339,
    shed_record_fields,
)
from piclusterd.core.outage_record import (
    OUTAGE_CONFIGMAP,
    OUTAGE_KEY,
    FullShutdownProgress,
    OutageRecord,
    outage_record_fields,
    render_outage_record,
)
from piclusterd.core.power_state import PowerState
from piclusterd.sim.captured_audit import CapturedAudit
from piclusterd.sim.cluster_world import ClusterWorld
from piclusterd.sim.fake_api_server import FakeKubeServer, make_node
from piclusterd.sim.fake_clock import FakeClock
from piclusterd.sim.scenarios import load_scenario
from piclusterd.testing.clusters import with_network_volumes
from piclusterd.testing.leadership import Leadership

CLINIC = Path(__file__).resolve().parents[2] / "examples" / "clusters" / "clinic-5.json"
NAMES = ("pi1", "pi2", "pi3", "pi4", "pi5")
FORGED = '{"v":1,"id":"forged1","leader":"mallory","at":"2099-01-01T00:00:00Z"}'


@pytest.fixture
def world() -> Iterator[ClusterWorld]:
    scenario = load_scenario(CLINIC)
    settings = ShedSettings(scenario.policy, scenario.battery, scenario.hardware, dry_run=False)
    clock = FakeClock(start=1000.0, epoch=1_795_485_600.0 - 1000.0)
    with FakeKubeServer(clock=clock, controller=True, ready_delay_s=20.0) as server:
        server.load_objects(with_network_volumes(CLINIC))  # mariadb movable: mechanics, not storage
        server.run_controller_once()
        made = ClusterWorld(server, clock, NAMES, settings)
        made.run(10)
        assert [e["node"] for e in made.events("leader.acquired")] == ["pi1"]
        yield made
        made.close()


def write_request(world: ClusterWorld | FakeKubeServer, node: str, value: str) -> None:
    server = world if isinstance(world, FakeKubeServer) else world.server
    server.update_object(
        "Node", None, node, lambda n: n["metadata"].setdefault("annotations", {}).update({REQUEST_ANNOTATION: value})
    )


def refusals(world: ClusterWorld, node: str) -> list[dict[str, object]]:
    return [
        e
        for e in world.server.list_objects("Event")
        if e["reason"] == "RequestRefused" and e["involvedObject"]["name"] == node
    ]


def test_a_forged_power_off_request_on_mains_is_refused_and_said_once(world: ClusterWorld) -> None:
    write_request(world, "pi3", FORGED)
    world.run(30)
    assert world.pis["pi3"].shutdowns == [] and world.pis["pi3"].alive
    (said,) = world.pis["pi3"].audit.named("node.request_refused")  # once, though it stays there 30 polls
    assert said["check"] == "signature" and said["request_id"] == "forged1" and said["leader"] == "mallory"
    (event,) = refusals(world, "pi3")
    assert event["type"] == "Warning" and "check signature" in str(event["message"])
    assert event.get("count", 1) == 1


def test_a_request_signed_by_a_node_that_does_not_lead_is_refused(world: ClusterWorld) -> None:
    world.ups.drive(ups_status="OB DISCHRG", battery_charge="100", battery_runtime="8000")
    world.run(2)
    # Signed with the cluster key (pi2 has it too), in pi1's term, but pi2 does not hold the Lease.
    unsigned = PowerOffRequest("r-pi2", "pi2", rfc3339(world.clock.wall()), term=0)
    fields = poweroff_request_fields(unsigned)
    as_pi2 = replace(unsigned, signature=sign(world.keys.current, REQUEST_ANNOTATION, "pi3", fields))
    write_request(world, "pi3", render_poweroff_request(as_pi2))
    world.run(3)
    assert world.pis["pi3"].shutdowns == []
    (said,) = world.pis["pi3"].audit.named("node.request_refused")
    assert said["check"] == "leader"


def test_the_leaders_own_request_on_mains_is_refused_for_the_situation(world: ClusterWorld) -> None:
    """Even the real leader's signature does not power a node off while mains is on and no full shutdown runs."""
    signed = world.signer_for("pi1").poweroff("pi3", "r-mains", rfc3339(world.clock.wall()))
    write_request(world, "pi3", render_poweroff_request(signed))
    world.run(3)
    assert world.pis["pi3"].shutdowns == []
    (said,) = world.pis["pi3"].audit.named("node.request_refused")
    assert said["check"] == "situation" and "not on battery" in str(said["why"])


def test_a_request_copied_to_another_node_does_not_verify(world: ClusterWorld) -> None:
    world.ups.drive(ups_status="OB DISCHRG", battery_charge="100", battery_runtime="8000")
    world.run(2)
    signed = world.signer_for("pi1").poweroff("pi4", "r-copied", rfc3339(world.clock.wall()))
    write_request(world, "pi3", render_poweroff_request(signed))
    world.run(3)
    assert world.pis["pi3"].shutdowns == []
    (said,) = world.pis["pi3"].audit.named("node.request_refused")
    assert said["check"] == "signature"


class Halts:
    """A node's local shutdown, recorded."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def request_local_shutdown(self, reason: str) -> bool:
        self.reasons.append(reason)
        return True


def test_deleting_the_ack_does_not_replay_an_old_request(kube: FakeKubeServer, clock: FakeClock) -> None:
    kube.put_object(make_node("pi3"))
    leadership = Leadership(kube)
    halts, audit = Halts(), CapturedAudit("pi3")
    with kube.api_client(retries=False) as client:
        api = KubeClusterApi(client)
        agent = NodeAgent(api, "pi3", halts, audit.logger, verifier=leadership.verifier("pi3", audit.logger))
        write_request(kube, "pi3", leadership.poweroff("pi3", "r1"))
        assert agent.tick(PowerState.ON_BATTERY) == "r1"
        kube.update_object("Node", None, "pi3", lambda n: n["metadata"]["annotations"].pop(ACK_ANNOTATION))
        assert agent.tick(PowerState.ON_BATTERY) is None
        assert len(halts.reasons) == 1
        (replay,) = audit.named("node.request_refused")
        assert replay["check"] == "replay"

        # Its next life remembers nothing; the request is older than the Lease's renewals allow.
        clock.advance(600)
        leadership.renew()
        next_life = NodeAgent(api, "pi3", halts, audit.logger, verifier=leadership.verifier("pi3", audit.logger))
        assert next_life.tick(PowerState.ON_BATTERY) is None
        assert len(halts.reasons) == 1
        assert audit.named("node.request_refused")[-1]["check"] == "freshness"
    leadership.close()


def test_a_request_from_an_earlier_term_is_refused(kube: FakeKubeServer, clock: FakeClock) -> None:
    """pi1 led, lost the Lease and won it back: what it signed in its first term is history."""
    kube.put_object(make_node("pi3"))
    leadership = Leadership(kube)
    old = leadership.poweroff("pi3", "r-old")
    leadership.elector.release()
    leadership.renew()  # a new term
    halts, audit = Halts(), CapturedAudit("pi3")
    with kube.api_client(retries=False) as client:
        agent = NodeAgent(
            KubeClusterApi(client), "pi3", halts, audit.logger, verifier=leadership.verifier("pi3", audit.logger)
        )
        write_request(kube, "pi3", old)
        assert agent.tick(PowerState.ON_BATTERY) is None
    assert halts.reasons == []
    (refused,) = audit.named("node.request_refused")
    assert refused["check"] == "term"
    leadership.close()


# --- Finding 2: a forged shed record does not bypass the safety rules ------------------------------------------


def leader_term(world: ClusterWorld) -> int:
    elector = world.pis["pi1"].elector
    assert elector is not None
    return elector.term()


def put_shed_record(world: ClusterWorld, node: str, value: str) -> None:
    world.server.update_object(
        "Node", None, node, lambda n: n["metadata"].setdefault("annotations", {}).update({SHED_ANNOTATION: value})
    )


def draining(leader: str = "pi1") -> ShedRecord:
    return ShedRecord(ShedPhase.DRAINING, leader, "forged", "2026-11-24T02:00:00Z", False)


def signed_by_key_holder(world: ClusterWorld, node: str, record: ShedRecord) -> str:
    """What a Pi holding the cluster key can write: a record signed as the leader, in the leader's term."""
    term = leader_term(world)
    record = replace(record, signer="pi1", term=term)
    signature = sign(world.keys.current, SHED_ANNOTATION, node, shed_record_fields(record))
    return render_shed_record(replace(record, signature=signature))


def record_refusals(world: ClusterWorld, node: str) -> list[dict[str, object]]:
    return [
        e
        for e in world.server.list_objects("Event")
        if e["reason"] == "RecordRefused" and e["involvedObject"]["name"] == node
    ]


def test_unsigned_draining_records_are_refused_and_their_nodes_left_alone(world: ClusterWorld) -> None:
    """Someone who can write Node annotations, without the cluster key, writes ``phase: draining`` on pi2 and
    pi3 during an outage: the leader never drains, powers off or uncordons them for it, and says so once each."""
    world.ups.drive(ups_status="OB DISCHRG", battery_charge="100", battery_runtime="8000", ups_realpower="23")
    put_shed_record(world, "pi2", render_shed_record(draining("mallory")))
    put_shed_record(world, "pi3", render_shed_record(draining("pi1")))
    world.run(600, step_s=5)
    assert world.pis["pi2"].shutdowns == [] and world.pis["pi3"].shutdowns == []
    touched = {
        str(e["target"])
        for name in ("node.drain_started", "node.drain_resumed", "node.rolled_back")
        for e in world.events(name)
    }
    assert not {"pi2", "pi3"} & touched
    refused = world.events("cluster.record_refused")
    assert sorted((e["target"], e["check"]) for e in refused) == [("pi2", "signature"), ("pi3", "signature")]
    for name in ("pi2", "pi3"):
        (event,) = record_refusals(world, name)  # once, not once per poll
        assert event["type"] == "Warning" and "signature" in str(event["message"]) and event.get("count", 1) == 1
    assert world.events("node.shed_refused_on_resume") == []  # refused before any rule is even asked
    assert {str(e["target"]) for e in world.events("node.powered_off")} <= {"pi4", "pi5"}
    assert all(world.pis[name].alive for name in ("pi1", "pi2", "pi3"))


def test_a_shed_record_from_a_term_the_lease_has_not_reached_is_refused(world: ClusterWorld) -> None:
    """Signed with the key but dated in a later term (or as another holder of this term): not a leader's."""
    world.ups.drive(ups_status="OB DISCHRG", battery_charge="100", battery_runtime="8000", ups_realpower="23")
    term = leader_term(world)
    later = replace(draining(), signer="pi1", term=term + 5)
    put_shed_record(
        world,
        "pi2",
        render_shed_record(
            replace(later, signature=sign(world.keys.current, SHED_ANNOTATION, "pi2", shed_record_fields(later)))
        ),
    )
    usurper = replace(draining(), signer="pi4", term=term)
    put_shed_record(
        world,
        "pi3",
        render_shed_record(
            replace(usurper, signature=sign(world.keys.current, SHED_ANNOTATION, "pi3", shed_record_fields(usurper)))
        ),
    )
    world.run(120, step_s=5)
    refused = {(e["target"], e["check"]) for e in world.events("cluster.record_refused")}
    assert refused == {("pi2", "term"), ("pi3", "leader")}
    assert world.pis["pi2"].shutdowns == [] and world.pis["pi3"].shutdowns == []


def test_signed_draining_records_on_two_etcd_members_still_do_not_break_quorum(world: ClusterWorld) -> None:
    """pi1, pi2 and pi3 are the three etcd members: the planner never sheds two of them. A Pi holding the key
    writes signed ``phase: draining`` records on pi2 and pi3: they verify, and every safety rule is checked
    again before the drain (the leader used to drain and power off both)."""
    world.ups.drive(ups_status="OB DISCHRG", battery_charge="100", battery_runtime="8000", ups_realpower="23")
    put_shed_record(world, "pi2", signed_by_key_holder(world, "pi2", draining()))
    put_shed_record(world, "pi3", signed_by_key_holder(world, "pi3", draining()))
    world.run(600, step_s=5)
    assert world.pis["pi2"].shutdowns == [] and world.pis["pi3"].shutdowns == []
    drained = {str(e["target"]) for e in world.events("node.drain_started")}
    assert not {"pi2", "pi3"} & drained
    refused = world.events("node.shed_refused_on_resume")
    assert {(e["target"], e["rule"]) for e in refused} == {("pi2", "etcd_quorum"), ("pi3", "etcd_quorum")}
    assert all(e["rolled_back"] is False for e in refused)  # not cordoned by this leader: left as found
    events = [e for e in world.server.list_objects("Event") if e["reason"] == "ShedRefused"]
    assert sorted(e["involvedObject"]["name"] for e in events) == ["pi2", "pi3"]
    assert all(e["type"] == "Warning" and e.get("count", 1) == 1 for e in events)  # said once, not per poll
    # The leader goes on with the shedding the rules allow (planning as if pi2 and pi3 were going away).
    assert {str(e["target"]) for e in world.events("node.powered_off")} <= {"pi4", "pi5"}
    assert all(world.pis[name].alive for name in ("pi1", "pi2", "pi3"))


# --- Finding 3: a forged outage record does not shut a cluster on mains down -----------------------------------


def put_outage_record(world: ClusterWorld, value: str) -> None:
    world.server.put_object(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": OUTAGE_CONFIGMAP, "namespace": "piclusterd"},
            "data": {OUTAGE_KEY: value},
        }
    )


def future_full_shutdown(world: ClusterWorld, leader: str) -> OutageRecord:
    future = rfc3339(world.clock.wall() + 3600)
    return OutageRecord(future, leader, 90.0, full_shutdown=FullShutdownProgress(future, leader, NAMES))


def test_an_unsigned_outage_record_is_refused_and_shuts_nothing_down(world: ClusterWorld) -> None:
    """Without the cluster key, a full shutdown written in the outage ConfigMap is refused (journal and a Warning
    Event naming the check), on mains as on battery: nobody is cordoned, drained or asked to power off."""
    put_outage_record(world, render_outage_record(future_full_shutdown(world, "mallory")))
    world.run(60, step_s=2)
    world.ups.drive(ups_status="OB DISCHRG", battery_charge="100", battery_runtime="8000", ups_realpower="23")
    world.run(60, step_s=2)
    assert all(pi.shutdowns == [] and pi.alive for pi in world.pis.values())
    assert world.events("node.cordoned") == [] and world.events("node.poweroff_requested") == []
    assert world.events("outage.full_shutdown_refused") == []  # refused before it is even looked at
    refused = [e for e in world.events("cluster.record_refused") if e["node"] == "pi1"]
    assert [(e["check"], e["kind"]) for e in refused] == [("signature", f"configmap piclusterd/{OUTAGE_CONFIGMAP}")]
    (event,) = record_refusals(world, "pi1")
    assert event["type"] == "Warning" and "signature" in str(event["message"])


def test_a_signed_full_shutdown_record_dated_in_the_future_shuts_nothing_down_on_mains(world: ClusterWorld) -> None:
    """A Pi holding the key signs a record saying a full shutdown started an hour from now: it verifies, but
    this leader neither started nor took it over on battery, and the node is on mains: refused (the leader
    used to cordon all five nodes, drain two and ask them to power off)."""
    record = future_full_shutdown(world, "pi1")
    term = leader_term(world)
    record = replace(record, term=term)
    record = replace(
        record, signature=sign(world.keys.current, OUTAGE_CONFIGMAP, "piclusterd", outage_record_fields(record))
    )
    put_outage_record(world, render_outage_record(record))
    world.run(120, step_s=2)
    assert all(pi.shutdowns == [] and pi.alive for pi in world.pis.values())
    assert world.events("node.cordoned") == [] and world.events("node.poweroff_requested") == []
    assert not any(node["spec"].get("unschedulable") for node in world.server.list_objects("Node"))
    assert world.events("cluster.record_refused") == []
    (refused,) = world.events("outage.full_shutdown_refused")  # once, not once per poll
    assert refused["node"] == "pi1" and refused["started_at"] == record.started_at
    (event,) = [e for e in world.server.list_objects("Event") if e["reason"] == "FullShutdownRefused"]
    assert event["type"] == "Warning"
