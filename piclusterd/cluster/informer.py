"""Adapter: an informer-style cache of the objects piclusterd reads, kept by watches instead of a LIST a second.

client-go's reflector, cut to what piclusterd needs (Kubernetes API concepts, "Efficient detection of
changes"): each :class:`Informer` lists its kind once (paged), then watches from the list's
``resourceVersion`` with ``allowWatchBookmarks``; a bookmark moves the version on, an error or a watch the
server ends is resumed from the last version seen, and ``410 Gone`` (the version was compacted) lists again.
Each watch ends after ``timeoutSeconds`` (five to ten minutes, jittered as client-go does), so a connection
lost without a word is noticed (and a watch silent past two bookmark periods, :data:`WATCH_IDLE_S`); reconnects
are the cache's only steady cost. While a list or watch fails, the cache counts as not synced and the reads go
to the API server directly, as before.

Every byte is bounded: a watch event is one JSON line of at most :data:`MAX_EVENT_BYTES`, parsed by
:func:`~piclusterd.core.bounded_json.load_bounded_json`; a longer line, or an event that is not an object
with a name and a version, ends the watch and lists again (an event cannot be skipped: the cache would be
wrong). Calls run on the kubernetes client (Debian's 22.6 and PyPI's 37 alike: raw JSON,
``_preload_content=False``), with a connect and read timeout.

:class:`ClusterCache` holds one informer per :class:`WatchedKind`: adding a kind is one line in
:func:`watched_kinds`. Followers watch their own Node only; the leader's kinds (nodes, pods, PDBs, the
outage record) start when it first reads the cluster. ``changes`` counts what the watches applied, so the
leader can plan when something changed and not otherwise (:mod:`piclusterd.cluster.controller`).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

from piclusterd.cluster.kube_api import PAGE_SIZE, JsonObject, request_timeout
from piclusterd.core.bounded_json import JsonLimits, JsonRefused, load_bounded_json
from piclusterd.node.audit import AuditLogger

__all__ = ["MAX_EVENT_BYTES", "ClusterCache", "Informer", "WatchedKind", "watched_kinds"]

#: One watch event (one JSON line) at most: a Node with its annotations and images is some tens of KiB.
MAX_EVENT_BYTES = 4 * 1024 * 1024
#: client-go's reflector: a watch lasts minWatchTimeout (5 min) times 1 to 2.
WATCH_TIMEOUT_S = 300.0
#: A watch silent this long is taken for a dead connection: kube-apiserver's watch cache sends a bookmark at
#: least once a minute to a watch that asked for them (cacher.go bookmarkFrequency), so two missed is enough.
WATCH_IDLE_S = 130.0
#: After a failed list or watch, wait this long before the next try (doubling up to BACKOFF_MAX_S).
BACKOFF_S = 1.0
BACKOFF_MAX_S = 30.0
_LIMITS = JsonLimits(max_bytes=MAX_EVENT_BYTES)


@dataclass(frozen=True, slots=True)
class WatchedKind:
    """One kind the cache keeps: its list call (namespaced calls take the namespace first) and selector."""

    key: str
    kind: str
    api_version: str
    list_call: Callable[..., Any]
    namespace: str | None = None
    field_selector: str | None = None
    leader: bool = True  # watched once this node leads (a follower watches only its own Node)
    in_snapshot: bool = True  # part of the leader's cluster snapshot (kubectl get nodes,pods,pdb,pv,pvc -A -o json)


def watched_kinds(
    api_client: k8s.ApiClient, identity: str, outage_namespace: str, lease: tuple[str, str] = ("", "")
) -> dict[str, WatchedKind]:
    """Every kind piclusterd watches, one line each (a kind in the snapshot is one more line here).
    ``lease``: the election Lease's namespace and name (every node watches it)."""
    core, policy = k8s.CoreV1Api(api_client), k8s.PolicyV1Api(api_client)
    coordination = k8s.CoordinationV1Api(api_client)
    from piclusterd.core.outage_record import OUTAGE_CONFIGMAP

    return {
        k.key: k
        for k in (
            WatchedKind(
                "own-node",
                "Node",
                "v1",
                core.list_node,
                field_selector=f"metadata.name={identity}",
                leader=False,
                in_snapshot=False,
            ),
            WatchedKind(
                "lease",
                "Lease",
                "coordination.k8s.io/v1",
                coordination.list_namespaced_lease,
                namespace=lease[0],
                field_selector=f"metadata.name={lease[1]}",
                leader=False,
                in_snapshot=False,
            ),
            WatchedKind("nodes", "Node", "v1", core.list_node),
            WatchedKind("pods", "Pod", "v1", core.list_pod_for_all_namespaces),
            WatchedKind(
                "pdbs", "PodDisruptionBudget", "policy/v1", policy.list_pod_disruption_budget_for_all_namespaces
            ),
            # Volumes pin pods to nodes (k3s local-path): the planner reads them (issue 14).
            WatchedKind("pvs", "PersistentVolume", "v1", core.list_persistent_volume),
            WatchedKind("pvcs", "PersistentVolumeClaim", "v1", core.list_persistent_volume_claim_for_all_namespaces),
            WatchedKind(
                "outage",
                "ConfigMap",
                "v1",
                core.list_namespaced_config_map,
                namespace=outage_namespace,
                field_selector=f"metadata.name={OUTAGE_CONFIGMAP}",
                in_snapshot=False,
            ),
        )
    }


