"""The cluster as the planner sees it: nodes, pods and PodDisruptionBudgets as frozen values. Pure.

Everything here is parsed once, at the boundary, from the JSON that
``kubectl get nodes,pods,pdb,pv,pvc -A -o json`` prints (or the same objects from the API):
:func:`parse_kubectl_list` turns it into a :class:`ClusterView`; volumes become each pod's node pins.
Resource quantities (``"500m"``, ``"1.5Gi"``, ``"1e3"``) are parsed exactly with :func:`parse_quantity`
and stored as integers: CPU in millicores, memory in bytes, both rounded up as Kubernetes does.

Labels and annotations that piclusterd reads on nodes and pods:

``picluster.io/tier`` (node label, integer)
    Shedding order: lower tiers are shed first. Control-plane nodes always come last whatever their tier.
``picluster.io/critical`` (pod label, ``"true"``)
    Marks a pod critical, besides a priority at or above the policy's threshold.
``picluster.io/cpu-usage`` (pod annotation, a CPU quantity)
    The CPU the pod really uses; the power model counts it instead of the pod's CPU request.
``picluster.io/shed`` (node annotation, written by the leader)
    The shed record, JSON with a ``phase`` (draining, drained, poweroff_requested, powered_off, restoring).
    Only the phase is read here (:class:`ShedState`); a record that cannot be read marks the node as
    not to be touched.
``picluster.io/etcd-member`` (node label, ``"true"``/``"false"``)
    Overrides etcd membership, for clusters whose etcd members carry no ``node-role.kubernetes.io/etcd``
    label (kubeadm with stacked etcd labels only ``control-plane``).

A node's roles (control plane, etcd member) come from every signal k3s leaves on it, by one rule,
:func:`read_roles`: the ``node-role.kubernetes.io/*`` labels, the ``k3s.io/node-args`` annotation (k3s's
command line as a JSON list, ``"server"`` or ``"agent"`` first) and the ``etcd.k3s.cattle.io/node-name``
annotation k3s puts on embedded-etcd members. Where they disagree the safer reading wins (server, etcd
member) and :attr:`Node.role_notes` says so.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from types import MappingProxyType
from typing import Any, TypeVar

from piclusterd.core.errors import ClusterError
from piclusterd.core.node_records import InvalidRecord, ShedPhase, parse_shed_record

__all__ = [
    "ANNOTATION_CPU_USAGE",
    "ANNOTATION_SHED",
    "LABEL_CRITICAL",
    "LABEL_ETCD_MEMBER",
    "LABEL_TIER",
    "ClusterView",
    "LabelSelector",
    "Node",
    "NodeRoles",
    "NodeSelectorTerm",
    "Pdb",
    "Pod",
    "PodAffinityTerm",
    "PodPhase",
    "Requirement",
    "SelectorOperator",
    "ShedState",
    "SnapshotInvalid",
    "Taint",
    "TaintEffect",
    "Toleration",
    "TopologySpread",
    "ValueRefused",
    "VolumePin",
    "parse_cpu_millicores",
    "parse_kubectl_list",
    "parse_memory_bytes",
    "parse_quantity",
    "read_roles",
]

PREFIX = "picluster.io/"
LABEL_TIER = "picluster.io/tier"
LABEL_CRITICAL = "picluster.io/critical"
LABEL_ETCD_MEMBER = "picluster.io/etcd-member"
ANNOTATION_CPU_USAGE = "picluster.io/cpu-usage"
ANNOTATION_SHED = "picluster.io/shed"
ANNOTATION_K3S_NODE_ARGS = "k3s.io/node-args"
ANNOTATION_K3S_ETCD_NODE = "etcd.k3s.cattle.io/node-name"
#: Annotations kept on :class:`Node` besides piclusterd's own: the role signals k3s writes.
_ROLE_ANNOTATIONS = frozenset({ANNOTATION_K3S_NODE_ARGS, ANNOTATION_K3S_ETCD_NODE})
_NODE_ARGS_MAX_CHARS = 65_536
_ROLE_PREFIX = "node-role.kubernetes.io/"
_CONTROL_PLANE_ROLES = frozenset({"control-plane", "master", "etcd"})
_MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
_DEFAULT_MAX_PODS = 110
_T = TypeVar("_T")


class SnapshotInvalid(ClusterError, ValueError):
    """A Kubernetes object (or a quantity in it) could not be understood; ``str()`` says where and why."""


@dataclass(frozen=True, slots=True)
class ValueRefused:
    """One value of one pod that could not be read: the pod keeps its default for it (a ``cpu-usage`` its CPU
    request, a request 0, as for an unset one) and the snapshot goes on. Reported by the cluster side."""

    where: str  # "pod default/web-1"
    key: str  # the annotation or the field: "picluster.io/cpu-usage", "containers[0].requests.cpu"
    value: str  # the value as read, shortened
    why: str


# --------------------------------------------------------------------------------------------------------
# Quantities


_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)|[eE](?P<exponent>[+-]?\d+)|(?P<decimal>[numkMGTPE]?))"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
#: Bounds far beyond any machine (10^27 bytes or cores), so that garbage cannot make the arithmetic huge; a
#: quantity's text is short (Kubernetes keeps at most 18 significant digits plus a suffix or an exponent).
_MAX_QUANTITY_TEXT = 64
_MAX_QUANTITY = Fraction(10**27)
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def parse_quantity(text: str | int | float) -> Fraction:
    """The exact value of a Kubernetes quantity (``"500m"``, ``"1.5Gi"``, ``"4"``, ``"1e3"``, ``"2E"``).

    Follows k8s.io/apimachinery resource.Quantity: a signed decimal number then a binary suffix
    (Ki..Ei), a decimal suffix (n, u, m, k, M..E) or an exponent (``e3``/``E3``). ``"2E"`` is two exa, not an
    exponent. Numbers that JSON decoded as int or float are accepted too. Raises :class:`SnapshotInvalid`, and only
    that: for a value beyond 10^27, a text longer than 64 characters, or anything that is not a quantity.
    """
    value = _quantity(text)
    if abs(value) > _MAX_QUANTITY:
        raise SnapshotInvalid(f"quantity {_short(text)} is out of range")
    return value


def _short(value: object) -> str:
    text = repr(value) if isinstance(value, str | int | float) else type(value).__name__
    return text if len(text) <= 40 else f"{text[:37]}..."


def _quantity(text: object) -> Fraction:
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise SnapshotInvalid(f"quantity {_short(text)} is not a quantity")
    if isinstance(text, int) and text.bit_length() > 100:
        raise SnapshotInvalid(f"quantity {_short(text)} is out of range")
    if isinstance(text, int):
        return Fraction(text)
    if isinstance(text, float):
        if not math.isfinite(text):
            raise SnapshotInvalid(f"quantity {text!r} is not finite")
        return Fraction(str(text))
    if len(text) > _MAX_QUANTITY_TEXT:
        raise SnapshotInvalid(f"quantity {_short(text)} is longer than {_MAX_QUANTITY_TEXT} characters")
    match = _QUANTITY.fullmatch(text.strip())
    if match is None:
        raise SnapshotInvalid(f"quantity {_short(text)} is not a Kubernetes quantity (e.g. 500m, 1.5Gi, 1e3)")
    number = Fraction(match.group("number"))
    if match.group("binary") is not None:
        return number * Fraction(1024) ** _BINARY[match.group("binary")]
    if match.group("exponent") is not None:
        exponent = int(match.group("exponent"))
        if abs(exponent) > 100:
            raise SnapshotInvalid(f"quantity {text!r}: exponent out of range")
        return number * Fraction(10) ** exponent
    return number * Fraction(10) ** _DECIMAL[match.group("decimal")]


def parse_cpu_millicores(text: str | int | float) -> int:
    """A CPU quantity in millicores, rounded up like Kubernetes' ``MilliValue`` (``"0.0001"`` is 1m)."""
    value = parse_quantity(text)
    if value < 0:
        raise SnapshotInvalid(f"CPU quantity {text!r} is negative")
    return math.ceil(value * 1000)


