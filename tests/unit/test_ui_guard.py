"""The dashboard's protection against cross-site requests and DNS rebinding."""

from __future__ import annotations

import asyncio
import base64
import warnings
from typing import Any
from urllib.parse import urlencode

import pytest

from restate_stream._util.ports import is_loopback
from restate_stream.ui import create_app
from restate_stream.ui.actions import MAX_FORM
from restate_stream.ui.fake import FakeSource, fake_letters, fake_spec, fake_status
from restate_stream.ui.guard import TOKEN_FIELD, Guard, allowed_hosts, presented_token

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
        ({"origin": f"http://{DASHBOARD}"}, "sécret"),  # not ASCII: a refusal, not a 500
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
    # Every interface has no name of its own: only the names given (--allowed-host).
    assert allowed_hosts("0.0.0.0", 80) == frozenset()
    assert allowed_hosts("0.0.0.0", 80, ["Dash.example.com"]) == {"dash.example.com"}
    assert is_loopback("::1") and is_loopback("localhost") and not is_loopback("10.0.0.1")


def test_an_allowed_name_without_a_port_matches_any_port_with_one_only_that() -> None:
    guard = Guard(allowed_hosts("0.0.0.0", 8765, ["dash.example.com", "10.0.0.5:8765"]))
    assert guard.host_allowed("dash.example.com") and guard.host_allowed("DASH.example.com:443")
    assert guard.host_allowed("10.0.0.5:8765") and not guard.host_allowed("10.0.0.5:9999")
    assert not guard.host_allowed("evil.example:8765") and not guard.host_allowed("")


# --- the body limit: checked before reading, and while reading ------------------------------

Message = dict[str, Any]


def post_raw(app: Any, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    """POST a redrive form body as `chunks` straight through ASGI; (status, chunks read)."""
    read = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal read
        if read >= len(chunks):
            return {"type": "http.disconnect"}
        read += 1
        return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http", "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/bindings/orders/redrive", "raw_path": b"/bindings/orders/redrive",
        "query_string": b"", "root_path": "", "server": ("127.0.0.1", 8765),
        "headers": [(b"host", DASHBOARD.encode()), (b"origin", f"http://{DASHBOARD}".encode()),
                    (b"content-type", b"application/x-www-form-urlencoded"), *headers],
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    (start,) = [m for m in sent if m["type"] == "http.response.start"]
    return start["status"], read


@pytest.fixture
def app(fake: FakeSource) -> Any:
    return create_app(fake, Guard(allowed_hosts("127.0.0.1", 8765)), sample_in_background=False)


def test_a_body_declared_too_large_is_refused_unread(app: Any, fake: FakeSource) -> None:
    huge = str(10 * MAX_FORM).encode()
    status, read = post_raw(app, [b"x" * 1024] * 640, [(b"content-length", huge)])
    assert (status, read) == (413, 0)
    assert fake.redrives == []


def test_a_chunked_body_is_read_no_further_than_the_limit(app: Any, fake: FakeSource) -> None:
    """No Content-Length (chunked): reading stops once the limit is passed."""
    status, read = post_raw(app, [b"x" * 1024] * 1000, [])
    assert status == 413
    assert read == MAX_FORM // 1024 + 1  # the chunk that went past it, no more
    assert fake.redrives == []


def test_a_form_within_the_limit_still_goes_through(app: Any, fake: FakeSource) -> None:
    guard: Guard = app.state.dashboard.guard
    body = urlencode({TOKEN_FIELD: guard.token}).encode()
    status, _ = post_raw(app, [body[:5], body[5:]], [])
    assert status == 200 and len(fake.redrives) == 1


# --- the access token -------------------------------------------------------------------------

ACCESS = "a-long-enough-access-token"


def basic(user: str, password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def exposed(fake: FakeSource) -> TestClient:
    guard = Guard(allowed_hosts("0.0.0.0", 8765, ["dash.example.com"]), access_token=ACCESS)
    app = create_app(fake, guard, sample_in_background=False)
    return TestClient(app, base_url="http://dash.example.com:8765")


def test_without_the_token_every_page_asks_for_it(exposed: TestClient, fake: FakeSource) -> None:
    for path in ["/", "/bindings/orders", "/topics/orders"]:
        refused = exposed.get(path)
        assert refused.status_code == 401, path
        assert refused.headers["www-authenticate"].startswith("Basic realm=")
        assert ACCESS not in refused.text
    for wrong in [basic("admin", "guessed"), {"authorization": "Bearer guessed"},
                  {"authorization": "Basic !!!"}, basic(ACCESS, "")]:  # fmt: skip
        assert exposed.get("/", headers=wrong).status_code == 401, wrong
    assert exposed.post("/bindings/orders/redrive", data={}).status_code == 401
    assert fake.redrives == []


@pytest.mark.parametrize(
    "credentials", [basic("anyone", ACCESS), {"authorization": f"Bearer {ACCESS}"}]
)
def test_with_the_token_pages_and_actions_work(
    exposed: TestClient, fake: FakeSource, credentials: dict[str, str]
) -> None:
    assert exposed.get("/bindings/orders", headers=credentials).status_code == 200
    origin = {"origin": "http://dash.example.com:8765", **credentials}
    form = {TOKEN_FIELD: exposed.app.state.dashboard.guard.token}  # type: ignore[attr-defined]
    assert exposed.post("/bindings/orders/pause", data=form, headers=origin).status_code == 200
    assert fake.pauses == [("orders", True)]


def test_the_token_does_not_replace_the_same_origin_check(
    exposed: TestClient, fake: FakeSource
) -> None:
    """The browser sends basic credentials whichever site makes it POST."""
    form = {TOKEN_FIELD: exposed.app.state.dashboard.guard.token}  # type: ignore[attr-defined]
    headers = {"origin": "http://evil.example", **basic("u", ACCESS)}
    assert exposed.post("/bindings/orders/pause", data=form, headers=headers).status_code == 403
    assert fake.pauses == []


def test_a_rebinding_name_is_refused_even_with_the_token(exposed: TestClient) -> None:
    headers = {"host": "evil.example:8765", **basic("u", ACCESS)}
    assert exposed.get("/", headers=headers).status_code == 421


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"Bearer {ACCESS}", ACCESS),
        ("Basic " + base64.b64encode(b"u:p:with:colons").decode(), "p:with:colons"),
        ("Basic not-base64!", None),
        ("Digest x", None),
        ("", None),
    ],
)
def test_presented_token(header: str, expected: str | None) -> None:
    assert presented_token(header) == expected
