"""A leader holding the Lease on the fake API server and signing requests as the daemon's leader does.

Tests of a node's agent (or of ``remote-poweroff``) need a real Lease, held in a real term, and requests signed
with the cluster key: :class:`Leadership` makes them with the daemon's own parts
(:class:`~piclusterd.cluster.election.LeaseElector`, :class:`~piclusterd.cluster.authority.RequestSigner`),
and builds the :class:`~piclusterd.cluster.authority.RequestVerifier` a node checks them with.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from piclusterd.cluster.authority import RequestSigner, RequestVerifier
from piclusterd.cluster.election import KubeLeaseStore, LeaseElector
from piclusterd.cluster.kube_api import EventRecorder
from piclusterd.core.authority import KEY_BYTES, ClusterKeys, render_key
from piclusterd.core.node_records import ShedRecord, render_poweroff_request, render_poweron_request, rfc3339
from piclusterd.sim.fake_api_server import DAEMON_TOKEN, FakeKubeServer

__all__ = ["Leadership"]


class Leadership:
    """``leader`` holds the Lease on ``server`` (call :meth:`renew` as time passes), with a fresh cluster key."""

    def __init__(self, server: FakeKubeServer, leader: str = "pi1") -> None:
        self.server = server
        self.clock = clock = server.clock
        self.keys = ClusterKeys(secrets.token_bytes(KEY_BYTES))
        self._client = server.api_client(retries=False, token=DAEMON_TOKEN)
        self._clients = [self._client]
        self.elector = LeaseElector.on_kubernetes(self._client, clock, leader)
        self.signer = RequestSigner(self.keys, self.elector)
        self.renew()

    def write_key_file(self, path: str) -> None:
        """The cluster key as ``piclusterctl keygen`` writes it (mode 0600), for a node's configuration."""
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, render_key(self.keys.current).encode("ascii"))
        finally:
            os.close(descriptor)

    def renew(self) -> None:
        attempt = self.elector.try_acquire_or_renew()
        if not attempt.leader:
            raise AssertionError(f"{self.elector.identity} could not take the Lease: {attempt.error}")

    def poweroff(self, node: str, request_id: str) -> str:
        """A signed ``poweroff-request`` annotation for ``node``, written now."""
        return render_poweroff_request(self.signer.poweroff(node, request_id, rfc3339(self.clock.wall())))

    def poweron(self, via: str, request_id: str, target: str) -> str:
        """A signed ``poweron-request`` annotation on ``via`` for ``target``, written now."""
        return render_poweron_request(self.signer.poweron(via, request_id, target, rfc3339(self.clock.wall())))

    def shed_record(self, node: str, record: ShedRecord) -> str:
        """``record`` as the ``picluster.io/shed`` annotation of ``node``, signed by this leader in its term."""
        return self.signer.shed_record(node, record)

    def verifier(self, node: str, log: Any, *, events: bool = True) -> RequestVerifier:
        """What ``node``'s agent checks requests with: this key, the Lease read fresh, Events on ``node``."""
        client = self.server.api_client(retries=False, token=DAEMON_TOKEN)
        self._clients.append(client)
        recorder = EventRecorder(client, reporter=node, wall=self.clock.wall) if events else None
        return RequestVerifier(self.keys, KubeLeaseStore(client), node, log=log, events=recorder)

    def close(self) -> None:
        for client in self._clients:
            client.close()  # type: ignore[no-untyped-call]
