"""The dashboard's pages rendered from a fake data source (restate_stream.ui.fake)."""

from __future__ import annotations

import asyncio
import re
import warnings

import pytest

with warnings.catch_warnings():  # Starlette 1.x would rather test on httpx2; httpx still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from connectors.consume import ConsumedRecord
from restate_stream.bindings.model import BindingsError, Problem
from restate_stream.ui import create_app
from restate_stream.ui.binding import invocation_url
from restate_stream.ui.charts import sparkline
from restate_stream.ui.fake import FakeSource, fake_letters, fake_spec, fake_status
from restate_stream.ui.guard import TOKEN_FIELD, Guard
from restate_stream.ui.sampler import Sampler

HOST = "testserver"  # TestClient's Host header


def source() -> FakeSource:
    spec = fake_spec(["orders", "payments"])
    orders = fake_status("orders", dead_letters=3, stuck=2)
    payments = fake_status("payments")
    payments.state = "paused"
    return FakeSource(
        spec,
        [orders, payments],
        entries={"orders": fake_letters("orders", 4, resolved_every=4)},
    )


@pytest.fixture
def fake() -> FakeSource:
    return source()


@pytest.fixture
def client(fake: FakeSource) -> TestClient:
    app = create_app(fake, Guard({HOST}, token="t0k"), sample_in_background=False)
    return TestClient(app, base_url=f"http://{HOST}")


def test_overview_lists_every_binding_with_state_lag_invocations_and_dead_letters(
    client: TestClient,
) -> None:
    page = client.get("/")
    assert page.status_code == 200
    html = page.text
    orders = html[html.index('data-binding="orders"') : html.index('data-binding="payments"')]
    assert 'data-state="active"' in orders
    assert 'data-lag="42"' in orders  # 0 + 7 + 14 + 21
    assert 'data-invocations="backing-off">backing-off&nbsp;2' in orders
    assert 'data-dead-letters="3"' in orders
    assert orders.count("<svg") == 2  # records/s and lag
    payments = html[html.index('data-binding="payments"') :]
    assert 'data-state="paused"' in payments
    assert 'href="/bindings/orders"' in html and 'href="/topics/orders"' in html


def test_overview_fragment_is_the_table_alone(client: TestClient) -> None:
    fragment = client.get("/fragments/overview").text
    assert fragment.lstrip().startswith("<table") and "<html" not in fragment
    assert 'data-binding="orders"' in fragment


def test_binding_page_shows_partitions_stuck_keys_with_restate_links_and_dead_letters(
    client: TestClient,
) -> None:
    html = client.get("/bindings/orders").text
    partitions = html[
        html.index('id="partitions"') : html.index("</table>", html.index('id="partitions"'))
    ]
    assert partitions.count("<tr>") == 5  # header + 4 partitions
    assert 'data-key="key-1"' in html
    assert f'href="{invocation_url("http://127.0.0.1:9070", "inv_0001abcdef")}"' in html
    assert "no such customer" in html
    # Four source records, the first resolved: three unresolved, each with its redrive form.
    assert 'data-total="4" data-unresolved="3"' in html
    assert html.count('data-resolved="no"') == 3 and html.count('data-resolved="yes"') == 1
    assert html.count('class="redrive-one"') == 3
    assert 'name="source" value="orders/3/1003"' in html
    assert "record 3 is poison" in html and "orders[3]@1003" in html
    assert "&#34;id&#34;: 3" in html  # the value preview, escaped
    assert 'id="redrive-all"' in html
    assert html.count(f'name="{TOKEN_FIELD}" value="t0k"') == 4  # every form carries it


def test_binding_page_limits_the_letters_shown(client: TestClient) -> None:
    html = client.get("/bindings/orders?limit=2").text
    assert html.count("data-source=") == 2
    assert "Showing 2 of 4" in html and 'href="?limit=4">Show all' in html


def test_binding_page_shows_at_most_1000_letters(fake: FakeSource, client: TestClient) -> None:
    fake.entries["orders"] = fake_letters("orders", 1200)
    html = client.get("/bindings/orders?limit=5000").text
    assert html.count("data-source=") == 1000
    assert "Showing 1000 of 1200" in html and "restate-stream dlq list orders" in html


def test_unknown_binding_is_a_404(client: TestClient) -> None:
    assert client.get("/bindings/nope").status_code == 404


def test_a_stuck_keys_traceback_is_folded_under_its_first_line(
    fake: FakeSource, client: TestClient
) -> None:
    failure = "[500 Internal] LookupError('nope') Traceback (most recent call last):\n  File x"
    fake.status_list[0].stuck_keys[0]["last_failure"] = failure
    html = client.get("/bindings/orders").text
    assert "<details><summary>[500 Internal] LookupError(&#39;nope&#39;)</summary>" in html
    assert "File x</pre></details>" in html


def test_an_error_meant_for_people_is_a_page(fake: FakeSource, client: TestClient) -> None:
    def broken() -> object:
        raise BindingsError([Problem("bindings.yaml", 3, 5, "bindings[0].topic", "is missing")])

    fake.spec = broken  # type: ignore[method-assign]
    page = client.get("/bindings/orders")
    assert page.status_code == 500
    assert "<h1>Error</h1>" in page.text and "bindings.yaml:3:5" in page.text


