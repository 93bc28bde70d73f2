"""A table or window binding's page shows what its object holds (restate_stream.ui.contents),
bounded and escaped; the live reader's SQL names the binding safely and keeps to the limit."""

from __future__ import annotations

import asyncio
import re
import warnings
from pathlib import Path
from typing import Any, cast

import pytest

with warnings.catch_warnings():  # Starlette 1.x would rather test on httpx2; httpx still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from restate_stream.bindings.loader import parse_bindings
from restate_stream.control.admin import AdminClient
from restate_stream.testing.files import bindings_yaml
from restate_stream.ui import LiveSource, create_app
from restate_stream.ui.binding import clock
from restate_stream.ui.contents import (
    VALUE_WIDTH,
    Contents,
    ContentsError,
    TableRow,
    WindowRow,
    table_contents,
)
from restate_stream.ui.fake import FakeSource, fake_status
from restate_stream.ui.guard import Guard

HOST = "testserver"
T0 = 1_767_225_600_000  # 2026-01-01 00:00:00 UTC


def spec_text() -> str:
    window = {"type": "tumbling", "size": "1m", "to": "order-counts"}
    return bindings_yaml(
        admin_url="http://127.0.0.1:9070",
        ingress_url="http://127.0.0.1:8080",
        clusters={"local": "127.0.0.1:9092"},
        bindings=[
            {"name": "orders-per-minute", "topic": "orders", "window": window},
            {"name": "restaurants", "topic": "restaurants", "table": True},
            {"name": "plain", "topic": "plain", "handler": "S/consume"},
        ],
    )


@pytest.fixture
def fake() -> FakeSource:
    spec = parse_bindings(spec_text(), Path("bindings.yaml"))
    names = ["orders-per-minute", "restaurants", "plain"]
    return FakeSource(spec, [fake_status(n) for n in names])


@pytest.fixture
def client(fake: FakeSource) -> TestClient:
    app = create_app(fake, Guard({HOST}, token="t0k"), sample_in_background=False)
    return TestClient(app, base_url=f"http://{HOST}")


def test_a_table_bindings_page_lists_its_keys_and_values_escaped(
    fake: FakeSource, client: TestClient
) -> None:
    rows = [TableRow(f"r{i:02d}", f'{{"name": "R{i}"}}') for i in range(60)]
    rows[0] = TableRow("<b>r00</b>", '{"name": "<script>alert(1)</script>"}')
    fake.held["restaurants"] = Contents(60, rows, [])
    html = client.get("/bindings/restaurants").text
    assert "Table contents" in html
    keys = re.findall(r'<tr data-key="([^"]*)"><td class="mono">', html)
    assert len(keys) == 50, "the first 50 keys by default"
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert keys[0] == "&lt;b&gt;r00&lt;/b&gt;"
    assert 'data-keys="60"' in html and "the first 50 by key shown" in html
    assert 'href="?keys=60"' in html

    everything = client.get("/bindings/restaurants?keys=60").text
    assert len(re.findall(r'<tr data-key="[^"]*"><td class="mono">', everything)) == 60
    assert "the first" not in everything


def test_a_window_bindings_page_shows_its_open_windows_and_links_the_results_topic(
    fake: FakeSource, client: TestClient
) -> None:
    windows = [
        WindowRow("r1", T0, T0 + 60_000, "3", 3),
        WindowRow("r2", T0 + 60_000, T0 + 120_000, '{"mean":1.5}', 2),
    ]
    fake.held["orders-per-minute"] = Contents(2, [], windows)
    html = client.get("/bindings/orders-per-minute").text
    assert "Open windows" in html and 'href="/topics/order-counts"' in html
    starts = re.findall(r'<tr data-key="(\w+)" data-start="(\d+)">', html)
    assert starts == [("r1", str(T0)), ("r2", str(T0 + 60_000))]
    assert "2026-01-01 00:01:00.000 UTC" in html and "{&#34;mean&#34;:1.5}" in html
    # The results topic is one the file names: its page may read it.
    assert client.get("/topics/order-counts").status_code == 200


def test_a_failed_read_is_said_on_the_page_and_a_handler_binding_has_no_section(
    fake: FakeSource, client: TestClient
) -> None:
    async def broken(binding: str, limit: int) -> Contents:
        raise ContentsError(f"{binding}: reading key 'r1''s windows failed: 503")

    fake.contents = broken  # type: ignore[method-assign]
    page = client.get("/bindings/orders-per-minute")
    assert page.status_code == 200
    assert re.search(r'id="held-error">orders-per-minute: reading key .*503</div>', page.text)
    plain = client.get("/bindings/plain").text
    assert "Open windows" not in plain and "Table contents" not in plain


def test_clock_is_utc_to_the_millisecond() -> None:
    assert clock(T0 + 61_005) == "2026-01-01 00:01:01.005 UTC"


class RecordingAdmin:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.sql: list[str] = []

    async def query(self, sql: str) -> list[dict[str, Any]]:
        self.sql.append(sql)
        return [{"n": 120}] if "COUNT(*)" in sql else self.rows


def test_table_contents_quotes_the_name_limits_the_rows_and_shortens_values() -> None:
    admin = RecordingAdmin([{"service_key": "r1", "value_utf8": '{"menu": "' + "x" * 500 + '"}'}])
    got = asyncio.run(table_contents(cast(AdminClient, admin), "it's", 50))
    assert got.keys == 120 and [r.key for r in got.table] == ["r1"]
    assert len(got.table[0].value) == VALUE_WIDTH and got.table[0].value.endswith("…")
    count, rows = admin.sql
    assert "service_name = 'it''s' AND key = 'value'" in count
    assert rows.endswith("ORDER BY service_key LIMIT 50")


def test_the_live_source_reads_a_table_binding_without_dead_letters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It once looked the binding up as `dlq` does, which refuses one without dead_letter."""
    path = tmp_path / "bindings.yaml"
    path.write_text(spec_text())
    asked: list[tuple[str, int]] = []

    async def rows(admin: AdminClient, binding: str, limit: int) -> Contents:
        asked.append((binding, limit))
        return Contents(1, [TableRow("r1", "{}")], [])

    monkeypatch.setattr("restate_stream.ui.sources.table_contents", rows)
    source = LiveSource(path)
    assert asyncio.run(source.contents("restaurants", 7)).table == [TableRow("r1", "{}")]
    assert asked == [("restaurants", 7)]
    with pytest.raises(ContentsError, match="no table or window binding named 'plain'"):
        asyncio.run(source.contents("plain", 7))
