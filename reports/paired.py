"""Paired statistics of interleaved rounds (``torchconform bench --against``).

Per benchmark, turn i of build A and turn i of build B ran within milliseconds
of each other (torchconform/interleave.py); each turn's time is the median of
its calls.  The pair's log ratio ``d_i = ln(B_i / A_i)`` is then free of
whatever load the machine had at that moment.

- estimate: ``B/A = exp(median d)``;
- confidence interval: the sign test's distribution-free interval of that
  median (``scipy.stats.quantile_test(d, q=0).confidence_interval``), at a
  family-wise 95%: Bonferroni over the benchmarks compared, so that a run of K
  benchmarks has at most a 5% chance of any interval missing its true ratio.
  The median and the sign test, not the mean and Student's t: on a shared
  machine the log ratios have heavy tails (a turn that another process
  preempted is 1.5-2x slow), which pulled means and t intervals into false
  "slower" verdicts in same-build runs, while medians stayed within 4%;
- verdict: **slower** when the whole interval lies above 1 *and* the estimate
  exceeds ``1 + THRESHOLD``; **faster** the mirror image; otherwise **within
  noise**.  The interval covers the noise of turns, not a standing difference
  between two processes (memory layout, alignment): same-build runs showed one
  such difference of 5.3% with an interval excluding 1, and none larger, so the
  threshold is 7% (``torchconform/bench_power.py``; README "Performance records").
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

THRESHOLD = 0.07  # README "Performance records": above every same-build deviation measured
LEVEL = 0.95
CONTROL = "test_machine_control"  # suite/perf/test_perf.py: pure Python; not part of the exit status


def turn_times(docs: list[dict]) -> dict[str, list[list[float]]]:
    """fullname -> per session, the median time of a call in each turn (pytest-benchmark's saved per-round
    data, cut into turns of ``extra_info["per_turn"]`` calls).  Benchmarks run without turns are left out."""
    table: dict[str, list[list[float]]] = {}
    for doc in docs:
        for b in doc.get("benchmarks", []):
            per_turn = (b.get("extra_info") or {}).get("per_turn")
            data = b["stats"].get("data") or []
            if per_turn and data:
                turns = [float(np.median(data[i:i + per_turn])) for i in range(0, len(data), per_turn)]
                table.setdefault(b["fullname"], []).append(turns)
    return table


def paired_ratio(a: list[float], b: list[float], level: float) -> dict[str, Any]:
    """Median of the paired log ratios (turn i of A with turn i of B) and its sign-test interval."""
    d = np.array([math.log(y / x) for x, y in zip(a, b) if x > 0 and y > 0])
    n = len(d)
    if n == 0:
        return {"ratio": math.nan, "ci_low": math.nan, "ci_high": math.nan, "pairs": 0, "p_value": math.nan,
                "log_ratios": []}
    test = stats.quantile_test(d, q=0.0, p=0.5)
    low, high = test.confidence_interval(confidence_level=level)
    # with few pairs the order statistics cannot reach ``level``: scipy answers nan, i.e. no bound
    low = -math.inf if math.isnan(low) else low
    high = math.inf if math.isnan(high) else high
    return {"ratio": math.exp(float(np.median(d))), "ci_low": math.exp(low), "ci_high": math.exp(high),
            "pairs": n, "p_value": float(test.pvalue), "log_ratios": [round(float(x), 4) for x in d]}


def verdict(ratio: float, low: float, high: float, pairs: int, threshold: float) -> str:
    if pairs < 3 or math.isnan(ratio):
        return "too few turns"
    if low > 1 and ratio > 1 + threshold:
        return "slower"
    if high < 1 and ratio < 1 / (1 + threshold):
        return "faster"
    return "within noise"


def compare_rounds(docs_a: list[dict], docs_b: list[dict], threshold: float = THRESHOLD,
                   level: float = LEVEL) -> list[dict]:
    """One row per benchmark that both sides ran: medians, ratio, interval, verdict."""
    from reports.perf import fmt_time

    ta, tb = turn_times(docs_a), turn_times(docs_b)
    names = [n for n in ta if n in tb]
    family_level = 1 - (1 - level) / max(1, len(names))
    rows = []
    for name in names:
        # sessions pair up in order; within a session, turn i of A with turn i of B
        flat_a = [x for sa, sb in zip(ta[name], tb[name]) for x in sa[:len(sb)]]
        flat_b = [y for sa, sb in zip(ta[name], tb[name]) for y in sb[:len(sa)]]
        r = paired_ratio(flat_a, flat_b, family_level)
        session_ratios = [paired_ratio(sa, sb, family_level)["ratio"] for sa, sb in zip(ta[name], tb[name])]
        short = name.split("::")[-1]
        med_a, med_b = float(np.median(flat_a)), float(np.median(flat_b))
        rows.append({"name": short, "fullname": name, **r, "level": family_level,
                     "verdict": verdict(r["ratio"], r["ci_low"], r["ci_high"], r["pairs"], threshold),
                     "control": short == CONTROL, "median_a": med_a, "median_b": med_b,
                     "median_a_text": fmt_time(med_a), "median_b_text": fmt_time(med_b),
                     "noise": threshold, "session_ratios": session_ratios})
    return rows


def slower(rows: list[dict]) -> list[dict]:
    """The rows that fail the run (the control benchmark measures the method, not torch)."""
    return [r for r in rows if r["verdict"] == "slower" and not r["control"]]
