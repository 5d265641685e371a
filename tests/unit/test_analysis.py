"""Canary analysis: verdicts on clear cases, no data never passes, messages, and error rates by simulation."""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Callable

import pytest

from adapterops.analysis.error_rate import error_rate_verdict
from adapterops.analysis.latency import RelativeEvidence, latency_verdict
from adapterops.analysis.paired_scores import _betting_log_wealth, _sign_log_wealth, judge_verdict
from adapterops.analysis.verdict import FAIL, INCONCLUSIVE, PASS, MetricVerdict, overall_verdict
from adapterops.deploy.status import metric_result

VLLM = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)
FINE = tuple(round(0.5 * 1.1**k, 4) for k in range(40))  # 0.5 s .. 20 s
MU, SIGMA = math.log(1.1), 0.55  # p50 1.1 s, p95 ~2.7 s


def cdf(x: float, scale: float = 1.0) -> float:
    return 0.5 * (1.0 + math.erf((math.log(x / scale) - MU) / (SIGMA * math.sqrt(2.0))))


def expected_hist(n: int, bounds: tuple[float, ...] = VLLM, scale: float = 1.0) -> list[tuple[float, float]]:
    """Cumulative buckets of n requests with exactly the expected counts (no sampling noise)."""
    return [(b, round(n * cdf(b, scale))) for b in bounds] + [(math.inf, n)]


def cells(bounds: tuple[float, ...], scale: float) -> list[float]:
    """Cumulative probabilities per bound, for sampling a bucket with bisect."""
    return [cdf(b, scale) for b in bounds]


class Stream:
    """Requests routed at random (weight w to the canary), bucket counts cumulated per revision."""

    def __init__(self, rng: random.Random, bounds: tuple[float, ...], canary_scale: float, weight: float) -> None:
        self.rng, self.bounds, self.weight = rng, bounds, weight
        self.cum = {"stable": cells(bounds, 1.0), "canary": cells(bounds, canary_scale)}
        self.counts = {k: [0] * (len(bounds) + 1) for k in self.cum}

    def advance(self, requests: int) -> None:
        for _ in range(requests):
            who = "canary" if self.rng.random() < self.weight else "stable"
            self.counts[who][bisect.bisect_left(self.cum[who], self.rng.random())] += 1

    def hist(self, who: str) -> list[tuple[float, float]]:
        out, acc = [], 0
        for b, c in zip((*self.bounds, math.inf), self.counts[who], strict=True):
            acc += c
            out.append((b, float(acc)))
        return out


def first_latency_verdict(rng: random.Random, scale: float, bounds: tuple[float, ...] = VLLM) -> str:
    """Exact counts, a snapshot every ~10 canary requests folded into the evidence as the controller
    folds its snapshots (tests/unit/test_latency_data_path.py goes through Prometheus' increase())."""
    stream = Stream(rng, bounds, 1.0, weight=0.0)
    stream.advance(2000)  # stable alone before the canary: the baseline
    baseline = stream.hist("stable")
    stream = Stream(rng, bounds, scale, weight=0.1)
    evidence = RelativeEvidence(baseline, 0.95, 15)
    for _ in range(400):  # up to ~4000 canary requests
        stream.advance(100)
        evidence.extend([(stream.hist("stable"), stream.hist("canary"))])
        v = latency_verdict(stream.hist("stable"), stream.hist("canary"), max_increase_percent=15, evidence=evidence)
        if v.verdict != INCONCLUSIVE:
            return v.verdict
    return INCONCLUSIVE


def judge_pairs(rng: random.Random, n: int, shift: float) -> list[tuple[float | None, float | None]]:
    """Integer 0-5 scores; prompt difficulty shared by both answers (correlation ~0.6)."""
    pairs: list[tuple[float | None, float | None]] = []
    for _ in range(n):
        d = rng.gauss(0.0, 1.0)
        s = min(5.0, max(0.0, round(3.4 + d + rng.gauss(0.0, 0.7))))
        c = min(5.0, max(0.0, round(3.4 + shift + d + rng.gauss(0.0, 0.7))))
        pairs.append((s, c))
    return pairs


