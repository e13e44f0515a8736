"""What the race page shows of a round: start lists before results, places, times, Q/q, and
the thousandths where they decided who went on."""

from __future__ import annotations

from meetkit import drawn_state, heat_rows, lif

from livetrack.ingest.heats import import_lif
from livetrack.web.meets_views import rounds_view, screen_view
from livetrack.web.timer_views import guns_view


def test_a_heat_is_a_start_list_until_its_result_is_in() -> None:
    st = drawn_state()
    view = rounds_view(st, "b100")
    heats, final = view["rounds"]
    assert heats["status"] == "start list" and final["status"] == "not drawn yet"
    first = heats["heats"][0]
    assert not first["done"] and [r["lane"] for r in first["rows"]] == sorted(
        r["lane"] for r in first["rows"]
    )
    assert screen_view(st, "b100")["latest"] is None


def test_thousandths_show_where_they_decided_the_last_q_across_heats() -> None:
    st = drawn_state()
    third = {1: "14.121", 2: "14.129", 3: "14.125"}  # all three show 14.13
    for heat, time in third.items():
        rows = heat_rows(st, "heats", heat, 14_000)
        rows[2] = (*rows[2][:3], time, rows[2][4])
        got = import_lif(st, lif(heat, rows), f"h{heat}.lif")
        assert got.record is not None
        st.apply(got.record)
    heats = rounds_view(st, "b100")["rounds"][0]["heats"]
    shown = {h["number"]: next(r for r in h["rows"] if r["place"] == 3) for h in heats}
    assert {r["time"] for r in shown.values()} == {"14.13"}
    assert [(shown[h]["mark"], shown[h]["fine"]) for h in (1, 2, 3)] == [
        ("q", "14.121"), ("", "14.129"), ("q", "14.125")]  # fmt: skip
    fourth = next(r for r in heats[1]["rows"] if r["place"] == 4)
    assert fourth["mark"] == "" and fourth["fine"] == ""
    latest = screen_view(st, "b100")
    assert latest["latest"]["number"] == 3 and latest["next"]["name"] == "Final"


def test_the_timers_start_guns_leave_out_a_race_run_in_rounds() -> None:
    st = drawn_state()
    ids = [r["id"] for r in guns_view(st, 0)["races"]]
    assert "b100" not in ids and ids  # its heats are started by the photo-finish system
