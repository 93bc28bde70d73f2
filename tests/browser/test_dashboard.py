"""`restate-stream ui` in a real browser, on the real engines: poison records dead-lettered,
seen on the dashboard, fixed, redriven from it (one, then all), resolved; a stuck key shown
with its error and a link to Restate's UI until it goes through; then a binding paused and
resumed from it.

RESTATE_STREAM_SCREENSHOTS=docs keeps the overview's and the binding page's screenshots as
docs/ui-overview.png and docs/ui-binding.png (docs/operations.md shows them); otherwise they go to
the test's temporary directory.
"""

from __future__ import annotations

import base64
import os
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import restate
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from restate_stream._util.poll import poll
from restate_stream._util.ports import free_ports
from restate_stream._util.process import ManagedProcess, tail
from restate_stream.bindings import load_bindings
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import apply_bindings
from restate_stream.runtime.bound import bind
from restate_stream.stack import LocalStack
from restate_stream.testing import (
    RestateApp,
    bindings_yaml,
    drop_cluster,
    object_state,
    produce_json,
    topic_records,
    wait_until,
)
from tests.browser import stuck_app
from tests.integration import redrive_app

pytestmark = [pytest.mark.engines, pytest.mark.browser]

WAIT = 90.0  # seconds for the dashboard to show a change (the sampler reads every second)


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    kept = os.environ.get("RESTATE_STREAM_SCREENSHOTS")
    where = Path(kept) if kept else tmp_path / "screenshots"
    where.mkdir(parents=True, exist_ok=True)
    return where