def parse_memory_bytes(text: str | int | float) -> int:
    """A memory quantity in bytes, rounded up like Kubernetes' ``Value`` (``"1.5Gi"`` is 1610612736)."""
    value = parse_quantity(text)
    if value < 0:
        raise SnapshotInvalid(f"memory quantity {text!r} is negative")
    return math.ceil(value)


# --------------------------------------------------------------------------------------------------------
# Selectors, taints, tolerations


class SelectorOperator(enum.StrEnum):
    """Operators of label-selector and node-selector requirements."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"
    GT = "Gt"
    LT = "Lt"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``matchExpressions`` entry: ``key operator values``."""

    key: str
    operator: SelectorOperator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement (Kubernetes semantics; Gt/Lt compare integers)."""
        present = self.key in labels
        if self.operator is SelectorOperator.IN:
            return present and labels[self.key] in self.values
        if self.operator is SelectorOperator.NOT_IN:
            return not present or labels[self.key] not in self.values
        if self.operator is SelectorOperator.EXISTS:
            return present
        if self.operator is SelectorOperator.DOES_NOT_EXIST:
            return not present
        if not present or len(self.values) != 1:
            return False
        try:
            have, want = int(labels[self.key]), int(self.values[0])
        except ValueError:
            return False
        return have > want if self.operator is SelectorOperator.GT else have < want


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A ``metav1.LabelSelector``. An empty selector matches everything (as in a policy/v1 PDB)."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy every matchLabels pair and every expression."""
        return all(labels.get(key) == value for key, value in self.match_labels) and all(
            requirement.matches(labels) for requirement in self.match_expressions
        )


@dataclass(frozen=True, slots=True)
class NodeSelectorTerm:
    """One term of required node affinity; the requirements inside a term are ANDed.

    ``match_fields`` only knows ``metadata.name``, the one field Kubernetes supports there.
    A term with no requirement at all matches no node (Kubernetes semantics).
    """

    match_expressions: tuple[Requirement, ...] = ()
    match_fields: tuple[Requirement, ...] = ()

    def matches(self, node: Node) -> bool:
        """Whether ``node`` satisfies this term."""
        if not self.match_expressions and not self.match_fields:
            return False
        fields = {"metadata.name": node.name}
        return all(r.matches(node.labels) for r in self.match_expressions) and all(
            r.matches(fields) for r in self.match_fields
        )


class TaintEffect(enum.StrEnum):
    """What a taint does to pods that do not tolerate it."""

    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


@dataclass(frozen=True, slots=True)
class Taint:
    """A node taint."""

    key: str
    effect: TaintEffect
    value: str = ""

    @property
    def repels(self) -> bool:
        """Whether the taint keeps new pods off (NoSchedule and NoExecute; PreferNoSchedule is a wish)."""
        return self.effect is not TaintEffect.PREFER_NO_SCHEDULE


@dataclass(frozen=True, slots=True)
class Toleration:
    """A pod toleration. ``operator`` is ``"Equal"`` or ``"Exists"``; an empty ``effect`` matches all."""

    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    def tolerates(self, taint: Taint) -> bool:
        """Kubernetes' ToleratesTaint: effect, key (empty key with Exists = every key) and value."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        return bool(self.key) and self.value == taint.value


LABEL_HOSTNAME = "kubernetes.io/hostname"


def topology_value(node: Node, key: str) -> str | None:
    """The node's value of the topology label ``key``; ``kubernetes.io/hostname`` falls back to the node's name
    (the kubelet always sets it to the hostname; nodes built without labels still have a name)."""
    value = node.labels.get(key)
    if value is None and key == LABEL_HOSTNAME:
        return node.name
    return value


@dataclass(frozen=True, slots=True)
class VolumePin:
    """Where a pod's volume can be used: the bound PersistentVolume's ``spec.nodeAffinity.required`` (k3s's
    ``local-path`` pins each volume to the one node holding its directory). ``terms`` are ORed, as in
    required node affinity; the pod can only run on a node matching every pin."""

    claim: str  # the PersistentVolumeClaim's name (the pod's namespace)
    volume: str  # the PersistentVolume's name
    terms: tuple[NodeSelectorTerm, ...]

    def allows(self, node: Node) -> bool:
        """Whether the volume can be attached on ``node``."""
        return any(term.matches(node) for term in self.terms)


@dataclass(frozen=True, slots=True)
class PodAffinityTerm:
    """One required pod (anti-)affinity term: pods matching ``selector`` in ``namespaces`` (empty: the pod's
    own), within one ``topology_key`` domain. ``all_namespaces``: an empty ``namespaceSelector`` (``{}``)."""

    selector: LabelSelector | None
    topology_key: str
    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False

    def selects(self, owner_namespace: str, pod: Pod) -> bool:
        """Whether ``pod`` is one of the pods this term (of a pod in ``owner_namespace``) speaks of. A ``None``
        selector matches no pod (Kubernetes: a nil labelSelector selects nothing)."""
        if self.selector is None:
            return False
        if not self.all_namespaces and pod.namespace not in (self.namespaces or (owner_namespace,)):
            return False
        return self.selector.matches(pod.labels)


@dataclass(frozen=True, slots=True)
class TopologySpread:
    """A ``topologySpreadConstraint`` with ``whenUnsatisfiable: DoNotSchedule`` (the only kind that binds):
    placing the pod in a domain must leave that domain at most ``max_skew`` above the emptiest one."""

    max_skew: int
    topology_key: str
    selector: LabelSelector | None


# --------------------------------------------------------------------------------------------------------
# Objects


class ShedState(enum.StrEnum):
    """Where a node stands in shedding, from the phase of its ``picluster.io/shed`` record."""

    NONE = "none"  # no record: a normal node
    DRAINING = "draining"  # draining, drained or power-off requested: pods leaving, power-off coming
    POWERED_OFF = "powered_off"
    RESTORING = "restoring"  # power-on sent, waiting for Ready: running, not yet back
    UNREADABLE = "unreadable"  # a record that cannot be parsed: never act on the node

    @property
    def is_leaving(self) -> bool:
        """Its pods are gone or going and it is (about to be) off."""
        return self in (ShedState.DRAINING, ShedState.POWERED_OFF)


_PHASES = {
    ShedPhase.DRAINING: ShedState.DRAINING,
    ShedPhase.DRAINED: ShedState.DRAINING,
    ShedPhase.POWEROFF_REQUESTED: ShedState.DRAINING,
    ShedPhase.POWERED_OFF: ShedState.POWERED_OFF,
    ShedPhase.RESTORING: ShedState.RESTORING,
}


def _shed_state(record: str | None) -> ShedState:
    """The record's phase, read by the one parser of shed records; an unreadable record is never acted on."""
    if record is None:
        return ShedState.NONE
    parsed = parse_shed_record(record)
    if isinstance(parsed, InvalidRecord):
        return ShedState.UNREADABLE
    return _PHASES[parsed.phase]


