"""The benchmarks' result table (benchmarks/rows.py): medians, ratios to the baseline and to
the row each one names, CPU per 1,000 records, and rows that did not run left out."""

from __future__ import annotations

from benchmarks.rows import Series, table


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_rows_give_medians_and_ratios_to_the_baseline_and_to_their_named_row() -> None:
    raw = Series("raw", rates=[100_000.0, 200_000.0, 150_000.0], cpu=[0.01, 0.03, 0.02])
    batched = Series("batched 1000", versus="bridge 1000", rates=[30_000.0, 45_000.0, 40_000.0])
    batched.cpu = [0.2, 0.4, 0.3]
    bridge = Series("bridge 1000", versus="batched 1000", rates=[20_000.0, 20_000.0, 20_000.0])
    lines = table(raw, [batched, bridge])
    assert cells(lines[2]) == ["raw", "150,000", "1", "", "0.020"]
    assert cells(lines[3]) == ["batched 1000", "40,000", "0.2667", "2.00 x bridge 1000", "0.300"]
    assert cells(lines[4]) == ["bridge 1000", "20,000", "0.1333", "0.50 x batched 1000", ""]


def test_a_row_not_run_is_left_out_and_a_missing_comparison_is_blank() -> None:
    raw = Series("raw", rates=[1000.0, 1000.0])
    never = Series("FastStream per message")
    once = Series("peer", versus="never ran", rates=[50.0])
    lines = table(raw, [never, once])
    assert len(lines) == 4
    # Fewer rounds than the baseline: said in the row; slow rates keep 3 significant digits.
    assert cells(lines[3]) == ["peer (1 round)", "50", "0.0500", "", ""]
    assert cells(lines[2]) == ["raw", "1,000", "1", "", ""]
