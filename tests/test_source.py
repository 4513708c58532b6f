"""show_source displays the package's own code, with where it lives, and refuses what is not the package's."""
import inspect
import json

import pytest

from rankbook.book import source
from rankbook.book.source import Source
from rankbook.store import paths


def test_source_of_a_function_is_its_code_with_path_and_lines():
    s = Source(paths.output_dir)
    lines, first = inspect.getsourcelines(paths.output_dir)
    assert s.code == "".join(lines).rstrip("\n")
    assert s.path == "rankbook/store/paths.py" and s.first == first and s.last == first + len(lines) - 1
    assert s.name == "rankbook.store.paths.output_dir"
    md = s._repr_markdown_()
    # folded: a <details> block (closed) whose summary names the function, around the code block
    assert md.startswith('<details class="rankbook-source">\n<summary>Source: <code>rankbook.store.paths.'
                         'output_dir</code> (rankbook/store/paths.py, lines ')
    assert " open" not in md.split("\n", 1)[0]
    assert "\n\n```python\ndef output_dir(" in md and md.rstrip().endswith("```\n\n</details>")


def test_a_module_starts_at_line_one_and_a_fence_outlasts_backticks_in_the_code():
    s = Source(source)
    assert s.first == 1 and s.name == "rankbook.book.source"
    # this module's own text holds ``double`` backticks; the fence must be longer than any run inside
    assert s._repr_markdown_().count("````python") == 0 and "```python" in s._repr_markdown_()
    assert max(len(r) for r in source._backtick_runs(s.code)) < 3


def test_objects_outside_the_package_or_without_source_are_refused():
    with pytest.raises(TypeError, match="outside the rankbook package"):
        Source(json.dumps)
    with pytest.raises(TypeError, match="no source"):
        Source(len)


def test_show_source_displays_markdown(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    source.show_source(paths.data_root)
    assert len(shown) == 1 and "def data_root" in shown[0]._repr_markdown_()