@dataclass(frozen=True, slots=True)
class NodeRoles:
    """What :func:`read_roles` made of a node's role signals; ``notes`` say where they disagreed."""

    roles: frozenset[str]
    control_plane: bool
    etcd_member: bool
    notes: tuple[str, ...] = ()


def _node_args(text: str | None) -> tuple[str, ...] | None:
    """``k3s.io/node-args`` as a list of words; ``None`` if absent, ``("?",)`` if unreadable."""
    if text is None:
        return None
    if len(text) > _NODE_ARGS_MAX_CHARS:
        return ("?",)
    try:
        words = json.loads(text)
    except (ValueError, RecursionError):
        return ("?",)
    if not isinstance(words, list) or not words or not all(isinstance(w, str) for w in words):
        return ("?",)
    return tuple(words)


def _embedded_etcd(args: Sequence[str]) -> bool:
    """A k3s server started with ``--cluster-init`` or joining one (``--server``) runs embedded etcd, unless
    it uses an external datastore or disables etcd (k3s docs: "High Availability Embedded etcd")."""
    flags = set(args)
    if flags & {"--disable-etcd", "--datastore-endpoint"}:
        return False
    return bool(flags & {"--cluster-init", "--server", "-s"})


def read_roles(labels: Mapping[str, str], annotations: Mapping[str, str]) -> NodeRoles:
    """The one rule for a node's roles, from every signal the node carries.

    - **Control plane** when any signal says so: a ``node-role.kubernetes.io/`` label control-plane, master or
      etcd; ``k3s.io/node-args`` starting with ``"server"`` (k3s writes its own command line there, so it
      survives an edited label; an unreadable value counts as a server); or any etcd signal below.
    - **etcd member** when ``picluster.io/etcd-member`` says so (the operator's word wins, both ways);
      otherwise when any signal says so: the ``etcd`` role label, k3s's ``etcd.k3s.cattle.io/node-name``
      annotation (set on embedded-etcd members), or a k3s server command line with embedded etcd.

    Missing signals say nothing; signals that disagree resolve to the safer reading (a server, an etcd
    member: a node kept on, never a quorum broken) and a note says which signal won and why.
    """
    roles = frozenset(
        key[len(_ROLE_PREFIX) :]
        for key, value in labels.items()
        if key.startswith(_ROLE_PREFIX) and value in ("true", "")
    )
    notes: list[str] = []
    labelled_cp = bool(roles & _CONTROL_PLANE_ROLES)
    args = _node_args(annotations.get(ANNOTATION_K3S_NODE_ARGS))
    args_server = args is not None and args[0] != "agent"
    if args == ("?",):
        notes.append(f"{ANNOTATION_K3S_NODE_ARGS} cannot be read: counted as a k3s server (the safer reading)")
    elif args_server and not labelled_cp:
        notes.append(
            f"{ANNOTATION_K3S_NODE_ARGS} says k3s server, but no node-role.kubernetes.io/control-plane label: "
            "counted as control plane (the safer reading)"
        )
    elif args is not None and not args_server and labelled_cp:
        notes.append(
            f"labelled {', '.join(sorted(roles & _CONTROL_PLANE_ROLES))}, but {ANNOTATION_K3S_NODE_ARGS} says k3s "
            "agent: counted as control plane (the safer reading)"
        )
    signals = [
        ("the node-role.kubernetes.io/etcd label", "etcd" in roles),
        (f"the {ANNOTATION_K3S_ETCD_NODE} annotation", ANNOTATION_K3S_ETCD_NODE in annotations),
        (f"{ANNOTATION_K3S_NODE_ARGS} (a server with embedded etcd)", args_server and _embedded_etcd(args or ())),
    ]
    saying_etcd = [name for name, says in signals if says]
    explicit = labels.get(LABEL_ETCD_MEMBER)
    if explicit in ("true", "false"):
        etcd = explicit == "true"
        if not etcd and saying_etcd:
            notes.append(f"{LABEL_ETCD_MEMBER}=false overrides {' and '.join(saying_etcd)}: not counted as etcd member")
    else:
        etcd = bool(saying_etcd)
        if etcd and "etcd" not in roles:
            notes.append(
                f"{' and '.join(saying_etcd)} says etcd member, but no node-role.kubernetes.io/etcd label: "
                "counted as etcd member (the safer reading)"
            )
    # Only servers carry etcd signals: one overridden by picluster.io/etcd-member=false still marks a server.
    control_plane = labelled_cp or args_server or etcd or bool(saying_etcd)
    return NodeRoles(roles, control_plane, etcd, tuple(notes))


def _frozen_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return value if isinstance(value, MappingProxyType) else MappingProxyType(dict(value))


@dataclass(frozen=True, slots=True)
class Node:
    """A Kubernetes node. ``annotations`` holds piclusterd's own (``picluster.io/...``) and the role signals k3s
    writes (``k3s.io/node-args``, ``etcd.k3s.cattle.io/node-name``); ``address`` is its first InternalIP."""

    name: str
    allocatable_cpu_m: int
    allocatable_memory_b: int
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    allocatable_pods: int = _DEFAULT_MAX_PODS
    ready: bool = True
    unschedulable: bool = False
    taints: tuple[Taint, ...] = ()
    address: str = ""
    #: The kubelet's ``status.nodeInfo.bootID`` (the kernel's boot id of that machine; "" when not reported).
    boot_id: str = ""
    #: Its shed record did not verify (:meth:`ClusterView.with_shed_unreadable`): read as unreadable.
    shed_distrusted: bool = False
    #: Role names from ``node-role.kubernetes.io/<role>`` labels (k3s sets them to ``"true"``).
    roles: frozenset[str] = field(init=False, repr=False, compare=False)
    #: A control-plane node (a k3s server), by :func:`read_roles`.
    is_control_plane: bool = field(init=False, repr=False, compare=False)
    #: Member of the embedded etcd, by :func:`read_roles`.
    is_etcd_member: bool = field(init=False, repr=False, compare=False)
    #: Where the role signals disagreed and which reading won (:func:`read_roles`).
    role_notes: tuple[str, ...] = field(init=False, repr=False, compare=False)
    #: piclusterd's record of shedding this node (``picluster.io/shed``).
    shed_state: ShedState = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        labels = _frozen_map(self.labels)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "annotations", _frozen_map(self.annotations))
        roles = read_roles(labels, self.annotations)
        object.__setattr__(self, "roles", roles.roles)
        object.__setattr__(self, "is_etcd_member", roles.etcd_member)
        object.__setattr__(self, "is_control_plane", roles.control_plane)
        object.__setattr__(self, "role_notes", roles.notes)
        shed = ShedState.UNREADABLE if self.shed_distrusted else _shed_state(self.annotations.get(ANNOTATION_SHED))
        object.__setattr__(self, "shed_state", shed)

    @property
    def tier(self) -> int | None:
        """The ``picluster.io/tier`` label as an integer; ``None`` when absent or not an integer."""
        text = self.labels.get(LABEL_TIER)
        if text is None:
            return None
        try:
            return int(text)
        except ValueError:
            return None


