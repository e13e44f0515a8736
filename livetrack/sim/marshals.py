"""The simulated marshals at a course's obstacles: each runner the mat at an obstacle read
is judged there a few seconds later (mostly cleared, some failed, now and then missed).

Judgements are :class:`~livetrack.sim.race.Action` values of kind ``judge`` that
:func:`~livetrack.sim.race.play` posts to ``POST /api/v1/judgements`` with the marshal token
of that obstacle's checkpoint. Their ids are derived from the runner and the obstacle, so a
restarted demo posting them again makes duplicates, never second judgements.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence

from livetrack.domain.event import Event
from livetrack.domain.records import ParticipantRecord
from livetrack.sim.race import Action

#: How often a marshal judges a runner failed, and missed (the rest cleared).
FAILED = 0.18
MISSED = 0.04
_NAMESPACE = uuid.UUID("6f1d4a52-5d0e-4c4e-9d7a-0b6c3f1e2a90")


def judgements(
    event: Event,
    participants: Sequence[ParticipantRecord],
    actions: Sequence[Action],
    seed: int = 23,
) -> list[Action]:
    """One judgement per runner and obstacle whose main mat read the runner (from the planned
    reads in ``actions``), 2-8 s after that read, in race-time order."""
    rng = random.Random(seed)
    bib_of = {
        chip: p.bib
        for p in participants
        if event.races.get(p.race) is not None and event.races[p.race].obstacles
        for chip in p.chips
    }
    if not bib_of:
        return []
    at_obstacle = {o.point for race in event.races.values() for o in race.obstacles}
    main = {p.id for p in event.points.values() if p.role == "main"}
    first: dict[tuple[str, str], int] = {}
    for a in actions:
        if a.kind != "read" or a.read is None:
            continue
        chip, point, t = a.read["chip"], a.read["point"], a.read["time"]
        if not isinstance(chip, str) or not isinstance(t, int) or point not in main:
            continue
        if point in at_obstacle and chip in bib_of:
            key = (bib_of[chip], str(point))
            first[key] = min(t, first.get(key, t))
    out = []
    for (bib, point), t in sorted(first.items(), key=lambda kv: (kv[1], kv[0])):
        roll = rng.random()
        outcome = "missed" if roll < MISSED else "failed" if roll < MISSED + FAILED else "cleared"
        at = t + rng.randint(2000, 8000)
        jid = str(uuid.uuid5(_NAMESPACE, f"{event.id}:{bib}:{point}"))
        body: dict[str, object] = {
            "id": jid, "point": point, "bib": bib, "outcome": outcome, "time": at
        }  # fmt: skip
        out.append(Action(at, "judge", read=body))
    return out
