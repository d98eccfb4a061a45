"""What a safety rule answers when it says no: the :class:`SafetyRule` it names and a :class:`Refusal`. Pure.

The rules themselves live in :mod:`piclusterd.core.safety`, which exports these two as well; they have their
own module because the pod packer (:mod:`piclusterd.core.pod_packing`), which the rules use, answers with a
refusal too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Refusal", "SafetyRule"]


class SafetyRule(enum.StrEnum):
    """The rule behind a refusal."""

    POWER_UNKNOWN = "power_unknown"
    SHED_IN_PROGRESS = "shed_in_progress"
    NODE_NOT_READY = "node_not_ready"
    ETCD_QUORUM = "etcd_quorum"
    LAST_CONTROL_PLANE = "last_control_plane"
    MIN_NODES = "min_nodes"
    UNREPLICATED_POD = "unreplicated_pod"
    EMPTYDIR_DATA = "emptydir_data"
    PDB_BLOCKS = "pdb_blocks"
    PINNED_VOLUME = "pinned_volume"
    PODS_DO_NOT_FIT = "pods_do_not_fit"
    SETTLING = "settling"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A rule said no. ``detail`` is the whole explanation, ready for an Event message."""

    rule: SafetyRule
    detail: str