class PodPhase(enum.StrEnum):
    """``status.phase`` of a pod."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class Pod:
    """A pod, reduced to what draining, placing and power accounting need.

    ``owner_kind`` is the kind of the *controller* owner reference (``None`` for a bare pod);
    ``volume_kinds`` names the volume sources used (``emptyDir``, ``persistentVolumeClaim``...);
    ``required_node_affinity`` is ``None`` when the pod has none (any node), else the ORed terms.
    """

    namespace: str
    name: str
    node: str | None
    cpu_request_m: int = 0
    memory_request_b: int = 0
    uid: str = ""
    owner_kind: str | None = None
    owner_name: str = ""
    cpu_usage_m: int | None = None
    priority: int = 0
    priority_class_name: str = ""
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    volume_kinds: frozenset[str] = frozenset()
    tolerations: tuple[Toleration, ...] = ()
    node_selector: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    required_node_affinity: tuple[NodeSelectorTerm, ...] | None = None
    phase: PodPhase = PodPhase.RUNNING
    ready: bool = True
    is_mirror: bool = False
    terminating: bool = False
    #: Host ports its containers bind on the node's own address (``"80/TCP"``): endpoints that go with it.
    host_ports: tuple[str, ...] = ()
    #: Names of the PersistentVolumeClaims it mounts (its own namespace).
    claims: tuple[str, ...] = ()
    #: Where its bound volumes can go (:class:`VolumePin`); empty when none is pinned or none was read.
    volume_pins: tuple[VolumePin, ...] = ()
    #: Required pod affinity: every term needs a matching pod in the node's domain.
    pod_affinity: tuple[PodAffinityTerm, ...] = ()
    #: Required pod anti-affinity: no matching pod may share the node's domain (both ways).
    pod_anti_affinity: tuple[PodAffinityTerm, ...] = ()
    #: Topology spread constraints with ``whenUnsatisfiable: DoNotSchedule``.
    topology_spread: tuple[TopologySpread, ...] = ()
    #: ``spec.terminationGracePeriodSeconds`` (Kubernetes' default 30): how long an evicted pod may take.
    termination_grace_s: int = 30
    # Derived once, here (the planner asks these of every pod many times):
    #: ``namespace/name``, unique in a cluster.
    key: str = field(init=False, repr=False, compare=False)
    #: Managed by a DaemonSet: never evicted, dies with its node, comes back with it.
    is_daemonset: bool = field(init=False, repr=False, compare=False)
    #: Succeeded or Failed: holds no resources and needs no new home.
    is_finished: bool = field(init=False, repr=False, compare=False)
    #: Something recreates it when evicted (kubectl's test for ``--force``).
    has_controller: bool = field(init=False, repr=False, compare=False)
    #: Counts against its node's allocatable (everything bound and not finished).
    holds_resources: bool = field(init=False, repr=False, compare=False)
    #: Would be evicted by a drain and need a home elsewhere (kubectl drain's filters): DaemonSet and
    #: mirror pods are skipped by drain; finished pods are just removed; pods already being deleted have
    #: their replacement on its way already.
    must_move: bool = field(init=False, repr=False, compare=False)
    #: CPU the pod keeps busy, in millicores: measured usage if known, else its request.
    cpu_load_m: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "labels", _frozen_map(self.labels))
        set_(self, "node_selector", _frozen_map(self.node_selector))
        finished = self.phase in (PodPhase.SUCCEEDED, PodPhase.FAILED)
        daemonset = self.owner_kind == "DaemonSet"
        set_(self, "key", f"{self.namespace}/{self.name}")
        set_(self, "is_daemonset", daemonset)
        set_(self, "is_finished", finished)
        set_(self, "has_controller", self.owner_kind is not None)
        set_(self, "holds_resources", self.node is not None and not finished)
        set_(self, "must_move", not (daemonset or self.is_mirror or finished or self.terminating))
        set_(self, "cpu_load_m", self.cpu_request_m if self.cpu_usage_m is None else self.cpu_usage_m)

    def is_critical(self, priority_threshold: int) -> bool:
        """Critical: priority at least ``priority_threshold``, or labelled ``picluster.io/critical=true``."""
        return self.priority >= priority_threshold or self.labels.get(LABEL_CRITICAL) == "true"


@dataclass(frozen=True, slots=True)
class Pdb:
    """A policy/v1 PodDisruptionBudget with the status the disruption controller maintains.

    ``selector`` ``None`` matches no pod; an empty selector matches every pod in the namespace.
    ``min_available``/``max_unavailable`` keep their IntOrString form (``"1"`` or ``"50%"``).
    """

    namespace: str
    name: str
    selector: LabelSelector | None
    disruptions_allowed: int
    min_available: str | None = None
    max_unavailable: str | None = None
    current_healthy: int = 0
    desired_healthy: int = 0
    expected_pods: int = 0
    generation: int = 0
    observed_generation: int = 0
    unhealthy_pod_eviction_policy: str = "IfHealthyBudget"

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    def matches(self, pod: Pod) -> bool:
        """Whether this budget covers ``pod`` (same namespace, labels match the selector)."""
        return self.selector is not None and pod.namespace == self.namespace and self.selector.matches(pod.labels)


def _pod_key(pod: Pod) -> tuple[str, str]:
    return (pod.namespace, pod.name)


def _pdb_key(pdb: Pdb) -> tuple[str, str]:
    return (pdb.namespace, pdb.name)


@dataclass(frozen=True, slots=True)
class ClusterView:
    """Nodes, pods and PDBs at one instant, with lookups by node name and pod."""

    nodes: tuple[Node, ...]
    pods: tuple[Pod, ...] = ()
    pdbs: tuple[Pdb, ...] = ()
    #: Pod values that could not be read and were replaced by the pod's defaults (see :class:`ValueRefused`).
    refused: tuple[ValueRefused, ...] = ()
    #: Claims (``namespace/claim``) of pods that must move whose PersistentVolumeClaim or bound
    #: PersistentVolume is not in the snapshot: where their volumes may go was not checked, and their pods
    #: count as pinned to their node (the safe reading).
    volumes_unchecked: tuple[str, ...] = ()
    _nodes_by_name: Mapping[str, Node] = field(init=False, repr=False, compare=False)
    _pods_by_node: Mapping[str, tuple[Pod, ...]] = field(init=False, repr=False, compare=False)
    _pdbs_by_namespace: Mapping[str, tuple[Pdb, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, Node] = {}
        for node in self.nodes:
            if node.name in by_name:
                raise SnapshotInvalid(f"node {node.name!r} appears twice")
            by_name[node.name] = node
        by_node: dict[str, list[Pod]] = {}
        for pod in self.pods:
            if pod.node is not None:
                by_node.setdefault(pod.node, []).append(pod)
        by_namespace: dict[str, list[Pdb]] = {}
        for pdb in self.pdbs:
            by_namespace.setdefault(pdb.namespace, []).append(pdb)
        # Sorted, so that nothing downstream depends on the order kubectl happened to list objects in.
        object.__setattr__(self, "_nodes_by_name", MappingProxyType(by_name))
        object.__setattr__(
            self,
            "_pods_by_node",
            MappingProxyType({k: tuple(sorted(v, key=_pod_key)) for k, v in by_node.items()}),
        )
        object.__setattr__(
            self,
            "_pdbs_by_namespace",
            MappingProxyType({k: tuple(sorted(v, key=_pdb_key)) for k, v in by_namespace.items()}),
        )

    def with_shed_unreadable(self, names: Iterable[str]) -> ClusterView:
        """This view with the shed records of ``names`` read as unreadable (they did not verify): never acted on."""
        distrusted = set(names)
        return replace(
            self, nodes=tuple(replace(n, shed_distrusted=True) if n.name in distrusted else n for n in self.nodes)
        )

    def node(self, name: str) -> Node:
        """The node called ``name``; ``KeyError`` if there is none."""
        return self._nodes_by_name[name]

    def has_node(self, name: str) -> bool:
        """Whether a node called ``name`` exists."""
        return name in self._nodes_by_name

    def pods_on(self, node: str) -> tuple[Pod, ...]:
        """Pods bound to ``node`` (any phase), by namespace/name."""
        return self._pods_by_node.get(node, ())

    def pdbs_for(self, pod: Pod) -> tuple[Pdb, ...]:
        """The budgets that cover ``pod`` (more than one makes the eviction API refuse it)."""
        return tuple(pdb for pdb in self._pdbs_by_namespace.get(pod.namespace, ()) if pdb.matches(pod))

    @property
    def etcd_members(self) -> tuple[Node, ...]:
        """All etcd members, up or down."""
        return tuple(node for node in self.nodes if node.is_etcd_member)


# --------------------------------------------------------------------------------------------------------
# kubectl JSON


_LIST_KINDS = {
    "List": None,
    "NodeList": "Node",
    "PodList": "Pod",
    "PodDisruptionBudgetList": "PodDisruptionBudget",
    "PersistentVolumeList": "PersistentVolume",
    "PersistentVolumeClaimList": "PersistentVolumeClaim",
}


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SnapshotInvalid(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _sequence(value: object, where: str) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise SnapshotInvalid(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _string_map(value: object, where: str) -> dict[str, str]:
    result = {}
    for key, item in _mapping(value, where).items():
        if not isinstance(item, str):
            raise SnapshotInvalid(f"{where}.{key}: expected a string")
        result[str(key)] = item
    return result


def _int(value: object, where: str, default: int = 0) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise SnapshotInvalid(f"{where}: expected an integer, got {value!r}")
    return value


def _requirements(value: object, where: str) -> tuple[Requirement, ...]:
    result = []
    for index, raw in enumerate(_sequence(value, where)):
        item = _mapping(raw, f"{where}[{index}]")
        try:
            operator = SelectorOperator(str(item.get("operator")))
        except ValueError:
            raise SnapshotInvalid(f"{where}[{index}]: unknown operator {item.get('operator')!r}") from None
        values = tuple(str(v) for v in _sequence(item.get("values"), f"{where}[{index}].values"))
        result.append(Requirement(str(item.get("key", "")), operator, values))
    return tuple(result)


def _label_selector(value: object, where: str) -> LabelSelector | None:
    if value is None:
        return None
    raw = _mapping(value, where)
    labels = _string_map(raw.get("matchLabels"), f"{where}.matchLabels")
    return LabelSelector(
        tuple(sorted(labels.items())),
        _requirements(raw.get("matchExpressions"), f"{where}.matchExpressions"),
    )


def _parse_node(item: Mapping[str, Any], where: str) -> Node:
    metadata = _mapping(item.get("metadata"), f"{where}.metadata")
    spec = _mapping(item.get("spec"), f"{where}.spec")
    status = _mapping(item.get("status"), f"{where}.status")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise SnapshotInvalid(f"{where}: node without metadata.name")
    where = f"node {name}"
    allocatable = _mapping(status.get("allocatable"), f"{where}: status.allocatable")
    ready = any(
        _mapping(c, f"{where}: condition").get("type") == "Ready"
        and _mapping(c, f"{where}: condition").get("status") == "True"
        for c in _sequence(status.get("conditions"), f"{where}: status.conditions")
    )
    taints = []
    for raw in _sequence(spec.get("taints"), f"{where}: spec.taints"):
        taint = _mapping(raw, f"{where}: taint")
        try:
            effect = TaintEffect(str(taint.get("effect")))
        except ValueError:
            raise SnapshotInvalid(f"{where}: taint with unknown effect {taint.get('effect')!r}") from None
        taints.append(Taint(str(taint.get("key", "")), effect, str(taint.get("value", ""))))
    annotations = _string_map(metadata.get("annotations"), f"{where}: metadata.annotations")
    try:
        return Node(
            name=name,
            labels=_string_map(metadata.get("labels"), f"{where}: metadata.labels"),
            annotations={k: v for k, v in annotations.items() if k.startswith(PREFIX) or k in _ROLE_ANNOTATIONS},
            address=_internal_ip(status, where),
            allocatable_cpu_m=parse_cpu_millicores(allocatable.get("cpu", 0)),
            allocatable_memory_b=parse_memory_bytes(allocatable.get("memory", 0)),
            allocatable_pods=int(parse_quantity(allocatable.get("pods", _DEFAULT_MAX_PODS))),
            ready=ready,
            unschedulable=bool(spec.get("unschedulable", False)),
            taints=tuple(taints),
            boot_id=_boot_id(status),
        )
    except SnapshotInvalid as error:
        raise SnapshotInvalid(f"{where}: {error}") from None


def _boot_id(status: Mapping[str, Any]) -> str:
    """``status.nodeInfo.bootID`` when it looks like one (a UUID: at most 64 characters, hex and dashes)."""
    info = status.get("nodeInfo")
    value = info.get("bootID") if isinstance(info, Mapping) else None
    if not isinstance(value, str) or not value or len(value) > 64 or value.strip("0123456789abcdefABCDEF-"):
        return ""
    return value


def _internal_ip(status: Mapping[str, Any], where: str) -> str:
    for raw in _sequence(status.get("addresses"), f"{where}: status.addresses"):
        address = _mapping(raw, f"{where}: status.addresses")
        if address.get("type") == "InternalIP" and isinstance(address.get("address"), str):
            return str(address["address"])[:64]
    return ""


class _PodValues:
    """Reads one pod's quantities: a value that cannot be read becomes ``default`` and a :class:`ValueRefused`."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.refused: list[ValueRefused] = []

    def read(self, value: object, parse: Callable[[Any], int], key: str, default: int | None) -> int | None:
        if value is None:
            return default
        try:
            return parse(value)
        except SnapshotInvalid as error:
            self.refused.append(ValueRefused(self.where, key, _short(value), str(error)))
            return default

    def parsed(self, parse: Callable[[], tuple[_T, ...]], key: str, value: object) -> tuple[_T, ...]:
        """``parse()``, or none and a :class:`ValueRefused` if the value cannot be read."""
        try:
            return parse()
        except SnapshotInvalid as error:
            self.refused.append(ValueRefused(self.where, key, _short(value), str(error)))
            return ()

    def requests(self, container: Mapping[str, Any], where: str) -> tuple[int, int]:
        resources = _mapping(container.get("resources"), f"{self.where}: {where}.resources")
        requests = _mapping(resources.get("requests"), f"{self.where}: {where}.resources.requests")
        limits = _mapping(resources.get("limits"), f"{self.where}: {where}.resources.limits")
        cpu = requests.get("cpu", limits.get("cpu"))
        memory = requests.get("memory", limits.get("memory"))
        return (
            self.read(cpu, parse_cpu_millicores, f"{where}.requests.cpu", 0) or 0,
            self.read(memory, parse_memory_bytes, f"{where}.requests.memory", 0) or 0,
        )


