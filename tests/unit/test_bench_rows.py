"""The benchmarks' result table (benchmarks/report.py: Series, series_table): medians, ratios
paired by round to the baseline and to the row each one names, CPU per 1,000 records, and rows
that did not run left out."""

from __future__ import annotations

from benchmarks.report import Series, series_table


def cells(rendered: str) -> list[list[str]]:
    """Each row's cells, cut where the rule under the headers has its columns."""
    header, rule, *rows = rendered.splitlines()
    spans, start = [], 0
    for dashes in rule.split("  "):
        spans.append((start, start + len(dashes)))
        start += len(dashes) + 2
    return [[line[a:b].strip() for a, b in spans] for line in [header, *rows]]


def test_rows_give_medians_and_ratios_to_the_baseline_and_to_their_named_row() -> None:
    raw = Series("raw", rates=[100_000.0, 200_000.0, 150_000.0], cpu=[0.01, 0.03, 0.02])
    batched = Series("batched 1000", versus="bridge 1000", rates=[30_000.0, 45_000.0, 40_000.0])
    batched.cpu = [0.2, 0.4, 0.3]
    bridge = Series("bridge 1000", versus="batched 1000", rates=[20_000.0, 20_000.0, 20_000.0])
    header, *rows = cells(series_table(raw, [batched, bridge]))
    assert header[1:3] == ["records/s (median of 3)", "x baseline"]
    assert rows[0] == ["raw", "150,000", "1", "", "0.0200"]
    # Paired by round: 0.3, 0.225, 0.2667 against raw; 1.5, 2.25, 2.0 against the bridge.
    assert rows[1] == ["batched 1000", "40,000", "0.2667", "2.00 x bridge 1000", "0.300"]
    assert rows[2] == ["bridge 1000", "20,000", "0.1333", "0.50 x batched 1000", ""]


def test_ratios_pair_rounds_not_medians() -> None:
    # The machine halves its speed in round 2: the row keeps pace with raw in every round.
    raw = Series("raw", rates=[100.0, 50.0, 100.0])
    row = Series("row", rates=[200.0, 100.0, 210.0])
    assert cells(series_table(raw, [row]))[2][2] == "2.0000"


def test_a_row_not_run_is_left_out_and_a_missing_comparison_is_blank() -> None:
    raw = Series("raw", rates=[1000.0, 1000.0])
    never = Series("FastStream per message")
    once = Series("peer", versus="never ran", rates=[50.0])
    rows = cells(series_table(raw, [never, once]))[1:]
    assert len(rows) == 2
    # Fewer rounds than the baseline: said in the row; slow rates keep 3 significant digits.
    assert rows[1] == ["peer (1 round)", "50", "0.0500", "", ""]
    assert rows[0] == ["raw", "1,000", "1", "", ""]