def first_judge_verdict(rng: random.Random, shift: float, max_pairs: int = 600) -> str:
    pairs = judge_pairs(rng, max_pairs, shift)
    for t in range(5, max_pairs + 1, 5):
        v = judge_verdict(pairs[:t], max_drop=0.3)
        if v.verdict != INCONCLUSIVE:
            return v.verdict
    return INCONCLUSIVE


SHIFT_FOR_03_DROP = -0.3226  # latent shift giving a mean score drop of exactly 0.3 (bench/canary/sim.py)


# --------------------------------------------------------------------------- latency


def test_latency_clear_pass_and_fail() -> None:
    same = latency_verdict(expected_hist(20000), expected_hist(3000), max_increase_percent=10)
    assert same.verdict == PASS, same.message
    slow = latency_verdict(expected_hist(20000), expected_hist(3000, scale=1.5), max_increase_percent=10)
    assert slow.verdict == FAIL, slow.message
    assert slow.name == "latency" and slow.samples == 3000
    assert slow.stable_value is not None and slow.canary_value is not None
    assert slow.canary_value > slow.stable_value


def test_latency_fail_message_names_metric_values_and_thresholds() -> None:
    v = latency_verdict(expected_hist(20000, FINE), expected_hist(3000, FINE, scale=1.4), max_increase_percent=10)
    assert v.verdict == FAIL
    for text in ("latency", "p95", "+10%", "canary", "stable", "slower than", "likelihood ratio"):
        assert text in v.message, (text, v.message)
    assert f"{v.canary_value:.3g}s" in v.message and f"{v.stable_value:.3g}s" in v.message
    assert v.threshold == "p95 <= stable p95 +10%"


def test_latency_ceiling() -> None:
    ok = latency_verdict(None, expected_hist(3000), max_seconds=5.0)
    assert ok.verdict == PASS, ok.message
    over = latency_verdict(None, expected_hist(3000), max_seconds=1.5)
    assert over.verdict == FAIL and "1.5s ceiling" in over.message and "allowed 5%" in over.message
    between = latency_verdict(None, expected_hist(3000), max_seconds=4.0)  # not a bound: 2.5 and 5.0
    assert between.verdict != FAIL and "not a bucket bound" in between.message
    fast = [(b, 100000.0) for b in VLLM] + [(math.inf, 100000.0)]  # all faster than 0.3 s, the first bound
    never = latency_verdict(None, fast, max_seconds=0.1)
    assert never.verdict == INCONCLUSIVE and "below the smallest bucket bound" in never.message


def test_latency_both_rules_fail_on_either() -> None:
    v = latency_verdict(expected_hist(20000), expected_hist(3000), max_seconds=1.5, max_increase_percent=10)
    assert v.verdict == FAIL and "ceiling" in v.message
    assert v.threshold == "p95 <= stable p95 +10% and p95 <= 1.5s"


@pytest.mark.parametrize(
    ("stable", "canary", "why"),
    [
        (None, None, "Prometheus"),
        (expected_hist(5000), None, "no canary latency histogram"),
        (None, expected_hist(500), "no stable latency histogram"),
        ([], [], "no +Inf bucket"),
        ([(1.0, 0.0), (math.inf, 0.0)], [(1.0, 0.0), (math.inf, 0.0)], "no stable requests"),
        (expected_hist(5000), [(1.0, 0.0), (math.inf, 0.0)], "no canary requests"),
        (expected_hist(5000), [(1.0, 3.0), (2.0, 5.0)], "no +Inf bucket"),
        (expected_hist(150), expected_hist(100), "too little stable reference data"),
    ],
)
def test_latency_without_usable_data_is_inconclusive(
    stable: list[tuple[float, float]] | None, canary: list[tuple[float, float]] | None, why: str
) -> None:
    v = latency_verdict(stable, canary, max_increase_percent=10)
    assert v.verdict == INCONCLUSIVE
    assert why in v.message, v.message


def test_latency_partial_data_holds() -> None:
    # A handful of canary requests, even all fast, is not evidence enough.
    v = latency_verdict(expected_hist(20000), [(b, 20.0) for b in VLLM] + [(math.inf, 20.0)], max_increase_percent=10)
    assert v.verdict == INCONCLUSIVE and "no decision yet" in v.message


