"""Write a benchmark's results into its own marked section of a Markdown file in docs/."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def write_section(name: str, markdown: str, document: str = "performance.md") -> Path:
    """Replace (or append) the section between ``<!-- BEGIN name -->`` and ``<!-- END name -->``."""
    path = DOCS / document
    text = path.read_text() if path.exists() else f"# {path.stem.capitalize()}\n"
    block = f"<!-- BEGIN {name} -->\n{markdown.strip()}\n<!-- END {name} -->"
    marker = re.escape(name)
    pattern = re.compile(rf"<!-- BEGIN {marker} -->.*?<!-- END {marker} -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
