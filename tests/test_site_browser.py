"""The rendered site, opened page by page in headless Chromium with no network.

Runs against the HTML that ``python -m rankbook build --profile P`` wrote
(P from ``$RANKBOOK_SITE_PROFILE``, default ``fast``). Skipped with a reason
when the site is not built or Chromium/Playwright are absent; CI builds the
site first and sets ``RANKBOOK_REQUIRE_SITE=1`` so that a skip becomes a
failure there. A full-page screenshot of every page goes to
``_build/screenshots/<P>/<page>.png`` (e.g. ``notebooks__04_vit_spectra.png``).

Each page must: load with every request served by the site itself (the book
works offline: any other request is blocked and fails the test); show no
raw TeX (``\\(``, ``\\[``, ``$$``) once MathJax has typeset it; show every
figure at no less than its own size (figures are drawn at 96 dpi with text of
at least 9 pt, so a figure shrunk by the page would show smaller text) and
at least :data:`MIN_FIGURE_PX` wide; keep every table's columns apart (the
text of neighbouring cells at least :data:`MIN_COLUMN_GAP_PX` apart, so
"25 | 2.5" never reads "252.5") and every table within the column or in a
sideways-scrolling box (never cut off); show no error in cell outputs.
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from urllib.parse import urlparse

import pytest
import yaml

from rankbook.book import site
from rankbook.store import paths

PROFILE = os.environ.get("RANKBOOK_SITE_PROFILE", "fast")
HTML = site.html_dir(PROFILE)
REQUIRED = os.environ.get("RANKBOOK_REQUIRE_SITE") == "1"
CHROMIUM = os.environ.get("RANKBOOK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
ERROR_IN_OUTPUT = re.compile(r"Traceback \(most recent call last\)|\b\w*Error\b")
RAW_TEX = re.compile(r"\\\(|\\\[|\$\$")
SHOTS = paths.build_root() / "screenshots" / PROFILE
VIEWPORT = {"width": 1280, "height": 900}
#: a figure narrower than this on the page is a thumbnail, not a figure (one 2.3-inch panel is 221 px)
MIN_FIGURE_PX = 200
MIN_COLUMN_GAP_PX = 8

#: text of the article with code, scripts and MathJax's own output removed (TeX left raw would remain)
VISIBLE_TEXT_JS = """() => {
  const root = (document.querySelector('article') || document.body).cloneNode(true);
  root.querySelectorAll('pre, code, script, style, mjx-container, .highlight').forEach(e => e.remove());
  return root.innerText;
}"""
#: every image in the article: src, loaded?, natural size, size asked for (style or attribute), size shown
IMAGES_JS = """() => Array.from(document.querySelectorAll('article img')).map(i => ({
  src: (i.getAttribute('src') || '').slice(0, 80), complete: i.complete, natural: i.naturalWidth,
  asked: parseFloat(i.style.width) || parseFloat(i.getAttribute('width')) || null,
  shown: i.getBoundingClientRect().width, inOutput: !!i.closest('.cell_output, figure')}))"""
#: cell outputs as text, less the package source that show_source displays (its code may name errors)
OUTPUTS_JS = """() => Array.from(document.querySelectorAll('.cell_output')).map(e => {
  const c = e.cloneNode(true); c.querySelectorAll('div[class*="highlight-python"]').forEach(x => x.remove());
  return c.innerText; })"""
#: per table: header cell count, and for each row the gap (px) between the text of neighbouring cells
TABLES_JS = """() => Array.from(document.querySelectorAll('article table')).map(t => {
  const textBox = cell => { const r = document.createRange(); r.selectNodeContents(cell);
                            const b = r.getBoundingClientRect(); return b.width ? b : null; };
  const rows = Array.from(t.rows).map(row => {
    const boxes = Array.from(row.cells).map(textBox);
    const gaps = [];
    for (let i = 0; i + 1 < boxes.length; i++)
      if (boxes[i] && boxes[i + 1]) gaps.push(boxes[i + 1].left - boxes[i].right);
    return {cells: row.cells.length, gaps: gaps};
  });
  const article = document.querySelector('article') || document.body;
  let scrolls = false;
  for (let e = t.parentElement; e && e !== article; e = e.parentElement)
    if (['auto', 'scroll'].includes(getComputedStyle(e).overflowX)) scrolls = true;
  const fits = t.getBoundingClientRect().right <= article.getBoundingClientRect().right + 1;
  return {caption: (t.caption ? t.caption.innerText : t.innerText).slice(0, 60), rows: rows,
          reachable: fits || scrolls};
})"""


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
    base = f"http://127.0.0.1:{server.server_address[1]}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport=VIEWPORT)
        outside: list[str] = []

        def offline(route):  # the book must not need the network: block and remember anything not ours
            if route.request.url.startswith(base) or route.request.url.startswith("data:"):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", offline)
        yield page, base, outside
        browser.close()
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _open(page, base: str, page_path: str):
    response = page.goto(f"{base}/{page_path}", wait_until="load")
    assert response is not None and response.ok, f"{page_path}: HTTP {response and response.status}"
    # MathJax typesets after load; wait until it has finished (or say it never loaded)
    loaded = page.evaluate("""async () => { if (!(window.MathJax && MathJax.startup)) return false;
                                            await MathJax.startup.promise; return true; }""")
    return loaded


def test_every_toc_entry_has_a_page_and_no_page_is_orphaned():
    if not (HTML / "index.html").exists():
        _skip_or_fail(f"site not built at {HTML}")
    built = {p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html")
             if not p.relative_to(HTML).parts[0].startswith("_")}
    built -= {"index.html", "genindex.html", "search.html"}
    assert built == set(_pages())


@pytest.mark.parametrize("page_path", _pages())
def test_page_renders_cleanly(browser_page, page_path):
    page, base, outside = browser_page
    outside.clear()
    mathjax = _open(page, base, page_path)
    shot = SHOTS / (page_path.replace("/", "__").removesuffix(".html") + ".png")
    page.screenshot(path=str(shot), full_page=True)
    assert not outside, f"{page_path}: requests outside the site (the book must work offline): {outside[:5]}"

    text = page.evaluate(VISIBLE_TEXT_JS)
    raw = [text[max(0, m.start() - 40):m.end() + 40] for m in RAW_TEX.finditer(text)]
    state = "ran" if mathjax else "not loaded"
    assert not raw, f"{page_path}: raw TeX on the page (MathJax {state}): {raw[:3]}"

    images = page.evaluate(IMAGES_JS)
    broken = [i["src"] for i in images if not i["complete"] or i["natural"] == 0]
    assert not broken, f"{page_path}: images that did not load: {broken}"
    for i in (i for i in images if i["inOutput"]):
        intended = i["asked"] or i["natural"]
        assert i["shown"] >= intended - 1, (f"{page_path}: figure {i['src']} shown {i['shown']:.0f} px wide, "
                                            f"drawn for {intended:.0f} px: its text is shrunk below 9 pt")
        assert i["shown"] >= MIN_FIGURE_PX, f"{page_path}: figure {i['src']} only {i['shown']:.0f} px wide"

    for table in page.evaluate(TABLES_JS):
        counts = {r["cells"] for r in table["rows"]}
        assert len(counts) == 1, f"{page_path}: table {table['caption']!r} has rows of {sorted(counts)} cells"
        assert table["reachable"], f"{page_path}: table {table['caption']!r} is cut off (wider, no scroll)"
        gaps = [g for r in table["rows"] for g in r["gaps"]]
        assert not gaps or min(gaps) >= MIN_COLUMN_GAP_PX, \
            f"{page_path}: table {table['caption']!r}: cells {min(gaps):.1f} px apart, columns run together"

    outputs = page.evaluate(OUTPUTS_JS)
    bad = [text[:300] for text in outputs if ERROR_IN_OUTPUT.search(text)]
    assert not bad, f"{page_path}: cell output shows an error: {bad}"

    if page_path.startswith("notebooks/"):
        links = page.evaluate("Array.from(document.querySelectorAll('a')).map(a => a.href)"
                              ".filter(h => h.includes('colab.research.google.com'))")
        assert links, f"{page_path}: no Colab launch button"
        for link in links:
            repo_path = urlparse(link).path.split("/blob/", 1)[1].split("/", 1)[1]
            assert repo_path.endswith(".ipynb"), f"Colab button opens {repo_path}, not an .ipynb"
            assert (paths.REPO_ROOT / repo_path).exists(), f"Colab button opens {repo_path}, not in the repo"


def test_math_is_typeset_by_the_sites_own_mathjax(browser_page):
    """A page with math gets MathJax from ``_static`` and shows typeset formulas (mjx-container elements)."""
    page, base, outside = browser_page
    outside.clear()
    assert _open(page, base, "notebooks/90_performance.html"), "MathJax did not load"
    src = page.evaluate("Array.from(document.scripts).map(s => s.src).find(s => s.includes('tex-mml-chtml'))")
    assert src and src.startswith(base) and "/_static/mathjax/" in src
    assert page.evaluate("document.querySelectorAll('article mjx-container').length") > 0
    assert not outside


def test_bibliography_resolves(browser_page):
    page, base, _ = browser_page
    page.goto(f"{base}/book/references.html", wait_until="load")
    entries = page.evaluate("document.querySelectorAll('.citation, dl.citation > dt, div.citation').length")
    assert entries >= 5, "the references page lists no bibliography entries"
    page.goto(f"{base}/book/intro.html", wait_until="load")
    cites = page.evaluate("Array.from(document.querySelectorAll('.bibtex-citation a, a.reference.internal'))"
                          ".map(a => a.getAttribute('href'))"
                          ".filter(h => h && h.includes('references.html#'))")
    assert cites, "the intro cites nothing that links to the bibliography"
    for href in cites:
        anchor = href.split("#", 1)[1]
        page.goto(f"{base}/book/{href}", wait_until="load")
        found = page.evaluate(f"document.getElementById({anchor!r}) !== null")
        assert found, f"citation target #{anchor} missing"
