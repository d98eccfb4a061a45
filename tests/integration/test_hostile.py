"""A hostile cluster (issue 13, item 9): someone who can write Node annotations, ConfigMaps and the Lease,
but has no cluster key (or holds it on a Pi that does not lead), against five real daemons on mains.

Forged power-off requests (unsigned, another key, the wrong leader, an old term, a replay, the real leader's
own on mains), a forged shed record and outage record, garbage annotations on nodes and pods, then an absurd
Lease. Every node stays up, etcd keeps its three members, no daemon exits, and each refusal is in the journal
and a Warning Event naming the check. The inputs are listed in tests/README.md's hostile table."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from piclusterd.core.authority import ClusterKeys, parse_key_text, sign
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
)
from piclusterd.core.outage_record import (
    OUTAGE_CONFIGMAP,
    OUTAGE_KEY,
    FullShutdownProgress,
    OutageRecord,
    render_outage_record,
)

from .cluster import NetnsCluster, running_cluster
from .faults import Faults, event_wall

pytestmark = [pytest.mark.realnut, pytest.mark.root, pytest.mark.slow]

DESTRUCTIVE = ("node.cordoned", "node.drain_started", "node.drained", "node.poweroff_requested", "node.poweroff_ssh")
OUTAGE_NAMESPACE = "piclusterd"  # the Lease and the outage record (issue 13 item 8)


def lease(cluster: NetnsCluster) -> dict[str, Any]:
    found = cluster.api.get_object("Lease", OUTAGE_NAMESPACE, "piclusterd-leader")
    assert found is not None
    return found


def term(cluster: NetnsCluster) -> int:
    return int(lease(cluster)["spec"].get("leaseTransitions") or 0)


def annotate(cluster: NetnsCluster, name: str, values: dict[str, str | None]) -> None:
    def change(node: dict[str, Any]) -> None:
        annotations = node["metadata"].setdefault("annotations", {})
        for key, value in values.items():
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value

    cluster.api.update_object("nodes", None, name, change)


def request(key: bytes, node: str, request_id: str, leader: str, in_term: int) -> str:
    """A power-off request for ``node`` signed with ``key`` as ``leader`` in ``in_term``, dated now."""
    unsigned = PowerOffRequest(request_id, leader, rfc3339(time.time()), in_term)
    signature = sign(key, REQUEST_ANNOTATION, node, poweroff_request_fields(unsigned))
    return render_poweroff_request(PowerOffRequest(request_id, leader, unsigned.requested_at, in_term, signature))


def refused(cluster: NetnsCluster, host: str, request_id: str, check: str) -> dict[str, Any]:
    return cluster.wait_event(
        "node.request_refused", lambda e: e["host"] == host and e["request_id"] == request_id and e["check"] == check
    )


def test_forged_requests_records_garbage_and_an_absurd_lease_power_nothing_off(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as cluster:
        faults = Faults(cluster)
        began = time.time()
        keys = ClusterKeys(parse_key_text(Path(cluster.cluster_key).read_text(encoding="ascii")))
        key = keys.current

        # An old term: the leader dies, another takes over (a new term), the old one comes back as a follower.
        first, old_term = cluster.leader(), term(cluster)
        assert first is not None
        faults.kill_daemon(first)
        cluster.wait_until("a new leader", lambda: cluster.leader() not in (None, first), timeout_s=60)
        cluster.start_daemon(first)
        leader = cluster.leader()
        assert leader is not None and term(cluster) > old_term
        victim, marked = [n for n in ("pi4", "pi5", "pi3", "pi2", "pi1") if n != leader][:2]

        # Forged power-off requests on the victim, one after another; each refused with its check, never obeyed.
        forged = [
            (
                "unsigned",
                '{"v":1,"id":"forged1","leader":"' + leader + '","at":"' + rfc3339(time.time()) + '"}',
                "forged1",
                "signature",
            ),
            (
                "another key",
                request(secrets.token_bytes(32), victim, "otherkey1", leader, term(cluster)),
                "otherkey1",
                "signature",
            ),
            ("wrong leader", request(key, victim, "notleader1", marked, term(cluster)), "notleader1", "leader"),
            ("old term", request(key, victim, "oldterm1", leader, old_term), "oldterm1", "term"),
            ("on mains", request(key, victim, "onmains1", leader, term(cluster)), "onmains1", "situation"),
        ]
        for _what, value, request_id, check in forged:
            annotate(cluster, victim, {REQUEST_ANNOTATION: value})
            refused(cluster, victim, request_id, check)
        # A replay: an id this node acknowledged once comes back after its acknowledgement is deleted.
        replay = request(key, victim, "replay1", leader, term(cluster))
        annotate(cluster, victim, {REQUEST_ANNOTATION: replay, ACK_ANNOTATION: "replay1"})
        time.sleep(2)  # a few polls: the agent sees it acknowledged and remembers the id
        annotate(cluster, victim, {REQUEST_ANNOTATION: replay, ACK_ANNOTATION: None})
        refused(cluster, victim, "replay1", "replay")
        annotate(cluster, victim, {REQUEST_ANNOTATION: None})

        # A forged shed record and a forged full shutdown in the outage record: refused by the leader, once.
        draining = ShedRecord(ShedPhase.DRAINING, leader, "forged", rfc3339(time.time()), False)
        annotate(cluster, marked, {SHED_ANNOTATION: render_shed_record(draining)})
        cluster.wait_event("cluster.record_refused", lambda e: e.get("target") == marked and e["check"] == "signature")
        now = rfc3339(time.time())
        outage = OutageRecord(
            now, leader, 90.0, full_shutdown=FullShutdownProgress(now, leader, tuple(cluster.node_names))
        )
        cluster.api.put_object(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": OUTAGE_CONFIGMAP, "namespace": OUTAGE_NAMESPACE},
                "data": {OUTAGE_KEY: render_outage_record(outage)},
            }
        )
        cluster.wait_event(
            "cluster.record_refused", lambda e: "configmap" in str(e.get("kind")) and e["check"] == "signature"
        )

        # Garbage on nodes and pods.
        deep = "[" * 100_000 + "]" * 100_000
        annotate(cluster, victim, {"picluster.io/power": deep, SHED_ANNOTATION: deep})
        pods = [p for p in cluster.api.list_objects("Pod") if p["spec"].get("nodeName")][:2]
        for pod, value in zip(pods, ("lots", "9" * 5000), strict=False):

            def garble(obj: dict[str, Any], value: str = value) -> None:
                obj["metadata"].setdefault("annotations", {})["picluster.io/cpu-usage"] = value

            cluster.api.update_object("pods", pod["metadata"]["namespace"], pod["metadata"]["name"], garble)
        cluster.wait_event("node.record_invalid", lambda e: e.get("target") == victim)
        time.sleep(5)  # polls with all of it in place

        # An absurd Lease: a holder that is no Node, for 68 years. A real node leads again.
        def ghost(obj: dict[str, Any]) -> None:
            obj["spec"]["holderIdentity"] = "ghost"
            obj["spec"]["leaseDurationSeconds"] = 2**31 - 1

        cluster.api.update_object("leases", OUTAGE_NAMESPACE, "piclusterd-leader", ghost)
        cluster.wait_until("a real node leading", lambda: cluster.leader() in cluster.node_names, timeout_s=60)
        cluster.wait_event("leader.lease_distrusted", lambda e: event_wall(e) >= began)
        time.sleep(5)

        # Nothing powered off, nothing cordoned or drained, every daemon alive, etcd's three members Ready.
        assert cluster.shutdown_nodes() == []
        assert [e for e in cluster.events() if e["event"] in DESTRUCTIVE and event_wall(e) >= began] == []
        assert all(host.daemon is not None and host.daemon.running for host in cluster.hosts.values())
        assert all(cluster.ready(name) for name in cluster.node_names)
        assert not cluster.cordoned(marked) and not cluster.cordoned(victim)
        # Each refusal visible: a Warning Event naming the check, once per request or record.
        requests = cluster.kube_events("RequestRefused")
        assert all(e["type"] == "Warning" for e in requests)
        for _what, _value, request_id, check in [*forged, ("replay", "", "replay1", "replay")]:
            said = [e for e in requests if repr(request_id) in e["message"] and f"check {check}" in e["message"]]
            assert len(said) == 1 and said[0].get("count", 1) == 1, (request_id, check, requests)
        records = cluster.kube_events("RecordRefused")
        assert any(e["involvedObject"]["name"] == marked and "check signature" in e["message"] for e in records)
        assert any("configmap" in e["message"] and "check signature" in e["message"] for e in records)
        assert cluster.annotations(marked)[SHED_ANNOTATION] == render_shed_record(draining)  # left as found

        # What the person the Events call does: remove the forged records (the summary counts a Ready node with a
        # shed record as lost).
        annotate(cluster, marked, {SHED_ANNOTATION: None})
        annotate(cluster, victim, {SHED_ANNOTATION: None, "picluster.io/power": None})
        cluster.api.delete_object("ConfigMap", OUTAGE_NAMESPACE, OUTAGE_CONFIGMAP)
        summary = faults.summary("hostile cluster: forged requests and records, garbage, absurd lease")
        summary.report(tmp_path)
        summary.assert_invariants()
