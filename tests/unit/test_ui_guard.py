"""The dashboard's protection against cross-site requests and DNS rebinding."""

from __future__ import annotations

import warnings

import pytest

from restate_stream._util.ports import is_loopback
from restate_stream.ui import create_app
from restate_stream.ui.fake import FakeSource, fake_letters, fake_spec, fake_status
from restate_stream.ui.guard import TOKEN_FIELD, Guard, allowed_hosts

with warnings.catch_warnings():  # Starlette 1.x would rather test on httpx2; httpx still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

DASHBOARD = "127.0.0.1:8765"


@pytest.fixture
def fake() -> FakeSource:
    return FakeSource(
        fake_spec(["orders"]),
        [fake_status("orders", dead_letters=2)],
        entries={"orders": fake_letters("orders", 2)},
    )


@pytest.fixture
def client(fake: FakeSource) -> TestClient:
    guard = Guard(allowed_hosts("127.0.0.1", 8765), token="secret")
    app = create_app(fake, guard, sample_in_background=False)
    return TestClient(app, base_url=f"http://{DASHBOARD}")


def post(
    client: TestClient, path: str, headers: dict[str, str], token: str | None = "secret"
) -> int:
    data = {} if token is None else {TOKEN_FIELD: token}
    return client.post(path, data=data, headers=headers).status_code


ACTIONS = ["/bindings/orders/redrive", "/bindings/orders/pause", "/bindings/orders/resume"]


@pytest.mark.parametrize("path", ACTIONS)
def test_an_action_from_the_dashboard_itself_goes_through(
    client: TestClient, fake: FakeSource, path: str
) -> None:
    assert post(client, path, {"origin": f"http://{DASHBOARD}"}) == 200
    assert len(fake.redrives) + len(fake.pauses) == 1


@pytest.mark.parametrize("path", ACTIONS)
@pytest.mark.parametrize(
    ("headers", "token"),
    [
        ({"origin": "http://evil.example"}, "secret"),  # another site, with a stolen token
        ({"origin": "http://127.0.0.1:9999"}, "secret"),  # another local port is another site
        ({"referer": "http://evil.example/page"}, "secret"),
        ({"origin": "null"}, "secret"),  # a sandboxed frame or a data: URL, no Referer
        ({}, "secret"),  # no Origin, no Referer
        ({"origin": f"http://{DASHBOARD}"}, "guessed"),
        ({"origin": f"http://{DASHBOARD}"}, None),
    ],
)
def test_a_cross_site_or_tokenless_action_is_refused_and_does_nothing(
    client: TestClient,
    fake: FakeSource,
    path: str,
    headers: dict[str, str],
    token: str | None,
) -> None:
    response = client.post(
        path, data={} if token is None else {TOKEN_FIELD: token}, headers=headers
    )
    assert response.status_code == 403, response.text
    assert 'id="reason"' in response.text
    assert fake.redrives == [] and fake.pauses == []


def test_origin_wins_over_a_matching_referer(client: TestClient, fake: FakeSource) -> None:
    headers = {"origin": "http://evil.example", "referer": f"http://{DASHBOARD}/"}
    assert post(client, "/bindings/orders/redrive", headers) == 403
    assert fake.redrives == []


def test_a_page_asked_for_under_another_host_name_is_refused(client: TestClient) -> None:
    """DNS rebinding: evil.example resolved to 127.0.0.1 still sends Host: evil.example."""
    assert client.get("/", headers={"host": "evil.example:8765"}).status_code == 421
    assert client.get("/", headers={"host": "localhost:8765"}).status_code == 200
    assert client.get("/").status_code == 200


def test_every_form_of_every_page_carries_the_token(client: TestClient) -> None:
    for path in ["/bindings/orders", "/bindings/orders/pause", "/bindings/orders/resume"]:
        html = client.get(path).text
        forms = html.count('method="post"')
        assert forms >= 1
        assert html.count(f'name="{TOKEN_FIELD}" value="secret"') == forms


@pytest.mark.parametrize("path", ["/", "/bindings/orders", "/bindings/orders/pause"])
def test_pages_refuse_framing_and_run_only_their_own_script(client: TestClient, path: str) -> None:
    """A framed page would pass the token and Origin checks (clickjacking): no framing."""
    page = client.get(path)
    assert page.headers["x-frame-options"] == "DENY"
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "form-action 'self'" in policy
    nonce = policy.split("'nonce-", 1)[1].split("'", 1)[0]
    scripts = page.text.count("<script")
    assert page.text.count(f'<script nonce="{nonce}">') == scripts
    assert nonce not in client.get(path).headers["content-security-policy"]  # fresh each time


def test_each_process_gets_its_own_token() -> None:
    assert Guard(None).token != Guard(None).token
    assert len(Guard(None).token) >= 40


def test_allowed_hosts() -> None:
    assert allowed_hosts("127.0.0.1", 80) == {"127.0.0.1:80", "localhost:80", "[::1]:80"}
    assert allowed_hosts("192.168.1.5", 80) == {"192.168.1.5:80"}
    assert allowed_hosts("0.0.0.0", 80) is None  # every interface: names unknown
    assert is_loopback("::1") and is_loopback("localhost") and not is_loopback("10.0.0.1")
