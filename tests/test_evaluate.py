"""The evaluate-predictions command and the results loaders."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
from conftest import SAMPLES, full_data

from livetrack.evaluation.formats import (
    BOSTON_CHECKPOINTS,
    WESTERN_STATES_MILES,
    RunnerResult,
    load_boston,
    load_western_states,
    parse_clock,
)
from livetrack.evaluation.replay import main

BOSTON_HEADER = [
    *("Bib", "Name", "Age", "M/F", "City", "State", "Country", "Citizen", ""),
    *("5K", "10K", "15K", "20K", "Half", "25K", "30K", "35K", "40K"),
    *("Pace", "Proj Time", "Official Time", "Overall", "Gender", "Division"),
]


def clock(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def write_boston(path: Path, runners: int = 30, seed: int = 7) -> list[list[float]]:
    """A small Boston-format file; the third runner misses the 10K mat and the fifth has its
    finish written as a spreadsheet day fraction. Returns the true times."""
    rng = random.Random(seed)
    truth = []
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(BOSTON_HEADER)
        for r in range(runners):
            pace = rng.uniform(0.18, 0.40)
            fade = rng.uniform(0.0, 0.2)
            times = [pace * d * (1.0 + fade * (d / 42195.0) ** 2) for _, d in BOSTON_CHECKPOINTS]
            truth.append(times)
            cells = [clock(t) for t in times]
            if r == 2:
                cells[1] = "-"
            if r == 4:
                cells[-1] = f"{times[-1] / 86400.0:.9f}"
            out.writerow(
                [
                    *(str(100 + r), f"Runner {r}", "30", "F", "Town", "", "USA", "", ""),
                    *cells[:-1],
                    *("0:07:00", "-", cells[-1], str(r + 1), str(r + 1), str(r + 1)),
                ]
            )
    return truth


def test_parse_clock_reads_times_day_fractions_and_blanks() -> None:
    assert parse_clock("2:09:17") == 2 * 3600 + 9 * 60 + 17
    assert parse_clock("14:43") == 14 * 60 + 43
    assert parse_clock("0.5") == 43200.0
    assert parse_clock("59867") == 59867.0
    assert parse_clock("-") is None
    assert parse_clock(" ") is None
    assert parse_clock("NA") is None


def test_boston_loader_reads_splits_missing_marks_and_day_fractions(tmp_path: Path) -> None:
    truth = write_boston(tmp_path / "b.csv")
    race = load_boston(tmp_path / "b.csv")
    assert race.checkpoints == BOSTON_CHECKPOINTS
    assert len(race.runners) == 30
    assert race.runners[2].times[1] is None
    assert race.runners[0].runner_id == "100"
    assert race.runners[4].finish == pytest.approx(truth[4][-1], abs=0.01)
    assert race.runners[7].times[3] == pytest.approx(truth[7][3], abs=0.5)


def test_evaluate_prints_one_row_per_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_boston(tmp_path / "today.csv", seed=1)
    write_boston(tmp_path / "past.csv", runners=40, seed=2)
    status = main(
        [str(tmp_path / "today.csv"), "--history", str(tmp_path / "past.csv"), "--format", "boston"]
    )
    out, err = capsys.readouterr()
    assert status == 0
    assert "history: 40 runners" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:]}
    assert list(rows) == [name for name, _ in BOSTON_CHECKPOINTS[:-1]]
    assert rows["5K"][1] == "30"
    assert rows["10K"][1] == "29"  # one runner missed the 10K mat
    assert float(rows["40K"][2]) < float(rows["5K"][2])  # later estimates are closer
    assert "replayed" in err


def test_evaluate_limit_and_quiet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_boston(tmp_path / "today.csv")
    assert (
        main([str(tmp_path / "today.csv"), "--format", "boston", "--limit", "10", "--quiet"]) == 0
    )
    out, err = capsys.readouterr()
    assert "10 runners (10 finished), history: 0 runners" in out
    assert err == ""


def test_limit_takes_an_evenly_spaced_sample_not_the_first_rows(tmp_path: Path) -> None:
    write_boston(tmp_path / "today.csv")  # 30 runners, bibs 100..129 in finishing order
    race = load_boston(tmp_path / "today.csv")
    sample = race.sample(10)
    assert [r.runner_id for r in sample.runners] == [str(100 + 3 * k) for k in range(10)]
    assert race.sample(10) == sample  # the same every time
    assert [r.runner_id for r in race.sample(4).runners] == ["100", "107", "115", "122"]
    assert race.sample(30).runners == race.runners
    assert race.sample(0).runners == ()


def test_evaluate_rejects_a_file_of_another_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_boston(tmp_path / "today.csv")
    assert main([str(tmp_path / "today.csv"), "--format", "westernstates"]) == 2
    assert "not a Western States results file" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.csv"), "--format", "boston"]) == 2


def write_western_states(path: Path) -> None:
    """Two editions; in the later one runner 3 drops out after Foresthill."""
    rng = random.Random(3)
    header = ["year", "Place", "Time", "First.Name", "Last.Name", "Gender", "Age"]
    header += [column for column, _, _ in WESTERN_STATES_MILES[:-1]]
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        for year in (2014, 2015):
            for place in range(1, 21):
                pace = rng.uniform(500.0, 900.0)  # seconds per mile
                times = [
                    pace * miles * (1 + 0.3 * miles / 100) for *_, miles in WESTERN_STATES_MILES
                ]
                cells = [str(round(t)) for t in times]
                if year == 2015 and place == 3:
                    cells = [c if i <= 10 else "NA" for i, c in enumerate(cells)]
                out.writerow([str(year), str(place), cells[-1], "A", "B", "M", "40", *cells[:-1]])


def test_western_states_evaluation_uses_earlier_editions_and_counts_dnf(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ws.csv"
    write_western_states(path)
    race = load_western_states(path)
    assert race.editions() == [2014, 2015]
    assert race.checkpoints[-1][1] == pytest.approx(100.2 * 1609.344)
    status = main([str(path), "--history", str(path), "--format", "westernstates", "--quiet"])
    out, _ = capsys.readouterr()
    assert status == 0
    assert "edition 2015: 20 runners (19 finished), history: 20 runners" in out
    rows = {line[:20].strip(): line[20:].split() for line in out.splitlines()[3:]}
    assert rows["Lyon Ridge"][0] == "19"
    assert rows["Lyon Ridge"][-1] == "1"  # the runner who dropped out, estimated but not scored
    assert rows["Rucky Chucky"][-1] == "0"


def test_history_years_select_editions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ws.csv"
    write_western_states(path)
    args = [str(path), "--history", str(path), "--format", "westernstates", "--quiet"]
    assert main([*args, "--year", "2015", "--history-years", "2015-2015"]) == 0
    assert "history: 0 runners" in capsys.readouterr().out
    assert main([*args, "--year", "2013"]) == 2


def _plausible_station_paces(finishers: list[RunnerResult], dists: list[float]) -> None:
    """The median pace per segment between consecutive stations stays within walking or
    running speeds (so the station distances fit the times)."""
    for k in range(len(dists) - 1):
        paces = sorted(
            (b - a) / (dists[k + 1] - dists[k]) * 1609.344
            for r in finishers
            if (a := r.times[k]) is not None and (b := r.times[k + 1]) is not None
        )
        if paces:
            assert 300.0 < paces[len(paces) // 2] < 2400.0, k  # s per mile


def test_western_states_sample_loads_with_plausible_station_distances() -> None:
    race = load_western_states(SAMPLES / "western_states_sample.csv")
    assert len(race.runners) == 1110
    finishers = [r for r in race.runners if r.finish is not None]
    assert len(finishers) == 734
    assert {r.runner_id.split("-")[0] for r in race.runners} >= {"1986", "2015"}
    _plausible_station_paces(finishers, [d for _, d in race.checkpoints])


@pytest.mark.fulldata
def test_western_states_file_loads_with_plausible_station_distances() -> None:
    path = full_data("western_states_1986_2015.csv") / "western_states_1986_2015.csv"
    race = load_western_states(path)
    assert len(race.runners) == 11098
    finishers = [r for r in race.runners if r.finish is not None]
    assert 7000 < len(finishers) < 7500
    _plausible_station_paces(finishers, [d for _, d in race.checkpoints])


def test_leave_one_out_holds_each_race_out_and_prints_one_json_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from livetrack.evaluation.loo import held_out, history_for

    write_boston(tmp_path / "boston_2013.csv", runners=40, seed=1)
    write_boston(tmp_path / "boston_2015.csv", runners=50, seed=2)
    paths = [str(tmp_path / "boston_2015.csv"), str(tmp_path / "boston_2013.csv")]
    races = held_out(paths)
    assert [(h.name, h.year) for h in races] == [("boston 2015", 2015), ("boston 2013", 2013)]
    # earlier editions where there are any, else the other editions
    assert len(history_for(races[0], races)) == 40
    assert len(history_for(races[1], races)) == 50
    assert main(["--leave-one-out", *paths, "--quiet", "--per-race"]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["races"] == 2
    for mode in ("history", "none"):
        table = summary["families"]["boston"][mode]
        assert list(table) == [name for name, _ in BOSTON_CHECKPOINTS[:-1]]
        for figures in table.values():
            row = dict(zip(summary["columns"], figures, strict=True))
            assert row["races"] == 2
            assert row["mae_worst"] >= row["mae_mean"] > 0
            assert 0.0 <= row["cover_worst"] <= 1.0
            assert row["gain_worst"] <= row["gain_mean"]
    missed = set(summary["targets_missed"])
    assert summary["targets_met"] == summary["targets_total"] - len(missed)
    assert missed <= {
        f"boston/{m}/{cp}/{t}"
        for m in ("history", "none")
        for cp, _ in BOSTON_CHECKPOINTS
        for t in ("coverage", "mae", "gain")
    }
    assert "with history" in err and "no history" in err
    # each race's coverage, a row per race and mode, one cell per checkpoint
    rows = [line.split() for line in err.splitlines() if line.startswith("boston 20")]
    assert len(rows) == 4
    for row in rows:
        assert len(row) == 2 + len(BOSTON_CHECKPOINTS) - 1
        for cell in row[2:]:
            value = float(cell.rstrip("!"))
            assert 0.0 <= value <= 100.0
            assert cell.endswith("!") is not (75.0 <= value <= 85.0)


def test_leave_one_out_needs_two_races(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_boston(tmp_path / "boston_2015.csv")
    assert main(["--leave-one-out", str(tmp_path / "boston_2015.csv")]) == 2
    assert "at least two races" in capsys.readouterr().err


def test_stress_variants_change_the_race_as_documented_and_repeat_with_their_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from livetrack.evaluation.formats import load_results
    from livetrack.evaluation.variants import variant

    write_boston(tmp_path / "boston_2015.csv", runners=200, seed=5)
    race = load_results(tmp_path / "boston_2015.csv", "boston")
    names = [name for name, _ in race.checkpoints]
    at_10k, at_15k = names.index("10K"), names.index("15K")
    warm = variant(race, "warm", seed=3)
    cold = variant(race, "cold", seed=3)
    for before, hot, chill in zip(race.runners, warm.runners, cold.runners, strict=True):
        # nothing changes up to 15K; after it, a warm day is slower and a cold one faster
        assert hot.times[: at_15k + 1] == before.times[: at_15k + 1]
        assert chill.times[at_10k] == before.times[at_10k]
        assert hot.finish is not None and before.finish is not None and chill.finish is not None
        assert hot.finish > before.finish > chill.finish
        # still in course order
        timed = [t for t in hot.times if t is not None]
        assert timed == sorted(timed)
    assert variant(race, "warm", seed=3) == warm
    assert variant(race, "warm", seed=4) != warm
    half = variant(race, "half", seed=3)
    assert 60 < len(half.runners) < 140
    assert {r.runner_id for r in half.runners} <= {r.runner_id for r in race.runners}
    with pytest.raises(ValueError, match="unknown variant"):
        variant(race, "windy")
    path = str(tmp_path / "boston_2015.csv")
    assert main([path, "--variant", "warm", "--seed", "3", "--quiet"]) == 0
    assert "(warm variant, seed 3)" in capsys.readouterr().out


def test_halves_split_every_runner_into_exactly_one_half_the_same_way_per_seed(
    tmp_path: Path,
) -> None:
    write_boston(tmp_path / "today.csv", runners=60)
    race = load_boston(tmp_path / "today.csv")
    first, second = race.halves(5)
    ids = [r.runner_id for r in first.runners] + [r.runner_id for r in second.runners]
    assert sorted(ids) == sorted(r.runner_id for r in race.runners)
    assert 15 <= len(first.runners) <= 45
    assert race.halves(5) == (first, second)
    assert race.halves(6) != (first, second)


def test_same_day_replays_each_half_with_the_other_as_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_boston(tmp_path / "today.csv", runners=60, seed=4)
    args = [str(tmp_path / "today.csv"), "--format", "boston", "--quiet"]
    assert main([*args, "--same-day", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "each half replayed with the other as history (seed 3)" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:]}
    assert rows["5K"][1] == "60"  # both halves scored, every runner once
    race = load_boston(tmp_path / "today.csv")
    first, second = race.halves(3)
    from livetrack.evaluation.scoring import evaluate

    alone = evaluate(first, [r.times for r in second.runners])[0]
    assert alone.n == len(first.runners)
    assert alone.n < 60


def test_same_day_refuses_a_history_or_several_races(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_boston(tmp_path / "today.csv")
    write_boston(tmp_path / "past.csv", seed=2)
    today, past = str(tmp_path / "today.csv"), str(tmp_path / "past.csv")
    assert main([today, "--same-day", "--history", past]) == 2
    assert "--same-day takes its history from the race itself" in capsys.readouterr().err
    assert main([today, past, "--leave-one-out", "--same-day"]) == 2
    assert "--same-day replays one race" in capsys.readouterr().err