def test_latency_sanitises_prometheus_quirks() -> None:
    # increase() gives non-integer, slightly non-monotone counts and string +Inf; bounds out of order.
    stable = [("+Inf", 20000.4), (2.5, 18010.7), (1.0, 7000.2), (2.0, 16000.0), (5.0, 17990.0), (10.0, 19999.0)]
    canary = [("+Inf", 3000.2), (2.5, 2701.0), (1.0, 1050.0), (2.0, 2400.0), (5.0, 2999.6), (10.0, 3000.0)]
    v = latency_verdict(stable, canary, max_increase_percent=10)  # type: ignore[arg-type]
    assert v.verdict in (PASS, INCONCLUSIVE, FAIL) and v.samples == 3000


def test_latency_zero_tolerance_is_raised_to_one_percent() -> None:
    v = latency_verdict(expected_hist(5000), expected_hist(500), max_increase_percent=0)
    assert "0% raised to 1%" in v.threshold


def test_latency_bad_configuration_raises() -> None:
    with pytest.raises(ValueError):
        latency_verdict(None, None)
    with pytest.raises(ValueError):
        latency_verdict(None, None, max_seconds=1.0, quantile=1.0)
    with pytest.raises(ValueError):
        latency_verdict(None, None, max_seconds=1.0, alpha=0.0)


# --------------------------------------------------------------------------- error rate


def test_error_rate_verdicts() -> None:
    assert error_rate_verdict(10, 10000, 0, 2000, max_percent=1.0).verdict == PASS
    fail = error_rate_verdict(10, 10000, 60, 2000, max_percent=1.0)
    assert fail.verdict == FAIL
    for text in ("errorRate", "60 errors in 2000 canary requests", "3%", "1% limit", "0.1%"):
        assert text in fail.message, (text, fail.message)
    assert fail.canary_value == pytest.approx(0.03) and fail.stable_value == pytest.approx(0.001)
    assert error_rate_verdict(0, 100, 0, 50, max_percent=1.0).verdict == INCONCLUSIVE


def test_error_rate_without_data_is_inconclusive() -> None:
    assert error_rate_verdict(None, None, None, None, max_percent=1.0).verdict == INCONCLUSIVE
    assert error_rate_verdict(0, 100, None, None, max_percent=1.0).verdict == INCONCLUSIVE
    v = error_rate_verdict(0, 100, 0, 0, max_percent=1.0)
    assert v.verdict == INCONCLUSIVE and "no canary requests" in v.message


def test_error_rate_zero_tolerance() -> None:
    assert error_rate_verdict(0, 100, 1, 5000, max_percent=0).verdict == FAIL
    assert error_rate_verdict(0, 100, 0, 100, max_percent=0).verdict == INCONCLUSIVE
    assert error_rate_verdict(0, 100, 0, 10000, max_percent=0).verdict == PASS


# --------------------------------------------------------------------------- judge


def test_judge_clear_pass_and_fail() -> None:
    rng = random.Random(1)
    same = judge_verdict(judge_pairs(rng, 300, 0.0), max_drop=0.3)
    assert same.verdict == PASS, same.message
    worse = judge_verdict(judge_pairs(rng, 300, -1.0), max_drop=0.3)
    assert worse.verdict == FAIL
    for text in ("judge", "canary mean", "stable", "over 300 prompts", "mean drop vs stable < 0.3", "evidence"):
        assert text in worse.message, (text, worse.message)
    assert worse.canary_value is not None and worse.stable_value is not None
    assert worse.canary_value < worse.stable_value - 0.5


def test_judge_min_score() -> None:
    rng = random.Random(2)
    pairs = judge_pairs(rng, 300, 0.0)  # canary mean ~3.35
    assert judge_verdict(pairs, max_drop=None, min_score=2.5).verdict == PASS
    low = judge_verdict(pairs, max_drop=None, min_score=4.5)
    assert low.verdict == FAIL and "canary mean > 4.5" in low.message
    both = judge_verdict(pairs, max_drop=0.3, min_score=4.5)
    assert both.verdict == FAIL and both.threshold.startswith("mean drop vs stable < 0.3 and canary mean > 4.5")


