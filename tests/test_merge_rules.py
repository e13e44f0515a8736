"""Mat and marshal together: how chip passings and marshal sightings merge (pure fold)."""

from __future__ import annotations

from factory import GUN, event, gun, person, read

from livetrack.domain.passings import CONFIRM_WINDOW_MS
from livetrack.domain.readers import ReaderHealth
from livetrack.domain.records import ChipRead, Correction, Sighting
from livetrack.domain.state import PROBLEMS_TOPIC, RaceState, marshal_topic


def started(*bibs: str) -> RaceState:
    st = RaceState(event())
    for b in bibs:
        st.apply(person(b))
    st.apply(gun())
    return st


def seen(ident: str, bib: str, at_s: float, point: str = "half") -> Sighting:
    return Sighting(ident, point, bib, GUN + int(at_s * 1000), by="marshal half")


def test_sighting_near_a_chip_passing_confirms_it_and_chip_time_wins() -> None:
    st = started("1")
    st.apply(read("C1", "half", 300))
    st.apply(seen("s1", "1", 330))
    p = st.runners["1"].passings["half"]
    assert (p.time_ms, p.source, p.confirmed, p.contradiction) == (
        GUN + 300_000,
        "chip",
        True,
        False,
    )


def test_sighting_before_the_chip_read_arrives_is_replaced_by_the_chip_passing() -> None:
    st = started("1")
    st.apply(seen("s1", "1", 305))
    assert st.runners["1"].passings["half"].source == "manual"
    st.apply(read("C1", "half", 300))
    p = st.runners["1"].passings["half"]
    assert (p.time_ms, p.source, p.confirmed) == (GUN + 300_000, "chip", True)


def test_sighting_alone_makes_a_manual_passing_that_ranks() -> None:
    st = started("1", "2")
    st.apply(read("C2", "half", 310))
    st.apply(seen("s1", "1", 300))
    p = st.runners["1"].passings["half"]
    assert (p.time_ms, p.source, p.confirmed) == (GUN + 300_000, "manual", False)
    assert [b for _, b in st.boards.top("mile", "half", "all", 10)] == ["1", "2"]


def test_sighting_far_from_the_chip_passing_is_a_contradiction_not_a_fix() -> None:
    st = started("1")
    st.apply(read("C1", "half", 300))
    changed = st.apply(seen("s1", "1", 300 + 600))  # ten minutes after the mat saw them
    p = st.runners["1"].passings["half"]
    assert p.time_ms == GUN + 300_000 and p.source == "chip"
    assert p.contradiction and not p.confirmed
    assert st.runners["1"].contradiction
    assert PROBLEMS_TOPIC in changed


def test_confirm_window_edge_is_inclusive() -> None:
    st = started("1", "2")
    st.apply(read("C1", "half", 300))
    st.apply(read("C2", "half", 300))
    st.apply(seen("s1", "1", 300 + CONFIRM_WINDOW_MS / 1000))
    st.apply(seen("s2", "2", 300 + CONFIRM_WINDOW_MS / 1000 + 1))
    assert st.runners["1"].passings["half"].confirmed
    assert st.runners["2"].passings["half"].contradiction


def test_undoing_the_contradicting_sighting_clears_the_flag() -> None:
    st = started("1")
    st.apply(read("C1", "half", 300))
    st.apply(seen("s1", "1", 900))
    st.apply(Correction("u1", "undo", target="sighting:s1"))
    p = st.runners["1"].passings["half"]
    assert not p.contradiction and not st.runners["1"].contradiction


def test_undoing_a_lone_sighting_removes_the_manual_passing() -> None:
    st = started("1")
    st.apply(seen("s1", "1", 300))
    changed = st.apply(Correction("u1", "undo", target="sighting:s1"))
    assert "half" not in st.runners["1"].passings
    assert st.boards.count("mile", "half", "all") == 0
    assert marshal_topic("half") in changed


def test_a_bib_nobody_has_is_a_problem_and_undoing_it_clears_the_problem() -> None:
    st = started("1")
    changed = st.apply(seen("s1", "999", 300))
    assert PROBLEMS_TOPIC in changed
    assert st.problems["sighting:s1"].kind == "unknown-bib"
    assert st.problems["sighting:s1"].point == "half"
    changed = st.apply(Correction("u1", "undo", target="sighting:s1"))
    assert "sighting:s1" not in st.problems and PROBLEMS_TOPIC in changed


def test_sighting_sooner_than_possible_is_kept_but_flagged() -> None:
    st = started("1")
    st.apply(seen("s1", "1", 60))  # 800 m in a minute at a 4 m/s limit: impossible
    p = st.runners["1"].passings["half"]
    assert p.source == "manual" and p.contradiction


def test_a_timer_correction_overrides_chip_and_sighting_and_can_be_undone() -> None:
    st = started("1")
    st.apply(read("C1", "finish", 500))
    st.apply(Correction("e1", "edit", "1", "finish", GUN + 480_000, reason="mat late"))
    p = st.runners["1"].passings["finish"]
    assert (p.time_ms, p.source) == (GUN + 480_000, "corrected")
    st.apply(Correction("u1", "undo", target="correction:e1"))
    assert st.runners["1"].passings["finish"].time_ms == GUN + 500_000


def test_reader_health_counts_reads_and_estimates_clock_offset() -> None:
    health = ReaderHealth()
    for i in range(5):
        t = GUN + i * 10_000
        health.observe(ChipRead("r9", "finish", f"C{i}", t, received_ms=t + 2_000 + i), "finish")
    stats = health.get("r9")
    assert stats is not None
    assert stats.reads == 5 and stats.last_read_ms == GUN + 40_000
    assert stats.clock_offset_ms == 2_000
    assert stats.per_minute(GUN + 42_004) == 5
    assert stats.per_minute(GUN + 42_004 + 60_000) == 0
    assert stats.connection(GUN + 45_000) == "receiving"
    assert stats.connection(GUN + 200_000) == "quiet"


def test_the_fold_keeps_reader_health() -> None:
    st = started("1")
    st.apply(ChipRead("spare", "finish", "C1", GUN + 500_000, received_ms=GUN + 500_300))
    stats = st.readers.get("spare")
    assert (
        stats is not None
        and stats.point == st.event.point_for("spare", "finish")
        and stats.clock_offset_ms == 300
    )
