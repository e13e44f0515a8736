"""``livetrack series FILE [--json] [--html PAGE]``: the standings of a series across events
(``--html`` also writes them as a standalone page).

Each event's results are read from its results export (CSV or JSON) or by folding its event
log (with its event file); paths in the series file are relative to the series file. The
rules (points, identity, ties) are in :mod:`livetrack.domain.series`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from livetrack.domain.event import ConfigError, load_event_text
from livetrack.domain.results import table
from livetrack.domain.series import (
    Placing,
    Series,
    SeriesError,
    SeriesEvent,
    Standing,
    parse_series,
    placings_from_csv,
    placings_from_json,
    standings,
)
from livetrack.domain.state import RaceState


def _read(path: Path, file: str, line: int | None, what: str) -> str:
    try:
        return path.read_text("utf-8-sig")
    except FileNotFoundError:
        raise SeriesError(file, line, f"{what}: no such file {str(path)!r}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SeriesError(file, line, f"{what}: cannot read {str(path)!r}: {exc}") from None


async def _fold(url: str, state: RaceState) -> None:
    from livetrack.store import open_log

    log = open_log(url)
    try:
        head = await log.head()
        if head is None:
            return
        async for page in log.tail_pages(None):
            state.apply_all([record for _, record in page])
            if page.end >= head:
                break
    finally:
        await log.close()


def _from_log(e: SeriesEvent, base: Path, file: str) -> list[Placing]:
    what = f"event {e.name!r}"
    event_path = base / e.event_file
    try:
        event = load_event_text(_read(event_path, file, e.line, what))
    except ConfigError as exc:
        raise SeriesError(str(event_path), None, str(exc)) from None
    race = e.race or (next(iter(event.races)) if len(event.races) == 1 else "")
    if race not in event.races:
        known = ", ".join(event.races)
        raise SeriesError(file, e.line, f"{what}: race {e.race!r} is not one of {known}")
    log_path = base / e.log
    if not log_path.is_file():
        raise SeriesError(file, e.line, f"{what}: no such log {str(log_path)!r}")
    state = RaceState(event)
    asyncio.run(_fold(str(log_path), state))
    out = []
    for row in table(state, race).rows:
        if row.status == "finished" and row.overall_position is not None:
            runner = state.runners[row.bib]
            birth_year = runner.p.birth_year
            out.append(
                Placing(row.overall_position, row.name, row.gender, row.club, "", birth_year)
            )
    return out


def load(path: str) -> tuple[Series, list[list[Placing]]]:
    """The series at ``path`` and each event's finishers; raises :class:`SeriesError`."""
    file = Path(path)
    series = parse_series(_read(file, path, None, "series file"), path)
    base = file.parent
    results: list[list[Placing]] = []
    for e in series.events:
        if e.log:
            results.append(_from_log(e, base, path))
            continue
        target = base / e.results
        text = _read(target, path, e.line, f"event {e.name!r}")
        if e.results.lower().endswith(".json"):
            results.append(placings_from_json(text, series, str(target)))
        else:
            results.append(placings_from_csv(text, series, str(target)))
    return series, results


def to_json(series: Series, table_: list[Standing]) -> dict[str, Any]:
    return {
        "series": series.name,
        "best": series.best,
        "events": [{"name": e.name, "date": e.date.isoformat()} for e in series.events],
        "standings": [
            {
                "position": s.position,
                "name": s.name,
                "gender": s.gender,
                "club": s.club,
                "identity": s.key,
                "points": s.points,
                "wins": s.wins,
                "results": [
                    None
                    if r is None
                    else {"event": e.name, "place": r[0], "points": r[1], "counted": r[2]}
                    for e, r in zip(series.events, s.results, strict=True)
                ],
            }
            for s in table_
        ],
    }


def _pts(v: float) -> str:
    return f"{v:g}"


def to_text(series: Series, table_: list[Standing]) -> str:
    """A plain table: position, athlete, points, then each event's points (a dropped result
    in parentheses, ``-`` where the athlete did not finish)."""
    names = [e.name for e in series.events]
    lines = [f"{series.name}: best {series.best} of {len(names)} events"]
    width = max([len("Athlete"), *(len(_who(s)) for s in table_)])
    cols = [max(len(n), 6) for n in names]
    head = f"{'Pos':>4}  {'Athlete':<{width}}  {'Points':>6}  {'Wins':>4}  "
    lines.append(head + "  ".join(f"{n:>{w}}" for n, w in zip(names, cols, strict=True)))
    for s in table_:
        cells = []
        for r, w in zip(s.results, cols, strict=True):
            text = "-" if r is None else _pts(r[1]) if r[2] else f"({_pts(r[1])})"
            cells.append(f"{text:>{w}}")
        row = f"{s.position:>4}  {_who(s):<{width}}  {_pts(s.points):>6}  {s.wins:>4}  "
        lines.append(row + "  ".join(cells))
    return "\n".join(lines)


def _who(s: Standing) -> str:
    return f"{s.name} ({s.gender})" if s.gender else s.name


def cmd_series(args: argparse.Namespace) -> int:
    try:
        series, results = load(args.file)
    except SeriesError as exc:
        raise SystemExit(f"livetrack series: {exc}") from None
    ranked = standings(series, results)
    if args.html:
        from livetrack.web.render import make_env

        page = make_env().get_template("series.html").render(s=to_json(series, ranked))
        Path(args.html).write_text(page, "utf-8")
    if args.json:
        print(json.dumps(to_json(series, ranked), indent=2, ensure_ascii=False))
    else:
        print(to_text(series, ranked))
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("series", help="standings of a series across events (points by place)")
    p.add_argument("file", help="the series file (TOML): its events and points table")
    p.add_argument("--json", action="store_true", help="print the standings as JSON")
    p.add_argument("--html", metavar="FILE", help="also write the standings as a page to FILE")
    p.set_defaults(func=cmd_series)
