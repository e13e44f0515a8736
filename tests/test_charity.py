"""Fun-run charity totals: raised by finishers, pledged by all entrants, per charity."""

from __future__ import annotations

from factory import event, gun, person, read

from livetrack.domain.charity import NO_CHARITY, charity_totals
from livetrack.domain.records import StatusChange
from livetrack.domain.state import RaceState


def _state() -> RaceState:
    st = RaceState(event())
    for bib, charity, pledged in [("1", "Christie", 50), ("2", "Christie", 20),
                                  ("3", "Mind", 100), ("4", "", 10), ("5", "", 0)]:  # fmt: skip
        st.apply(person(bib, "chip", charity=charity, pledged=float(pledged)))
    st.apply(gun("chip"))
    return st


def test_raised_counts_finishers_and_pledged_counts_every_entrant() -> None:
    st = _state()
    totals = charity_totals(st, "chip")
    assert (totals.raised, totals.pledged, totals.entrants) == (0, 180, 4)
    st.apply(read("C1", "finish", 700))
    st.apply(read("C3", "finish", 720))
    totals = charity_totals(st, "chip")
    assert (totals.raised, totals.pledged, totals.finishers) == (150, 180, 2)
    rows = {c.charity: (c.raised, c.pledged) for c in totals.charities}
    assert rows == {"Mind": (100, 100), "Christie": (50, 70), NO_CHARITY: (0, 10)}
    assert totals.charities[0].charity == "Mind"  # largest raised first


def test_dns_leaves_the_pledged_total_and_dnf_does_not_raise() -> None:
    st = _state()
    st.apply(StatusChange("s1", "2", "DNS"))
    st.apply(read("C3", "finish", 720))
    st.apply(StatusChange("s2", "3", "DNF"))
    totals = charity_totals(st, "chip")
    assert (totals.raised, totals.pledged) == (0, 160)
