"""Seeding the log with a participants file, and knowing when a restart need not read it again.

Seeding appends every entry of the file whose row the fold does not already hold exactly so;
each entry's key is a hash of its content, so an entry stored once is a duplicate ever after.
Once every entry of a file is in the log, a note is kept in the log's snapshot store under a
name made of the file's bytes, the event's configuration and the fold code's version (which
covers the parser): the same file, parsed by the same code for the same event, gives the same
entries, and all of them are stored already, so seeding it again would store nothing. A
restart that finds the note skips parsing the file (and repeats the row problems the note
kept). The note is used only when the fold has reached the offset it was saved at, so a log
that was replaced by a shorter one is seeded again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from dataclasses import dataclass
from typing import Any

from livetrack.domain.event import Event
from livetrack.domain.participants import parse_participants
from livetrack.domain.snapshot import event_fingerprint
from livetrack.service.runtime import Runtime
from livetrack.service.snapshots import code_version
from livetrack.store.base import SnapshotStore

log = logging.getLogger("livetrack.entries")


@dataclass(frozen=True)
class EntriesFile:
    """A participants CSV as read from disk (not yet parsed), and the name it is reported by."""

    name: str
    text: str


def note_name(entries: EntriesFile, event: Event, version: str) -> str:
    """The snapshot-store name of the note that every entry of ``entries`` is in the log."""
    digest = hashlib.sha256(f"entries:{version}:{event_fingerprint(event)}\0".encode())
    digest.update(entries.text.encode("utf-8", "surrogatepass"))
    return f"entries-{digest.hexdigest()[:16]}"


def report(name: str, entries: int, problems: list[str]) -> None:
    """Print the rows that were skipped, as ``livetrack serve`` does for any participants file."""
    for problem in problems:
        print(f"{name}: {problem}", file=sys.stderr)
    if problems:
        print(f"{name}: {entries} participants loaded, {len(problems)} rows skipped",
              file=sys.stderr)  # fmt: skip


async def seed(rt: Runtime, entries: EntriesFile, timeout: float) -> int:
    """Make sure every entry of ``entries`` is in the log and folded. Call once caught up.
    Returns how many entries were stored (0 when the note said they all were)."""
    store = rt.log if isinstance(rt.log, SnapshotStore) else None
    name = note_name(entries, rt.event, code_version())
    if store is not None:
        note = _note(await store.load_snapshot(name), rt)
        if note is not None:
            report(entries.name, note["entries"], note["problems"])
            log.info("%s: all %d entries are in the log already", entries.name, note["entries"])
            check_standards(rt, entries)
            return 0
    people, errors = parse_participants(entries.text, rt.event)
    problems = [str(e) for e in errors]
    report(entries.name, len(people), problems)
    stored = await rt.seed_participants(people, timeout)
    if store is not None and rt.offset is not None:
        body = json.dumps({"entries": len(people), "problems": problems}).encode()
        await store.save_snapshot(name, rt.offset, body)
    check_standards(rt, entries)
    return stored


#: Entries below their standard named one by one in the log at start (the rest are counted).
NAMED_BELOW = 20


def check_standards(rt: Runtime, entries: EntriesFile) -> list[str]:
    """Log, as ``check-event`` prints, the entries whose qualifying performance is slower
    than their race's qualifying standard (file, line, bib, the standard and by how much),
    and a summary; returns the lines logged. It reports; the entries stay."""
    from livetrack.domain.standards import check_entries, csv_lines

    races = rt.event.races
    if not any(r.standards and r.standards.qualifying for r in races.values()):
        return []
    people = [r.p for r in rt.state.runners.values()]
    below, missing = check_entries(races, people, csv_lines(entries.text))
    out = [f"{entries.name}: {b}" for b in below[:NAMED_BELOW]]
    if len(below) > NAMED_BELOW:
        out.append(f"{entries.name}: … and {len(below) - NAMED_BELOW} more below their standard")
    summary = f"qualifying standards: {len(below)} entries below their standard"
    out.append(summary + (f", {missing} without a qualifying time" if missing else ""))
    for line in out:
        (log.warning if below else log.info)("%s", line)
    return out


def _note(found: tuple[str, bytes] | None, rt: Runtime) -> dict[str, Any] | None:
    """The note's content, if there is one that this process's fold has reached."""
    if found is None:
        return None
    offset, body = found
    if rt.offset is None or rt.offset < offset:
        return None
    try:
        note = json.loads(body)
    except ValueError:
        return None
    if (
        not isinstance(note, dict)
        or not isinstance(note.get("entries"), int)
        or not isinstance(note.get("problems"), list)
        or not all(isinstance(p, str) for p in note["problems"])
    ):
        return None
    return note
