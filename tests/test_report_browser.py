"""The demo report opened in a real headless browser (Debian's chromium driven by Playwright, or Selenium with
chromedriver): every image decodes and renders, and the metrics table is there.

System packages: ``apt-get install -y chromium chromium-driver``; Python: ``pip install playwright`` (or
``selenium``); Playwright's own browser download is not used. Skips with the reason when any is missing.
"""
import os
import shutil

import pytest

pytest.importorskip("matplotlib")

CHROMIUM = os.environ.get("PELLUCID_CHROMIUM", "/usr/bin/chromium")
if not os.path.exists(CHROMIUM) and "PELLUCID_CHROMIUM" not in os.environ:
    CHROMIUM = shutil.which("chromium") or CHROMIUM
CHROMEDRIVER = os.environ.get("PELLUCID_CHROMEDRIVER", "/usr/bin/chromedriver")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

PROBE = """() => {
  const imgs = Array.from(document.images);
  const table = document.querySelector('table#metrics');
  return {
    images: imgs.map(i => ({complete: i.complete, w: i.naturalWidth, h: i.naturalHeight,
                           shown: i.getBoundingClientRect().width})),
    rows: table ? table.tBodies[0].rows.length : -1,
    cols: table ? table.tHead.rows[0].cells.length : -1,
    tokens: document.querySelectorAll('span.pellucid-token').length,
  };
}"""


def _probe_playwright(url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_load_state("load")
            return page.evaluate(PROBE)
        finally:
            browser.close()


def _probe_selenium(url):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ARGS:
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.get(url)
        return driver.execute_script("return (" + PROBE + ")();")
    finally:
        driver.quit()


def _driver():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"chromium not found at {CHROMIUM}: apt-get install -y chromium chromium-driver")
    try:
        import playwright.sync_api  # noqa: F401

        return _probe_playwright
    except ImportError:
        pass
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("neither playwright nor selenium is installed: pip install playwright")
    if not os.path.exists(CHROMEDRIVER):
        pytest.skip(f"selenium needs chromedriver at {CHROMEDRIVER}: apt-get install -y chromium-driver")
    return _probe_selenium


@pytest.mark.slow
def test_report_renders_in_chromium(tmp_path):
    probe = _driver()
    from pellucid.report.demo import DemoConfig, run_demo

    res = run_demo(DemoConfig(methods=("saliency", "deeplift"), out=str(tmp_path), text=False, quick=True,
                              examples=4, progress=False, n_train=400, epochs=2), log=lambda s: None)
    info = probe(res.path.resolve().as_uri())
    assert len(info["images"]) == 4
    for img in info["images"]:
        assert img["complete"] and img["w"] > 0 and img["h"] > 0 and img["shown"] > 0
    assert info["rows"] == 2 and info["cols"] == 1 + len(res.metrics)


def test_text_view_renders_in_chromium(tmp_path):
    """The coloured-token HTML renders as one span per token (no model needed)."""
    probe = _driver()
    from pellucid.report import Report
    from pellucid.viz import text_html

    r = Report("tokens")
    r.add_html(text_html(["a", "<tricky>", "token"], [0.5, -1.0, 0.1]))
    path = r.write(tmp_path)
    info = probe(path.resolve().as_uri())
    assert info["tokens"] == 3 and info["rows"] == -1
