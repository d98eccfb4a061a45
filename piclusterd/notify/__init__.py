"""Notifications: the messages piclusterd sends to people (SMS, e-mail, chat webhooks, a command).

The notifier watches the audit trail (a tap in :func:`piclusterd.node.audit.make_audit_logger`), turns the
events worth a message into texts (:mod:`piclusterd.core.notify`, pure), and sends them from a worker thread of
its own through each configured sink, out of a queue on disk that survives a restart. The power loop never
waits for a sink.

May import: ``piclusterd.core``, ``piclusterd.config``, ``piclusterd.drivers`` and ``piclusterd.node``; never
``cluster``, ``sim`` or ``testing`` (the cluster's ledger comes in through
:class:`piclusterd.core.notify.NoticeLedger`).
"""
