"""Team scoring: best K times, sum or average, gender rules, provisional teams and ties."""

from __future__ import annotations

from factory import EVENT_TOML, gun, person, read

from livetrack.domain.event import TeamScoring, load_event_text
from livetrack.domain.state import RaceState
from livetrack.domain.teams import select_scorers, team_standings


def _state(toml_team: str = "") -> RaceState:
    text = EVENT_TOML.replace(
        'id = "loop"\nname = "Two laps"',
        'id = "loop"\nname = "Two laps"\nkind = "team"' + toml_team,
    )
    return RaceState(load_event_text(text))


def _finish(st: RaceState, bib: str, team: str, seconds: float, gender: str = "M") -> None:
    """``bib`` of ``team`` finishes 1000 + ``seconds`` after the gun."""
    st.apply(person(bib, "loop", team=team, gender=gender))
    st.apply(read(f"C{bib}", "finish", 1000 + seconds))


def test_sum_of_best_three_ranks_teams_and_ignores_the_fourth_runner() -> None:
    st = _state()
    st.apply(gun("loop"))
    for bib, team, t in [("1", "A", 500), ("2", "A", 510), ("3", "A", 520), ("4", "A", 900),
                         ("5", "B", 490), ("6", "B", 530), ("7", "B", 560)]:  # fmt: skip
        _finish(st, bib, team, t)
    a, b = team_standings(st, "loop")
    assert (a.team, a.position, a.score_ms) == ("A", 1, 4_530_000)
    assert (b.team, b.position, b.score_ms) == ("B", 2, 4_580_000)
    assert "4" not in a.scorers and a.complete


def test_team_with_fewer_than_k_finishers_is_provisional_and_listed_after_complete_teams() -> None:
    st = _state()
    st.apply(gun("loop"))
    for bib, team, t in [("1", "A", 400), ("2", "A", 410),
                         ("5", "B", 600), ("6", "B", 610), ("7", "B", 620)]:  # fmt: skip
        _finish(st, bib, team, t)
    st.apply(person("3", "loop", team="A"))  # entered, still running
    b, a = team_standings(st, "loop")
    assert (b.team, b.position, b.complete) == ("B", 1, True)
    assert (a.team, a.position, a.complete, a.counted) == ("A", None, False, 2)
    _finish(st, "3", "A", 700)
    a, b = team_standings(st, "loop")
    assert (a.team, a.position, a.complete) == ("A", 1, True)


def test_ties_are_broken_by_the_kth_scorer_and_equal_teams_share_the_position() -> None:
    st = _state()
    st.apply(gun("loop"))
    # A: 500+510+600 = 1610, B: 490+560+560 = 1610; B's third scorer (560) beat A's (600).
    for bib, team, t in [("1", "A", 500), ("2", "A", 510), ("3", "A", 600),
                         ("5", "B", 490), ("6", "B", 560), ("7", "B", 560)]:  # fmt: skip
        _finish(st, bib, team, t)
    first, second = team_standings(st, "loop")
    assert (first.team, first.position, second.team, second.position) == ("B", 1, "A", 2)
    # C equals B on total and on the K-th scorer: they share first place.
    for bib, t in [("9", 500), ("11", 550), ("13", 560)]:
        _finish(st, bib, "C", t)
    top = team_standings(st, "loop")
    assert [(t.team, t.position) for t in top] == [("B", 1), ("C", 1), ("A", 3)]


def test_gender_rule_takes_the_best_woman_even_when_slower_men_would_score_less() -> None:
    rule = TeamScoring("sum", 3, min_women=1, min_men=1)
    finishers = [(400, "M", "1"), (410, "M", "2"), (420, "M", "3"), (600, "F", "4")]
    chosen, complete = select_scorers(finishers, rule)
    assert complete and [b for _, _, b in chosen] == ["1", "2", "4"]
    chosen, complete = select_scorers(finishers[:3], rule)
    assert not complete  # no woman has finished: the team cannot score yet


def test_gender_rule_from_the_event_file_makes_an_all_male_team_provisional() -> None:
    st = _state('\nteam = { method = "average", counting = 2, min_women = 1 }')
    st.apply(gun("loop"))
    _finish(st, "1", "A", 400, "M")
    _finish(st, "3", "A", 410, "M")
    _finish(st, "5", "B", 500, "M")
    _finish(st, "7", "B", 700, "F")
    b, a = team_standings(st, "loop")
    assert (b.team, b.position, b.score_ms) == ("B", 1, 1_600_000)  # average of 1500 and 1700
    assert (a.team, a.complete) == ("A", False)


def test_dnf_member_never_scores() -> None:
    from livetrack.domain.records import StatusChange

    st = _state("\nteam = { counting = 2 }")
    st.apply(gun("loop"))
    _finish(st, "1", "A", 400)
    _finish(st, "3", "A", 410)
    st.apply(StatusChange("s1", "3", "DQ"))
    (a,) = team_standings(st, "loop")
    assert not a.complete and a.scorers == ("1",)
