"""Simulated worlds: ``piclusterctl simulate``, ``piclusterd demo`` and everything the demo runs.

The simulator (the real planner on simulated time), the reference scenarios, the demo, and the parts the
demo wires in place of the hardware and the cluster: the embedded fake Kubernetes API server (with kubectl's
tables), the cluster world (several nodes' real code on one clock), the scripted UPS, the fake clock and the
captured audit trail.

May import: any ring of the product (``core``, ``config``, ``drivers``, ``node``, ``notify``, ``cluster``); never
``testing``. Nothing in the product imports ``sim`` except ``cli.py``, which wires the demo and the simulator.
"""
