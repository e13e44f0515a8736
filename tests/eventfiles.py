"""Event files (TOML) for tests, written the way a user writes them, from a few parts.

Each part is a block of TOML ending in a newline; :func:`event_file` puts the blocks one blank
line apart. The text is plain, so a test may still add blocks or replace a line of it.
"""

from __future__ import annotations

from collections.abc import Sequence

#: A checkpoint: id, name, distance in metres.
Checkpoint = tuple[str, str, int]

START: Checkpoint = ("start", "Start", 0)
HALF: Checkpoint = ("half", "Halfway", 800)
FINISH: Checkpoint = ("finish", "Finish", 1600)
#: A mile with a start and a finish, and the same with a halfway checkpoint.
MILE: tuple[Checkpoint, ...] = (START, FINISH)
MILE_WITH_HALF: tuple[Checkpoint, ...] = (START, HALF, FINISH)


def header(id: str, name: str, date: str = "2026-06-14", timezone: str = "Europe/London") -> str:
    return f'[event]\nid = "{id}"\nname = "{name}"\ndate = "{date}"\ntimezone = "{timezone}"\n'


def course(id: str, checkpoints: Sequence[Checkpoint]) -> str:
    rows = "".join(
        f'  {{ id = "{cp}", name = "{name}", distance = {metres} }},\n'
        for cp, name, metres in checkpoints
    )
    return f'[[course]]\nid = "{id}"\ncheckpoints = [\n{rows}]\n'


def race(id: str, name: str, course: str, **fields: str | float) -> str:
    """A ``[[race]]``; ``fields`` in the order given (strings quoted, numbers as they are)."""
    lines = [f'id = "{id}"', f'name = "{name}"', f'course = "{course}"']
    lines += [f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}" for k, v in fields.items()]
    return "[[race]]\n" + "\n".join(lines) + "\n"


def point(id: str, checkpoint: str | None = None, role: str | None = None) -> str:
    """A ``[[timing_point]]`` at ``checkpoint`` (by default the checkpoint named ``id``)."""
    text = f'[[timing_point]]\nid = "{id}"\ncheckpoint = "{checkpoint or id}"\n'
    return text + (f'role = "{role}"\n' if role else "")


def points(*ids: str) -> list[str]:
    """A timing point at each checkpoint named."""
    return [point(i) for i in ids]


def event_file(*blocks: str | Sequence[str]) -> str:
    """The blocks (or lists of blocks), one blank line apart, after a blank first line."""
    flat: list[str] = []
    for b in blocks:
        flat += [b] if isinstance(b, str) else list(b)
    return "\n" + "\n".join(flat)
