"""The cluster side: the Kubernetes adapter and everything the leader (and each node's agent) does with it.

API access, the Lease election, drain, powering peers off (a request to the peer's agent, or SSH), powering
them on (the backends and their wiring), the node agent that obeys requests addressed to this node, the
controller that runs each poll (the leader's shedding and restoring steps, and what it says of its plan), the
outage coordinator (the outage record's store, the full shutdown's runner, the close after it), and the cluster
part of ``piclusterctl status``.

May import: ``piclusterd.core``, ``piclusterd.config``, ``piclusterd.drivers`` and ``piclusterd.node``; never
``sim`` or ``testing``.
"""
