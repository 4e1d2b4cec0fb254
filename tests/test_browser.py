"""The probability view's HTML page in a real browser: Debian's Chromium, headless.

Without Chromium and chromedriver these tests are skipped, unless
NEGTEMP_REQUIRE_BROWSER=1 (as CI sets it), which makes that an error.
"""

import json
import os

import pytest

from negtemp import view
from scripts import browser

PROMPT = "the temperature is a concept"

if browser.missing():
    if os.environ.get("NEGTEMP_REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"NEGTEMP_REQUIRE_BROWSER=1, but {browser.missing()}")
    pytest.skip(browser.missing(), allow_module_level=True)


@pytest.fixture(scope="module")
def draws(tiny):
    return tiny.draws(PROMPT, -1.0, n=3, seed=1, n_predict=8, n_probs=5, ignore_eos=True)


@pytest.fixture(scope="module")
def page(tmp_path_factory, draws):
    """The page of three draws, open in Chromium; and the URL it was loaded from."""
    path = tmp_path_factory.mktemp("view") / "view.html"
    path.write_text(view.render_html(draws, prompt=PROMPT, model="tiny", undertrained={int(draws[0].tokens[0])}),
                    encoding="utf-8")
    driver = browser.chromium()
    try:
        driver.get(path.as_uri())
        yield driver, path.as_uri()
    finally:
        driver.quit()


def test_the_page_renders_each_draw_side_by_side(page, draws):
    driver, _ = page
    boxes = driver.execute_script(
        "return [...document.querySelectorAll('.draw')].map(e => e.getBoundingClientRect().toJSON())")
    assert len(boxes) == len(draws)
    assert all(b["width"] > 100 and b["height"] > 20 for b in boxes)
    assert len({round(b["top"]) for b in boxes}) == 1, "the draws are not side by side"


def test_hovering_over_any_token_shows_its_probabilities_and_alternatives(page, draws):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver, _ = page
    tokens = driver.find_elements(By.CSS_SELECTOR, ".tok")
    assert len(tokens) == sum(len(c.tokens) for c in draws)
    want = [int(t) for c in draws for t in c.tokens]
    for el, token in zip(tokens, want):
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
        ActionChains(driver).move_to_element(el).perform()
        info = driver.find_element(By.ID, "info")
        assert info.get_attribute("data-token") == str(token)
        assert "under the model" in info.text and "rank" in info.text
        assert len(info.find_elements(By.CSS_SELECTOR, "tr")) == 1 + 5  # header + the top 5


def test_an_under_trained_token_is_marked(page):
    driver, _ = page
    marked = driver.execute_script("return [...document.querySelectorAll('.tok.ut')].map("
                                   "e => [JSON.parse(e.dataset.tok).ut, getComputedStyle(e).textDecorationStyle])")
    assert marked and all(ut and style == "wavy" for ut, style in marked)


def test_the_page_fetches_nothing_from_the_network(page):
    driver, url = page
    requests = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            requests.append(msg["params"]["request"]["url"])
    assert requests == [url], f"the page fetched {requests}"
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
