"""When each push watch next needs a look: what lets a pass of the alert loop cost what changed.

The watches are indexed by runner, and a heap holds the moment each one next needs a look
(its near alert's window about to open, its runner's finish about to have stood a minute, its
runner about to become overdue, or, while the runner is on the course with a split of their
own, the once-a-minute look that notices their prediction drifting as the field moves). A pass
(:meth:`Plan.take`) hands out only:

- the watches of the runners the fold re-derived since the last pass
  (:meth:`~livetrack.domain.derived.DerivedState.moved_since`: a passing came, moved or went,
  their status changed, a gun went), and
- the watches whose moment has come;

the caller decides each with :func:`~livetrack.domain.alerts.due` and plans it again
(:meth:`Plan.plan`). A watch whose runner is on the course is taken at least once a minute
(event time), so nothing the moments above miss waits longer than it did when every watch was
looked at; one whose runner has not started, finished (and been announced) or stopped waits for
them to move, as nothing about them comes with time alone. Pure and synchronous, like the fold:
the clock comes in as ``now_ms``.
"""

from __future__ import annotations

import heapq
from collections.abc import Container, Iterable

from livetrack.domain.alerts import (
    FINISH_SETTLE_MS,
    NEAR_TOO_LATE_MS,
    Memo,
    Spot,
    SpotEta,
    Watch,
    has_spots,
    spot_eta,
)
from livetrack.domain.expect import (
    Expected,
    expected,
    last_passing,
    next_checkpoint,
    overdue_from,
)
from livetrack.domain.state import RaceState

#: A watch is looked at again after at most this long (event time) even if nothing about its
#: runner changed: their prediction drifts as the rest of the field passes mats. Spread over
#: its second half, so that watches made at once are not all looked at in one pass.
REFRESH_MS = 60_000
#: A near alert's window is looked at this long before it is expected to open (the ETA it
#: opens at may have moved a little earlier since it was planned).
NEAR_AHEAD_MS = 5_000

WatchKey = tuple[str, str, Spot | None]


def key_of(w: Watch) -> WatchKey:
    return (w.supporter, w.bib, w.spot)