def test_values_are_escaped(fake: FakeSource, client: TestClient) -> None:
    fake.status_list[0].stuck_keys[0]["last_failure"] = "<script>alert(1)</script>"
    html = client.get("/bindings/orders").text
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html


def test_redrive_all_and_one_go_to_the_source_and_show_outcomes(
    fake: FakeSource, client: TestClient
) -> None:
    headers = {"origin": f"http://{HOST}"}
    done = client.post("/bindings/orders/redrive", data={TOKEN_FIELD: "t0k"}, headers=headers)
    assert done.status_code == 200, done.text
    assert '<span data-outcome="resolved" class="ok">3 resolved</span>' in done.text
    one = client.post(
        "/bindings/orders/redrive",
        data={TOKEN_FIELD: "t0k", "source": "orders/3/1003"},
        headers=headers,
    )
    assert one.status_code == 200, one.text
    assert "1 resolved" in one.text
    assert fake.redrives == [("orders", None), ("orders", {("orders", 3, 1003)})]


def test_redrive_of_a_malformed_source_is_refused(fake: FakeSource, client: TestClient) -> None:
    done = client.post(
        "/bindings/orders/redrive",
        data={TOKEN_FIELD: "t0k", "source": "orders/x"},
        headers={"origin": f"http://{HOST}"},
    )
    assert done.status_code == 400 and fake.redrives == []


def test_pause_asks_for_confirmation_first(fake: FakeSource, client: TestClient) -> None:
    confirm = client.get("/bindings/orders/pause")
    assert confirm.status_code == 200
    assert "paused: true" in confirm.text and 'action="/bindings/orders/pause"' in confirm.text
    assert fake.pauses == []
    done = client.post(
        "/bindings/orders/pause", data={TOKEN_FIELD: "t0k"}, headers={"origin": f"http://{HOST}"}
    )
    assert done.status_code == 200 and "now has <code>paused: true</code>" in done.text
    resumed = client.post(
        "/bindings/payments/resume",
        data={TOKEN_FIELD: "t0k"},
        headers={"referer": f"http://{HOST}/bindings/payments/resume"},
    )
    assert resumed.status_code == 200
    assert fake.pauses == [("orders", True), ("payments", False)]


def test_topic_view_shows_envelopes_as_event_id_and_data(
    fake: FakeSource, client: TestClient
) -> None:
    envelope = b'{"specversion":"1.0","id":"ev-7","type":"t","source":"s","data":{"n":1}}'
    fake.records["orders"] = [
        ConsumedRecord("orders", 0, 5, b"k1", envelope, None),
        ConsumedRecord("orders", 1, 9, None, b"\xff\x00", None),
        ConsumedRecord("orders", 0, 6, b"k2", b"plain text", None),
    ]
    html = client.get("/topics/orders").text
    rows = re.findall(r"<tr><td>(\d+)</td><td>(\d+)</td>", html)
    assert rows == [("0", "5"), ("0", "6"), ("1", "9")]
    assert '<td class="mono">ev-7</td><td class="mono value">{&#34;n&#34;:1}</td>' in html
    assert "base64:/wA=" in html and "plain text" in html


def test_a_failing_status_read_is_shown_and_the_last_statuses_kept() -> None:
    fake = source()
    app = create_app(fake, Guard({HOST}), sample_in_background=False)
    client = TestClient(app, base_url=f"http://{HOST}")
    assert 'data-binding="orders"' in client.get("/").text

    async def broken() -> list[object]:
        raise ConnectionError("admin API down")

    sampler: Sampler = app.state.dashboard.sampler
    sampler.read = broken  # type: ignore[assignment]
    asyncio.run(sampler.sample())
    html = client.get("/").text
    assert "admin API down" in html and 'data-binding="orders"' in html


def test_sparkline_scales_to_the_maximum_and_shows_the_latest_value() -> None:
    svg = str(sparkline([0.0, 5.0, 10.0], label="records/s", width=104, height=24))
    assert 'points="2.0,22.0 52.0,12.0 102.0,2.0"' in svg
    assert ">10</span>" in svg and "latest 10, max 10" in svg
    assert 'points="2.0,22.0 102.0,22.0"' in str(sparkline([], label="x", width=104, height=24))


def test_a_topic_the_bindings_file_does_not_name_is_not_read(
    client: TestClient, fake: FakeSource
) -> None:
    """The page reads with the file's Kafka credentials: only the topics the file names."""
    read: list[str] = []
    tail = fake.tail

    async def recording(topic: str, last: int) -> list[ConsumedRecord]:
        read.append(topic)
        return await tail(topic, last)

    fake.tail = recording  # type: ignore[method-assign]
    for topic in ["__consumer_offsets", "payroll", "orders.dlq.x"]:
        assert client.get(f"/topics/{topic}").status_code == 404, topic
    assert read == []
    for topic in ["orders", "orders.dlq", "payments"]:  # a binding's topic, its dead letters
        assert client.get(f"/topics/{topic}").status_code == 200, topic
    assert read == ["orders", "orders.dlq", "payments"]
