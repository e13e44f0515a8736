"""Behaviour of the finish-time predictor (livetrack.domain.predict)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import pytest
from conftest import SAMPLES, full_data

from livetrack.domain import predict
from livetrack.domain.predict import FINISH, RIEGEL_EXPONENT, Estimate, Predictor
from livetrack.domain.predict_calibration import Calibration, blend, weighted_quantiles
from livetrack.domain.predict_grid import QuantileGrid
from livetrack.evaluation.formats import BOSTON_CHECKPOINTS, RunnerResult, load_boston

COURSE = [
    ("5K", 5000.0),
    ("10K", 10000.0),
    ("15K", 15000.0),
    ("20K", 20000.0),
    ("Half", 21097.5),
    ("25K", 25000.0),
    ("30K", 30000.0),
    ("35K", 35000.0),
    ("40K", 40000.0),
    ("Finish", 42195.0),
]
NAMES = [name for name, _ in COURSE]


def synthetic_field(seed: int, runners: int, fade: float = 0.08) -> list[list[float]]:
    """Cumulative times of runners whose pace fades in the second half by a random amount
    (mean ``fade``), slower runners fading more, with a little noise per segment."""
    rng = random.Random(seed)
    field = []
    for _ in range(runners):
        pace = math.exp(rng.gauss(math.log(0.30), 0.15))  # seconds per metre
        slow = max(0.0, rng.gauss(fade, 0.12)) * (pace / 0.30)
        t = 0.0
        prev = 0.0
        times = []
        for _, d in COURSE:
            mid = (prev + d) / 2 / COURSE[-1][1]
            seg_pace = pace * (1.0 + slow * mid * mid) * math.exp(rng.gauss(0.0, 0.03))
            t += seg_pace * (d - prev)
            prev = d
            times.append(t)
        field.append(times)
    return field


def noisy_field(seed: int, runners: int, noise: float, fade: float = 0.08) -> list[list[float]]:
    """Like :func:`synthetic_field`, with per-segment noise of ``noise`` (log sd)."""
    rng = random.Random(seed)
    field = []
    for _ in range(runners):
        pace = math.exp(rng.gauss(math.log(0.30), 0.15))
        slow = max(0.0, rng.gauss(fade, 0.12)) * (pace / 0.30)
        t = prev = 0.0
        times = []
        for _, d in COURSE:
            mid = (prev + d) / 2 / COURSE[-1][1]
            t += pace * (1.0 + slow * mid * mid) * math.exp(rng.gauss(0.0, noise)) * (d - prev)
            prev = d
            times.append(t)
        field.append(times)
    return field


def replay(predictor: Predictor, field: list[list[float]]) -> list[list[tuple[float, Estimate]]]:
    """Feed ``field`` in race order; per checkpoint, (true finish, finish estimate) pairs."""
    passings = sorted((t, c, r) for r, times in enumerate(field) for c, t in enumerate(times))
    out: list[list[tuple[float, Estimate]]] = [[] for _ in COURSE[:-1]]
    for t, c, r in passings:
        predictor.observe(f"r{r}", NAMES[c], t)
        if c < len(COURSE) - 1:
            est = predictor.estimate(f"r{r}", FINISH)
            assert est is not None
            out[c].append((field[r][-1], est))
    return out


def mae(pairs: list[tuple[float, Estimate]]) -> float:
    return sum(abs(e.seconds - truth) for truth, e in pairs) / len(pairs)


def coverage(pairs: list[tuple[float, Estimate]]) -> float:
    return sum(e.low <= truth <= e.high for truth, e in pairs) / len(pairs)


# -- API contract ---------------------------------------------------------------------------


def test_estimate_is_none_for_a_runner_without_passings() -> None:
    p = Predictor(COURSE)
    assert p.estimate("nobody", FINISH) is None
    p.observe("a", "5K", 1500.0)
    assert p.estimate("b", "10K") is None


def test_estimate_is_ordered_and_later_than_the_last_passing() -> None:
    p = Predictor(COURSE, synthetic_field(1, 200))
    p.observe("a", "5K", 1500.0)
    p.observe("a", "10K", 3050.0)
    for target in NAMES[2:]:
        est = p.estimate("a", target)
        assert est is not None
        assert 3050.0 <= est.low <= est.seconds <= est.high


def test_estimates_grow_with_the_target_distance() -> None:
    p = Predictor(COURSE, synthetic_field(2, 300))
    p.observe("a", "10K", 3000.0)
    seconds = [p.estimate("a", name).seconds for name in NAMES[2:]]  # type: ignore[union-attr]
    assert seconds == sorted(seconds)


def test_finish_alias_means_the_last_checkpoint() -> None:
    p = Predictor(COURSE, synthetic_field(3, 200))
    p.observe("a", "20K", 6000.0)
    assert p.estimate("a", "finish") == p.estimate("a", "Finish")


def test_unknown_target_or_checkpoint_raises_key_error() -> None:
    p = Predictor(COURSE)
    p.observe("a", "5K", 1500.0)
    with pytest.raises(KeyError):
        p.estimate("a", "50K")
    with pytest.raises(KeyError):
        p.observe("a", "6K", 1800.0)


def test_invalid_times_and_courses_are_rejected() -> None:
    p = Predictor(COURSE)
    with pytest.raises(ValueError):
        p.observe("a", "5K", 0.0)
    with pytest.raises(ValueError):
        p.observe("a", "5K", float("nan"))
    with pytest.raises(ValueError):
        Predictor([("a", 5000.0), ("b", 5000.0)])
    with pytest.raises(ValueError):
        Predictor([("a", 5000.0), ("a", 6000.0)])
    with pytest.raises(ValueError):
        Predictor(COURSE, [[1.0, 2.0]])


def test_estimate_for_a_passed_checkpoint_is_the_observed_time() -> None:
    p = Predictor(COURSE)
    p.observe("a", "5K", 1500.0)
    p.observe("a", "10K", 3000.0)
    assert p.estimate("a", "5K") == Estimate(1500.0, 1500.0, 1500.0)


def test_repeated_passing_is_ignored() -> None:
    p = Predictor(COURSE)
    p.observe("a", "5K", 1500.0)
    p.observe("a", "5K", 1700.0)
    assert p.estimate("a", "5K") == Estimate(1500.0, 1500.0, 1500.0)


def test_next_checkpoint_follows_the_last_passing() -> None:
    p = Predictor(COURSE)
    assert p.next_checkpoint("a") is None
    p.observe("a", "5K", 1500.0)
    assert p.next_checkpoint("a") == "10K"
    p.observe("a", "Finish", 13000.0)
    assert p.next_checkpoint("a") is None
    assert p.estimate("a", FINISH) == Estimate(13000.0, 13000.0, 13000.0)


# -- prior, history, field ------------------------------------------------------------------


def test_prior_without_history_is_even_pace_fading_late() -> None:
    p = Predictor(COURSE)
    p.observe("a", "10K", 3000.0)
    est = p.estimate("a", FINISH)
    assert est is not None
    even = 3000.0 * 42195.0 / 10000.0
    riegel = 3000.0 * (42195.0 / 10000.0) ** RIEGEL_EXPONENT
    # slower than even pace, but by less than Riegel's scaling between races: a split of a
    # marathon is run at marathon effort, and the slowing comes late
    assert 1.02 * even < est.seconds < riegel
    # wide: several percent either side from a quarter of the course
    assert est.low < 0.96 * est.seconds < est.seconds * 1.06 < est.high


def test_history_only_beats_constant_pace_and_covers_80_percent() -> None:
    history = synthetic_field(10, 800)
    p = Predictor(COURSE, history)
    # runners spread out so that none is observed before the estimate: history alone
    today = synthetic_field(11, 300)
    pairs = []
    constant = []
    for r, times in enumerate(today):
        p2 = Predictor(COURSE, history) if r == 0 else p
        p2.observe(f"x{r}", "20K", times[3])
        est = p2.estimate(f"x{r}", FINISH)
        assert est is not None
        pairs.append((times[-1], est))
        constant.append(abs(times[3] * 42195.0 / 20000.0 - times[-1]))
    assert mae(pairs) < 0.85 * (sum(constant) / len(constant))
    # conservative by design: the interval allows for a day unlike the history's
    assert 0.75 <= coverage(pairs) <= 0.97


def test_coverage_near_80_percent_at_every_checkpoint_with_history() -> None:
    results = replay(Predictor(COURSE, synthetic_field(20, 800)), synthetic_field(21, 600))
    for c, pairs in enumerate(results):
        # at least 75%; conservative (up to ~96%) when today matches the history exactly
        assert 0.75 <= coverage(pairs) <= 0.97, (NAMES[c], coverage(pairs))


def test_coverage_holds_when_today_is_slower_than_the_history() -> None:
    history = synthetic_field(22, 800, fade=0.04)
    results = replay(Predictor(COURSE, history), synthetic_field(23, 600, fade=0.16))
    for c, pairs in enumerate(results[1:], start=1):
        assert 0.7 <= coverage(pairs) <= 0.97, (NAMES[c], coverage(pairs))


def test_without_history_the_field_ahead_teaches_the_slowdown() -> None:
    # everyone fades strongly: the prior (even pacing + Riegel) underestimates late splits
    field = synthetic_field(30, 600, fade=0.25)
    results = replay(Predictor(COURSE), field)
    at_30k = results[NAMES.index("30K")]
    prior_mae = sum(
        abs(times[6] * (42195.0 / 30000.0) ** RIEGEL_EXPONENT - times[-1]) for times in field
    ) / len(field)
    assert mae(at_30k) < 0.9 * prior_mae


def test_missing_split_still_predicts_and_interpolates_the_gap() -> None:
    p = Predictor(COURSE, synthetic_field(40, 300))
    p.observe("a", "5K", 1500.0)
    p.observe("a", "15K", 4560.0)  # the 10K mat missed this runner
    est = p.estimate("a", FINISH)
    assert est is not None and 4560.0 < est.low <= est.seconds <= est.high
    gap = p.estimate("a", "10K")
    assert gap is not None
    assert gap.low == 1500.0 and gap.high == 4560.0
    assert gap.seconds == pytest.approx(1500.0 + 0.5 * (4560.0 - 1500.0))


def test_a_stretch_with_an_untimed_checkpoint_still_teaches_its_segments() -> None:
    p = Predictor(COURSE)
    # everyone takes 2.2 times their 10K time to reach 20K (10% slower than even pace), and
    # nobody is timed at 15K
    for r in range(200):
        p.observe(f"r{r}", "10K", 2800.0 + 2.0 * r)
    for r in range(200):
        p.observe(f"r{r}", "20K", 2.2 * (2800.0 + 2.0 * r))
    p.observe("r0", "Finish", 20000.0)  # much later
    p.observe("late", "10K", 3000.0)
    learned = p.estimate("late", "20K")
    prior = Predictor(COURSE)
    prior.observe("late", "10K", 3000.0)
    alone = prior.estimate("late", "20K")
    assert learned is not None and alone is not None
    assert alone.seconds < 6200.0
    assert learned.seconds == pytest.approx(6600.0, rel=0.01)


def test_a_misread_passing_alone_on_a_stretch_barely_moves_the_field_behind() -> None:
    # a passing misread by the timing: "ghost" timed at 15K after 1000 s and at 20K after
    # 3000 s, three times as long, and for a while the only runner to have run 15K-20K
    with_ghost, without = Predictor(COURSE), Predictor(COURSE)
    with_ghost.observe("ghost", "15K", 1000.0)
    with_ghost.observe("ghost", "20K", 3000.0)
    for p in (with_ghost, without):
        for r in range(20):
            p.observe(f"r{r}", "5K", 1500.0 + r)
        for r in range(20):
            p.observe(f"r{r}", "10K", 3050.0 + 2.0 * r)
    for r in range(20):
        moved = with_ghost.estimate(f"r{r}", FINISH)
        plain = without.estimate(f"r{r}", FINISH)
        assert moved is not None and plain is not None
        # unclipped, its residual (log 3 less the prior's) would put every finish 17% later
        assert plain.seconds <= moved.seconds < 1.04 * plain.seconds


def test_a_runner_who_slows_sharply_gets_a_later_finish() -> None:
    history = synthetic_field(50, 600)
    p = Predictor(COURSE, history)
    for name, t in zip(NAMES[:7], (1500, 3000, 4500, 6000, 6330, 7500, 9000), strict=True):
        p.observe("even", name, float(t))
    for name, t in zip(NAMES[:7], (1500, 3000, 4500, 6000, 6330, 7500, 9900), strict=True):
        p.observe("walker", name, float(t))
    even = p.estimate("even", FINISH)
    walker = p.estimate("walker", FINISH)
    assert even is not None and walker is not None
    # the walker is 900 s behind at 30K and, having slowed, loses more than 900 s * 42.2/30
    assert walker.seconds - even.seconds > 900.0 * 42195.0 / 30000.0


def _relative_width(est: Estimate | None, t: float) -> float:
    assert est is not None
    return (est.high - est.low) / (est.seconds - t)


@pytest.mark.parametrize("with_history", [True, False])
def test_a_runner_whose_splits_have_been_erratic_gets_a_wider_range(with_history: bool) -> None:
    p = Predictor(COURSE, synthetic_field(50, 600) if with_history else None)
    field = synthetic_field(51, 300)
    steady = [1500.0 * d / 5000.0 for _, d in COURSE[:7]]
    # the same times at 25K and 30K (so the same pace and trend there), uneven before
    erratic = [t * f for t, f in zip(steady, (1.0, 1.05, 0.98, 1.04, 1.03, 1.0, 1.0), strict=True)]
    passings = [(t, c, f"r{r}") for r, times in enumerate(field) for c, t in enumerate(times)]
    passings += [(t, c, "steady") for c, t in enumerate(steady)]
    passings += [(t, c, "erratic") for c, t in enumerate(erratic)]
    for t, c, runner in sorted(passings):
        p.observe(runner, NAMES[c], t)
    t = steady[-1]
    wide = _relative_width(p.estimate("erratic", FINISH), t)
    narrow = _relative_width(p.estimate("steady", FINISH), t)
    assert wide > 1.3 * narrow


def test_without_history_a_slow_runner_gets_a_wider_range() -> None:
    p = Predictor(COURSE)
    for r in range(40):
        p.observe(f"front{r}", "5K", 1000.0 + 10.0 * r)
    quick = p.estimate_with("new", [("5K", 1400.0)], FINISH)
    slow = p.estimate_with("new", [("5K", 2000.0)], FINISH)
    assert _relative_width(slow, 2000.0) > 1.5 * _relative_width(quick, 1400.0)
    # with a history of such runners, the history tells how far apart they finish instead
    h = Predictor(COURSE, synthetic_field(50, 600))
    for r in range(40):
        h.observe(f"front{r}", "5K", 1000.0 + 10.0 * r)
    quick = h.estimate_with("new", [("5K", 1500.0)], FINISH)
    slow = h.estimate_with("new", [("5K", 1700.0)], FINISH)
    assert _relative_width(slow, 1700.0) == pytest.approx(_relative_width(quick, 1500.0), rel=0.3)


def test_overdue_only_far_past_the_upper_bound() -> None:
    p = Predictor(COURSE, synthetic_field(60, 300))
    p.observe("a", "20K", 6000.0)
    est = p.estimate("a", "Half")
    assert est is not None
    assert not p.overdue("a", est.seconds)
    assert not p.overdue("a", est.high)
    far = 6000.0 + 2.0 * (est.high - 6000.0)
    assert p.overdue("a", far)
    assert p.overdue("a", far, target="Half")
    assert not p.overdue("a", far, target="Finish")
    assert not p.overdue("nobody", far)


# -- calibration ----------------------------------------------------------------------------


def test_calibration_factors_leave_out_a_tenth_on_each_side() -> None:
    cal = Calibration()
    assert cal.factors([cal]) == (0.0, 1.0, 1.0)
    for k in range(1, 1001):
        # finished runners (nothing left open), errors spread evenly over -2..2 half-widths
        cal.update(k, (k - 500.5) / 250.0, 0.0, 0.0, 1.0, 1, 0.0)
    weight, below, above = cal.factors([cal])
    assert weight == pytest.approx(1000.0)
    assert below == pytest.approx(1.6, abs=0.02)
    assert above == pytest.approx(1.6, abs=0.02)


def test_calibration_adds_what_is_still_open_to_a_partial_revision() -> None:
    cal, later = Calibration(), Calibration()
    for k in range(1, 1001):
        # half-way: revisions over -1.5..1.5 half-widths, 0.8 of a half-width still open at
        # a checkpoint whose calibration knows nothing yet (the model's own interval there)
        cal.update(k, (k - 500.5) / 1000.0 * 3.0, 0.8, 0.8, 0.5, 1, 1.0)
    weight, below, above = cal.factors([cal, later])
    assert weight == pytest.approx(500.0)
    assert above == pytest.approx(math.hypot(1.2, 0.8), abs=0.03)
    assert below == pytest.approx(math.hypot(1.2, 0.8), abs=0.03)


def test_what_is_still_open_counts_as_the_later_checkpoint_calibration_has_it_now() -> None:
    cal, later = Calibration(), Calibration()
    for k in range(1, 1001):
        cal.update(k, (k - 500.5) / 1000.0 * 3.0, 0.8, 0.8, 0.5, 1, 1.0)
    before = cal.factors([cal, later], store=False)
    for k in range(1, 2001):
        # the finishes from the later checkpoint: within half its model's interval
        later.update(k, (k - 1000.5) / 2000.0 * 0.625, 0.0, 0.0, 1.0, 1, 0.0)
    after = cal.factors([cal, later], store=False)
    open_now = 0.8 * blend(later.factors([cal, later]), 1.0)[1]
    assert open_now < 0.5
    assert after[2] == pytest.approx(math.hypot(1.2, open_now), abs=0.03)
    assert after[2] < before[2] and after[1] < before[1]


def test_calibration_keeps_the_latest_news_of_each_runner_and_thins_evenly() -> None:
    cal = Calibration()
    for k in range(1, 101):
        cal.update(k, 5.0, 0.0, 0.0, 1.0, 1, 0.0)
        cal.update(k, 0.5, 0.0, 0.0, 1.0, 1, 0.0)  # replaces the first
    assert len(cal) == 100
    assert cal.factors([cal])[2] == pytest.approx(0.5)
    cal.thin(2)
    assert len(cal) == 50


def test_calibration_counts_each_runner_by_how_much_of_its_outcome_is_known() -> None:
    cal = Calibration()
    for k in range(1, 101):
        # finished runners a half-width early; runners barely past the checkpoint, late
        cal.update(k, -0.5, 0.0, 0.0, 1.0, 1, 0.0)
        cal.update(1000 + k, 3.0, 0.0, 0.0, 0.01, 1, 0.0)
    _, below, above = cal.factors([cal])
    assert below == pytest.approx(0.5, abs=0.05)
    # counted one each, the late tenth would put the upper bound 3 half-widths out
    assert above < 0.5


def test_weighted_quantiles_match_plain_ones_for_equal_weights_and_follow_the_weights() -> None:
    values = [(float(v), 1.0) for v in range(11)]
    assert weighted_quantiles(values, 11.0, (0.1, 0.5, 0.9)) == pytest.approx([0.6, 5.0, 9.4])
    heavy_top = [(0.0, 1.0), (1.0, 1.0), (10.0, 8.0)]
    # the median moves most of the way to the heavy value (plain median: 1.0)
    assert weighted_quantiles(heavy_top, 10.0, (0.5, 0.9)) == pytest.approx([8.0, 10.0])
    assert weighted_quantiles([(2.0, 1.0)], 1.0, (0.1, 0.9)) == [2.0, 2.0]


def test_grid_trusts_queries_less_the_further_outside_its_samples() -> None:
    rng = random.Random(7)
    samples = [
        (rng.gauss(0.0, 0.1), rng.gauss(0.0, 0.05), rng.gauss(0.5, 0.02)) for _ in range(2000)
    ]
    grid = QuantileGrid(samples)
    inside, edge, beyond = (
        grid.quantiles(0.0, 0.0),
        grid.quantiles(0.34, 0.0),
        grid.quantiles(2.0, 0.0),
    )
    assert inside is not None and edge is not None and beyond is not None
    assert inside[4] == 1.0
    assert 0.0 < edge[4] < 1.0
    assert beyond[4] == 0.0


def finish_seconds(p: Predictor, runner: str) -> float:
    est = p.estimate(runner, FINISH)
    assert est is not None
    return est.seconds


def test_a_runner_far_slower_than_anyone_in_the_history_gets_the_prior() -> None:
    history = synthetic_field(3, 500)
    slowest = max(times[0] for times in history)
    with_history = Predictor(COURSE, history)
    without = Predictor(COURSE)
    for p in (with_history, without):
        p.observe("walker", "5K", 3.0 * slowest)
        p.observe("usual", "5K", 1.5 * min(times[0] for times in history))
    # the median is the prior's (the interval also carries the history's day-to-day doubt)
    assert finish_seconds(with_history, "walker") == pytest.approx(
        finish_seconds(without, "walker")
    )
    # within the history's range, the history decides
    assert finish_seconds(with_history, "usual") != pytest.approx(finish_seconds(without, "usual"))


def history_only_coverage(history: list[list[float]], today: list[list[float]], c: int) -> float:
    """Coverage of finish estimates from checkpoint c for runners seen nowhere else: what the
    history alone says, without anything learned from today's field."""
    p = Predictor(COURSE, history)
    covered = 0
    for r, times in enumerate(today):
        p.observe(f"x{r}", NAMES[c], times[c])
        est = p.estimate(f"x{r}", FINISH)
        assert est is not None
        covered += est.low <= times[-1] <= est.high
    return covered / len(today)