class Plan:
    """The watches, by runner, and when each is next looked at."""

    def __init__(self) -> None:
        self.watches: dict[WatchKey, Watch] = {}
        self._by_bib: dict[str, dict[WatchKey, Watch]] = {}
        #: the moment each watch is next looked at; heap entries that disagree are stale
        self._at: dict[WatchKey, int] = {}
        self._heap: list[tuple[int, int, WatchKey]] = []
        self._order = 0  # ties in the heap, and the spread of the once-a-minute looks
        self._cursor: int | None = None
        #: watches handed out for a look, in all (of which for their runner moving)
        self.examined = 0
        self.examined_moved = 0

    def __len__(self) -> int:
        return len(self.watches)

    def load(self, watches: Iterable[Watch]) -> None:
        """Make ``watches`` the set watched. New (or changed) ones are looked at on the next
        :meth:`take`; those kept keep their moment; the others are forgotten."""
        new = {key_of(w): w for w in watches}
        by_bib: dict[str, dict[WatchKey, Watch]] = {}
        for k, w in new.items():
            by_bib.setdefault(w.bib, {})[k] = w
            if self.watches.get(k) != w:
                self._schedule(k, 0)
        for k in self.watches.keys() - new.keys():
            self._at.pop(k, None)  # its heap entry is stale now
        self.watches, self._by_bib = new, by_bib
        self._compact()

    def again(self, watches: Iterable[Watch]) -> None:
        """Look at ``watches`` on the next :meth:`take` (their alerts could not be claimed)."""
        for w in watches:
            k = key_of(w)
            if k in self.watches:
                self._schedule(k, 0)

    def take(self, state: RaceState, now_ms: int) -> list[Watch]:
        """The watches to look at now: those of the runners ``state`` re-derived since the last
        call, and those whose moment has come. Each must be planned again (:meth:`plan`)."""
        out: dict[WatchKey, Watch] = {}
        if self._cursor is not None:
            for bib in state.moved_since(self._cursor):
                mine = self._by_bib.get(bib)
                if mine:
                    out.update(mine)
        self._cursor = state.moves
        moved = len(out)
        heap, at = self._heap, self._at
        while heap and heap[0][0] <= now_ms:
            when, _, k = heapq.heappop(heap)
            if at.get(k) == when:
                out[k] = self.watches[k]
        for k in out:
            at.pop(k, None)
        self.examined += len(out)
        self.examined_moved += moved
        return list(out.values())

    def plan(
        self, w: Watch, state: RaceState, now_ms: int, memo: Memo, sent: Container[str]
    ) -> int | None:
        """When to look at ``w`` again if its runner does not move meanwhile (and plan it):
        at the next moment one of its alerts may fall due, and within :data:`REFRESH_MS` while
        the runner is on the course with a split of their own (their prediction drifts as the
        field passes mats). None: not until the runner moves (not started, or not past the
        start mat, finished, stopped, or not entered: no alert of theirs comes with time
        alone). ``memo`` is the pass's (:func:`~livetrack.domain.alerts.due` filled it)."""
        self._order += 1
        nxt: int | None = None
        r = state.runners.get(w.bib)
        if r is not None:
            prefix = f"alert:{w.supporter}:{w.bib}:"
            cps = r.race.course.checkpoints
            fin = r.passings.get(cps[-1].id)
            if (
                "finished" in w.kinds
                and fin is not None
                and now_ms < fin.time_ms + FINISH_SETTLE_MS
                and prefix + "finished" not in sent
            ):  # a finish not yet stood a minute: look when it has
                nxt = fin.time_ms + FINISH_SETTLE_MS
            if "passed" in w.kinds:
                for p in r.passings.values():
                    if now_ms < p.time_ms and (nxt is None or p.time_ms < nxt):
                        nxt = p.time_ms  # a passing timed ahead of this clock
            if r.status == "ok" and has_spots(r.race):
                near = self._near_at(w, state, now_ms, memo, sent, prefix)
                if near is not None and (nxt is None or near < nxt):
                    nxt = near
                cp = next_checkpoint(r)
                if cp is not None and last_passing(r) is not None:
                    half = REFRESH_MS // 2
                    refresh = now_ms + half + (self._order * 7919) % half
                    nxt = refresh if nxt is None else min(nxt, refresh)
                    if "overdue" in w.kinds and prefix + f"overdue:{cp}" not in sent:
                        key = ("exp", r.bib, cp)
                        if key not in memo:
                            memo[key] = expected(state, r, cp)
                        exp = memo[key]
                        limit = overdue_from(r, exp if isinstance(exp, Expected) else None)
                        if limit is not None:
                            nxt = min(nxt, max(now_ms + 1000, limit + 1))
        if nxt is not None:
            self._schedule(key_of(w), nxt)
        return nxt

    @staticmethod
    def _near_at(
        w: Watch, state: RaceState, now_ms: int, memo: Memo, sent: Container[str], prefix: str
    ) -> int | None:
        if "near" not in w.kinds or w.spot is None or prefix + f"near:{w.spot.key}" in sent:
            return None
        eta = spot_eta(state, state.runners[w.bib], w.spot, memo)
        if (
            isinstance(eta, SpotEta)
            and not eta.passed
            and eta.basis == "predictor"
            and now_ms < eta.at_ms - NEAR_TOO_LATE_MS
        ):  # its window is open or to come: look again just before it opens
            return max(now_ms + 1000, eta.at_ms - w.lead_s * 1000 - NEAR_AHEAD_MS)
        return None

    def _schedule(self, k: WatchKey, when: int) -> None:
        self._at[k] = when
        self._order += 1
        heapq.heappush(self._heap, (when, self._order, k))
        if len(self._heap) > 2 * len(self._at) + 1024:
            self._compact()

    def _compact(self) -> None:
        """Drop the heap's stale entries (a watch planned again leaves its old one behind)."""
        if len(self._heap) <= 2 * len(self._at) + 1024:
            return
        start = self._order
        self._heap = [(t, start + i, k) for i, (k, t) in enumerate(self._at.items(), 1)]
        self._order += len(self._heap)
        heapq.heapify(self._heap)
