"""The rendered site, opened page by page in headless Chromium with no network, at 390 px (a phone) and 1280.

Runs against the HTML that ``python -m rankbook build --profile P`` wrote
(P from ``$RANKBOOK_SITE_PROFILE``, default ``fast``). Skipped with a reason
when the site is not built or Chromium/Playwright are absent; CI builds the
site first and sets ``RANKBOOK_REQUIRE_SITE=1`` so that a skip becomes a
failure there. A full-page screenshot of every page at each width goes to
``_build/screenshots/<P>/<width>/<page>.png`` (e.g. ``390/notebooks__04_vit_spectra.png``).

Each page, at both widths, must: load with every request served by the site
itself (the book works offline: any other request is blocked and fails the
test); show no raw TeX (``\\(``, ``\\[``, ``$$``) once MathJax has typeset it;
show every image at its own aspect ratio (:data:`ASPECT_TOLERANCE`) and at
least :data:`MIN_FIGURE_PX` wide; at 1280 px show every figure at no less than
its own size (figures are drawn at 96 dpi with text of at least 9 pt, so a
shrunk figure shows smaller text); keep every table, code listing and output
within its column or inside a box that scrolls sideways with a *visible*
scroll bar (never cut off, never an invisible overlay bar); have no table cell
taller than :data:`MAX_CELL_PX` and no cell that reads one word per line;
keep every table's columns apart (the text of neighbouring cells at least
:data:`MIN_COLUMN_GAP_PX` apart, so "25 | 2.5" never reads "252.5"); show no
error in cell outputs. Chapter pages open with two folded cells labelled
"Parameters" and "Imports and settings", keep their source listings folded,
number their figures by chapter (chapter
04's are Fig. 4.1, 4.2, ...), a caption that names a paper figure names the
paper's version ("the paper's Fig. 12 (v1)"), and chapters 01-03 show typeset
math. ``test_layout_checks_fail_on_a_broken_page`` shows that the layout checks
catch what they are for, on a page made broken on purpose.

Scroll bars: Playwright's Chromium hides them by default (``--hide-scrollbars``);
this test turns that off so that a bar's space can be measured, and measures
before the screenshot (a full-page screenshot hides scroll bars, and they stay
hidden on that page afterwards).
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
#: a phone (390 px, the width of most current phones) and a laptop window
WIDTHS = (390, 1280)
WIDE = 1280
#: a figure may be shown this share of the width it was drawn for (below: its text is shrunk)
SHRINK_TOLERANCE = 0.98
#: a figure narrower than this on the page is a thumbnail, not a figure (one 2.3-inch panel is 221 px)
MIN_FIGURE_PX = 200
MIN_COLUMN_GAP_PX = 8
#: a table cell taller than this is unreadable (the results page's rows are at most ~8 lines)
MAX_CELL_PX = 300
#: shown width/height against the image's own width/height
ASPECT_TOLERANCE = 0.02
#: a scroll bar narrower than this (px) is not visible (an overlay bar that shows only while scrolling)
MIN_SCROLLBAR_PX = 4

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
#: everything the layout rules check, measured in the page (see the module docstring); returns problems
LAYOUT_JS = """([maxCell, tolerance, minBar]) => {
  const problems = [];
  const article = document.querySelector('article') || document.body;
  const right = article.getBoundingClientRect().right;
  const name = e => (e.tagName.toLowerCase() + (e.className && typeof e.className === 'string'
                      ? '.' + e.className.trim().split(/\\s+/).slice(0, 2).join('.') : '') + ' "'
                      + (e.innerText || e.getAttribute('alt') || '').trim().slice(0, 50).replace(/\\s+/g, ' ')
                      + '"');
  // the box that clips or scrolls e sideways: e itself or its nearest such ancestor inside the article
  const clipper = e => { for (let x = e; x && x !== article; x = x.parentElement) {
      const o = getComputedStyle(x).overflowX; if (o !== 'visible') return x; } return null; };
  const visible = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  // the page itself never scrolls sideways (a long word in a heading widened a phone's page by 57 px)
  const page = document.documentElement;
  if (page.scrollWidth > page.clientWidth + 1)
    problems.push(`the page is ${page.scrollWidth - page.clientWidth} px wider than the window`);
  const boxes = Array.from(article.querySelectorAll(
    'table, pre, div.cell_output img, figure img, .rankbook-scroll'));
  for (const e of boxes.filter(visible)) {
    const c = clipper(e);
    const r = e.getBoundingClientRect();
    if (!c) {
      if (r.right > right + 1)
        problems.push(`${name(e)} runs ${Math.round(r.right - right)} px past the column`);
      continue;
    }
    const o = getComputedStyle(c).overflowX;
    const cr = c.getBoundingClientRect();
    if (cr.right > right + 1)
      problems.push(`${name(c)} is wider than the column by ${Math.round(cr.right - right)} px`);
    if (o === 'hidden' || o === 'clip') {
      if (r.right > cr.right + 1)
        problems.push(`${name(e)} is cut off (${Math.round(r.right - cr.right)} px hidden)`);
    } else if (c.scrollWidth > c.clientWidth + 1) {
      const s = getComputedStyle(c);
      const bar = c.offsetHeight - c.clientHeight - parseFloat(s.borderTopWidth)
                  - parseFloat(s.borderBottomWidth);
      if (bar < minBar) problems.push(`${name(c)} scrolls sideways with no visible scroll bar (${bar} px)`);
    }
  }
  for (const img of Array.from(article.querySelectorAll('img')).filter(visible)) {
    if (!img.naturalWidth || !img.naturalHeight) continue;
    const r = img.getBoundingClientRect();
    const off = (r.width / r.height) / (img.naturalWidth / img.naturalHeight) - 1;
    if (Math.abs(off) > tolerance)
      problems.push(`image ${(img.getAttribute('src') || '').slice(-40)} distorted: shown `
                    + `${Math.round(r.width)}x${Math.round(r.height)} px, `
                    + `drawn ${img.naturalWidth}x${img.naturalHeight}`);
  }
  for (const cell of Array.from(article.querySelectorAll('td, th')).filter(visible)) {
    const r = cell.getBoundingClientRect();
    if (r.height > maxCell) problems.push(`table cell ${name(cell)} is ${Math.round(r.height)} px tall`);
    const words = (cell.innerText || '').trim().split(/\\s+/).filter(w => w).length;
    if (words < 4) continue;
    // lines of text: the tops of the text's own line boxes (not of the elements around it, whose boxes
    // start half a leading higher), a new line where a top is more than 4 px below the last one
    const tops = [];
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let t = walker.nextNode(); t; t = walker.nextNode()) {
      const range = document.createRange(); range.selectNodeContents(t);
      for (const b of range.getClientRects()) if (b.width > 0) tops.push(b.top);
    }
    tops.sort((a, b) => a - b);
    const lines = tops.filter((t, i) => i === 0 || t - tops[i - 1] > 4).length;
    if (lines >= Math.max(4, 0.75 * words))
      problems.push(`table cell ${name(cell)}: ${words} words on ${lines} lines (one word per line)`);
  }
  return problems;
}"""
#: caption numbers of figures ("Fig. 4.2") and caption texts
CAPTIONS_JS = """() => Array.from(document.querySelectorAll('article figcaption')).map(c => ({
  number: (c.querySelector('.caption-number') || {innerText: ''}).innerText.trim(), text: c.innerText}))"""
#: the labels of the page's folded cells, in order
PROMPTS_JS = ("Array.from(document.querySelectorAll('article p.collapsed.admonition-title'))"
              ".map(e => e.textContent.trim())")
PAPER_FIG = re.compile(r"paper[’']s\s+(?:appendix\s+)?Figs?\.?\s")
#: chapters whose prose must show typeset math (the theory chapters)
MATH_CHAPTERS = ("notebooks/01_", "notebooks/02_", "notebooks/03_")
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


def launch(pw):
    """Headless Chromium with scroll bars shown (Playwright hides them), so their space can be measured."""
    return pw.chromium.launch(executable_path=CHROMIUM, ignore_default_args=["--hide-scrollbars"], args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"])


def serve(folder):
    """A local HTTP server for ``folder``; returns (server, base URL)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def offline_page(browser, base: str, width: int):
    """A page of ``width`` px that blocks (and remembers) every request not served by the site."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    outside: list[str] = []

    def offline(route):  # the book must not need the network: block and remember anything not ours
        if route.request.url.startswith(base) or route.request.url.startswith("data:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", offline)
    return page, outside


def layout_problems(page) -> list[str]:
    """What breaks the layout rules on the open page (images, overflow, scroll bars, cells)."""
    return page.evaluate(LAYOUT_JS, [MAX_CELL_PX, ASPECT_TOLERANCE, MIN_SCROLLBAR_PX])


def caption_problems(page, page_path: str) -> list[str]:
    """Figure numbers by chapter (chapter NN's are Fig. NN.k) and paper figures named with their version."""
    problems = []
    chapter = re.match(r"notebooks/(\d\d)_", page_path)
    for cap in page.evaluate(CAPTIONS_JS):
        if chapter and 1 <= int(chapter[1]) <= 89 and cap["number"]:
            if not re.fullmatch(rf"Fig\. {int(chapter[1])}\.\d+", cap["number"]):
                problems.append(f"figure numbered {cap['number']!r}, not by chapter {int(chapter[1])}")
        for m in PAPER_FIG.finditer(cap["text"]):
            if "(v1" not in cap["text"][m.end():m.end() + 60]:
                problems.append(f"caption names a paper figure without its version (v1): "
                                f"{cap['text'][m.start():m.end() + 40]!r}")
    return problems


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for the whole module. Playwright's sync API allows one running instance per
    thread (a second ``sync_playwright()`` inside the first fails with "Sync API inside the asyncio loop"),
    so the site's pages and the demo book's share this one."""
    if CHROMIUM is None:
        _skip_or_fail("Chromium not found: install Debian's `chromium` or set RANKBOOK_CHROMIUM")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("playwright is not installed: pip install -r requirements.txt")
    with sync_playwright() as pw:
        browser = launch(pw)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def browser(chromium):
    if not (HTML / "index.html").exists():
        _skip_or_fail(f"site not built at {HTML}: run `python -m rankbook build --profile {PROFILE}`")
    server, base = serve(HTML)
    pages = {w: offline_page(chromium, base, w) for w in WIDTHS}
    yield pages, base
    for page, _ in pages.values():
        page.close()
    server.shutdown()


@pytest.fixture(scope="module")
def browser_page(browser):
    pages, base = browser
    page, outside = pages[WIDE]
    return page, base, outside


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


def screenshot(page, page_path: str, width: int, root=None):
    shot = (root or SHOTS) / str(width) / (page_path.replace("/", "__").removesuffix(".html") + ".png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    return shot


def test_every_toc_entry_has_a_page_and_no_page_is_orphaned():
    if not (HTML / "index.html").exists():
        _skip_or_fail(f"site not built at {HTML}")
    built = {p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html")
             if not p.relative_to(HTML).parts[0].startswith("_")}
    built -= {"index.html", "genindex.html", "search.html"}
    assert built == set(_pages())


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page_path", _pages())
def test_page_renders_cleanly(browser, page_path, width):
    pages, base = browser
    page, outside = pages[width]
    outside.clear()
    mathjax = _open(page, base, page_path)
    problems = layout_problems(page) + caption_problems(page, page_path)  # before the screenshot hides bars
    screenshot(page, page_path, width)
    assert not outside, f"{page_path}: requests outside the site (the book must work offline): {outside[:5]}"

    text = page.evaluate(VISIBLE_TEXT_JS)
    raw = [text[max(0, m.start() - 40):m.end() + 40] for m in RAW_TEX.finditer(text)]
    state = "ran" if mathjax else "not loaded"
    assert not raw, f"{page_path}: raw TeX on the page (MathJax {state}): {raw[:3]}"
    # the performance page's fallback for a benchmark report it cannot read (the script and page drifted)
    assert "report in a format this page does not read" not in text, f"{page_path}: a benchmark report unread"

    images = page.evaluate(IMAGES_JS)
    broken = [i["src"] for i in images if not i["complete"] or i["natural"] == 0]
    assert not broken, f"{page_path}: images that did not load: {broken}"
    for i in (i for i in images if i["inOutput"]):
        intended = i["asked"] or i["natural"]
        if width == WIDE:  # the column (about 660 px) moves by a few px between loads (scroll bar, fonts);
            # a figure cropped tight to 661-665 px then failed one run in three: 2 % is not shrunk text
            assert i["shown"] >= SHRINK_TOLERANCE * intended - 1, (
                f"{page_path}: figure {i['src']} shown {i['shown']:.0f} px wide, drawn for "
                f"{intended:.0f} px: its text is shrunk")
        assert i["shown"] >= MIN_FIGURE_PX, f"{page_path}: figure {i['src']} only {i['shown']:.0f} px wide"

    assert not problems, f"{page_path} at {width} px: " + "; ".join(problems[:8])

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
        prompts = page.evaluate(PROMPTS_JS)[:2]
        assert prompts == ["Parameters", "Imports and settings"][:len(prompts)], \
            f"{page_path}: the first folded cells read {prompts}, not 'Parameters', 'Imports and settings'"
        opened = page.evaluate("document.querySelectorAll('article details.rankbook-source[open]').length")
        assert not opened, f"{page_path}: {opened} source listings open on load (they should be folded)"

    if page_path.startswith(MATH_CHAPTERS):
        typeset = page.evaluate("document.querySelectorAll('article mjx-container').length")
        assert typeset > 0, f"{page_path}: no typeset math (write prose math as $...$, MyST dollarmath)"

    if page_path.startswith("notebooks/") and width == WIDE:
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
    labels = page.evaluate("Array.from(document.querySelectorAll('.citation .label, dl.citation > dt'))"
                           ".map(e => e.innerText)")
    assert len(labels) >= 5, "the references page lists fewer than 5 entries"
    alpha = [t for t in labels if re.fullmatch(r"\[?[A-Z][A-Za-z+]*\d\d\]?", t.strip())]
    assert not alpha, f"alpha labels in the list of references (the text is author-year): {alpha[:3]}"
    root = _pages()[0]  # the landing page (notebooks/99_findings), which cites the paper and related work
    page.goto(f"{base}/{root}", wait_until="load")
    cites = page.evaluate("Array.from(document.querySelectorAll('.bibtex-citation a, a.reference.internal'))"
                          ".map(a => a.getAttribute('href'))"
                          ".filter(h => h && h.includes('references.html#'))")
    assert cites, "the intro cites nothing that links to the bibliography"
    for href in cites:
        anchor = href.split("#", 1)[1]
        page.goto(f"{base}/{root.rsplit('/', 1)[0]}/{href}", wait_until="load")
        found = page.evaluate(f"document.getElementById({anchor!r}) !== null")
        assert found, f"citation target #{anchor} missing"


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory):
    """The demo book of tests/test_site_build.py, built and served (about 40 s): the layout checks run on it
    without the whole book's build."""
    if CHROMIUM is None:
        pytest.skip("Chromium not found: install Debian's `chromium` or set RANKBOOK_CHROMIUM")
    pytest.importorskip("playwright")
    from test_site_build import build_demo

    with pytest.MonkeyPatch.context() as mp:
        html = build_demo(tmp_path_factory.mktemp("demo"), mp)
    server, base = serve(html)
    yield html, base
    server.shutdown()


@pytest.mark.slow
def test_demo_book_passes_the_layout_checks_at_both_widths(chromium, demo_site):
    """Wide tables, long cells, a long output line, math in a table cell, two-panel figures: all readable at
    390 and 1280 px (screenshots: _build/screenshots/demo/<width>/)."""
    html, base = demo_site
    for width in WIDTHS:
        page, outside = offline_page(chromium, base, width)
        for page_path in ("book/references.html", "notebooks/01_demo.html", "notebooks/02_demo.html"):
            assert _open(page, base, page_path)
            problems = layout_problems(page) + caption_problems(page, page_path)
            screenshot(page, page_path, width, root=paths.REPO_ROOT / "_build" / "screenshots" / "demo")
            assert not problems, f"demo {page_path} at {width} px: {problems}"
            assert not outside, outside
        # on the last page (02) the checks had work to do: a wide table scrolls, its math is typeset
        scrolls = page.evaluate("Array.from(document.querySelectorAll('article .rankbook-scroll'))"
                                ".filter(e => e.scrollWidth > e.clientWidth).length")
        assert scrolls >= 1, f"the demo's wide table fits at {width} px: the test tests nothing"
        assert page.evaluate("document.querySelectorAll('article td mjx-container').length") >= 1


@pytest.mark.slow
def test_layout_checks_fail_on_a_broken_page(chromium, demo_site):
    """Each rule catches what it is for: a squeezed image, a table cut off, a scroll box with its bar hidden,
    a column one word wide, a wrong figure number and a paper figure without its version."""
    html, base = demo_site
    page, _ = offline_page(chromium, base, 390)
    _open(page, base, "notebooks/02_demo.html")
    page.evaluate("""() => {
      const a = document.querySelector('article');
      document.querySelector('article figure img').style.setProperty('height', '400px', 'important');
      const cut = document.createElement('div'); cut.style.overflow = 'hidden';
      cut.innerHTML = '<table><tr><td style="white-space:nowrap">' + 'wide '.repeat(200)
                      + '</td></tr></table>';
      a.appendChild(cut);
      const hidden = document.createElement('div'); hidden.className = 'nobar';
      hidden.style.cssText = 'overflow-x:auto;scrollbar-width:none';
      hidden.innerHTML = '<pre style="scrollbar-width:none">' + 'x'.repeat(500) + '</pre>';
      a.appendChild(hidden);
      const narrow = document.createElement('table');
      narrow.innerHTML = '<tr><td style="width:1px;word-break:normal">'
                         + 'one word per line here again '.repeat(2)
                         + '</td><td style="white-space:nowrap">' + 'y'.repeat(60) + '</td></tr>';
      a.appendChild(narrow);
      const cap = document.querySelector('article figcaption');
      cap.querySelector('.caption-number').innerText = 'Fig. 12 ';
      cap.appendChild(document.createTextNode(" Reproduces the paper's Fig. 12."));
    }""")
    problems = " | ".join(layout_problems(page) + caption_problems(page, "notebooks/02_demo.html"))
    for expected in ("distorted", "cut off", "no visible scroll bar", "one word per line",
                     "not by chapter 2", "without its version"):
        assert expected in problems, f"the check for {expected!r} did not fire: {problems}"
