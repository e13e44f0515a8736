"""Whether a time typed by hand for a runner's passing is credible.

A correction (``add`` or ``edit``) that would give the runner a negative elapsed time, or a
pace between it and a neighbouring passing (or the gun) faster than the race's
``max_speed_mps``, is refused at the edge unless the timer confirms it: such a time is far more
often a typo (a wrong hour, the wrong day) than a fact, and ranked first it would be published.
"""

from __future__ import annotations

from livetrack.domain.state import RaceState, Runner


def implausible(state: RaceState, runner: Runner, point: str, time_ms: int) -> str:
    """Why ``time_ms`` at checkpoint ``point`` is not credible for ``runner`` ("" if it is)."""
    race = runner.race
    gun = state.gun_ms(race.id, runner.p.wave)
    if gun is not None and time_ms < gun:
        return f"gives {_clock(time_ms - gun)} since {race.name}'s gun (before the start)"
    marks: list[tuple[float, int, str]] = []  # (metres, time, name) in course order
    if gun is not None:
        marks.append((0.0, gun, "the gun"))
    here = -1
    for cp in race.course.checkpoints:
        if cp.id == point:
            here = len(marks)
            marks.append((cp.distance_m, time_ms, cp.name))
            continue
        passing = runner.passings.get(cp.id)
        if passing is not None and cp.distance_m > 0:
            marks.append((cp.distance_m, passing.time_ms, cp.name))
    if here < 0:
        return ""
    for a, b in ((here - 1, here), (here, here + 1)):
        if a < 0 or b >= len(marks):
            continue
        (d0, t0, n0), (d1, t1, n1) = marks[a], marks[b]
        metres = d1 - d0
        if metres <= 0:
            continue
        seconds = (t1 - t0) / 1000
        if seconds <= 0 or metres / seconds > race.max_speed_mps:
            return (
                f"{metres:.0f} m from {n0} to {n1} in {_clock(t1 - t0)} is faster than "
                f"{race.name}'s limit of {race.max_speed_mps:g} m/s"
            )
    return ""


def _clock(ms: int) -> str:
    sign = "-" if ms < 0 else ""
    s = abs(ms) // 1000
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{sign}{h}:{m:02d}:{sec:02d}" if h else f"{sign}{m}:{sec:02d}"
