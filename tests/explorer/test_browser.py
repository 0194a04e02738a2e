"""End to end in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright): start the server on
127.0.0.1 and a free port, select an example and a method, wait for the attribution over the image, check that the
picture changed when the method changes, compare two models side by side, text tokens are coloured; save
screenshots under $PELLUCID_TEST_ARTIFACTS (default: the test's tmp_path). Skips, saying why, without chromium or
playwright."""
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("matplotlib")

from explorer.explorer_helpers import image_explorer, text_explorer  # noqa: E402

CHROMIUM = os.environ.get("PELLUCID_CHROMIUM", "/usr/bin/chromium")
if not os.path.exists(CHROMIUM) and "PELLUCID_CHROMIUM" not in os.environ:
    CHROMIUM = shutil.which("chromium") or CHROMIUM
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"chromium not found at {CHROMIUM}: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def artifacts(tmp_path):
    d = Path(os.environ.get("PELLUCID_TEST_ARTIFACTS") or tmp_path)
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def server():
    """The app with an image and a text dataset, served on 127.0.0.1:<free port>; stopped by its handle."""
    images, text = image_explorer(n=12), text_explorer(n=6)
    url = images.serve(host="127.0.0.1", port=0, others=[text])
    assert url.startswith("http://127.0.0.1:")
    yield url
    images.stop()


def _page(browser, url):
    # the app's CSP forbids eval; Playwright's wait_for_function evaluates strings, so the test bypasses CSP
    page = browser.new_page(viewport={"width": 1280, "height": 820}, bypass_csp=True)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=20000)
    return page, errors


def _explain(page, panel, method, timeout=30000):
    page.select_option(f"#{panel}-method", method)
    page.click(f"#{panel}-run")
    page.wait_for_function(f"() => {{ const o = document.querySelector('#{panel}-overlay'); "
                           "return o.dataset.loaded && o.complete && o.naturalWidth > 0; }", timeout=timeout)
    return page.locator(f"#{panel}-overlay").screenshot()


def test_select_example_and_method_draws_the_attribution(browser, server, artifacts):
    page, errors = _page(browser, server)
    page.click("#examples li[data-index='3']")
    page.wait_for_function("() => document.querySelector('#a-input').naturalWidth > 0")
    assert "example #3" in page.inner_text("#example-head")
    before = page.locator("#a-input").screenshot()
    sal = _explain(page, "a", "Saliency")
    assert sal != before  # the attribution is drawn, not the input again
    occ = _explain(page, "a", "Occlusion")
    assert occ != sal  # another method, another picture
    assert page.inner_text("#a-metrics").count("\n") >= 3 and "deletion_auc" in page.inner_text("#a-metrics")
    assert len(page.locator("#a-scores tr").all()) == 1 + 4
    # compare two models side by side
    page.check("#compare")
    _explain(page, "b", "GuidedBackprop")
    assert page.is_visible("#b-overlay") and not page.is_disabled("#export-png")
    page.screenshot(path=str(artifacts / "explorer-compare.png"))
    assert errors == []


def test_filters_and_text_tokens(browser, server, artifacts):
    page, errors = _page(browser, server)
    page.check("#filter-mis")
    page.wait_for_selector("#examples[data-query*='misclassified=true']")
    assert page.locator("#examples li").count() > 0
    assert all("wrong" in (li.get_attribute("class") or "") for li in page.locator("#examples li").all())
    page.select_option("#dataset", "seq")
    page.wait_for_selector("#examples li.text")
    page.click("#examples li[data-index='1']")
    page.wait_for_function("() => document.querySelector('#example-head').textContent.includes('#1')")
    page.select_option("#a-method", "IntegratedGradients")
    page.uncheck("#a-metric-sensitivity_max")
    page.click("#a-run")
    page.wait_for_selector("#a-tokens[data-loaded] span", timeout=30000)
    metrics = page.inner_text("#a-metrics")
    assert "infidelity" in metrics and "sensitivity_max" not in metrics  # only the chosen metrics
    spans = page.locator("#a-tokens span").all()
    assert len(spans) > 2
    colours = {s.evaluate("e => getComputedStyle(e).backgroundColor") for s in spans}
    assert len(colours) > 1  # tokens are coloured by their scores
    page.screenshot(path=str(artifacts / "explorer-text.png"))
    assert errors == []
