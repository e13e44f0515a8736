"""The demo's simulated marshals: one judgement per runner the obstacle's mat read, a few
seconds after the read, with ids that stay the same when the demo is planned again."""

from __future__ import annotations

from livetrack import sim
from livetrack.demo.run import COUNTS, demo_event

GUN = 1_800_000_000_000


def test_each_runner_read_at_an_obstacle_is_judged_there_once_soon_after() -> None:
    event = demo_event()
    people = sim.make_participants(event, COUNTS)
    guns = dict.fromkeys(event.races, GUN)
    planned = sim.plan(event, people, guns)
    judged = sim.judgements(event, people, planned)
    obstacle_bibs = {p.bib for p in people if p.race == "ocr"}
    chip_bib = {c: p.bib for p in people for c in p.chips}
    first_read: dict[tuple[str, str], int] = {}
    for a in planned:
        if a.kind == "read" and a.read and a.read["point"] in ("wall", "net"):
            key = (chip_bib[str(a.read["chip"])], str(a.read["point"]))
            first_read[key] = min(int(str(a.read["time"])), first_read.get(key, 1 << 62))
    bodies = [a.read for a in judged if a.read is not None]
    assert {(str(b["bib"]), str(b["point"])) for b in bodies} == set(first_read)
    assert len(bodies) == len(first_read) and {b for b, _ in first_read} <= obstacle_bibs
    for b in bodies:
        lag = int(str(b["time"])) - first_read[(str(b["bib"]), str(b["point"]))]
        assert 2000 <= lag <= 8000 and b["outcome"] in ("cleared", "failed", "missed")
    assert {b["outcome"] for b in bodies} == {"cleared", "failed", "missed"}
    again = [a.read for a in sim.judgements(event, people, planned)]
    assert again == bodies  # the same ids: a restarted demo's posts are duplicates
