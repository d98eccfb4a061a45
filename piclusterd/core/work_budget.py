"""How much work one search of a plan may do: :class:`WorkBudget`. Pure.

A count of work units, never a clock, so that the same inputs give the same plan on a Pi 4 and on a laptop
(the core reads no clock). One unit is one receiver looked at for one pod, the inner step of every
placement (first fit, re-pack, exact search); a plan's time is about proportional to the units it spends.

Work is of two kinds. The greedy pass's first-fit placements are the plan itself; re-packs, the exact
search and the improvement pass's re-runs only make it better, and may use only half of the budget
(:attr:`WorkBudget.optional_left`), so that the plain pass always has room to look at every node. When
the whole budget is spent, the search stops where it is and keeps what it has: nodes already chosen were
each checked by every safety rule, so the plan found so far is safe, only possibly not the best one.
The plan says so (:attr:`~piclusterd.core.plan_values.Plan.search_cut`).
"""

from __future__ import annotations

__all__ = ["PLAN_WORK_UNITS", "WorkBudget"]

# Units per search (a plan runs two: its own and the physical optimum's): at most about 0.3 s of one core of
# a 2026 x86_64 machine per search (benchmarks/bench_planner.py), so that a whole plan stays under a second.
# A plan on 1,000 nodes and 30,000 small pods spends under half of it; the reference clusters a fraction.
PLAN_WORK_UNITS = 800_000


class WorkBudget:
    """Work units left for one search. Mutable, local to one plan; ``cut`` says whether it ran out."""

    __slots__ = ("cut", "left", "reserve", "units", "unpackable")

    def __init__(self, units: int = PLAN_WORK_UNITS) -> None:
        self.units = units
        self.left = units
        self.reserve = units // 2  # kept for the greedy pass's first fit
        self.cut = False
        # Packing questions proven to have no answer (pods and free room, in a canonical form), so that the
        # search's re-runs, which meet the same questions again, do not spend work proving them twice.
        self.unpackable: set[object] = set()

    def spend(self, units: int) -> None:
        """Count ``units`` of work done (work already done is counted even past the end)."""
        self.left -= units
        if self.left < 0:
            self.cut = True

    @property
    def spent(self) -> int:
        return self.units - self.left

    @property
    def exhausted(self) -> bool:
        """No work left: the search must stop and keep what it has."""
        return self.left <= 0

    @property
    def optional_left(self) -> int:
        """Units left for work that only improves the plan (re-packs, exact search, re-runs)."""
        return self.left - self.reserve

    def refuse(self) -> bool:
        """Whether optional work (a re-pack, an exact search, an improvement re-run) must be skipped;
        marks the search as cut if so."""
        if self.optional_left <= 0:
            self.cut = True
            return True
        return False

    def stop(self) -> bool:
        """Whether the greedy pass itself must stop (the whole budget is spent); marks the search cut."""
        if self.left <= 0:
            self.cut = True
            return True
        return False