class _Relist(Exception):
    """The watch cannot go on from its version (410 Gone, or an event that cannot be read): list again."""


def _version(obj: JsonObject) -> int | None:
    text = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    return int(text) if text.isdigit() else None


def _name_of(obj: JsonObject) -> tuple[str, str] | None:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        return None
    return str(metadata.get("namespace") or ""), str(metadata["name"])


class Informer:
    """One kind's cache: list, then watch; :attr:`synced` once the first list is in."""

    def __init__(
        self,
        kind: WatchedKind,
        *,
        log: AuditLogger,
        on_change: Callable[[], None] = lambda: None,
        request_timeout_s: float = 10.0,
        watch_timeout_s: float = WATCH_TIMEOUT_S,
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        self.kind = kind
        self._log = log
        self._on_change = on_change
        self._timeout_s = request_timeout_s
        self._watch_timeout_s = watch_timeout_s
        self._max_event_bytes = max_event_bytes
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str], JsonObject] = {}
        self._version = ""
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.changes = 0  # events applied (and lists taken), for plan on change
        self.lists = 0
        self.watches = 0

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    @property
    def version(self) -> str:
        """The resourceVersion the cache has reached (a list, an event, a bookmark)."""
        with self._lock:
            return self._version

    def wait_synced(self, timeout_s: float) -> bool:
        return self._synced.wait(timeout_s)

    def start(self) -> Informer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"piclusterd-watch-{self.kind.key}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def items(self) -> list[JsonObject]:
        with self._lock:
            return list(self._objects.values())

    def get(self, name: str, namespace: str = "") -> JsonObject | None:
        with self._lock:
            return self._objects.get((namespace, name))

    def remember(self, obj: JsonObject) -> None:
        """What we just wrote (the API server's answer): newer than the cache until the watch brings it."""
        key = _name_of(obj)
        if key is None:
            return
        with self._lock:
            held = self._objects.get(key)
            new, old = _version(obj), None if held is None else _version(held)
            if held is None or new is None or old is None or new >= old:
                self._objects[key] = self._typed(obj)

    def forget(self, name: str, namespace: str = "") -> None:
        with self._lock:
            self._objects.pop((namespace, name), None)

    def _typed(self, obj: JsonObject) -> JsonObject:
        # List and watch items come without kind/apiVersion on the wire for lists; the snapshot format has them.
        obj["kind"] = self.kind.kind
        obj.setdefault("apiVersion", self.kind.api_version)
        return obj

    # --- the reflector loop ------------------------------------------------------------------------------

    def _call(self, **kwargs: Any) -> Any:
        kind = self.kind
        if kind.field_selector:
            kwargs["field_selector"] = kind.field_selector
        args = (kind.namespace,) if kind.namespace is not None else ()
        return kind.list_call(*args, _preload_content=False, **kwargs)

    def _list(self) -> None:
        objects: dict[tuple[str, str], JsonObject] = {}
        token: str | None = None
        version = ""
        while True:
            extra = {"_continue": token} if token else {}
            response = self._call(limit=PAGE_SIZE, _request_timeout=request_timeout(self._timeout_s), **extra)
            page = load_bounded_json(response.data, JsonLimits(max_bytes=64 * 1024 * 1024))
            if not isinstance(page, dict):
                raise _Relist("a list that is not a JSON object")
            for item in page.get("items") or []:
                key = _name_of(item) if isinstance(item, dict) else None
                if key is not None:
                    objects[key] = self._typed(item)
            metadata = page.get("metadata") or {}
            token, version = metadata.get("continue"), str(metadata.get("resourceVersion") or "")
            if not token:
                break
        with self._lock:
            self._objects = objects
            self._version = version
            self.changes += 1
            self.lists += 1
        self._synced.set()
        self._on_change()

    def _lines(self, response: Any) -> Iterator[bytes]:
        """The watch's lines, each at most max_event_bytes (a longer one: list again)."""
        buffer = b""
        for chunk in response.stream(65536):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if len(line) > self._max_event_bytes:
                    raise _Relist(f"a watch event longer than {self._max_event_bytes} bytes")
                if line.strip():
                    yield line
            if len(buffer) > self._max_event_bytes:
                raise _Relist(f"a watch event longer than {self._max_event_bytes} bytes")
            if self._stop.is_set():
                return

    def _watch(self) -> None:
        timeout = int(self._watch_timeout_s * (1 + random.random()))  # spread the reconnects, as client-go does
        response = self._call(
            watch=True,
            resource_version=self._version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout,
            _request_timeout=(self._timeout_s, WATCH_IDLE_S),
        )
        self.watches += 1
        try:
            for line in self._lines(response):
                self._apply(line)
        finally:
            response.release_conn()

    def _apply(self, line: bytes) -> None:
        try:
            event = load_bounded_json(line, _LIMITS)
        except JsonRefused as error:
            raise _Relist(f"a watch event that is not JSON: {error}") from None
        kind = event.get("type") if isinstance(event, dict) else None
        obj = event.get("object") if isinstance(event, dict) else None
        if not isinstance(obj, dict):
            raise _Relist("a watch event without an object")
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Relist("410 Gone: the version was compacted")
            raise _Relist(f"watch error {str(obj.get('code'))[:10]} {str(obj.get('message'))[:200]}")
        version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if not version or len(version) > 64:
            raise _Relist("a watch event without a resourceVersion")
        if kind == "BOOKMARK":
            with self._lock:
                self._version = version
            return
        key = _name_of(obj)
        if key is None or kind not in ("ADDED", "MODIFIED", "DELETED"):
            raise _Relist(f"a watch event that cannot be read ({str(kind)[:20]})")
        with self._lock:
            if kind == "DELETED":
                self._objects.pop(key, None)
            else:
                self._objects[key] = self._typed(obj)
            self._version = version
            self.changes += 1
        self._on_change()

    def _run(self) -> None:
        backoff = BACKOFF_S
        need_list = True
        said: str | None = None
        while not self._stop.is_set():
            try:
                if need_list:
                    self._list()
                    need_list = False
                self._watch()  # ends after timeoutSeconds: watch again from the last version
                backoff, said = BACKOFF_S, None
                continue
            except _Relist as why:
                need_list = True
                self._log.info("cluster.watch_relisted", kind=self.kind.key, why=str(why)[:300])
            except Exception as error:  # the API is down, hangs, or answers nonsense: try again, said once
                # What the cache holds may be missing changes from now on: nobody reads it until a list again.
                self._synced.clear()
                need_list = True
                text = f"{type(error).__name__}: {error}"[:300]
                if said != type(error).__name__:
                    said = type(error).__name__
                    self._log.warning("cluster.watch_failed", kind=self.kind.key, error=text)
            self._stop.wait(backoff)
            backoff = min(BACKOFF_MAX_S, backoff * 2)


