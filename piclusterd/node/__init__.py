"""What runs for this Pi, whatever the cluster does: the power loop that protects this node.

The daemon's poll loop, the power publisher (this node's ``picluster.io/power`` record), the UPS-data alarm,
several sources combined as one, the shutdown command and hooks, systemd notification, the real clock and
the audit trail (journald).

May import: ``piclusterd.core``, ``piclusterd.config`` and ``piclusterd.drivers``; never ``cluster``, ``sim``
or ``testing``.
"""
