"""What every node's daemon does for the cluster: obey (once) the leader's requests for this node.

**Power-off.** The leader writes ``picluster.io/poweroff-request`` on this node's Node object, signed
(:mod:`piclusterd.cluster.authority`): a request that fails a check (signature, replay, leader, term, freshness,
situation: a power-off only while this node is on battery or a full shutdown is recorded) is refused, said once,
and never obeyed. Otherwise the agent acknowledges it with ``picluster.io/poweroff-ack`` (the request id)
*before* running the local shutdown, so the leader knows not to fall back to SSH, and so that after the node
boots again the old request is not obeyed twice. A node whose power-on method is ``rtc-wake`` arms its RTC
wake alarm first, ``recheck_s`` ahead.

**Relay pulse** (``gpio-relay`` with ``via`` naming this node). The leader writes
``picluster.io/poweron-request`` (a target node) here, signed like a power-off; the agent checks it, removes
it, then pulses the line *its own configuration* gives for that target: removed first, so it is obeyed at most
once; a pin never comes from the annotation.

**Check-in** (``rtc-wake``). Once per daemon life, when the power state is known (or ``check_in_wait_s`` has
passed without it), the node reads the leader's answer, its shed record, which counts only if it verifies
(signed by a leader of its term: :meth:`~piclusterd.cluster.authority.RequestVerifier.check_shed_record`), and
decides with :func:`decide_check_in` whether it woke too early: still shed
(record ``powered_off``) -> re-arm the alarm and halt again, even if mains is back, since the leader brings
nodes back only once mains has been stable for ``restore_after`` and the battery charged (its record then says
``restoring``); otherwise stay up, and the leader rejoins it.
"""

from __future__ import annotations

from typing import Any, Protocol

from piclusterd.cluster.authority import RequestVerifier
from piclusterd.cluster.kube_api import KubeClusterApi
from piclusterd.cluster.power_off_request import node_is_ready
from piclusterd.cluster.power_on_backends import CheckIn, CheckInDecision, NodePower, RtcWakeAlarm, check_in
from piclusterd.core.errors import ClusterError, PowerControlFailed, PowerControlUnsupported
from piclusterd.core.node_records import (
    ACK_ANNOTATION,
    POWER_ON_REQUEST_ANNOTATION,
    REQUEST_ANNOTATION,
    SHED_ANNOTATION,
    InvalidRecord,
    ShedPhase,
    parse_poweroff_request,
    parse_poweron_request,
    parse_shed_record,
)
from piclusterd.core.outage_record import OUTAGE_CONFIGMAP, OUTAGE_KEY, parse_outage_record
from piclusterd.core.power_state import BATTERY_STATES, PowerState

__all__ = ["LocalShutdownTrigger", "NodeAgent", "decide_check_in", "poweroff_situation"]


def decide_check_in(power: PowerState, phase: ShedPhase | None, readable: bool, recheck_s: int) -> CheckInDecision:
    """What an rtc-wake node does when it wakes. Pure: ordered early returns, first match wins.

    ``phase`` is its shed record's phase (None: no record); ``readable`` is False when the record could not be
    read (the API down, a record that cannot be parsed).
    """
    # 1. The leader asked it back (restore decided: mains stable, battery charged): rejoin.
    if readable and phase is ShedPhase.RESTORING:
        return CheckInDecision(CheckIn.REJOIN, "the leader asked it back")
    # 2. Still shed and mains back: the leader has not asked yet (restore_after, charge): wait for it, halted;
    #    rejoining now would bypass the restore policy (a lull between flickers is "mains back" too).
    shed = phase in (ShedPhase.POWEROFF_REQUESTED, ShedPhase.POWERED_OFF)
    if readable and shed and power is PowerState.ONLINE:
        return CheckInDecision(
            CheckIn.HALT_AND_REARM,
            "mains is back but the leader has not asked it back yet: halt and check in again",
            recheck_s,
        )
    # 3. Otherwise the general rule: mains out (or unknown) and shed or cannot tell -> halt; else rejoin.
    still_shed = shed if readable else None
    return check_in(power, still_shed, recheck_s)


