"""The watch cache (issue 17): list once, watch from the list's version, bookmarks, 410 Gone lists again, an
event line past its bound lists again. Against the fake API server through the unmodified kubernetes client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from piclusterd.cluster.informer import ClusterCache, Informer, watched_kinds
from piclusterd.cluster.kube_api import KubeClusterApi
from piclusterd.sim.captured_audit import CapturedAudit
from piclusterd.sim.fake_api_server import FakeKubeServer

CLINIC = Path(__file__).resolve().parents[2] / "examples" / "clusters" / "clinic-5.json"


@pytest.fixture
def server() -> Iterator[FakeKubeServer]:
    with FakeKubeServer() as made:
        made.load_objects(CLINIC)
        yield made


def eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait for a watch to bring a change (a real HTTP stream: no fake clock can drive it)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the watch did not bring the change in time"
        time.sleep(0.05)


def label(server: FakeKubeServer, name: str, value: str) -> None:
    server.update_object("Node", None, name, lambda n: n["metadata"].setdefault("labels", {}).update({"x": value}))


def informer(server: FakeKubeServer, key: str, audit: CapturedAudit, **options: float) -> Informer:
    kinds = watched_kinds(server.api_client(), "pi1", "kube-system")
    made = Informer(kinds[key], log=audit.logger, **options).start()  # type: ignore[arg-type]
    assert made.wait_synced(10)
    return made


def test_one_list_then_changes_arrive_by_watch(server: FakeKubeServer) -> None:
    audit = CapturedAudit()
    nodes = informer(server, "nodes", audit)
    try:
        assert sorted(n["metadata"]["name"] for n in nodes.items()) == ["pi1", "pi2", "pi3", "pi4", "pi5"]
        assert all(n["kind"] == "Node" for n in nodes.items())
        eventually(lambda: any("watch" in r.query for r in server.requests))
        before = len(server.requests)
        label(server, "pi4", "a")
        eventually(lambda: (nodes.get("pi4") or {})["metadata"].get("labels", {}).get("x") == "a")
        # No request was made for it: the watch already open brought it.
        assert len(server.requests) == before
        assert nodes.lists == 1 and nodes.watches == 1
    finally:
        nodes.stop()


def test_a_follower_watches_its_own_node_only(server: FakeKubeServer) -> None:
    audit = CapturedAudit()
    own = informer(server, "own-node", audit)
    try:
        assert [n["metadata"]["name"] for n in own.items()] == ["pi1"]
        label(server, "pi2", "b")
        label(server, "pi1", "c")
        eventually(lambda: (own.get("pi1") or {})["metadata"].get("labels", {}).get("x") == "c")
        assert own.get("pi2") is None
    finally:
        own.stop()


def test_bookmarks_move_the_version_on_without_a_change(server: FakeKubeServer) -> None:
    server.bookmark_frequency_s = 0.2
    audit = CapturedAudit()
    outage = informer(server, "outage", audit)  # nothing of this kind exists: only bookmarks can move it
    try:
        first = outage.version
        label(server, "pi4", "d")  # a change to another kind moves the server's revision on
        eventually(lambda: outage.version != first)
        assert outage.lists == 1 and outage.items() == []
    finally:
        outage.stop()


def test_a_compacted_version_answers_410_and_the_informer_lists_again(server: FakeKubeServer) -> None:
    audit = CapturedAudit()
    outage = informer(server, "outage", audit, watch_timeout_s=1.0)  # no bookmarks: its version stays behind
    try:
        label(server, "pi4", "e")
        server.compact()  # etcd compaction: every older version is gone
        eventually(lambda: outage.lists == 2, timeout_s=15)
        (relisted,) = audit.named("cluster.watch_relisted")
        assert relisted["kind"] == "outage" and "410" in relisted["why"]
        assert outage.synced
    finally:
        outage.stop()


def test_an_event_longer_than_its_bound_is_not_read_and_the_informer_lists_again(server: FakeKubeServer) -> None:
    audit = CapturedAudit()
    nodes = informer(server, "nodes", audit, max_event_bytes=20_000)
    try:
        server.update_object(
            "Node", None, "pi4", lambda n: n["metadata"].setdefault("annotations", {}).update({"big": "x" * 30_000})
        )
        eventually(lambda: bool(audit.named("cluster.watch_relisted")))
        assert "longer than 20000 bytes" in audit.named("cluster.watch_relisted")[0]["why"]
    finally:
        nodes.stop()


def test_the_leader_reads_the_cluster_from_the_watches_not_a_list_a_poll(server: FakeKubeServer) -> None:
    audit = CapturedAudit()
    client = server.api_client()
    cache = ClusterCache(watched_kinds(client, "pi1", "kube-system"), log=audit.logger)
    api = KubeClusterApi(client)
    api.use_cache(cache, "pi1")
    try:
        first = api.snapshot()  # the watches are not in yet: three LISTs, and the watches start
        eventually(lambda: cache.snapshot() is not None)
        lists = len([r for r in server.requests if r.method == "GET" and "watch" not in r.query])
        for _ in range(10):
            again = api.snapshot()
            assert api.get_node("pi3")["metadata"]["name"] == "pi3"
        assert len([r for r in server.requests if r.method == "GET" and "watch" not in r.query]) == lists
        assert len(again["items"]) == len(first["items"])
        written = api.patch_node("pi2", {"metadata": {"labels": {"x": "f"}}})
        assert api.get_node("pi2")["metadata"]["labels"]["x"] == "f"  # our own write, read back at once
        assert written["metadata"]["resourceVersion"] == api.get_node("pi2")["metadata"]["resourceVersion"]
    finally:
        cache.stop()


def test_a_follower_reads_the_lease_from_its_watch_as_the_api_server_has_it(server: FakeKubeServer) -> None:
    from piclusterd.cluster.election import KubeLeaseStore, LeaseElector
    from piclusterd.core.ports import Clock

    class Wall(Clock):
        def monotonic(self) -> float:
            return time.monotonic()

        def wall(self) -> float:
            return time.time()

    audit = CapturedAudit()
    client = server.api_client()
    leader = LeaseElector(KubeLeaseStore(client), Wall(), "pi1")
    assert leader.try_acquire_or_renew().leader
    cache = ClusterCache(
        watched_kinds(client, "pi2", "piclusterd", lease=("piclusterd", "piclusterd-leader")), log=audit.logger
    )
    cache.start("lease")
    store = KubeLeaseStore(client)
    store.read_from(cache.lease)
    try:
        eventually(lambda: cache.lease()[0])
        assert store.get() == KubeLeaseStore(client).get()  # the watched copy reads as a GET does
        before = len(server.requests)
        follower = LeaseElector(store, Wall(), "pi2")
        for _ in range(5):
            assert not follower.try_acquire_or_renew().leader
        assert len(server.requests) == before  # no GET per retry period
        assert follower.holder == "pi1"
    finally:
        cache.stop()
