"""The cluster side: the Kubernetes adapter and everything the leader (and each node's agent) does with it.

API access, the Lease election, drain, powering peers off (a request to the peer's agent, or SSH), powering
them on (the backends and their wiring), the node agent that obeys requests addressed to this node, the
controller that runs each poll, the outage coordinator (full shutdown and its undo), and the cluster part of
``piclusterctl status``.

May import: ``piclusterd.core``, ``piclusterd.config``, ``piclusterd.drivers`` and ``piclusterd.node``; never
``sim`` or ``testing``.
"""
