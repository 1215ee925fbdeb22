"""A self-contained HTML report: one page, images embedded, links to the files written."""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryomotion.atomic_write import atomic_path

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #3b6ea5; padding-bottom: .2em; }
h2 { font-size: 1.25em; margin-top: 1.8em; color: #3b6ea5; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .3em .7em; text-align: left; }
th { background: #eef3f8; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; }
.figures figure { margin: 0; }
.figures img { max-width: 520px; border: 1px solid #ddd; }
figcaption { font-size: .85em; color: #555; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; font-size: .85em; }
"""


@dataclass
class Section:
    """A heading followed by paragraphs, tables (header + rows of cells) and figures."""

    heading: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[tuple[list[str], list[list[str]]]] = field(default_factory=list)
    figures: list[tuple[Path, str]] = field(default_factory=list)
    preformatted: str = ""


def link(path: Path, report_dir: Path, text: str | None = None) -> str:
    """An HTML link (relative to the report) to a file; safe to put in a table cell."""
    relative = os.path.relpath(Path(path).resolve(), report_dir.resolve())
    return f'<a href="{html.escape(relative)}">{html.escape(text or Path(path).name)}</a>'


def _image(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(Path(path).stem)}">'


def _cell(value) -> str:
    text = str(value)
    return text if text.startswith("<a href=") else html.escape(text)


def write_report(path: Path, title: str, sections: list[Section]) -> Path:
    """Write ``sections`` as one HTML page with every image embedded (base64 PNG)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.heading)}</h2>")
        parts.extend(f"<p>{html.escape(p)}</p>" for p in section.paragraphs)
        for header, rows in section.tables:
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header))
            for row in rows:
                parts.append("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>")
            parts.append("</table>")
        if section.figures:
            parts.append('<div class="figures">')
            for figure, caption in section.figures:
                parts.append(
                    f"<figure>{_image(figure)}<figcaption>{html.escape(caption)}</figcaption>"
                    "</figure>"
                )
            parts.append("</div>")
        if section.preformatted:
            parts.append(f"<pre>{html.escape(section.preformatted)}</pre>")
    parts.append("</body></html>")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return Path(path)
