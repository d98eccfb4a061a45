"""A kubelet stand-in for one node without a kubelet (the VM test, the tests here): local processes as pods.

What the kubelet does when a pod on its node is deleted (pkg/kubelet: the pod worker's termination): it sees
``metadata.deletionTimestamp``, runs the container's stop with the pod's grace period, that is SIGTERM, then
SIGKILL once ``deletionGracePeriodSeconds`` has passed, and when the containers have exited it removes the Pod
object with a final DELETE, grace period 0 (the status manager's ``canBeDeleted`` path). :class:`KubeletStandIn`
does that for the pods named in ``processes``, each backed by a local process, so piclusterd's self-drain
can be checked end to end: the process gets its SIGTERM from the eviction, flushes, exits, and only then does
the Pod disappear from the API server, which is what the self-drain waits for.

Use with a fake API server whose ``graceful_deletion`` is on (or a real one without a kubelet on that node).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from piclusterd.cluster.kube_api import KubeClusterApi
from piclusterd.core.errors import ClusterError

__all__ = ["KubeletStandIn"]


@dataclass
class _Ending:
    uid: str
    kill_at: float
    killed: bool = False


def _alive(pid: int) -> bool:
    try:
        waited, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child: ask the kernel whether it exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return waited == 0


class KubeletStandIn:
    """Ends the pods in ``processes`` (``namespace/name`` -> pid) as a kubelet would; a thread polls the API."""

    def __init__(self, api: KubeClusterApi, node: str, processes: Mapping[str, int], *, poll_s: float = 0.1) -> None:
        self._api = api
        self._node = node
        self._processes = dict(processes)
        self._poll_s = poll_s
        self._ending: dict[str, _Ending] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: (pod key, what happened: "SIGTERM", "SIGKILL", "removed") in order.
        self.history: list[tuple[str, str]] = []

    def __enter__(self) -> KubeletStandIn:
        self._thread = threading.Thread(target=self._run, name="kubelet-stand-in", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.wait(self._poll_s):
            with contextlib.suppress(ClusterError):
                self.sync()

    def sync(self) -> None:
        """One pass: signal what is newly deleted, SIGKILL what outlived its grace, remove what has exited."""
        now = time.monotonic()
        for pod in self._api.pods_on_node(self._node):
            metadata = pod.get("metadata") or {}
            key = f"{metadata.get('namespace')}/{metadata.get('name')}"
            pid = self._processes.get(key)
            if pid is None or not metadata.get("deletionTimestamp"):
                continue
            ending = self._ending.get(key)
            if ending is None or ending.uid != metadata.get("uid"):
                grace = metadata.get("deletionGracePeriodSeconds")
                grace_s = float(grace) if isinstance(grace, int) and grace >= 0 else 30.0
                ending = self._ending[key] = _Ending(str(metadata.get("uid", "")), now + grace_s)
                self._signal(key, pid, signal.SIGTERM)
            if _alive(pid):
                if not ending.killed and now >= ending.kill_at:
                    ending.killed = True
                    self._signal(key, pid, signal.SIGKILL)
                continue
            if self._api.delete_pod(str(metadata.get("namespace")), str(metadata.get("name")), ending.uid, 0):
                self.history.append((key, "removed"))

    def _signal(self, key: str, pid: int, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
        self.history.append((key, signum.name))