class ClusterCache:
    """The informers of one node: its own Node from the start; the leader's kinds once it reads the cluster."""

    def __init__(
        self, kinds: dict[str, WatchedKind], *, log: AuditLogger, on_change: Callable[[], None] = lambda: None
    ) -> None:
        self._kinds = kinds
        self._log = log
        self._on_change = on_change
        self._informers: dict[str, Informer] = {}
        self._lock = threading.Lock()

    def start(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                if key not in self._informers:
                    self._informers[key] = Informer(self._kinds[key], log=self._log, on_change=self._on_change).start()

    def stop(self) -> None:
        for informer in self._informers.values():
            informer.stop()

    def informer(self, key: str) -> Informer | None:
        informer = self._informers.get(key)
        return informer if informer is not None and informer.synced else None

    @property
    def changes(self) -> int:
        """Lists and events applied so far, all kinds: unchanged means nothing the leader reads changed."""
        return sum(i.changes for i in list(self._informers.values()))

    def snapshot(self) -> JsonObject | None:
        """Nodes, pods and PDBs as one List, from the watches; None (and the leader's watches started) until
        they are all in."""
        self.start(*(key for key, kind in self._kinds.items() if kind.leader))
        parts = [self.informer(key) for key, kind in self._kinds.items() if kind.in_snapshot]
        if any(part is None for part in parts):
            return None
        return {"kind": "List", "apiVersion": "v1", "items": [item for p in parts if p for item in p.items()]}

    def node(self, name: str, own: str) -> JsonObject | None:
        for key in ("nodes", "own-node") if name == own else ("nodes",):
            informer = self.informer(key)
            if informer is not None:
                return informer.get(name)  # None: no such Node (the watch would have it)
        return None

    def configmap(self, namespace: str, name: str) -> tuple[bool, JsonObject | None]:
        return self._one("outage", namespace, name)

    def lease(self) -> tuple[bool, JsonObject | None]:
        """The election Lease as last watched: (True, it or None if there is none), or (False, None)."""
        kind = self._kinds["lease"]
        return self._one("lease", kind.namespace or "", (kind.field_selector or "").removeprefix("metadata.name="))

    def _one(self, key: str, namespace: str, name: str) -> tuple[bool, JsonObject | None]:
        """One object a kind watches by name: (True, it or None) when that watch is in, else (False, None)."""
        informer = self.informer(key)
        kind = self._kinds[key]
        if informer is None or kind.namespace != namespace or kind.field_selector != f"metadata.name={name}":
            return False, None
        return True, informer.get(name, namespace)

    def remember(self, key: str, obj: JsonObject) -> None:
        for informer_key in ("nodes", "own-node") if key == "node" else (key,):
            informer = self._informers.get(informer_key)
            if informer is not None:
                informer.remember(obj)

    def forget(self, key: str, namespace: str, name: str) -> None:
        informer = self._informers.get(key)
        if informer is not None:
            informer.forget(name, namespace)
