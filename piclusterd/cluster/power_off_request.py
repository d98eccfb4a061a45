"""Power off a drained peer: ask its own daemon first, fall back to SSH, believe it only when it goes NotReady.

Order of steps, each recorded on the Node before it is taken (so a new leader resumes, never repeats):

1. the shed record moves to ``poweroff_requested`` with a request id, and ``picluster.io/poweroff-request``
   carries that id: the node's own daemon (``cluster/agent.py``) acknowledges it and runs its shutdown command;
2. no acknowledgement within ``ack_timeout_s`` and the node still Ready: SSH with the dedicated key and
   strict host keys (``power_off_ssh.py``), sending the same request id (the target runs its shutdown at most
   once per id);
3. the node is marked ``powered_off`` only after it is seen NotReady.

A node that never goes NotReady stays cordoned and recorded as ``poweroff_requested``, and says so loudly:
its pods are already elsewhere, and the next tick looks again.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from piclusterd.cluster.authority import RequestSigner
from piclusterd.cluster.kube_api import EventRecorder, KubeClusterApi
from piclusterd.cluster.power_off_ssh import SshOutcome, SshPowerOff, ssh_address
from piclusterd.core.node_records import (
    ACK_ANNOTATION,
    REQUEST_ANNOTATION,
    SHED_ANNOTATION,
    ShedPhase,
    ShedRecord,
    render_poweroff_request,
    rfc3339,
)
from piclusterd.core.ports import Clock
from piclusterd.node.audit import AuditLogger

__all__ = ["PeerPowerOff", "PowerOffOutcome", "PowerOffResult", "node_address", "node_is_ready"]


class PowerOffOutcome(enum.Enum):
    POWERED_OFF = "powered_off"
    NOT_CONFIRMED = "not_confirmed"  # asked (and SSH tried) but still Ready: left cordoned, reported
    REFUSED = "refused"  # SSH host key mismatch or auth failure: alert, never retried blindly


@dataclass(frozen=True, slots=True)
class PowerOffResult:
    node: str
    outcome: PowerOffOutcome
    request_id: str
    via: str  # "agent", "ssh" or "none"
    detail: str = ""


def node_is_ready(node: dict[str, Any]) -> bool:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def node_address(node: dict[str, Any]) -> str | None:
    """The Node's ``InternalIP`` as written in its status (unchecked: see :func:`ssh_address`), or None."""
    addresses = (node.get("status") or {}).get("addresses") or []
    for address in addresses if isinstance(addresses, list) else []:
        if isinstance(address, dict) and address.get("type") == "InternalIP" and address.get("address"):
            return str(address["address"])
    return None


