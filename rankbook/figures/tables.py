"""Small tables that render as Markdown in notebooks and on the site, and as text in a terminal."""
from __future__ import annotations

import html
from typing import Any, Iterable, Mapping, Sequence


def _fmt(value: Any, digits: int) -> str:
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        return f"{value:.{digits}g}"
    return str(value)


class Table:
    """Rows of cells under named columns; displays itself in Jupyter as an HTML table."""

    def __init__(self, rows: Iterable[Mapping[str, Any] | Sequence[Any]], columns: Sequence[str] | None = None,
                 *, title: str = "", digits: int = 4):
        rows = list(rows)
        if columns is None:
            if rows and not isinstance(rows[0], Mapping):
                raise ValueError("give columns= when rows are sequences")
            columns = list(rows[0].keys()) if rows else []
        self.columns = list(columns)
        self.rows = [[r.get(c, "") for c in self.columns] if isinstance(r, Mapping) else list(r) for r in rows]
        for r in self.rows:
            if len(r) != len(self.columns):
                raise ValueError(f"row {r!r} has {len(r)} cells for {len(self.columns)} columns")
        self.title = title
        self.digits = digits

    def cells(self) -> list[list[str]]:
        return [[_fmt(v, self.digits) for v in r] for r in self.rows]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r)) for r in self.rows]

    def __str__(self) -> str:
        cells = self.cells()
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(self.columns)]
        line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths))  # noqa: E731
        out = ([self.title] if self.title else []) + [line(self.columns), line(["-" * w for w in widths])]
        return "\n".join(out + [line(r) for r in cells])

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in self.cells())
        caption = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