def test_intervals_widen_to_cover_a_field_more_spread_than_its_history() -> None:
    # 2,000 runners: with 1,000 the late coverage sits within sampling noise of the bound
    history = noisy_field(40, 2000, noise=0.01)
    today = noisy_field(41, 2000, noise=0.06)
    late = NAMES.index("40K")
    assert history_only_coverage(history, today, late) < 0.65
    results = replay(Predictor(COURSE, history), today)
    assert 0.75 <= coverage(results[late]) <= 0.85
    # before anybody finishes, from the part of the course run so far
    first_finish = min(times[-1] for times in today)
    c = NAMES.index("20K")
    assert history_only_coverage(history, today, c) < 0.65
    passed = sorted(times[c] for times in today)  # results come in race order
    early = [pair for t, pair in zip(passed, results[c], strict=True) if t < first_finish]
    assert len(early) > 500
    assert 0.75 <= coverage(early) <= 0.85


def test_coverage_lands_near_80_percent_late_in_a_race_without_history() -> None:
    results = replay(Predictor(COURSE), noisy_field(45, 1000, noise=0.06))
    for name in ("30K", "40K"):
        assert 0.75 <= coverage(results[NAMES.index(name)]) <= 0.85, name


# -- real data: a sample kept with the tests; the full files only with -m fulldata ----------


