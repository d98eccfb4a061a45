"""The leader's power-on side: which :class:`~piclusterd.cluster.power_on_backends.NodePower` backend each node
has, built from ``[node_power.<node>]``, and the ``gpio-relay`` backend for a relay on another node.

**A relay on another node** (``method = "gpio-relay"``, ``via = "pi1"``). The leader can run on any node and
cannot pulse a GPIO line of another one. So :class:`RelayViaPeer` writes a typed, signed request
(``picluster.io/poweron-request``: id, target, leader, time, term, signature) on the ``via`` node, and that
node's own daemon (:class:`~piclusterd.cluster.agent.NodeAgent`) checks it, removes it and pulses the line. The
same design as the power-off request, with two safety choices: the ``via`` node pulses only a line *its own
configuration* gives for the target (an annotation can name a node, never a pin), and it removes the request
*before* pulsing, so one request presses the button at most once, even if that daemon dies mid-pulse and restarts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from types import MappingProxyType

from piclusterd.cluster.authority import RequestSigner
from piclusterd.cluster.kube_api import KubeClusterApi
from piclusterd.cluster.power_on_backends import (
    ManualPower,
    NodePower,
    PowerOutcome,
    PowerResult,
    RelayLine,
    RtcWakePower,
    WakeOnLan,
)
from piclusterd.config.model import (
    GpioRelayMethod,
    ManualMethod,
    NodePowerMethod,
    NutOutletMethod,
    RtcWakeMethod,
    WolMethod,
)
from piclusterd.config.settings import PowerOnSettings
from piclusterd.core.errors import ClusterError, ConfigError, NotLeader, PowerControlFailed, PowerControlUnsupported
from piclusterd.core.node_records import POWER_ON_REQUEST_ANNOTATION, render_poweron_request, rfc3339
from piclusterd.drivers.gpio_power import Level

__all__ = ["PowerOnBackends", "RelayViaPeer", "build_power_on", "relay_lines"]


class RelayViaPeer:
    """``gpio-relay`` with ``via``: ask the node that drives ``target``'s relay to pulse it (see module doc)."""

    name = "gpio-relay"

    def __init__(
        self,
        api: KubeClusterApi,
        via: Mapping[str, str],
        *,
        leader: str,
        wall: Callable[[], float],
        signer: RequestSigner,
    ) -> None:
        self._api = api
        self._signer = signer
        self._via = MappingProxyType(dict(via))
        self._leader = leader
        self._wall = wall

    def power_on(self, node: str) -> PowerResult:
        via = self._via.get(node)
        if via is None:
            raise PowerControlUnsupported(self.name, node, "power on", "no relay configured for it")
        try:
            conditions = (self._api.get_node(via).get("status") or {}).get("conditions") or []
        except ClusterError as error:
            raise PowerControlFailed(f"gpio-relay: cannot read {via}, which drives {node}'s relay: {error}") from error
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            raise PowerControlFailed(f"gpio-relay: {via}, which drives {node}'s relay, is not Ready")
        try:
            request = self._signer.poweron(via, uuid.uuid4().hex[:12], node, rfc3339(self._wall()))
        except NotLeader as error:
            raise PowerControlFailed(f"gpio-relay: not asking {via} to pulse {node}'s relay: {error}") from error
        patch = {"metadata": {"annotations": {POWER_ON_REQUEST_ANNOTATION: render_poweron_request(request)}}}
        try:
            self._api.patch_node(via, patch)
        except ClusterError as error:
            raise PowerControlFailed(f"gpio-relay: cannot ask {via} to pulse {node}'s relay: {error}") from error
        return PowerResult(
            node, PowerOutcome.SENT, f"asked {via} to pulse {node}'s power relay (request {request.request_id})"
        )

    def power_off(self, node: str) -> PowerResult:
        raise PowerControlUnsupported(
            self.name, node, "power off", "a relay pulse is not a clean shutdown; use the power-off request"
        )

    def is_powered(self, node: str) -> bool | None:
        return None


class PowerOnBackends:
    """Each node's backend and its method's name; ``manual`` for nodes not configured."""

    def __init__(self, backends: Mapping[str, NodePower], default: NodePower | None = None) -> None:
        self._backends = MappingProxyType(dict(backends))
        self._default: NodePower = default if default is not None else ManualPower()

    def backend_for(self, node: str) -> NodePower:
        return self._backends.get(node, self._default)

    def method_for(self, node: str) -> str:
        return self.backend_for(node).name


def relay_lines(relays: Mapping[str, GpioRelayMethod]) -> dict[str, RelayLine]:
    """The relay lines a node drives: target -> line, from the ``gpio-relay`` tables whose ``via`` is that node
    (:attr:`~piclusterd.config.settings.AgentSettings.relays`)."""
    return {
        target: RelayLine(
            method.pin,
            Level.HIGH if method.active == "high" else Level.LOW,
            max(1, round(method.pulse_s * 1000)),
        )
        for target, method in relays.items()
    }


def _backend(
    file: str,
    node: str,
    method: NodePowerMethod,
    api: KubeClusterApi,
    identity: str,
    wall: Callable[[], float],
    signer: RequestSigner,
) -> NodePower:
    if isinstance(method, ManualMethod):
        return ManualPower({node: method.where} if method.where else {})
    if isinstance(method, WolMethod):
        return WakeOnLan({node: method.mac}, broadcast=method.broadcast, port=method.port)
    if isinstance(method, RtcWakeMethod):
        return RtcWakePower(round(method.recheck_s))
    if isinstance(method, GpioRelayMethod):
        return RelayViaPeer(api, {node: method.via}, leader=identity, wall=wall, signer=signer)
    if isinstance(method, NutOutletMethod):
        try:
            from piclusterd.cluster.power_on_backends import NutOutletPower  # type: ignore[attr-defined,unused-ignore]
        except ImportError:
            raise ConfigError(
                file, f"node_power.{node}.method", '"nut-outlet" is not available in this piclusterd', "another method"
            ) from None
        backend: NodePower = NutOutletPower(
            host=method.host,
            port=method.port,
            ups=method.ups,
            outlets={node: method.outlet},
            username=method.username,
            password=None if method.password is None else method.password.value,
            timeout_s=method.timeout_s,
        )
        return backend
    raise AssertionError(f"unhandled power-on method {method!r}")


def build_power_on(
    settings: PowerOnSettings,
    api: KubeClusterApi,
    *,
    identity: str,
    wall: Callable[[], float],
    signer: RequestSigner,
) -> PowerOnBackends:
    """One backend per configured node (``[node_power.<node>]``), ``manual`` for the rest; ``signer`` signs the
    relay requests."""
    return PowerOnBackends(
        {
            node: _backend(settings.file, node, method, api, identity, wall, signer)
            for node, method in settings.methods.items()
        }
    )
