"""Render the website from one profile's executed notebooks: offline-ready, the old site kept until done.

Jupyter Book reads a staging copy of the book in which each chapter is the
executed ``.ipynb`` (never re-executed), so the site shows exactly the
profile's results, and each page's Colab button points at
``notebooks/<name>.ipynb``, the output-free twin committed in the repository.

Offline: MathJax 3 is served from the site's own ``_static/mathjax`` (copied
from the ``django-static-mathjax`` wheel, pinned in requirements.txt), and no
widget or Thebe scripts are loaded from CDNs, so the book renders with no
network (an intranet, a laptop on a plane).

Atomic: ``jupyter-book`` writes into a temporary folder beside the site;
only a finished build replaces the old site (two renames), so an interrupted
or failed build (Ctrl-C, SIGTERM, a Sphinx warning) leaves the old site whole.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from rankbook.book import runner
from rankbook.store import paths

BOOK_ROOT = paths.REPO_ROOT  # set by rankbook.book.location.use for --book
BOOK_DIRS = ("book",)
#: the parts of MathJax 3's es5 tree a page can load: the combined TeX/MathML→CHTML component, its fonts,
#: extensions loaded on demand (\require, autoload), the menu and its accessibility options
MATHJAX_PARTS = ("tex-mml-chtml.js", "input", "output/chtml", "ui", "a11y", "sre")
MATHJAX_PATH = "mathjax/tex-mml-chtml.js"  # relative to _static
#: the site's stylesheet (responsive figures, tables that scroll visibly, wrapped outputs), in book/_static
STYLE_DIR, STYLESHEET = "book/_static", "rankbook.css"
#: labels of folded cells on the site (myst-nb's per-cell ``code_prompt_show``): a parameters cell without
#: its own label gets this one; chapters label their import cell themselves (``mystnb`` cell metadata)
PARAMETERS_LABEL = {"code_prompt_show": "Parameters", "code_prompt_hide": "Hide parameters"}
IMPORTS_LABEL = {"code_prompt_show": "Imports and settings"}
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def mathjax_source() -> Path:
    """MathJax 3's ``es5`` folder from the installed ``django-static-mathjax`` wheel (no Django needed)."""
    try:
        import mathjax
    except ImportError as exc:
        raise runner.RunnerError("MathJax is not installed: pip install -r requirements.txt "
                                 "(django-static-mathjax ships MathJax 3 for the offline site)") from exc
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / "tex-mml-chtml.js").exists():
        raise runner.RunnerError(f"{es5} lacks tex-mml-chtml.js: reinstall django-static-mathjax")
    return es5


def staging_dir(profile: str) -> Path:
    return paths.build_root() / "site-src" / profile


def site_dir(profile: str) -> Path:
    return paths.build_root() / "site" / profile


def html_dir(profile: str) -> Path:
    return site_dir(profile) / "_build" / "html"