def test_judge_without_data_is_inconclusive() -> None:
    assert judge_verdict(None).verdict == INCONCLUSIVE
    assert "judge" in judge_verdict(None).message
    assert judge_verdict([]).verdict == INCONCLUSIVE
    v = judge_verdict([(None, 4.0), (5.0, None), (None, None), (9.0, 3.0)])
    assert v.verdict == INCONCLUSIVE and "4 prompts without two valid scores" in v.message


def test_judge_partial_data_holds_and_skips_failed_judgements() -> None:
    pairs: list[tuple[float | None, float | None]] = [(4.0, 4.0)] * 8 + [(None, 3.0)] * 5
    v = judge_verdict(pairs)
    assert v.verdict == INCONCLUSIVE and v.samples == 8 and "5 prompts without" in v.message


def test_judge_bad_configuration_raises() -> None:
    with pytest.raises(ValueError):
        judge_verdict([], max_drop=None, min_score=None)
    with pytest.raises(ValueError):
        judge_verdict([], min_score=7.0)


@pytest.mark.parametrize(
    ("magnitudes", "goal"),
    [
        ([1.0, 2.0, 0.0, 1.0, 3.0, 1.0, 0.0, 2.0, 1.0, 4.0, 1.0, 2.0], math.log(4.0)),
        ([0.05, 0.7, 0.0, 1.35, 0.05, 2.6, 0.45, 0.05, 0.9, 4.95, 0.2, 0.05], math.log(4.0)),  # non-integer
        ([0.01] * 11 + [0.02, 5.0], math.log(4.0)),  # too small for a 0.3 drop: theta at its cap
    ],
)
def test_judge_fail_wealth_is_an_exact_martingale_given_the_magnitudes(magnitudes: list[float], goal: float) -> None:
    """Under "canary equals stable" each sign is a fair coin given |D|: averaged over all 2^n sign
    patterns, the Fail wealth is exactly 1 (a bet that peeked at its own sign, or at later pairs'
    effect on the drop estimate, would not average to 1)."""
    total, hits = 0.0, 0
    for signs in itertools.product((-1.0, 1.0), repeat=len(magnitudes)):
        log_wealth = _sign_log_wealth([s * m for s, m in zip(signs, magnitudes, strict=True)], 0.3, goal, 5.0)
        total += math.exp(log_wealth)
        hits += log_wealth >= goal
    patterns = 2 ** len(magnitudes)
    assert total / patterns == pytest.approx(1.0, abs=1e-9)
    assert 0 < hits / patterns <= math.exp(-goal)  # Ville's inequality; some patterns reach the goal


def first_fail(diffs: list[float], wealth: Callable[[list[float]], float], goal: float) -> int:
    """Prompts until the Fail wealth first reaches goal (len + 1 if never), by a scan of prefixes."""
    for t in range(1, len(diffs) + 1):
        if wealth(diffs[:t]) >= goal:
            return t
    return len(diffs) + 1


def test_judge_fail_bet_decides_sooner_than_the_clipped_linear_bet() -> None:
    """On a regression of exactly the tolerated drop, the magnitude-aware bet (tanh(theta |D|), no
    overshoot) reaches the Fail threshold sooner than the previous bet on -clip(D, -2, 2)."""
    rng = random.Random(11)
    goal = math.log(20.0)

    def new(ds: list[float]) -> float:
        return _sign_log_wealth(ds, 0.3, goal, 5.0)

    def old(ds: list[float]) -> float:
        return _betting_log_wealth([-max(-2.0, min(2.0, d)) for d in ds], 0.3, -2.0)

    t_new, t_old = [], []
    for _ in range(200):
        diffs = [c - s for s, c in judge_pairs(rng, 300, SHIFT_FOR_03_DROP) if s is not None and c is not None]
        t_new.append(first_fail(diffs, new, goal))
        t_old.append(first_fail(diffs, old, goal))
    t_new.sort()
    t_old.sort()
    assert t_new[100] <= 0.95 * t_old[100], (t_new[100], t_old[100])  # medians (~56 vs ~62)


