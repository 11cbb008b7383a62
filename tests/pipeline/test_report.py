"""The HTML reports and index.html (sysa_core.pipeline.report) in a real headless Chromium with
every network request refused: every image decodes, every link resolves to a file of the run, no
request goes anywhere but to files (and data: URIs), and no script or stylesheet is fetched from
outside the page."""
from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from conftest import headless_chrome

PAGES = ("index.html", "population.html", "seed_1/train.html", "seed_1/inspect.html", "control/seed_2/pca.html")


@pytest.fixture(scope="module")
def browser():
    drv = headless_chrome("--disable-quic", capabilities={"goog:loggingPrefs": {"performance": "ALL"}})
    drv.execute_cdp_cmd("Network.enable", {})
    drv.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["http://*", "https://*", "ws://*", "wss://*", "ftp://*"]})
    yield drv
    drv.quit()


def _open(browser, page: Path):
    browser.get_log("performance")  # drop what earlier pages logged
    browser.get(page.as_uri())
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt, i.src.slice(0, 30)])")
    links = browser.execute_script("return Array.from(document.links).map(a => a.href)")
    requested = [json.loads(e["message"])["message"] for e in browser.get_log("performance")]
    urls = [m["params"]["request"]["url"] for m in requested if m.get("method") == "Network.requestWillBeSent"]
    return images, links, urls


@pytest.mark.parametrize("name", PAGES)
def test_pages_open_offline_with_every_figure_decoded(browser, smoke_run, name):
    page = smoke_run / name
    images, links, urls = _open(browser, page)
    assert images, f"{name} shows no figure"
    for complete, width, alt, src in images:
        assert complete and width > 0, (name, src)
        assert alt and alt != "figure", (name, src)  # alt text from the figure's titles
    assert urls and all(u.startswith(("file:", "data:")) for u in urls), [u for u in urls if not u.startswith(("file:", "data:"))]
    text = page.read_text()
    outside = re.findall(r"<(?:script|link)[^>]*(?:src|href)=[\"']((?!data:)[^\"']+)", text)
    assert not outside, outside
    for href in links:
        url = urlparse(href)
        if url.fragment and url.path == page.as_uri().split("file://")[1]:
            continue  # an anchor in the page itself
        assert url.scheme == "file", href
        target = Path(unquote(url.path))
        assert target.is_file(), f"broken link {href}"
        assert smoke_run in target.parents


def test_a_page_that_asks_the_network_is_caught(browser, tmp_path):
    """The check can fail: a page loading a script from a web server shows the request."""
    page = tmp_path / "bad.html"
    page.write_text('<html><head><script src="https://cdn.example.org/x.js"></script></head><body></body></html>')
    _, _, urls = _open(browser, page)
    assert "https://cdn.example.org/x.js" in urls


@pytest.mark.parametrize("name", [p for p in PAGES if p != "index.html"])
def test_shared_reports_show_no_code_no_prompt_and_no_machine_path(smoke_run, name):
    text = (smoke_run / name).read_text()
    assert "In&nbsp;[" not in text and "In [" not in text and "Out[" not in text
    cells = re.findall(r'<div class="jp-Cell jp-CodeCell[^"]*"', text)
    assert cells and all("jp-mod-noInput" in c for c in cells)  # every code cell rendered without its input
    assert "nb.setup" not in text and 'class="highlight' not in text
    assert str(smoke_run) not in text and str(Path(__file__).resolve().parents[2]) not in text
    assert "/tmp/" not in text and "/home/" not in text


def test_the_code_is_shown_when_asked(smoke_run, tmp_path):
    from sysa_core.pipeline import report

    report.notebook_to_html(smoke_run / "seed_1" / "inspect.ipynb", tmp_path / "code.html", "inspect", code=True)
    text = (tmp_path / "code.html").read_text()
    assert 'class="highlight' in text and '<span class="n">setup</span>' in text and "In&nbsp;[" not in text