def _boston_at_30k(
    history: Sequence[Sequence[float | None]], runners: Sequence[RunnerResult]
) -> None:
    """Finish estimates made at 30K beat the constant-pace projection by a wide margin, and
    about 80% of finishers land inside the 80% range."""
    names = [name for name, _ in BOSTON_CHECKPOINTS]
    p = Predictor(BOSTON_CHECKPOINTS, history)
    passings = sorted(
        (t, c, r) for r, ru in enumerate(runners) for c, t in enumerate(ru.times) if t is not None
    )
    errors: list[float] = []
    baseline: list[float] = []
    covered = 0
    for t, c, r in passings:
        p.observe(runners[r].runner_id, names[c], t)
        truth = runners[r].finish
        if names[c] == "30K" and truth is not None:
            est = p.estimate(runners[r].runner_id, FINISH)
            assert est is not None
            errors.append(abs(est.seconds - truth))
            baseline.append(abs(t * 42195.0 / 30000.0 - truth))
            covered += est.low <= truth <= est.high
    assert len(errors) > 1000
    assert sum(errors) < 0.7 * sum(baseline)
    assert 0.7 <= covered / len(errors) <= 0.9


def test_boston_sample_beats_constant_pace_with_calibrated_ranges() -> None:
    history = [r.times for r in load_boston(SAMPLES / "boston_2013_sample.csv").runners]
    _boston_at_30k(history, load_boston(SAMPLES / "boston_2015_sample.csv").runners)


