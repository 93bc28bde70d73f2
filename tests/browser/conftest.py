"""The browser suite: headless Chromium driven through chromedriver (Selenium).

Skips, saying how to enable it, when chromium or chromedriver is not on PATH
(scripts/browser-setup installs Debian's `chromium` and `chromium-driver`). CI sets
RESTATE_STREAM_REQUIRE_BROWSER=1, so there a missing browser fails instead of skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver

REQUIRE_ENV = "RESTATE_STREAM_REQUIRE_BROWSER"
HOW = (
    "no {missing} on PATH: the browser tests need headless Chromium and its WebDriver. "
    "Install them with `scripts/browser-setup` (Debian's chromium and chromium-driver, via "
    "apt-get; needs root or sudo)"
)


def _browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [n for n, p in (("chromium", chromium), ("chromedriver", driver)) if p is None]
    if missing:
        reason = HOW.format(missing=" and ".join(missing))
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{REQUIRE_ENV} is set but {reason}")
        pytest.skip(reason)
    assert chromium is not None and driver is not None
    return chromium, driver


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """A headless Chromium session, closed after the test."""
    chromium, driver_path = _browser()
    # Selenium Manager would otherwise look for drivers on the network: use the local ones.
    os.environ.setdefault("SE_OFFLINE", "true")

    options = Options()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace for the sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,900",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
    ):
        options.add_argument(argument)
    session = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield session
    finally:
        session.quit()