def poweroff_situation(
    api: KubeClusterApi, outage_namespace: str, power: PowerState | None, verifier: RequestVerifier
) -> str | None:
    """None when a power-off fits what this node sees: it is on battery, or a full shutdown is recorded (the
    outage record in ``outage_namespace``, signed by a leader: ``verifier``); else why not. ``power`` None: this
    node's daemon is not running (``remote-poweroff`` over SSH, the fallback for exactly that), so only the
    outage record can say no."""
    if power is None or power in BATTERY_STATES:
        return None
    try:
        found = api.read_configmap(outage_namespace, OUTAGE_CONFIGMAP)
    except ClusterError as error:
        return f"this node's power is {power.value} and the outage record cannot be read ({error})"
    if found is not None:
        record = parse_outage_record(str((found.get("data") or {}).get(OUTAGE_KEY, "")))
        if (
            not isinstance(record, InvalidRecord)
            and record.full_shutdown is not None
            and verifier.check_outage_record(outage_namespace, record) is None
        ):
            return None
    return f"this node's power is {power.value}, not on battery, and no full shutdown is recorded"


class LocalShutdownTrigger(Protocol):
    def request_local_shutdown(self, reason: str) -> bool: ...


class NodeAgent:
    def __init__(
        self,
        api: KubeClusterApi,
        node: str,
        shutdown: LocalShutdownTrigger,
        log: Any,
        *,
        verifier: RequestVerifier,
        outage_namespace: str = "piclusterd",
        relay: NodePower | None = None,
        wake_alarm: RtcWakeAlarm | None = None,
        recheck_s: int = 900,
        check_in_wait_s: float = 15.0,
    ) -> None:
        """``relay``: the relay lines this node drives for others (``gpio-relay``, ``via`` = this node).
        ``wake_alarm``: this node's RTC alarm, when its own power-on method is ``rtc-wake``.
        ``verifier`` checks every request before it is obeyed; ``outage_namespace`` holds the outage record."""
        self._api = api
        self._verifier = verifier
        self._outage_namespace = outage_namespace
        self._node = node
        self._shutdown = shutdown
        self._log = log
        self._relay = relay
        self._wake_alarm = wake_alarm
        self._recheck_s = recheck_s
        self._check_in_wait_s = check_in_wait_s
        self._checked_in = wake_alarm is None
        self._reported_invalid: str | None = None
        self._reported_invalid_poweron: str | None = None

    @property
    def verifier(self) -> RequestVerifier:
        """What checks every request (and record) this node's daemon reads."""
        return self._verifier

    def tick(self, power: PowerState) -> str | None:
        """Check this node's requests once; returns the id of a power-off request accepted now, else None.

        ``power`` is this node's own power state: a power-off fits only on battery or in a full shutdown."""
        annotations = (self._api.get_node(self._node).get("metadata") or {}).get("annotations") or {}
        self._obey_power_on_request(annotations.get(POWER_ON_REQUEST_ANNOTATION))
        raw = annotations.get(REQUEST_ANNOTATION)
        if raw is None:
            return None
        request = parse_poweroff_request(raw)
        if isinstance(request, InvalidRecord):
            if raw != self._reported_invalid:  # say it once per distinct bad value, not once per poll
                self._reported_invalid = raw
                self._log.error("node.poweroff_request_invalid", value=raw[:200], why=request.reason)
            return None
        if annotations.get(ACK_ANNOTATION) == request.request_id:
            self._verifier.remember(request.request_id)  # acknowledged (by an earlier life too): never again
            return None
        if self._verifier.check_poweroff(request, self._poweroff_situation(power)) is not None:
            return None
        self._verifier.remember(request.request_id)
        self._api.patch_node(self._node, {"metadata": {"annotations": {ACK_ANNOTATION: request.request_id}}})
        self._log.warning("shutdown.remote_requested", request_id=request.request_id, leader=request.leader)
        self._arm_wake_alarm()
        self._shutdown.request_local_shutdown(f"power-off requested by {request.leader} ({request.request_id})")
        return request.request_id

    def _poweroff_situation(self, power: PowerState) -> str | None:
        return poweroff_situation(self._api, self._outage_namespace, power, self._verifier)

    def _arm_wake_alarm(self) -> bool:
        """rtc-wake: wake in recheck_s. A failure is said loudly; the halt goes on (the drain is done, the
        battery needs it), and the node then needs a person to come back."""
        if self._wake_alarm is None:
            return False
        try:
            self._wake_alarm.arm_in(self._recheck_s)
        except (PowerControlFailed, PowerControlUnsupported) as error:
            self._log.error("node.wakealarm_failed", path=str(self._wake_alarm.path), error=str(error))
            return False
        self._log.info("node.wakealarm_armed", path=str(self._wake_alarm.path), wake_in_s=self._recheck_s)
        return True

    def _obey_power_on_request(self, raw: str | None) -> None:
        if raw is None:
            return
        request = parse_poweron_request(raw)
        if isinstance(request, InvalidRecord):
            if raw != self._reported_invalid_poweron:
                self._reported_invalid_poweron = raw
                self._log.error("node.poweron_request_invalid", value=raw[:200], why=request.reason)
            return
        if self._verifier.check_poweron(request) is not None:
            return  # refused and said once; left in place for a person to see (and the leader to replace)
        self._verifier.remember(request.request_id)
        # Removed before the pulse: one request presses the button at most once, whatever happens next.
        self._api.patch_node(self._node, {"metadata": {"annotations": {POWER_ON_REQUEST_ANNOTATION: None}}})
        if self._relay is None:
            self._log.error(
                "node.relay_failed",
                target=request.target,
                request_id=request.request_id,
                error=f"no [node_power] gpio-relay table has via = {self._node!r}: this node drives no relay",
            )
            return
        # A pulse on a node that is up switches it off, uncleanly: the request may be old (this daemon was down),
        # or someone pressed the button meanwhile. Pulse only a target the API server shows not Ready.
        try:
            target_ready = node_is_ready(self._api.get_node(request.target))
        except ClusterError as error:
            self._log.error("node.relay_failed", target=request.target, request_id=request.request_id, error=str(error))
            return
        if target_ready:
            self._log.error(
                "node.relay_failed",
                target=request.target,
                request_id=request.request_id,
                error=f"{request.target} is Ready: a pulse would switch it off; not pulsed",
            )
            return
        try:
            result = self._relay.power_on(request.target)
        except Exception as error:  # whatever the GPIO library raised: said, and the daemon goes on
            self._log.error("node.relay_failed", target=request.target, request_id=request.request_id, error=str(error))
            return
        self._log.info(
            "node.relay_pulsed",
            target=request.target,
            request_id=request.request_id,
            leader=request.leader,
            detail=result.detail,
        )

    def check_in(self, power: PowerState, waited_s: float) -> CheckInDecision | None:
        """rtc-wake, once per daemon life: halt again (re-armed) if woken while still meant to be shed."""
        if self._checked_in or (power is PowerState.UNKNOWN and waited_s < self._check_in_wait_s):
            return None
        self._checked_in = True
        phase: ShedPhase | None = None
        readable = True
        try:
            raw = ((self._api.get_node(self._node).get("metadata") or {}).get("annotations") or {}).get(SHED_ANNOTATION)
        except ClusterError:
            readable = False  # the control plane may be off too: cannot tell
        else:
            record = None if raw is None else parse_shed_record(raw)
            if isinstance(record, InvalidRecord):
                readable = False
            elif record is not None:
                # The answer counts only if a leader signed it: a forged "powered_off" would halt this node at
                # every boot. One that does not verify is said and read as no record (deleting it does as much);
                # a Lease that cannot be read to check it is "cannot tell".
                lease = self._verifier.lease_view()
                if lease is None:
                    readable = False
                elif self._verifier.check_shed_record(self._node, record, lease) is None:
                    phase = record.phase
        decision = decide_check_in(power, phase, readable, self._recheck_s)
        self._log.info("node.checked_in", action=decision.action.value, why=decision.reason, power=power.value)
        # Without an armed alarm a halted node would never wake: then it stays up (and said why).
        if decision.action is CheckIn.HALT_AND_REARM and self._arm_wake_alarm():
            self._shutdown.request_local_shutdown(f"rtc-wake check-in: {decision.reason}")
        return decision