class PeerPowerOff:
    def __init__(
        self,
        api: KubeClusterApi,
        clock: Clock,
        *,
        leader: str,
        signer: RequestSigner,
        sleep: Callable[[float], None],
        fence: Callable[[], None],
        tick: Callable[[], None] = lambda: None,
        ssh: SshPowerOff | None = None,
        ssh_port: int = 22,
        ack_timeout_s: float = 30.0,
        off_timeout_s: float = 180.0,
        poll_s: float = 2.0,
        log: AuditLogger,
        events: EventRecorder | None = None,
    ) -> None:
        self._api = api
        self._clock = clock
        self._leader = leader
        self._signer = signer
        self._sleep = sleep
        self._fence = fence
        self._tick = tick
        self._ssh = ssh
        self._ssh_port = ssh_port
        self._ack_timeout_s = ack_timeout_s
        self._off_timeout_s = off_timeout_s
        self._poll_s = poll_s
        self._events = events
        self._log = log
        self._bad_address_reported: dict[str, str] = {}

    def _event(self, node: str, reason: str, message: str, *, warning: bool = False) -> None:
        if self._events is not None:
            self._events.emit(node, reason, message, warning=warning)

    def _wait(self, node: str, until: float, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        while True:
            current = self._api.get_node(node)
            if done(current) or self._clock.monotonic() >= until:
                return current
            self._tick()
            self._sleep(self._poll_s)

    def signed_request(self, node: str, request_id: str, at: str) -> str:
        """The ``poweroff-request`` annotation for ``node``, signed in our term (NotLeader if we do not lead)."""
        return render_poweroff_request(self._signer.poweroff(node, request_id, at))

    @property
    def signer(self) -> RequestSigner:
        """What signs our requests and records (the cluster key, our Lease term)."""
        return self._signer

    def signed_shed_record(self, node: str, record: ShedRecord) -> str:
        """The ``shed`` annotation for ``node``, signed in our term (NotLeader if we do not lead)."""
        return self._signer.shed_record(node, record)

    def power_off(self, node: str, record: ShedRecord) -> PowerOffResult:
        """Power off a node whose shed record says drained (or resume one already requested)."""
        now_text = rfc3339(self._clock.wall())
        if record.phase is ShedPhase.POWEROFF_REQUESTED and record.request_id:
            # Resuming an earlier leader's request (or our own): the same id. Still up and not acknowledged: signed
            # again by us, in our term, now, since the node obeys only the leader of the moment and a fresh request.
            request_id = record.request_id
            current = self._api.get_node(node)
            acked = (current["metadata"].get("annotations") or {}).get(ACK_ANNOTATION) == request_id
            if node_is_ready(current) and not acked:
                self._fence()
                signed = self._signer.poweroff(node, request_id, now_text)
                self._api.patch_node(
                    node, {"metadata": {"annotations": {REQUEST_ANNOTATION: render_poweroff_request(signed)}}}
                )
        else:
            if record.phase is not ShedPhase.DRAINED:
                raise ValueError(f"{node} is {record.phase.value}, not drained: refusing to power it off")
            request_id = uuid.uuid4().hex[:12]
            requested = record.with_phase(ShedPhase.POWEROFF_REQUESTED, now_text, request_id)
            self._fence()
            signed = self._signer.poweroff(node, request_id, now_text)
            self._api.patch_node(
                node,
                {
                    "metadata": {
                        "annotations": {
                            SHED_ANNOTATION: self._signer.shed_record(node, requested),
                            REQUEST_ANNOTATION: render_poweroff_request(signed),
                        }
                    }
                },
            )
            record = requested
            self._log.warning("node.poweroff_requested", target=node, request_id=request_id, reason=record.reason)
            self._event(
                node, "PowerOffRequested", f"piclusterd ({self._leader}) asked {node} to power off: {record.reason}"
            )

        started = self._clock.monotonic()
        current = self._wait(
            node,
            started + self._ack_timeout_s,
            lambda n: (
                not node_is_ready(n) or (n["metadata"].get("annotations") or {}).get(ACK_ANNOTATION) == request_id
            ),
        )
        via = "agent"
        acked = (current["metadata"].get("annotations") or {}).get(ACK_ANNOTATION) == request_id
        if node_is_ready(current) and not acked:
            via = "ssh"
            outcome = self._try_ssh(node, current, request_id)
            if outcome is not None:
                return outcome
        current = self._wait(node, self._clock.monotonic() + self._off_timeout_s, lambda n: not node_is_ready(n))
        if node_is_ready(current):
            self._log.error("node.poweroff_unconfirmed", target=node, request_id=request_id, via=via)
            self._event(
                node, "PowerOffUnconfirmed", f"{node} was asked to power off ({via}) but is still Ready", warning=True
            )
            return PowerOffResult(node, PowerOffOutcome.NOT_CONFIRMED, request_id, via)
        off = record.with_phase(ShedPhase.POWERED_OFF, rfc3339(self._clock.wall()))
        annotations: dict[str, str | None] = {SHED_ANNOTATION: self._signer.shed_record(node, off)}
        if not acked:
            annotations[REQUEST_ANNOTATION] = None  # never acknowledged: its agent must not obey it once back
        self._api.patch_node(node, {"metadata": {"annotations": annotations}})
        self._log.warning("node.powered_off", target=node, request_id=request_id, via=via)
        self._event(node, "PowerShed", f"{node} powered off to save battery: {record.reason}")
        return PowerOffResult(node, PowerOffOutcome.POWERED_OFF, request_id, via)

    def _try_ssh(self, node: str, current: dict[str, Any], request_id: str) -> PowerOffResult | None:
        """The fallback; returns a final result only when it must stop (refused), else None to keep waiting."""
        written = node_address(current)
        if self._ssh is None or written is None:
            self._log.warning(
                "node.poweroff_no_ack",
                target=node,
                request_id=request_id,
                ssh="not configured" if written else "no InternalIP",
            )
            return None
        address = ssh_address(written)
        if address is None:
            self._refuse_address(node, written)
            return None
        self._fence()
        result = self._ssh.power_off(node, address, self._ssh_port, request_id)
        self._log.warning(
            "node.poweroff_ssh", target=node, address=address, outcome=result.outcome.value, detail=result.detail
        )
        if result.outcome is SshOutcome.ACCEPTED:
            # The target runs its shutdown once per id; the request stays only for its own agent, which would
            # obey it again after the node is powered back on (it never acknowledged it): clear it now.
            self._fence()
            self._api.patch_node(node, {"metadata": {"annotations": {REQUEST_ANNOTATION: None}}})
        if result.outcome in (SshOutcome.HOST_KEY_MISMATCH, SshOutcome.AUTH_FAILED):
            self._event(
                node,
                "PowerOffRefused",
                f"SSH to {address} refused ({result.outcome.value}): {result.detail}. Check the host key; "
                "piclusterd never skips verification.",
                warning=True,
            )
            return PowerOffResult(node, PowerOffOutcome.REFUSED, request_id, "ssh", result.detail)
        return None

    def _refuse_address(self, node: str, written: str) -> None:
        """An InternalIP that is not an IP address literal: no SSH to it, said once per value."""
        if self._bad_address_reported.get(node) == written:
            return
        self._bad_address_reported[node] = written
        self._log.error("node.poweroff_ssh_refused", target=node, address=written[:200], why="not an IP address")
        self._event(
            node,
            "PowerOffRefused",
            f"the InternalIP of {node} ({written[:80]!r}) is not an IP address: no SSH power-off to it",
            warning=True,
        )