def test_judge_fail_evidence_stops_at_the_threshold() -> None:
    """A win that would overshoot 1/beta is sized to land on it, and no bet is made beyond it."""
    rng = random.Random(3)
    pairs = judge_pairs(rng, 300, -1.5)
    verdicts = [judge_verdict(pairs[:t], max_drop=0.3).verdict for t in range(1, 301)]
    first = verdicts.index(FAIL)
    assert first < 40 and all(v == FAIL for v in verdicts[first:])
    assert "evidence 20 >= 20" in judge_verdict(pairs, max_drop=0.3).message


# --------------------------------------------------------------------------- never pass without data

NO_DATA: list[Callable[[], MetricVerdict]] = [
    lambda: latency_verdict(None, None, max_increase_percent=10),
    lambda: latency_verdict(None, None, max_seconds=2.0),
    lambda: latency_verdict([], [], max_seconds=2.0, max_increase_percent=10),
    lambda: latency_verdict([(math.inf, 0)], [(math.inf, 0)], max_seconds=100.0),
    lambda: latency_verdict(expected_hist(50000), None, max_increase_percent=50),
    lambda: latency_verdict(expected_hist(50000), [(math.inf, 0)], max_seconds=100.0),
    lambda: error_rate_verdict(None, None, None, None, max_percent=5.0),
    lambda: error_rate_verdict(0, 1000, 0, 0, max_percent=100.0),
    lambda: error_rate_verdict(0, 1000, None, 0, max_percent=1.0),
    lambda: judge_verdict(None, max_drop=1.0, min_score=0.0),
    lambda: judge_verdict([], max_drop=5.0),
    lambda: judge_verdict([(None, None)] * 100, max_drop=5.0),
]


@pytest.mark.parametrize("call", NO_DATA)
def test_never_passes_without_data(call: Callable[[], MetricVerdict]) -> None:
    v = call()
    assert v.verdict == INCONCLUSIVE, v.message
    assert v.message


def test_overall_verdict_and_status() -> None:
    p = MetricVerdict("latency", PASS, 1.0, 1.0, 10, "t", "m")
    f = MetricVerdict("judge", FAIL, 4.0, 3.0, 10, "t", "m")
    i = MetricVerdict("errorRate", INCONCLUSIVE, None, None, 0, "t", "m")
    assert overall_verdict([p, p]) == PASS
    assert overall_verdict([p, i]) == INCONCLUSIVE
    assert overall_verdict([p, i, f]) == FAIL
    assert overall_verdict([]) == INCONCLUSIVE
    assert metric_result(f).model_dump(by_alias=True) == {
        "name": "judge",
        "verdict": "Fail",
        "stableValue": 4.0,
        "canaryValue": 3.0,
        "samples": 10,
        "threshold": "t",
        "message": "m",
    }


# --------------------------------------------------------------------------- error rates by simulation

RUNS = 300
TOLERANCE = 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / RUNS)  # 5% plus 2.5 Monte Carlo standard errors


def rates(verdicts: list[str]) -> dict[str, float]:
    return {k: verdicts.count(k) / len(verdicts) for k in (PASS, FAIL, INCONCLUSIVE)}


def test_latency_error_rates_hold_under_continuous_monitoring() -> None:
    rng = random.Random(20240601)
    null = rates([first_latency_verdict(rng, 1.0) for _ in range(RUNS)])
    bad = rates([first_latency_verdict(rng, 1.15) for _ in range(RUNS)])
    assert null[FAIL] <= TOLERANCE, null  # false rollback
    assert bad[PASS] <= TOLERANCE, bad  # false promotion
    assert null[PASS] >= 0.9 and bad[FAIL] >= 0.9, (null, bad)  # and it does decide


def test_judge_error_rates_hold_under_continuous_monitoring() -> None:
    rng = random.Random(7)
    null = rates([first_judge_verdict(rng, 0.0) for _ in range(RUNS)])
    bad = rates([first_judge_verdict(rng, SHIFT_FOR_03_DROP) for _ in range(RUNS)])
    assert null[FAIL] <= TOLERANCE, null
    assert bad[PASS] <= TOLERANCE, bad
    assert null[PASS] >= 0.9 and bad[FAIL] >= 0.9, (null, bad)