def _pod_requests(spec: Mapping[str, Any], values: _PodValues) -> tuple[int, int]:
    """Effective requests as the scheduler computes them: max(sum of containers, largest init) + overhead."""
    where = values.where
    cpu = memory = 0
    for index, raw in enumerate(_sequence(spec.get("containers"), f"{where}: spec.containers")):
        c_cpu, c_memory = values.requests(_mapping(raw, where), f"containers[{index}]")
        cpu += c_cpu
        memory += c_memory
    for index, raw in enumerate(_sequence(spec.get("initContainers"), f"{where}: spec.initContainers")):
        i_cpu, i_memory = values.requests(_mapping(raw, where), f"initContainers[{index}]")
        cpu = max(cpu, i_cpu)
        memory = max(memory, i_memory)
    overhead = _mapping(spec.get("overhead"), f"{where}: spec.overhead")
    cpu += values.read(overhead.get("cpu"), parse_cpu_millicores, "overhead.cpu", 0) or 0
    memory += values.read(overhead.get("memory"), parse_memory_bytes, "overhead.memory", 0) or 0
    return cpu, memory


def _required_affinity(spec: Mapping[str, Any], where: str) -> tuple[NodeSelectorTerm, ...] | None:
    affinity = _mapping(spec.get("affinity"), f"{where}: spec.affinity")
    node_affinity = _mapping(affinity.get("nodeAffinity"), f"{where}: nodeAffinity")
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return None
    terms = _sequence(_mapping(required, where).get("nodeSelectorTerms"), f"{where}: nodeSelectorTerms")
    return tuple(
        NodeSelectorTerm(
            _requirements(_mapping(t, where).get("matchExpressions"), f"{where}: matchExpressions"),
            _requirements(_mapping(t, where).get("matchFields"), f"{where}: matchFields"),
        )
        for t in terms
    )


