"""Which alerts a supporter is due, decided from the fold and the clock alone.

A supporter follows runners and may say where they stand (a :class:`Spot`: a checkpoint, or a
distance along the course). :func:`due` answers, for one :class:`Watch` at ``now_ms``, the
alerts whose moment has come and has not passed:

- ``near``: the runner is about the supporter's lead time from their spot;
- ``passed:<checkpoint>``: the runner passed a checkpoint (news for :data:`FRESH_MS`);
- ``finished``: the runner finished (with time and position);
- ``overdue:<checkpoint>``: the runner has not been seen at their next checkpoint although
  the top of its expected range has gone by (see :func:`livetrack.domain.expect.overdue_ms`).

Each alert has a key (supporter, runner, kind); the service appends an ``AlertSent`` record
(:mod:`livetrack.domain.records`) with that key before sending, and the log's idempotent
keys make the send happen once whichever process, or restart, decides it.
Nothing is due once the runner's race is over.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime

from livetrack.domain.event import Race
from livetrack.domain.expect import (
    Expected,
    expected,
    last_passing,
    next_checkpoint,
    overdue_by,
    start_ms,
)
from livetrack.domain.ranking import ALL
from livetrack.domain.state import RaceState, Runner

#: Kinds of alert a supporter can ask for (``passed`` and ``overdue`` are per checkpoint).
KINDS: tuple[str, ...] = ("near", "passed", "finished", "overdue")
DEFAULT_LEAD_S = 180
LEAD_CHOICES_S = (60, 120, 180, 300, 600)
#: A passing or finish older than this is not news any more: no alert for it.
FRESH_MS = 5 * 60_000
#: A finish is announced once it has stood this long: a course that crosses the finish line
#: part way (the 10K at halfway) makes a passing there look like a finish until the next
#: checkpoint's read comes.
FINISH_SETTLE_MS = 60_000
#: "about N minutes from you" is not sent when the runner is due at the spot sooner than this.
NEAR_TOO_LATE_MS = 30_000
#: A race with finishers in which nobody has passed a mat for this long is over.
QUIET_END_MS = 2 * 3600_000


@dataclass(frozen=True, slots=True)
class Spot:
    """Where a supporter stands: at ``checkpoint``, or ``distance_m`` along the course."""

    checkpoint: str = ""
    distance_m: float | None = None

    @property
    def key(self) -> str:
        return self.checkpoint or f"{self.distance_m:.0f}m"


@dataclass(frozen=True, slots=True)
class Watch:
    """One supporter's interest in one runner."""

    supporter: str
    bib: str
    spot: Spot | None = None
    lead_s: int = DEFAULT_LEAD_S
    kinds: frozenset[str] = frozenset(KINDS)


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert due at ``due_ms`` (the moment it became true); ``key`` is its identity in the
    log: one per supporter, runner and kind."""

    supporter: str
    bib: str
    kind: str
    due_ms: int
    title: str
    body: str
    url: str

    @property
    def key(self) -> str:
        return f"alert:{self.supporter}:{self.bib}:{self.kind}"


@dataclass(frozen=True, slots=True)
class SpotEta:
    """When a runner is expected at a spot (80% range), or when they passed it."""

    spot: Spot
    label: str
    at_ms: int
    low_ms: int
    high_ms: int
    passed: bool = False
    #: ``predictor`` (from the runner's own splits) or ``field`` (no split of theirs yet: the
    #: field's times so far, too early for all but the fastest, so no near alert from it)
    basis: str = "predictor"


def clock_text(state: RaceState, ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, state.event.tz).strftime("%H:%M")


def elapsed_text(ms: int) -> str:
    s = max(0, ms) // 1000
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def race_over(state: RaceState, race: Race, now_ms: int) -> bool:
    """Everyone who set off has finished, or the race has finishers and nobody has passed a
    mat for :data:`QUIET_END_MS` (runners who stopped without a DNF would keep it running;
    the passings are walked only once nobody has finished for that long)."""
    counts = state.race_counts(race.id)
    if counts.moving and counts.moving == counts.moving_finished:
        return True
    finishers = state.finishers[race.id]
    if finishers and now_ms - finishers[-1][0] > QUIET_END_MS:
        return now_ms - state.last_moving_passing_ms(race.id) > QUIET_END_MS
    return False


def races_over(state: RaceState, now_ms: int) -> set[str]:
    """The races over for alerts: over (:func:`race_over`), and their last finish no longer
    news (so the last finisher's own alert still goes out)."""
    out = set()
    for rid, race in state.event.races.items():
        finishers = state.finishers[rid]
        if finishers and now_ms - finishers[-1][0] <= FRESH_MS:
            continue
        if race_over(state, race, now_ms):
            out.add(rid)
    return out


def has_spots(race: Race) -> bool:
    """Whether a supporter may say where they stand for ``race``: any race on a course, even one
    timed only at its start and finish (a fun run: a spot is then a distance along the course,
    its ETA from the runner's pace). A sprint run in rounds on a track is not: supporters are
    in the stand, so there is no "Where I stand", no "near" and no "overdue" alert."""
    return race.rounds is None


def spot_distance(race: Race, spot: Spot) -> float | None:
    """The spot's distance along ``race``'s course; None when it is not on the course."""
    cps = race.course.checkpoints
    if spot.checkpoint:
        for cp in cps:
            if cp.id == spot.checkpoint:
                return cp.distance_m
        return None
    if spot.distance_m is None or not 0 < spot.distance_m <= cps[-1].distance_m:
        return None
    return spot.distance_m


def spot_label(race: Race, spot: Spot) -> str:
    cps = race.course.checkpoints
    for cp in cps:
        if cp.id == spot.checkpoint or (
            not spot.checkpoint and spot.distance_m is not None and cp.distance_m == spot.distance_m
        ):
            return cp.name
    d = spot.distance_m or 0.0
    return f"{d / 1000:.1f} km" if d >= 1000 else f"{d:.0f} m"


#: What one pass over many watches works out once per runner: ``("exp", bib, checkpoint)`` ->
#: :func:`expected`'s answer, ``("eta", bib, spot)`` -> :func:`eta_at`'s.
Memo = dict[tuple[str, str, object], object]


def _expected(state: RaceState, r: Runner, checkpoint: str, memo: Memo | None) -> Expected | None:
    if memo is None:
        return expected(state, r, checkpoint)
    key = ("exp", r.bib, checkpoint)
    if key not in memo:
        memo[key] = expected(state, r, checkpoint)
    found = memo[key]
    return found if isinstance(found, Expected) else None


def _at_checkpoint(
    state: RaceState, r: Runner, i: int, memo: Memo | None = None
) -> tuple[int, int, int, str] | None:
    """(expected, low, high, basis) at checkpoint ``i``, or its passing time."""
    cps = r.race.course.checkpoints
    p = r.passings.get(cps[i].id)
    if p is not None:
        return p.time_ms, p.time_ms, p.time_ms, "predictor"
    if i == 0:
        begin = start_ms(state, r)
        return None if begin is None else (begin, begin, begin, "predictor")
    exp = _expected(state, r, cps[i].id, memo)
    return None if exp is None else (exp.at_ms, exp.low_ms, exp.high_ms, exp.basis)


def eta_at(state: RaceState, r: Runner, spot: Spot, memo: Memo | None = None) -> SpotEta | None:
    """When ``r`` is expected at ``spot``: between two checkpoints, in proportion to the
    distance along the segment between their expected (or actual) times. ``passed`` when the
    runner has passed the first checkpoint at or beyond the spot (``at_ms`` is then that
    passing). None when there is nothing to go on yet (no start, nobody through)."""
    d = spot_distance(r.race, spot)
    if d is None:
        return None
    cps = r.race.course.checkpoints
    j = next(k for k, cp in enumerate(cps) if cp.distance_m >= d or k == len(cps) - 1)
    label = spot_label(r.race, spot)
    done = r.passings.get(cps[j].id)
    if done is not None:
        return SpotEta(spot, label, done.time_ms, done.time_ms, done.time_ms, passed=True)
    last = last_passing(r)
    if last is not None and last[0] > j:  # passed a later checkpoint; this one was missed
        return SpotEta(spot, label, last[1], last[1], last[1], passed=True)
    to = _at_checkpoint(state, r, j, memo)
    if to is None or r.status != "ok":
        return None
    if j == 0 or cps[j].distance_m == d:
        return SpotEta(spot, label, *to[:3], basis=to[3])
    frm = _at_checkpoint(state, r, j - 1, memo)
    if frm is None:
        return None
    f = (d - cps[j - 1].distance_m) / (cps[j].distance_m - cps[j - 1].distance_m)
    at, low, high = (int(a + (b - a) * f) for a, b in zip(frm[:3], to[:3], strict=True))
    basis = "field" if "field" in (frm[3], to[3]) else "predictor"
    return SpotEta(spot, label, at, min(low, at), max(high, at), basis=basis)


def spot_eta(state: RaceState, r: Runner, spot: Spot, memo: Memo | None) -> SpotEta | None:
    """:func:`eta_at`, remembered in ``memo`` for the other watches of one pass."""
    if memo is None:
        return eta_at(state, r, spot)
    key = ("eta", r.bib, spot)
    if key not in memo:
        memo[key] = eta_at(state, r, spot, memo)
    found = memo[key]
    return found if isinstance(found, SpotEta) else None


def due(
    state: RaceState,
    watch: Watch,
    now_ms: int,
    sent: Container[str] = (),
    over: Container[str] | None = None,
    memo: Memo | None = None,
) -> list[Alert]:
    """The alerts due for ``watch`` at ``now_ms`` that the log has not recorded as sent.

    ``over``: the races that are over (:func:`races_over`, worked out once for many
    watches); ``memo``: what one pass works out once per runner (:data:`Memo`)."""
    r = state.runners.get(watch.bib)
    if r is None:
        return []
    if r.race.id in (races_over(state, now_ms) if over is None else over):
        return []
    out: list[Alert] = []
    url = f"/runners/{watch.bib}"

    def add(kind: str, due_ms: int, title: str, body: str) -> None:
        alert = Alert(watch.supporter, watch.bib, kind, due_ms, title, body, url)
        if alert.key not in sent:
            out.append(alert)

    cps = r.race.course.checkpoints
    finish = cps[-1]
    p = r.passings.get(finish.id)
    if (
        "finished" in watch.kinds
        and p is not None
        and now_ms - FRESH_MS <= p.time_ms <= now_ms - FINISH_SETTLE_MS
    ):
        elapsed = state.elapsed(r, finish.id)
        pos = state.position(r, finish.id, ALL)
        where = f", {ordinal(pos)}" if pos else ""
        add(
            "finished",
            p.time_ms + FINISH_SETTLE_MS,  # its moment: once it has stood
            f"{r.name} finished",
            f"Finished in {elapsed_text(elapsed or 0)}{where}",
        )
    if "passed" in watch.kinds:
        for cp in cps[1:-1]:
            p = r.passings.get(cp.id)
            if p is not None and now_ms - FRESH_MS <= p.time_ms <= now_ms:
                add(
                    f"passed:{cp.id}",
                    p.time_ms,
                    f"{r.name} passed {cp.name}",
                    f"Passed {cp.name} at {clock_text(state, p.time_ms)}",
                )
    if r.status != "ok" or not has_spots(r.race):
        return out
    if "near" in watch.kinds and watch.spot is not None:
        eta = spot_eta(state, r, watch.spot, memo)
        if eta is not None and not eta.passed and eta.basis == "predictor":
            when = eta.at_ms - watch.lead_s * 1000
            if when <= now_ms < eta.at_ms - NEAR_TOO_LATE_MS:
                mins = max(1, round((eta.at_ms - now_ms) / 60_000))
                add(
                    f"near:{watch.spot.key}",
                    when,
                    f"{r.name} is about {mins} minute{'s' if mins != 1 else ''} from you",
                    f"Expected at {eta.label} at {clock_text(state, eta.at_ms)}"
                    f" ({clock_text(state, eta.low_ms)}–{clock_text(state, eta.high_ms)})",
                )
    if "overdue" in watch.kinds and (nxt := next_checkpoint(r)) is not None:
        exp = _expected(state, r, nxt, memo)
        late = overdue_by(r, exp, now_ms)
        if late is not None:
            name = cps[r.race.course.index(nxt)].name
            by = f" (expected by {clock_text(state, exp.high_ms)})" if exp else ""
            add(
                f"overdue:{nxt}",
                now_ms - late,
                f"{r.name} not seen at {name}",
                f"Not seen at {name} — later than expected{by}",
            )
    return out
