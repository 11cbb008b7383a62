"""The HTML reports and index.html (sysa_core.pipeline.report) in a real headless Chromium: every
image decodes, every link resolves to a file."""
from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.fail("Debian's chromium and chromium-driver are required (.ci/run installs them)")
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage"):
        opts.add_argument(a)
    opts.binary_location = CHROMIUM
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def run_dir(smoke_run):
    return smoke_run


def _page_check(browser, page: Path):
    browser.get(page.as_uri())
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.src.slice(0, 30)])")
    links = browser.execute_script("return Array.from(document.links).map(a => a.href)")
    return images, links


def test_index_images_decode_and_links_resolve(browser, run_dir):
    images, links = _page_check(browser, run_dir / "index.html")
    assert images, "the index shows the population figure"
    for complete, width, src in images:
        assert complete and width > 0, src
    assert len(links) >= 5
    for href in links:
        url = urlparse(href)
        assert url.scheme == "file", href
        target = Path(unquote(url.path))
        assert target.is_file(), f"broken link {href}"
        assert run_dir in target.parents


def test_reports_images_decode_offline(browser, run_dir):
    for page in [run_dir / "seed_1" / "inspect.html", run_dir / "control" / "seed_2" / "pca.html",
                 run_dir / "population.html"]:
        images, _ = _page_check(browser, page)
        assert images
        for complete, width, src in images:
            assert complete and width > 0, (page.name, src)