def _parse_pod(item: Mapping[str, Any], where: str, refused: list[ValueRefused]) -> Pod:
    metadata = _mapping(item.get("metadata"), f"{where}.metadata")
    spec = _mapping(item.get("spec"), f"{where}.spec")
    status = _mapping(item.get("status"), f"{where}.status")
    name, namespace = metadata.get("name"), metadata.get("namespace", "default")
    if not isinstance(name, str) or not name or not isinstance(namespace, str):
        raise SnapshotInvalid(f"{where}: pod without metadata.name")
    where = f"pod {namespace}/{name}"
    owner_kind: str | None = None
    owner_name = ""
    for raw in _sequence(metadata.get("ownerReferences"), f"{where}: ownerReferences"):
        reference = _mapping(raw, f"{where}: ownerReference")
        if reference.get("controller") is True:
            owner_kind = str(reference.get("kind", ""))
            owner_name = str(reference.get("name", ""))
            break
    annotations = _string_map(metadata.get("annotations"), f"{where}: metadata.annotations")
    tolerations = tuple(
        Toleration(
            key=str(t.get("key", "")),
            operator=str(t.get("operator", "Equal")),
            value=str(t.get("value", "")),
            effect=str(t.get("effect", "")),
        )
        for t in (_mapping(raw, where) for raw in _sequence(spec.get("tolerations"), where))
    )
    volume_kinds = frozenset(
        key
        for raw in _sequence(spec.get("volumes"), f"{where}: spec.volumes")
        for key in _mapping(raw, where)
        if key != "name"
    )
    conditions = _sequence(status.get("conditions"), f"{where}: status.conditions")
    ready = any(
        _mapping(c, where).get("type") == "Ready" and _mapping(c, where).get("status") == "True" for c in conditions
    )
    phase_text = status.get("phase", "Pending")
    try:
        phase = PodPhase(phase_text)
    except ValueError:
        phase = PodPhase.UNKNOWN
    node = spec.get("nodeName")
    host_ports = tuple(
        f"{port.get('hostPort')}/{port.get('protocol') or 'TCP'}"
        for raw in _sequence(spec.get("containers"), f"{where}: spec.containers")
        for port in (
            _mapping(p, f"{where}: ports")
            for p in _sequence(_mapping(raw, where).get("ports"), f"{where}: containers.ports")
        )
        if isinstance(port.get("hostPort"), int) and not isinstance(port.get("hostPort"), bool) and port["hostPort"] > 0
    )
    # Any pod author writes these: garbage keeps this pod's defaults and is reported, the snapshot goes on.
    values = _PodValues(where)
    cpu, memory = _pod_requests(spec, values)
    usage = values.read(annotations.get(ANNOTATION_CPU_USAGE), parse_cpu_millicores, ANNOTATION_CPU_USAGE, None)
    claims = values.parsed(lambda: _claims(spec, where), "spec.volumes[].persistentVolumeClaim", spec.get("volumes"))
    affinity = _mapping_or_empty(spec.get("affinity"))
    pod_affinity = values.parsed(
        lambda: _pod_affinity_terms(affinity.get("podAffinity"), where, "podAffinity"),
        "spec.affinity.podAffinity",
        affinity.get("podAffinity"),
    )
    pod_anti_affinity = values.parsed(
        lambda: _pod_affinity_terms(affinity.get("podAntiAffinity"), where, "podAntiAffinity"),
        "spec.affinity.podAntiAffinity",
        affinity.get("podAntiAffinity"),
    )
    spread = values.parsed(
        lambda: _topology_spread(spec.get("topologySpreadConstraints"), where),
        "spec.topologySpreadConstraints",
        spec.get("topologySpreadConstraints"),
    )
    grace = values.read(
        spec.get("terminationGracePeriodSeconds"), _grace_seconds, "spec.terminationGracePeriodSeconds", 30
    )
    refused.extend(values.refused)
    return Pod(
        namespace=namespace,
        name=name,
        uid=str(metadata.get("uid", "")),
        node=node if isinstance(node, str) and node else None,
        owner_kind=owner_kind,
        owner_name=owner_name,
        cpu_request_m=cpu,
        memory_request_b=memory,
        cpu_usage_m=usage,
        priority=_int(spec.get("priority"), f"{where}: spec.priority"),
        priority_class_name=str(spec.get("priorityClassName", "")),
        labels=_string_map(metadata.get("labels"), f"{where}: metadata.labels"),
        volume_kinds=volume_kinds,
        tolerations=tolerations,
        node_selector=_string_map(spec.get("nodeSelector"), f"{where}: spec.nodeSelector"),
        required_node_affinity=_required_affinity(spec, where),
        phase=phase,
        ready=ready,
        is_mirror=_MIRROR_ANNOTATION in annotations,
        terminating=metadata.get("deletionTimestamp") is not None,
        host_ports=host_ports,
        claims=claims,
        pod_affinity=pod_affinity,
        pod_anti_affinity=pod_anti_affinity,
        topology_spread=spread,
        termination_grace_s=30 if grace is None else grace,
    )