@contextmanager
def dashboard(path: Path, port: int, log: Path) -> Iterator[str]:
    """`restate-stream ui` as people run it, in its own process group, until the test ends."""
    argv = [sys.executable, "-m", "restate_stream.cli", "ui", "-f", str(path)]
    ui = ManagedProcess("ui", [*argv, "--port", str(port), "--interval", "1"], log)
    ui.start()
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            if not ui.running():
                raise AssertionError(f"restate-stream ui exited:\n{tail(log)}")
            try:
                return httpx.get(f"{url}/fragments/overview", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        poll(up, what="the dashboard to answer", timeout=60)
        yield url
    finally:
        ui.stop()


def until(browser: WebDriver, check: Callable[[WebDriver], Any], what: str) -> Any:
    """Reload the page until `check` holds (the dashboard shows what the engines did)."""

    def reloaded(driver: WebDriver) -> Any:
        driver.refresh()
        return check(driver)

    return WebDriverWait(browser, WAIT, poll_frequency=0.5).until(reloaded, message=what)


def element(browser: WebDriver, element_id: str) -> WebElement:
    """The element with this id, once the page has it (a submitted form's answer may still
    be loading); failing, the page's text says what came instead."""
    try:
        found: WebElement = WebDriverWait(browser, WAIT, poll_frequency=0.2).until(
            lambda b: next(iter(b.find_elements(By.ID, element_id)), False)
        )
    except TimeoutException:
        body = browser.find_element(By.TAG_NAME, "body").text
        raise AssertionError(f"no #{element_id} on {browser.current_url}:\n{body}") from None
    return found


def attribute(browser: WebDriver, css: str, name: str) -> str | None:
    """The attribute of the first element matching `css`; None while there is none (or the
    live part holding it was just replaced by the page's refresh)."""
    try:
        found = browser.find_elements(By.CSS_SELECTOR, css)
        return found[0].get_attribute(name) if found else None
    except StaleElementReferenceException:
        return None


def screenshot(browser: WebDriver, path: Path) -> None:
    """The whole page, beyond the window (Chromium's DevTools capture)."""
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path.write_bytes(base64.b64decode(shot["data"]))


async def test_dead_letters_seen_redriven_and_resolved_from_the_dashboard(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: RestateApp,
    browser: WebDriver,
    tmp_path: Path,
    screenshots: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    topic, dlq, cluster = f"orders-{run}", f"orders-{run}.dlq", f"b-{run}"
    payments = f"payments-{run}"
    bootstrap = restate_stream_stack.bootstrap_servers
    path = tmp_path / "bindings.yaml"
    path.write_text(
        bindings_yaml(
            admin_url=restate_stream_stack.admin_url,
            ingress_url=restate_stream_stack.ingress_url,
            clusters={cluster: bootstrap},
            topics={
                topic: {"cluster": cluster, "partitions": 2},
                payments: {"cluster": cluster, "partitions": 1},
            },
            bindings=[
                {
                    "name": "orders",
                    "topic": topic,
                    "handler": "RedriveSink/consume",
                    "dead_letter": dlq,
                },
                {
                    "name": "payments",
                    "topic": payments,
                    "handler": "StuckSink/consume",
                    # Retried every second at most, for long: the key stays stuck meanwhile.
                    "retry": {
                        "max_attempts": 1000,
                        "initial_interval": "200ms",
                        "max_interval": "1s",
                    },
                },
            ],
        )
    )
    redrive_app.POISON_FAILS = True
    stuck_app.STUCK = True
    spec = load_bindings(path)
    services = [redrive_app.sink, stuck_app.sink]
    assert bind(services, spec) == ["RedriveSink/consume", "StuckSink/consume"]
    stuck_key = f"{run}-customer"
    keys = [f"{run}-{k}" for k in range(3)]
    records = [(keys[i % 3], {"id": i, "poison": i in (3, 7)}) for i in range(12)]

    async def seen() -> Counter[int]:
        state = await object_state(restate_admin, "RedriveSink", "seen")
        return Counter(e[0] for k, entries in state.items() if k in keys for e in entries)

    async def done() -> dict[str, Any]:
        return await object_state(restate_admin, "StuckSink", "done", object_key=stuck_key)

    async with restate_app(restate.app(services)):
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()
        [port] = free_ports(1)
        try:
            with dashboard(path, port, tmp_path / "ui.log") as url:
                produce_json(bootstrap, topic, records)
                produce_json(bootstrap, payments, [(stuck_key, {"id": 1, "customer": "c-9"})])
                await wait_until(seen, lambda s: sum(s.values()) >= 10, timeout=60)
                await topic_records(bootstrap, dlq, at_least=2)

                # The overview: the binding, active, caught up, with its two dead letters.
                browser.get(url)
                row = 'tr[data-binding="orders"]'
                # All read within the wait: the table is live, replaced every second, so a
                # read after it may find the row gone for a moment (attribute() gives None).
                until(
                    browser,
                    lambda b: (
                        attribute(b, f"{row} [data-dead-letters]", "data-dead-letters") == "2"
                        and attribute(b, f"{row} td[data-lag]", "data-lag") == "0"
                        and attribute(b, f"{row} [data-state]", "data-state") == "active"
                    ),
                    "the overview to show the binding active, 2 dead letters and no lag",
                )
                stuck_row = 'tr[data-binding="payments"] [data-invocations="backing-off"]'
                until(browser, lambda b: b.find_elements(By.CSS_SELECTOR, stuck_row), "a stuck key")
                screenshot(browser, screenshots / "ui-overview.png")

                # The binding page: both letters, unresolved, with their cause.
                browser.find_element(By.LINK_TEXT, "orders").click()
                summary = element(browser, "letters-summary")
                assert summary.get_attribute("data-unresolved") == "2", summary.text
                letters = browser.find_elements(By.CSS_SELECTOR, "tr[data-source]")
                causes = sorted(r.text for r in letters)
                assert len(letters) == 2 and "record 3 is poison" in causes[0], causes
                assert "record 7 is poison" in causes[1], causes
                screenshot(browser, screenshots / "ui-binding.png")

                # The topics, as tail reads them: the dead letters are envelopes (id + data).
                browser.get(f"{url}/topics/{topic}?last=100")
                assert len(browser.find_elements(By.CSS_SELECTOR, "#records tbody tr")) == 12
                browser.get(f"{url}/topics/{dlq}")
                shown = browser.find_elements(By.CSS_SELECTOR, "#records tbody tr")
                assert len(shown) == 2, [r.text for r in shown]
                for shown_row in shown:
                    event_id, value = shown_row.find_elements(By.CSS_SELECTOR, "td")[3:5]
                    assert event_id.text and "is poison" in value.text, shown_row.text
                    assert "specversion" not in value.text, "the envelope's data, not the envelope"

                # The stuck key: its invocation's error, and a link to it in Restate's UI.
                browser.get(f"{url}/bindings/payments")
                key_row = f'#stuck-keys tr[data-key="{stuck_key}"]'

                def stuck_row_shown(b: WebDriver) -> tuple[str, str] | bool:
                    rows = b.find_elements(By.CSS_SELECTOR, key_row)
                    if not rows:
                        b.refresh()
                        return False
                    href = rows[0].find_element(By.TAG_NAME, "a").get_attribute("href")
                    return rows[0].text, href or ""

                # The row sits in the live part, which the page replaces every second.
                text, link = WebDriverWait(
                    browser, WAIT, 0.5, ignored_exceptions=(StaleElementReferenceException,)
                ).until(stuck_row_shown, message="the stuck key")
                assert "customer c-9 not found" in text, text
                admin = restate_stream_stack.admin_url.rstrip("/")
                assert link.startswith(f"{admin}/ui/invocations/inv_"), link
                screenshot(browser, screenshots / "ui-stuck-key.png")
                stuck_app.STUCK = False  # the next retry goes through: the key moves on
                until(
                    browser,
                    lambda b: not b.find_elements(By.CSS_SELECTOR, key_row),
                    "the stuck key to go",
                )
                # (gone from the list while its retry runs, too: the state is the proof)
                await wait_until(done, lambda d: d == {stuck_key: [1]}, timeout=WAIT)
                browser.get(f"{url}/bindings/orders")
                letters = browser.find_elements(By.CSS_SELECTOR, "tr[data-source]")

                # Fixed: redrive one of them from its row...
                redrive_app.POISON_FAILS = False
                first = letters[0].get_attribute("data-source")
                letters[0].find_element(By.CSS_SELECTOR, "button.redrive-one").click()
                result = element(browser, "summary")
                assert "1 resolved" in result.text, result.text
                element(browser, "back").click()
                one = f'tr[data-source="{first}"]'
                until(
                    browser,
                    lambda b: (
                        attribute(b, "#letters-summary", "data-unresolved") == "1"
                        and attribute(b, one, "data-resolved") == "yes"
                    ),
                    f"the letter of {first} to show as resolved",
                )
                # An overview left open in another tab: it shows the one left...
                main = browser.current_window_handle
                browser.switch_to.new_window("tab")
                browser.get(url)
                overview = browser.current_window_handle
                dead_letters = f"{row} [data-dead-letters]"
                WebDriverWait(browser, WAIT, poll_frequency=0.5).until(
                    lambda b: attribute(b, dead_letters, "data-dead-letters") == "1",
                    message="the open overview to count 1 unresolved",
                )
                browser.execute_script("window.notReloaded = true")
                browser.switch_to.window(main)
                # ...then the rest with "redrive all".
                element(browser, "redrive-all").click()
                result = element(browser, "summary")
                assert "1 resolved" in result.text, result.text
                element(browser, "back").click()
                until(
                    browser,
                    lambda b: (
                        attribute(b, "#letters-summary", "data-unresolved") == "0"
                        and len(b.find_elements(By.CSS_SELECTOR, 'tr[data-resolved="yes"]')) == 2
                    ),
                    "both letters to show as resolved",
                )
                assert browser.find_elements(By.ID, "redrive-all") == []

                # Restate has the keys' state: every record processed once, poison ones included.
                assert await seen() == Counter(range(12))
                # The overview left open refreshed itself (its script, no reload) to the counts.
                browser.switch_to.window(overview)
                WebDriverWait(browser, WAIT, poll_frequency=0.5).until(
                    lambda b: (
                        attribute(b, dead_letters, "data-dead-letters") == "0"
                        and attribute(b, f"{row} [data-resolved]", "data-resolved") == "2"
                    ),
                    message="the open overview to count 0 unresolved, 2 resolved",
                )
                assert browser.execute_script("return window.notReloaded") is True
                browser.close()
                browser.switch_to.window(main)

                # Pause, confirmed, writes the file and applies; resume undoes it.
                for verb, state, written in (
                    ("pause", "paused", True),
                    ("resume", "active", False),
                ):
                    browser.get(f"{url}/bindings/orders")
                    element(browser, verb).click()
                    assert f"paused: {str(written).lower()}" in browser.page_source
                    assert load_bindings(path).bindings[0].paused is not written, (
                        "not before confirm"
                    )
                    element(browser, "confirm").click()
                    edit = element(browser, "file-edit").text
                    assert f"now has paused: {str(written).lower()}" in edit, edit
                    assert "failed" not in element(browser, "apply-report").text
                    assert load_bindings(path).bindings[0].paused is written
                    element(browser, "back").click()
                    until(
                        browser,
                        lambda b, s=state: attribute(b, "[data-state]", "data-state") == s,
                        f"the binding to show as {state}",
                    )
                subs = await restate_admin.list_subscriptions()
                assert any(s.source == f"kafka://{cluster}/{topic}" for s in subs), subs
        finally:
            await drop_cluster(restate_admin, cluster)
