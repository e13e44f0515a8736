"""Team scoring, computed from the fold's state (pure; nothing here changes the state).

A team is every participant of a race with the same ``team`` value. Its score counts the
best ``K`` finish times of its members (``K`` = ``race.team.counting``) that together meet the
gender rule (at least ``min_women`` women and ``min_men`` men among the ``K``):

* ``sum``: the score is the sum of those ``K`` times; ``average``: their mean. Both rank the
  same way; they only show differently.
* A team with fewer than ``K`` qualifying finishers is *provisional*: it has no position and
  is listed after every complete team (more qualifying finishers first, then the lower partial
  score). Its members still finishing may complete it.
* Ties between complete teams are broken by the time of the ``K``-th (slowest) scorer: the
  team that brought its last counting runner home sooner wins (as in cross-country scoring).
  Teams equal on both share the position (and are listed by name).

Times are those the race ranks by (gun or chip, see ``Race.rank_by``). DNF, DQ and DNS
members never score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from livetrack.domain.event import Race, TeamScoring
from livetrack.domain.state import RaceState, Runner


@dataclass(frozen=True, slots=True)
class Member:
    """One team member: ``elapsed_ms`` at the finish (None while not finished)."""

    bib: str
    name: str
    gender: str
    elapsed_ms: int | None
    status: str
    scoring: bool = False


@dataclass(frozen=True, slots=True)
class TeamResult:
    """One team's standing. ``score_ms`` is the sum (or mean) of its scorers' times;
    ``position`` is None while the team is provisional."""

    team: str
    position: int | None
    score_ms: int | None
    complete: bool
    scorers: tuple[str, ...]
    members: tuple[Member, ...]
    needed: int
    last_scorer_ms: int | None

    @property
    def counted(self) -> int:
        return len(self.scorers)


def select_scorers(
    finishers: Sequence[tuple[int, str, str]], rule: TeamScoring
) -> tuple[list[tuple[int, str, str]], bool]:
    """The counting members among ``finishers`` (``(elapsed_ms, gender, bib)``), best first,
    and whether they make a complete team.

    The best ``min_women`` women and ``min_men`` men are taken first, then the fastest of the
    rest fill the remaining places; this minimises the sum under the gender rule. When the
    team cannot (yet) meet the rule, the scorers returned are the best partial selection:
    each reserved place is only filled by its own gender.
    """
    ordered = sorted(finishers)
    women = [f for f in ordered if f[1] == "F"][: rule.min_women]
    men = [f for f in ordered if f[1] == "M"][: rule.min_men]
    reserved = set(women) | set(men)
    free = max(0, rule.counting - rule.min_women - rule.min_men)
    rest = [f for f in ordered if f not in reserved][:free]
    chosen = sorted([*women, *men, *rest])[: rule.counting]
    complete = (
        len(women) >= rule.min_women and len(men) >= rule.min_men and len(chosen) >= rule.counting
    )
    return chosen, complete


def _finish_ms(runner: Runner) -> int | None:
    return runner.ranked.get(runner.race.course.checkpoints[-1].id)


def score_teams(race: Race, runners: Sequence[Runner]) -> list[TeamResult]:
    """Standings of every team among ``runners`` (members of ``race``), best first."""
    rule = race.team
    by_team: dict[str, list[Runner]] = {}
    for r in runners:
        if r.p.team and r.race.id == race.id:
            by_team.setdefault(r.p.team, []).append(r)
    results: list[TeamResult] = []
    for team, members in by_team.items():
        done = [(t, r.p.gender, r.bib) for r in members if (t := _finish_ms(r)) is not None]
        chosen, complete = select_scorers(done, rule)
        scorers = tuple(bib for _, _, bib in chosen)
        total = sum(t for t, _, _ in chosen)
        score: int | None = None
        if chosen:
            score = total if rule.method == "sum" else round(total / len(chosen))
        listed = sorted(
            (
                Member(r.bib, r.name, r.p.gender, _finish_ms(r), r.status, scoring=r.bib in scorers)
                for r in members
            ),
            key=lambda m: (m.elapsed_ms is None, m.elapsed_ms or 0, m.name),
        )
        results.append(
            TeamResult(
                team=team,
                position=None,
                score_ms=score,
                complete=complete,
                scorers=scorers,
                members=tuple(listed),
                needed=rule.counting,
                last_scorer_ms=chosen[-1][0] if chosen else None,
            )
        )

    def order(t: TeamResult) -> tuple[int, int, int, int, str]:
        group = 0 if t.complete else 1
        return (group, -t.counted, t.score_ms or 0, t.last_scorer_ms or 0, t.team)

    results.sort(key=order)
    ranked: list[TeamResult] = []
    prev: TeamResult | None = None
    for i, res in enumerate(results, start=1):
        if not res.complete:
            ranked.append(res)
            continue
        tied = (
            prev is not None
            and prev.score_ms == res.score_ms
            and prev.last_scorer_ms == res.last_scorer_ms
        )
        position = prev.position if tied and prev is not None else i
        res = replace(res, position=position)
        ranked.append(res)
        prev = res
    return ranked


def team_standings(state: RaceState, race_id: str) -> list[TeamResult]:
    """Live team standings of ``race_id`` from the fold's current state."""
    race = state.event.races[race_id]
    return score_teams(race, [r for r in state.runners.values() if r.race.id == race_id])


def has_teams(state: RaceState, race_id: str) -> bool:
    """Whether any entrant of ``race_id`` belongs to a team (team challenge or not)."""
    return any(r.p.team for r in state.runners.values() if r.race.id == race_id)
