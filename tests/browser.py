"""Headless Chromium for browser tests (Debian's ``chromium`` + ``chromium-driver``)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def require_chromium() -> None:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(
            "headless Chromium not found: install Debian's chromium and chromium-driver "
            "(`make test` does this when run as root)"
        )


@pytest.fixture
def browsers() -> Iterator[Callable[[], WebDriver]]:
    """A factory of independent browsers (separate profiles: separate people)."""
    require_chromium()
    opened: list[WebDriver] = []

    def open_browser() -> WebDriver:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM  # type: ignore[assignment]
        for flag in [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1280,900",
            f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}",
        ]:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        opened.append(driver)
        return driver

    yield open_browser
    for driver in opened:
        driver.quit()


# A deadline, not a sleep: on a busy machine a server's first bot answer (models loaded, index
# built) can take this long.
def wait(driver: WebDriver, seconds: float = 45) -> WebDriverWait:
    return WebDriverWait(driver, seconds, poll_frequency=0.05)


def open_demo_widget(driver: WebDriver, base: str) -> None:
    """Open the demo shop, click the launcher and switch into the widget's frame."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    driver.get(f"{base}/demo/")
    wait(driver).until(ec.element_to_be_clickable((By.ID, "helpdesk-launcher"))).click()
    wait(driver).until(ec.frame_to_be_available_and_switch_to_it((By.ID, "helpdesk-frame")))


def console_login(driver: WebDriver, base: str, username: str, page: str = "/console/") -> None:
    """Sign in to the console as a demo user (password = user name), landing on ``page``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(f"{base}/accounts/login/?next={page}")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(username, Keys.ENTER)
