"""Relays, computed from the fold's state (pure; nothing here changes the state).

The model: a relay team is **one participant** whose ``chips`` are its legs' chips in leg
order and whose ``legs`` are the leg runners' names (``chips[i]`` belongs to leg ``i + 1``).
The fold therefore gives the team one passing per checkpoint, from whichever chip crossed a
mat first, with every read rule, correction and marshal sighting applying as for any runner;
the team ranks on the race's boards like any participant.

Legs come from the race's ``handovers``: leg 1 runs from the start to ``handovers[0]``, leg
``i`` from ``handovers[i - 2]`` to ``handovers[i - 1]`` and the last leg to the finish.

* A leg's split is the difference between the team's passings at its two ends (leg 1 from the
  team's start: its start-mat passing with chip timing, else the wave's gun).
* Leg attribution says whose chip made the passing at the end of a leg: the reads of each of
  the team's chips at a mat feeding that checkpoint, within the mat's dedup window (at least
  30 s) of the passing. ``own`` when the incoming runner's chip was read, ``next`` when only
  the outgoing runner's was (they crossed the mat at the handover), ``other`` when some other
  leg's chip was read there (the wrong runner on the course, or swapped chips), ``none`` when
  the passing came from a marshal, a correction or the backup mat without a team chip.
* Leg rankings order the teams that completed a leg by its split.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from livetrack.domain.event import Race
from livetrack.domain.expect import start_ms
from livetrack.domain.state import RaceState, Runner

Attribution = Literal["own", "next", "other", "none"]


@dataclass(frozen=True, slots=True)
class Leg:
    """Leg ``number`` (1-based) runs from checkpoint ``start`` to checkpoint ``end``."""

    number: int
    start: str
    end: str


@dataclass(frozen=True, slots=True)
class LegResult:
    """One team's leg: who ran it, with which chip, the split and whose chip closed it."""

    number: int
    runner: str
    chip: str
    end: str
    state: Literal["waiting", "running", "done"]
    end_ms: int | None
    split_ms: int | None
    attribution: Attribution | None
    read_chip: str | None
    rank: int | None = None


@dataclass(frozen=True, slots=True)
class RelayTeam:
    """A team's relay: elapsed at its furthest passing, its legs, and its place."""

    bib: str
    name: str
    category: str
    legs: tuple[LegResult, ...]
    elapsed_ms: int | None
    finished: bool
    legs_done: int
    position: int | None


def legs_of(race: Race) -> list[Leg]:
    """The legs of ``race`` from its handover checkpoints (one leg for a non-relay race)."""
    cps = race.course.checkpoints
    ends = [*race.handovers, cps[-1].id]
    starts = [cps[0].id, *race.handovers]
    return [Leg(i + 1, s, e) for i, (s, e) in enumerate(zip(starts, ends, strict=True))]


def attribute(
    state: RaceState, runner: Runner, leg_index: int, checkpoint: str, at_ms: int
) -> tuple[Attribution, str | None]:
    """Whose chip made ``runner``'s passing of ``checkpoint`` at ``at_ms`` (see the module
    docstring), and that chip; ``leg_index`` is the 0-based leg the checkpoint ends."""
    points = [p for p in state.event.points.values() if checkpoint in p.checkpoints]
    windows = {p.id: max(30_000, int(p.rules.dedup_s * 1000)) for p in points}
    best: tuple[int, int, str] | None = None  # (distance from at_ms, leg index, chip)
    for i, chip in enumerate(runner.p.chips):
        for point, t in state.reads_by_chip.get(chip, ()):
            window = windows.get(point)
            if window is None or abs(t - at_ms) > window:
                continue
            cand = (0 if i == leg_index else 1 if i == leg_index + 1 else 2, abs(t - at_ms), chip)
            if best is None or cand < best:
                best = cand
    if best is None:
        return "none", None
    kind: Attribution = ("own", "next", "other")[best[0]]
    return kind, best[2]


