"""One citation style for the book: author-year in the text and in the list of references.

sphinxcontrib-bibtex cites author-year in the text (``bibtex_reference_style:
author_year``), but its list labels entries with the style's label style,
``alpha`` by default ("[BAdseraLA+23]"). This Sphinx extension registers the
pybtex label style ``author_year`` ("Boix-Adserà et al., 2023") and the
bibliography style ``rankbook`` (pybtex's ``plain`` formatting, sorted by
author, with those labels), so the list reads like the text.
``_config.yml`` loads it (``sphinx.extra_extensions``) and sets
``bibtex_default_style: rankbook``.
"""
from __future__ import annotations

from collections import Counter

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle


def _last_name(person) -> str:
    return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render_as("text")


def author_year(entry) -> str:
    """"Last, year", "A and B, year" or "A et al., year" (editors when there are no authors)."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_last_name(p) for p in people]
    if not names:
        who = entry.fields.get("key") or entry.fields.get("title", "Anon.")[:20]
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabels(BaseLabelStyle):
    """Author-year labels; two entries with the same label get "2023a", "2023b"."""

    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        labels = [author_year(e) for e in entries]
        seen: Counter = Counter()
        repeated = {label for label, n in Counter(labels).items() if n > 1}
        for label in labels:
            if label in repeated:
                seen[label] += 1
                yield f"{label}{chr(ord('a') + seen[label] - 1)}"
            else:
                yield label


class Style(PlainStyle):
    default_label_style = "author_year"


def setup(app):
    register_plugin("pybtex.style.labels", "author_year", AuthorYearLabels)
    register_plugin("pybtex.style.formatting", "rankbook", Style)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
