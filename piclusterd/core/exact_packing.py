"""The last resort of :class:`~piclusterd.core.pod_packing.PodPacker`: an exact search for a home for every
pod of a handful, when first fit failed. Pure, integers only.

:func:`pack_exactly` is a backtracking search (pods biggest first, each tried on every receiver that has
room) made short by three rules, each of which keeps every answer the search could find:

- **identical pods are interchangeable**: of two pods of the same size and constraints, the second goes to
  the same receiver as the first or a later one, so no permutation of them is explored twice;
- **equivalent receivers are interchangeable**: a pod is not tried on a receiver whose free room *and*
  set of pods it may take (``classes``) equal those of one already tried for it (two nodes left with the
  same room by different pods are the same home from here on);
- **bounds**: for a pod size (c, m), the receivers can take at most
  ``sum(min(free slots, free cpu // c, free memory // m))`` pods at least that big; and each receiver's CPU
  (memory) can be filled at most up to the largest sum of the sizes left that fits in it (room below any
  such sum is lost to fragmentation): fewer places or less fillable room than the pods left need means no
  completion exists, whatever the order. This is what ends a hopeless search at once: the common case (few,
  large pods near capacity) fails because the big pods leave slivers the others cannot use, which the
  bounds see before placing anything;
- **dead ends are remembered**: the same multiset of rooms left for the same pods (reached by placing
  earlier pods differently) is not explored twice.

Without the first two rules, a search over a dozen large pods of three sizes explored the same placements
thousands of times, and without the bound it spent its whole allowance proving a refusal (issue 17).
The search spends :class:`~piclusterd.core.work_budget.WorkBudget` units (one per receiver looked at) and
gives up, answering ``None`` as for "no home", when ``max_units`` or the budget run out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from piclusterd.core.work_budget import WorkBudget

__all__ = ["pack_exactly"]

_Demand = tuple[int, int, int]  # CPU (millicores), memory (bytes), constraint kind (same kind, same homes)
_BOUND_SIZES = 4  # pod sizes the counting bound is checked for at each step (the biggest left, and the least)
_ABSORB_PODS = 16  # the fragmentation bound counts combinations of at most this many pods...
_ABSORB_SUMS = 256  # ...and of at most this many distinct sums...
_ABSORB_SIZES = 8  # ...of at most this many distinct sizes (more sizes leave less room unfillable)


def _bound_sizes(todo: Sequence[_Demand]) -> list[list[tuple[int, int, int]]]:
    """For each suffix ``todo[k:]``: (cpu, memory, how many pods left are at least that big) for its few
    biggest distinct sizes and for the smallest cpu and memory left (every pod left is at least that)."""
    sizes: list[list[tuple[int, int, int]]] = []
    for k in range(len(todo)):
        rest = todo[k:]
        distinct: list[tuple[int, int]] = []
        for cpu, mem, _ in rest:
            if (cpu, mem) not in distinct:
                distinct.append((cpu, mem))
            if len(distinct) == _BOUND_SIZES - 1:
                break
        distinct.append((min(d[0] for d in rest), min(d[1] for d in rest)))
        sizes.append([(c, m, sum(1 for d in rest if d[0] >= c and d[1] >= m)) for c, m in distinct])
    return sizes


def _absorbable(free: int, sizes: tuple[int, ...]) -> int:
    """The most of ``free`` that pods of ``sizes`` (any number of each) can fill: room below the sum of any
    combination is lost to fragmentation. ``free`` itself when there are too many combinations to count
    (small pods, which fragment little)."""
    if free <= 0 or not sizes:
        return 0
    if sizes[0] <= 0:
        return free
    if free // sizes[0] > _ABSORB_PODS or len(sizes) > _ABSORB_SIZES:
        return free
    reached = {0}
    frontier = {0}
    while frontier:
        frontier = {total + size for total in frontier for size in sizes if total + size <= free} - reached
        reached |= frontier
        if len(reached) > _ABSORB_SUMS:
            return free
    return max(reached)


def pack_exactly(
    pods: Sequence[_Demand],
    homes: Mapping[int, Sequence[int]],
    free: tuple[list[int], list[int], list[int]],
    budget: WorkBudget,
    max_units: int,
) -> tuple[list[int] | None, bool]:
    """A receiver for each of ``pods`` (``homes[kind]``: the receivers that kind may run on, in order of
    preference) with room in ``free`` (CPU, memory, pod slots per receiver; updated in place on success),
    or ``None`` if there is none or the search gave up; and whether the answer is proven (``False``: gave
    up)."""
    free_cpu, free_mem, free_pods = free
    order = sorted(range(len(pods)), key=lambda k: (-pods[k][0], -pods[k][1], pods[k][2], k))
    todo = [pods[k] for k in order]
    kinds = sorted({kind for _, _, kind in todo})
    receivers = sorted({i for kind in kinds for i in homes[kind]})
    classes = {i: tuple(kind for kind in kinds if i in homes[kind]) for i in receivers}
    sizes = _bound_sizes(todo)
    same_as_before = [k > 0 and todo[k] == todo[k - 1] for k in range(len(todo))]
    # Per suffix todo[k:]: its total CPU and memory, and its distinct sizes (smallest first).
    need_cpu = [sum(d[0] for d in todo[k:]) for k in range(len(todo))]
    need_mem = [sum(d[1] for d in todo[k:]) for k in range(len(todo))]
    cpu_sizes = [tuple(sorted({d[0] for d in todo[k:]})) for k in range(len(todo))]
    mem_sizes = [tuple(sorted({d[1] for d in todo[k:]})) for k in range(len(todo))]
    absorbable: dict[tuple[int, int, int], int] = {}

    def fill(dimension: int, k: int, free: int) -> int:
        key = (dimension, k, free)
        found = absorbable.get(key)
        if found is None:
            found = absorbable[key] = _absorbable(free, (cpu_sizes if dimension == 0 else mem_sizes)[k])
        return found

    where = [0] * len(todo)
    units = 0
    limit = min(max_units, budget.optional_left)
    gave_up = False
    dead_ends: set[tuple[int, tuple[tuple[int, int, int, tuple[int, ...]], ...]]] = set()

    def bound_holds(k: int) -> bool:
        nonlocal units
        # Fragmentation: the CPU (memory) the pods left could fill in each receiver, summed, must cover
        # theirs.
        units += 2 * len(receivers)
        if sum(fill(0, k, free_cpu[i]) for i in receivers if free_pods[i] > 0) < need_cpu[k]:
            return False
        if sum(fill(1, k, free_mem[i]) for i in receivers if free_pods[i] > 0) < need_mem[k]:
            return False
        for cpu, mem, need in sizes[k]:
            units += len(receivers)
            room = 0
            for i in receivers:
                fits = free_pods[i]
                if cpu > 0:
                    fits = min(fits, free_cpu[i] // cpu)
                if mem > 0:
                    fits = min(fits, free_mem[i] // mem)
                if fits > 0:
                    room += fits
                    if room >= need:
                        break
            else:
                return False
        return True

    def place(k: int, lowest: int) -> bool:
        nonlocal units, gave_up
        if k == len(todo):
            return True
        if units > limit:
            gave_up = True
            return False
        # The same rooms left for the same pods (reached by placing other pods elsewhere) fail again.
        units += len(receivers)
        state = (k, tuple(sorted((free_cpu[i], free_mem[i], free_pods[i], classes[i]) for i in receivers)))
        if state in dead_ends or not bound_holds(k):
            return False
        cpu, mem, kind = todo[k]
        candidates = homes[kind]
        tried: set[tuple[int, int, int, tuple[int, ...]]] = set()
        start = lowest if same_as_before[k] else 0
        units += len(candidates) - start
        for position in range(start, len(candidates)):
            i = candidates[position]
            if free_cpu[i] < cpu or free_mem[i] < mem or free_pods[i] < 1:
                continue
            room = (free_cpu[i], free_mem[i], free_pods[i], classes[i])
            if room in tried:
                continue
            tried.add(room)
            free_cpu[i] -= cpu
            free_mem[i] -= mem
            free_pods[i] -= 1
            where[k] = i
            if place(k + 1, position):
                return True
            free_cpu[i] += cpu
            free_mem[i] += mem
            free_pods[i] += 1
        if not gave_up:
            dead_ends.add(state)
        return False

    found = place(0, 0)
    budget.spend(units)
    if not found:
        # Gave up: "no home" is the safe answer, but maybe not the true one; the plan says it was cut.
        budget.cut = budget.cut or gave_up
        return None, not gave_up
    placed = [0] * len(todo)
    for k, original in enumerate(order):
        placed[original] = where[k]
    return placed, True
