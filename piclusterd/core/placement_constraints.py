"""Which node may host which pod beyond CPU, memory and pod slots, and which pod may be given up. Pure.

The default scheduler's hard constraints on a pod that must move (``pkg/scheduler/framework/plugins``):

- **volume pins** (``VolumeBinding``): a bound PersistentVolume with a required node affinity can only be
  mounted where that affinity matches; k3s's ``local-path`` volumes match one node only
  (:func:`volumes_allow`, :func:`stuck_volume`);
- **required pod affinity and anti-affinity** (``InterPodAffinity``), both ways: the pod's own terms, and
  the anti-affinity terms of the pods already in the node's topology domain;
- **topology spread** with ``whenUnsatisfiable: DoNotSchedule`` (``PodTopologySpread``): counted over the
  nodes that pass the pod's nodeSelector and required node affinity (``nodeAffinityPolicy: Honor``, taints
  ignored: ``nodeTaintsPolicy: Ignore``, both the defaults); a node without the topology label is refused;
- **host ports** (``NodePorts``): one pod per node per port and protocol (any host IP counts, which is
  stricter than the scheduler only for pods binding distinct addresses);
- the node's pod limit is the packer's own pod-slot count (``status.allocatable.pods``).

:class:`PodsInPlace` answers the constraints between pods (they depend on where the other pods are now,
so the packer tells it every move and can take moves back); the static ones are in
:func:`~piclusterd.core.pod_packing.can_run_on`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from piclusterd.core.cluster_view import ClusterView, Node, Pod, PodAffinityTerm, VolumePin, topology_value

__all__ = ["PodsInPlace", "may_give_up", "stuck_volume", "volumes_allow"]


def may_give_up(pod: Pod, *, priority_threshold: int, allow_pending_noncritical: bool) -> bool:
    """Whether the plan may leave ``pod`` Pending instead of finding it a home: the one answer the packer and
    the ``pinned_volume`` rule ask. Today: a non-critical pod, where the policy allows giving those up."""
    return allow_pending_noncritical and not pod.is_critical(priority_threshold)


def volumes_allow(pod: Pod, node: Node) -> bool:
    """Every bound volume of ``pod`` can be mounted on ``node`` (its PV's required node affinity)."""
    return all(pin.allows(node) for pin in pod.volume_pins)


def stuck_volume(pod: Pod, view: ClusterView) -> VolumePin | None:
    """The first of the pod's volumes that no node but its own can mount (a ``local-path`` volume): the pod
    cannot move at all, its replacement would stay Pending ("volume node affinity conflict")."""
    if not pod.volume_pins:
        return None  # most pods: no list of the other nodes (asked for every pod of every node a plan tries)
    others = [node for node in view.nodes if node.name != pod.node]
    for pin in pod.volume_pins:
        if not any(pin.allows(node) for node in others):
            return pin
    return None


def _binds_others(pod: Pod) -> bool:
    return bool(pod.pod_affinity or pod.pod_anti_affinity or pod.topology_spread or pod.host_ports)


@dataclass(slots=True)
class _Step:
    pod: Pod
    before: str | None
    after: str | None


class PodsInPlace:
    """Where each pod is as the packer moves them, to answer :meth:`allows` for the constraints between pods.

    Built only for a cluster where some pod has pod (anti-)affinity, a DoNotSchedule spread constraint or a
    host port (:meth:`needed`): on others every answer is yes and the packer skips it. Nodes taken out
    (:meth:`leave`) count no pods. :meth:`mark` and :meth:`undo` take moves back.
    """

    @staticmethod
    def needed(view: ClusterView) -> bool:
        """Whether any pod's placement can depend on where other pods are."""
        return any(_binds_others(pod) for pod in view.pods)

    def __init__(self, view: ClusterView) -> None:
        self._nodes: Mapping[str, Node] = {node.name: node for node in view.nodes}
        self._on: dict[str, dict[str, Pod]] = {node.name: {} for node in view.nodes}
        self._where: dict[str, str | None] = {}
        self._gone: set[str] = set()
        self._journal: list[_Step | str] = []
        self._repelling: dict[str, Pod] = {}  # pods with anti-affinity terms, which bind the pods coming in
        for pod in view.pods:
            if pod.holds_resources and pod.node in self._on:
                self._on[pod.node][pod.key] = pod
                self._where[pod.key] = pod.node
                if pod.pod_anti_affinity:
                    self._repelling[pod.key] = pod

    def mark(self) -> int:
        """A point to :meth:`undo` back to."""
        return len(self._journal)

    def undo(self, mark: int) -> None:
        """Take back every move and :meth:`leave` since ``mark``."""
        while len(self._journal) > mark:
            step = self._journal.pop()
            if isinstance(step, str):
                self._gone.discard(step)
            else:
                self._put(step.pod, step.after, step.before)

    def leave(self, node: str) -> None:
        """``node`` is taken out: pods still on it count nowhere from now on."""
        if node not in self._gone:
            self._gone.add(node)
            self._journal.append(node)

    def move(self, pod: Pod, to_node: str | None) -> None:
        """``pod`` is now on ``to_node`` (``None``: Pending, counted nowhere)."""
        before = self._where.get(pod.key, pod.node)
        if before != to_node:
            self._put(pod, before, to_node)
            self._journal.append(_Step(pod, before, to_node))

    def _put(self, pod: Pod, before: str | None, after: str | None) -> None:
        if before is not None:
            self._on[before].pop(pod.key, None)
        if after is not None:
            self._on[after][pod.key] = pod
        self._where[pod.key] = after
        if pod.pod_anti_affinity:
            self._repelling[pod.key] = pod

    def _others(self, pod: Pod, key: str, value: str) -> list[tuple[Node, Pod]]:
        """Pods other than ``pod`` on live nodes whose ``key`` label is ``value``."""
        found: list[tuple[Node, Pod]] = []
        for name, pods in self._on.items():
            node = self._nodes[name]
            if name in self._gone or topology_value(node, key) != value:
                continue
            found.extend((node, other) for other in pods.values() if other.key != pod.key)
        return found

    def allows(self, pod: Pod, node: Node) -> bool:
        """Whether ``pod`` may run on ``node`` given where the other pods are: host ports, required pod
        affinity and anti-affinity (both ways), DoNotSchedule topology spread."""
        here = [other for other in self._on[node.name].values() if other.key != pod.key]
        if pod.host_ports and any(set(pod.host_ports) & set(other.host_ports) for other in here):
            return False
        return (
            self._anti_affinity_allows(pod, node)
            and self._affinity_allows(pod, node)
            and self._spread_allows(pod, node)
        )

    def _anti_affinity_allows(self, pod: Pod, node: Node) -> bool:
        for term in pod.pod_anti_affinity:
            value = topology_value(node, term.topology_key)
            if value is not None and any(
                term.selects(pod.namespace, o) for _, o in self._others(pod, term.topology_key, value)
            ):
                return False
        # The pods already there keep others away too (the scheduler checks existing pods' anti-affinity).
        for other in self._repelling.values():
            where = self._where.get(other.key)
            if where is None or where in self._gone or other.key == pod.key:
                continue
            for term in other.pod_anti_affinity:
                value = topology_value(node, term.topology_key)
                if (
                    value is not None
                    and value == topology_value(self._nodes[where], term.topology_key)
                    and term.selects(other.namespace, pod)
                ):
                    return False
        return True

    def _affinity_allows(self, pod: Pod, node: Node) -> bool:
        if not pod.pod_affinity:
            return True
        if all(self._has_partner(pod, node, term) for term in pod.pod_affinity):
            return True
        # The first pod of a group: no pod anywhere matches any term, and the pod matches its own terms
        # (InterPodAffinity's exception, so that a self-affine Deployment can start at all).
        return all(term.selects(pod.namespace, pod) for term in pod.pod_affinity) and not any(
            term.selects(pod.namespace, other)
            for term in pod.pod_affinity
            for name, pods in self._on.items()
            if name not in self._gone
            for other in pods.values()
            if other.key != pod.key
        )

    def _has_partner(self, pod: Pod, node: Node, term: PodAffinityTerm) -> bool:
        value = topology_value(node, term.topology_key)
        return value is not None and any(
            term.selects(pod.namespace, other) for _, other in self._others(pod, term.topology_key, value)
        )

    def _spread_allows(self, pod: Pod, node: Node) -> bool:
        for spread in pod.topology_spread:
            value = topology_value(node, spread.topology_key)
            if value is None:
                return False
            counts: dict[str, int] = {}
            for name, pods in self._on.items():
                other_node = self._nodes[name]
                domain = topology_value(other_node, spread.topology_key)
                if name in self._gone or domain is None or not _honours_node_affinity(pod, other_node):
                    continue
                counts[domain] = counts.get(domain, 0) + sum(
                    1
                    for other in pods.values()
                    if other.key != pod.key
                    and other.namespace == pod.namespace
                    and spread.selector is not None
                    and spread.selector.matches(other.labels)
                )
            counts.setdefault(value, 0)
            itself = int(spread.selector is not None and spread.selector.matches(pod.labels))
            if counts[value] + itself - min(counts.values()) > spread.max_skew:
                return False
        return True


def _honours_node_affinity(pod: Pod, node: Node) -> bool:
    """nodeAffinityPolicy Honor: only nodes the pod's nodeSelector and required node affinity allow count."""
    if any(node.labels.get(key) != value for key, value in pod.node_selector.items()):
        return False
    terms = pod.required_node_affinity
    return terms is None or any(term.matches(node) for term in terms)