def site_config(profile: str) -> dict:
    """``_config.yml`` as the staged build reads it: no execution, offline scripts, profile in the title."""
    config = yaml.safe_load((BOOK_ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    # progress bars and library chatter go to stderr; errors already stopped the runner
    config["execute"]["stderr_output"] = "remove"
    sphinx = config.setdefault("sphinx", {}).setdefault("config", {})
    sphinx.pop("nb_custom_formats", None)
    sphinx["mathjax_path"] = MATHJAX_PATH
    # _static: MathJax (copied by stage); book/_static: the site's stylesheet (figures, tables, outputs)
    sphinx["html_static_path"] = ["_static", STYLE_DIR]
    sphinx["html_css_files"] = [STYLESHEET]
    sphinx["nb_ipywidgets_js"] = {}  # no require.js / widget manager from CDNs (the site has no kernel)
    config.setdefault("launch_buttons", {})["thebe"] = False
    config["exclude_patterns"] = [p for p in config.get("exclude_patterns", []) if not p.endswith(".ipynb")]
    config["title"] = f"{config['title']} ({profile} profile)" if profile != "paper" else config["title"]
    return config


def stage(profile: str) -> Path:
    """Copy the book's prose, MathJax and the executed notebooks into a fresh staging folder."""
    stage_root = staging_dir(profile)
    if stage_root.exists():
        shutil.rmtree(stage_root)
    stage_root.mkdir(parents=True)
    for name in BOOK_DIRS:
        shutil.copytree(BOOK_ROOT / name, stage_root / name)
    shutil.copy2(BOOK_ROOT / "_toc.yml", stage_root / "_toc.yml")
    (stage_root / "_config.yml").write_text(yaml.safe_dump(site_config(profile), sort_keys=False))
    es5 = mathjax_source()
    for part in MATHJAX_PARTS:
        src, dst = es5 / part, stage_root / "_static" / "mathjax" / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    (stage_root / "notebooks").mkdir()
    for source in runner.available():
        executed = runner.executed_path(source, profile)
        if not executed.exists():
            raise runner.RunnerError(f"{source.stem} has no executed copy for profile {profile}; "
                                     f"run: python -m rankbook run --profile {profile} {source.stem}")
        for_site(executed, stage_root / "notebooks" / executed.name)
    return stage_root


#: stylesheets that outputs link from CDNs (matplotlib's JavaScript animation links Font Awesome 4 for its
#: buttons); the theme already ships Font Awesome, so the link is dropped and the page stays offline
CDN_STYLESHEET = re.compile(r'<link\s+rel="stylesheet"\s+href="https?://[^"]*font-awesome[^"]*"\s*/?>', re.I)


def for_site(executed: Path, staged: Path) -> None:
    """Copy an executed notebook for the site: its parameters cell folded under the label "Parameters" (the
    knobs a reader may turn are one click away), papermill's injected copy of it removed (the page states its
    profile), no output linking a stylesheet from a CDN, and a widget that offers a static fallback shown as
    that fallback (the site has no kernel to run the widget)."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:
        metadata = cell.setdefault("metadata", {})
        tags = metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        elif "parameters" in tags and not {"hide-input", "remove-cell", "remove-input"} & set(tags):
            tags.append("hide-input")
        if "parameters" in tags and "injected-parameters" not in tags:
            metadata["mystnb"] = {**PARAMETERS_LABEL, **metadata.get("mystnb", {})}
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            html = data.get("text/html")
            if isinstance(html, list):
                html = "".join(html)
            if isinstance(html, str):
                data["text/html"] = CDN_STYLESHEET.sub("", html)
                data.pop(WIDGET_MIME, None)  # the widget's static fallback (e.g. the spectra explorer's)
    nbformat.write(nb, staged)


def jupyter_book_command() -> list[str]:
    """``jupyter-book`` beside this Python (a venv's ``bin/``), else on ``PATH``; else a RunnerError."""
    beside = Path(sys.executable).with_name("jupyter-book")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("jupyter-book")
    if found:
        return [found]
    raise runner.RunnerError(f"no jupyter-book executable beside {sys.executable} or on PATH, so the site "
                             f"cannot be rendered. Fix: pip install -r requirements.txt (or pip install "
                             f"'rankbook[book]') into this environment")


def build(profile: str, strict: bool = True) -> Path:
    """Stage, run ``jupyter-book build`` into a temporary folder, then swap it in.

    ``strict`` turns Sphinx warnings into errors.
    """
    final = site_dir(profile)
    _remove_leftovers(final)
    stage_root = stage(profile)
    fresh = final.with_name(f".{final.name}.new-{os.getpid()}")
    cmd = jupyter_book_command() + ["build", str(stage_root), "--path-output", str(fresh)]
    if strict:
        cmd += ["--warningiserror", "--keep-going"]
    log = final.with_name(f"{final.name}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"rendering the site (jupyter-book; its log: {log})", flush=True)
    try:
        with open(log, "w") as out:  # Sphinx's progress lines go to the log; warnings and errors still show
            done = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, text=True)
        if done.stderr:
            print(done.stderr, end="", file=sys.stderr)
        if done.returncode:
            raise subprocess.CalledProcessError(done.returncode, cmd)
        swap(fresh, final)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    return html_dir(profile)


def swap(fresh: Path, final: Path) -> None:
    """Replace ``final`` by ``fresh``: the old site stays whole until the new one is complete."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    fresh.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _remove_leftovers(final: Path) -> None:
    """Temporary folders of builds that were killed (their process is gone)."""
    if not final.parent.is_dir():
        return
    for path in final.parent.glob(f".{final.name}.*-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not runner._alive(int(pid)):
            if path.name.startswith(f".{final.name}.old-") and not final.exists():
                path.rename(final)  # killed between the two renames of a swap: the old site comes back
            else:
                shutil.rmtree(path, ignore_errors=True)