_MAX_GRACE_S = 86_400 * 366  # far beyond any real pod; a bigger number is garbage


def _grace_seconds(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_GRACE_S:
        raise SnapshotInvalid(f"{_short(value)} is not a number of seconds (0..{_MAX_GRACE_S})")
    return value


_MAX_TERMS = 64  # per pod and kind: far beyond any real pod, so that garbage cannot make placement slow


def _mapping_or_empty(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _claims(spec: Mapping[str, Any], where: str) -> tuple[str, ...]:
    names = []
    for raw in _sequence(spec.get("volumes"), f"{where}: spec.volumes"):
        claim = _mapping(_mapping(raw, f"{where}: volume").get("persistentVolumeClaim"), f"{where}: volume")
        name = claim.get("claimName")
        if name is None:
            continue
        if not isinstance(name, str) or not name or len(name) > 253:
            raise SnapshotInvalid(f"{where}: persistentVolumeClaim.claimName {_short(name)} is not a name")
        names.append(name)
    return tuple(names)


def _pod_affinity_terms(value: object, where: str, kind: str) -> tuple[PodAffinityTerm, ...]:
    """The required terms of a podAffinity or podAntiAffinity; preferred terms do not bind and are skipped."""
    raw_terms = _sequence(
        _mapping(value, f"{where}: {kind}").get("requiredDuringSchedulingIgnoredDuringExecution"),
        f"{where}: {kind}.required",
    )
    if len(raw_terms) > _MAX_TERMS:
        raise SnapshotInvalid(f"{where}: {kind} has more than {_MAX_TERMS} required terms")
    terms = []
    for index, raw in enumerate(raw_terms):
        term = _mapping(raw, f"{where}: {kind}[{index}]")
        key = term.get("topologyKey")
        if not isinstance(key, str) or not key:
            raise SnapshotInvalid(f"{where}: {kind}[{index}] without a topologyKey")
        namespaces = tuple(str(n) for n in _sequence(term.get("namespaces"), f"{where}: {kind}[{index}].namespaces"))
        namespace_selector = _label_selector(term.get("namespaceSelector"), f"{where}: {kind}[{index}]")
        # An empty namespaceSelector means every namespace. Another one needs Namespace labels, which the
        # snapshot lacks: anti-affinity then counts every namespace (it can only keep more apart), affinity
        # only the listed ones (it can only find fewer partners). Both err towards "does not fit".
        every = namespace_selector is not None and (namespace_selector == LabelSelector() or kind == "podAntiAffinity")
        terms.append(
            PodAffinityTerm(
                _label_selector(term.get("labelSelector"), f"{where}: {kind}[{index}].labelSelector"),
                key,
                namespaces,
                every,
            )
        )
    return tuple(terms)


def _topology_spread(value: object, where: str) -> tuple[TopologySpread, ...]:
    raw_constraints = _sequence(value, f"{where}: topologySpreadConstraints")
    if len(raw_constraints) > _MAX_TERMS:
        raise SnapshotInvalid(f"{where}: more than {_MAX_TERMS} topologySpreadConstraints")
    result = []
    for index, raw in enumerate(raw_constraints):
        item = _mapping(raw, f"{where}: topologySpreadConstraints[{index}]")
        if item.get("whenUnsatisfiable", "DoNotSchedule") != "DoNotSchedule":
            continue  # ScheduleAnyway only scores
        skew = item.get("maxSkew")
        key = item.get("topologyKey")
        if isinstance(skew, bool) or not isinstance(skew, int) or skew < 1:
            raise SnapshotInvalid(f"{where}: topologySpreadConstraints[{index}].maxSkew {_short(skew)} is not >= 1")
        if not isinstance(key, str) or not key:
            raise SnapshotInvalid(f"{where}: topologySpreadConstraints[{index}] without a topologyKey")
        selector = _label_selector(item.get("labelSelector"), f"{where}: topologySpreadConstraints[{index}]")
        result.append(TopologySpread(skew, key, selector))
    return tuple(result)


@dataclass(frozen=True, slots=True)
class _Claim:
    volume: str  # spec.volumeName ("" while unbound)


@dataclass(frozen=True, slots=True)
class _Volume:
    terms: tuple[NodeSelectorTerm, ...] | None  # None: no node affinity, the volume goes anywhere
    readable: bool = True


def _parse_claim(item: Mapping[str, Any], where: str) -> tuple[str, _Claim]:
    metadata = _mapping(item.get("metadata"), f"{where}.metadata")
    spec = _mapping(item.get("spec"), f"{where}.spec")
    name, namespace = metadata.get("name"), metadata.get("namespace", "default")
    if not isinstance(name, str) or not name or not isinstance(namespace, str):
        raise SnapshotInvalid(f"{where}: PersistentVolumeClaim without metadata.name")
    volume = spec.get("volumeName")
    return f"{namespace}/{name}", _Claim(volume if isinstance(volume, str) else "")


def _parse_volume(item: Mapping[str, Any], where: str, refused: list[ValueRefused]) -> tuple[str, _Volume]:
    metadata = _mapping(item.get("metadata"), f"{where}.metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise SnapshotInvalid(f"{where}: PersistentVolume without metadata.name")
    where = f"PersistentVolume {name}"
    try:
        spec = _mapping(item.get("spec"), f"{where}: spec")
        affinity = _mapping(spec.get("nodeAffinity"), f"{where}: spec.nodeAffinity")
        required = affinity.get("required")
        if required is None:
            return name, _Volume(None)
        raw_terms = _sequence(_mapping(required, where).get("nodeSelectorTerms"), f"{where}: nodeSelectorTerms")
        if len(raw_terms) > _MAX_TERMS:
            raise SnapshotInvalid(f"{where}: more than {_MAX_TERMS} nodeSelectorTerms")
        terms = tuple(
            NodeSelectorTerm(
                _requirements(_mapping(t, where).get("matchExpressions"), f"{where}: matchExpressions"),
                _requirements(_mapping(t, where).get("matchFields"), f"{where}: matchFields"),
            )
            for t in raw_terms
        )
        return name, _Volume(terms)
    except SnapshotInvalid as error:
        # Where the volume may go is unknown: it stays where it is (the pods using it cannot move).
        refused.append(ValueRefused(where, "spec.nodeAffinity", "", f"{error}; counted as pinned to its node"))
        return name, _Volume(None, readable=False)


def _pinned_where_it_is(node: str | None) -> tuple[NodeSelectorTerm, ...]:
    if node is None:
        return ()
    return (NodeSelectorTerm(match_fields=(Requirement("metadata.name", SelectorOperator.IN, (node,)),)),)


def _with_volumes(
    pods: Sequence[Pod], claims: Mapping[str, _Claim], volumes: Mapping[str, _Volume]
) -> tuple[tuple[Pod, ...], tuple[str, ...]]:
    """Each pod with the pins of its bound volumes, and the claims that could not be followed to a volume."""
    result = []
    unchecked: set[str] = set()
    for pod in pods:
        if not pod.claims:
            result.append(pod)
            continue
        pins = []
        for name in pod.claims:
            key = f"{pod.namespace}/{name}"
            claim = claims.get(key)
            volume = volumes.get(claim.volume) if claim is not None and claim.volume else None
            if volume is None:
                # Not in the snapshot (no PVs/PVCs listed, or not readable): it may be a local-path volume,
                # so the pod counts as pinned where it is, the safe reading, and the claim is listed.
                if pod.must_move:
                    unchecked.add(key)
                pins.append(VolumePin(name, "", _pinned_where_it_is(pod.node)))
                continue
            if not volume.readable:
                pins.append(VolumePin(name, claim.volume if claim else "", _pinned_where_it_is(pod.node)))
            elif volume.terms is not None:
                pins.append(VolumePin(name, claim.volume if claim else "", volume.terms))
        result.append(replace(pod, volume_pins=tuple(pins)) if pins else pod)
    return tuple(result), tuple(sorted(unchecked))


def _int_or_string(value: object) -> str | None:
    return None if value is None else str(value)


def _parse_pdb(item: Mapping[str, Any], where: str) -> Pdb:
    metadata = _mapping(item.get("metadata"), f"{where}.metadata")
    spec = _mapping(item.get("spec"), f"{where}.spec")
    status = _mapping(item.get("status"), f"{where}.status")
    name, namespace = metadata.get("name"), metadata.get("namespace", "default")
    if not isinstance(name, str) or not name or not isinstance(namespace, str):
        raise SnapshotInvalid(f"{where}: PodDisruptionBudget without metadata.name")
    where = f"PodDisruptionBudget {namespace}/{name}"
    return Pdb(
        namespace=namespace,
        name=name,
        selector=_label_selector(spec.get("selector"), f"{where}: spec.selector"),
        min_available=_int_or_string(spec.get("minAvailable")),
        max_unavailable=_int_or_string(spec.get("maxUnavailable")),
        disruptions_allowed=_int(status.get("disruptionsAllowed"), f"{where}: disruptionsAllowed"),
        current_healthy=_int(status.get("currentHealthy"), f"{where}: currentHealthy"),
        desired_healthy=_int(status.get("desiredHealthy"), f"{where}: desiredHealthy"),
        expected_pods=_int(status.get("expectedPods"), f"{where}: expectedPods"),
        generation=_int(metadata.get("generation"), f"{where}: metadata.generation"),
        observed_generation=_int(status.get("observedGeneration"), f"{where}: observedGeneration"),
        unhealthy_pod_eviction_policy=str(spec.get("unhealthyPodEvictionPolicy") or "IfHealthyBudget"),
    )


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _items(obj: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any], str]]:
    list_kind = obj.get("kind")
    if list_kind not in _LIST_KINDS:
        raise SnapshotInvalid(f"expected a kubectl List, got kind {list_kind!r}")
    default_kind = _LIST_KINDS[list_kind]
    for index, raw in enumerate(_sequence(obj.get("items"), "items")):
        item = _mapping(raw, f"items[{index}]")
        kind = item.get("kind", default_kind)
        yield str(kind), item, f"items[{index}]"


def parse_kubectl_list(obj: object) -> ClusterView:
    """The cluster in the JSON of ``kubectl get nodes,pods,pdb,pv,pvc -A -o json``.

    PersistentVolumeClaims and PersistentVolumes give each pod the node pins of its bound volumes
    (:class:`VolumePin`). A claim whose PVC or PV is missing (an older snapshot without them) is listed in
    ``ClusterView.volumes_unchecked``; it, and a PV whose node affinity cannot be read, pin their pods where
    they are (a local-path volume cannot move; a network volume would, but that was not checked).

    Accepts a ``List`` whose items carry their ``kind`` (as kubectl prints them) and the typed lists the API
    returns (``NodeList``... whose items have no ``kind``). Items of other kinds are ignored. Raises
    :class:`SnapshotInvalid` naming the object and field for anything malformed, the top level included (a
    list, a string or null is not a List), except a pod's quantities (``cpu-usage``, requests, overhead):
    one that cannot be read keeps that pod's default and is listed in ``ClusterView.refused``, so one pod
    author cannot stop the plan.
    """
    if not isinstance(obj, Mapping):
        raise SnapshotInvalid(f"expected a JSON object (a kubectl List), got {_json_type(obj)}")
    nodes: list[Node] = []
    pods: list[Pod] = []
    pdbs: list[Pdb] = []
    refused: list[ValueRefused] = []
    claims: dict[str, _Claim] = {}
    volumes: dict[str, _Volume] = {}
    for kind, item, where in _items(obj):
        if kind == "Node":
            nodes.append(_parse_node(item, where))
        elif kind == "Pod":
            pods.append(_parse_pod(item, where, refused))
        elif kind == "PodDisruptionBudget":
            pdbs.append(_parse_pdb(item, where))
        elif kind == "PersistentVolumeClaim":
            key, claim = _parse_claim(item, where)
            claims[key] = claim
        elif kind == "PersistentVolume":
            name, volume = _parse_volume(item, where, refused)
            volumes[name] = volume
    pinned, unchecked = _with_volumes(pods, claims, volumes)
    return ClusterView(tuple(nodes), pinned, tuple(pdbs), tuple(refused), unchecked)


def node_tier(node: Node, tiers: Mapping[str, int], default: int) -> int:
    """A node's tier, the one rule for shedding and restoring: configuration, then label, then ``default``."""
    configured = tiers.get(node.name)
    if configured is not None:
        return configured
    labelled = node.tier
    return default if labelled is None else labelled
