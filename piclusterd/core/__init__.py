"""The pure core: decisions and values, with no I/O and no clock.

Everything here is a function of its arguments (``now`` is passed in): the readings and the power state
machine, the runtime estimate, the power draw model, the cluster view, the safety rules, the planner, each
node's battery, restore, the full shutdown's order, the outage record, the typed records kept on Nodes and
the ports (``Protocol``s) the adapters implement.

May import: the standard library and ``piclusterd.core`` only (enforced by ``tests/unit/test_layering.py``).
"""