@pytest.mark.fulldata
def test_boston_subset_beats_constant_pace_with_calibrated_ranges() -> None:
    path = full_data("boston_2015.csv", "boston_2013.csv")
    history = [r.times for r in load_boston(path / "boston_2013.csv").runners[::4]]
    _boston_at_30k(history, load_boston(path / "boston_2015.csv").runners[::8])


def _state(p: Predictor, runners: Sequence[str]) -> list[object]:
    """Everything a caller can ask of the predictor about these runners."""
    out: list[object] = []
    for rid in runners:
        out.append(p.made(rid))
        out.append(p.next_checkpoint(rid))
        out.extend(p.estimate(rid, name) for name in NAMES)
        out.append(p.estimate_with(rid, [(NAMES[-1], 99999.0)], FINISH))
    return out


@pytest.mark.parametrize("with_history", [True, False])
def test_undoing_the_latest_observations_gives_the_predictor_that_never_made_them(
    with_history: bool,
) -> None:
    """A predictor that observed passings 1..n and undid k..n answers every question as one
    that observed 1..k-1, and observing other passings from there as one that observed those
    from the start; a passing further back than its record reaches cannot be undone."""
    history = synthetic_field(3, 300) if with_history else None
    field = noisy_field(4, 150, 0.05)
    keys = sorted((t, f"r{i}", c) for i, times in enumerate(field) for c, t in enumerate(times))
    rng = random.Random(5)
    ids = [f"r{i}" for i in range(len(field))]
    for _ in range(2):
        cut = rng.randrange(len(keys) // 3, len(keys))
        back = rng.randrange(cut - 300, cut)
        # a passing arriving late (left out at first), and one moving later
        late = keys[back]
        moved = keys[rng.randrange(back, cut)]
        first = [k for k in keys[:cut] if k != late]
        p = Predictor(COURSE, history)
        for t, rid, c in first:
            p.observe(rid, NAMES[c], t)
        undoable = p.undoable()
        assert undoable is not None and undoable <= late
        seen = first[-1]
        undone = 0
        while seen is not None and seen >= late:
            seen = p.undo()
            undone += 1
        assert 0 < undone < cut
        q = Predictor(COURSE, history)
        for t, rid, c in first[: len(first) - undone]:
            q.observe(rid, NAMES[c], t)
        assert _state(p, ids) == _state(q, ids)
        final = sorted(
            [k for k in keys[:cut] if k != moved] + [(moved[0] + 0.5, moved[1], moved[2])]
        )
        for t, rid, c in final:
            if seen is None or (t, rid, c) > seen:
                p.observe(rid, NAMES[c], t)
        fresh = Predictor(COURSE, history)
        for t, rid, c in final:
            fresh.observe(rid, NAMES[c], t)
        assert _state(p, ids) == _state(fresh, ids)


def test_a_predictor_keeps_what_it_can_undo_for_its_latest_observations_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(predict, "REWIND", 50)
    field = synthetic_field(6, 40)
    keys = sorted((t, f"r{i}", c) for i, times in enumerate(field) for c, t in enumerate(times))
    p = Predictor(COURSE)
    assert p.undoable() is None
    for t, rid, c in keys:
        p.observe(rid, NAMES[c], t)
    assert p.undoable() == keys[-50]
    for k in range(49):
        assert p.undo() == keys[-2 - k]
    assert p.undo() == keys[-51]  # the one before the oldest it kept
    assert p.undoable() is None
    with pytest.raises(IndexError):
        p.undo()


def test_a_field_slowing_late_more_than_its_history_moves_the_estimates_of_runners_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a warm day: today's runners fade four times as much as the history's; the model's
    # median for a segment follows each runner's trend, so the runners ahead show the day
    # as steeper trends more than as residuals, and the runners behind are owed that part
    history = synthetic_field(31, 1500, fade=0.08)
    today = synthetic_field(32, 1500, fade=0.32)
    from livetrack.domain import predict_model

    def late_errors() -> float:
        scored = replay(Predictor(COURSE, history), today)
        slow_half = scored[NAMES.index("25K")][750:]
        return sum(truth - e.seconds for truth, e in slow_half) / len(slow_half)

    with_day = late_errors()
    monkeypatch.setattr(predict_model, "_ANOMALY", 0.0)
    without = late_errors()
    assert without > 60.0  # estimates too early without it
    # half of the anomaly is taken (all of it would count the runner's own trend twice):
    # the estimates move later by a fifth of what they lacked, and not past the truth
    assert 0.0 < with_day < without - 30.0


def test_on_a_field_slowing_late_the_upper_side_of_runners_behind_widens_by_the_day_ahead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the runners ahead lost time on the late segments; a slower runner may lose more
    history = synthetic_field(31, 1500, fade=0.08)
    today = synthetic_field(32, 1500, fade=0.32)
    from livetrack.domain import predict_model

    def slow_half() -> list[tuple[float, Estimate]]:
        return replay(Predictor(COURSE, history), today)[NAMES.index("25K")][750:]

    wide = slow_half()
    monkeypatch.setattr(predict_model, "_AHEAD", 0.0)
    narrow = slow_half()
    above = sum(e.high - e.seconds for _, e in wide) / sum(e.high - e.seconds for _, e in narrow)
    below = sum(e.seconds - e.low for _, e in wide) / sum(e.seconds - e.low for _, e in narrow)
    assert above > 1.1
    assert below < 1.02
    late_misses = [sum(truth > e.high for truth, e in pairs) for pairs in (wide, narrow)]
    assert late_misses[0] < late_misses[1]
