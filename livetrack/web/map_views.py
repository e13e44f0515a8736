"""View models of the course map page: the course as SVG geometry with its checkpoints
labelled, and the runners on course with what the map needs to move them.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from livetrack.domain.expect import expected, next_checkpoint
from livetrack.domain.state import RaceState


def course_map(state: RaceState, race_id: str, size: int = 1000) -> dict[str, Any]:
    """The course as SVG geometry: the polyline projected into a ``size``-wide box, each
    vertex with its distance along the course in metres (scaled to the course length), and
    the checkpoints placed by distance."""
    course = state.event.races[race_id].course
    pts = list(course.polyline)
    if len(pts) < 2:  # no polyline: a straight line is still a map of progress
        pts = [(0.0, 0.0), (0.0, 0.01)]
    lat0 = sum(p[0] for p in pts) / len(pts)
    k = math.cos(math.radians(lat0))
    xy = [(lon * k, -lat) for lat, lon in pts]
    minx, maxx = min(p[0] for p in xy), max(p[0] for p in xy)
    miny, maxy = min(p[1] for p in xy), max(p[1] for p in xy)
    span = max(maxx - minx, maxy - miny) or 1.0
    pad, side = 40, 100  # labels that do not fit outside the course go inside it
    scale = (size - 2 * side) / span
    proj = [(side + (x - minx) * scale, pad + (y - miny) * scale) for x, y in xy]
    cum = [0.0]
    for a, b in itertools.pairwise(proj):
        cum.append(cum[-1] + math.dist(a, b))
    factor = course.length_m / cum[-1] if cum[-1] else 1.0
    dist = [round(c * factor, 1) for c in cum]
    height = max(240, int(max(p[1] for p in proj) + pad))
    proj = [(x, y + (height - pad - max(p[1] for p in proj)) / 2) for x, y in proj]

    def at(d: float) -> tuple[float, float]:
        for i in range(1, len(dist)):
            if d <= dist[i] or i == len(dist) - 1:
                seg = dist[i] - dist[i - 1] or 1.0
                f = min(1.0, max(0.0, (d - dist[i - 1]) / seg))
                (x0, y0), (x1, y1) = proj[i - 1], proj[i]
                return round(x0 + (x1 - x0) * f, 1), round(y0 + (y1 - y0) * f, 1)
        return proj[0]

    return {
        "race": race_id,
        "width": size,
        "height": height,
        "path": " ".join(f"{x:.1f},{y:.1f}" for x, y in proj),
        "points": [[round(x, 1), round(y, 1), d] for (x, y), d in zip(proj, dist, strict=True)],
        "checkpoints": _place(
            _labels([(cp.name, at(cp.distance_m)) for cp in course.checkpoints]),
            sum(x for x, _ in proj) / len(proj),
            size,
            flat=max(y for _, y in proj) - min(y for _, y in proj) < 0.1 * size,
        ),
    }


#: Checkpoint labels on the map: 34 px bold text is about this wide a letter, set this far
#: from the checkpoint's circle.
LETTER_W, LABEL_GAP = 21, 24


def _place(
    labels: list[dict[str, Any]], centre_x: float, width: int, flat: bool = False
) -> list[dict[str, Any]]:
    """Put each label outside the course (away from its centre) where it fits in the map's
    width, else on the other side, else on whichever side has more room: ``anchor``, ``tx``
    and ``ty`` for the SVG text. On a ``flat`` course (a straight line across the map) the
    labels go under and over the line by turns, centred on their checkpoints."""
    for i, lab in enumerate(labels):
        x, y = lab["xy"]
        if flat:
            lab["anchor"], lab["tx"] = "middle", x
            lab["ty"] = round(y + 56 if i % 2 == 0 else y - 30, 1)
            continue
        lab["ty"] = round(y + 12, 1)
        need = LETTER_W * max(len(part) for part in lab["name"].split(" / ")) + LABEL_GAP + 8
        room_left, room_right = x, width - x
        outward_left = x < centre_x
        if (room_left if outward_left else room_right) >= need:
            left = outward_left
        elif (room_right if outward_left else room_left) >= need:
            left = not outward_left
        else:
            left = room_left > room_right
        lab["anchor"] = "end" if left else "start"
        lab["tx"] = round(x - LABEL_GAP if left else x + LABEL_GAP, 1)
    return labels


def _labels(points: list[tuple[str, tuple[float, float]]]) -> list[dict[str, Any]]:
    """Checkpoints at one spot (a loop's start and finish, a lap's two passes) share a label."""
    groups: dict[tuple[int, int], dict[str, Any]] = {}
    for name, xy in points:
        key = (round(xy[0] / 20), round(xy[1] / 20))
        if key in groups:
            if not name.startswith(groups[key]["first"]):
                groups[key]["name"] += " / " + name
        else:
            groups[key] = {"name": name, "first": name, "xy": xy}
    return list(groups.values())


def field_positions(state: RaceState, race_id: str, limit: int = 400) -> dict[str, Any]:
    """Runners on course with what a map needs to move them between checkpoints: the last
    passing (distance, time) and the expected next one."""
    out: list[dict[str, Any]] = []
    for r in state.runners.values():
        if r.race.id != race_id or r.status != "ok" or not r.passings:
            continue
        nxt = next_checkpoint(r)
        if nxt is None:
            continue
        last = None
        for cp in reversed(r.race.course.checkpoints):
            p = r.passings.get(cp.id)
            if p is not None:
                last = (cp.distance_m, p.time_ms)
                break
        exp = expected(state, r, nxt)
        if last is None or exp is None:
            continue
        d1 = r.race.course.checkpoints[[c.id for c in r.race.course.checkpoints].index(nxt)]
        out.append(
            {"bib": r.bib, "d0": last[0], "t0": last[1], "d1": d1.distance_m, "t1": exp.at_ms}
        )
    out.sort(key=lambda x: -int(x["t0"]))
    return {"race": race_id, "runners": out[:limit], "now_ms": state.now_ms}
