"""Conditional quantiles of a ratio given pace and pacing, from a fixed sample of runners.

Used by :mod:`livetrack.domain.predict` for earlier editions of a race: each sample is one runner
as ``(x, z, y)`` with ``x`` the log pace at a checkpoint, ``z`` the pacing trend there and ``y``
the log of (time at a later checkpoint) / (time at the checkpoint). A query returns the 10%, 50%
and 90% quantiles of ``y`` among the samples nearest to ``(x, z)`` in standardized units.

Nearest samples are gathered on a lattice: samples are bucketed into square cells of ``step``
standard deviations, each lattice node takes the box of cells around it, grown ring by ring until
it holds ``k`` samples, and a query interpolates bilinearly between its four surrounding nodes.
Nodes are computed on first use and cached, so a query costs a few dictionary look-ups. A query
beyond the samples' range is answered at its edge, with a trust that falls to 0 at ``reach``
standard deviations out, for the caller to blend with what it knows otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

Quantiles = tuple[float, float, float, int, float]
"""(q10, q50, q90, neighbours used, trust): trust is 1 within the samples' range and falls
linearly to 0 at ``reach`` standard deviations beyond it, where the samples say nothing about
the query."""
_NodeQuantiles = tuple[float, float, float, int]


def quantile(sorted_values: list[float], p: float) -> float:
    """The ``p`` quantile (0..1) of a non-empty ascending list, linearly interpolated."""
    pos = p * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


def _robust_scale(values: list[float]) -> tuple[float, float]:
    """(median, spread) with spread = (q90 - q10) / 2.56, about one standard deviation."""
    ordered = sorted(values)
    centre = quantile(ordered, 0.5)
    spread = (quantile(ordered, 0.9) - quantile(ordered, 0.1)) / 2.56
    return centre, spread


class QuantileGrid:
    """Nearest-neighbour quantiles of ``y`` given ``(x, z)``; see the module docstring.

    Each node uses at least ``k`` samples, or a 40th of them for a smaller sample (no fewer than
    ``min_n``). ``quantiles`` returns ``None`` where fewer than ``min_n`` samples lie within
    ``max_ring`` cells of the query, and always ``None`` for an empty sample.
    """

    def __init__(
        self,
        samples: Iterable[tuple[float, float, float]],
        *,
        k: int = 100,
        step: float = 0.25,
        max_ring: int = 24,
        min_n: int = 20,
        reach: float = 1.0,
    ) -> None:
        rows = list(samples)
        self.size = len(rows)
        self._k = max(min_n, min(k, len(rows) // 40))
        self._max_ring = max_ring
        self._min_n = min_n
        self._nodes: dict[tuple[int, int], _NodeQuantiles | None] = {}
        self._inv_reach = step / reach
        self._buckets: dict[tuple[int, int], list[float]] = {}
        self._cells: dict[tuple[int, int], tuple[float, ...]] = {}
        self._u_lo = self._u_hi = self._v_lo = self._v_hi = 0.0
        if not rows:
            self._mx = self._mz = 0.0
            self._ux = self._uz = 1.0
            return
        self._mx, sx = _robust_scale([r[0] for r in rows])
        self._mz, sz = _robust_scale([r[1] for r in rows])
        self._ux = 1.0 / (max(sx, 1e-3) * step)
        self._uz = 1.0 / (max(sz, 1e-3) * step)
        for x, z, y in rows:
            key = (math.floor((x - self._mx) * self._ux), math.floor((z - self._mz) * self._uz))
            bucket = self._buckets.get(key)
            if bucket is None:
                self._buckets[key] = [y]
            else:
                bucket.append(y)
        us = sorted((x - self._mx) * self._ux for x, _, _ in rows)
        vs = sorted((z - self._mz) * self._uz for _, z, _ in rows)
        self._u_lo, self._u_hi = quantile(us, 0.002), quantile(us, 0.998)
        self._v_lo, self._v_hi = quantile(vs, 0.002), quantile(vs, 0.998)

    def quantiles(self, x: float, z: float) -> Quantiles | None:
        """Quantiles of ``y`` near ``(x, z)``, bilinear between the four surrounding nodes.

        Queries outside the samples' range are answered at the nearest edge of it, with less
        trust the further out they are.
        """
        u = (x - self._mx) * self._ux
        v = (z - self._mz) * self._uz
        out_u = self._u_lo - u if u < self._u_lo else u - self._u_hi if u > self._u_hi else 0.0
        out_v = self._v_lo - v if v < self._v_lo else v - self._v_hi if v > self._v_hi else 0.0
        trust = 1.0
        if out_u or out_v:
            u = self._u_lo if u < self._u_lo else self._u_hi if u > self._u_hi else u
            v = self._v_lo if v < self._v_lo else self._v_hi if v > self._v_hi else v
            trust = max(0.0, 1.0 - math.hypot(out_u, out_v) * self._inv_reach)
        a = math.floor(u)
        b = math.floor(v)
        cell = self._cells.get((a, b))
        if cell is None:
            cell = self._cells[(a, b)] = self._cell(a, b)
        if not cell:
            return None
        fu = u - a
        fv = v - b
        w00 = (1.0 - fu) * (1.0 - fv)
        w10 = fu * (1.0 - fv)
        w01 = (1.0 - fu) * fv
        w11 = fu * fv
        return (
            w00 * cell[0] + w10 * cell[3] + w01 * cell[6] + w11 * cell[9],
            w00 * cell[1] + w10 * cell[4] + w01 * cell[7] + w11 * cell[10],
            w00 * cell[2] + w10 * cell[5] + w01 * cell[8] + w11 * cell[11],
            int(cell[12]),
            trust,
        )

    def _cell(self, a: int, b: int) -> tuple[float, ...]:
        """Quantiles at the four nodes around cell (a, b), flattened, then the least node size;
        a node without enough samples borrows the mean of the others; () if none has any."""
        nodes = []
        for key in ((a, b), (a + 1, b), (a, b + 1), (a + 1, b + 1)):
            if key not in self._nodes:
                self._nodes[key] = self._node(*key)
            nodes.append(self._nodes[key])
        found = [q for q in nodes if q is not None]
        if not found:
            return ()
        mean = tuple(sum(q[m] for q in found) / len(found) for m in range(3))
        flat: list[float] = []
        for q in nodes:
            flat.extend(q[:3] if q is not None else mean)
        flat.append(float(min(q[3] for q in found)))
        return tuple(flat)

    def _node(self, a: int, b: int) -> _NodeQuantiles | None:
        """Quantiles of the smallest box of cells around lattice node (a, b) with >= k samples."""
        buckets = self._buckets
        found: list[float] = []
        for ring in range(self._max_ring + 1):
            lo_a, hi_a = a - 1 - ring, a + ring
            lo_b, hi_b = b - 1 - ring, b + ring
            if ring == 0:
                cells = [(i, j) for i in (lo_a, hi_a) for j in (lo_b, hi_b)]
            else:
                cells = [(i, j) for i in range(lo_a, hi_a + 1) for j in (lo_b, hi_b)]
                cells += [(i, j) for i in (lo_a, hi_a) for j in range(lo_b + 1, hi_b)]
            for cell in cells:
                bucket = buckets.get(cell)
                if bucket is not None:
                    found.extend(bucket)
            if len(found) >= self._k:
                break
        if len(found) < self._min_n:
            return None
        found.sort()
        return (quantile(found, 0.1), quantile(found, 0.5), quantile(found, 0.9), len(found))
