"""The benchmarks' pure parts: ratios against a baseline of the same rounds, the tables they
print, and a soak's arithmetic (records due, rates between samples, growth per 100k)."""

from __future__ import annotations

import math
import os
import time

import pytest

from benchmarks.common import SELF, CostMeter, ProcessCost
from benchmarks.e2e_throughput import BASELINE, Unbatched, per_record_table, process_cost_table
from benchmarks.report import fmt, paired_ratio, ratio, table
from benchmarks.sampling import (
    MIB,
    Sample,
    growth_lines,
    growth_per_100k,
    halves,
    rate_between,
    records_due,
    soak_table,
)


def test_ratio_is_nan_without_a_baseline() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert math.isnan(ratio(3.0, 0.0)) and math.isnan(ratio(3.0, math.nan))


def test_paired_ratio_compares_each_round_with_its_own_baseline() -> None:
    # The machine slows down by half in round 2: both sides of the pair move, the ratio not.
    candidate, baseline = [200.0, 100.0, 210.0], [100.0, 50.0, 100.0]
    assert paired_ratio(candidate, baseline) == 2.0
    # Medians of each side would give 100 / 100 = 1.0 here: rounds of different speed mixed.
    assert paired_ratio([90.0, 300.0, 100.0], [100.0, 100.0, 50.0]) == 2.0
    assert math.isnan(paired_ratio([], []))
    with pytest.raises(ValueError, match="not paired"):
        paired_ratio([1.0], [1.0, 2.0])


def test_fmt_shows_a_dash_for_nan() -> None:
    assert fmt(1234.5, ",.0f") == "1,234" and fmt(math.nan, ".2f") == "-"


def test_table_aligns_columns_to_their_widest_cell() -> None:
    rendered = table(["name", "n"], [["a", "1"], ["longer", "1,000"]])
    assert rendered.splitlines() == [
        "name        n",
        "------  -----",
        "a           1",
        "longer  1,000",
    ]
    with pytest.raises(ValueError, match="2 cells"):
        table(["name", "n"], [["a"]])


def test_per_record_table_has_ratios_against_the_bound_handler_on_a_subscription() -> None:
    mib = 2**20
    base = Unbatched(
        BASELINE, "BenchBoundCounter", 1, None, [100.0, 80.0], [1.0, 1.0], [1.0, 1.0],
        [60 * mib, 70 * mib], [300 * mib, 200 * mib],
    )  # fmt: skip
    consumer = Unbatched(
        "consumer", "C", 1, {}, [50.0, 40.0], [2.0, 2.0], [2.0, 2.0],
        [90 * mib, 80 * mib], [250 * mib, 240 * mib],
    )  # fmt: skip
    idle = Unbatched("not run", "X", 1)
    rows = per_record_table([base, consumer, idle], raw_median=1000.0).splitlines()
    assert len(rows) == 4  # headers, rule, the two that ran
    assert rows[2].split() == [
        *BASELINE.split(),
        "90",
        "1.00",
        "0.0900",
        "1.00",
        "1.00",
        "2.00",
        "1.00",
        "70",  # peak RSS MiB: the highest over rounds
        "300",
    ]
    assert rows[3].split() == [
        *("consumer", "45", "0.50", "0.0450", "2.00", "2.00", "4.00", "2.00", "90", "250")
    ]


def test_process_cost_table_gives_each_process_its_cpu_and_peak_memory() -> None:
    def costs(delivery: float, worker: float, rss_mib: int) -> dict[str, ProcessCost]:
        return {
            "delivery": ProcessCost(delivery, rss_mib * 2**20),
            "worker": ProcessCost(worker, 2 * rss_mib * 2**20),
            "restate": ProcessCost(0.01, 3 * rss_mib * 2**20),
        }

    rows = process_cost_table(
        {"batched": [costs(0.01, 0.03, 100), costs(0.02, 0.05, 120), costs(0.03, 0.04, 90)],
         "not run": []}
    ).splitlines()  # fmt: skip
    assert len(rows) == 3
    # CPU: the median over rounds; memory: the highest.
    assert rows[2].split() == ["batched", "0.0200", "120", "0.0400", "240", "0.0100", "360"]


def test_cost_meter_measures_this_process_and_a_group() -> None:
    with CostMeter({"me": SELF, "group": os.getpgid(0)}, interval=0.01) as meter:
        ballast = bytearray(64 * 2**20)  # touched: resident
        for i in range(0, len(ballast), 4096):
            ballast[i] = 1
        deadline = time.process_time() + 0.05
        while time.process_time() < deadline:
            pass
    costs = meter.costs(1000)
    assert costs["me"].cpu_per_1000 >= 0.05
    assert costs["me"].peak_rss >= 64 * 2**20
    assert costs["group"].peak_rss >= costs["me"].peak_rss


def test_records_due_follow_the_rate() -> None:
    assert [records_due(t, 100.0) for t in (0.0, 0.004, 0.5, 2.0)] == [0, 0, 50, 200]
    assert records_due(-1.0, 100.0) == 0


def sample(seconds: float, delivered: int, rss_mib: float, data_mib: float) -> Sample:
    # Preallocated: the disk blocks stay put while the data grows into them.
    return Sample(seconds, delivered, int(rss_mib * MIB), 219 * MIB, int(data_mib * MIB))


SAMPLES = [
    sample(0, 0, 200, 100),
    sample(30, 15_000, 210, 110),
    sample(60, 30_000, 220, 120),
    sample(90, 45_000, 220, 120),
    sample(120, 60_000, 220, 120),
]


def test_rate_and_growth_between_samples() -> None:
    assert rate_between(SAMPLES[0], SAMPLES[1]) == 500.0
    assert growth_per_100k(SAMPLES, "data_bytes") == pytest.approx(20 / 60_000 * 100_000)
    assert growth_per_100k(SAMPLES, "disk_bytes") == 0.0
    first, second = halves(SAMPLES)
    assert first[-1] == second[0] == SAMPLES[2]  # both halves hold the middle sample
    assert growth_per_100k(second, "rss_bytes") == 0.0  # levelled off: bounded
    assert math.isnan(growth_per_100k(SAMPLES[:1], "rss_bytes"))
    assert math.isnan(growth_per_100k([SAMPLES[0], SAMPLES[0]], "rss_bytes"))  # none delivered


def test_soak_table_and_growth_lines() -> None:
    lines = soak_table(SAMPLES).splitlines()
    assert lines[0] == ("minute  records delivered  records/s  RSS MiB  disk MiB  data MiB")
    assert lines[2].split() == ["0.0", "0", "-", "200", "219.0", "100.0"]
    assert lines[3].split() == ["0.5", "15,000", "500", "210", "219.0", "110.0"]
    assert growth_lines(SAMPLES) == [
        "RSS growth per 100,000 records: +33.3 MiB (first half +66.7, second half +0.0)",
        "disk growth per 100,000 records: +0.0 MiB (first half +0.0, second half +0.0)",
        "data growth per 100,000 records: +33.3 MiB (first half +66.7, second half +0.0)",
    ]
