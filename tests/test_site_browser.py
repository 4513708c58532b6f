"""The rendered site, opened page by page in headless Chromium.

Runs against the HTML that ``python -m rankbook build --profile P`` wrote
(P from ``$RANKBOOK_SITE_PROFILE``, default ``fast``). Skipped with a reason
when the site is not built or Chromium/Playwright are absent; CI builds the
site first and sets ``RANKBOOK_REQUIRE_SITE=1`` so that a skip becomes a
failure there. A screenshot of every page goes to ``_build/screenshots/<P>/``.
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from rankbook.store import paths
from rankbook.book import site

PROFILE = os.environ.get("RANKBOOK_SITE_PROFILE", "fast")
HTML = site.html_dir(PROFILE)
REQUIRED = os.environ.get("RANKBOOK_REQUIRE_SITE") == "1"
CHROMIUM = os.environ.get("RANKBOOK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
ERROR_IN_OUTPUT = re.compile(r"Traceback \(most recent call last\)|\b\w*Error\b")
SHOTS = paths.build_root() / "screenshots" / PROFILE


def _skip_or_fail(reason: str):
    if REQUIRED:
        pytest.fail(reason)
    pytest.skip(reason)


def _toc_files() -> list[str]:
    toc = yaml.safe_load((paths.REPO_ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]


def _pages() -> list[str]:
    return [f"{f}.html" for f in _toc_files()]


@pytest.fixture(scope="module")
def browser_page():
    if not (HTML / "index.html").exists():
        _skip_or_fail(f"site not built at {HTML}: run `python -m rankbook build --profile {PROFILE}`")
    if CHROMIUM is None:
        _skip_or_fail("Chromium not found: install Debian's `chromium` or set RANKBOOK_CHROMIUM")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("playwright is not installed: pip install -r requirements.txt")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        yield page, f"http://127.0.0.1:{server.server_address[1]}"
        browser.close()
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_every_toc_entry_has_a_page_and_no_page_is_orphaned():
    if not (HTML / "index.html").exists():
        _skip_or_fail(f"site not built at {HTML}")
    built = {p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html")
             if not p.relative_to(HTML).parts[0].startswith("_")} - {"index.html", "genindex.html", "search.html"}
    assert built == set(_pages())


@pytest.mark.parametrize("page_path", _pages())
def test_page_renders_cleanly(browser_page, page_path):
    page, base = browser_page
    response = page.goto(f"{base}/{page_path}", wait_until="load")
    assert response is not None and response.ok, f"{page_path}: HTTP {response and response.status}"
    page.screenshot(path=str(SHOTS / (page_path.replace("/", "__").removesuffix(".html") + ".png")), full_page=True)

    images = page.evaluate("Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
    broken = [src for src, complete, width in images if not complete or width == 0]
    assert not broken, f"{page_path}: images that did not load: {broken}"

    outputs = page.evaluate("Array.from(document.querySelectorAll('.cell_output')).map(e => e.innerText)")
    bad = [text[:300] for text in outputs if ERROR_IN_OUTPUT.search(text)]
    assert not bad, f"{page_path}: cell output shows an error: {bad}"

    if page_path.startswith("notebooks/"):
        links = page.evaluate("Array.from(document.querySelectorAll('a')).map(a => a.href)"
                              ".filter(h => h.includes('colab.research.google.com'))")
        assert links, f"{page_path}: no Colab launch button"
        for link in links:
            repo_path = urlparse(link).path.split("/blob/", 1)[1].split("/", 1)[1]
            assert repo_path.endswith(".ipynb"), f"Colab button opens {repo_path}, not an .ipynb"
            assert (paths.REPO_ROOT / repo_path).exists(), f"Colab button opens {repo_path}, which is not in the repo"


def test_bibliography_resolves(browser_page):
    page, base = browser_page
    page.goto(f"{base}/book/references.html", wait_until="load")
    entries = page.evaluate("document.querySelectorAll('.citation, dl.citation > dt, div.citation').length")
    assert entries >= 5, "the references page lists no bibliography entries"
    page.goto(f"{base}/book/intro.html", wait_until="load")
    cites = page.evaluate("Array.from(document.querySelectorAll('.bibtex-citation a, a.reference.internal'))"
                          ".map(a => a.getAttribute('href')).filter(h => h && h.includes('references.html#'))")
    assert cites, "the intro cites nothing that links to the bibliography"
    for href in cites:
        anchor = href.split("#", 1)[1]
        page.goto(f"{base}/book/{href}", wait_until="load")
        assert page.evaluate(f"document.getElementById({anchor!r}) !== null"), f"citation target #{anchor} missing"
