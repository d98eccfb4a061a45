"""Each node's power record on its Node, through the real client and the fake API server: rate-limited PATCHes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from piclusterd.cluster.kube_api import KubeClusterApi
from piclusterd.core.node_records import InvalidRecord
from piclusterd.core.power_record import POWER_ANNOTATION, PowerRecord, PublishPolicy, PublishReason, parse_power_record
from piclusterd.core.power_state import PowerMemory, PowerState
from piclusterd.core.reading import UpsFlag, UpsReading
from piclusterd.node.power_publisher import PowerPublisher
from piclusterd.sim.captured_audit import CapturedAudit
from piclusterd.sim.fake_api_server import FakeKubeServer, make_node
from piclusterd.sim.fake_clock import FakeClock

SOURCE = "nut:ups@10.0.0.2:3493"


@pytest.fixture
def publisher(kube: FakeKubeServer, api: client.ApiClient, clock: FakeClock) -> Iterator[PowerPublisher]:
    kube.put_object(make_node("pi1"))
    yield PowerPublisher(
        KubeClusterApi(api, request_timeout_s=2),
        "pi1",
        clock=clock,
        log=CapturedAudit("pi1").logger,
        policy=PublishPolicy(publish_every_s=60, charge_step_pct=5, retry_after_s=10),
    )


def memory(clock: FakeClock, state: PowerState, charge: float) -> PowerMemory:
    status = "OL" if state is PowerState.ONLINE else "OB"
    reading = UpsReading(
        SOURCE, clock.monotonic(), clock.wall(), frozenset({UpsFlag(status)}), charge_pct=charge, runtime_s=3000
    )
    return PowerMemory(state=state, last_reading=reading, last_runtime_s=3000.0)


def patches(kube: FakeKubeServer) -> int:
    return sum(1 for r in kube.requests if r.method == "PATCH" and r.path == "/api/v1/nodes/pi1")


def published(kube: FakeKubeServer) -> PowerRecord:
    node = kube.get_object("Node", None, "pi1")
    assert node is not None
    record = parse_power_record(node["metadata"]["annotations"][POWER_ANNOTATION])
    assert not isinstance(record, InvalidRecord), record
    return record


def test_the_record_lands_on_the_node_and_reads_back(
    publisher: PowerPublisher, kube: FakeKubeServer, clock: FakeClock
) -> None:
    assert publisher.publish(memory(clock, PowerState.ONLINE, 100), SOURCE) is PublishReason.FIRST
    record = published(kube)
    assert (record.state, record.charge_pct, record.source) == (PowerState.ONLINE, 100.0, SOURCE)
    assert [b.source for b in record.batteries] == [SOURCE]
    assert record.written_at == "2027-01-15T08:00:00Z"


def test_a_steady_node_patches_once_a_minute_not_once_a_poll(
    publisher: PowerPublisher, kube: FakeKubeServer, clock: FakeClock
) -> None:
    for _ in range(121):  # two minutes of 1 s polls, mains steady
        publisher.publish(memory(clock, PowerState.ONLINE, 100), SOURCE)
        clock.advance(1.0)
    assert patches(kube) == 3  # at 0 s, 60 s, 120 s


def test_an_outage_patches_at_once_then_every_charge_step(
    publisher: PowerPublisher, kube: FakeKubeServer, clock: FakeClock
) -> None:
    publisher.publish(memory(clock, PowerState.ONLINE, 100), SOURCE)
    clock.advance(1.0)
    assert publisher.publish(memory(clock, PowerState.ON_BATTERY, 100), SOURCE) is PublishReason.STATE_CHANGED
    assert published(kube).state is PowerState.ON_BATTERY
    reasons = []
    for second in range(1, 31):  # the charge falls one point every 3 s: 10 points in 30 s
        clock.advance(1.0)
        reasons.append(publisher.publish(memory(clock, PowerState.ON_BATTERY, 100 - second // 3), SOURCE))
    assert [r for r in reasons if r is not None] == [PublishReason.CHARGE_CHANGED] * 2
    assert patches(kube) == 4
    assert published(kube).charge_pct == 90.0


def test_an_api_outage_is_logged_once_and_retried_after_retry_after(
    kube: FakeKubeServer, api: client.ApiClient, clock: FakeClock
) -> None:
    kube.put_object(make_node("pi1"))
    audit = CapturedAudit("pi1")
    publisher = PowerPublisher(KubeClusterApi(api, request_timeout_s=2), "pi1", clock=clock, log=audit.logger)
    kube.fail_next(2, 500, path="/api/v1/nodes/pi1", method="PATCH")
    for _ in range(25):  # 25 s of polls: attempts at 0 s, 10 s (both fail), 20 s (succeeds)
        publisher.publish(memory(clock, PowerState.ONLINE, 100), SOURCE)
        clock.advance(1.0)
    assert patches(kube) == 3
    assert len(audit.named("node.power_publish_failed")) == 1
    assert len(audit.named("node.power_publish_restored")) == 1
    assert published(kube).state is PowerState.ONLINE