def relay_team(state: RaceState, runner: Runner) -> RelayTeam:
    """The relay view of one team (its ranks are filled in by :func:`relay_standings`)."""
    race = runner.race
    begin = start_ms(state, runner)
    if race.rank_by == "gun":
        begin = state.gun_ms(race.id, runner.p.wave)
    chips = runner.p.chips
    names = runner.p.legs
    out: list[LegResult] = []
    prev_end = begin
    all_legs = legs_of(race)
    furthest_done = max(
        (i for i, leg in enumerate(all_legs) if leg.end in runner.passings), default=-1
    )
    on_course = bool(runner.passings) or state.started(race.id)
    for i, leg in enumerate(all_legs):
        passing = runner.passings.get(leg.end)
        chip = chips[i] if i < len(chips) else ""
        name = names[i] if i < len(names) else f"Leg {leg.number}"
        if passing is not None:
            split = passing.time_ms - prev_end if prev_end is not None else None
            who, read_chip = attribute(state, runner, i, leg.end, passing.time_ms)
            out.append(
                LegResult(leg.number, name, chip, leg.end, "done", passing.time_ms, split, who,
                          read_chip)
            )  # fmt: skip
            prev_end = passing.time_ms
            continue
        # A leg whose end was missed but a later handover was read is done, split unknown.
        if i < furthest_done:
            state_: Literal["waiting", "running", "done"] = "done"
        elif i == furthest_done + 1 and on_course and runner.status == "ok":
            state_ = "running"
        else:
            state_ = "waiting"
        out.append(LegResult(leg.number, name, chip, leg.end, state_, None, None, None, None))
        prev_end = None
    finish = race.course.checkpoints[-1].id
    furthest = next((leg for leg in reversed(out) if leg.state == "done"), None)
    elapsed = state.elapsed(runner, furthest.end) if furthest is not None else None
    return RelayTeam(
        bib=runner.bib,
        name=runner.name,
        category=runner.category,
        legs=tuple(out),
        elapsed_ms=elapsed,
        finished=finish in runner.passings and runner.status == "ok",
        legs_done=furthest_done + 1,
        position=None,
    )


def relay_standings(state: RaceState, race_id: str) -> list[RelayTeam]:
    """Every team of a relay race: finishers first by finish time, then the rest by legs
    completed and elapsed time at their last handover, with overall positions for
    finishers and each completed leg ranked by its split among all teams."""
    teams = [relay_team(state, r) for r in state.runners.values() if r.race.id == race_id]
    teams = [t for t in teams if state.runners[t.bib].status not in ("DNS", "DQ")]
    splits: dict[int, list[tuple[int, str]]] = {}
    for t in teams:
        for leg in t.legs:
            if leg.split_ms is not None:
                splits.setdefault(leg.number, []).append((leg.split_ms, t.bib))
    ranks: dict[tuple[int, str], int] = {}
    for number, items in splits.items():
        items.sort()
        for pos, (_, bib) in enumerate(items, start=1):
            ranks[(number, bib)] = pos

    def order(t: RelayTeam) -> tuple[int, int, int, str]:
        return (0 if t.finished else 1, -t.legs_done, t.elapsed_ms or 0, t.name)

    teams.sort(key=order)
    out: list[RelayTeam] = []
    pos = 0
    for t in teams:
        legs = tuple(replace(leg, rank=ranks.get((leg.number, t.bib))) for leg in t.legs)
        if t.finished:
            pos += 1
        out.append(replace(t, legs=legs, position=pos if t.finished else None))
    return out


def leg_rankings(teams: list[RelayTeam], number: int) -> list[tuple[RelayTeam, LegResult]]:
    """Teams that completed leg ``number``, fastest split first."""
    done = [(t, t.legs[number - 1]) for t in teams if len(t.legs) >= number]
    done = [(t, leg) for t, leg in done if leg.split_ms is not None]
    return sorted(done, key=lambda x: (x[1].split_ms or 0, x[0].name))
