"""The HTML report in a real browser: Debian's chromium, driven through chromium-driver by selenium.

Nothing is downloaded: the driver is ``/usr/bin/chromedriver`` and the
browser ``chromium``, both from apt (``.ci/run`` installs them).  Without
them these tests skip, naming the packages -- except under ``CI=true``,
where a skip would let CI pass without ever opening the page, so they fail.

Each test takes a screenshot into its ``tmp_path``, and a copy goes to
``/tmp/report-shots/`` for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SEVEN = Path(__file__).parent.parent / "scenarios" / "seven-generals.yaml"
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SHOTS = Path("/tmp/report-shots")
MISSING = "needs Debian's chromium and chromium-driver: sudo apt-get install chromium chromium-driver"
WAIT = 20.0
"""Seconds any one browser step may take before the test fails: the tests are bounded in time."""


def _browser() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, so the browser tests must run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    """One headless chromium for the module, closed at the end."""
    browser = _browser()
    if browser is None or not CHROMEDRIVER.exists():
        _skip_or_fail(MISSING)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _skip_or_fail("needs selenium: pip install -e '.[test]'")
    os.environ["SE_OFFLINE"] = "true"  # selenium manager must never fetch a driver or a browser
    options = webdriver.ChromeOptions()
    options.binary_location = str(browser)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1300,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    chrome.set_page_load_timeout(WAIT)
    chrome.set_script_timeout(WAIT)
    try:
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture(scope="module")
def seven_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seven generals' report, as a new user writes it."""
    page = tmp_path_factory.mktemp("browser") / "seven.html"
    _write_report(SEVEN, page)
    return page


def _write_report(scenario: Path, page: Path) -> None:
    """``om-actors run SCENARIO --html PAGE``, as a user types it."""
    done = subprocess.run(
        [sys.executable, "-m", "om_actors", "run", str(scenario), "--html", str(page)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def _open(driver: Any, page: Path) -> None:
    """Load ``page`` from disk and wait for its script to say it is ready."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(page.as_uri())
    WebDriverWait(driver, WAIT).until(
        lambda d: d.execute_script("return document.body.dataset.ready === '1'")
    )


def _shoot(driver: Any, tmp_path: Path, name: str, *, whole: bool = False) -> Path:
    """A PNG of the window, or of the whole page, in ``tmp_path`` and copied to :data:`SHOTS`."""
    if whole:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1300, min(height + 40, 12_000))
    shot = tmp_path / f"{name}.png"
    assert driver.save_screenshot(str(shot)), f"no screenshot taken of {name}"
    if whole:
        driver.set_window_size(1300, 900)
    SHOTS.mkdir(exist_ok=True)
    shutil.copy(shot, SHOTS / shot.name)
    return shot


def test_the_seven_generals_page_loads_without_console_errors(
    driver: Any, seven_page: Path, tmp_path: Path
) -> None:
    driver.get_log("browser")  # what an earlier page said is not this one's
    _open(driver, seven_page)
    errors = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    assert _shoot(driver, tmp_path, "seven-whole-page", whole=True).stat().st_size > 0


def test_the_verdict_is_on_the_page(driver: Any, seven_page: Path) -> None:
    from selenium.webdriver.common.by import By

    _open(driver, seven_page)
    verdict = driver.find_element(By.ID, "verdict")
    assert verdict.is_displayed()
    assert verdict.text == 'SUCCESS: all loyal generals agreed on "attack"'


def test_the_space_time_diagram_has_an_arrow_per_message(driver: Any, seven_page: Path) -> None:
    from selenium.webdriver.common.by import By

    _open(driver, seven_page)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#spacetime g.msg")) == 156


def test_clicking_a_tree_node_expands_its_children(driver: Any, seven_page: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    _open(driver, seven_page)
    node = driver.find_element(By.CSS_SELECTOR, "#tree-0-1 > ul > li > details > ul > li > details")
    summary = node.find_element(By.TAG_NAME, "summary")
    child = node.find_element(By.CSS_SELECTOR, ":scope > ul > li")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", summary)
    summary.click()
    assert not child.is_displayed()  # open to depth 2 when the page loads: the click closes it
    summary.click()
    assert child.is_displayed()
    assert node.get_attribute("open") is not None
    _shoot(driver, tmp_path, "seven-tree-expanded")


def test_a_collapsed_node_opens_with_a_click(driver: Any, tmp_path: Path) -> None:
    """Below depth 2 the trees start collapsed (OM(3)'s third level); a click opens one."""
    from selenium.webdriver.common.by import By

    scenario, page = tmp_path / "eight.yaml", tmp_path / "eight.html"
    scenario.write_text("name: eight\ngenerals: 8\nm: 3\ntraitors: {3: flip}\n")
    _write_report(scenario, page)
    _open(driver, page)
    closed = driver.find_element(By.CSS_SELECTOR, "#tree-0-1 details:not([open])")
    child = closed.find_element(By.CSS_SELECTOR, ":scope > ul > li")
    assert not child.is_displayed()
    summary = closed.find_element(By.TAG_NAME, "summary")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", summary)
    summary.click()
    assert child.is_displayed()
    _shoot(driver, tmp_path, "eight-tree-expanded")


def test_hovering_an_arrow_shows_its_path(driver: Any, seven_page: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    _open(driver, seven_page)
    tip = driver.find_element(By.ID, "tip")
    assert not tip.is_displayed()
    # An arrow whose middle no other arrow crosses, so the pointer lands on it alone.
    arrow = driver.execute_script(
        """
        for (const g of document.querySelectorAll('#spacetime g.msg')) {
            g.scrollIntoView({block: 'center'});
            const box = g.querySelector('line.hit').getBoundingClientRect();
            const hit = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
            if (hit && hit.closest('g.msg') === g) { return g; }
        }
        return null;
        """
    )
    assert arrow is not None, "every arrow's middle is covered by another"
    ActionChains(driver).move_to_element(arrow.find_element(By.CSS_SELECTOR, "line.hit")).perform()
    assert tip.is_displayed()
    said = arrow.get_attribute("data-tip")
    assert tip.text == said
    assert said.startswith("path [0")
    assert ", round " in said
    _shoot(driver, tmp_path, "seven-arrow-hovered")
